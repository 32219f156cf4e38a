//! [`AuditSink`]: ships every audit event to a Splunk HTTP Event Collector or an Elasticsearch
//! `_bulk` endpoint (`--audit-sink URL`), without ever blocking a run and without losing an event
//! silently.
//!
//! The sink is an [`Observer`]: [`on_event`](Observer::on_event) serializes the event (the agent
//! has redacted it already) with a timestamp and a sequence number and hands it to a bounded queue
//! with `try_send`. A full queue drops the event on the spot: it is counted in
//! `sre_agent_audit_events_total{result="dropped"}` and a `warn` line says how many were dropped
//! (at most one line per [`AuditSinkConfig::drop_log_every`], never one per event). A background
//! task ([`AuditSink::start`]) batches the queue (up to [`AuditSinkConfig::batch_max`] events or
//! [`AuditSinkConfig::flush_every`]), POSTs each batch, retries 429, 5xx and connection failures
//! with exponential backoff and jitter (honouring `Retry-After`) up to
//! [`AuditSinkConfig::max_retries`] times, and otherwise drops the batch with a counter and a log
//! line that says why. Every event handed to the sink ends up shipped or counted as dropped:
//! [`SinkStats`] holds `shipped + dropped == events` once the sink is [closed](AuditSink::close).
//!
//! Each event carries the sink's `instance` (random per process) and a `seq` number (1, 2, …,
//! given before the queue), so a gap in `seq` at the receiver shows drops as well.
//!
//! # Wire formats
//!
//! **Splunk HEC** (`…/services/collector` or `…/services/collector/event`): `POST` with
//! `Authorization: Splunk <token>` and `Content-Type: application/json`; the body is one JSON
//! object per event, concatenated:
//! `{"time":1718000000.123,"host":"…","source":"sre-agent","sourcetype":"sre-agent:audit","event":{"seq":1,"instance":"…","event":{…}}}`.
//! Success is `200 {"text":"Success","code":0}`; errors carry a `code` (6 invalid data format,
//! 9 server busy, …): 429 and 5xx are retried, any other status drops the batch.
//!
//! **Elasticsearch** (`…/_bulk` or `…/INDEX/_bulk`, index [`DEFAULT_INDEX`] when none is in the
//! path): `POST` with `Authorization: ApiKey <key>` (when a key is given) and
//! `Content-Type: application/x-ndjson`; two lines per event, the body ending with a newline:
//! `{"create":{"_index":"…","_id":"<instance>-<seq>"}}` then
//! `{"@timestamp":"…","host":{"name":"…"},"seq":1,"instance":"…","event":{…}}`. A response with
//! `"errors":true` is read item by item: items with status 429 or 5xx are sent again (alone), any
//! other failure is dropped with its `error.type` and `error.reason`. The `_id` makes a re-sent
//! event idempotent: a `409` on `create` means an earlier try stored it, and counts as shipped.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sre_tools::serve::audit_sink::{AuditSink, AuditSinkConfig};
//! use sre_tools::serve::secret::{SINK_TOKEN, ServiceSecret};
//! use sre_tools::serve::metrics::Metrics;
//!
//! # async fn demo() -> Result<(), sre_tools::serve::audit_sink::AuditSinkError> {
//! let token = ServiceSecret::from_file(&SINK_TOKEN, "/var/run/secrets/hec-token")?;
//! let config = AuditSinkConfig::parse("https://splunk.example:8088/services/collector", Some(token))?;
//! let metrics = Arc::new(Metrics::new());
//! let (sink, task) = AuditSink::start(config, metrics);
//! // give `sink` to the agent as an observer (`Arc<AuditSink>` is an `Observer`) …
//! let stats = sink.close(Duration::from_secs(10)).await;
//! task.await.ok();
//! println!("{} shipped, {} dropped", stats.shipped, stats.dropped);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use sre_core::secret::{Secret, SecretError};
use sre_core::{Event, Observer};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::metrics::Metrics;
use super::secret::ServiceSecret;

/// The Elasticsearch index used when the `_bulk` URL names none.
pub const DEFAULT_INDEX: &str = "sre-agent-audit";

/// The HEC `source` of every event.
pub const HEC_SOURCE: &str = "sre-agent";

/// The HEC `sourcetype` of every event.
pub const HEC_SOURCETYPE: &str = "sre-agent:audit";

/// How many distinct drop reasons one log line lists.
const MAX_REASONS_LOGGED: usize = 3;

/// Where the events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    /// A Splunk HTTP Event Collector.
    SplunkHec,
    /// An Elasticsearch `_bulk` endpoint (`OpenSearch` speaks the same format).
    ElasticBulk,
}

