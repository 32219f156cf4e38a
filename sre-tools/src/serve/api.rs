//! The approvals API: a thin, strict HTTP face on the [`RunStore`], plus `serve`'s health and
//! metrics endpoints.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | `200 {"status":"ok"}` while the process runs |
//! | `GET /readyz` | `200`/`503` `{"ready", "leader", "elects"}` from [`Health`] |
//! | `GET /metrics` | the [`Metrics`] in the `OpenMetrics` text format |
//! | `GET /api/v1/approvals[?state=pending]` | `{"approvals": [ApprovalView…]}`: pending and decided-but-not-resumed |
//! | `GET /api/v1/approvals/{id}` | one [`ApprovalView`] |
//! | `POST /api/v1/approvals/{id}` | `{"decision":"approve"\|"reject","by","reason","action"}` → the decided view |
//!
//! Every `/api` route needs `Authorization: Bearer <token>` ([`ApiToken`]): missing or malformed
//! is `401` with `WWW-Authenticate: Bearer`, a wrong token `403`, and a server started without a
//! token answers `503` (the API is off). Every error is a JSON body
//! `{"error": "…", "status": <code>, "code": "<kind>"}`; a decision on an approval that was
//! already decided (`409`) or expired (`410`) also carries the `"approval"` as it stands. The
//! decision is recorded as made by `api:<by>`.
//!
//! ```no_run
//! # async fn demo(state: sre_tools::serve::api::ApiState) -> std::io::Result<()> {
//! use sre_tools::serve::api;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! api::serve(listener, api::router(state), std::future::pending()).await
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use sre_core::secret::SecretError;
use sre_core::text::{describe_char, escape_untrusted, is_invisible};
use sre_core::{Answer, Decision};
use subtle::ConstantTimeEq as _;
use tokio::sync::Notify;

use super::Health;
use super::metrics::Metrics;
use super::secret::{API_TOKEN, ServiceSecret};
use super::store::{ApprovalState, ApprovalView, DecideError, RunStore};

