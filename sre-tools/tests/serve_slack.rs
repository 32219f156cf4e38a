//! Slack approvals over real HTTP: [`Slack`] asks through a loopback server that speaks Slack's
//! Web API (it records every call and answers `ok`, an error, or `429` on demand), and the real
//! interactivity endpoint ([`slack::routes`]) bound on 127.0.0.1:0 decides approvals parked in an
//! in-memory [`SqliteStore`]. Clicks are the Slack SDK's `block_actions` payload sample filled in,
//! form-encoded and signed here with the `hmac` crate (independently of the code under test).
//!
//! Covers: the Block Kit question (only the id on the buttons, the bot token header, hostile text
//! escaped, the diff bounded), a valid click (decided, signalled, audited with the request's
//! digest, the message updated), every refused request (forged signature, wrong secret, replayed
//! timestamp, altered body, missing headers, an oversized body, a user not on the allow-list)
//! leaving the approval pending, a double click, an expired approval, the approver group, Slack
//! API errors (`ratelimited` with `Retry-After`, `channel_not_found`, `invalid_auth`) and
//! `settle`; the tool's typed findings (scans, crash) shown with their ids and counts, hostile
//! ids inert, long lists bounded.

#![cfg(feature = "serve")]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

#[path = "support/parked.rs"]
mod parked;

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sre_core::approval::ApprovalRequest;
use sre_core::evidence::{
    CrashEvidence, Evidence, Finding, ImageScan, ScanSource, Severities, VulnerabilityEvidence,
};
use sre_core::plan::{ImageChange, Preview, Risk, Target};
use sre_core::{Decision, Event, Observer, PendingApproval};
use sre_tools::serve::api;
use sre_tools::serve::channel::{Ask, Channel, DecisionSink, Ending, Settled};
use sre_tools::serve::metrics::Metrics;
use sre_tools::serve::secret::{SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, ServiceSecret};
use sre_tools::serve::slack::{self, Slack, SlackConfig};
use sre_tools::serve::{ApprovalState, ApprovalView, Incident, RunStore, SqliteStore, Trigger};
use tokio::sync::{Notify, oneshot};

const BOT_TOKEN: &str = "xoxb-1111-2222-TESTTOKENabcdef";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const WRONG_SECRET: &str = "0000000000000000abcd99yyyzzz85a5";
const APPROVER: &str = "U0APPROVER";
const INTRUDER: &str = "U0INTRUDER";
const CHANNEL_ID: &str = "C0SRE";
const HOUR: i64 = 3_600_000;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

// ---------------------------------------------------------------------------------------------
// A loopback server that speaks Slack's Web API.

/// One recorded Web API call.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    http_method: String,
    authorization: Option<String>,
    content_type: Option<String>,
    /// The JSON body, or the query as a JSON object.
    body: Value,
}

/// What the fake answers a call with, instead of `ok`.
#[derive(Debug, Clone)]
enum Scripted {
    /// `200 {"ok": false, "error": code}`.
    Error(&'static str),
    /// `429` with `Retry-After` seconds and `{"ok": false, "error": "ratelimited"}`.
    RateLimited(u64),
}

#[derive(Default)]
struct FakeState {
    calls: Mutex<Vec<Call>>,
    script: Mutex<HashMap<String, VecDeque<Scripted>>>,
    group: Mutex<Vec<String>>,
    seq: Mutex<u64>,
}

struct FakeSlack {
    url: String,
    state: Arc<FakeState>,
    _stop: oneshot::Sender<()>,
}

impl FakeSlack {
    async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let router = Router::new()
            .route("/api/{method}", any(fake_method))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(api::serve(listener, router, async {
            let _ = stopped.await;
        }));
        Self {
            url: format!("http://{addr}/api"),
            state,
            _stop: stop,
        }
    }

    fn script(&self, method: &str, answers: &[Scripted]) {
        self.state
            .script
            .lock()
            .unwrap()
            .entry(method.to_owned())
            .or_default()
            .extend(answers.iter().cloned());
    }

