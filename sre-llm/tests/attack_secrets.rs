//! Secrets by reference, attacked: a key given where a reference goes, a credential following a
//! redirect to another host, a herd of callers each fetching the same secret (or each logging in
//! to Vault), a 401 storm that throws away a freshly fetched key, and a `file:` reference that
//! never ends.
//!
//! Every test here failed on the code it was written against (commit 3d330db); each names the
//! weakness it proves.

#![expect(clippy::unwrap_used, reason = "attack tests fail loudly")]

#[path = "secrets_support/temp.rs"]
mod temp;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sre_core::secret::{Fetched, SecretError, SecretHandle, SecretRef, SecretSource, Secrets};
use sre_core::{ChatRequest, LlmProvider, Message};
use sre_llm::entra::{self, WorkloadIdentity};
use sre_llm::secrets::{FileSource, VaultAuth, VaultConfig, VaultSource, standard_sources};
use sre_llm::{Auth, OpenAiCompatible, ProviderConfig, ProviderKind, Secret};
use temp::TempDir;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const VAULT_TOKEN: &str = "hvs.attack-token-0123456789";
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.YXR0YWNr.attack-sa-signature";
const AZURE_KEY: &str = "az_attack_key_0123456789abcdef";

fn r(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

fn ask() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("is the shop namespace healthy?")],
        ..ChatRequest::default()
    }
}

fn chat_ok() -> ResponseTemplate {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openai-chat-toolcall-response.json");
    let body: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    ResponseTemplate::new(200).set_body_json(body)
}

/// A server answering every request with a 307 to the same path on `target`.
async fn redirecting_to(target: &MockServer) -> MockServer {
    let server = MockServer::start().await;
    let to = target.uri();
    Mock::given(wiremock::matchers::any())
        .respond_with(move |q: &Request| {
            ResponseTemplate::new(307).insert_header("location", format!("{to}{}", q.url.path()))
        })
        .mount(&server)
        .await;
    server
}

/// Every request `server` received, as text (headers and body), for searching.
async fn seen(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|q| {
            let headers: Vec<String> = q
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                .collect();
            format!(
                "{} {}\n{}\n\n{}",
                q.method,
                q.url,
                headers.join("\n"),
                String::from_utf8_lossy(&q.body)
            )
        })
        .collect()
}

// ---- 1. a secret given where a reference goes is echoed --------------------------------------

/// `--api-key gsk_…` (or `api_key: gsk_…` in a config): the key itself where a reference goes.
/// `SecretRef::parse` quotes the whole text in `BadReference` ("it has no scheme"), and
/// `brain()` prints that error to stderr.
#[test]
fn a_key_given_where_a_reference_goes_is_never_echoed() {
    const KEY: &str = "gsk_live_Q1w2E3r4T5y6U7i8O9p0";
    let mut config = ProviderConfig::new(ProviderKind::Groq);
    config.api_key = Some(KEY.to_owned());
    let secrets = standard_sources(&|_| None, None).unwrap();
    let Err(err) = config.build_with_secrets(&secrets, &|_| None) else {
        panic!("a bare key is not a reference");
    };
    let shown = format!("{err}\n{err:?}");
    assert!(shown.contains("no scheme"), "{shown}");
    assert!(!shown.contains(KEY), "the key is echoed: {shown}");

    // The same for serve's flags (`--api-token`, `--slack-bot-token`, …), which go through
    // `Secrets::handle`.
    for value in [
        "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
        "4f1c0a5e9b7d3c2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a",
    ] {
        let err = secrets.handle(value).unwrap_err();
        let shown = format!("{err}\n{err:?}");
        assert!(!shown.contains(value), "the secret is echoed: {shown}");
    }
}

/// `--teams-webhook-url https://…?sig=…` (the URL itself, which carries its signature, where a
/// reference goes): it parses as a reference of scheme `https`, and `UnknownScheme` quotes the
/// whole "reference", signature included.
#[test]
fn a_webhook_url_given_where_a_reference_goes_is_never_echoed() {
    const SIG: &str = "Sig0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT";
    let url = format!(
        "https://prod-12.westeurope.logic.azure.com:443/workflows/0a1b2c/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
    );
    let secrets = standard_sources(&|_| None, None).unwrap();
    let err = secrets.handle(&url).unwrap_err();
    let shown = format!("{err}\n{err:?}");
    assert!(
        !shown.contains(SIG),
        "the webhook signature is echoed: {shown}"
    );
}

// ---- 2. credentials follow redirects to another host ---------------------------------------