/// The largest request body the API reads.
pub const MAX_BODY: usize = 16 * 1024;
/// The longest `by` accepted, in bytes.
pub const MAX_BY: usize = 128;
/// The longest `reason` accepted, in bytes.
pub const MAX_REASON: usize = 1024;
/// The longest `action` accepted, in bytes (a fingerprint is `sha256:` and 64 hex digits).
pub const MAX_ACTION: usize = 128;
/// The longest approval id looked up, in bytes (ids are `apv-` and 24 hex digits).
pub const MAX_ID: usize = 128;
/// The reason recorded for a rejection that gave none.
pub const DEFAULT_REJECT_REASON: &str = "rejected through the approvals API";
/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The bearer token of the approvals API: a secret, by reference (a [`ServiceSecret`] of kind
/// [`API_TOKEN`]). It never shows in `Debug`, in errors or in any response, and it is compared in
/// constant time.
///
/// A token [from a file](Self::from_file) follows the file: when it changes (a rotated Kubernetes
/// Secret is a new file behind the same path), the next request is checked against the new token,
/// and the old one stops working. A source that no longer gives a valid token refuses every
/// request (fail closed) until it does, and says why in the log.
#[derive(Clone)]
pub struct ApiToken(ServiceSecret);

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// The shortest token accepted, in bytes.
    pub const MIN_LEN: usize = API_TOKEN.min_len;

    /// The token `secret` gives (it should be of kind [`API_TOKEN`]).
    pub fn new(secret: ServiceSecret) -> Self {
        Self(secret)
    }

    /// The token in the file at `path` (the file holds it alone; one trailing newline, `\n` or
    /// `\r\n`, is ignored), read again on every request. Nothing is read yet: call
    /// [`check`](Self::check) to fail early.
    ///
    /// # Errors
    /// [`SecretError::BadReference`] when the path cannot be a reference.
    pub fn from_file(path: impl AsRef<FsPath>) -> Result<Self, SecretError> {
        ServiceSecret::from_file(&API_TOKEN, path).map(Self)
    }

    /// The token in the environment variable `name`.
    ///
    /// # Errors
    /// [`SecretError::BadReference`] when `name` is empty.
    pub fn from_env(name: &str) -> Result<Self, SecretError> {
        ServiceSecret::from_env(&API_TOKEN, name).map(Self)
    }

    /// The token `token`, taken as is (for tests and callers that read it elsewhere).
    ///
    /// # Errors
    /// [`SecretError::Invalid`] when it is too short or holds characters a token cannot have.
    pub fn from_string(token: impl Into<String>) -> Result<Self, SecretError> {
        ServiceSecret::fixed(&API_TOKEN, token).map(Self)
    }

    /// Fetches and checks the token once (at start-up).
    ///
    /// # Errors
    /// The source's error, or the token is not acceptable.
    pub async fn check(&self) -> Result<(), SecretError> {
        self.0.check().await
    }

    /// True when `presented` is this token. Compares SHA-256 digests in constant time, so
    /// neither the content nor the length of the token leaks through timing. When the token
    /// cannot be had (its file holds no valid token, Vault is sealed) every request is refused.
    pub async fn matches(&self, presented: &str) -> bool {
        let secret = match self.0.get().await {
            Ok(secret) => secret,
            Err(e) => {
                tracing::error!(error = %e, "the approvals API token cannot be had: every request is refused until it can");
                return false;
            }
        };
        let expected = Sha256::digest(secret.expose().as_bytes());
        let presented = Sha256::digest(presented.as_bytes());
        expected.as_slice().ct_eq(presented.as_slice()).into()
    }

    /// The token itself, for the `Authorization` header of the client.
    pub(crate) async fn expose(&self) -> Result<sre_core::secret::Secret, SecretError> {
        self.0.get().await
    }
}

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    /// Where the parked runs and their approvals are.
    pub store: Arc<dyn RunStore>,
    /// The bearer token the `/api` routes accept; `None` turns the approvals API off (`503`).
    pub token: Option<ApiToken>,
    /// Counts decisions and serves `/metrics`.
    pub metrics: Arc<Metrics>,
    /// What `/healthz` and `/readyz` report.
    pub health: Arc<Health>,
    /// Signalled after every recorded decision, so a resume loop claims the run at once.
    ///
    /// The API calls [`Notify::notify_waiters`] (every task waiting now wakes) and then
    /// [`Notify::notify_one`] (a permit is left for the next `notified().await`, so a loop that
    /// was busy when the decision came does not miss it). A waiter may therefore wake once
    /// without new work: it should call [`RunStore::claim`] until it returns `None`.
    pub decided: Arc<Notify>,
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("api", &if self.token.is_some() { "on" } else { "off" })
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// The router of `/healthz`, `/readyz`, `/metrics` and `/api/v1/approvals`. Merge other routes
/// (e.g. the Alertmanager webhook) into it; unknown `/api/v1/…` routes answer a JSON `404` after
/// authentication.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/approvals", get(list))
        .route("/approvals/{id}", get(show).post(decide))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A JSON error response: `{"error", "status", "code"}` plus `extra` fields.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<(&'static str, Value)>,
    authenticate: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: None,
            authenticate: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn store_unavailable(what: &str, error: &dyn fmt::Display) -> Self {
        tracing::error!(error = %error, "approvals API: the run store failed to {what}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the run store is unavailable; try again later",
        )
    }

    fn with_view(mut self, view: &ApprovalView) -> Self {
        self.extra = Some((
            "approval",
            serde_json::to_value(view).unwrap_or(Value::Null),
        ));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "error": self.message,
            "status": self.status.as_u16(),
            "code": self.code,
        });
        if let (Some((key, value)), Some(map)) = (self.extra, body.as_object_mut()) {
            map.insert(key.to_owned(), value);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(challenge) = self.authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let ready = state.health.ready();
    let body = json!({
        "ready": ready,
        "leader": state.health.is_leader(),
        "elects": state.health.elects(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route: the approvals API has GET /api/v1/approvals, GET and POST /api/v1/approvals/{id}",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed: GET /api/v1/approvals, GET and POST /api/v1/approvals/{id}",
    )
}

/// Why a request's credentials were refused.
pub(crate) enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// One that is not a single well-formed bearer token.
    Malformed(&'static str),
}

/// The bearer token of `headers`, or why there is none (the approvals API's and the MCP
/// server's one parser).
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Refusal::Missing);
    };
    if values.next().is_some() {
        return Err(Refusal::Malformed("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| Refusal::Malformed("the Authorization header is not ASCII"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(Refusal::Malformed("the Authorization header has no scheme"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::Malformed("the Authorization scheme is not Bearer"));
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::Malformed(
            "the bearer token is empty or holds white space",
        ));
    }
    Ok(token)
}