impl SinkKind {
    /// The `sink` label in metrics and logs: `splunk_hec` or `elasticsearch`.
    pub fn label(self) -> &'static str {
        match self {
            Self::SplunkHec => "splunk_hec",
            Self::ElasticBulk => "elasticsearch",
        }
    }
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SplunkHec => "Splunk HEC",
            Self::ElasticBulk => "Elasticsearch _bulk",
        })
    }
}

/// Why an audit sink could not be configured, or did not drain in time. Messages never contain a
/// token or URL credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditSinkError {
    /// The sink URL is unusable.
    #[error("audit sink URL {url}: {reason}")]
    Url {
        /// The URL, without credentials or query.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The token could not be had or is not what it should be.
    #[error("audit sink: {0}")]
    Token(#[from] SecretError),
    /// The sink needs a token and none was given.
    #[error("a {0} audit sink needs a token: pass it by reference (--audit-sink-token file:/path)")]
    MissingToken(SinkKind),
    /// [`AuditSink::flush`] did not finish in time.
    #[error("audit sink {sink}: {pending} events still unshipped after {}", humantime::format_duration(*.within))]
    FlushTimeout {
        /// The sink label.
        sink: &'static str,
        /// Events accepted before the flush and not yet shipped or dropped.
        pending: u64,
        /// The bound.
        within: Duration,
    },
}

/// Where and how to ship audit events. [`parse`](Self::parse) checks the URL and picks the kind;
/// the other fields have working defaults and may be tuned.
#[derive(Debug, Clone)]
pub struct AuditSinkConfig {
    /// The endpoint (http or https, no credentials).
    pub url: Url,
    /// What it is.
    pub kind: SinkKind,
    /// The Elasticsearch index (unused for HEC).
    pub index: String,
    /// The HEC token or Elasticsearch API key (of kind [`SINK_TOKEN`](super::secret::SINK_TOKEN)).
    pub token: Option<ServiceSecret>,
    /// The `host` of every event (default: `$HOSTNAME`, the pod's name, else `sre-agent`).
    pub host: String,
    /// Most events in one request (default 100).
    pub batch_max: usize,
    /// Most bytes in one request, unless one event alone is larger (default 1 MiB).
    pub batch_max_bytes: usize,
    /// Longest time an event waits for its batch to fill (default 1 s).
    pub flush_every: Duration,
    /// Events that may wait in the queue; more are dropped and counted (default 10 000).
    pub queue_capacity: usize,
    /// Retries of a batch after its first try (default 5).
    pub max_retries: usize,
    /// First backoff between tries (default 200 ms), doubling with jitter.
    pub min_backoff: Duration,
    /// Longest backoff, and longest `Retry-After` honoured (default 30 s).
    pub max_backoff: Duration,
    /// Timeout of one request (default 10 s).
    pub request_timeout: Duration,
    /// At most one "dropped" log line per this interval (default 10 s).
    pub drop_log_every: Duration,
    /// How long the queue is drained when the sink is dropped without
    /// [`close`](AuditSink::close) (default 10 s).
    pub drain_on_drop: Duration,
}

impl AuditSinkConfig {
    /// A config for `url`: a path ending in `/services/collector` or `/services/collector/event`
    /// is Splunk HEC (a token is required); a path ending in `/_bulk` is Elasticsearch, with the
    /// index from `/INDEX/_bulk` or [`DEFAULT_INDEX`].
    ///
    /// # Errors
    /// [`AuditSinkError::Url`] when it is not an http(s) URL, carries credentials or a fragment,
    /// has a token in its query, names an invalid index, or has any other path;
    /// [`AuditSinkError::MissingToken`] for HEC without a token.
    pub fn parse(url: &str, token: Option<ServiceSecret>) -> Result<Self, AuditSinkError> {
        let bad = |shown: String, reason: String| AuditSinkError::Url { url: shown, reason };
        let parsed = Url::parse(url.trim())
            .map_err(|e| bad(redact_url_text(url), format!("not a URL ({e})")))?;
        let shown = display_url(&parsed);
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(
                shown,
                format!(
                    "the scheme must be http or https, not {:?}",
                    parsed.scheme()
                ),
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                shown,
                "credentials in the URL (user:password@) are not accepted: put the token in a file and pass the file"
                    .to_owned(),
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad(shown, "it has no host".to_owned()));
        }
        if parsed.fragment().is_some() {
            return Err(bad(shown, "a #fragment has no meaning here".to_owned()));
        }
        if let Some((key, _)) = parsed.query_pairs().find(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k.contains("token") || k.contains("key") || k.contains("auth")
        }) {
            return Err(bad(
                shown,
                format!(
                    "the query parameter {key:?} looks like a credential: put the token in a file and pass the file"
                ),
            ));
        }
        let path = parsed.path().trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (kind, index) = match segments.as_slice() {
            [.., "services", "collector"] | [.., "services", "collector", "event"] => {
                (SinkKind::SplunkHec, String::new())
            }
            [.., index, "_bulk"] => {
                check_index(index).map_err(|reason| bad(shown.clone(), reason))?;
                (SinkKind::ElasticBulk, (*index).to_owned())
            }
            ["_bulk"] => (SinkKind::ElasticBulk, DEFAULT_INDEX.to_owned()),
            _ => {
                return Err(bad(
                    shown,
                    format!(
                        "the path {:?} is neither a Splunk HEC endpoint (…/services/collector or …/services/collector/event) nor an Elasticsearch bulk endpoint (…/_bulk or …/INDEX/_bulk)",
                        parsed.path()
                    ),
                ));
            }
        };
        if kind == SinkKind::SplunkHec && token.is_none() {
            return Err(AuditSinkError::MissingToken(kind));
        }
        Ok(Self {
            url: parsed,
            kind,
            index,
            token,
            host: default_host(),
            batch_max: 100,
            batch_max_bytes: 1 << 20,
            flush_every: Duration::from_secs(1),
            queue_capacity: 10_000,
            max_retries: 5,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            drop_log_every: Duration::from_secs(10),
            drain_on_drop: Duration::from_secs(10),
        })
    }

    /// The endpoint as logs and errors show it: no credentials, no query.
    pub fn endpoint(&self) -> String {
        display_url(&self.url)
    }
}

