//! Azure OpenAI with Microsoft Entra ID tokens, against loopback servers speaking the real
//! protocols: the Entra v2.0 token endpoint (workload identity: client credentials with a JWT
//! client assertion read from the projected token file), the Instance Metadata Service and the App
//! Service identity endpoint (managed identity), and Azure OpenAI receiving the token as
//! `Authorization: Bearer`. Also the order in which the config picks Azure's authentication.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use sre_core::secret::{SecretError, SecretRef, SecretSource};
use sre_core::{ChatRequest, LlmError, LlmProvider, Message};
use sre_llm::entra::{COGNITIVE_SERVICES_SCOPE, ManagedIdentity, WorkloadIdentity};
use sre_llm::{AzureAuth, Error, ProviderConfig, ProviderKind, Secret};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "5e2a1c3b-8d7f-4e6a-9b0c-1d2e3f405162";
const CHAT_PATH: &str = "/openai/deployments/gpt-4o/chat/completions";

fn fixture(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ask() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("is the shop namespace healthy?")],
        ..ChatRequest::default()
    }
}

/// A file of its own for each test (the tests of this binary run in parallel).
fn token_file(test: &str, content: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "sre-llm-identity-azure-{}-{test}",
        std::process::id()
    ));
    std::fs::write(&p, content).unwrap();
    p
}

/// A service account token as the kubelet projects it (a JWT; its content is opaque here).
fn projected_token(n: u32) -> String {
    format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InNhLWtleS0xIn0.eyJhdWQiOlsiYXBpOi8vQXp1cmVBRFRva2VuRXhjaGFuZ2UiXSwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OnNyZTpzcmUtYWdlbnQiLCJuIjo{n}fQ.c2lnbmF0dXJl"
    )
}

/// The form fields of a request body, exactly as sent (each name once).
fn form(request: &Request) -> BTreeMap<String, String> {
    assert_eq!(
        request
            .headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        "application/x-www-form-urlencoded"
    );
    let body = std::str::from_utf8(&request.body).unwrap();
    let mut fields = BTreeMap::new();
    for pair in body.split('&') {
        let (k, v) = pair.split_once('=').unwrap();
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .unwrap()
                .into_owned()
        };
        assert!(
            fields.insert(decode(k), decode(v)).is_none(),
            "{k} sent twice"
        );
    }
    fields
}

fn expected_form(assertion: &str) -> BTreeMap<String, String> {
    [
        ("client_id", CLIENT),
        ("scope", "https://cognitiveservices.azure.com/.default"),
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// An Entra v2.0 token response, as login.microsoftonline.com sends it.
fn entra_token(token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token
    }))
}

async fn azure_chat(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(CHAT_PATH))
        .and(query_param("api-version", "2024-10-21"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("azure-openai-chat-completion-response.json")),
        )
        .mount(server)
        .await;
}

fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
}

fn workload_env(server: &MockServer, file: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_OPENAI_ENDPOINT", server.uri()),
        ("OPENAI_API_VERSION", "2024-10-21".to_owned()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            file.to_str().unwrap().to_owned(),
        ),
        ("AZURE_CLIENT_ID", CLIENT.to_owned()),
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_AUTHORITY_HOST", format!("{}/", server.uri())),
    ]
}

