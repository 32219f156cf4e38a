//! `serve` operations: Prometheus metrics ([`Metrics`]) and audit shipping ([`AuditSink`]) to
//! loopback servers that speak Splunk HEC's and Elasticsearch `_bulk`'s request and response
//! formats and record what they got.

#![cfg(feature = "serve")]
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sre_core::testing::{EchoTool, ScriptedProvider, answer, call, tool_turn};
use sre_core::{Agent, Event, Observer};
use sre_tools::serve::Trigger;
use sre_tools::serve::audit_sink::{
    AuditSink, AuditSinkConfig, AuditSinkError, DEFAULT_INDEX, SinkKind,
};
use sre_tools::serve::metrics::Metrics;
use sre_tools::serve::secret::{SINK_TOKEN, ServiceSecret};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// A recording loopback endpoint.

/// One request the endpoint got.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
}

type Responder = Box<dyn Fn(usize, &Got) -> (StatusCode, Value) + Send + Sync>;

struct Endpoint {
    got: Mutex<Vec<Got>>,
    respond: Responder,
}

impl Endpoint {
    fn requests(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

async fn record(
    State(endpoint): State<Arc<Endpoint>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let got = Got {
        path: uri.path().to_owned(),
        headers,
        body,
    };
    let n = {
        let mut all = endpoint.got.lock().unwrap();
        all.push(got.clone());
        all.len() - 1
    };
    let (status, body) = (endpoint.respond)(n, &got);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Serves `respond` on 127.0.0.1; returns the base URL.
async fn endpoint(
    respond: impl Fn(usize, &Got) -> (StatusCode, Value) + Send + Sync + 'static,
) -> (String, Arc<Endpoint>) {
    let endpoint = Arc::new(Endpoint {
        got: Mutex::new(Vec::new()),
        respond: Box::new(respond),
    });
    let app = axum::Router::new()
        .fallback(record)
        .with_state(Arc::clone(&endpoint));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), endpoint)
}

fn hec_success() -> (StatusCode, Value) {
    (StatusCode::OK, json!({"text": "Success", "code": 0}))
}

/// A `_bulk` response: `statuses` per item, in order.
fn bulk_response(statuses: &[u16]) -> Value {
    let items: Vec<Value> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut item = json!({"_index": "x", "_id": format!("id{i}"), "status": s});
            match s {
                429 => {
                    item["error"] = json!({"type": "es_rejected_execution_exception",
                        "reason": "rejected execution of coordinating operation"});
                }
                400 => {
                    item["error"] = json!({"type": "document_parsing_exception",
                        "reason": "[1:42] failed to parse field [event.step] of type [long]"});
                }
                409 => {
                    item["error"] = json!({"type": "version_conflict_engine_exception",
                        "reason": "document already exists"});
                }
                _ => item["result"] = json!("created"),
            }
            json!({"create": item})
        })
        .collect();
    json!({"took": 3, "errors": statuses.iter().any(|s| !(200..300).contains(s)), "items": items})
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn event(i: u64) -> Event {
    Event::ToolFinished {
        run_id: "run-1".into(),
        call_id: format!("call-{i}"),
        tool: "k8s_get_deployment".into(),
        ok: true,
        result: format!("deployment shop/web: revision {i}"),
        duration_ms: i,
    }
}