/// An Elasticsearch index name: lowercase letters, digits, `-`, `_`, `.`, `+`; not starting with
/// `-`, `_` or `+`; not `.` or `..`; at most 255 bytes.
fn check_index(index: &str) -> Result<(), String> {
    let ok_chars = index
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.+".contains(c));
    if index.len() > 255
        || !ok_chars
        || index.starts_with(['-', '_', '+'])
        || index == "."
        || index == ".."
    {
        return Err(format!(
            "{index:?} is not a usable Elasticsearch index name (lowercase letters, digits, - _ . +; not starting with - _ +; at most 255 bytes)"
        ));
    }
    Ok(())
}

/// `scheme://host[:port]/path`: what a URL may show in logs and errors.
fn display_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// Text that failed to parse as a URL, with anything that may be `user:password@` masked.
fn redact_url_text(text: &str) -> String {
    let text = text.trim();
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = tail.split(['?', '#']).next().unwrap_or("");
    let shown = if scheme.is_empty() {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    };
    format!("{:?}", shown.chars().take(200).collect::<String>())
}

fn default_host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "sre-agent".to_owned())
}

/// Counts of one sink. Every event given to [`on_event`](Observer::on_event) is, at any time,
/// shipped, dropped, or still queued or in flight; after [`AuditSink::close`],
/// `shipped + dropped == events`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Events given to the sink.
    pub events: u64,
    /// Events that went into the queue.
    pub accepted: u64,
    /// Events the endpoint confirmed.
    pub shipped: u64,
    /// Events dropped: the queue was full or closed, the endpoint refused them, or retries ran
    /// out.
    pub dropped: u64,
}

/// One serialized event, ready to be concatenated into a request body.
#[derive(Debug)]
struct Line {
    body: String,
}

const NEVER: u64 = u64::MAX;

/// What the observer side and the shipper share.
struct Shared {
    label: &'static str,
    metrics: Arc<Metrics>,
    events: AtomicU64,
    accepted: AtomicU64,
    shipped: AtomicU64,
    dropped: AtomicU64,
    /// Accepted events that were shipped or dropped since.
    settled: watch::Sender<u64>,
    /// Drops before the queue not yet reported in a log line.
    unreported: AtomicU64,
    last_report_ms: AtomicU64,
    origin: std::time::Instant,
    drop_log_every_ms: u64,
    queue_capacity: usize,
}

impl Shared {
    fn stats(&self) -> SinkStats {
        SinkStats {
            events: self.events.load(Ordering::SeqCst),
            accepted: self.accepted.load(Ordering::SeqCst),
            shipped: self.shipped.load(Ordering::SeqCst),
            dropped: self.dropped.load(Ordering::SeqCst),
        }
    }

    fn shipped(&self, n: usize) {
        if n == 0 {
            return;
        }
        let n = n as u64;
        self.metrics.audit_shipped(self.label, n);
        self.shipped.fetch_add(n, Ordering::SeqCst);
        self.settled.send_modify(|s| *s += n);
    }

    /// `n` accepted events were dropped for `reason`.
    fn dropped_accepted(&self, n: usize, reason: &str) {
        if n == 0 {
            return;
        }
        let n = n as u64;
        self.metrics.audit_dropped(self.label, n);
        let total = self.dropped.fetch_add(n, Ordering::SeqCst) + n;
        self.settled.send_modify(|s| *s += n);
        tracing::warn!(
            sink = self.label,
            dropped = n,
            total_dropped = total,
            reason,
            "audit sink dropped {n} events: {reason}"
        );
    }