fn azure_config() -> ProviderConfig {
    let mut cfg = ProviderConfig::new(ProviderKind::Azure);
    cfg.deployment = Some("gpt-4o".into());
    cfg.max_retries = Some(0);
    cfg
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

fn token_path() -> String {
    format!("/{TENANT}/oauth2/v2.0/token")
}

// ---- workload identity ----------------------------------------------------------------------

#[tokio::test]
async fn workload_identity_exchanges_the_projected_token_and_azure_gets_a_bearer() {
    let server = MockServer::start().await;
    let assertion = projected_token(1);
    let file = token_file("exchange", &format!("{assertion}\n"));
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(entra_token(
            "eyJ0eXAiOiJKV1Qi.entra-access-token-1.sig",
            3599,
        ))
        .expect(1)
        .mount(&server)
        .await;
    azure_chat(&server).await;

    let azure = azure_config()
        .build_with(&env_of(workload_env(&server, &file)))
        .unwrap();
    let answer = azure.chat(&ask()).await.unwrap();
    assert_eq!(
        answer.message.content,
        "The capital of France is **Paris**."
    );
    // The token is cached for most of its hour: a second call asks Entra nothing.
    azure.chat(&ask()).await.unwrap();

    let token_requests = requests_to(&server, &token_path()).await;
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].method.as_str(), "POST");
    assert_eq!(form(&token_requests[0]), expected_form(&assertion));
    let chats = requests_to(&server, CHAT_PATH).await;
    assert_eq!(chats.len(), 2);
    for chat in &chats {
        assert_eq!(
            chat.headers.get("authorization").unwrap().to_str().unwrap(),
            "Bearer eyJ0eXAiOiJKV1Qi.entra-access-token-1.sig"
        );
        assert!(
            chat.headers.get("api-key").is_none(),
            "no api-key with Entra"
        );
    }
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn a_short_lived_token_is_refreshed_with_the_rotated_projected_token() {
    let server = MockServer::start().await;
    let file = token_file("refresh", &projected_token(1));
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(entra_token("entra-token-first", 0))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(entra_token("entra-token-second", 3599))
        .mount(&server)
        .await;
    azure_chat(&server).await;
    let azure = azure_config()
        .build_with(&env_of(workload_env(&server, &file)))
        .unwrap();

    azure.chat(&ask()).await.unwrap();
    // The kubelet rotates the projected token; the next exchange must assert the new one.
    std::fs::write(&file, projected_token(2)).unwrap();
    azure.chat(&ask()).await.unwrap();
    azure.chat(&ask()).await.unwrap();

    let token_requests = requests_to(&server, &token_path()).await;
    assert_eq!(
        token_requests.len(),
        2,
        "expires_in 0 → fetched again, once"
    );
    assert_eq!(form(&token_requests[0]), expected_form(&projected_token(1)));
    assert_eq!(form(&token_requests[1]), expected_form(&projected_token(2)));
    let sent: Vec<String> = requests_to(&server, CHAT_PATH)
        .await
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        sent,
        [
            "Bearer entra-token-first",
            "Bearer entra-token-second",
            "Bearer entra-token-second"
        ]
    );
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn an_azure_401_for_an_expired_token_fetches_a_new_token_and_retries_once() {
    let server = MockServer::start().await;
    let file = token_file("expired", &projected_token(1));
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(entra_token("entra-token-revoked", 3599))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(entra_token("entra-token-fresh", 3599))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CHAT_PATH))
        .and(header("authorization", "Bearer entra-token-revoked"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "code": "401",
            "message": "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."
        }})))
        .mount(&server)
        .await;
    azure_chat(&server).await;
    let azure = azure_config()
        .build_with(&env_of(workload_env(&server, &file)))
        .unwrap();
    azure.chat(&ask()).await.unwrap();
    assert_eq!(requests_to(&server, &token_path()).await.len(), 2);
    assert_eq!(requests_to(&server, CHAT_PATH).await.len(), 2);
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn an_entra_error_is_quoted_and_the_assertion_never_is() {
    let server = MockServer::start().await;
    let assertion = projected_token(7);
    let file = token_file("error", &assertion);
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_request",
            "error_description": "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: 'https://oidc.prod-aks.azure.com/0000/'. Assertion Subject: 'system:serviceaccount:sre:sre-agent'. Assertion Audience: 'api://AzureADTokenExchange'. Trace ID: 0f6b8e2c-1c2d-4a0b-9a55-7b1f0b4e2e00 Correlation ID: 5d8a4b1e-2f0c-4d3a-8e6f-9c7b2a1d0e3f Timestamp: 2025-05-01 10:00:00Z",
            "error_codes": [70021],
            "timestamp": "2025-05-01 10:00:00Z",
            "trace_id": "0f6b8e2c-1c2d-4a0b-9a55-7b1f0b4e2e00",
            "correlation_id": "5d8a4b1e-2f0c-4d3a-8e6f-9c7b2a1d0e3f",
            "error_uri": "https://login.microsoftonline.com/error?code=70021"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CHAT_PATH))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let azure = azure_config()
        .build_with(&env_of(workload_env(&server, &file)))
        .unwrap();
    let e = azure.chat(&ask()).await.unwrap_err();
    let LlmError::Auth { provider, message } = &e else {
        panic!("an Entra refusal is an auth error: {e:?}");
    };
    assert_eq!(provider, "azure");
    assert!(
        message.contains("workload identity")
            && message.contains(&token_path())
            && message.contains("HTTP 400")
            && message.contains(
                "invalid_request: AADSTS70021: No matching federated identity record found"
            ),
        "{message}"
    );
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains(&assertion), "{shown}");
        assert!(
            !shown.contains("c2lnbmF0dXJl"),
            "no part of the assertion: {shown}"
        );
    }
    std::fs::remove_file(&file).unwrap();

    // A misbehaving proxy quoting the request back: the assertion is still not repeated.
    let server = MockServer::start().await;
    let file = token_file("error-echo", &assertion);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!(
            "<html>bad request client_assertion={assertion}</html>"
        )))
        .mount(&server)
        .await;
    let identity = WorkloadIdentity::new(TENANT, CLIENT, &file).authority_host(&server.uri());
    let reference = SecretRef::parse(&format!("entra:{COGNITIVE_SERVICES_SCOPE}")).unwrap();
    let e = identity.fetch(&reference).await.unwrap_err();
    assert!(matches!(e, SecretError::Denied { .. }), "{e:?}");
    let shown = e.to_string();
    assert!(shown.contains("client_assertion=[REDACTED]"), "{shown}");
    assert!(!shown.contains(&assertion), "{shown}");
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn entra_throttling_is_retryable_and_a_missing_token_file_is_named() {
    let server = MockServer::start().await;
    let file = token_file("throttled", &projected_token(1));
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": "temporarily_unavailable",
            "error_description": "AADSTS50196: The server terminated an operation because it encountered a client request loop."
        })))
        .mount(&server)
        .await;
    let identity = WorkloadIdentity::new(TENANT, CLIENT, &file).authority_host(&server.uri());
    let reference = SecretRef::parse(&format!("entra:{COGNITIVE_SERVICES_SCOPE}")).unwrap();
    let e = identity.fetch(&reference).await.unwrap_err();
    assert!(matches!(e, SecretError::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("AADSTS50196"), "{e}");
    std::fs::remove_file(&file).unwrap();

    let e = identity.fetch(&reference).await.unwrap_err();
    assert!(matches!(e, SecretError::NotFound { .. }), "{e:?}");
    let shown = e.to_string();
    assert!(
        shown.contains("cannot read the federated token file")
            && shown.contains(file.to_str().unwrap())
            && shown.contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{shown}"
    );
}