/// Vault's answer (or anything at `VAULT_ADDR`) redirects to another host: reqwest follows, and
/// strips only `Authorization`/`Cookie` — `X-Vault-Token` goes along.
#[tokio::test]
async fn the_vault_token_does_not_follow_a_redirect_to_another_host() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"data": {"groq": "gsk_from_elsewhere"}, "metadata": {"version": 1}}
        })))
        .mount(&elsewhere)
        .await;
    let vault = redirecting_to(&elsewhere).await;
    let dir = TempDir::new();
    let token_file = dir.write("vault-token", VAULT_TOKEN);
    let source = VaultSource::new(VaultConfig::new(
        vault.uri(),
        VaultAuth::TokenFile(token_file),
    ))
    .unwrap();

    let _ = source.fetch(&r("vault:secret/data/sre#groq")).await;

    for request in seen(&elsewhere).await {
        assert!(
            !request.contains(VAULT_TOKEN),
            "the Vault token reached the redirect target:\n{request}"
        );
    }
}

/// Azure OpenAI's `api-key` header is not one reqwest strips on a cross-host redirect.
#[tokio::test]
async fn the_azure_api_key_does_not_follow_a_redirect_to_another_host() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(chat_ok())
        .mount(&elsewhere)
        .await;
    let azure = redirecting_to(&elsewhere).await;
    let provider = OpenAiCompatible::new(
        "azure",
        &azure.uri(),
        "gpt-4o",
        Auth::ApiKeyHeader(Secret::new(AZURE_KEY)),
    );

    let _ = provider.chat(&ask()).await;

    for request in seen(&elsewhere).await {
        assert!(
            !request.contains(AZURE_KEY),
            "the Azure key reached the redirect target:\n{request}"
        );
    }
}

/// The STS `AssumeRoleWithWebIdentity` POST carries the web identity token in its body; the
/// SDK's connector (reqwest) re-posts it on a 307 to whatever host the answer names. (The AWS
/// SDKs' own HTTP clients follow no redirects.)
#[tokio::test]
async fn the_web_identity_token_does_not_follow_a_redirect_to_another_host() {
    let elsewhere = MockServer::start().await;
    let sts = redirecting_to(&elsewhere).await;
    let dir = TempDir::new();
    let token_file = dir.write("token", JWT).display().to_string();
    let sts_uri = sts.uri();
    let vars: Vec<(&str, String)> = vec![
        ("AWS_REGION", "eu-west-1".to_owned()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/sre".to_owned(),
        ),
        ("AWS_ROLE_SESSION_NAME", "attack".to_owned()),
        ("AWS_ENDPOINT_URL_STS", sts_uri),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    let env = move |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let chain = sre_llm::aws::credential_chain(Some("eu-west-1"), &env);

    let _ = chain.credentials().await;

    for request in seen(&elsewhere).await {
        assert!(
            !request.contains(JWT),
            "the web identity token reached the redirect target:\n{request}"
        );
    }
}

/// Entra's token POST carries the federated service-account token as `client_assertion`; a 307
/// from the authority host re-posts it elsewhere.
#[tokio::test]
async fn the_entra_client_assertion_does_not_follow_a_redirect_to_another_host() {
    let elsewhere = MockServer::start().await;
    let authority = redirecting_to(&elsewhere).await;
    let dir = TempDir::new();
    let file = dir.write("azure-identity-token", JWT);
    let identity = WorkloadIdentity::new(
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-000000000002",
        &file,
    )
    .authority_host(&authority.uri());

    let _ = entra::token_handle(identity).get().await;

    for request in seen(&elsewhere).await {
        assert!(
            !request.contains(JWT),
            "the client assertion reached the redirect target:\n{request}"
        );
    }
}

// ---- 3. herds: every concurrent caller fetches ------------------------------------------------

/// A source that counts fetches and yields once inside each (as any network source does).
struct Counting {
    fetches: AtomicUsize,
}

#[async_trait]
impl SecretSource for Counting {
    fn scheme(&self) -> &'static str {
        "mem"
    }

    async fn fetch(&self, _reference: &SecretRef) -> Result<Fetched, SecretError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::task::yield_now().await;
        Ok(Fetched::new(Secret::new(format!("value-{n}-0123456789"))))
    }
}

/// Four requests at once on a cold (or just expired, or just invalidated) handle: each one
/// fetches — four Vault reads, four Secrets Manager calls (billed), four Entra token requests.
/// `SecretHandle::get` holds no lock across the fetch and does not re-check the cache.
#[tokio::test]
async fn concurrent_cold_gets_fetch_once() {
    let source = Arc::new(Counting {
        fetches: AtomicUsize::new(0),
    });
    let handle = Secrets::new()
        .with(Arc::clone(&source) as Arc<dyn SecretSource>)
        .handle("mem:groq")
        .unwrap();
    let (a, b, c, d) = tokio::join!(handle.get(), handle.get(), handle.get(), handle.get());
    for v in [a, b, c, d] {
        v.unwrap();
    }
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        1,
        "every concurrent caller fetched the secret itself"
    );
}