    /// One event was dropped before it reached the queue.
    fn dropped_unqueued(&self) {
        self.metrics.audit_dropped(self.label, 1);
        self.dropped.fetch_add(1, Ordering::SeqCst);
        self.unreported.fetch_add(1, Ordering::SeqCst);
        self.report_unqueued(false);
    }

    /// Logs the drops before the queue not reported yet: at once when `force`, else at most once
    /// per `drop_log_every`.
    fn report_unqueued(&self, force: bool) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(NEVER - 1);
        let last = self.last_report_ms.load(Ordering::SeqCst);
        if !force {
            if last != NEVER && now.saturating_sub(last) < self.drop_log_every_ms {
                return;
            }
            if self
                .last_report_ms
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                return;
            }
        }
        let n = self.unreported.swap(0, Ordering::SeqCst);
        if n == 0 {
            return;
        }
        if force {
            self.last_report_ms.store(now, Ordering::SeqCst);
        }
        tracing::warn!(
            sink = self.label,
            dropped = n,
            total_dropped = self.dropped.load(Ordering::SeqCst),
            queue_capacity = self.queue_capacity,
            "audit sink dropped {n} events before queueing them: the queue of {} was full (the endpoint is slow or unreachable) or the sink was closed",
            self.queue_capacity
        );
    }
}

/// Ships audit events to Splunk HEC or Elasticsearch `_bulk`; an [`Observer`] that never blocks.
pub struct AuditSink {
    kind: SinkKind,
    index: String,
    host: String,
    instance: String,
    endpoint: String,
    seq: AtomicU64,
    tx: mpsc::Sender<Line>,
    shared: Arc<Shared>,
    nudge: Arc<Notify>,
    closing: watch::Sender<Option<Instant>>,
    done: watch::Receiver<bool>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("instance", &self.instance)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AuditSink {
    /// Starts shipping: returns the sink (give it to the agent as an observer) and the shipper
    /// task, which ends after [`close`](Self::close) or when every handle to the sink is dropped
    /// (then it drains for at most [`AuditSinkConfig::drain_on_drop`]).
    ///
    /// Must be called inside a Tokio runtime.
    pub fn start(config: AuditSinkConfig, metrics: Arc<Metrics>) -> (Arc<Self>, JoinHandle<()>) {
        let queue_capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(queue_capacity);
        let (settled, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            label: config.kind.label(),
            metrics,
            events: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            shipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            settled,
            unreported: AtomicU64::new(0),
            last_report_ms: AtomicU64::new(NEVER),
            origin: std::time::Instant::now(),
            drop_log_every_ms: u64::try_from(config.drop_log_every.as_millis()).unwrap_or(NEVER),
            queue_capacity,
        });
        let nudge = Arc::new(Notify::new());
        let (closing, closing_rx) = watch::channel(None);
        let (done_tx, done) = watch::channel(false);
        let instance = format!(
            "{:016x}",
            std::collections::hash_map::RandomState::new().hash_one(SystemTime::now())
        );
        let sink = Arc::new(Self {
            kind: config.kind,
            index: config.index.clone(),
            host: config.host.clone(),
            instance,
            endpoint: config.endpoint(),
            seq: AtomicU64::new(0),
            tx,
            shared: Arc::clone(&shared),
            nudge: Arc::clone(&nudge),
            closing,
            done,
        });
        let shipper = Shipper::new(config, shared);
        let task = tokio::spawn(async move {
            shipper.run(rx, nudge, closing_rx).await;
            let _ = done_tx.send(true);
        });
        (sink, task)
    }

    /// What it ships to.
    pub fn kind(&self) -> SinkKind {
        self.kind
    }

    /// The counts so far.
    pub fn stats(&self) -> SinkStats {
        self.shared.stats()
    }

    /// Ships what was queued before the call now, without waiting for
    /// [`flush_every`](AuditSinkConfig::flush_every), and waits until all of it was shipped or
    /// dropped, for at most `within`.
    ///
    /// # Errors
    /// [`AuditSinkError::FlushTimeout`] when some of it is still unshipped after `within` (it is
    /// still queued or being retried).
    pub async fn flush(&self, within: Duration) -> Result<(), AuditSinkError> {
        let target = self.shared.accepted.load(Ordering::SeqCst);
        self.nudge.notify_one();
        let mut settled = self.shared.settled.subscribe();
        let reached = tokio::time::timeout(within, settled.wait_for(|s| *s >= target)).await;
        if matches!(reached, Ok(Ok(_))) {
            return Ok(());
        }
        Err(AuditSinkError::FlushTimeout {
            sink: self.shared.label,
            pending: target.saturating_sub(*self.shared.settled.borrow()),
            within,
        })
    }

