//! Microsoft Entra ID access tokens for Azure OpenAI, as [`SecretSource`]s: a [`SecretHandle`]
//! made by [`token_handle`] caches the token and fetches a new one before it expires (at 80% of
//! its `expires_in`), or at once after a 401 from Azure OpenAI.
//!
//! - [`WorkloadIdentity`] (AKS workload identity, or any federated credential): the
//!   Kubernetes-projected service account token in `AZURE_FEDERATED_TOKEN_FILE` is exchanged at
//!   `{AZURE_AUTHORITY_HOST}{AZURE_TENANT_ID}/oauth2/v2.0/token` with the OAuth 2.0 client
//!   credentials grant and a JWT client assertion. The file is read again for every token: the
//!   kubelet rotates it.
//! - [`ManagedIdentity`]: the Azure Instance Metadata Service (`169.254.169.254`, VMs, VM scale
//!   sets, AKS node identities) or, when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, the
//!   App Service / Functions / Container Apps identity endpoint. Transient IMDS answers (404 while
//!   it updates, 410, 429, 5xx) are retried a bounded number of times.
//!
//! Errors quote Entra's own `error` and `error_description` (the `AADSTS…` code and its text),
//! never the token, the client assertion or the `X-IDENTITY-HEADER` value.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sre_llm::entra::{self, WorkloadIdentity};
//! use sre_llm::{Auth, OpenAiCompatible};
//!
//! let identity = WorkloadIdentity::new(
//!     "00000000-0000-0000-0000-000000000001", // AZURE_TENANT_ID
//!     "00000000-0000-0000-0000-000000000002", // AZURE_CLIENT_ID
//!     "/var/run/secrets/azure/tokens/azure-identity-token",
//! );
//! let token = entra::token_handle(identity);
//! let azure = OpenAiCompatible::new(
//!     "azure",
//!     "https://my-resource.openai.azure.com/openai/v1",
//!     "gpt-4o",
//!     Auth::BearerRef(token),
//! );
//! # let _ = azure; Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use sre_core::secret::{Fetched, Secret, SecretError, SecretHandle, SecretRef, SecretSource};

use crate::http;

/// The scheme of the references Entra sources serve: `entra:<scope>`.
pub const SCHEME: &str = "entra";

/// The OAuth scope of Azure OpenAI (Azure AI services).
pub const COGNITIVE_SERVICES_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// The public-cloud authority host (`AZURE_AUTHORITY_HOST` overrides it, e.g. for sovereign
/// clouds).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";

/// The Azure Instance Metadata Service's token endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// The IMDS token API version.
const IMDS_API_VERSION: &str = "2018-02-01";

/// The App Service / Functions identity endpoint's API version.
const APP_SERVICE_API_VERSION: &str = "2019-08-01";

/// The client assertion type of a federated (JWT) credential.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a token is used when the endpoint states no lifetime.
const UNSTATED_LIFETIME: Duration = Duration::from_secs(300);

/// The longest a handle keeps a token, whatever its stated lifetime.
const MAX_KEEP: Duration = Duration::from_secs(24 * 3600);

/// Token responses are small; anything larger is not a token endpoint.
const MAX_TOKEN_RESPONSE_BYTES: u64 = 256 * 1024;

/// The request timeout of token requests.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// `application/x-www-form-urlencoded`: everything but `A-Za-z0-9*-._` is percent-encoded.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// A handle for an Azure OpenAI token (scope [`COGNITIVE_SERVICES_SCOPE`]) from `source`: fetched
/// on first use, refreshed before it expires, fetched again after
/// [`invalidate`](SecretHandle::invalidate).
///
/// # Panics
/// Never: the scope is a constant that makes a valid reference.
pub fn token_handle(source: impl SecretSource + 'static) -> SecretHandle {
    #[expect(
        clippy::expect_used,
        reason = "the constant scope is a valid reference path"
    )]
    token_handle_for(Arc::new(source), COGNITIVE_SERVICES_SCOPE)
        .expect("the Azure OpenAI scope makes a valid reference")
}

