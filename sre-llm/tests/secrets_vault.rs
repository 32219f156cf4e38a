//! The `vault:` secret source against a loopback server speaking Vault's HTTP API (wiremock, and a
//! rustls server for `VAULT_CACERT`): KV v2 and v1 reads, field selection, 404 / 403 / sealed /
//! 5xx, token lookup and renewal (driven by tokio's clock, not by sleeping), Kubernetes login,
//! re-login on 403, token files, and that no error shows a value or a token.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

#[path = "secrets_support/hidden.rs"]
mod hidden;
#[path = "secrets_support/temp.rs"]
mod temp;
#[path = "secrets_support/tls.rs"]
mod tls;

use std::time::Duration;

use hidden::assert_hidden;
use serde_json::{Value, json};
use sre_core::secret::{Secret, SecretError, SecretRef, SecretSource};
use sre_llm::secrets::{VaultAuth, VaultConfig, VaultSource, standard_sources};
use temp::TempDir;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "hvs.static-token-0123456789";
const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNyZSJ9.c2VydmljZWFjY291bnQ.sa-signature";
const LOGIN_1: &str = "hvs.k8s-login-one-abcdef";
const LOGIN_2: &str = "hvs.k8s-login-two-ghijkl";
const GROQ: &str = "gsk_vault_live_value_1";
const AZURE: &str = "az_vault_live_value_2";

fn r(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

/// A KV v2 read answer, as Vault 1.x sends it.
fn kv2(fields: &Value) -> Value {
    json!({
        "request_id": "6c1b3e5a-9d0e-4f55-8f1e-3b2a1c0d9e8f",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": {
            "data": fields,
            "metadata": {
                "created_time": "2024-05-02T10:00:00.123456789Z",
                "custom_metadata": null,
                "deletion_time": "",
                "destroyed": false,
                "version": 3
            }
        },
        "wrap_info": null,
        "warnings": null,
        "auth": null,
        "mount_type": "kv"
    })
}

/// `auth/token/lookup-self` for a token with `ttl` seconds left.
fn lookup_self(ttl: u64, renewable: bool) -> Value {
    json!({
        "request_id": "0e7c4a1b-2f3d-4c5e-8a9b-1c2d3e4f5a6b",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": {
            "accessor": "8609694a-cdbc-db9b-d345-e782dbb562ed",
            "creation_time": 1_714_640_000,
            "creation_ttl": ttl,
            "display_name": "token",
            "entity_id": "",
            "expire_time": null,
            "explicit_max_ttl": 0,
            "id": TOKEN,
            "meta": null,
            "num_uses": 0,
            "orphan": false,
            "path": "auth/token/create",
            "policies": ["default", "sre-agent"],
            "renewable": renewable,
            "ttl": ttl,
            "type": "service"
        },
        "wrap_info": null,
        "warnings": null,
        "auth": null
    })
}

/// A login or renew-self answer.
fn auth(token: &str, lease: u64, renewable: bool) -> Value {
    json!({
        "request_id": "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": null,
        "wrap_info": null,
        "warnings": null,
        "auth": {
            "client_token": token,
            "accessor": "afa306d0-be3d-c8d2-b0d7-2c3d4e5f6a7b",
            "policies": ["default", "sre-agent"],
            "token_policies": ["default", "sre-agent"],
            "metadata": {
                "role": "sre-agent",
                "service_account_name": "sre-agent",
                "service_account_namespace": "sre",
                "service_account_secret_name": "",
                "service_account_uid": "3d9c1b2a-7e6f-4a5b-8c9d-0e1f2a3b4c5d"
            },
            "lease_duration": lease,
            "renewable": renewable,
            "entity_id": "6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f",
            "token_type": "service",
            "orphan": true,
            "mfa_requirement": null,
            "num_uses": 0
        },
        "mount_type": ""
    })
}