    /// Stops accepting events (later ones are dropped and counted), ships what is queued for at
    /// most `within` (retrying as usual until then), drops and counts what is left, and returns
    /// the final counts. Calling it again does not move the first deadline.
    pub async fn close(&self, within: Duration) -> SinkStats {
        let deadline = Instant::now() + within;
        self.closing.send_if_modified(|d| {
            if d.is_some() {
                return false;
            }
            *d = Some(deadline);
            true
        });
        let mut done = self.done.clone();
        // The shipper stops at the deadline; the grace covers counting what is left.
        let grace = Duration::from_secs(2);
        if tokio::time::timeout(within + grace, done.wait_for(|d| *d))
            .await
            .is_err()
        {
            tracing::warn!(
                sink = self.shared.label,
                "audit sink did not stop within {} of closing",
                humantime::format_duration(within + grace)
            );
        }
        self.shared.report_unqueued(true);
        self.stats()
    }

    fn line(&self, event: &Event) -> Result<Line, serde_json::Error> {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let event = serde_json::to_value(event)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // Millisecond precision for both formats.
        let now = Duration::from_millis(u64::try_from(now.as_millis()).unwrap_or(u64::MAX));
        let body = match self.kind {
            SinkKind::SplunkHec => {
                let object = json!({
                    "time": now.as_secs_f64(),
                    "host": self.host,
                    "source": HEC_SOURCE,
                    "sourcetype": HEC_SOURCETYPE,
                    "event": {"seq": seq, "instance": self.instance, "event": event},
                });
                format!("{object}\n")
            }
            SinkKind::ElasticBulk => {
                let action = json!({"create": {
                    "_index": self.index,
                    "_id": format!("{}-{seq}", self.instance),
                }});
                let doc = json!({
                    "@timestamp": humantime::format_rfc3339_millis(UNIX_EPOCH + now).to_string(),
                    "host": {"name": self.host},
                    "seq": seq,
                    "instance": self.instance,
                    "event": event,
                });
                format!("{action}\n{doc}\n")
            }
        };
        Ok(Line { body })
    }
}

impl Observer for AuditSink {
    fn on_event(&self, event: &Event) {
        self.shared.events.fetch_add(1, Ordering::SeqCst);
        let line = match self.line(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(sink = self.shared.label, error = %e, "audit event could not be serialized");
                self.shared.dropped_unqueued();
                return;
            }
        };
        match self.tx.try_send(line) {
            Ok(()) => {
                self.shared.accepted.fetch_add(1, Ordering::SeqCst);
            }
            Err(mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_)) => {
                self.shared.dropped_unqueued();
            }
        }
    }
}

/// What one request did to each line it carried (indices into the lines sent).
#[derive(Debug, Default)]
struct Verdict {
    shipped: usize,
    /// Lines to send again, and why.
    retry: Vec<usize>,
    retry_reason: String,
    retry_after: Option<Duration>,
    /// Lines refused for good, with the reason.
    dropped: Vec<(usize, String)>,
}

impl Verdict {
    fn all_shipped(n: usize) -> Self {
        Self {
            shipped: n,
            ..Self::default()
        }
    }

    fn all_retry(n: usize, reason: String, after: Option<Duration>) -> Self {
        Self {
            retry: (0..n).collect(),
            retry_reason: reason,
            retry_after: after,
            ..Self::default()
        }
    }

    fn all_dropped(n: usize, reason: &str) -> Self {
        Self {
            dropped: (0..n).map(|i| (i, reason.to_owned())).collect(),
            ..Self::default()
        }
    }
}

/// The background half: batches, sends, retries.
struct Shipper {
    shared: Arc<Shared>,
    http: reqwest::Client,
    url: Url,
    kind: SinkKind,
    token: Option<ServiceSecret>,
    batch_max: usize,
    batch_max_bytes: usize,
    flush_every: Duration,
    max_retries: usize,
    min_backoff: Duration,
    max_backoff: Duration,
    drain_on_drop: Duration,
    drop_log_every: Duration,
    jitter: std::collections::hash_map::RandomState,
}

/// Lines waiting to be sent, in order.
#[derive(Debug, Default)]
struct Batch {
    lines: Vec<Line>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, line: Line) {
        self.bytes += line.body.len();
        self.lines.push(line);
    }

    fn take(&mut self) -> Vec<Line> {
        self.bytes = 0;
        std::mem::take(&mut self.lines)
    }
}

