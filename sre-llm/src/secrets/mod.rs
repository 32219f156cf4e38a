//! Secret sources: the [`SecretSource`] implementations behind the references of
//! [`sre_core::secret`] — the environment ([`EnvSource`], `env:NAME`), mounted files
//! ([`FileSource`], `file:/abs/path`), Vault ([`VaultSource`], `vault:mount/data/path#field`)
//! and AWS Secrets Manager ([`SecretsManagerSource`], `aws-sm:name-or-arn#key`) — and
//! [`standard_sources`], which registers the ones the environment configures.
//!
//! Every source maps its failures to the [`SecretError`] kinds (`NotFound`, `Denied`,
//! `Unavailable`, `Invalid`), names the reference and what the service said, and never puts a value,
//! a Vault token or an AWS secret key in an error, a log line or `Debug`.
//!
//! A `#key` picks one string field of a JSON object: the field of a Vault secret, the key of a
//! Secrets Manager JSON secret, or the key of a JSON object held by an environment variable or a
//! file (`file:/var/run/secrets/sre/keys.json#groq`). A missing key is `NotFound` naming the key and
//! listing the key *names* there are, never their values.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // env: and file: always; vault: because VAULT_ADDR is set; no aws-sm: (no AWS credentials given).
//! let secrets = sre_llm::secrets::standard_sources(&|name| std::env::var(name).ok(), None)?;
//! let groq = secrets.handle("vault:secret/data/sre#groq")?;
//! let key = groq.get().await?; // fetched, cached, refreshed when its time is up
//! # let _ = key; Ok(()) }
//! ```
//!
//! # Variables read by [`standard_sources`]
//!
//! | variable | meaning |
//! |---|---|
//! | `VAULT_ADDR` | Vault's address (`https://vault.vault:8200`); without it no `vault:` source is registered |
//! | `VAULT_TOKEN` | a Vault token (token auth); looked up once (`lookup-self`) to learn its lease, renewed before it ends when renewable |
//! | `VAULT_TOKEN_FILE` | a file holding the token, read again when Vault refuses it (a Vault Agent sink) — sre-agent's own variable |
//! | `VAULT_K8S_ROLE` | Kubernetes auth: the Vault role to log in as with the pod's service-account token — sre-agent's own variable |
//! | `VAULT_K8S_MOUNT` | the Kubernetes auth mount (default `kubernetes`) — sre-agent's own variable |
//! | `VAULT_K8S_TOKEN_PATH` | the service-account token file (default `/var/run/secrets/kubernetes.io/serviceaccount/token`) — sre-agent's own variable |
//! | `VAULT_NAMESPACE` | Vault Enterprise namespace, sent as `X-Vault-Namespace` |
//! | `VAULT_CACERT` | a PEM file of CA certificates trusted for Vault, in addition to the system's |
//! | `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL` | a Secrets Manager endpoint instead of `https://secretsmanager.{region}.amazonaws.com` (the service-specific one wins), as the AWS SDKs do |
//! | `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` | `true` ignores the two above, as the AWS SDKs do |
//!
//! Exactly one of `VAULT_TOKEN`, `VAULT_TOKEN_FILE` and `VAULT_K8S_ROLE` must be set with
//! `VAULT_ADDR`. `VAULT_CAPATH`, `VAULT_CLIENT_CERT` and `VAULT_SKIP_VERIFY` are not supported:
//! certificates are always verified.

mod aws_sm;
mod env_file;
mod vault;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
pub use sre_core::secret::{
    Fetched, Secret, SecretError, SecretHandle, SecretRef, SecretSource, Secrets,
};

pub use aws_sm::{SecretsManagerRetry, SecretsManagerSource};
pub use env_file::{EnvSource, FileSource, MAX_FILE_BYTES};
pub use vault::{
    DEFAULT_KUBERNETES_MOUNT, SERVICE_ACCOUNT_TOKEN_PATH, VaultAuth, VaultConfig, VaultSource,
};

use crate::error::{Error, Result};

/// Registers the standard sources: `env:` and `file:` always, `vault:` when `VAULT_ADDR` is set
/// (configured by [`VaultConfig::from_env`]), and `aws-sm:` when `aws` gives a credentials
/// provider and a region (endpoint from [`SecretsManagerSource::from_env`]). Configuration is read
/// through `env` (pass `&|n| std::env::var(n).ok()`), so tests need not touch the process
/// environment; `env:` references themselves always read the process environment. The variables
/// are listed in the [module documentation](self).
///
/// # Errors
/// [`Error::MissingVariable`] when `VAULT_ADDR` is set without a way to authenticate;
/// [`Error::Invalid`] for a malformed setting (two auth methods at once, an unreadable or
/// malformed `VAULT_CACERT`, an address that is not `http(s)://`).
pub fn standard_sources(
    env: &dyn Fn(&str) -> Option<String>,
    aws: Option<(SharedCredentialsProvider, String)>,
) -> Result<Secrets> {
    let mut secrets = Secrets::new()
        .with(Arc::new(EnvSource::new()))
        .with(Arc::new(FileSource::new()));
    if let Some(config) = VaultConfig::from_env(env)? {
        secrets = secrets.with(Arc::new(VaultSource::new(config)?));
    }
    if let Some((credentials, region)) = aws {
        secrets = secrets.with(Arc::new(SecretsManagerSource::from_env(
            &region,
            credentials,
            env,
        )?));
    }
    Ok(secrets)
}

/// How many key names an error lists at most.
const NAMES_LISTED: usize = 20;