    fn calls(&self, method: &str) -> Vec<Call> {
        self.state
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    fn all_calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` calls of `method` were made; returns them.
    async fn wait_for(&self, method: &str, n: usize) -> Vec<Call> {
        for _ in 0..500 {
            let calls = self.calls(method);
            if calls.len() >= n {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{method} was called {} times, expected {n}; calls: {:?}",
            self.calls(method).len(),
            self.all_calls()
        );
    }
}

async fn fake_method(
    State(state): State<Arc<FakeState>>,
    Path(method): Path<String>,
    http_method: axum::http::Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let body = if http_method == axum::http::Method::GET {
        let mut map = serde_json::Map::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(k.to_owned(), Value::String(v.to_owned()));
        }
        Value::Object(map)
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    state.calls.lock().unwrap().push(Call {
        method: method.clone(),
        http_method: http_method.to_string(),
        authorization: text("authorization"),
        content_type: text("content-type"),
        body: body.clone(),
    });
    let scripted = state
        .script
        .lock()
        .unwrap()
        .get_mut(&method)
        .and_then(VecDeque::pop_front);
    match scripted {
        Some(Scripted::Error(code)) => {
            return axum::Json(json!({"ok": false, "error": code, "needed": "chat:write"}))
                .into_response();
        }
        Some(Scripted::RateLimited(secs)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                axum::Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response();
        }
        None => {}
    }
    let ts = {
        let mut seq = state.seq.lock().unwrap();
        *seq += 1;
        format!("1700000000.{:06}", *seq)
    };
    let answer = match method.as_str() {
        "chat.postMessage" => json!({"ok": true, "channel": CHANNEL_ID, "ts": ts, "message": {}}),
        "chat.update" => json!({"ok": true, "channel": body["channel"], "ts": body["ts"]}),
        "chat.postEphemeral" => json!({"ok": true, "message_ts": ts}),
        "usergroups.users.list" => json!({"ok": true, "users": *state.group.lock().unwrap()}),
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    axum::Json(answer).into_response()
}

// ---------------------------------------------------------------------------------------------
// The agent side: a store with a parked run, the Slack channel and its endpoint.

#[derive(Default)]
struct AuditRecorder(Mutex<Vec<Event>>);

impl Observer for AuditRecorder {
    fn on_event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl AuditRecorder {
    fn decisions(&self) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::DecisionReceived { .. }))
            .cloned()
            .collect()
    }
}

struct Env {
    fake: FakeSlack,
    slack: Arc<Slack>,
    store: Arc<SqliteStore>,
    decided: Arc<Notify>,
    audit: Arc<AuditRecorder>,
    endpoint: String,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

fn config(api_url: &str, approvers: &str) -> SlackConfig {
    SlackConfig::new(
        ServiceSecret::fixed(&SLACK_BOT_TOKEN, BOT_TOKEN).unwrap(),
        ServiceSecret::fixed(&SLACK_SIGNING_SECRET, SIGNING_SECRET).unwrap(),
        "#sre-approvals",
        approvers,
    )
    .unwrap()
    .with_api_url(api_url)
    .unwrap()
}

async fn setup() -> Env {
    setup_with(|c| c).await
}

async fn setup_with(tune: impl FnOnce(SlackConfig) -> SlackConfig) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeSlack::start().await;
    let slack = Arc::new(Slack::new(tune(config(&fake.url, APPROVER))).unwrap());
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let decided = Arc::new(Notify::new());
    let audit = Arc::new(AuditRecorder::default());
    let sink = DecisionSink {
        store: store.clone(),
        decided: decided.clone(),
        metrics: Arc::new(Metrics::new()),
        audit: vec![audit.clone() as Arc<dyn Observer>],
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(api::serve(
        listener,
        slack::routes(slack.clone(), sink),
        async {
            let _ = stopped.await;
        },
    ));
    Env {
        fake,
        slack,
        store,
        decided,
        audit,
        endpoint: format!("http://{addr}{}", slack::PATH),
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

/// Parks a run of `workload` whose approval expires `ttl_ms` from now (negative: already
/// expired), with `summary` as the incident's evidence and `diff` as the dry-run diff. Returns
/// what a channel is asked.
async fn park(store: &dyn RunStore, workload: &str, ttl_ms: i64, summary: &str, diff: &str) -> Ask {
    parked::Sample::new(workload, ttl_ms)
        .evidence(summary)
        .diff(diff)
        .warning("pods restart one by one")
        .park(store)
        .await
}

async fn park_plain(store: &dyn RunStore, workload: &str, ttl_ms: i64) -> Ask {
    park(
        store,
        workload,
        ttl_ms,
        &format!("deployment shop/{workload} is crash-looping"),
        "-  image: nginx:1.25.3\n+  image: nginx:1.25.5\n",
    )
    .await
}

async fn view(store: &dyn RunStore, id: &str) -> ApprovalView {
    store
        .approvals(now_ms())
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.id == id)
        .unwrap_or_else(|| panic!("no approval {id}"))
}

// ---------------------------------------------------------------------------------------------
// Clicks: the SDK's block_actions sample, filled in, form-encoded and signed.

/// The `block_actions` payload of `user` clicking `action_id` with `value` on the message at
/// `ts`, whose blocks were `blocks`.
fn click_payload(user: &str, action_id: &str, value: &str, ts: &str, blocks: &Value) -> Value {
    let mut p: Value = serde_json::from_str(include_str!(
        "fixtures/slack/block-actions-payload-shape-sample.json"
    ))
    .unwrap();
    p["type"] = json!("block_actions");
    p["user"]["id"] = json!(user);
    p["user"]["username"] = json!("someone");
    p["container"]["type"] = json!("message");
    p["container"]["channel_id"] = json!(CHANNEL_ID);
    p["container"]["message_ts"] = json!(ts);
    p["channel"]["id"] = json!(CHANNEL_ID);
    p["message"]["ts"] = json!(ts);
    p["message"]["blocks"] = blocks.clone();
    p["response_url"] = json!("https://hooks.slack.com/actions/T0/1/x");
    let mut action = p["actions"][0].clone();
    action["type"] = json!("button");
    action["action_id"] = json!(action_id);
    action["block_id"] = json!(slack::ACTIONS_BLOCK);
    action["value"] = json!(value);
    action["action_ts"] = json!("1700000001.000000");
    p["actions"] = json!([action]);
    p
}

/// `application/x-www-form-urlencoded` of one value (every byte but the unreserved ones
/// escaped).
fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn form_body(payload: &Value) -> Vec<u8> {
    format!("payload={}", form_encode(&payload.to_string())).into_bytes()
}

fn sign(secret: &str, ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

struct Reply {
    status: StatusCode,
    json: Value,
}

async fn post_raw(env: &Env, body: Vec<u8>, headers: &[(&str, String)]) -> Reply {
    let mut request = env
        .http
        .post(&env.endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    Reply {
        status,
        json: serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text})),
    }
}

/// Posts `body` signed with `secret` at `ts`.
async fn post_signed(env: &Env, body: Vec<u8>, secret: &str, ts: u64) -> Reply {
    let signature = sign(secret, ts, &body);
    post_raw(
        env,
        body,
        &[
            ("x-slack-request-timestamp", ts.to_string()),
            ("x-slack-signature", signature),
        ],
    )
    .await
}

/// Asks about `ask` and returns the posted message's ts and blocks.
async fn ask(env: &Env, ask: &Ask) -> (String, Value) {
    env.slack.ask(ask).await.unwrap();
    let call = env.fake.calls("chat.postMessage").pop().unwrap();
    let (channel, ts) = env.slack.posted(&ask.approval.id).unwrap();
    assert_eq!(channel, CHANNEL_ID);
    (ts, call.body["blocks"].clone())
}

async fn click(env: &Env, user: &str, action: &str, ask: &Ask, ts: &str, blocks: &Value) -> Reply {
    let body = form_body(&click_payload(user, action, &ask.approval.id, ts, blocks));
    post_signed(env, body, SIGNING_SECRET, now_secs()).await
}

fn block<'a>(blocks: &'a Value, kind: &str) -> Vec<&'a Value> {
    blocks
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == kind)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Asking.

/// The buttons: fixed action ids, and the approval id alone as value.
fn assert_buttons(blocks: &Value, id: &str) {
    let actions = block(blocks, "actions");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["block_id"], slack::ACTIONS_BLOCK);
    let buttons = actions[0]["elements"].as_array().unwrap();
    assert_eq!(buttons.len(), 2);
    assert_eq!(buttons[0]["action_id"], slack::APPROVE_ACTION);
    assert_eq!(buttons[0]["style"], "primary");
    assert_eq!(buttons[0]["value"], id);
    assert!(buttons[0]["confirm"]["title"]["text"].is_string());
    assert_eq!(buttons[1]["action_id"], slack::REJECT_ACTION);
    assert_eq!(buttons[1]["style"], "danger");
    assert_eq!(buttons[1]["value"], id);
}

/// The diff: a code block, bounded, cut with a note.
fn assert_diff_cut(blocks: &Value) {
    let diff_block = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "sre_diff")
        .unwrap();
    assert_eq!(diff_block["elements"][0]["type"], "rich_text_preformatted");
    let shown = diff_block["elements"][0]["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        shown.chars().count() <= slack::DIFF_LIMIT,
        "{}",
        shown.len()
    );
    assert!(shown.starts_with("+  env0: "), "{shown}");
    let note = diff_block["elements"][1]["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        note.contains("diff cut") && note.contains("of 400 lines shown"),
        "{note}"
    );
}

#[tokio::test]
async fn ask_posts_block_kit_with_only_the_id_on_the_buttons() {
    let env = setup().await;
    let hostile =
        "pod web-1 says <!channel> <@U0BOSS> &amp; `rm -rf` \u{1b}[2K\u{202e}fake\n```\n*approved*";
    let mut diff = String::new();
    for i in 0..400 {
        let _ = writeln!(diff, "+  env{i}: \"value {i} with ``` and <!here>\"");
    }
    let mut a = park(env.store.as_ref(), "web", HOUR, hostile, &diff).await;
    // Untrusted text where mrkdwn is parsed, too.
    a.approval.request.preview.warning = Some(format!("restarts pods; {hostile}"));
    env.slack.ask(&a).await.unwrap();

    let calls = env.fake.calls("chat.postMessage");
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.http_method, "POST");
    assert_eq!(
        call.authorization.as_deref(),
        Some(&*format!("Bearer {BOT_TOKEN}"))
    );
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    let body = &call.body;
    assert_eq!(body["channel"], "#sre-approvals");
    assert_eq!(body["unfurl_links"], false);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("Patch now? k8s_set_image on deployments.apps shop/web"),
        "{text}"
    );

    let blocks = &body["blocks"];
    let header = block(blocks, "header")[0]["text"]["text"].as_str().unwrap();
    assert_eq!(
        header,
        "Patch now? k8s_set_image on deployments.apps shop/web"
    );

    assert_buttons(blocks, &a.approval.id);

    // Hostile text: no raw control characters, no live mention, broadcast or entity anywhere
    // mrkdwn is parsed; the evidence is quoted in rich text, escaped.
    let serialized = body.to_string();
    assert!(!serialized.contains('\u{1b}') && !serialized.contains('\u{202e}'));
    for b in blocks.as_array().unwrap() {
        let json = b.to_string();
        if b["type"] == "section" || b["type"] == "context" {
            assert!(
                !json.contains("<!channel>") && !json.contains("<@U0BOSS>"),
                "{json}"
            );
            assert!(!json.contains("<!here>"), "{json}");
        }
        if let Some(t) = b["text"]["text"].as_str() {
            assert!(t.chars().count() <= 3000);
        }
    }
    assert!(!text.contains("<!channel>"), "{text}");
    let evidence = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "sre_evidence")
        .unwrap();
    assert_eq!(evidence["elements"][0]["type"], "rich_text_quote");
    let quoted = evidence["elements"][0]["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        quoted.contains("\\e[2K") && quoted.contains("\\u{202e}fake"),
        "{quoted}"
    );

    // The plan, risk, target, images, warning and expiry are shown.
    assert!(
        serialized.contains("nginx:1.25.3 → nginx:1.25.5"),
        "{serialized}"
    );
    assert!(serialized.contains("*Risk*\\nmedium"));
    assert!(serialized.contains("resourceVersion 41"));
    assert!(
        serialized
            .contains("restarts pods; pod web-1 says &lt;!channel&gt; &lt;@U0BOSS&gt; &amp;amp;"),
        "{serialized}"
    );
    assert!(serialized.contains(&format!("<!date^{}^", a.approval.expires_at_ms / 1000)));

    assert_diff_cut(blocks);

    // Where it was posted is remembered.
    assert_eq!(
        env.slack.posted(&a.approval.id),
        Some((CHANNEL_ID.to_owned(), "1700000000.000001".to_owned()))
    );
}