/// Four secrets read at once from a Vault with Kubernetes auth and no token yet: each fetch logs
/// in on its own (`VaultSource::current` checks the held token, then awaits the login without a
/// lock), so Vault issues four tokens (four leases) where one would do — and again at every
/// renewal that is due while requests come in concurrently.
#[tokio::test]
async fn concurrent_vault_reads_log_in_once() {
    let vault = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/kubernetes/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "auth": {"client_token": VAULT_TOKEN, "lease_duration": 3600, "renewable": true}
        })))
        .mount(&vault)
        .await;
    Mock::given(method("GET"))
        .and(header("X-Vault-Token", VAULT_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"data": {"a": "va-0123", "b": "vb-0123", "c": "vc-0123", "d": "vd-0123"},
                     "metadata": {"version": 1}}
        })))
        .mount(&vault)
        .await;
    let dir = TempDir::new();
    let jwt_path = dir.write("sa-token", JWT);
    let source = VaultSource::new(VaultConfig::new(
        vault.uri(),
        VaultAuth::Kubernetes {
            role: "sre-agent".to_owned(),
            mount: "kubernetes".to_owned(),
            jwt_path,
        },
    ))
    .unwrap();
    let (ra, rb, rc, rd) = (
        r("vault:secret/data/sre#a"),
        r("vault:secret/data/sre#b"),
        r("vault:secret/data/sre#c"),
        r("vault:secret/data/sre#d"),
    );
    let (a, b, c, d) = tokio::join!(
        source.fetch(&ra),
        source.fetch(&rb),
        source.fetch(&rc),
        source.fetch(&rd)
    );
    for v in [a, b, c, d] {
        v.unwrap();
    }
    let logins = vault
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|q| q.url.path() == "/v1/auth/kubernetes/login")
        .count();
    assert_eq!(logins, 1, "each concurrent fetch logged in to Vault itself");
}

/// A rotating store: each fetch gives the next value.
struct Rotating {
    fetches: AtomicUsize,
    values: Mutex<Vec<&'static str>>,
}

#[async_trait]
impl SecretSource for Rotating {
    fn scheme(&self) -> &'static str {
        "mem"
    }

    async fn fetch(&self, _reference: &SecretRef) -> Result<Fetched, SecretError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mut values = self.values.lock().unwrap();
        let v = if values.len() > 1 {
            values.remove(0)
        } else {
            values[0]
        };
        Ok(Fetched::new(Secret::new(v)))
    }
}

/// Two requests in flight with a key that was just rotated away; both get 401. The first
/// invalidates and fetches the new key; the second then invalidates *that* fresh key too
/// (`SecretHandle::invalidate` forgets whatever is cached, not the value that was refused) and
/// fetches again: N concurrent 401s cost N fetches, and a store whose every read mints a new
/// credential (Vault dynamic secrets) hands out N of them.
#[tokio::test]
async fn concurrent_401s_fetch_the_key_again_once() {
    const OLD: &str = "gsk_rotated_away_000000";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", format!("Bearer {OLD}").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"message": "Invalid API Key", "code": "invalid_api_key"}
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(chat_ok())
        .with_priority(2)
        .mount(&server)
        .await;
    let source = Arc::new(Rotating {
        fetches: AtomicUsize::new(0),
        values: Mutex::new(vec![
            OLD,
            "gsk_new_key_1111111111",
            "gsk_new_key_2222222222",
            "gsk_new_key_3333333333",
        ]),
    });
    let handle: SecretHandle = Secrets::new()
        .with(Arc::clone(&source) as Arc<dyn SecretSource>)
        .handle("mem:groq")
        .unwrap();
    let provider = OpenAiCompatible::new("groq", &server.uri(), "m", Auth::BearerRef(handle));

    let request = ask();
    let (a, b) = tokio::join!(provider.chat(&request), provider.chat(&request));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        2,
        "one fetch for the first key, one after the 401s; each 401 threw away the key the other fetched"
    );
}

// ---- 4. a file: reference that never ends ----------------------------------------------------

/// `file:` on a FIFO (or a hung NFS mount): `FileSource::fetch` opens and reads it with
/// blocking calls on the async runtime's own thread; `open(2)` of a FIFO waits for a writer, so
/// the worker thread (the whole runtime, with a current-thread runtime) hangs forever.
#[cfg(unix)]
#[test]
fn a_fifo_reference_is_refused_without_blocking() {
    let dir = TempDir::new();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    let reference = r(&format!("file:{}", fifo.display()));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = rt.block_on(FileSource::new().fetch(&reference));
        let _ = tx.send(result.map(|f| f.value.expose().to_owned()));
    });
    // A watchdog, not a timing assertion: the fixed code answers at once.
    let Ok(result) = rx.recv_timeout(Duration::from_secs(20)) else {
        // Unblock the reader (open a writer, close it) so the test process can end.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap());
        let _ = rx.recv();
        let _ = reader.join();
        panic!(
            "fetching file:{} blocked its thread: open(2) on a FIFO waits for a writer",
            fifo.display()
        );
    };
    reader.join().unwrap();
    assert!(
        matches!(result, Err(SecretError::Invalid { .. })),
        "a FIFO is not a secret file: {result:?}"
    );
}
