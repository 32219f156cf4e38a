//! Alertmanager's webhook (`webhook_config`, payload version `"4"`) as a trigger:
//! `POST /webhooks/alertmanager` ([`routes`]).
//!
//! Each alert is mapped to a Deployment by its labels ([`map_alert`]): `namespace` plus
//! `deployment`, else `namespace` plus `pod`, the pod's Deployment taken from its name when it
//! has the shape of a Deployment's pod, `<deployment>-<pod-template-hash>-<5 characters>`
//! ([`deployment_of_pod_name`]). That last step is a
//! **heuristic**: the name is all an alert carries, and a pod of another controller whose name
//! has that shape maps too — the agent's own triage reads the real owner. Firing alerts are
//! offered to the [`Queue`] as `{namespace}/{deployment}/health` incidents; a resolved alert
//! cancels the queued incident of its key. Alerts are untrusted: names are validated as
//! Kubernetes names, text is escaped and shortened, and at most [`MAX_ALERTS`] alerts of a
//! request are processed.
//!
//! ```
//! use sre_tools::serve::alertmanager::{AlertStatus, map_alert, parse};
//! let body = br#"{"version": "4", "status": "firing", "alerts": [
//!   {"labels": {"alertname": "KubePodCrashLooping", "namespace": "shop",
//!               "pod": "web-7d9f8b6c5d-x2x4z"}}]}"#;
//! let webhook = parse(body).unwrap();
//! let (status, incident) = map_alert(&webhook.alerts[0]).unwrap();
//! assert_eq!(status, AlertStatus::Firing);
//! assert_eq!(incident.key, "shop/web/health");
//!
//! let err = parse(br#"{"version": "3", "status": "firing", "alerts": []}"#).unwrap_err();
//! assert!(err.to_string().contains("version"));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sre_core::Redactor;

use super::api::ApiToken;
use super::store::{Incident, Trigger};
use super::watch::{WorkloadRef, cap, deployment_of_pod_name, quote};
use super::{Offer, Queue};

/// The path the webhook is served on.
pub const PATH: &str = "/webhooks/alertmanager";
/// The largest body accepted (1 MiB); larger ones get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// The most alerts of one request that are processed; the rest are reported as ignored.
pub const MAX_ALERTS: usize = 100;
/// The payload version understood.
pub const VERSION: &str = "4";

/// An alert's (or a group's) state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The alert is active.
    Firing,
    /// The alert stopped.
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// The body of Alertmanager's webhook, version 4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Always `"4"`.
    pub version: String,
    /// The key identifying the group of alerts.
    #[serde(default)]
    pub group_key: String,
    /// How many alerts Alertmanager left out because of the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// The group's state.
    pub status: AlertStatus,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: String,
    /// The labels the alerts were grouped by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// The labels every alert has.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// The annotations every alert has.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// The backlink to the Alertmanager.
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    /// Why this notification was sent (newer Alertmanagers).
    #[serde(
        default,
        rename = "notification_reason",
        skip_serializing_if = "Option::is_none"
    )]
    pub notification_reason: Option<String>,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// One alert of a [`Webhook`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Its state (older Alertmanagers leave it out: [`parse`] then takes the group's).
    pub status: AlertStatus,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started (RFC 3339).
    #[serde(default)]
    pub starts_at: String,
    /// When it ended (RFC 3339; Go's zero time `0001-01-01T00:00:00Z` while firing).
    #[serde(default)]
    pub ends_at: String,
    /// The entity that caused it (e.g. a Prometheus graph URL).
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Its fingerprint.
    #[serde(default)]
    pub fingerprint: String,
}