#[tokio::test]
async fn the_documented_preview_is_what_ask_posts() {
    let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut preview = Preview::new(
        "deployment shop/web: container web image nginx:1.25.3 -> nginx:1.25.5",
        "   spec:\n     template:\n       spec:\n         containers:\n         - name: web\n-          image: nginx:1.25.3\n+          image: nginx:1.25.5\n",
        "deployments.apps/shop/web@41",
        Risk::Medium,
    );
    preview.target = Some(Target {
        kind: "deployments.apps".into(),
        namespace: "shop".into(),
        name: "web".into(),
        resource_version: "41".into(),
    });
    preview.images = Some(vec![ImageChange {
        container: "web".into(),
        before: Some("nginx:1.25.3".into()),
        after: "nginx:1.25.5".into(),
    }]);
    preview.evidence = Some(Box::new(scan_evidence(
        vec![
            finding(
                "CVE-2024-123",
                "CRITICAL",
                "libexpat",
                ("2.5.0-r1", "2.6.3-r0"),
                9.8,
            ),
            finding(
                "CVE-2024-45491",
                "CRITICAL",
                "libexpat",
                ("2.5.0-r1", "2.6.3-r0"),
                9.1,
            ),
            finding(
                "CVE-2023-44487",
                "HIGH",
                "nghttp2-libs",
                ("1.57.0-r0", "1.57.0-r1"),
                7.5,
            ),
        ],
        &["CVE-2024-123", "CVE-2024-45491", "CVE-2023-44487"],
    )));
    let request = ApprovalRequest {
        run_id: "run-0001".into(),
        tool: "k8s_set_image".into(),
        call_id: "call-1".into(),
        arguments: json!({"namespace": "shop", "deployment": "web", "container": "web", "image": "nginx:1.25.5"}),
        preview,
        incident:
            "image nginx:1.25.3 of deployment shop/web has CVE-2024-123 (critical); fixed in 1.25.5"
                .into(),
        writes_so_far: 0,
        rollback_on_failure: true,
    };
    let action = request.action_fingerprint();
    let ask = Ask {
        incident: Incident {
            key: "shop/web/vulnerabilities".into(),
            trigger: Trigger::Trivy,
            namespace: "shop".into(),
            workload: "web".into(),
            summary: request.incident.clone(),
        },
        approval: PendingApproval {
            id: PendingApproval::id_for("run-0001", "call-1", &action),
            request,
            action,
            requested_at: rfc3339(now),
            expires_at: rfc3339(now + 3_600_000),
            expires_at_ms: now + 3_600_000,
        },
    };
    let public = reqwest::Url::parse("https://sre-agent.example.com").unwrap();
    let preview = json!({"blocks": slack::question_blocks(&ask, Some(&public))});
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/slack-approval-blocks.json"
    );
    let rendered = format!("{}\n", serde_json::to_string_pretty(&preview).unwrap());
    if std::env::var_os("SRE_BLESS").is_some() {
        std::fs::write(path, &rendered).unwrap();
    }
    let documented = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run with SRE_BLESS=1 to write it)"));
    assert_eq!(
        documented, rendered,
        "docs/slack-approval-blocks.json is out of date: run this test with SRE_BLESS=1"
    );
}