/// A handle for a token of `scope` (e.g. `https://vault.azure.net/.default`) from `source`.
///
/// # Errors
/// [`SecretError::BadReference`] when `scope` is empty or holds control characters.
pub fn token_handle_for(
    source: Arc<dyn SecretSource>,
    scope: &str,
) -> Result<SecretHandle, SecretError> {
    let reference = SecretRef::parse(&format!("{SCHEME}:{scope}"))?;
    Ok(SecretHandle::new(reference, source, MAX_KEEP))
}

/// The resource (v1 style) of a scope: `https://cognitiveservices.azure.com/.default` →
/// `https://cognitiveservices.azure.com`.
fn resource_of(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, FORM),
                utf8_percent_encode(v, FORM)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A number of seconds sent as a JSON number or, as IMDS and App Service do, a string.
fn seconds_field(v: &Value, name: &str) -> Option<u64> {
    match v.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Text from a token endpoint quoted in an error: whitespace runs collapsed, `hide` scrubbed, at
/// most 400 characters.
fn quoted(text: &str, hide: &[&str]) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    http::scrub(&text, hide).chars().take(400).collect()
}

/// Entra's error (`{"error": "invalid_client", "error_description": "AADSTS700016: …"}`), or
/// the body itself when it is not that shape.
fn entra_error(body: &[u8], hide: &[&str]) -> String {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (field("error"), field("error_description")) {
        (Some(code), Some(description)) => quoted(&format!("{code}: {description}"), hide),
        (Some(code), None) => quoted(&code, hide),
        (None, Some(description)) => quoted(&description, hide),
        (None, None) if body.is_empty() => "(empty body)".to_owned(),
        (None, None) => quoted(&String::from_utf8_lossy(body), hide),
    }
}

/// Reads a token answer: `access_token`, its lifetime from `expires_in` (a number, or a string
/// on IMDS) or else `expires_on` (epoch seconds, as App Service sends), and `token_type` Bearer.
fn token_from(reference: &SecretRef, what: &str, body: &[u8]) -> Result<Fetched, SecretError> {
    let invalid = |detail: String| SecretError::invalid(reference, format!("{what}: {detail}"));
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the token response is not JSON ({e})")))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| invalid("the token response has no access_token".to_owned()))?;
    if let Some(kind) = v.get("token_type").and_then(Value::as_str)
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(invalid(format!(
            "the token type is {:?}, not Bearer",
            quoted(kind, &[token])
        )));
    }
    let lifetime = seconds_field(&v, "expires_in")
        .map(Duration::from_secs)
        .or_else(|| {
            let on = seconds_field(&v, "expires_on")?;
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
            Some(Duration::from_secs(on.saturating_sub(now)))
        })
        .unwrap_or(UNSTATED_LIFETIME);
    Ok(Fetched::new(Secret::new(token)).valid_for(lifetime))
}

/// Maps a failed token request (transport) to [`SecretError::Unavailable`].
fn unreachable(
    reference: &SecretRef,
    what: &str,
    url: &str,
    e: &sre_core::LlmError,
) -> SecretError {
    let cause = match e {
        sre_core::LlmError::Connect { message, .. } => message.clone(),
        other => other.to_string(),
    };
    SecretError::unavailable(reference, format!("{what}: could not reach {url}: {cause}"))
}

// ---- workload identity ----------------------------------------------------------------------

/// Entra tokens for a federated credential (AKS workload identity): the service account token in
/// a file, exchanged with the client credentials grant. Serves `entra:<scope>` references.
#[derive(Debug, Clone)]
pub struct WorkloadIdentity {
    authority_host: String,
    tenant_id: String,
    client_id: String,
    token_file: PathBuf,
    http: reqwest::Client,
}