/// A token file under the temp dir, unique per test.
fn token_file(name: &str, content: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("sre-serve-ops-{}-{name}.token", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

fn quick(mut config: AuditSinkConfig) -> AuditSinkConfig {
    config.min_backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(20);
    config.flush_every = Duration::from_millis(20);
    config.host = "replica-0".into();
    config
}

/// The JSON objects of a HEC body (concatenated, whitespace between them allowed).
fn hec_objects(body: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(body)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

/// The (action, document) pairs of a `_bulk` body.
fn bulk_pairs(body: &str) -> Vec<(Value, Value)> {
    assert!(body.ends_with('\n'), "a _bulk body ends with a newline");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() % 2, 0, "action and document lines pair up");
    lines
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

/// The value of an exposition line `name{labels} value`, when present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Captures `tracing` events of the current thread as `LEVEL message field=value…` lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        write!(self.0, " {}={value:?}", field.name()).unwrap();
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(event.metadata().level().to_string());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The `dropped=N` of every captured line that contains `marker`.
fn dropped_counts(lines: &[String], marker: &str) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l.contains(marker))
        .map(|l| {
            let at = l.find(" dropped=").unwrap() + " dropped=".len();
            l[at..].split(' ').next().unwrap().parse().unwrap()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Splunk HEC.

#[tokio::test]
async fn hec_gets_every_event_with_its_token_path_content_type_and_envelope() {
    let (base, hec) = endpoint(|_, _| hec_success()).await;
    let token =
        ServiceSecret::from_file(&SINK_TOKEN, token_file("hec-shape", "hec-0123-token\n")).unwrap();
    let config =
        AuditSinkConfig::parse(&format!("{base}/services/collector/event"), Some(token)).unwrap();
    assert_eq!(config.kind, SinkKind::SplunkHec);
    let metrics = Arc::new(Metrics::new());
    let (sink, task) = AuditSink::start(quick(config), Arc::clone(&metrics));
    for i in 1..=3 {
        sink.on_event(&event(i));
    }
    sink.flush(WAIT).await.unwrap();

    let got = hec.requests();
    assert_eq!(got.len(), 1, "three queued events go in one batch");
    let r = &got[0];
    assert_eq!(r.path, "/services/collector/event");
    assert_eq!(r.header("authorization"), "Splunk hec-0123-token");
    assert_eq!(r.header("content-type"), "application/json");
    let objects = hec_objects(&r.body);
    assert_eq!(objects.len(), 3);
    let mut instance = None;
    for (i, o) in (1_u64..).zip(&objects) {
        let time = o["time"].as_f64().unwrap();
        assert!(time > 1.6e9 && time < 1e10, "epoch seconds: {time}");
        assert_eq!(o["host"], "replica-0");
        assert_eq!(o["source"], "sre-agent");
        assert_eq!(o["sourcetype"], "sre-agent:audit");
        assert_eq!(o["event"]["seq"], i);
        let inst = o["event"]["instance"].as_str().unwrap().to_owned();
        assert_eq!(instance.get_or_insert(inst.clone()), &inst);
        // The event itself, exactly as the audit log records it.
        assert_eq!(o["event"]["event"], serde_json::to_value(event(i)).unwrap());
    }

    let stats = sink.close(WAIT).await;
    task.await.unwrap();
    assert_eq!((stats.events, stats.shipped, stats.dropped), (3, 3, 0));
    let text = metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_audit_events_total{sink="splunk_hec",result="shipped"}"#
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn hec_busy_503_is_retried_and_nothing_is_lost() {
    let (base, hec) = endpoint(|n, _| {
        if n == 0 {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"text": "Server is busy", "code": 9}),
            )
        } else {
            hec_success()
        }
    })
    .await;
    let token = ServiceSecret::fixed(&SINK_TOKEN, "hec-token").unwrap();
    let config =
        AuditSinkConfig::parse(&format!("{base}/services/collector"), Some(token)).unwrap();
    let metrics = Arc::new(Metrics::new());
    let (sink, task) = AuditSink::start(quick(config), Arc::clone(&metrics));
    for i in 1..=5 {
        sink.on_event(&event(i));
    }
    sink.flush(WAIT).await.unwrap();

    let got = hec.requests();
    assert_eq!(got.len(), 2, "one 503, then the same batch again");
    assert_eq!(
        got[0].body, got[1].body,
        "the retry re-sends the same events"
    );
    let seqs: Vec<u64> = hec_objects(&got[1].body)
        .iter()
        .map(|o| o["event"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let stats = sink.close(WAIT).await;
    task.await.unwrap();
    assert_eq!((stats.shipped, stats.dropped), (5, 0));
    let text = metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_audit_events_total{sink="splunk_hec",result="shipped"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_audit_events_total{sink="splunk_hec",result="dropped"}"#
        ),
        None
    );
}

#[tokio::test]
async fn hec_retries_run_out_then_the_batch_is_dropped_counted_and_logged() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (base, hec) = endpoint(|_, _| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"text": "HEC is unhealthy, queues are full", "code": 18}),
        )
    })
    .await;
    let token = ServiceSecret::fixed(&SINK_TOKEN, "hec-token").unwrap();
    let mut config =
        quick(AuditSinkConfig::parse(&format!("{base}/services/collector"), Some(token)).unwrap());
    config.max_retries = 2;
    let metrics = Arc::new(Metrics::new());
    let (sink, task) = AuditSink::start(config, Arc::clone(&metrics));
    sink.on_event(&event(1));
    sink.on_event(&event(2));
    sink.flush(WAIT).await.unwrap();
    assert_eq!(hec.requests().len(), 3, "the first try and two retries");
    let stats = sink.close(WAIT).await;
    task.await.unwrap();
    assert_eq!((stats.shipped, stats.dropped), (0, 2));
    assert_eq!(
        sample(
            &metrics.encode(),
            r#"sre_agent_audit_events_total{sink="splunk_hec",result="dropped"}"#
        ),
        Some(2.0)
    );
    let lines = capture.lines();
    let gave_up: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("gave up after 2 retries"))
        .collect();
    assert_eq!(gave_up.len(), 1, "{lines:#?}");
    assert!(gave_up[0].starts_with("WARN"), "{}", gave_up[0]);
    assert!(
        gave_up[0].contains("HEC is unhealthy, queues are full (HEC code 18)"),
        "{}",
        gave_up[0]
    );
    assert!(gave_up[0].contains("dropped=2"), "{}", gave_up[0]);
}