/// A source with the static token; `lookup-self` says it never expires (a root-like token).
async fn static_source(server: &MockServer) -> VaultSource {
    Mock::given(method("GET"))
        .and(path("/v1/auth/token/lookup-self"))
        .and(header("X-Vault-Token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(lookup_self(0, false)))
        .mount(server)
        .await;
    VaultSource::new(VaultConfig::new(
        server.uri(),
        VaultAuth::Token(Secret::new(TOKEN)),
    ))
    .unwrap()
}

/// A source with Kubernetes auth as role `sre-agent` at `mount`, the JWT in a file of `dir`.
fn k8s_source(server: &MockServer, dir: &TempDir, mount: &str) -> VaultSource {
    let jwt_path = dir.write("sa-token", format!("{JWT}\n"));
    VaultSource::new(VaultConfig::new(
        server.uri(),
        VaultAuth::Kubernetes {
            role: "sre-agent".to_owned(),
            mount: mount.to_owned(),
            jwt_path,
        },
    ))
    .unwrap()
}

/// Mounts a login answer at `auth/kubernetes/login` that is given at most `times` times.
async fn login_answers(server: &MockServer, token: &str, lease: u64, renewable: bool, times: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/auth/kubernetes/login"))
        .and(body_json(json!({"role": "sre-agent", "jwt": JWT})))
        .respond_with(ResponseTemplate::new(200).set_body_json(auth(token, lease, renewable)))
        .up_to_n_times(times)
        .mount(server)
        .await;
}

/// Mounts the `secret/data/sre` read for `token`.
async fn read_answers(server: &MockServer, token: &str) {
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/sre"))
        .and(header("X-Vault-Token", token))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(kv2(&json!({"groq": GROQ, "azure": AZURE}))),
        )
        .mount(server)
        .await;
}

async fn count(server: &MockServer, method_name: &str, path_is: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|q| q.method.as_str() == method_name && q.url.path() == path_is)
        .count()
}