// ---------------------------------------------------------------------------------------------
// The tool's typed findings.

/// A finding of `package` `installed`, fixed in `fixed`.
fn finding(
    id: &str,
    severity: &str,
    package: &str,
    (installed, fixed): (&str, &str),
    cvss: f64,
) -> Finding {
    Finding {
        id: id.into(),
        severity: severity.into(),
        package: package.into(),
        installed: installed.into(),
        fixed: Some(fixed.into()),
        cvss: Some(cvss),
    }
}

/// nginx:1.25.3 (2 CRITICAL, 6 HIGH; `findings`) patched to nginx:1.25.5 (4 MEDIUM), clearing
/// `clears`.
fn scan_evidence(findings: Vec<Finding>, clears: &[&str]) -> Evidence {
    Evidence {
        vulnerabilities: Some(VulnerabilityEvidence {
            container: "web".into(),
            current: ImageScan {
                image: "nginx:1.25.3".into(),
                digest: None,
                counts: Severities {
                    critical: 2,
                    high: 6,
                    ..Severities::default()
                },
                findings,
                source: ScanSource::TrivyCli,
            },
            candidate: ImageScan {
                image: "nginx:1.25.5".into(),
                digest: Some(
                    "sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31"
                        .into(),
                ),
                counts: Severities {
                    medium: 4,
                    ..Severities::default()
                },
                findings: vec![],
                source: ScanSource::TrivyCli,
            },
            clears: clears.iter().map(|&c| c.to_owned()).collect(),
            remains: vec![],
            introduces: vec![],
        }),
        crash: None,
        target_crash: None,
        target_scan: None,
        unchecked: Vec::new(),
    }
}

/// The typed-findings block of `blocks`: (its label and counts, the lines, the cut note).
fn scan_block(blocks: &Value) -> (String, String, Option<String>) {
    let b = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == slack::SCAN_BLOCK)
        .unwrap_or_else(|| panic!("no {} block: {blocks}", slack::SCAN_BLOCK));
    assert_eq!(b["type"], "rich_text");
    let head = &b["elements"][0];
    assert_eq!(head["type"], "rich_text_section");
    assert_eq!(head["elements"][0]["style"]["bold"], true);
    let label = format!(
        "{}{}",
        head["elements"][0]["text"].as_str().unwrap(),
        head["elements"][1]["text"].as_str().unwrap()
    );
    assert_eq!(b["elements"][1]["type"], "rich_text_preformatted");
    let lines = b["elements"][1]["elements"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let note = b["elements"][2]["elements"][0]["text"]
        .as_str()
        .map(str::to_owned);
    (label, lines, note)
}