#[tokio::test]
async fn hec_token_never_appears_in_debug_errors_or_logs() {
    let secret = "s3cr3t-hec-token-4f9a";
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    // A careless endpoint echoes the token it refused.
    let (base, hec) = endpoint(move |_, got| {
        let auth = got.header("authorization").to_owned();
        (
            StatusCode::FORBIDDEN,
            json!({"text": format!("Invalid token: {auth}"), "code": 4}),
        )
    })
    .await;
    let token = ServiceSecret::from_file(
        &SINK_TOKEN,
        token_file("hec-secret", &format!("{secret}\n")),
    )
    .unwrap();
    assert!(!format!("{token:?}").contains(secret));
    let config =
        quick(AuditSinkConfig::parse(&format!("{base}/services/collector"), Some(token)).unwrap());
    assert!(!format!("{config:?}").contains(secret), "{config:?}");
    let metrics = Arc::new(Metrics::new());
    let (sink, task) = AuditSink::start(config, Arc::clone(&metrics));
    assert!(!format!("{sink:?}").contains(secret));
    sink.on_event(&event(1));
    sink.flush(WAIT).await.unwrap();
    assert_eq!(hec.requests().len(), 1, "a 403 is not retried");
    assert_eq!(
        hec.requests()[0].header("authorization"),
        format!("Splunk {secret}"),
        "the token does reach the endpoint"
    );
    let stats = sink.close(WAIT).await;
    task.await.unwrap();
    assert_eq!((stats.shipped, stats.dropped), (0, 1));

    let lines = capture.lines();
    let refused: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("HTTP 403 Forbidden: Invalid token"))
        .collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert!(
        refused[0].contains("check the sink's token"),
        "{}",
        refused[0]
    );
    assert!(refused[0].contains("[redacted]"), "{}", refused[0]);
    for line in &lines {
        assert!(
            !line.contains(secret),
            "the token leaked into a log line: {line}"
        );
    }
    assert!(!metrics.encode().contains(secret));
}