/// Moves tokio's clock (which the source's lease arithmetic reads) forward by `by`, without
/// sleeping, and lets it run again.
async fn advance(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn a_kv2_field_is_read_with_the_token_namespace_and_request_headers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/auth/token/lookup-self"))
        .respond_with(ResponseTemplate::new(200).set_body_json(lookup_self(0, false)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/sre"))
        .and(header("X-Vault-Token", TOKEN))
        .and(header("X-Vault-Namespace", "team-a"))
        .and(header("X-Vault-Request", "true"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(kv2(&json!({"groq": GROQ, "azure": AZURE}))),
        )
        .expect(1)
        .mount(&server)
        .await;
    let config = VaultConfig {
        namespace: Some("team-a".to_owned()),
        ..VaultConfig::new(server.uri(), VaultAuth::Token(Secret::new(TOKEN)))
    };
    let vault = VaultSource::new(config).unwrap();
    let got = vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(got.value.expose(), GROQ);
    assert_eq!(got.valid_for, None, "KV v2 has no lease");
    assert!(!format!("{vault:?}").contains(TOKEN));
}

#[tokio::test]
async fn one_field_needs_no_key_and_several_need_one() {
    let server = MockServer::start().await;
    let vault = static_source(&server).await;
    read_answers(&server, TOKEN).await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/groq-only"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kv2(&json!({"api_key": GROQ}))))
        .mount(&server)
        .await;
    let got = vault
        .fetch(&r("vault:secret/data/groq-only"))
        .await
        .unwrap();
    assert_eq!(got.value.expose(), GROQ);

    let err = vault.fetch(&r("vault:secret/data/sre")).await.unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(r#"has 2 fields ("azure", "groq")"#),
        "{err}"
    );
    assert_hidden(&err, &[GROQ, AZURE, TOKEN]);
}

#[tokio::test]
async fn a_missing_field_is_not_found_naming_it_and_the_field_names_only() {
    let server = MockServer::start().await;
    let vault = static_source(&server).await;
    read_answers(&server, TOKEN).await;
    let err = vault
        .fetch(&r("vault:secret/data/sre#openai"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        r#"secret vault:secret/data/sre#openai not found: the Vault secret secret/data/sre has no key "openai" (its keys: "azure", "groq")"#
    );
    assert_hidden(&err, &[GROQ, AZURE, TOKEN]);
}

#[tokio::test]
async fn a_missing_path_and_a_deleted_version_are_not_found() {
    let server = MockServer::start().await;
    let vault = static_source(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/nope"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"errors": []})))
        .mount(&server)
        .await;
    // What Vault answers for a soft-deleted current version.
    let mut deleted = kv2(&Value::Null);
    deleted["data"]["metadata"]["deletion_time"] = json!("2024-05-03T08:00:00.000000001Z");
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/old"))
        .respond_with(ResponseTemplate::new(404).set_body_json(deleted))
        .mount(&server)
        .await;

    let err = vault
        .fetch(&r("vault:secret/data/nope#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "secret vault:secret/data/nope#groq not found: Vault has no secret at secret/data/nope"
    );
    assert_hidden(&err, &[TOKEN]);

    let err = vault
        .fetch(&r("vault:secret/data/old#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("version 3 of secret/data/old was deleted at 2024-05-03T08:00:00"),
        "{err}"
    );
}

#[tokio::test]
async fn permission_denied_is_denied_quoting_vault_without_the_token() {
    let server = MockServer::start().await;
    let vault = static_source(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/sre"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            // Vault does not echo tokens, but a proxy might: it must be scrubbed.
            json!({"errors": ["1 error occurred:\n\t* permission denied\n\n", format!("token {TOKEN}")]}),
        ))
        .expect(1) // a static token is not retried
        .mount(&server)
        .await;
    let err = vault
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Denied { .. }), "{err}");
    let shown = err.to_string();
    assert!(shown.contains("permission denied"), "{shown}");
    assert!(shown.contains("the token from VAULT_TOKEN"), "{shown}");
    assert!(shown.contains("token [REDACTED]"), "{shown}");
    assert_hidden(&err, &[TOKEN, GROQ]);
}

#[tokio::test]
async fn a_sealed_vault_and_server_errors_are_unavailable() {
    let server = MockServer::start().await;
    let vault = static_source(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/sre"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"errors": ["Vault is sealed"]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/busy"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"errors": ["internal error"]})),
        )
        .mount(&server)
        .await;
    let err = vault
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("Vault is sealed"), "{err}");
    assert_hidden(&err, &[TOKEN]);

    let err = vault
        .fetch(&r("vault:secret/data/busy#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("500"), "{err}");
    assert!(err.to_string().contains("internal error"), "{err}");
}

#[tokio::test]
async fn an_unreachable_vault_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let vault = VaultSource::new(VaultConfig::new(
        format!("http://127.0.0.1:{port}"),
        VaultAuth::Token(Secret::new(TOKEN)),
    ))
    .unwrap();
    let err = vault
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("could not reach Vault at http://127.0.0.1:{port}")),
        "{err}"
    );
    assert_hidden(&err, &[TOKEN]);
}

#[tokio::test]
async fn kubernetes_login_posts_the_role_and_service_account_token_then_uses_vaults_token() {
    let server = MockServer::start().await;
    let dir = TempDir::new();
    Mock::given(method("POST"))
        .and(path("/v1/auth/k8s-prod/login"))
        .and(header("X-Vault-Request", "true"))
        .and(body_json(json!({"role": "sre-agent", "jwt": JWT})))
        .respond_with(ResponseTemplate::new(200).set_body_json(auth(LOGIN_1, 3600, true)))
        .expect(1)
        .mount(&server)
        .await;
    read_answers(&server, LOGIN_1).await;
    let vault = k8s_source(&server, &dir, "k8s-prod");
    for _ in 0..2 {
        let got = vault
            .fetch(&r("vault:secret/data/sre#azure"))
            .await
            .unwrap();
        assert_eq!(got.value.expose(), AZURE);
    }
    // The login's token is kept: one login, two reads with it.
    assert_eq!(count(&server, "POST", "/v1/auth/k8s-prod/login").await, 1);
    assert_eq!(count(&server, "GET", "/v1/secret/data/sre").await, 2);
}