/// Refuses every `/api` request without the right bearer token, before its body is read.
async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_disabled",
            "the approvals API is off: this server was started without an API token (--api-token)",
        )
        .into_response();
    };
    match bearer(request.headers()) {
        Ok(presented) if token.matches(presented).await => next.run(request).await,
        Ok(_) => {
            tracing::warn!(path = %request.uri().path(), "approvals API: a wrong bearer token was refused");
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the bearer token is not valid for this server",
            )
            .into_response()
        }
        Err(refusal) => {
            let (message, challenge) = match refusal {
                Refusal::Missing => (
                    "authentication required: send `Authorization: Bearer <token>`".to_owned(),
                    "Bearer realm=\"sre-agent\"",
                ),
                Refusal::Malformed(why) => (
                    format!("malformed credentials: {why}; send `Authorization: Bearer <token>`"),
                    "Bearer realm=\"sre-agent\", error=\"invalid_request\"",
                ),
            };
            let mut error = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
            error.authenticate = Some(challenge);
            error.into_response()
        }
    }
}

/// `id` as an error message shows it: escaped and cut short.
fn shown_id(id: &str) -> String {
    let cut: String = id.chars().take(MAX_ID).collect();
    format!("{:?}", escape_untrusted(&cut))
}

/// True when `id` can be an approval id; anything else is not looked up at all.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no approval {}", shown_id(id)),
    )
}

fn now_ms() -> u64 {
    sre_core::park::now_unix_ms()
}

fn approval_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| {
        ApiError::bad_request(format!("bad approval id in the path: {}", e.body_text()))
    })?;
    if plausible_id(&id) {
        Ok(id)
    } else {
        Err(not_found(&id))
    }
}

async fn find(state: &ApiState, id: &str) -> Result<ApprovalView, ApiError> {
    let views = state
        .store
        .approvals(now_ms())
        .await
        .map_err(|e| ApiError::store_unavailable("list approvals", &e))?;
    views
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(|| not_found(id))
}

async fn list(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))?;
    let mut wanted: Option<ApprovalState> = None;
    for (key, value) in params {
        if key != "state" {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {:?} (allowed: state)",
                escape_untrusted(&key)
            )));
        }
        if wanted.is_some() {
            return Err(ApiError::bad_request(
                "query parameter \"state\" is given more than once",
            ));
        }
        wanted = Some(
            serde_json::from_value(Value::String(value.clone())).map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter \"state\" is {:?}; use pending, approved, rejected or expired",
                    escape_untrusted(&value)
                ))
            })?,
        );
    }
    let mut views = state
        .store
        .approvals(now_ms())
        .await
        .map_err(|e| ApiError::store_unavailable("list approvals", &e))?;
    if let Some(wanted) = wanted {
        views.retain(|v| v.state == wanted);
    }
    Ok(axum::Json(json!({ "approvals": views })).into_response())
}

async fn show(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = approval_id(path)?;
    let view = find(&state, &id).await?;
    Ok(axum::Json(view).into_response())
}

/// A checked decision body.
#[derive(Debug, PartialEq)]
struct DecisionBody {
    approve: bool,
    by: String,
    reason: Option<String>,
    action: Option<String>,
}

const FIELDS: &str = "decision, by, reason, action";

/// `value` as an optional string field `name`: absent or `null` is `None`.
fn string_field(map: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!(
            "field {name:?} must be a string"
        ))),
    }
}

/// Refuses control, line-break and invisible formatting characters in field `name`.
fn printable(name: &str, value: &str) -> Result<(), ApiError> {
    match value
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() || is_invisible(*c))
    {
        Some((at, c)) => Err(ApiError::bad_request(format!(
            "field {name:?} contains {} at character {at}; control, line-break and invisible characters are not allowed",
            describe_char(c)
        ))),
        None => Ok(()),
    }
}

fn bounded(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::bad_request(format!(
            "field {name:?} is {} bytes long; at most {max} are allowed",
            value.len()
        )));
    }
    printable(name, value)
}