#[tokio::test]
async fn token_files_are_checked_and_never_echoed() {
    let secret = "leaky-token value";
    let path = token_file("two-words", secret);
    let token = ServiceSecret::from_file(&SINK_TOKEN, &path).unwrap();
    let e = token.check().await.unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("U+0020 (white space)"), "{e}");
    assert!(!e.contains("leaky"), "{e}");

    let empty = token_file("empty", "\n");
    let e = ServiceSecret::from_file(&SINK_TOKEN, &empty)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");

    let missing = std::env::temp_dir().join("sre-serve-ops-no-such-file.token");
    let e = ServiceSecret::from_file(&SINK_TOKEN, &missing)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert!(
        matches!(e, sre_core::secret::SecretError::NotFound { .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("sre-serve-ops-no-such-file.token"),
        "{e}"
    );

    let t = ServiceSecret::from_file(&SINK_TOKEN, token_file("ok", "abc.def-123\r\n")).unwrap();
    assert_eq!(t.get().await.unwrap().expose(), "abc.def-123");
    assert_eq!(t.reference().scheme(), "file");
    // A config error wraps the secret's error and still never echoes the value.
    let e = AuditSinkError::from(ServiceSecret::fixed(&SINK_TOKEN, secret).unwrap_err());
    assert!(!e.to_string().contains("leaky"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Elasticsearch _bulk.

#[tokio::test]
async fn bulk_gets_ndjson_create_actions_with_index_id_timestamp_and_api_key() {
    let (base, es) = endpoint(|_, got| {
        let n = got.body.lines().count() / 2;
        (StatusCode::OK, bulk_response(&vec![201; n]))
    })
    .await;
    let key = ServiceSecret::fixed(
        &SINK_TOKEN,
        "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
    )
    .unwrap();
    let config = AuditSinkConfig::parse(&format!("{base}/audit-test/_bulk"), Some(key)).unwrap();
    assert_eq!(
        (config.kind, config.index.as_str()),
        (SinkKind::ElasticBulk, "audit-test")
    );
    let (sink, task) = AuditSink::start(quick(config), Arc::new(Metrics::new()));
    for i in 1..=2 {
        sink.on_event(&event(i));
    }
    sink.flush(WAIT).await.unwrap();
    let got = es.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/audit-test/_bulk");
    assert_eq!(r.header("content-type"), "application/x-ndjson");
    assert_eq!(
        r.header("authorization"),
        "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
    );
    let pairs = bulk_pairs(&r.body);
    assert_eq!(pairs.len(), 2);
    for (i, (action, doc)) in (1_u64..).zip(&pairs) {
        let create = action["create"].as_object().unwrap();
        assert_eq!(action.as_object().unwrap().len(), 1, "only a create action");
        assert_eq!(create["_index"], "audit-test");
        let instance = doc["instance"].as_str().unwrap();
        assert_eq!(create["_id"], format!("{instance}-{i}"));
        let ts = doc["@timestamp"].as_str().unwrap();
        assert!(
            ts.len() == 24 && ts.as_bytes()[10] == b'T' && ts.ends_with('Z'),
            "RFC 3339 with milliseconds: {ts}"
        );
        assert_eq!(doc["host"]["name"], "replica-0");
        assert_eq!(doc["seq"], i);
        assert_eq!(doc["event"], serde_json::to_value(event(i)).unwrap());
    }
    let stats = sink.close(WAIT).await;
    task.await.unwrap();
    assert_eq!((stats.shipped, stats.dropped), (2, 0));
}

#[tokio::test]
async fn bulk_partial_failure_resends_only_the_429_item_and_drops_the_400_one() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (base, es) = endpoint(|n, got| {
        let docs = got.body.lines().count() / 2;
        if n == 0 {
            // created, rejected (busy), refused (mapping), already there (an earlier try).
            (StatusCode::OK, bulk_response(&[201, 429, 400, 409]))
        } else {
            (StatusCode::OK, bulk_response(&vec![201; docs]))
        }
    })
    .await;
    let config = quick(AuditSinkConfig::parse(&format!("{base}/_bulk"), None).unwrap());
    assert_eq!(config.index, DEFAULT_INDEX);
    let metrics = Arc::new(Metrics::new());
    let (sink, task) = AuditSink::start(config, Arc::clone(&metrics));
    for i in 1..=4 {
        sink.on_event(&event(i));
    }
    sink.flush(WAIT).await.unwrap();

    let got = es.requests();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].headers.get("authorization").is_none(),
        "no key, no header"
    );
    let first = bulk_pairs(&got[0].body);
    assert_eq!(first.len(), 4);
    assert!(
        first
            .iter()
            .all(|(a, _)| a["create"]["_index"] == DEFAULT_INDEX)
    );
    let again = bulk_pairs(&got[1].body);
    assert_eq!(again.len(), 1, "only the 429 item is sent again");
    assert_eq!(again[0].1["seq"], 2);
    assert_eq!(again[0].0, first[1].0, "with the same _id");
    assert_eq!(again[0].1, first[1].1);

    let stats = sink.close(WAIT).await;
    task.await.unwrap();
    assert_eq!(
        (stats.events, stats.shipped, stats.dropped),
        (4, 3, 1),
        "201 + 409 + the re-sent 429 shipped, the 400 dropped"
    );
    let text = metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_audit_events_total{sink="elasticsearch",result="shipped"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_audit_events_total{sink="elasticsearch",result="dropped"}"#
        ),
        Some(1.0)
    );
    let lines = capture.lines();
    let refused: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("document_parsing_exception"))
        .collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert!(refused[0].contains("status 400"), "{}", refused[0]);
    assert!(
        refused[0].contains("failed to parse field"),
        "{}",
        refused[0]
    );
    assert!(refused[0].contains("dropped=1"), "{}", refused[0]);
}

