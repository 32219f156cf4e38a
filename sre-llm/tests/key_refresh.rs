//! Provider keys by reference: fetched through a [`Secrets`] registry, fetched again and the
//! request retried once when the provider answers 401 (a rotated key), never retried for a fixed
//! key, never looping, and never quoted in an error.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use sre_core::secret::{Fetched, SecretError, SecretRef, SecretSource, Secrets};
use sre_core::{ChatRequest, LlmError, LlmProvider, Message};
use sre_llm::{Auth, Error, OpenAiCompatible, ProviderConfig, ProviderKind, Retry, Secret};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY_1: &str = "gsk_rotated_away_1111";
const KEY_2: &str = "gsk_current_key_2222";
const KEY_3: &str = "gsk_newest_key_3333";

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

/// A store whose value is rotated: each fetch gives the next value of the list (the last one
/// again once the list is used up), or the error set for the reference's path.
struct Rotating {
    values: Mutex<Vec<&'static str>>,
    fetches: AtomicUsize,
}

impl Rotating {
    fn new(values: &[&'static str]) -> Arc<Self> {
        Arc::new(Self {
            values: Mutex::new(values.iter().rev().copied().collect()),
            fetches: AtomicUsize::new(0),
        })
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SecretSource for Rotating {
    fn scheme(&self) -> &'static str {
        "mem"
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        match reference.path() {
            "denied" => return Err(SecretError::denied(reference, "permission denied")),
            "sealed" => return Err(SecretError::unavailable(reference, "Vault is sealed")),
            _ => {}
        }
        let mut values = self.values.lock().unwrap();
        let value = if values.len() > 1 {
            values.pop().unwrap()
        } else {
            values[0]
        };
        Ok(Fetched::new(Secret::new(value)))
    }
}

/// Groq at `server`, its key from `mem:groq`.
fn groq(server: &MockServer, source: &Arc<Rotating>, reference: &str) -> Arc<dyn LlmProvider> {
    let mut cfg = ProviderConfig::new(ProviderKind::Groq);
    cfg.endpoint = Some(server.uri());
    cfg.api_key = Some(reference.to_owned());
    cfg.max_retries = Some(0);
    let secrets = Secrets::new().with(Arc::clone(source) as Arc<dyn SecretSource>);
    cfg.build_with_secrets(&secrets, &|_| None).unwrap()
}

/// Accepts only `Bearer KEY_2`; any other key gets Groq's 401, which quotes the key.
async fn accepts_only_key_2(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY_2}").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("openai-chat-toolcall-response.json")),
        )
        .with_priority(1)
        .mount(server)
        .await;
    refuses_every_key(server).await;
}

/// Groq's 401 for a bad key, quoting it back.
async fn refuses_every_key(server: &MockServer) {
    Mock::given(method("POST"))
        .respond_with(|r: &Request| {
            let key = r
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .trim_start_matches("Bearer ")
                .to_owned();
            ResponseTemplate::new(401).set_body_json(json!({"error": {
                "message": format!("Invalid API Key: {key}"),
                "type": "invalid_request_error",
                "code": "invalid_api_key"
            }}))
        })
        .with_priority(2)
        .mount(server)
        .await;
}

async fn keys_sent(server: &MockServer, name: &str) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .trim_start_matches("Bearer ")
                .to_owned()
        })
        .collect()
}

fn assert_no_key(shown: &str) {
    for key in [KEY_1, KEY_2, KEY_3] {
        assert!(!shown.contains(key), "{key} in {shown}");
    }
}

#[tokio::test]
async fn a_401_fetches_the_rotated_key_once_and_retries_with_it() {
    let server = MockServer::start().await;
    accepts_only_key_2(&server).await;
    let source = Rotating::new(&[KEY_1, KEY_2]);
    let groq = groq(&server, &source, "mem:groq");

    let answer = groq.chat(&ask()).await.unwrap();
    assert_eq!(answer.message.tool_calls.len(), 1);
    assert_eq!(keys_sent(&server, "authorization").await, [KEY_1, KEY_2]);
    assert_eq!(source.fetches(), 2);

    // The new key is cached: the next call sends it at once, with no fetch.
    groq.chat(&ask()).await.unwrap();
    assert_eq!(
        keys_sent(&server, "authorization").await,
        [KEY_1, KEY_2, KEY_2]
    );
    assert_eq!(source.fetches(), 2);
}

#[tokio::test]
async fn a_second_401_is_the_auth_error_and_nothing_loops() {
    let server = MockServer::start().await;
    refuses_every_key(&server).await;
    let source = Rotating::new(&[KEY_1, KEY_2, KEY_3]);
    // Even under the Retry wrapper (an auth error is not retried).
    let groq = Retry::new(groq(&server, &source, "mem:groq"));

    let e = groq.chat(&ask()).await.unwrap_err();
    assert_eq!(
        e,
        LlmError::Auth {
            provider: "groq".into(),
            message: "Invalid API Key: [REDACTED]".into()
        }
    );
    assert_eq!(keys_sent(&server, "authorization").await, [KEY_1, KEY_2]);
    assert_eq!(source.fetches(), 2);
    assert_no_key(&e.to_string());
    assert_no_key(&format!("{e:?}"));
}