/// Why a webhook body was refused (the answer is 400 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The body is not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("the body is not a JSON object but {0}")]
    NotAnObject(&'static str),
    /// The payload version is not `"4"`.
    #[error(
        "unsupported webhook version {found}: only version \"4\" (Alertmanager 0.x webhook_config) is understood"
    )]
    WrongVersion {
        /// The version found (JSON, escaped, shortened).
        found: String,
    },
    /// A required field is missing (or null).
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A status is neither `firing` nor `resolved`.
    #[error("field `{field}`: {found} is not a status; expected \"firing\" or \"resolved\"")]
    BadStatus {
        /// The field, e.g. `alerts[2].status`.
        field: String,
        /// The value found (JSON, escaped, shortened).
        found: String,
    },
    /// A field has the wrong type or shape.
    #[error("field `{field}`: {message}")]
    Invalid {
        /// The field, e.g. `alerts[0].labels`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A JSON value shown in an error: redacted (the sender's payload may carry credentials, and
/// the error goes back in the response and into the logs), escaped and shortened, in that order
/// so the cut never leaves half a secret the rules no longer recognise.
fn shown(v: &Value) -> String {
    quote(&Redactor::default().redact_message(&v.to_string()), 80)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn path(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

/// Removes and decodes the optional field `name` (null counts as absent).
fn take<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    at: &str,
    name: &str,
) -> Result<Option<T>, WebhookError> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| WebhookError::Invalid {
                field: path(at, name),
                message: quote(&Redactor::default().redact_parse_error(&e.to_string()), 200),
            }),
    }
}

/// Removes and decodes the required field `name`.
fn need<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    at: &str,
    name: &str,
) -> Result<T, WebhookError> {
    take(obj, at, name)?.ok_or_else(|| WebhookError::MissingField(path(at, name)))
}

fn status(
    obj: &mut Map<String, Value>,
    at: &str,
    default: Option<AlertStatus>,
) -> Result<AlertStatus, WebhookError> {
    let field = path(at, "status");
    match obj.remove("status") {
        None | Some(Value::Null) => default.ok_or(WebhookError::MissingField(field)),
        Some(Value::String(s)) if s == "firing" => Ok(AlertStatus::Firing),
        Some(Value::String(s)) if s == "resolved" => Ok(AlertStatus::Resolved),
        Some(other) => Err(WebhookError::BadStatus {
            field,
            found: shown(&other),
        }),
    }
}

fn alert(i: usize, value: Value, group: AlertStatus) -> Result<Alert, WebhookError> {
    let at = format!("alerts[{i}]");
    let Value::Object(mut obj) = value else {
        return Err(WebhookError::Invalid {
            message: format!("{} is not an object", kind_of(&value)),
            field: at,
        });
    };
    Ok(Alert {
        status: status(&mut obj, &at, Some(group))?,
        labels: need(&mut obj, &at, "labels")?,
        annotations: take(&mut obj, &at, "annotations")?.unwrap_or_default(),
        starts_at: take(&mut obj, &at, "startsAt")?.unwrap_or_default(),
        ends_at: take(&mut obj, &at, "endsAt")?.unwrap_or_default(),
        generator_url: take(&mut obj, &at, "generatorURL")?.unwrap_or_default(),
        fingerprint: take(&mut obj, &at, "fingerprint")?.unwrap_or_default(),
    })
}

/// Parses and checks a webhook body: JSON, an object, `version` `"4"`, a `status`, an `alerts`
/// array whose alerts have `labels`; every other field is optional (older Alertmanagers leave
/// out the per-alert `status`, `fingerprint` and `generatorURL`) and unknown fields are ignored.
///
/// # Errors
/// A [`WebhookError`] naming the field and what is wrong with it.
pub fn parse(body: &[u8]) -> Result<Webhook, WebhookError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::NotJson(quote(&e.to_string(), 200)))?;
    let Value::Object(mut obj) = value else {
        return Err(WebhookError::NotAnObject(kind_of(&value)));
    };
    match obj.remove("version") {
        None | Some(Value::Null) => return Err(WebhookError::MissingField("version".into())),
        Some(Value::String(v)) if v == VERSION => {}
        Some(other) => {
            return Err(WebhookError::WrongVersion {
                found: shown(&other),
            });
        }
    }
    let group = status(&mut obj, "", None)?;
    let alerts = match obj.remove("alerts") {
        None | Some(Value::Null) => return Err(WebhookError::MissingField("alerts".into())),
        Some(Value::Array(alerts)) => alerts,
        Some(other) => {
            return Err(WebhookError::Invalid {
                field: "alerts".into(),
                message: format!("{} is not an array", kind_of(&other)),
            });
        }
    };
    let alerts = alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| alert(i, a, group))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Webhook {
        version: VERSION.into(),
        group_key: take(&mut obj, "", "groupKey")?.unwrap_or_default(),
        truncated_alerts: take(&mut obj, "", "truncatedAlerts")?.unwrap_or_default(),
        status: group,
        receiver: take(&mut obj, "", "receiver")?.unwrap_or_default(),
        group_labels: take(&mut obj, "", "groupLabels")?.unwrap_or_default(),
        common_labels: take(&mut obj, "", "commonLabels")?.unwrap_or_default(),
        common_annotations: take(&mut obj, "", "commonAnnotations")?.unwrap_or_default(),
        external_url: take(&mut obj, "", "externalURL")?.unwrap_or_default(),
        notification_reason: take(&mut obj, "", "notification_reason")?,
        alerts,
    })
}