// ---- managed identity -----------------------------------------------------------------------

fn imds_token(token: &str) -> ResponseTemplate {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token,
        "client_id": CLIENT,
        "expires_in": "86399",
        "expires_on": (now + 86_399).to_string(),
        "ext_expires_in": "86399",
        "not_before": now.to_string(),
        "resource": "https://cognitiveservices.azure.com",
        "token_type": "Bearer"
    }))
}

fn cognitive() -> SecretRef {
    SecretRef::parse(&format!("entra:{COGNITIVE_SERVICES_SCOPE}")).unwrap()
}

#[tokio::test]
async fn imds_managed_identity_sends_metadata_api_version_and_resource() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(header("Metadata", "true"))
        .and(query_param("api-version", "2018-02-01"))
        .and(query_param(
            "resource",
            "https://cognitiveservices.azure.com",
        ))
        .respond_with(imds_token("imds-access-token"))
        .mount(&server)
        .await;
    azure_chat(&server).await;
    let imds = format!("{}/metadata/identity/oauth2/token", server.uri());

    // The lifetime comes from expires_in, a string on IMDS.
    let fetched = ManagedIdentity::imds()
        .imds_endpoint(&imds)
        .fetch(&cognitive())
        .await
        .unwrap();
    assert_eq!(fetched.value.expose(), "imds-access-token");
    assert_eq!(fetched.valid_for, Some(Duration::from_secs(86_399)));
    let r = &server.received_requests().await.unwrap()[0];
    assert!(
        r.url.query_pairs().all(|(k, _)| k != "client_id"),
        "system-assigned: no client_id: {}",
        r.url
    );

    // Chosen in the config, with the IMDS host moved as the Azure SDKs allow.
    let mut cfg = azure_config();
    cfg.azure_auth = Some(AzureAuth::ManagedIdentity);
    let env = env_of(vec![
        ("AZURE_OPENAI_ENDPOINT", server.uri()),
        ("OPENAI_API_VERSION", "2024-10-21".to_owned()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.uri()),
        // A key present too: the explicit choice wins.
        ("AZURE_OPENAI_API_KEY", "azure-resource-key".to_owned()),
    ]);
    cfg.build_with(&env).unwrap().chat(&ask()).await.unwrap();
    let chat = requests_to(&server, CHAT_PATH).await.pop().unwrap();
    assert_eq!(
        chat.headers.get("authorization").unwrap(),
        "Bearer imds-access-token"
    );
    assert!(chat.headers.get("api-key").is_none());
}