impl WorkloadIdentity {
    /// An identity for application `client_id` in `tenant_id`, asserting with the token in
    /// `token_file`, at the public-cloud authority host.
    pub fn new(tenant_id: &str, client_id: &str, token_file: impl AsRef<Path>) -> Self {
        Self {
            authority_host: DEFAULT_AUTHORITY_HOST.to_owned(),
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            token_file: token_file.as_ref().to_path_buf(),
            http: http::client(Some(TOKEN_TIMEOUT)),
        }
    }

    /// The identity the AKS workload identity webhook describes in the environment:
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and, if set,
    /// `AZURE_AUTHORITY_HOST`. `None` unless all three required variables are set.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let identity = Self::new(
            &var("AZURE_TENANT_ID")?,
            &var("AZURE_CLIENT_ID")?,
            var("AZURE_FEDERATED_TOKEN_FILE")?,
        );
        Some(match var("AZURE_AUTHORITY_HOST") {
            Some(host) => identity.authority_host(&host),
            None => identity,
        })
    }

    /// The authority host (default [`DEFAULT_AUTHORITY_HOST`]; a loopback server in tests).
    #[must_use]
    pub fn authority_host(mut self, host: &str) -> Self {
        let host = host.trim();
        self.authority_host = if host.ends_with('/') {
            host.to_owned()
        } else {
            format!("{host}/")
        };
        self
    }

    /// The token endpoint: `{authority}{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}{}/oauth2/v2.0/token",
            self.authority_host,
            utf8_percent_encode(&self.tenant_id, FORM)
        )
    }

    fn assertion(&self, reference: &SecretRef) -> Result<String, SecretError> {
        let path = self.token_file.display();
        let text = std::fs::read_to_string(&self.token_file).map_err(|e| {
            let detail = format!("workload identity: cannot read the federated token file {path} (AZURE_FEDERATED_TOKEN_FILE): {e}");
            match e.kind() {
                std::io::ErrorKind::NotFound => SecretError::not_found(reference, detail),
                std::io::ErrorKind::PermissionDenied => SecretError::denied(reference, detail),
                _ => SecretError::unavailable(reference, detail),
            }
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::invalid(
                reference,
                format!("workload identity: the federated token file {path} is empty"),
            ));
        }
        Ok(text.to_owned())
    }
}

#[async_trait]
impl SecretSource for WorkloadIdentity {
    fn scheme(&self) -> &'static str {
        SCHEME
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        const WHAT: &str = "workload identity";
        let assertion = self.assertion(reference)?;
        let url = self.token_url();
        let body = form_body(&[
            ("client_id", &self.client_id),
            ("scope", reference.path()),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ]);
        let req = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body);
        let answer = http::receive("entra", req, Some(TOKEN_TIMEOUT), MAX_TOKEN_RESPONSE_BYTES)
            .await
            .map_err(|e| {
                unreachable(reference, WHAT, &url, &http::scrub_error(e, &[&assertion]))
            })?;
        if answer.is_success() {
            return token_from(reference, WHAT, &answer.body);
        }
        let detail = format!(
            "{WHAT}: the token request to {url} failed (HTTP {}): {}",
            answer.status,
            entra_error(&answer.body, &[&assertion])
        );
        Err(match answer.status {
            429 | 500..=599 => SecretError::unavailable(reference, detail),
            _ => SecretError::denied(reference, detail),
        })
    }
}

// ---- managed identity -----------------------------------------------------------------------

#[derive(Clone)]
enum Endpoint {
    Imds(String),
    AppService { url: String, header: Secret },
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Imds(url) => write!(f, "Imds({url})"),
            Self::AppService { url, .. } => {
                write!(f, "AppService({url}, X-IDENTITY-HEADER: [REDACTED])")
            }
        }
    }
}

/// Entra tokens for the managed identity of the machine, VM scale set, node or App Service the
/// agent runs on. Serves `entra:<scope>` references (the scope's resource is asked for).
#[derive(Debug, Clone)]
pub struct ManagedIdentity {
    endpoint: Endpoint,
    client_id: Option<String>,
    max_retries: u32,
    retry_delay: Duration,
    http: reqwest::Client,
}