#[tokio::test]
async fn ask_shows_the_scan_findings_with_hostile_ids_inert() {
    let env = setup().await;
    let mut a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let ids = [
        "CVE-2024-0001",
        "<!channel>",
        "*bold* & <@U0BOSS>",
        "CVE-9\u{1b}[2J\u{202e}",
        "CVE-2024-0002",
    ];
    let findings = ids
        .iter()
        .map(|id| finding(id, "CRITICAL", "openssl", ("3.1.4-r0", "3.1.4-r5"), 9.8))
        .collect();
    a.approval.request.preview.evidence = Some(Box::new(scan_evidence(findings, &ids)));
    let (_, blocks) = ask(&env, &a).await;
    let body = env.fake.calls("chat.postMessage").pop().unwrap().body;

    let (label, lines, note) = scan_block(&blocks);
    assert_eq!(
        label,
        "Findings: 2 CRITICAL, 6 HIGH now -> 4 MEDIUM in the candidate; clears 5, remains 0"
    );
    assert_eq!(note, None);
    for shown in [
        "now:       nginx:1.25.3 — 2 CRITICAL, 6 HIGH (trivy CLI scan)",
        "CRITICAL CVE-2024-0001 openssl 3.1.4-r0 -> 3.1.4-r5 (CVSS 9.8)",
        "candidate: nginx:1.25.5 (sha256:0d17b565",
        "— 4 MEDIUM (trivy CLI scan)",
        // Rich text is never parsed as markup: the hostile ids are shown as they are, and
        // their control characters visibly escaped.
        "CRITICAL <!channel> openssl",
        "CRITICAL *bold* & <@U0BOSS> openssl",
        "CRITICAL CVE-9\\e[2J\\u{202e} openssl",
        "clears:    CVE-2024-0001, <!channel>, *bold* & <@U0BOSS>, CVE-9\\e[2J\\u{202e}, CVE-2024-0002",
    ] {
        assert!(lines.contains(shown), "missing {shown:?} in:\n{lines}");
    }
    let serialized = body.to_string();
    assert!(
        !serialized.contains('\u{1b}') && !serialized.contains('\u{202e}'),
        "{serialized}"
    );
    // Where mrkdwn is parsed (sections, context, the notification text), nothing of the ids.
    for b in blocks.as_array().unwrap() {
        if b["type"] == "section" || b["type"] == "context" {
            let json = b.to_string();
            assert!(
                !json.contains("<!channel>")
                    && !json.contains("<@U0BOSS>")
                    && !json.contains("*bold*"),
                "{json}"
            );
        }
    }
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(
            "(2 CRITICAL, 6 HIGH now -&gt; 4 MEDIUM in the candidate; clears 5, remains 0)"
        ),
        "{text}"
    );
    assert!(
        !text.contains("<!channel>") && !text.contains("bold"),
        "{text}"
    );

    // Between the plan and the diff.
    let at = |id: &str| {
        blocks
            .as_array()
            .unwrap()
            .iter()
            .position(|b| b["block_id"] == id)
            .unwrap()
    };
    assert!(at(slack::SCAN_BLOCK) < at("sre_diff"));

    // The settled message keeps the findings.
    env.slack
        .settle(&Settled {
            approval: a.approval.clone(),
            incident: a.incident.clone(),
            ending: Ending::Expired,
        })
        .await
        .unwrap();
    let update = env.fake.calls("chat.update").pop().unwrap().body;
    assert_eq!(scan_block(&update["blocks"]).1, lines);
}

#[tokio::test]
async fn long_findings_are_bounded_with_a_note() {
    let env = setup().await;
    let mut a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let ids: Vec<String> = (0..40)
        .map(|i| format!("CVE-{i:04}-{}", "9".repeat(400)))
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let findings = ids
        .iter()
        .map(|id| finding(id, "CRITICAL", "openssl", ("3.1.4-r0", "3.1.4-r5"), 9.8))
        .collect();
    a.approval.request.preview.evidence = Some(Box::new(scan_evidence(findings, &refs)));
    let (_, blocks) = ask(&env, &a).await;
    let (label, lines, note) = scan_block(&blocks);
    assert!(label.contains("clears 40, remains 0"), "{label}");
    assert!(
        lines.chars().count() <= slack::SCAN_LIMIT,
        "{}",
        lines.len()
    );
    for line in lines.lines() {
        assert!(line.chars().count() <= slack::SCAN_LINE_LIMIT, "{line}");
    }
    assert!(
        lines.starts_with("now:       nginx:1.25.3 — 2 CRITICAL, 6 HIGH"),
        "{lines}"
    );
    assert!(lines.contains("CRITICAL CVE-0000-999"), "{lines}");
    let note = note.unwrap();
    assert!(
        note.starts_with(&format!("evidence cut: {} of ", lines.lines().count()))
            && note.contains("--json"),
        "{note}"
    );
    for b in blocks.as_array().unwrap() {
        if let Some(t) = b["text"]["text"].as_str() {
            assert!(t.chars().count() <= 3000);
        }
    }
}

#[tokio::test]
async fn a_rollback_shows_the_crash() {
    let env = setup().await;
    let mut a = park_plain(env.store.as_ref(), "web", HOUR).await;
    a.approval.request.preview.evidence = Some(Box::new(Evidence {
        vulnerabilities: None,
        crash: Some(CrashEvidence {
            pod: "web-7d9f-abcde".into(),
            container: "web".into(),
            image: "ghcr.io/acme/shop-web:1.5.0".into(),
            reason: "CrashLoopBackOff".into(),
            exit_code: Some(1),
            restarts: 7,
            failing_pods: 3,
            last_log_lines: vec!["panic: missing DATABASE_URL <!here>".into()],
            events: vec!["BackOff: Back-off restarting failed container (×12)".into()],
        }),
        target_crash: None,
        target_scan: None,
        unchecked: Vec::new(),
    }));
    let (_, blocks) = ask(&env, &a).await;
    let (label, lines, _) = scan_block(&blocks);
    assert_eq!(
        label,
        "Findings: crash: exit code 1, 7 restarts, 3 failing pod(s)"
    );
    assert!(
        lines.contains("CrashLoopBackOff, exit code 1, 7 restarts; 3 failing pod(s)"),
        "{lines}"
    );
    assert!(
        lines.contains("log:     panic: missing DATABASE_URL <!here>"),
        "{lines}"
    );
    assert!(lines.contains("event:   BackOff"), "{lines}");
}

// ---------------------------------------------------------------------------------------------
// Deciding.

