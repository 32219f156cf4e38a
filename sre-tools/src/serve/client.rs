//! [`ApprovalsClient`]: the approvals [`api`](super::api) from the other side, for
//! `sre-agent approvals` and chat integrations.
//!
//! Errors are typed by the server's answer ([`ClientError::NotFound`],
//! [`ClientError::AlreadyDecided`], [`ClientError::Expired`], …) and quote the server's own
//! `error` message, escaped for a terminal. The token goes only into the `Authorization` header,
//! marked sensitive; it is never in an error or in `Debug`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sre_tools::serve::api::ApiToken;
//! use sre_tools::serve::client::ApprovalsClient;
//! let client = ApprovalsClient::new(
//!     "http://sre-agent.sre.svc:8080",
//!     ApiToken::from_file("/var/run/secrets/sre-agent/api-token")?,
//! )?;
//! for approval in client.list().await? {
//!     println!("{} {}", approval.id, approval.summary);
//! }
//! client.decide("apv-0123456789abcdef01234567", true, "alice", None, None).await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value};
use sre_core::text::escape_untrusted;

use super::api::ApiToken;
use super::store::ApprovalView;

/// The most of a response body the client reads.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// The longest server message quoted in an error, in characters.
const MAX_MESSAGE: usize = 500;

/// A failed call to the approvals API. Never contains the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server URL cannot be used.
    #[error("bad approvals server URL: {0}")]
    InvalidServer(String),
    /// The approval id cannot be sent.
    #[error("bad approval id {0:?}: an id is not empty and not `.` or `..`")]
    InvalidId(String),
    /// The server could not be reached, or its answer could not be read.
    #[error("cannot reach the approvals API at {server}: {source}")]
    Transport {
        /// The server URL.
        server: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The token could not be had from its source.
    #[error("the API token: {0}")]
    Token(#[from] sre_core::secret::SecretError),
    /// 401: no or malformed credentials.
    #[error("the approvals API refused the request (401 unauthorized): {0}")]
    Unauthorized(String),
    /// 403: the token is wrong.
    #[error("the approvals API refused the token (403 forbidden): {0}")]
    Forbidden(String),
    /// 404: no such approval.
    #[error("{0} (404)")]
    NotFound(String),
    /// 409: the approval was decided already.
    #[error("{message} (409)")]
    AlreadyDecided {
        /// The server's message.
        message: String,
        /// The approval as it stands, when the server sent it.
        view: Option<Box<ApprovalView>>,
    },
    /// 409: the decision named another action than the one waiting.
    #[error("{0} (409)")]
    Conflict(String),
    /// 410: the approval expired before the decision.
    #[error("{message} (410)")]
    Expired {
        /// The server's message.
        message: String,
        /// The approval as it stands, when the server sent it.
        view: Option<Box<ApprovalView>>,
    },
    /// Any other refusal or failure (400, 413, 415, 5xx…).
    #[error("the approvals API answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A success whose body is not what the API sends.
    #[error("the approvals API sent an unexpected answer: {0}")]
    Malformed(String),
}

impl ClientError {
    /// The HTTP status the server answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized(_) => Some(401),
            Self::Forbidden(_) => Some(403),
            Self::NotFound(_) => Some(404),
            Self::AlreadyDecided { .. } | Self::Conflict(_) => Some(409),
            Self::Expired { .. } => Some(410),
            Self::Server { status, .. } => Some(*status),
            Self::InvalidServer(_)
            | Self::InvalidId(_)
            | Self::Transport { .. }
            | Self::Token(_)
            | Self::Malformed(_) => None,
        }
    }
}

/// A client of the approvals API of one `sre-agent serve`.
#[derive(Clone)]
pub struct ApprovalsClient {
    http: reqwest::Client,
    base: Url,
    token: ApiToken,
}

impl fmt::Debug for ApprovalsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApprovalsClient")
            .field("server", &self.base.as_str())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The error body every API refusal has.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    approval: Option<ApprovalView>,
}

#[derive(Deserialize)]
struct ListBody {
    approvals: Vec<ApprovalView>,
}