#[tokio::test]
async fn bulk_request_level_400_drops_the_batch_with_elasticsearchs_reason() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let (base, es) = endpoint(|_, _| {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": {"type": "illegal_argument_exception",
                "reason": "Malformed action/metadata line [1]"}, "status": 400}),
        )
    })
    .await;
    let config = quick(AuditSinkConfig::parse(&format!("{base}/_bulk"), None).unwrap());
    let (sink, task) = AuditSink::start(config, Arc::new(Metrics::new()));
    sink.on_event(&event(1));
    sink.flush(WAIT).await.unwrap();
    let stats = sink.close(WAIT).await;
    task.await.unwrap();
    assert_eq!(es.requests().len(), 1, "a 400 is not retried");
    assert_eq!((stats.shipped, stats.dropped), (0, 1));
    assert!(
        capture
            .lines()
            .iter()
            .any(|l| l.contains("illegal_argument_exception: Malformed action/metadata line")),
        "{:#?}",
        capture.lines()
    );
}

// ---------------------------------------------------------------------------------------------
// Back-pressure: an unreachable endpoint and a full queue.

#[tokio::test]
async fn unreachable_sink_and_full_queue_drop_at_once_count_and_log_rate_limited() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let token = ServiceSecret::fixed(&SINK_TOKEN, "hec-token").unwrap();
    let mut config = AuditSinkConfig::parse(
        &format!("http://127.0.0.1:{port}/services/collector"),
        Some(token),
    )
    .unwrap();
    config.queue_capacity = 4;
    config.batch_max = 2;
    config.max_retries = 1000;
    config.min_backoff = Duration::from_secs(3600);
    config.max_backoff = Duration::from_secs(3600);
    config.drop_log_every = Duration::from_secs(3600);
    let metrics = Arc::new(Metrics::new());
    let (sink, task) = AuditSink::start(config, Arc::clone(&metrics));

    // On this single-threaded runtime the shipper cannot run while the loop runs: if on_event
    // waited for room in the queue, this would never end.
    for i in 1..=100 {
        sink.on_event(&event(i));
    }
    let stats = sink.stats();
    assert_eq!((stats.events, stats.accepted, stats.dropped), (100, 4, 96));
    assert_eq!(
        sample(
            &metrics.encode(),
            r#"sre_agent_audit_events_total{sink="splunk_hec",result="dropped"}"#
        ),
        Some(96.0)
    );
    let marker = "before queueing them";
    let early = dropped_counts(&capture.lines(), marker);
    assert_eq!(
        early,
        [1],
        "one line for the first drop, then quiet: {early:?}"
    );

    // Closing cannot ship the four queued events (nobody listens, the next retry is an hour
    // away): they are dropped at the deadline and counted; events after closing are dropped too.
    let stats = sink.close(Duration::from_millis(300)).await;
    task.await.unwrap();
    assert_eq!((stats.shipped, stats.dropped), (0, 100));
    assert_eq!(stats.shipped + stats.dropped, stats.events);
    sink.on_event(&event(101));
    assert_eq!(sink.stats().dropped, 101);
    assert_eq!(
        sample(
            &metrics.encode(),
            r#"sre_agent_audit_events_total{sink="splunk_hec",result="dropped"}"#
        ),
        Some(101.0)
    );
    let lines = capture.lines();
    let reported: u64 = dropped_counts(&lines, marker).iter().sum();
    assert_eq!(
        reported, 96,
        "every drop before the queue is reported: {lines:#?}"
    );
    assert_eq!(
        dropped_counts(&lines, "deadline passed")
            .iter()
            .sum::<u64>(),
        4,
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("cannot connect")),
        "the first failure says what failed: {lines:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The sink and the metrics as observers of a real agent run.