/// The Deployment an alert is about, from its labels (see the [module](self) docs; the pod
/// name mapping is heuristic).
///
/// # Errors
/// Why the alert is ignored: no `namespace` label, no `deployment` or `pod` label, a pod name
/// without a Deployment pod's shape, or a name that is not a valid Kubernetes name.
pub fn alert_workload(labels: &BTreeMap<String, String>) -> Result<WorkloadRef, String> {
    let namespace = labels
        .get("namespace")
        .ok_or("no `namespace` label: the alert names no workload")?;
    let deployment = match (labels.get("deployment"), labels.get("pod")) {
        (Some(d), _) => d.as_str(),
        (None, Some(pod)) => deployment_of_pod_name(pod).ok_or_else(|| {
            format!(
                "pod {} is not named like a Deployment's pod (<deployment>-<hash>-<5 characters>)",
                quote(pod, 253)
            )
        })?,
        (None, None) => {
            return Err("no `deployment` or `pod` label: the alert names no workload".into());
        }
    };
    WorkloadRef::new(namespace, deployment)
}

/// An alert as an incident on its Deployment (key `{namespace}/{deployment}/health`), with its
/// status. The summary names the alert, its severity, the pod and its own summary and
/// description, escaped and shortened.
///
/// # Errors
/// Why the alert is ignored (see [`alert_workload`]).
pub fn map_alert(alert: &Alert) -> Result<(AlertStatus, Incident), String> {
    // The reason may quote a hostile label: bounded like every other quote.
    let workload = alert_workload(&alert.labels).map_err(|e| cap(e, 300))?;
    let label = |k: &str| alert.labels.get(k).map(|v| quote(v, 120));
    let name = label("alertname").unwrap_or_else(|| "(unnamed)".into());
    let mut summary = format!(
        "{workload}: Alertmanager alert {name} is {}",
        alert.status.as_str()
    );
    if let Some(severity) = label("severity") {
        let _ = write!(summary, " (severity {severity})");
    }
    if let Some(pod) = label("pod") {
        let _ = write!(summary, " for pod {pod}");
        if let Some(container) = label("container") {
            let _ = write!(summary, " container {container}");
        }
    }
    let text: Vec<String> = ["summary", "description", "message"]
        .iter()
        .filter_map(|k| alert.annotations.get(*k))
        .filter(|t| !t.trim().is_empty())
        .map(|t| quote(t, 240))
        .collect();
    if !text.is_empty() {
        summary.push_str(": ");
        summary.push_str(&text.join(" — "));
    }
    let incident = workload.health_incident(Trigger::Alertmanager, cap(summary, 600));
    Ok((alert.status, incident))
}

/// An alert that was not turned into an incident, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    /// The alert's fingerprint (or `alerts[i]` without one).
    pub alert: String,
    /// Why.
    pub reason: String,
}

/// What one webhook did: the answer's body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Firing alerts queued as new incidents.
    pub queued: usize,
    /// Firing alerts merged into a queued incident.
    pub merged: usize,
    /// Resolved alerts that cancelled a queued incident.
    pub cancelled: usize,
    /// Firing alerts dropped because the queue was full.
    pub dropped: usize,
    /// Alerts not mapped to a workload (or over the per-request limit), with the reason.
    pub ignored: Vec<Ignored>,
}