/// `server` checked as the base URL of the API: http or https, a host, no credentials, query or
/// fragment. A path is kept as a prefix (a server behind an ingress at `/sre-agent/`).
fn base_url(server: &str) -> Result<Url, ClientError> {
    let bad = |why: &str| ClientError::InvalidServer(why.to_owned());
    let url = Url::parse(server.trim()).map_err(|e| {
        ClientError::InvalidServer(format!(
            "{:?} is not a URL ({e}); expected e.g. http://sre-agent.sre.svc:8080",
            escape_untrusted(server)
        ))
    })?;
    // Checked before anything echoes the URL: it may hold a password.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "it carries credentials (user:password@); pass the API token with --token-file or SRE_AGENT_API_TOKEN instead",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::InvalidServer(format!(
            "{:?} has scheme {:?}; use http or https",
            escape_untrusted(url.as_str()),
            escape_untrusted(url.scheme())
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() {
        return Err(ClientError::InvalidServer(format!(
            "{:?} has a query string; give the server's base URL only",
            escape_untrusted(url.as_str())
        )));
    }
    if url.fragment().is_some() {
        return Err(ClientError::InvalidServer(format!(
            "{:?} has a fragment (#…); give the server's base URL only",
            escape_untrusted(url.as_str())
        )));
    }
    Ok(url)
}

/// A server message as an error quotes it: escaped and cut short.
fn quoted(message: &str) -> String {
    let cut: String = message.chars().take(MAX_MESSAGE).collect();
    escape_untrusted(&cut).into_owned()
}

impl ApprovalsClient {
    /// A client of the API at `server` (e.g. `http://sre-agent.sre.svc:8080`) that authenticates
    /// with `token`.
    ///
    /// # Errors
    /// [`ClientError::InvalidServer`] when `server` is not an http(s) URL with a host, or carries
    /// credentials, a query or a fragment.
    pub fn new(server: &str, token: ApiToken) -> Result<Self, ClientError> {
        let base = base_url(server)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            // A redirect would resend the decision somewhere else: follow none.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::InvalidServer(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { http, base, token })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        self.base.as_str()
    }

    /// `…/api/v1/approvals`, and `…/api/v1/approvals/{id}` with `id` as one escaped path
    /// segment (`../x` becomes `..%2Fx`: it cannot leave the collection).
    fn endpoint(&self, id: Option<&str>) -> Result<Url, ClientError> {
        if let Some(id) = id
            && matches!(id, "" | "." | "..")
        {
            return Err(ClientError::InvalidId(id.to_owned()));
        }
        let mut url = self.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| ClientError::InvalidServer("it cannot be a base URL".to_owned()))?;
            segments.pop_if_empty().extend(["api", "v1", "approvals"]);
            if let Some(id) = id {
                segments.push(id);
            }
        }
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<Vec<u8>, ClientError> {
        let transport = |source| ClientError::Transport {
            server: self.base.to_string(),
            source,
        };
        let token = self.token.expose().await?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(ClientError::Malformed(format!(
                    "the answer ({status}) is larger than {MAX_RESPONSE} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(refusal(status, &bytes))
        }
    }

    /// Every approval the server holds: pending, and decided but not resumed yet.
    ///
    /// # Errors
    /// A [`ClientError`] typed by the server's status.
    pub async fn list(&self) -> Result<Vec<ApprovalView>, ClientError> {
        let body = self.call(Method::GET, self.endpoint(None)?, None).await?;
        serde_json::from_slice::<ListBody>(&body)
            .map(|b| b.approvals)
            .map_err(|e| ClientError::Malformed(format!("the approvals list does not parse: {e}")))
    }

    /// The approval `id`.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] when there is none; other [`ClientError`]s by status.
    pub async fn get(&self, id: &str) -> Result<ApprovalView, ClientError> {
        let body = self
            .call(Method::GET, self.endpoint(Some(id))?, None)
            .await?;
        view(&body)
    }

    /// Approves (`approve`) or rejects the approval `id` as `by` (recorded as `api:<by>`), with
    /// an optional `reason` and, when given, only if it still waits for `action` (the
    /// fingerprint the approver reviewed).
    ///
    /// # Errors
    /// [`ClientError::AlreadyDecided`], [`ClientError::Expired`], [`ClientError::Conflict`] (the
    /// action changed), [`ClientError::NotFound`], and the others by status.
    pub async fn decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        reason: Option<&str>,
        action: Option<&str>,
    ) -> Result<ApprovalView, ClientError> {
        let mut body = Map::new();
        body.insert(
            "decision".into(),
            (if approve { "approve" } else { "reject" }).into(),
        );
        body.insert("by".into(), by.into());
        if let Some(reason) = reason {
            body.insert("reason".into(), reason.into());
        }
        if let Some(action) = action {
            body.insert("action".into(), action.into());
        }
        let body = self
            .call(
                Method::POST,
                self.endpoint(Some(id))?,
                Some(Value::Object(body)),
            )
            .await?;
        view(&body)
    }
}