#[tokio::test]
async fn a_fixed_key_is_not_retried() {
    let server = MockServer::start().await;
    refuses_every_key(&server).await;
    let groq = OpenAiCompatible::new("groq", &server.uri(), "m", Auth::Bearer(Secret::new(KEY_1)));
    let e = groq.chat(&ask()).await.unwrap_err();
    assert_eq!(e.kind(), "auth");
    assert_eq!(keys_sent(&server, "authorization").await, [KEY_1]);
    assert_no_key(&e.to_string());
    let shown = format!("{groq:?}");
    assert!(shown.contains("SecretHandle(fixed:groq key)"), "{shown}");
    assert_no_key(&shown);

    // Nor is the default: the provider's variable read when it is built.
    let server = MockServer::start().await;
    refuses_every_key(&server).await;
    let mut cfg = ProviderConfig::new(ProviderKind::Groq);
    cfg.endpoint = Some(server.uri());
    let e = cfg
        .build_with(&|k| (k == "GROQ_API_KEY").then(|| KEY_1.to_owned()))
        .unwrap()
        .chat(&ask())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "auth");
    assert_eq!(keys_sent(&server, "authorization").await, [KEY_1]);
    assert_no_key(&format!("{e:?}"));
}

#[tokio::test]
async fn a_key_unchanged_at_its_source_is_not_sent_again() {
    let server = MockServer::start().await;
    refuses_every_key(&server).await;
    let source = Rotating::new(&[KEY_1]);
    let e = groq(&server, &source, "mem:groq")
        .chat(&ask())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "auth");
    assert_eq!(source.fetches(), 2, "fetched again after the 401");
    assert_eq!(keys_sent(&server, "authorization").await, [KEY_1]);
}

#[tokio::test]
async fn a_403_is_not_a_reason_to_fetch_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"error": {"message": "Organization has been restricted", "code": "organization_restricted"}}),
        ))
        .mount(&server)
        .await;
    let source = Rotating::new(&[KEY_1, KEY_2]);
    let e = groq(&server, &source, "mem:groq")
        .chat(&ask())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "auth");
    assert_eq!(source.fetches(), 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn azure_api_key_by_reference_is_refreshed_on_401() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt-4o/chat/completions"))
        .and(header("api-key", KEY_2))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("azure-openai-chat-completion-response.json")),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "code": "401",
            "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
        }})))
        .with_priority(2)
        .mount(&server)
        .await;
    let source = Rotating::new(&[KEY_1, KEY_2]);
    let mut cfg = ProviderConfig::new(ProviderKind::Azure);
    cfg.endpoint = Some(server.uri());
    cfg.deployment = Some("gpt-4o".into());
    cfg.api_version = Some("2024-10-21".into());
    cfg.api_key = Some("mem:prod/sre-agent#azure".into());
    let secrets = Secrets::new().with(Arc::clone(&source) as Arc<dyn SecretSource>);
    // A key from the environment too: the reference is what counts.
    let env = |k: &str| (k == "AZURE_OPENAI_API_KEY").then(|| KEY_3.to_owned());
    let azure = cfg.build_with_secrets(&secrets, &env).unwrap();
    let answer = azure.chat(&ask()).await.unwrap();
    assert_eq!(
        answer.message.content,
        "The capital of France is **Paris**."
    );
    assert_eq!(keys_sent(&server, "api-key").await, [KEY_1, KEY_2]);
    for r in server.received_requests().await.unwrap() {
        assert!(r.headers.get("authorization").is_none());
    }
}

#[tokio::test]
async fn a_source_that_fails_gives_a_typed_error_naming_the_reference() {
    let server = MockServer::start().await;
    refuses_every_key(&server).await;
    let source = Rotating::new(&[KEY_1]);
    let e = groq(&server, &source, "mem:denied#groq")
        .chat(&ask())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        LlmError::Auth {
            provider: "groq".into(),
            message: "could not get the credential: secret mem:denied#groq: access denied: permission denied".into()
        }
    );
    let e = groq(&server, &source, "mem:sealed")
        .chat(&ask())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "connect");
    assert!(e.is_retryable(), "a sealed Vault may be unsealed: {e}");
    assert!(e.to_string().contains("Vault is sealed"), "{e}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn references_are_checked_when_the_provider_is_built() {
    let mut cfg = ProviderConfig::new(ProviderKind::Groq);
    cfg.api_key = Some("vault:secret/data/sre#groq".into());
    let e = cfg.build_with(&|_| None).err().unwrap();
    assert!(matches!(e, Error::Secret { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(
            "provider config: field `api_key` for provider groq: secret reference \
             vault:…: no source for scheme \"vault\" (known: ;"
        ),
        "{e}"
    );
    cfg.api_key = Some("GROQ_API_KEY".into());
    let e = cfg.build_with(&|_| None).err().unwrap();
    assert!(e.to_string().contains("it has no scheme"), "{e}");

    // `env:` works without a registry, read through the given environment when built.
    let server = MockServer::start().await;
    refuses_every_key(&server).await;
    cfg.api_key = Some("env:SRE_GROQ_KEY".into());
    cfg.endpoint = Some(server.uri());
    let e = cfg.build_with(&|_| None).err().unwrap();
    assert_eq!(
        e.to_string(),
        "SRE_GROQ_KEY is not set: the config's api_key refers to env:SRE_GROQ_KEY"
    );
    let groq = cfg
        .build_with(&|k| (k == "SRE_GROQ_KEY").then(|| KEY_1.to_owned()))
        .unwrap();
    groq.chat(&ask()).await.unwrap_err();
    assert_eq!(keys_sent(&server, "authorization").await, [KEY_1]);

    let parsed: ProviderConfig = serde_json::from_value(
        json!({"provider": "groq", "api_key": "aws-sm:prod/sre-agent#groq"}),
    )
    .unwrap();
    assert_eq!(
        parsed.api_key.as_deref(),
        Some("aws-sm:prod/sre-agent#groq")
    );
    // An unset reference is not written out.
    let written = serde_json::to_value(ProviderConfig::new(ProviderKind::Groq)).unwrap();
    assert!(written.get("api_key").is_none(), "{written}");
}