/// Parses and checks a decision body: a JSON object with exactly the known fields.
fn parse_decision(body: &[u8]) -> Result<DecisionBody, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object with the fields {FIELDS}"
        )));
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "decision" | "by" | "reason" | "action"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown field {:?} (allowed: {FIELDS})",
            escape_untrusted(unknown.chars().take(64).collect::<String>().as_str())
        )));
    }
    let approve = match string_field(&map, "decision")?.as_deref() {
        Some("approve") => true,
        Some("reject") => false,
        Some(_) => {
            return Err(ApiError::bad_request(
                "field \"decision\" must be \"approve\" or \"reject\"",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "field \"decision\" is required: \"approve\" or \"reject\"",
            ));
        }
    };
    let Some(by) = string_field(&map, "by")? else {
        return Err(ApiError::bad_request(
            "field \"by\" is required: who decides (a name or an account)",
        ));
    };
    if by.trim().is_empty() {
        return Err(ApiError::bad_request("field \"by\" must not be empty"));
    }
    bounded("by", &by, MAX_BY)?;
    let reason = string_field(&map, "reason")?;
    if let Some(reason) = &reason {
        bounded("reason", reason, MAX_REASON)?;
    }
    let action = string_field(&map, "action")?;
    if let Some(action) = &action {
        if action.is_empty() {
            return Err(ApiError::bad_request(
                "field \"action\" must not be empty (leave it out to decide on the action waiting)",
            ));
        }
        bounded("action", action, MAX_ACTION)?;
    }
    Ok(DecisionBody {
        approve,
        by,
        reason: reason.filter(|r| !r.trim().is_empty()),
        action,
    })
}

/// Refuses a body that is not declared `application/json` (parameters such as `charset` are
/// fine).
fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON: send Content-Type: application/json",
        ));
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    let shown: String = text.chars().take(64).collect();
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "the body must be JSON: Content-Type is {:?}, expected application/json",
            escape_untrusted(&shown)
        ),
    ))
}