#[tokio::test]
async fn a_refused_login_is_denied_without_the_service_account_token() {
    let server = MockServer::start().await;
    let dir = TempDir::new();
    Mock::given(method("POST"))
        .and(path("/v1/auth/kubernetes/login"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"errors": [format!("invalid role name \"sre-agent\" for jwt {JWT}")]}),
        ))
        .mount(&server)
        .await;
    let vault = k8s_source(&server, &dir, "kubernetes");
    let err = vault
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Denied { .. }), "{err}");
    assert!(err.to_string().contains("invalid role name"), "{err}");
    assert!(err.to_string().contains(r#"role "sre-agent""#), "{err}");
    assert_hidden(&err, &[JWT]);

    let missing = VaultSource::new(VaultConfig::new(
        server.uri(),
        VaultAuth::Kubernetes {
            role: "sre-agent".to_owned(),
            mount: "kubernetes".to_owned(),
            jwt_path: dir.path().join("no-such-token"),
        },
    ))
    .unwrap();
    let err = missing
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Denied { .. }), "{err}");
    assert!(
        err.to_string().contains("automountServiceAccountToken"),
        "{err}"
    );
}

#[tokio::test]
async fn a_403_with_a_kubernetes_token_logs_in_once_more_and_retries_once() {
    let server = MockServer::start().await;
    let dir = TempDir::new();
    login_answers(&server, LOGIN_1, 3600, true, 1).await;
    login_answers(&server, LOGIN_2, 3600, true, 1).await;
    // The first token was revoked behind our back.
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/sre"))
        .and(header("X-Vault-Token", LOGIN_1))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"errors": ["permission denied"]})),
        )
        .mount(&server)
        .await;
    read_answers(&server, LOGIN_2).await;
    let vault = k8s_source(&server, &dir, "kubernetes");
    let got = vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(got.value.expose(), GROQ);
    assert_eq!(count(&server, "POST", "/v1/auth/kubernetes/login").await, 2);
    // The new token is kept.
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(count(&server, "POST", "/v1/auth/kubernetes/login").await, 2);
}

#[tokio::test]
async fn a_403_that_persists_after_a_fresh_login_is_denied_after_one_retry() {
    let server = MockServer::start().await;
    let dir = TempDir::new();
    login_answers(&server, LOGIN_1, 3600, true, 1).await;
    login_answers(&server, LOGIN_2, 3600, true, 1).await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/sre"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"errors": ["permission denied"]})),
        )
        .mount(&server)
        .await;
    let vault = k8s_source(&server, &dir, "kubernetes");
    let err = vault
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Denied { .. }), "{err}");
    assert!(
        err.to_string().contains("also after a fresh login"),
        "{err}"
    );
    assert!(err.to_string().contains("permission denied"), "{err}");
    assert_hidden(&err, &[LOGIN_1, LOGIN_2, JWT]);
    assert_eq!(count(&server, "POST", "/v1/auth/kubernetes/login").await, 2);
    assert_eq!(count(&server, "GET", "/v1/secret/data/sre").await, 2);
}

#[tokio::test]
async fn a_short_lease_is_renewed_with_renew_self_before_it_ends() {
    let server = MockServer::start().await;
    let dir = TempDir::new();
    login_answers(&server, LOGIN_1, 60, true, 1).await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/renew-self"))
        .and(header("X-Vault-Token", LOGIN_1))
        .respond_with(ResponseTemplate::new(200).set_body_json(auth(LOGIN_1, 60, true)))
        .mount(&server)
        .await;
    read_answers(&server, LOGIN_1).await;
    let vault = k8s_source(&server, &dir, "kubernetes");
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(count(&server, "POST", "/v1/auth/token/renew-self").await, 0);

    // Before 2/3 of the lease: nothing to renew.
    advance(Duration::from_secs(30)).await;
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(count(&server, "POST", "/v1/auth/token/renew-self").await, 0);

    // Past 2/3 of the 60 s lease, before it ends: renewed, not replaced.
    advance(Duration::from_secs(15)).await;
    let got = vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(got.value.expose(), GROQ);
    let requests = server.received_requests().await.unwrap();
    let renewals: Vec<_> = requests
        .iter()
        .filter(|q| q.url.path() == "/v1/auth/token/renew-self")
        .collect();
    assert_eq!(renewals.len(), 1);
    assert_eq!(renewals[0].method.as_str(), "POST");
    assert_eq!(
        renewals[0]
            .headers
            .get("x-vault-token")
            .unwrap()
            .to_str()
            .unwrap(),
        LOGIN_1
    );
    assert_eq!(count(&server, "POST", "/v1/auth/kubernetes/login").await, 1);

    // The renewal restarted the lease: 30 s later there is nothing to do again.
    advance(Duration::from_secs(30)).await;
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(count(&server, "POST", "/v1/auth/token/renew-self").await, 1);
}