fn view(body: &[u8]) -> Result<ApprovalView, ClientError> {
    serde_json::from_slice(body)
        .map_err(|e| ClientError::Malformed(format!("the approval does not parse: {e}")))
}

/// The typed error of a refusal with `status` and `body`.
fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    let (message, code, approval) = if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        (quoted(&e.error), e.code, e.approval.map(Box::new))
    } else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            quoted(text)
        };
        (message, None, None)
    };
    match status {
        StatusCode::UNAUTHORIZED => ClientError::Unauthorized(message),
        StatusCode::FORBIDDEN => ClientError::Forbidden(message),
        StatusCode::NOT_FOUND => ClientError::NotFound(message),
        StatusCode::CONFLICT
            if approval.is_some() || code.as_deref() == Some("already_decided") =>
        {
            ClientError::AlreadyDecided {
                message,
                view: approval,
            }
        }
        StatusCode::CONFLICT => ClientError::Conflict(message),
        StatusCode::GONE => ClientError::Expired {
            message,
            view: approval,
        },
        other => ClientError::Server {
            status: other.as_u16(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server: &str) -> ApprovalsClient {
        ApprovalsClient::new(server, ApiToken::from_string("0123456789abcdef").unwrap()).unwrap()
    }

    #[test]
    fn server_urls_are_checked() {
        for (server, needle) in [
            ("ftp://host", "use http or https"),
            ("http://user:hunter2@host", "carries credentials"),
            ("http://user@host", "carries credentials"),
            ("http://host/?a=1", "query string"),
            ("http://host/#x", "fragment"),
            ("not a url", "is not a URL"),
            ("file:///etc/passwd", "use http or https"),
        ] {
            let e =
                ApprovalsClient::new(server, ApiToken::from_string("0123456789abcdef").unwrap())
                    .unwrap_err()
                    .to_string();
            assert!(e.contains(needle), "{server}: {e}");
            assert!(!e.contains("hunter2"), "the password leaked: {e}");
        }
    }

    #[test]
    fn ids_are_one_escaped_segment() {
        let c = client("http://127.0.0.1:8080");
        let at = |id: &str| c.endpoint(Some(id)).map(|u| u.to_string());
        assert_eq!(
            at("apv-1").unwrap(),
            "http://127.0.0.1:8080/api/v1/approvals/apv-1"
        );
        assert_eq!(
            at("../x").unwrap(),
            "http://127.0.0.1:8080/api/v1/approvals/..%2Fx"
        );
        assert_eq!(
            at("a?b#c d").unwrap(),
            "http://127.0.0.1:8080/api/v1/approvals/a%3Fb%23c%20d"
        );
        assert_eq!(
            at("%2e%2e").unwrap(),
            "http://127.0.0.1:8080/api/v1/approvals/%252e%252e"
        );
        for bad in ["", ".", ".."] {
            assert!(matches!(
                c.endpoint(Some(bad)),
                Err(ClientError::InvalidId(_))
            ));
        }
        let prefixed = client("https://example.test/sre-agent/");
        assert_eq!(
            prefixed.endpoint(None).unwrap().as_str(),
            "https://example.test/sre-agent/api/v1/approvals"
        );
    }

    #[test]
    fn refusals_are_typed_and_escaped() {
        let e = refusal(
            StatusCode::NOT_FOUND,
            br#"{"error":"no approval \"x\u001b[2J\"","status":404,"code":"not_found"}"#,
        );
        assert!(
            matches!(&e, ClientError::NotFound(m) if m == "no approval \"x\\e[2J\""),
            "{e:?}"
        );
        let e = refusal(
            StatusCode::CONFLICT,
            br#"{"error":"other","code":"other_action"}"#,
        );
        assert!(matches!(e, ClientError::Conflict(_)));
        let e = refusal(
            StatusCode::CONFLICT,
            br#"{"error":"done","code":"already_decided"}"#,
        );
        assert!(matches!(e, ClientError::AlreadyDecided { .. }));
        let e = refusal(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(e.to_string(), "the approvals API answered 502: Bad Gateway");
        assert_eq!(e.status(), Some(502));
    }

    #[test]
    fn debug_hides_the_token() {
        let c = client("http://127.0.0.1:1");
        let shown = format!("{c:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