#[tokio::test]
async fn a_run_ships_every_event_in_order_and_counts_its_tool_calls() {
    let (base, hec) = endpoint(|_, _| hec_success()).await;
    let token = ServiceSecret::fixed(&SINK_TOKEN, "hec-token").unwrap();
    let config =
        quick(AuditSinkConfig::parse(&format!("{base}/services/collector"), Some(token)).unwrap());
    let metrics = Arc::new(Metrics::new());
    let (sink, task) = AuditSink::start(config, Arc::clone(&metrics));
    let model = ScriptedProvider::new([
        tool_turn(vec![call(
            "c1",
            "k8s_get_deployment",
            json!({"text": "deployment shop/web: 3/3 ready"}),
        )]),
        tool_turn(vec![call("c2", "mystery_tool", json!({"text": "x"}))]),
        answer("all good"),
    ]);
    let agent = Agent::builder(model)
        .tool(EchoTool::named("k8s_get_deployment"))
        .tool(EchoTool::named("mystery_tool"))
        .observer_arc(metrics.observer())
        .observer_arc(Arc::clone(&sink) as Arc<dyn Observer>)
        .build()
        .unwrap();
    let report = agent.run("check shop/web").await;
    assert!(report.outcome.is_completed(), "{:?}", report.outcome);
    let stats = sink.close(WAIT).await;
    task.await.unwrap();
    assert_eq!(stats.dropped, 0);

    let events: Vec<Value> = hec
        .requests()
        .iter()
        .flat_map(|r| hec_objects(&r.body))
        .collect();
    assert_eq!(events.len() as u64, stats.events);
    let seqs: Vec<u64> = events
        .iter()
        .map(|o| o["event"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=stats.events).collect::<Vec<_>>());
    let types: Vec<&str> = events
        .iter()
        .map(|o| o["event"]["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"run_started"));
    assert_eq!(types.last(), Some(&"run_finished"));
    assert_eq!(types.iter().filter(|t| **t == "tool_finished").count(), 2);

    let text = metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_tool_calls_total{tool="k8s_get_deployment",result="ok"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_tool_calls_total{tool="other",result="ok"}"#
        ),
        Some(1.0),
        "a tool outside the known set is `other`"
    );
    assert!(!text.contains("mystery_tool"));
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_tool_call_seconds_count{tool="k8s_get_deployment"}"#
        ),
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration errors.

#[test]
fn sink_urls_that_are_wrong_get_an_error_naming_what_is_wrong() {
    let token = || Some(ServiceSecret::fixed(&SINK_TOKEN, "tok").unwrap());
    let cases: &[(&str, bool, &str)] = &[
        (
            "ftp://logs.example/_bulk",
            false,
            "scheme must be http or https",
        ),
        (
            "file:///var/log/_bulk",
            false,
            "scheme must be http or https",
        ),
        (
            "https://elastic:changeme@es.example:9200/_bulk",
            false,
            "credentials in the URL",
        ),
        (
            "https://splunk.example:8088/services/collector/raw",
            true,
            "neither a Splunk HEC endpoint",
        ),
        (
            "https://es.example:9200/",
            false,
            "neither a Splunk HEC endpoint",
        ),
        (
            "https://es.example:9200/Audit/_bulk",
            false,
            "not a usable Elasticsearch index name",
        ),
        (
            "https://es.example:9200/_audit/_bulk",
            false,
            "not a usable Elasticsearch index name",
        ),
        ("https://es.example:9200/_bulk#x", false, "#fragment"),
        (
            "https://splunk.example:8088/services/collector?token=abc123",
            true,
            "looks like a credential",
        ),
        (
            "splunk.example:8088/services/collector",
            true,
            "scheme must be http or https",
        ),
        ("not a url at all", true, "not a URL"),
        ("http://:99999/_bulk", false, "not a URL"),
    ];
    for (url, with_token, want) in cases {
        let t = if *with_token { token() } else { None };
        let e = AuditSinkConfig::parse(url, t).unwrap_err().to_string();
        assert!(e.contains(want), "{url}: {e}");
        assert!(e.starts_with("audit sink URL"), "{url}: {e}");
        assert!(
            !e.contains("changeme") && !e.contains("abc123"),
            "{url}: {e}"
        );
    }
    let e =
        AuditSinkConfig::parse("https://splunk.example:8088/services/collector", None).unwrap_err();
    assert!(
        matches!(e, AuditSinkError::MissingToken(SinkKind::SplunkHec)),
        "{e}"
    );
    assert!(e.to_string().contains("needs a token"), "{e}");

    // The accepted shapes.
    let ok = |url: &str, t| AuditSinkConfig::parse(url, t).unwrap();
    assert_eq!(
        ok("https://h:8088/services/collector/", token()).kind,
        SinkKind::SplunkHec
    );
    assert_eq!(
        ok("https://h/splunk/services/collector/event", token()).kind,
        SinkKind::SplunkHec
    );
    let c = ok("http://h:9200/_bulk", None);
    assert_eq!(
        (c.kind, c.index.as_str()),
        (SinkKind::ElasticBulk, DEFAULT_INDEX)
    );
    let c = ok("https://h/logs-sre.audit/_bulk?refresh=false", token());
    assert_eq!(c.index, "logs-sre.audit");
    assert_eq!(c.endpoint(), "https://h/logs-sre.audit/_bulk");
}

// ---------------------------------------------------------------------------------------------
// Metrics.

/// Metrics after one call of every method (and hostile label input).
fn exercised() -> Arc<Metrics> {
    let m = Arc::new(Metrics::new());
    m.run_started(Trigger::Watcher);
    m.run_started(Trigger::Watcher);
    m.run_finished(Trigger::Alertmanager, "parked");
    m.run_finished(Trigger::Trivy, "completed");
    m.run_finished(Trigger::Trivy, "exploded\"} 1\nfake 2");
    m.approval_decided("approve", Duration::from_secs(45));
    m.approval_decided("reject", Duration::from_secs(7200));
    m.approval_decided("expired", Duration::from_secs(86_400));
    m.approval_decided("whatever", Duration::from_secs(1));
    m.tool_call("k8s_patch_image", true, Duration::from_millis(250));
    m.tool_call("k8s_patch_image", false, Duration::from_millis(30));
    m.tool_call(
        "evil\"} 1\nsre_agent_leader 7",
        false,
        Duration::from_millis(1),
    );
    m.tokens("groq/llama-3.3-70b", 1200, 300, 0.25);
    m.tokens("groq/llama-3.3-70b", 800, 100, 0.5);
    m.set_queue_depth(7);
    m.queue_dropped(3);
    m.set_leader(true);
    m.lease_transition();
    m.lease_transition();
    m.audit_shipped("elasticsearch", 10);
    m.audit_dropped("elasticsearch", 2);
    m.observer().on_event(&Event::ToolFinished {
        run_id: "r".into(),
        call_id: "c".into(),
        tool: "trivy_scan_image".into(),
        ok: true,
        result: String::new(),
        duration_ms: 1500,
    });
    m
}

#[test]
fn metrics_encode_every_family_after_the_calls() {
    let m = exercised();
    let text = m.encode();
    let expect = [
        (r#"sre_agent_runs_started_total{trigger="watcher"}"#, 2.0),
        (
            r#"sre_agent_runs_total{trigger="alertmanager",outcome="parked"}"#,
            1.0,
        ),
        (
            r#"sre_agent_runs_total{trigger="trivy",outcome="completed"}"#,
            1.0,
        ),
        (
            r#"sre_agent_runs_total{trigger="trivy",outcome="other"}"#,
            1.0,
        ),
        (r#"sre_agent_approvals_total{decision="approve"}"#, 1.0),
        (r#"sre_agent_approvals_total{decision="reject"}"#, 1.0),
        (r#"sre_agent_approvals_total{decision="expired"}"#, 1.0),
        (r#"sre_agent_approvals_total{decision="other"}"#, 1.0),
        ("sre_agent_approval_latency_seconds_count", 4.0),
        ("sre_agent_approval_latency_seconds_sum", 93_646.0),
        (
            r#"sre_agent_tool_calls_total{tool="k8s_patch_image",result="ok"}"#,
            1.0,
        ),
        (
            r#"sre_agent_tool_calls_total{tool="k8s_patch_image",result="error"}"#,
            1.0,
        ),
        (
            r#"sre_agent_tool_calls_total{tool="other",result="error"}"#,
            1.0,
        ),
        (
            r#"sre_agent_tool_calls_total{tool="trivy_scan_image",result="ok"}"#,
            1.0,
        ),
        (
            r#"sre_agent_tool_call_seconds_count{tool="k8s_patch_image"}"#,
            2.0,
        ),
        (
            r#"sre_agent_tool_call_seconds_sum{tool="trivy_scan_image"}"#,
            1.5,
        ),
        (
            r#"sre_agent_tokens_total{provider="groq/llama-3.3-70b",direction="input"}"#,
            2000.0,
        ),
        (
            r#"sre_agent_tokens_total{provider="groq/llama-3.3-70b",direction="output"}"#,
            400.0,
        ),
        (
            r#"sre_agent_cost_usd_total{provider="groq/llama-3.3-70b"}"#,
            0.75,
        ),
        ("sre_agent_queue_depth", 7.0),
        ("sre_agent_queue_dropped_total", 3.0),
        ("sre_agent_leader", 1.0),
        ("sre_agent_lease_transitions_total", 2.0),
        (
            r#"sre_agent_audit_events_total{sink="elasticsearch",result="shipped"}"#,
            10.0,
        ),
        (
            r#"sre_agent_audit_events_total{sink="elasticsearch",result="dropped"}"#,
            2.0,
        ),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    for family in [
        "# TYPE sre_agent_approval_latency_seconds histogram",
        "# UNIT sre_agent_approval_latency_seconds seconds",
        "# TYPE sre_agent_tool_call_seconds histogram",
        "# TYPE sre_agent_leader gauge",
        "# TYPE sre_agent_runs counter",
    ] {
        assert!(text.contains(family), "{family} in\n{text}");
    }
    assert!(
        text.contains(r#"sre_agent_approval_latency_seconds_bucket{le="60.0"} 2"#),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    m.set_leader(false);
    assert_eq!(sample(&m.encode(), "sre_agent_leader"), Some(0.0));
}

#[test]
fn hostile_label_input_cannot_forge_series() {
    let text = exercised().encode();
    // Every sample line is well formed, and the injected text appears nowhere.
    let line =
        regex::Regex::new(r#"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-z_]+="[^"\\\n]*",?)*\})? \S+$"#)
            .unwrap();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.is_match(l), "malformed exposition line {l:?}");
    }
    assert!(!text.contains("evil") && !text.contains("fake") && !text.contains("exploded"));
    assert_eq!(
        sample(&text, "sre_agent_leader"),
        Some(1.0),
        "not the forged 7"
    );
}

#[test]
fn free_form_label_values_are_bounded() {
    let m = Metrics::new();
    for i in 0..40 {
        m.tokens(&format!("provider-{i}"), 1, 1, 0.0);
        m.tool_call(&format!("tool-{i}"), true, Duration::ZERO);
    }
    let text = m.encode();
    let providers = text
        .lines()
        .filter(|l| l.starts_with("sre_agent_cost_usd_total{"))
        .count();
    assert_eq!(providers, 17, "16 named providers and `other`:\n{text}");
    assert_eq!(
        sample(&text, r#"sre_agent_cost_usd_total{provider="other"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_tokens_total{provider="other",direction="input"}"#
        ),
        Some(24.0)
    );
    let tools = text
        .lines()
        .filter(|l| l.starts_with("sre_agent_tool_calls_total{"))
        .count();
    assert_eq!(tools, 1, "every unknown tool is `other`:\n{text}");
}

#[test]
fn counters_from_many_threads_add_up() {
    let m = Arc::new(Metrics::new());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..250 {
                    m.tool_call("k8s_list_pods", true, Duration::from_millis(5));
                    m.tokens(&format!("p{i}"), 1, 0, 0.0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            r#"sre_agent_tool_calls_total{tool="k8s_list_pods",result="ok"}"#
        ),
        Some(1000.0)
    );
    for i in 0..4 {
        assert_eq!(
            sample(
                &text,
                &format!(r#"sre_agent_tokens_total{{provider="p{i}",direction="input"}}"#)
            ),
            Some(250.0)
        );
    }
}