async fn decide(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    json_content_type(&headers)?;
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "payload_too_large",
                format!("the body is larger than {MAX_BODY} bytes"),
            )
        } else {
            ApiError::new(
                status,
                "bad_request",
                format!("cannot read the body: {}", e.body_text()),
            )
        }
    })?;
    let id = approval_id(path)?;
    let body = parse_decision(&body)?;
    let by = format!("api:{}", body.by);
    let decision = if body.approve {
        Decision::approve(by.clone())
    } else {
        Decision::deny(
            by.clone(),
            body.reason
                .clone()
                .unwrap_or_else(|| DEFAULT_REJECT_REASON.to_owned()),
        )
    };
    let answer = Answer::now(decision);
    let view = match state
        .store
        .decide(&id, body.action.as_deref(), &answer)
        .await
    {
        Ok(view) => view,
        Err(DecideError::NotFound(_)) => return Err(not_found(&id)),
        Err(DecideError::AlreadyDecided(view)) => {
            let how = match view.state {
                ApprovalState::Approved => "approved",
                ApprovalState::Rejected => "rejected",
                ApprovalState::Pending | ApprovalState::Expired => "decided",
            };
            let who = view
                .decided_by
                .as_deref()
                .map(|b| format!(" by {}", escape_untrusted(b)))
                .unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_decided",
                format!("approval {} was already {how}{who}", shown_id(&id)),
            )
            .with_view(&view));
        }
        Err(DecideError::Expired(view)) => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "expired",
                format!(
                    "approval {} expired at {}; the write is denied and the run goes on without it",
                    shown_id(&id),
                    escape_untrusted(&view.expires_at)
                ),
            )
            .with_view(&view));
        }
        Err(DecideError::OtherAction { action, named, .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "other_action",
                format!(
                    "approval {} waits for action {}, not {}: the plan changed since it was shown; review it again (GET /api/v1/approvals/{{id}})",
                    shown_id(&id),
                    escape_untrusted(&action),
                    escape_untrusted(&named)
                ),
            ));
        }
        Err(e) => return Err(ApiError::store_unavailable("record a decision", &e)),
    };
    let label = if body.approve { "approve" } else { "reject" };
    let latency = super::store::waited(&view.requested_at, answer.decided_at_ms);
    state.metrics.approval_decided(label, latency);
    tracing::info!(
        approval = %view.id,
        run = %view.run_id,
        decision = label,
        by = %escape_untrusted(&by),
        reason = body.reason.as_deref().map(escape_untrusted).as_deref().unwrap_or(""),
        "approvals API: decision recorded"
    );
    state.decided.notify_waiters();
    state.decided.notify_one();
    Ok(axum::Json(view).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_never_prints_and_matches_exactly() {
        let token = ApiToken::from_string("s3cret-token-0123456789").unwrap();
        assert_eq!(format!("{token:?}"), "ApiToken(<redacted>)");
        assert!(token.matches("s3cret-token-0123456789").await);
        assert!(!token.matches("s3cret-token-012345678").await);
        assert!(!token.matches("s3cret-token-01234567890").await);
        assert!(!token.matches("").await);
    }

    #[test]
    fn token_refusals_name_the_problem_and_not_the_token() {
        for (input, needle) in [
            ("", "is 0 bytes long"),
            ("short-token", "is 11 bytes long; use at least 16"),
            ("has a space inside it", "U+0020"),
            ("tab\tinside-the-token", "U+0009"),
            ("esc\u{1b}inside-the-token", "U+001B"),
            ("non-ascii-tökén-0123456", "U+00F6"),
        ] {
            let e = ApiToken::from_string(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input:?}: {e}");
            if !input.is_empty() {
                assert!(!e.contains(input), "the token leaked: {e}");
            }
        }
    }

    #[tokio::test]
    async fn token_file_trims_one_newline_only() {
        let dir = std::env::temp_dir().join(format!("sre-api-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let token = ApiToken::from_file(&path).unwrap();
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        assert!(token.matches("0123456789abcdef0123").await);
        std::fs::write(&path, "0123456789abcdef0123\r\n").unwrap();
        assert!(token.matches("0123456789abcdef0123").await);
        std::fs::write(&path, "0123456789abcdef0123\n\n").unwrap();
        assert!(!token.matches("0123456789abcdef0123").await);
        let e = token.check().await.unwrap_err().to_string();
        assert!(
            e.contains("U+000A") && e.contains("at most one trailing newline"),
            "{e}"
        );
        assert!(e.contains(&path.display().to_string()), "{e}");
        std::fs::write(&path, "\n").unwrap();
        assert!(
            token
                .check()
                .await
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let missing = ApiToken::from_file(dir.join("missing")).unwrap();
        let e = missing.check().await.unwrap_err();
        assert!(matches!(e, SecretError::NotFound { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(matches!(bearer(&h), Err(Refusal::Missing)));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).ok(), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc"),
        );
        assert_eq!(bearer(&h).ok(), Some("abc"));
        for bad in ["Basic abc", "Bearer", "Bearer ", "Bearer a b", "abc"] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
            assert!(matches!(bearer(&h), Err(Refusal::Malformed(_))), "{bad}");
        }
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert!(matches!(bearer(&h), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn decision_body_is_strict() {
        let ok = parse_decision(br#"{"decision":"reject","by":"alice","reason":"  "}"#).unwrap();
        assert_eq!(
            ok,
            DecisionBody {
                approve: false,
                by: "alice".into(),
                reason: None,
                action: None
            }
        );
        let long_by = format!(r#"{{"decision":"approve","by":"{}"}}"#, "a".repeat(129));
        let long_reason = format!(
            r#"{{"decision":"approve","by":"a","reason":"{}"}}"#,
            "r".repeat(1025)
        );
        for (body, needle) in [
            (
                r#"{"decision":"approve","by":"a","extra":1}"#.to_owned(),
                "unknown field \"extra\"",
            ),
            (
                r#"{"decision":"maybe","by":"a"}"#.to_owned(),
                "\"decision\" must be",
            ),
            (r#"{"by":"a"}"#.to_owned(), "\"decision\" is required"),
            (r#"{"decision":"approve"}"#.to_owned(), "\"by\" is required"),
            (
                r#"{"decision":"approve","by":""}"#.to_owned(),
                "\"by\" must not be empty",
            ),
            (
                r#"{"decision":"approve","by":7}"#.to_owned(),
                "\"by\" must be a string",
            ),
            (long_by, "\"by\" is 129 bytes long"),
            (long_reason, "\"reason\" is 1025 bytes long"),
            (
                r#"{"decision":"approve","by":"a\u001b[2J"}"#.to_owned(),
                "\"by\" contains U+001B",
            ),
            (
                r#"{"decision":"reject","by":"a","reason":"x\ny"}"#.to_owned(),
                "\"reason\" contains U+000A",
            ),
            (
                r#"{"decision":"approve","by":"a\u202e"}"#.to_owned(),
                "\"by\" contains U+202E",
            ),
            (
                r#"{"decision":"approve","by":"a","action":""}"#.to_owned(),
                "\"action\" must not be empty",
            ),
            ("[1]".to_owned(), "must be a JSON object"),
            ("{".to_owned(), "not valid JSON"),
        ] {
            let e = parse_decision(body.as_bytes()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
    }

    #[test]
    fn ids_outside_the_id_alphabet_are_never_looked_up() {
        assert!(plausible_id("apv-0123456789abcdef01234567"));
        for bad in ["", "..", "../x", "a/b", "a b", "a\u{1b}", &"a".repeat(129)] {
            assert!(!plausible_id(bad), "{bad:?}");
        }
    }
}