#[tokio::test]
async fn a_signed_click_by_an_approver_approves() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, blocks) = ask(&env, &a).await;
    let decided = env.decided.clone();
    let notified = decided.notified();

    let body = form_body(&click_payload(
        APPROVER,
        slack::APPROVE_ACTION,
        &a.approval.id,
        &ts,
        &blocks,
    ));
    let digest = hex::encode(Sha256::digest(&body));
    let reply = post_signed(&env, body, SIGNING_SECRET, now_secs()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["response_type"], "ephemeral");
    assert!(
        reply.json["text"]
            .as_str()
            .unwrap()
            .contains("You approved")
    );

    tokio::time::timeout(Duration::from_secs(10), notified)
        .await
        .expect("the decided signal fired");
    let v = view(env.store.as_ref(), &a.approval.id).await;
    assert_eq!(v.state, ApprovalState::Approved);
    assert_eq!(v.decided_by.as_deref(), Some(&*format!("slack:{APPROVER}")));

    let decisions = env.audit.decisions();
    assert_eq!(decisions.len(), 1);
    let Event::DecisionReceived {
        approval,
        channel,
        action,
        decision,
        request_digest,
        ..
    } = &decisions[0]
    else {
        unreachable!()
    };
    assert_eq!(approval, &a.approval.id);
    assert_eq!(channel, "slack");
    assert_eq!(action, &a.approval.action);
    assert_eq!(decision, &Decision::approve(format!("slack:{APPROVER}")));
    assert_eq!(request_digest, &digest);

    // The message is updated after the answer: the buttons replaced by who decided.
    let update = env.fake.wait_for("chat.update", 1).await.remove(0);
    assert_eq!(update.body["channel"], CHANNEL_ID);
    assert_eq!(update.body["ts"], ts.as_str());
    assert_eq!(
        update.authorization.as_deref(),
        Some(&*format!("Bearer {BOT_TOKEN}"))
    );
    let updated = &update.body["blocks"];
    assert!(block(updated, "actions").is_empty(), "{updated}");
    assert!(
        !block(updated, "header").is_empty(),
        "the question stays: {updated}"
    );
    let line = block(updated, "context")
        .into_iter()
        .find(|b| b["block_id"] == slack::OUTCOME_BLOCK)
        .unwrap()["elements"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        line.contains(&format!("Approved by <@{APPROVER}>")),
        "{line}"
    );
}

#[tokio::test]
async fn a_reject_click_rejects() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, blocks) = ask(&env, &a).await;
    let reply = click(&env, APPROVER, slack::REJECT_ACTION, &a, &ts, &blocks).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let v = view(env.store.as_ref(), &a.approval.id).await;
    assert_eq!(v.state, ApprovalState::Rejected);
    assert_eq!(v.reason.as_deref(), Some("rejected in slack"));
    let update = env.fake.wait_for("chat.update", 1).await.remove(0);
    assert!(
        update
            .body
            .to_string()
            .contains("Rejected by <@U0APPROVER>")
    );
}

/// Asserts that nothing was decided: still pending, nothing audited, no message updated.
async fn assert_nothing_decided(env: &Env, a: &Ask) {
    let v = view(env.store.as_ref(), &a.approval.id).await;
    assert_eq!(v.state, ApprovalState::Pending);
    assert_eq!(v.decided_by, None);
    assert!(env.audit.decisions().is_empty());
    assert!(env.fake.calls("chat.update").is_empty());
}

#[tokio::test]
async fn refused_requests_decide_nothing() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, blocks) = ask(&env, &a).await;
    let body = || {
        form_body(&click_payload(
            APPROVER,
            slack::APPROVE_ACTION,
            &a.approval.id,
            &ts,
            &blocks,
        ))
    };
    let now = now_secs();

    // A forged signature.
    let forged = format!("v0={}", "ab".repeat(32));
    let reply = post_raw(
        &env,
        body(),
        &[
            ("x-slack-request-timestamp", now.to_string()),
            ("x-slack-signature", forged),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["code"], "signature_mismatch", "{}", reply.json);

    // Signed with the wrong signing secret.
    let reply = post_signed(&env, body(), WRONG_SECRET, now).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["code"], "signature_mismatch");
    assert!(
        reply.json["error"]
            .as_str()
            .unwrap()
            .contains("wrong signing secret")
    );

    // A replay: correctly signed, but 6 minutes old (and 6 minutes ahead).
    for skewed in [now - 360, now + 360] {
        let reply = post_signed(&env, body(), SIGNING_SECRET, skewed).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.json["code"], "stale_timestamp", "{}", reply.json);
        assert!(reply.json["error"].as_str().unwrap().contains("5 minutes"));
    }

    // The body altered after signing: the approval id swapped for another one.
    let original = body();
    let signature = sign(SIGNING_SECRET, now, &original);
    let other = park_plain(env.store.as_ref(), "api", HOUR).await;
    let altered = String::from_utf8(original)
        .unwrap()
        .replace(&a.approval.id, &other.approval.id)
        .into_bytes();
    let reply = post_raw(
        &env,
        altered,
        &[
            ("x-slack-request-timestamp", now.to_string()),
            ("x-slack-signature", signature.clone()),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["code"], "signature_mismatch");
    assert_eq!(
        view(env.store.as_ref(), &other.approval.id).await.state,
        ApprovalState::Pending
    );

    // Missing headers, and a signature in another version.
    let reply = post_raw(&env, body(), &[("x-slack-signature", signature.clone())]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["code"], "bad_timestamp");
    let reply = post_raw(
        &env,
        body(),
        &[("x-slack-request-timestamp", now.to_string())],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["code"], "bad_signature");
    let reply = post_raw(
        &env,
        body(),
        &[
            ("x-slack-request-timestamp", now.to_string()),
            ("x-slack-signature", signature.replacen("v0=", "v1=", 1)),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["code"], "bad_signature");

    // Larger than the limit: refused before anything is read.
    let mut big = body();
    big.extend(std::iter::repeat_n(b'x', slack::MAX_BODY));
    let reply = post_signed(&env, big, SIGNING_SECRET, now).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json["code"], "payload_too_large");

    assert_nothing_decided(&env, &a).await;
    // Nothing was said to Slack either.
    assert!(env.fake.calls("chat.postEphemeral").is_empty());
}