/// Offers the webhook's firing alerts to `queue` and cancels the queued incidents of its
/// resolved ones, in order, processing at most [`MAX_ALERTS`] alerts.
pub fn deliver(webhook: &Webhook, queue: &Queue) -> Delivery {
    let mut out = Delivery::default();
    for (i, alert) in webhook.alerts.iter().enumerate().take(MAX_ALERTS) {
        let id = if alert.fingerprint.is_empty() {
            format!("alerts[{i}]")
        } else {
            quote(&alert.fingerprint, 64)
        };
        match map_alert(alert) {
            Ok((AlertStatus::Firing, incident)) => match queue.offer(incident) {
                Offer::Queued => out.queued += 1,
                Offer::Merged => out.merged += 1,
                Offer::Full => out.dropped += 1,
            },
            Ok((AlertStatus::Resolved, incident)) => {
                // Only what an alert queued: a resolved alert never cancels what the watcher or
                // the Trivy sweep saw about the same workload.
                if queue.cancel_from(&incident.key, Trigger::Alertmanager) {
                    out.cancelled += 1;
                }
            }
            Err(reason) => out.ignored.push(Ignored { alert: id, reason }),
        }
    }
    if webhook.alerts.len() > MAX_ALERTS {
        out.ignored.push(Ignored {
            alert: format!("alerts[{MAX_ALERTS}..{}]", webhook.alerts.len()),
            reason: format!(
                "{} alerts not processed: at most {MAX_ALERTS} alerts are processed per request",
                webhook.alerts.len() - MAX_ALERTS
            ),
        });
    }
    out
}

#[derive(Clone)]
struct Shared {
    queue: Arc<Queue>,
    token: Option<ApiToken>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Why a request was refused: 401 (no bearer token) or 403 (another token).
fn refusal(status: StatusCode, message: &str) -> Response {
    let mut r = error(status, message);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sre-agent\""),
        );
    }
    r
}

/// Checks the bearer token ([`ApiToken::matches`]: constant time, and a token file that
/// changes is followed).
async fn authorize(
    headers: &HeaderMap,
    token: &ApiToken,
) -> Result<(), (StatusCode, &'static str)> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>`",
        ));
    };
    let Some(given) = bearer(value) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not a bearer token: send `Authorization: Bearer <token>`",
        ));
    };
    if token.matches(given).await {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, "the bearer token is not valid"))
    }
}

async fn receive(State(shared): State<Shared>, request: Request) -> Response {
    if let Some(token) = &shared.token
        && let Err((status, message)) = authorize(request.headers(), token).await
    {
        tracing::warn!(status = status.as_u16(), "alertmanager webhook: {message}");
        return refusal(status, message);
    }
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("the body is larger than {BODY_LIMIT} bytes")
            } else {
                rejection.body_text()
            };
            return error(status, message);
        }
    };
    let webhook = match parse(&body) {
        Ok(webhook) => webhook,
        Err(e) => {
            tracing::warn!(error = %e, "alertmanager webhook: malformed body");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let delivery = deliver(&webhook, &shared.queue);
    tracing::info!(
        receiver = %quote(&webhook.receiver, 80),
        status = webhook.status.as_str(),
        alerts = webhook.alerts.len(),
        queued = delivery.queued,
        merged = delivery.merged,
        cancelled = delivery.cancelled,
        dropped = delivery.dropped,
        ignored = delivery.ignored.len(),
        "alertmanager webhook"
    );
    (StatusCode::OK, Json(delivery)).into_response()
}

/// The router serving `POST /webhooks/alertmanager`: bodies up to [`BODY_LIMIT`] (413 beyond),
/// 400 `{"error": "..."}` naming what is wrong with a malformed body, and — when `token` is set
/// — `Authorization: Bearer <token>` required (401 without one, 403 with another). The answer
/// is 200 with a [`Delivery`]: `{"queued": n, "merged": n, "cancelled": n, "dropped": n,
/// "ignored": [{"alert": fingerprint, "reason": "..."}]}`.
pub fn routes(queue: Arc<Queue>, token: Option<ApiToken>) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Shared { queue, token })
}