/// Returns when `closing` holds a deadline and it has passed; never before.
async fn deadline_passed(mut closing: watch::Receiver<Option<Instant>>) {
    loop {
        let deadline = *closing.borrow_and_update();
        if let Some(deadline) = deadline {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        if closing.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Shipper {
    fn new(config: AuditSinkConfig, shared: Arc<Shared>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .unwrap_or_default();
        Self {
            shared,
            http,
            url: config.url,
            kind: config.kind,
            token: config.token,
            batch_max: config.batch_max.max(1),
            batch_max_bytes: config.batch_max_bytes.max(1),
            flush_every: config.flush_every,
            max_retries: config.max_retries,
            min_backoff: config.min_backoff,
            max_backoff: config.max_backoff.max(config.min_backoff),
            drain_on_drop: config.drain_on_drop,
            drop_log_every: config.drop_log_every.max(Duration::from_millis(1)),
            jitter: std::collections::hash_map::RandomState::new(),
        }
    }

    fn full(&self, batch: &Batch) -> bool {
        batch.lines.len() >= self.batch_max || batch.bytes >= self.batch_max_bytes
    }

    async fn run(
        self,
        mut rx: mpsc::Receiver<Line>,
        nudge: Arc<Notify>,
        mut closing: watch::Receiver<Option<Instant>>,
    ) {
        let mut batch = Batch::default();
        let mut due = Instant::now();
        let mut report = tokio::time::interval(self.drop_log_every);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = closing.changed() => break,
                () = nudge.notified() => {
                    while let Ok(line) = rx.try_recv() {
                        batch.push(line);
                        if self.full(&batch) {
                            self.ship(batch.take(), &closing).await;
                        }
                    }
                    self.ship(batch.take(), &closing).await;
                }
                line = rx.recv() => match line {
                    Some(line) => {
                        if batch.lines.is_empty() {
                            due = Instant::now() + self.flush_every;
                        }
                        batch.push(line);
                        if self.full(&batch) {
                            self.ship(batch.take(), &closing).await;
                        }
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(due), if !batch.lines.is_empty() => {
                    self.ship(batch.take(), &closing).await;
                }
                _ = report.tick() => self.shared.report_unqueued(false),
            }
        }
        // Closing, or every handle dropped: take no more, drain what is queued until the deadline.
        rx.close();
        let deadline = *closing.borrow();
        let closing = match deadline {
            Some(_) => closing,
            None => watch::channel(Some(Instant::now() + self.drain_on_drop)).1,
        };
        while let Some(line) = rx.recv().await {
            batch.push(line);
            if self.full(&batch) {
                self.ship(batch.take(), &closing).await;
            }
        }
        self.ship(batch.take(), &closing).await;
        self.shared.report_unqueued(true);
    }

    /// Ships `lines` with retries; when the close deadline passes first, drops what is left.
    async fn ship(&self, lines: Vec<Line>, closing: &watch::Receiver<Option<Instant>>) {
        if lines.is_empty() {
            return;
        }
        let mut pending = lines;
        tokio::select! {
            biased;
            () = deadline_passed(closing.clone()) => {}
            () = self.ship_with_retries(&mut pending) => {}
        }
        self.shared.dropped_accepted(
            pending.len(),
            "the sink was closing and its deadline passed before they were confirmed",
        );
    }

    /// Sends `pending` until every line is shipped or dropped (then `pending` is empty).
    async fn ship_with_retries(&self, pending: &mut Vec<Line>) {
        let mut retries = 0;
        loop {
            let verdict = self.send(pending).await;
            self.shared.shipped(verdict.shipped);
            log_dropped(&self.shared, &verdict.dropped);
            let keep: std::collections::HashSet<usize> = verdict.retry.iter().copied().collect();
            let mut i = 0;
            pending.retain(|_| {
                let k = keep.contains(&i);
                i += 1;
                k
            });
            if pending.is_empty() {
                return;
            }
            let reason = verdict.retry_reason;
            if retries >= self.max_retries {
                let n = pending.len();
                pending.clear();
                self.shared.dropped_accepted(
                    n,
                    &format!(
                        "gave up after {} retries; last failure: {reason}",
                        self.max_retries
                    ),
                );
                return;
            }
            retries += 1;
            let wait = verdict
                .retry_after
                .unwrap_or_else(|| self.backoff(retries))
                .min(self.max_backoff);
            if retries == 1 {
                tracing::warn!(
                    sink = self.shared.label,
                    events = pending.len(),
                    reason,
                    "audit sink will retry {} events in {:?}: {reason}",
                    pending.len(),
                    wait
                );
            } else {
                tracing::debug!(sink = self.shared.label, events = pending.len(), retry = retries, reason, wait = ?wait, "audit sink retrying");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with jitter: half of `min * 2^(retry-1)` (capped) plus a random part
    /// up to the other half.
    fn backoff(&self, retry: usize) -> Duration {
        let exp = u32::try_from(retry.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(20);
        let base = self
            .min_backoff
            .saturating_mul(1_u32 << exp)
            .min(self.max_backoff);
        let half = base / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        let random = self.jitter.hash_one((retry, std::time::Instant::now())) % nanos;
        half + Duration::from_nanos(random)
    }

    /// The `Authorization` header and the token it carries, when the sink has a token.
    async fn auth(&self) -> Result<Option<(HeaderValue, Secret)>, SecretError> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        let secret = token.get().await?;
        let scheme = match self.kind {
            SinkKind::SplunkHec => "Splunk",
            SinkKind::ElasticBulk => "ApiKey",
        };
        // The token is visible ASCII (its rule), so this cannot fail.
        let mut value =
            HeaderValue::from_str(&format!("{scheme} {}", secret.expose())).map_err(|_| {
                SecretError::invalid(token.reference(), "it cannot be sent in a header")
            })?;
        value.set_sensitive(true);
        Ok(Some((value, secret)))
    }

    async fn send(&self, lines: &[Line]) -> Verdict {
        let n = lines.len();
        let mut body = String::with_capacity(lines.iter().map(|l| l.body.len()).sum());
        for line in lines {
            body.push_str(&line.body);
        }
        let content_type = match self.kind {
            SinkKind::SplunkHec => "application/json",
            SinkKind::ElasticBulk => "application/x-ndjson",
        };
        let mut request = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, content_type)
            .body(body);
        let secret = match self.auth().await {
            Ok(Some((auth, secret))) => {
                request = request.header(AUTHORIZATION, auth);
                Some(secret)
            }
            Ok(None) => None,
            Err(e) => return Verdict::all_retry(n, e.to_string(), None),
        };
        let scrub = |text: &str| scrub(secret.as_ref(), text);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_connect() {
                    "cannot connect"
                } else if e.is_timeout() {
                    "timed out"
                } else {
                    "request failed"
                };
                let reason = scrub(&format!("{what}: {}", error_chain(&e)));
                return Verdict::all_retry(n, reason, None);
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let reason = scrub(&format!(
                    "HTTP {status}, but reading the response failed: {}",
                    error_chain(&e)
                ));
                return Verdict::all_retry(n, reason, None);
            }
        };
        let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        if !status.is_success() {
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                && let Some(token) = &self.token
            {
                // A rotated token is fetched again for the next batch.
                token.invalidate();
            }
            let message = scrub(&error_message(self.kind, status, &bytes));
            if retryable {
                return Verdict::all_retry(n, message, retry_after);
            }
            return Verdict::all_dropped(n, &message);
        }
        match self.kind {
            SinkKind::SplunkHec => Verdict::all_shipped(n),
            SinkKind::ElasticBulk => Self::bulk_verdict(n, &bytes, &scrub),
        }
    }

    /// Reads a 2xx `_bulk` response item by item.
    fn bulk_verdict(n: usize, bytes: &[u8], scrub: &dyn Fn(&str) -> String) -> Verdict {
        let response: BulkResponse = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            // The documents carry their _id, so sending them again cannot duplicate them.
            Err(e) => {
                return Verdict::all_retry(n, format!("unreadable _bulk response: {e}"), None);
            }
        };
        if !response.errors {
            return Verdict::all_shipped(n);
        }
        if response.items.len() != n {
            return Verdict::all_retry(
                n,
                format!(
                    "the _bulk response has {} items for {n} documents",
                    response.items.len()
                ),
                None,
            );
        }
        let mut verdict = Verdict::default();
        let mut retry_reasons: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in response.items.iter().enumerate() {
            let Some(result) = item.values().next() else {
                verdict.retry.push(i);
                *retry_reasons
                    .entry("an empty _bulk item".to_owned())
                    .or_default() += 1;
                continue;
            };
            match result.status {
                200..=299 | 409 => verdict.shipped += 1,
                429 | 500..=599 => {
                    verdict.retry.push(i);
                    *retry_reasons.entry(result.describe()).or_default() += 1;
                }
                _ => verdict.dropped.push((i, scrub(&result.describe()))),
            }
        }
        verdict.retry_reason = scrub(&summarize(&retry_reasons));
        verdict
    }
}

/// `text` with every occurrence of the token replaced by `[redacted]`.
fn scrub(token: Option<&Secret>, text: &str) -> String {
    match token {
        Some(t) if !t.expose().is_empty() => text.replace(t.expose(), "[redacted]"),
        _ => text.to_owned(),
    }
}

/// Logs and counts the dropped lines of one verdict, one line per reason (at most a few).
fn log_dropped(shared: &Shared, dropped: &[(usize, String)]) {
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, reason) in dropped {
        *by_reason.entry(reason.as_str()).or_default() += 1;
    }
    let mut rest = 0;
    for (i, (reason, n)) in by_reason.iter().enumerate() {
        if i < MAX_REASONS_LOGGED {
            shared.dropped_accepted(*n, &format!("the endpoint refused them: {reason}"));
        } else {
            rest += n;
        }
    }
    shared.dropped_accepted(rest, "the endpoint refused them for other reasons");
}

fn summarize(reasons: &BTreeMap<String, usize>) -> String {
    reasons
        .iter()
        .take(MAX_REASONS_LOGGED)
        .map(|(r, n)| format!("{n} × {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: the backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = value.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// The endpoint's own message in an error response: HEC's `text`/`code`, Elasticsearch's
/// `error.type`/`error.reason`, else the start of the body.
fn error_message(kind: SinkKind, status: StatusCode, body: &[u8]) -> String {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let detail = match (kind, &value) {
        (SinkKind::SplunkHec, Some(v)) if v.get("code").is_some() => {
            let text = v.get("text").and_then(Value::as_str).unwrap_or("");
            let code = v.get("code").map(Value::to_string).unwrap_or_default();
            let mut s = format!("{text} (HEC code {code}");
            if let Some(bad) = v.get("invalid-event-number") {
                let _ = write!(s, ", invalid-event-number {bad}");
            }
            s.push(')');
            Some(s)
        }
        (SinkKind::ElasticBulk, Some(v)) => match v.get("error") {
            Some(Value::Object(e)) => Some(format!(
                "{}: {}",
                e.get("type").and_then(Value::as_str).unwrap_or("error"),
                e.get("reason").and_then(Value::as_str).unwrap_or("")
            )),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let detail = detail.unwrap_or_else(|| {
        String::from_utf8_lossy(body)
            .chars()
            .take(300)
            .collect::<String>()
    });
    let hint = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " — check the sink's token",
        StatusCode::PAYLOAD_TOO_LARGE => " — lower batch_max or batch_max_bytes",
        _ => "",
    };
    format!("HTTP {status}: {}{hint}", detail.trim())
}

/// A `_bulk` response.
#[derive(Debug, Deserialize)]
struct BulkResponse {
    errors: bool,
    #[serde(default)]
    items: Vec<BTreeMap<String, BulkItem>>,
}

/// One item of a `_bulk` response (`{"create": {...}}`).
#[derive(Debug, Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

impl BulkItem {
    fn describe(&self) -> String {
        match &self.error {
            Some(Value::Object(e)) => format!(
                "status {} {}: {}",
                self.status,
                e.get("type").and_then(Value::as_str).unwrap_or("error"),
                e.get("reason").and_then(Value::as_str).unwrap_or("")
            ),
            Some(other) => format!("status {} {other}", self.status),
            None => format!("status {}", self.status),
        }
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<AuditSink>();
    send_sync::<AuditSinkConfig>();
    send_sync::<ServiceSecret>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::secret::SINK_TOKEN;

    #[test]
    fn urls_pick_the_kind_and_index() {
        let t = || Some(ServiceSecret::fixed(&SINK_TOKEN, "abc").unwrap());
        let c = AuditSinkConfig::parse("https://splunk:8088/services/collector", t()).unwrap();
        assert_eq!(c.kind, SinkKind::SplunkHec);
        let c =
            AuditSinkConfig::parse("https://splunk:8088/x/services/collector/event/", t()).unwrap();
        assert_eq!(c.kind, SinkKind::SplunkHec);
        let c = AuditSinkConfig::parse("http://es:9200/_bulk", None).unwrap();
        assert_eq!(
            (c.kind, c.index.as_str()),
            (SinkKind::ElasticBulk, DEFAULT_INDEX)
        );
        let c = AuditSinkConfig::parse("http://es:9200/audit-2024.06/_bulk?refresh=false", None)
            .unwrap();
        assert_eq!(c.index, "audit-2024.06");
    }

    #[test]
    fn unparsable_urls_do_not_echo_credentials() {
        let e = AuditSinkConfig::parse("http://user:hunter2@host:99999/_bulk", None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("not a URL"), "{e}");
    }

    #[test]
    fn backoff_grows_and_stays_capped() {
        let config = AuditSinkConfig::parse("http://es:9200/_bulk", None).unwrap();
        let (settled, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            label: "elasticsearch",
            metrics: Arc::new(Metrics::new()),
            events: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            shipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            settled,
            unreported: AtomicU64::new(0),
            last_report_ms: AtomicU64::new(NEVER),
            origin: std::time::Instant::now(),
            drop_log_every_ms: 1,
            queue_capacity: 1,
        });
        let s = Shipper::new(config, shared);
        for retry in 1..40 {
            let d = s.backoff(retry);
            assert!(d <= s.max_backoff, "retry {retry}: {d:?}");
            let exp = u32::try_from(retry - 1).unwrap().min(20);
            let base = s.min_backoff.saturating_mul(1 << exp).min(s.max_backoff);
            assert!(d >= base / 2, "retry {retry}: {d:?}");
        }
    }
}