#[tokio::test]
async fn a_user_assigned_identity_is_asked_for_by_client_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(header("Metadata", "true"))
        .and(query_param("api-version", "2018-02-01"))
        .and(query_param(
            "resource",
            "https://cognitiveservices.azure.com",
        ))
        .and(query_param("client_id", CLIENT))
        .respond_with(imds_token("user-assigned-token"))
        .expect(1)
        .mount(&server)
        .await;
    azure_chat(&server).await;
    let env = env_of(vec![
        ("AZURE_OPENAI_ENDPOINT", server.uri()),
        ("OPENAI_API_VERSION", "2024-10-21".to_owned()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.uri()),
        ("AZURE_USE_MANAGED_IDENTITY", "true".to_owned()),
        ("AZURE_CLIENT_ID", CLIENT.to_owned()),
    ]);
    azure_config()
        .build_with(&env)
        .unwrap()
        .chat(&ask())
        .await
        .unwrap();
    let chat = requests_to(&server, CHAT_PATH).await.pop().unwrap();
    assert_eq!(
        chat.headers.get("authorization").unwrap(),
        "Bearer user-assigned-token"
    );
}

#[tokio::test]
async fn transient_imds_answers_are_retried_a_bounded_number_of_times() {
    let server = MockServer::start().await;
    for status in [503, 410, 429] {
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .respond_with(imds_token("after-retries"))
        .with_priority(2)
        .mount(&server)
        .await;
    let imds = format!("{}/metadata/identity/oauth2/token", server.uri());
    let identity = ManagedIdentity::imds()
        .imds_endpoint(&imds)
        .retries(3, Duration::ZERO);
    let fetched = identity.fetch(&cognitive()).await.unwrap();
    assert_eq!(fetched.value.expose(), "after-retries");
    assert_eq!(server.received_requests().await.unwrap().len(), 4);

    // Always busy: 1 + 2 retries, then a retryable error naming the status.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_string("service unavailable"))
        .expect(3)
        .mount(&server)
        .await;
    let imds = format!("{}/metadata/identity/oauth2/token", server.uri());
    let e = ManagedIdentity::imds()
        .imds_endpoint(&imds)
        .retries(2, Duration::ZERO)
        .fetch(&cognitive())
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("HTTP 503) after 3 attempts"), "{e}");
}