#[tokio::test]
async fn verified_requests_that_are_not_clicks_decide_nothing() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, blocks) = ask(&env, &a).await;
    let now = now_secs();

    // Another interaction type: acknowledged, ignored.
    let mut other = click_payload(
        APPROVER,
        slack::APPROVE_ACTION,
        &a.approval.id,
        &ts,
        &blocks,
    );
    other["type"] = json!("view_submission");
    let reply = post_signed(&env, form_body(&other), SIGNING_SECRET, now).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.json["ignored"]
            .as_str()
            .unwrap()
            .contains("view_submission")
    );

    // Another button: ignored.
    let foreign = click_payload(
        APPROVER,
        "someone_elses_button",
        &a.approval.id,
        &ts,
        &blocks,
    );
    let reply = post_signed(&env, form_body(&foreign), SIGNING_SECRET, now).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json["ignored"].is_string());

    // Malformed: not JSON, no payload, a value that is not an id, a field of the wrong type
    // (serde quoted the refused string whole; it is left out).
    let mut wrong_type = click_payload(
        APPROVER,
        slack::APPROVE_ACTION,
        &a.approval.id,
        &ts,
        &blocks,
    );
    wrong_type["actions"] = json!("xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx");
    for (body, needle) in [
        (b"payload=%7Bnot-json".to_vec(), "not an interaction"),
        (
            form_body(&wrong_type),
            "invalid type: string (56 characters)",
        ),
        (b"token=x".to_vec(), "no payload"),
        (
            form_body(&click_payload(
                APPROVER,
                slack::APPROVE_ACTION,
                "../../x y",
                &ts,
                &blocks,
            )),
            "not an approval id",
        ),
    ] {
        let reply = post_signed(&env, body, SIGNING_SECRET, now).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.json);
        assert!(
            reply.json["error"].as_str().unwrap().contains(needle),
            "{}",
            reply.json
        );
        assert!(!reply.json.to_string().contains("abcdefghijklmnop"));
    }
    assert_nothing_decided(&env, &a).await;
}

#[tokio::test]
async fn a_user_not_on_the_allow_list_decides_nothing() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, blocks) = ask(&env, &a).await;
    let reply = click(&env, INTRUDER, slack::APPROVE_ACTION, &a, &ts, &blocks).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["response_type"], "ephemeral");
    assert!(
        reply.json["text"].as_str().unwrap().contains("not allowed"),
        "{}",
        reply.json
    );
    // The intruder alone is told so.
    let told = env.fake.wait_for("chat.postEphemeral", 1).await.remove(0);
    assert_eq!(told.body["user"], INTRUDER);
    assert_eq!(told.body["channel"], CHANNEL_ID);
    assert_nothing_decided(&env, &a).await;
}

#[tokio::test]
async fn approver_group_members_may_decide() {
    let env = setup_with(|c| c.with_approver_group("S0ONCALL").unwrap()).await;
    env.fake.state.group.lock().unwrap().push("U0MEMBER".into());
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let b = park_plain(env.store.as_ref(), "api", HOUR).await;
    let (ts_a, blocks_a) = ask(&env, &a).await;
    let (ts_b, blocks_b) = ask(&env, &b).await;

    let reply = click(&env, INTRUDER, slack::APPROVE_ACTION, &b, &ts_b, &blocks_b).await;
    assert!(reply.json["text"].as_str().unwrap().contains("not allowed"));
    let reply = click(
        &env,
        "U0MEMBER",
        slack::APPROVE_ACTION,
        &a,
        &ts_a,
        &blocks_a,
    )
    .await;
    assert!(
        reply.json["text"]
            .as_str()
            .unwrap()
            .contains("You approved"),
        "{}",
        reply.json
    );

    assert_eq!(
        view(env.store.as_ref(), &a.approval.id).await.state,
        ApprovalState::Approved
    );
    assert_eq!(
        view(env.store.as_ref(), &b.approval.id).await.state,
        ApprovalState::Pending
    );
    // One lookup, cached for the second click, with the bot token and the group id.
    let lookups = env.fake.calls("usergroups.users.list");
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert_eq!(lookups[0].http_method, "GET");
    assert_eq!(lookups[0].body["usergroup"], "S0ONCALL");
    assert_eq!(
        lookups[0].authorization.as_deref(),
        Some(&*format!("Bearer {BOT_TOKEN}"))
    );
}

#[tokio::test]
async fn an_unreadable_approver_group_decides_nothing() {
    let env = setup_with(|c| c.with_approver_group("S0ONCALL").unwrap()).await;
    env.fake
        .script("usergroups.users.list", &[Scripted::Error("missing_scope")]);
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, blocks) = ask(&env, &a).await;
    let reply = click(&env, "U0MEMBER", slack::APPROVE_ACTION, &a, &ts, &blocks).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json["code"], "approvers_unavailable");
    assert_nothing_decided(&env, &a).await;
}

#[tokio::test]
async fn a_double_click_decides_once() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, blocks) = ask(&env, &a).await;
    let first = click(&env, APPROVER, slack::APPROVE_ACTION, &a, &ts, &blocks).await;
    assert!(
        first.json["text"]
            .as_str()
            .unwrap()
            .contains("You approved")
    );
    let second = click(&env, APPROVER, slack::REJECT_ACTION, &a, &ts, &blocks).await;
    assert_eq!(second.status, StatusCode::OK);
    let text = second.json["text"].as_str().unwrap();
    assert!(
        text.contains("already approved by slack:U0APPROVER") && text.contains("changed nothing"),
        "{text}"
    );
    let v = view(env.store.as_ref(), &a.approval.id).await;
    assert_eq!(v.state, ApprovalState::Approved);
    assert_eq!(env.audit.decisions().len(), 1);
    // Both clicks update the message to say it is approved, never rejected.
    let updates = env.fake.wait_for("chat.update", 2).await;
    for u in &updates {
        let s = u.body.to_string();
        assert!(
            s.contains("Approved by <@U0APPROVER>") && !s.contains("Rejected"),
            "{s}"
        );
    }
}