impl ManagedIdentity {
    /// The system-assigned identity through the Instance Metadata Service ([`IMDS_ENDPOINT`]).
    pub fn imds() -> Self {
        Self {
            endpoint: Endpoint::Imds(IMDS_ENDPOINT.to_owned()),
            client_id: None,
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            http: Self::client(),
        }
    }

    /// The App Service / Functions identity endpoint (`IDENTITY_ENDPOINT`), authenticated with
    /// `X-IDENTITY-HEADER: <IDENTITY_HEADER>`.
    pub fn app_service(endpoint: &str, identity_header: Secret) -> Self {
        Self {
            endpoint: Endpoint::AppService {
                url: endpoint.to_owned(),
                header: identity_header,
            },
            ..Self::imds()
        }
    }

    /// From the environment: App Service when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set,
    /// else IMDS (at `AZURE_POD_IDENTITY_AUTHORITY_HOST` if set, as the Azure SDKs honour); a
    /// user-assigned identity when `AZURE_CLIENT_ID` is set.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let identity = match (var("IDENTITY_ENDPOINT"), var("IDENTITY_HEADER")) {
            (Some(url), Some(header)) => Self::app_service(&url, Secret::new(header)),
            _ => match var("AZURE_POD_IDENTITY_AUTHORITY_HOST") {
                Some(host) => Self::imds().imds_endpoint(&format!(
                    "{}/metadata/identity/oauth2/token",
                    host.trim_end_matches('/')
                )),
                None => Self::imds(),
            },
        };
        match var("AZURE_CLIENT_ID") {
            Some(id) => identity.client_id(&id),
            None => identity,
        }
    }

    /// A user-assigned identity, by its client id (`client_id=` on the request).
    #[must_use]
    pub fn client_id(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }

    /// The IMDS token endpoint's full URL (default [`IMDS_ENDPOINT`]; a loopback server in tests).
    /// Turns an App Service identity into an IMDS one.
    #[must_use]
    pub fn imds_endpoint(mut self, url: &str) -> Self {
        self.endpoint = Endpoint::Imds(url.to_owned());
        self
    }

    /// How many times a transient answer (IMDS 404 while updating, 410, 429, 5xx, a connection
    /// failure) is retried (default 3), and the first wait, doubled each time (default 1 s).
    #[must_use]
    pub fn retries(mut self, max_retries: u32, first_delay: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_delay = first_delay;
        self
    }

    fn client() -> reqwest::Client {
        // The metadata endpoints are link-local or loopback: never through a proxy.
        crate::http::client_builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(TOKEN_TIMEOUT)
            .build()
            .unwrap_or_default()
    }

    fn request(&self, resource: &str) -> (String, &'static str, reqwest::RequestBuilder) {
        let mut query = vec![("resource", resource)];
        if let Some(id) = &self.client_id {
            query.push(("client_id", id));
        }
        match &self.endpoint {
            Endpoint::Imds(url) => {
                query.insert(0, ("api-version", IMDS_API_VERSION));
                let req = self.http.get(url).query(&query).header("Metadata", "true");
                (url.clone(), "managed identity (IMDS)", req)
            }
            Endpoint::AppService { url, header } => {
                query.insert(0, ("api-version", APP_SERVICE_API_VERSION));
                let req = self
                    .http
                    .get(url)
                    .query(&query)
                    .header("X-IDENTITY-HEADER", header.expose());
                (url.clone(), "managed identity (App Service)", req)
            }
        }
    }

    fn transient(&self, status: u16) -> bool {
        matches!(status, 410 | 429 | 500..=599)
            || (status == 404 && matches!(self.endpoint, Endpoint::Imds(_)))
    }

    fn hidden(&self) -> Vec<&str> {
        match &self.endpoint {
            Endpoint::AppService { header, .. } => vec![header.expose()],
            Endpoint::Imds(_) => Vec::new(),
        }
    }
}