#[tokio::test]
async fn no_identity_on_imds_is_a_clear_refusal_without_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_request", "error_description": "Identity not found"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let imds = format!("{}/metadata/identity/oauth2/token", server.uri());
    let e = ManagedIdentity::imds()
        .imds_endpoint(&imds)
        .retries(3, Duration::ZERO)
        .fetch(&cognitive())
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::Denied { .. }), "{e:?}");
    let shown = e.to_string();
    assert!(
        shown.contains("managed identity (IMDS)")
            && shown.contains("HTTP 400")
            && shown.contains("invalid_request: Identity not found")
            && shown.contains("AZURE_CLIENT_ID"),
        "{shown}"
    );
}

#[tokio::test]
async fn app_service_identity_uses_its_endpoint_header_and_expiry_time() {
    let server = MockServer::start().await;
    let identity_header = "a8c3f1e2-secret-identity-header";
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Mock::given(method("GET"))
        .and(path("/msi/token"))
        .and(header("X-IDENTITY-HEADER", identity_header))
        .and(query_param("api-version", "2019-08-01"))
        .and(query_param(
            "resource",
            "https://cognitiveservices.azure.com",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "app-service-token",
            "expires_on": (now + 3600).to_string(),
            "resource": "https://cognitiveservices.azure.com",
            "token_type": "Bearer",
            "client_id": CLIENT
        })))
        .mount(&server)
        .await;
    azure_chat(&server).await;
    let endpoint = format!("{}/msi/token", server.uri());
    let fetched = ManagedIdentity::app_service(&endpoint, Secret::new(identity_header))
        .fetch(&cognitive())
        .await
        .unwrap();
    assert_eq!(fetched.value.expose(), "app-service-token");
    let life = fetched.valid_for.unwrap();
    assert!(
        life <= Duration::from_secs(3600) && life >= Duration::from_secs(3000),
        "lifetime from expires_on: {life:?}"
    );
    let r = &server.received_requests().await.unwrap()[0];
    assert!(r.headers.get("Metadata").is_none(), "IMDS header not sent");

    // Picked from IDENTITY_ENDPOINT + IDENTITY_HEADER when managed identity is chosen.
    let mut cfg = azure_config();
    cfg.azure_auth = Some(AzureAuth::ManagedIdentity);
    let env = env_of(vec![
        ("AZURE_OPENAI_ENDPOINT", server.uri()),
        ("OPENAI_API_VERSION", "2024-10-21".to_owned()),
        ("IDENTITY_ENDPOINT", endpoint.clone()),
        ("IDENTITY_HEADER", identity_header.to_owned()),
    ]);
    let azure = cfg.build_with(&env).unwrap();
    azure.chat(&ask()).await.unwrap();
    let chat = requests_to(&server, CHAT_PATH).await.pop().unwrap();
    assert_eq!(
        chat.headers.get("authorization").unwrap(),
        "Bearer app-service-token"
    );
    let shown = format!(
        "{:?}",
        ManagedIdentity::app_service(&endpoint, Secret::new(identity_header))
    );
    assert!(
        shown.contains("X-IDENTITY-HEADER: [REDACTED]") && !shown.contains(identity_header),
        "{shown}"
    );

    // A refusal quoting the header value does not repeat it.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string(format!("X-IDENTITY-HEADER {identity_header} is not valid")),
        )
        .mount(&server)
        .await;
    let e = ManagedIdentity::app_service(&server.uri(), Secret::new(identity_header))
        .fetch(&cognitive())
        .await
        .unwrap_err();
    assert!(matches!(e, SecretError::Denied { .. }), "{e:?}");
    assert!(
        e.to_string().contains("managed identity (App Service)"),
        "{e}"
    );
    assert!(!e.to_string().contains(identity_header), "{e}");
    assert!(!format!("{e:?}").contains(identity_header), "{e:?}");
}