#[tokio::test]
async fn a_click_on_an_expired_approval_decides_nothing() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", -1_000).await;
    let (ts, blocks) = ask(&env, &a).await;
    let reply = click(&env, APPROVER, slack::APPROVE_ACTION, &a, &ts, &blocks).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.json["text"].as_str().unwrap();
    assert!(
        text.contains("expired") && text.contains("nothing was decided"),
        "{text}"
    );
    let v = view(env.store.as_ref(), &a.approval.id).await;
    assert_eq!(v.state, ApprovalState::Expired);
    assert_eq!(v.decided_by, None);
    assert!(env.audit.decisions().is_empty());
    let update = env.fake.wait_for("chat.update", 1).await.remove(0);
    assert!(
        update.body.to_string().contains("Expired"),
        "{}",
        update.body
    );
    assert!(block(&update.body["blocks"], "actions").is_empty());
}

#[tokio::test]
async fn a_click_on_an_unknown_approval_decides_nothing() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, blocks) = ask(&env, &a).await;
    let body = form_body(&click_payload(
        APPROVER,
        slack::APPROVE_ACTION,
        "apv-000000000000000000000000",
        &ts,
        &blocks,
    ));
    let reply = post_signed(&env, body, SIGNING_SECRET, now_secs()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.json["text"].as_str().unwrap().contains("not pending"),
        "{}",
        reply.json
    );
    assert_eq!(
        view(env.store.as_ref(), &a.approval.id).await.state,
        ApprovalState::Pending
    );
    assert!(env.audit.decisions().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Slack API errors and settling.

#[tokio::test]
async fn a_rate_limited_post_is_retried_after_retry_after() {
    let env = setup().await;
    env.fake
        .script("chat.postMessage", &[Scripted::RateLimited(1)]);
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    env.slack.ask(&a).await.unwrap();
    assert_eq!(env.fake.calls("chat.postMessage").len(), 2);
    assert!(env.slack.posted(&a.approval.id).is_some());
}

#[tokio::test]
async fn slack_api_errors_surface_clearly() {
    let env = setup_with(|mut c| {
        c.max_tries = 2;
        c
    })
    .await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;

    env.fake
        .script("chat.postMessage", &[Scripted::Error("channel_not_found")]);
    let e = env.slack.ask(&a).await.unwrap_err();
    assert_eq!(e.channel, "slack");
    assert!(
        e.message.contains("channel_not_found") && e.message.contains("#sre-approvals"),
        "{e}"
    );

    for code in ["invalid_auth", "not_authed", "account_inactive"] {
        env.fake
            .script("chat.postMessage", &[Scripted::Error(code)]);
        let e = env.slack.ask(&a).await.unwrap_err().to_string();
        assert!(e.contains("bot token is wrong") && e.contains(code), "{e}");
        assert!(
            !e.contains(BOT_TOKEN) && !e.contains("TESTTOKEN"),
            "the token leaked: {e}"
        );
    }

    env.fake
        .script("chat.postMessage", &[Scripted::Error("missing_scope")]);
    let e = env.slack.ask(&a).await.unwrap_err().to_string();
    assert!(
        e.contains("missing_scope") && e.contains("chat:write"),
        "{e}"
    );

    env.fake.script(
        "chat.postMessage",
        &[Scripted::RateLimited(0), Scripted::RateLimited(0)],
    );
    let e = env.slack.ask(&a).await.unwrap_err().to_string();
    assert!(e.contains("ratelimited") && e.contains("2 times"), "{e}");

    // None of them was remembered as posted.
    assert!(env.slack.posted(&a.approval.id).is_none());
    assert!(!format!("{:?}", env.slack).contains("TESTTOKEN"));
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_is_not_waited_for() {
    let env = setup().await;
    env.fake
        .script("chat.postMessage", &[Scripted::RateLimited(120)]);
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let e = env.slack.ask(&a).await.unwrap_err().to_string();
    assert!(e.contains("ratelimited") && e.contains("120s"), "{e}");
    assert_eq!(env.fake.calls("chat.postMessage").len(), 1);
}

#[tokio::test]
async fn settle_updates_the_message_with_the_ending() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    let (ts, _) = ask(&env, &a).await;
    let settled = Settled {
        approval: a.approval.clone(),
        incident: a.incident.clone(),
        ending: Ending::Applied {
            by: format!("slack:{APPROVER}"),
        },
    };
    env.slack.settle(&settled).await.unwrap();
    let updates = env.fake.calls("chat.update");
    assert_eq!(updates.len(), 1);
    let body = &updates[0].body;
    assert_eq!(body["channel"], CHANNEL_ID);
    assert_eq!(body["ts"], ts.as_str());
    assert!(block(&body["blocks"], "actions").is_empty());
    let line = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == slack::OUTCOME_BLOCK)
        .unwrap()["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        line.contains("Approved by <@U0APPROVER>: applied and verified")
            && line.contains("<!date^"),
        "{line}"
    );
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("applied and verified") && !text.contains("<!date"),
        "{text}"
    );

    // Settled once: a second settle (or one after a restart) has nothing to update.
    env.slack.settle(&settled).await.unwrap();
    assert_eq!(env.fake.calls("chat.update").len(), 1);

    // A hostile reason is escaped.
    let b = park_plain(env.store.as_ref(), "api", HOUR).await;
    ask(&env, &b).await;
    env.slack
        .settle(&Settled {
            approval: b.approval.clone(),
            incident: b.incident.clone(),
            ending: Ending::Refused {
                by: "api:alice".into(),
                reason: "target changed <!channel>".into(),
            },
        })
        .await
        .unwrap();
    let s = env.fake.calls("chat.update")[1].body["blocks"].to_string();
    assert!(
        s.contains("&lt;!channel&gt;") && !s.contains("<!channel>"),
        "{s}"
    );
}

#[tokio::test]
async fn settle_surfaces_a_failed_update() {
    let env = setup().await;
    let a = park_plain(env.store.as_ref(), "web", HOUR).await;
    ask(&env, &a).await;
    env.fake
        .script("chat.update", &[Scripted::Error("message_not_found")]);
    let e = env
        .slack
        .settle(&Settled {
            approval: a.approval.clone(),
            incident: a.incident.clone(),
            ending: Ending::Expired,
        })
        .await
        .unwrap_err();
    assert!(
        e.message.contains("chat.update") && e.message.contains("message_not_found"),
        "{e}"
    );
}