#[tokio::test]
async fn a_failed_renewal_or_a_non_renewable_token_means_a_new_login() {
    let server = MockServer::start().await;
    let dir = TempDir::new();
    login_answers(&server, LOGIN_1, 60, true, 1).await;
    login_answers(&server, LOGIN_2, 60, false, 2).await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/renew-self"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"errors": ["permission denied"]})),
        )
        .mount(&server)
        .await;
    read_answers(&server, LOGIN_1).await;
    read_answers(&server, LOGIN_2).await;
    let vault = k8s_source(&server, &dir, "kubernetes");
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();

    // Renewal refused (past the role's max TTL, say): log in again.
    advance(Duration::from_secs(45)).await;
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(count(&server, "POST", "/v1/auth/token/renew-self").await, 1);
    assert_eq!(count(&server, "POST", "/v1/auth/kubernetes/login").await, 2);

    // The new token is not renewable: at 2/3 of its lease, log in again without renewing.
    advance(Duration::from_secs(45)).await;
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(count(&server, "POST", "/v1/auth/token/renew-self").await, 1);
    assert_eq!(count(&server, "POST", "/v1/auth/kubernetes/login").await, 3);
}

#[tokio::test]
async fn a_static_token_is_renewed_when_renewable_and_denied_clearly_once_expired() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/auth/token/lookup-self"))
        .and(header("X-Vault-Token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(lookup_self(90, true)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/renew-self"))
        .and(header("X-Vault-Token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(auth(TOKEN, 90, true)))
        .expect(1)
        .mount(&server)
        .await;
    read_answers(&server, TOKEN).await;
    let vault = VaultSource::new(VaultConfig::new(
        server.uri(),
        VaultAuth::Token(Secret::new(TOKEN)),
    ))
    .unwrap();
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    advance(Duration::from_secs(61)).await;
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(count(&server, "POST", "/v1/auth/token/renew-self").await, 1);

    // A token that cannot be renewed runs out.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/auth/token/lookup-self"))
        .respond_with(ResponseTemplate::new(200).set_body_json(lookup_self(30, false)))
        .mount(&server)
        .await;
    read_answers(&server, TOKEN).await;
    let vault = VaultSource::new(VaultConfig::new(
        server.uri(),
        VaultAuth::Token(Secret::new(TOKEN)),
    ))
    .unwrap();
    vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    advance(Duration::from_secs(31)).await;
    let err = vault
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Denied { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("the token from VAULT_TOKEN has expired and could not be renewed"),
        "{err}"
    );
    assert_hidden(&err, &[TOKEN, GROQ]);
    // Known to be expired: not even sent.
    assert_eq!(count(&server, "GET", "/v1/secret/data/sre").await, 1);
}

#[tokio::test]
async fn a_token_file_is_read_again_when_vault_refuses_its_token() {
    let server = MockServer::start().await;
    let dir = TempDir::new();
    let file = dir.write("vault-token", format!("{LOGIN_1}\n"));
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/sre"))
        .and(header("X-Vault-Token", LOGIN_1))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"errors": ["permission denied"]})),
        )
        .mount(&server)
        .await;
    read_answers(&server, LOGIN_2).await;
    let vault =
        VaultSource::new(VaultConfig::new(server.uri(), VaultAuth::TokenFile(file))).unwrap();
    let err = vault
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Denied { .. }), "{err}");
    assert_hidden(&err, &[LOGIN_1]);
    // Vault Agent wrote a new token to the sink.
    dir.write("vault-token", LOGIN_2);
    let got = vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(got.value.expose(), GROQ);
}