#[async_trait]
impl SecretSource for ManagedIdentity {
    fn scheme(&self) -> &'static str {
        SCHEME
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let resource = resource_of(reference.path());
        let hide = self.hidden();
        let mut delay = self.retry_delay;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (url, what, req) = self.request(resource);
            let retry_left = attempt <= self.max_retries;
            let answer = match http::receive(
                "entra",
                req,
                Some(TOKEN_TIMEOUT),
                MAX_TOKEN_RESPONSE_BYTES,
            )
            .await
            {
                Ok(answer) => answer,
                Err(e) if !retry_left => {
                    return Err(unreachable(
                        reference,
                        what,
                        &url,
                        &http::scrub_error(e, &hide),
                    ));
                }
                Err(e) => {
                    tracing::debug!(%url, attempt, error = %http::scrub_error(e, &hide), "managed identity endpoint unreachable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    continue;
                }
            };
            if answer.is_success() {
                return token_from(reference, what, &answer.body);
            }
            if self.transient(answer.status) && retry_left {
                tracing::debug!(%url, attempt, status = answer.status, "managed identity endpoint busy; retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
                continue;
            }
            let tries = if attempt > 1 {
                format!(" after {attempt} attempts")
            } else {
                String::new()
            };
            let mut detail = format!(
                "{what}: the token request to {url} failed (HTTP {}){tries}: {}",
                answer.status,
                entra_error(&answer.body, &hide)
            );
            if answer.status == 400 && self.client_id.is_none() {
                detail.push_str(" (is a managed identity assigned? for a user-assigned identity set AZURE_CLIENT_ID)");
            }
            return Err(if self.transient(answer.status) {
                SecretError::unavailable(reference, detail)
            } else {
                SecretError::denied(reference, detail)
            });
        }
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<WorkloadIdentity>();
    send_sync::<ManagedIdentity>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_follows_the_urlencoded_rules() {
        assert_eq!(
            form_body(&[("scope", COGNITIVE_SERVICES_SCOPE), ("a b", "x+y=z&")]),
            "scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default&a%20b=x%2By%3Dz%26"
        );
    }

    #[test]
    fn lifetimes_come_as_numbers_strings_or_an_expiry_time() {
        let r = SecretRef::parse("entra:s").unwrap();
        let f = token_from(&r, "t", br#"{"access_token":"a","expires_in":3599}"#).unwrap();
        assert_eq!(f.valid_for, Some(Duration::from_secs(3599)));
        let f = token_from(&r, "t", br#"{"access_token":"a","expires_in":"86399"}"#).unwrap();
        assert_eq!(f.valid_for, Some(Duration::from_secs(86399)));
        let soon = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 100_000;
        let body = format!(r#"{{"access_token":"a","expires_on":"{soon}"}}"#);
        let f = token_from(&r, "t", body.as_bytes()).unwrap();
        let life = f.valid_for.unwrap();
        assert!(life <= Duration::from_secs(100_000) && life > Duration::from_secs(90_000));
        let e = token_from(
            &r,
            "t",
            br#"{"access_token":"tok-secret","token_type":"mac"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not Bearer") && !e.contains("tok-secret"), "{e}");
        let e = token_from(&r, "t", br#"{"error":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no access_token"), "{e}");
    }

    #[test]
    fn entra_errors_quote_code_and_description_without_the_assertion() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700016: bad\r\nTrace ID: t eyJassertion"}"#;
        assert_eq!(
            entra_error(body, &["eyJassertion"]),
            "invalid_client: AADSTS700016: bad Trace ID: t [REDACTED]"
        );
        assert_eq!(entra_error(b"", &[]), "(empty body)");
    }

    #[test]
    fn the_scope_maps_to_its_resource() {
        assert_eq!(
            resource_of(COGNITIVE_SERVICES_SCOPE),
            "https://cognitiveservices.azure.com"
        );
        let h = token_handle(ManagedIdentity::imds());
        assert_eq!(
            format!("{h:?}"),
            "SecretHandle(entra:https://cognitiveservices.azure.com/.default)"
        );
        assert!(h.refreshable());
    }
}