/// The key names of `object`, sorted, quoted and comma-separated (at most [`NAMES_LISTED`]).
fn key_names(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "none".to_owned();
    }
    let mut names: Vec<&String> = object.keys().collect();
    names.sort();
    let mut listed: Vec<String> = names
        .iter()
        .take(NAMES_LISTED)
        .map(|n| format!("{:?}", n.chars().take(100).collect::<String>()))
        .collect();
    if names.len() > NAMES_LISTED {
        listed.push(format!("and {} more", names.len() - NAMES_LISTED));
    }
    listed.join(", ")
}

/// What kind of JSON value `v` is, for an error.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The string field `key` of `object`; `what` names the object in errors ("the Vault secret").
fn field(
    reference: &SecretRef,
    object: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Secret, SecretError> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(Secret::new(s.clone())),
        Some(other) => Err(SecretError::invalid(
            reference,
            format!(
                "key {key:?} of {what} holds {}, not a string",
                json_kind(other)
            ),
        )),
        None => Err(SecretError::not_found(
            reference,
            format!(
                "{what} has no key {key:?} (its keys: {})",
                key_names(object)
            ),
        )),
    }
}

/// `text` itself, or — when the reference has a `#key` — that key's string value in the JSON
/// object `text` holds. `what` names the value in errors ("environment variable GROQ").
fn pick(reference: &SecretRef, text: String, what: &str) -> Result<Secret, SecretError> {
    let Some(key) = reference.key() else {
        return Ok(Secret::new(text));
    };
    // Never quote serde's message: for some inputs it repeats part of the value.
    let parsed: Value = serde_json::from_str(&text).map_err(|e| {
        SecretError::invalid(
            reference,
            format!(
                "{what} is not JSON (line {}, column {}), so key {key:?} cannot be read from it",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(object) = parsed else {
        return Err(SecretError::invalid(
            reference,
            format!(
                "{what} holds {}, not a JSON object, so key {key:?} cannot be read from it",
                json_kind(&parsed)
            ),
        ));
    };
    field(reference, &object, key, what)
}

/// Replaces every occurrence of each secret (4 characters or more) in `text` with `[REDACTED]`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if secret.len() >= 4 && out.contains(secret) {
            out = out.replace(secret, "[REDACTED]");
        }
    }
    out
}

/// `e` and its sources, `: `-separated (reqwest's own message leaves out "connection refused").
fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// A reqwest client with rustls (ring), the request timeout and extra trusted CA certificates.
fn client(
    timeout: Duration,
    roots: Vec<reqwest::Certificate>,
) -> Result<reqwest::Client, reqwest::Error> {
    crate::http::client_builder()
        .timeout(timeout)
        .tls_certs_merge(roots)
        .build()
}

/// The largest response a secret source reads: 1 MiB (a secret is at most 64 KiB in Secrets
/// Manager, and far less in Vault).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A response: status, headers and body (at most [`MAX_RESPONSE_BYTES`]).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Why a request got no answer.
enum Transport {
    /// Connection, TLS or timeout failure (retryable), with its cause chain.
    Failed(String),
    /// The body passed [`MAX_RESPONSE_BYTES`].
    TooLarge,
}

/// Sends `request` and reads the answer, at most [`MAX_RESPONSE_BYTES`] of body.
async fn send(request: reqwest::RequestBuilder) -> Result<Answer, Transport> {
    let mut response = request
        .send()
        .await
        .map_err(|e| Transport::Failed(error_chain(&e)))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Transport::Failed(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Transport::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// `SecretError`s are `Send + Sync`, and so are the sources.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EnvSource>();
    assert_send_sync::<FileSource>();
    assert_send_sync::<VaultSource>();
    assert_send_sync::<SecretsManagerSource>();
};

/// A construction error about a setting.
fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> SecretRef {
        SecretRef::parse(text).unwrap()
    }

    #[test]
    fn pick_reads_a_key_and_names_only_key_names() {
        let text = r#"{"groq": "gsk_one", "azure": "az_two", "n": 5}"#.to_owned();
        assert_eq!(
            pick(&r("env:X#groq"), text.clone(), "x").unwrap().expose(),
            "gsk_one"
        );
        assert_eq!(pick(&r("env:X"), text.clone(), "x").unwrap().expose(), text);
        let err = pick(&r("env:X#openai"), text.clone(), "x").unwrap_err();
        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains(r#"its keys: "azure", "groq", "n""#),
            "{shown}"
        );
        assert!(
            !shown.contains("gsk_one") && !shown.contains("az_two"),
            "{shown}"
        );
        let err = pick(&r("env:X#n"), text, "x").unwrap_err();
        assert!(err.to_string().contains("holds a number"), "{err}");
    }

    #[test]
    fn pick_on_text_that_is_not_an_object_never_quotes_it() {
        for text in [
            "gsk_plain_value",
            "[\"gsk_plain_value\"]",
            "{\"a\": gsk_plain_value}",
        ] {
            let err = pick(&r("file:/x#k"), text.to_owned(), "the file").unwrap_err();
            assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("gsk_plain_value"), "{shown}");
        }
    }

    #[test]
    fn long_key_lists_are_cut() {
        let object: Map<String, Value> =
            (0..30).map(|i| (format!("k{i:02}"), Value::Null)).collect();
        let names = key_names(&object);
        assert!(names.starts_with("\"k00\", \"k01\""), "{names}");
        assert!(names.ends_with("and 10 more"), "{names}");
    }
}