#[tokio::test]
async fn a_kv1_secret_with_a_lease_is_valid_for_it() {
    let server = MockServer::start().await;
    let vault = static_source(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/kv/sre"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "request_id": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 2_764_800,
            "data": {"groq": GROQ, "azure": AZURE},
            "wrap_info": null,
            "warnings": null,
            "auth": null
        })))
        .mount(&server)
        .await;
    let got = vault.fetch(&r("vault:kv/sre#groq")).await.unwrap();
    assert_eq!(got.value.expose(), GROQ);
    assert_eq!(got.valid_for, Some(Duration::from_secs(2_764_800)));
}

#[tokio::test]
async fn vault_cacert_makes_a_private_ca_trusted_and_without_it_tls_fails() {
    let body = r#"{"data":{"data":{"groq":"gsk_over_tls_value"},"metadata":{"created_time":"2024-05-02T10:00:00Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":1}},"lease_duration":0}"#;
    let server = tls::serve(body);
    let dir = TempDir::new();
    let token_file = dir.write("token", TOKEN);
    let config = |with_ca: bool| {
        let env = |name: &str| match name {
            "VAULT_ADDR" => Some(format!("https://127.0.0.1:{}", server.port)),
            "VAULT_TOKEN_FILE" => Some(token_file.display().to_string()),
            "VAULT_CACERT" if with_ca => Some(tls::ca_path().display().to_string()),
            _ => None,
        };
        VaultConfig::from_env(&env).unwrap().unwrap()
    };

    let vault = VaultSource::new(config(true)).unwrap();
    let got = vault.fetch(&r("vault:secret/data/sre#groq")).await.unwrap();
    assert_eq!(got.value.expose(), "gsk_over_tls_value");
    let heads = server.requests.lock().unwrap().clone();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with("GET /v1/secret/data/sre HTTP/1.1"),
        "{}",
        heads[0]
    );
    assert!(
        heads[0]
            .to_lowercase()
            .contains(&format!("x-vault-token: {TOKEN}").to_lowercase())
    );

    let vault = VaultSource::new(config(false)).unwrap();
    let err = vault
        .fetch(&r("vault:secret/data/sre#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_hidden(&err, &[TOKEN]);
    assert_eq!(
        server.requests.lock().unwrap().len(),
        1,
        "no request without trust"
    );
}

#[test]
fn a_bad_vault_cacert_is_a_clear_configuration_error() {
    let dir = TempDir::new();
    let not_pem = dir.write("ca.pem", "this is not a certificate\n");
    let config = |path: std::path::PathBuf| VaultConfig {
        ca_cert: Some(path),
        ..VaultConfig::new("https://vault:8200", VaultAuth::Token(Secret::new(TOKEN)))
    };
    let err = VaultSource::new(config(not_pem)).unwrap_err().to_string();
    assert!(
        err.contains("VAULT_CACERT") && err.contains("no PEM certificate"),
        "{err}"
    );
    let err = VaultSource::new(config(dir.path().join("missing.pem")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("VAULT_CACERT") && err.contains("missing.pem"),
        "{err}"
    );
}

#[test]
fn the_standard_sources_register_vault_when_vault_addr_is_set() {
    let env = |name: &str| match name {
        "VAULT_ADDR" => Some("http://127.0.0.1:8200".to_owned()),
        "VAULT_K8S_ROLE" => Some("sre-agent".to_owned()),
        _ => None,
    };
    let secrets = standard_sources(&env, None).unwrap();
    assert_eq!(
        secrets.schemes().collect::<Vec<_>>(),
        ["env", "file", "vault"]
    );
    let err = standard_sources(
        &|name: &str| (name == "VAULT_ADDR").then(|| "http://127.0.0.1:8200".to_owned()),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("VAULT_TOKEN"), "{err}");
}