// ---- which authentication the config picks ---------------------------------------------------

#[tokio::test]
async fn a_key_wins_over_workload_identity_and_goes_in_api_key() {
    let server = MockServer::start().await;
    let file = token_file("key-wins", &projected_token(1));
    Mock::given(method("POST"))
        .and(path(token_path()))
        .respond_with(entra_token("unused", 3599))
        .expect(0)
        .mount(&server)
        .await;
    azure_chat(&server).await;
    let mut env = workload_env(&server, &file);
    env.push(("AZURE_OPENAI_API_KEY", "azure-resource-key".to_owned()));
    azure_config()
        .build_with(&env_of(env))
        .unwrap()
        .chat(&ask())
        .await
        .unwrap();
    let chat = requests_to(&server, CHAT_PATH).await.pop().unwrap();
    assert_eq!(chat.headers.get("api-key").unwrap(), "azure-resource-key");
    assert!(chat.headers.get("authorization").is_none());
    std::fs::remove_file(file).unwrap();
}

#[test]
fn the_config_names_what_azure_authentication_is_missing() {
    let endpoint_only = env_of(vec![(
        "AZURE_OPENAI_ENDPOINT",
        "https://my-resource.openai.azure.com".to_owned(),
    )]);
    let e = azure_config().build_with(&endpoint_only).err().unwrap();
    let Error::MissingVariable { variable, hint } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(variable, "AZURE_OPENAI_API_KEY");
    for option in [
        "AZURE_OPENAI_API_KEY",
        "api_key",
        "AZURE_OPENAI_AD_TOKEN",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "azure_auth: managed-identity",
        "AZURE_USE_MANAGED_IDENTITY=true",
    ] {
        assert!(hint.contains(option), "{option} missing from: {hint}");
    }

    // Workload identity asked for, one variable absent: that variable is named.
    let mut cfg = azure_config();
    cfg.azure_auth = Some(AzureAuth::WorkloadIdentity);
    let partial = env_of(vec![
        (
            "AZURE_OPENAI_ENDPOINT",
            "https://my-resource.openai.azure.com".to_owned(),
        ),
        ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/x".to_owned()),
        ("AZURE_CLIENT_ID", CLIENT.to_owned()),
    ]);
    let e = cfg.build_with(&partial).err().unwrap();
    assert!(
        e.to_string().starts_with("AZURE_TENANT_ID is not set"),
        "{e}"
    );
    // With only two of the three, workload identity is not picked on its own.
    let e = azure_config().build_with(&partial).err().unwrap();
    assert!(
        e.to_string().starts_with("AZURE_OPENAI_API_KEY is not set"),
        "{e}"
    );

    let flag = env_of(vec![
        (
            "AZURE_OPENAI_ENDPOINT",
            "https://my-resource.openai.azure.com".to_owned(),
        ),
        ("AZURE_USE_MANAGED_IDENTITY", "maybe".to_owned()),
    ]);
    let e = azure_config().build_with(&flag).err().unwrap();
    assert_eq!(
        e.to_string(),
        "provider config: AZURE_USE_MANAGED_IDENTITY must be true or false, not \"maybe\""
    );

    let cfg: ProviderConfig = serde_json::from_value(json!({
        "provider": "azure", "deployment": "gpt-4o", "azure_auth": "workload-identity"
    }))
    .unwrap();
    assert_eq!(cfg.azure_auth, Some(AzureAuth::WorkloadIdentity));
    assert!(
        serde_json::from_value::<ProviderConfig>(
            json!({"provider": "azure", "azure_auth": "device-code"})
        )
        .is_err()
    );
}
