//! The approvals API over real HTTP: the router bound on 127.0.0.1:0 in front of a
//! [`SqliteStore`], called with reqwest and with [`ApprovalsClient`]. Covers list/get/approve/
//! reject, bearer authentication (missing, malformed, wrong scheme, forged — and the token never
//! echoed), 404/409/410, the action fingerprint, eight approvers racing on one approval, strict
//! bodies, and an id that tries to leave the collection.

#![cfg(feature = "serve")]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

#[path = "support/parked.rs"]
mod parked;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sre_tools::serve::api::{self, ApiState, ApiToken};
use sre_tools::serve::client::{ApprovalsClient, ClientError};
use sre_tools::serve::metrics::Metrics;
use sre_tools::serve::{ApprovalState, ApprovalView, Health, RunStore, SqliteStore};
use tokio::sync::{Notify, oneshot};

const TOKEN: &str = "test-api-token-0123456789abcdef";
const FORGED: &str = "test-api-token-0123456789abcdeX";

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// One API server on a loopback port, and what it serves from.
struct Server {
    url: String,
    store: Arc<SqliteStore>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    decided: Arc<Notify>,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(token: Option<&str>) -> Server {
    start_with(token.map(|t| ApiToken::from_string(t).unwrap())).await
}

async fn start_with(token: Option<ApiToken>) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(false));
    let decided = Arc::new(Notify::new());
    let state = ApiState {
        store: store.clone(),
        token,
        metrics: metrics.clone(),
        health: health.clone(),
        decided: decided.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, api::router(state), async {
        let _ = stopped.await;
    }));
    Server {
        url: format!("http://{addr}"),
        store,
        metrics,
        health,
        decided,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        stop: Some(stop),
    }
}

/// A parked approval: its id, action and incident key.
struct Parked {
    id: String,
    action: String,
    key: String,
}

/// Parks a run of `workload` whose approval expires `ttl_ms` from now (negative: already
/// expired).
async fn park(store: &dyn RunStore, workload: &str, ttl_ms: i64) -> Parked {
    let ask = parked::Sample::new(workload, ttl_ms).park(store).await;
    Parked {
        id: ask.approval.id,
        action: ask.approval.action,
        key: ask.incident.key,
    }
}

const HOUR: i64 = 3_600_000;

/// A response's status, headers (as text) and JSON body.
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Every byte of the answer a client sees, for "the token never appears" checks.
    fn everything(&self) -> String {
        let mut all = self.text.clone();
        for (name, value) in &self.headers {
            all.push_str(name.as_str());
            all.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        all
    }

    /// The JSON error body: `{"error", "status"}` with the status of the response.
    fn error(&self) -> String {
        let body = self.json();
        assert_eq!(
            body["status"].as_u64(),
            Some(u64::from(self.status.as_u16())),
            "{body}"
        );
        body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {body}"))
            .to_owned()
    }
}

impl Server {
    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        self.send(request).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, "application/json", body.to_string())
            .await
    }

    async fn post_raw(&self, path: &str, content_type: &str, body: String) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.url))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    fn client(&self) -> ApprovalsClient {
        ApprovalsClient::new(&self.url, ApiToken::from_string(TOKEN).unwrap()).unwrap()
    }

    async fn state_of(&self, id: &str) -> ApprovalState {
        self.store
            .approvals(now_ms())
            .await
            .unwrap()
            .into_iter()
            .find(|v| v.id == id)
            .unwrap()
            .state
    }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn path(id: &str) -> String {
    format!("/api/v1/approvals/{id}")
}

#[tokio::test]
async fn list_get_approve_and_reject() {
    let s = start(Some(TOKEN)).await;
    let web = park(s.store.as_ref(), "web", HOUR).await;
    let api = park(s.store.as_ref(), "api", HOUR).await;

    let listed = s.get("/api/v1/approvals", Some(&bearer())).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let views: Vec<ApprovalView> =
        serde_json::from_value(listed.json()["approvals"].clone()).unwrap();
    assert_eq!(views.len(), 2);
    let view = views.iter().find(|v| v.id == web.id).unwrap();
    assert_eq!(view.state, ApprovalState::Pending);
    assert_eq!(view.action, web.action);
    assert_eq!(view.incident, web.key);
    assert_eq!(view.tool, "k8s_set_image");
    assert_eq!(view.target.as_ref().unwrap().name, "web");
    assert!(view.diff.contains("+  image: nginx:1.25.5"));

    let one = s.get(&path(&web.id), Some(&bearer())).await;
    assert_eq!(one.status, StatusCode::OK);
    let one: ApprovalView = serde_json::from_str(&one.text).unwrap();
    assert_eq!(&one, view);

    // A resume loop waiting before the decision wakes; one that looks later finds the permit.
    let waiting = s.decided.notified();
    tokio::pin!(waiting);
    waiting.as_mut().enable();
    let approved = s
        .post(
            &path(&web.id),
            &json!({"decision": "approve", "by": "alice", "reason": "looks right", "action": web.action}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    let approved: ApprovalView = serde_json::from_str(&approved.text).unwrap();
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("api:alice"));
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), s.decided.notified())
        .await
        .unwrap();
    let record = s.store.get(&web.key).await.unwrap().unwrap();
    assert_eq!(
        record.answer.unwrap().decision,
        sre_core::Decision::approve("api:alice")
    );

    let rejected = s
        .post(&path(&api.id), &json!({"decision": "reject", "by": "bob"}))
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.text);
    let rejected: ApprovalView = serde_json::from_str(&rejected.text).unwrap();
    assert_eq!(rejected.state, ApprovalState::Rejected);
    assert_eq!(rejected.decided_by.as_deref(), Some("api:bob"));
    assert_eq!(rejected.reason.as_deref(), Some(api::DEFAULT_REJECT_REASON));

    // Decided but not resumed: still listed, with its state; the filter picks by state.
    let listed = s.get("/api/v1/approvals", Some(&bearer())).await;
    let states: Vec<Value> = listed.json()["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].clone())
        .collect();
    assert_eq!(states.len(), 2);
    assert!(states.contains(&json!("approved")) && states.contains(&json!("rejected")));
    let pending = s
        .get("/api/v1/approvals?state=pending", Some(&bearer()))
        .await;
    assert_eq!(pending.json()["approvals"], json!([]));
    let only = s
        .get("/api/v1/approvals?state=rejected", Some(&bearer()))
        .await;
    assert_eq!(only.json()["approvals"][0]["id"], json!(api.id));

    let metrics = s.metrics.encode();
    assert!(
        metrics.contains("sre_agent_approvals_total{decision=\"approve\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sre_agent_approvals_total{decision=\"reject\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_list_queries_are_refused() {
    let s = start(Some(TOKEN)).await;
    for (query, needle) in [
        ("?state=bogus", "\"state\" is \"bogus\""),
        ("?color=red", "unknown query parameter \"color\""),
        ("?state=pending&state=expired", "more than once"),
    ] {
        let r = s
            .get(&format!("/api/v1/approvals{query}"), Some(&bearer()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(r.error().contains(needle), "{query}: {}", r.text);
    }
}

#[tokio::test]
async fn missing_malformed_wrong_scheme_and_forged_tokens_are_refused() {
    let s = start(Some(TOKEN)).await;
    let p = park(s.store.as_ref(), "web", HOUR).await;
    let mut seen = Vec::new();
    let basic = format!("Basic {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    let two = format!("Bearer {TOKEN} {TOKEN}");
    for (auth, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("Bearer"), StatusCode::UNAUTHORIZED),
        (Some("Bearer "), StatusCode::UNAUTHORIZED),
        (Some(two.as_str()), StatusCode::UNAUTHORIZED),
        (Some(TOKEN), StatusCode::UNAUTHORIZED),
        (Some(basic.as_str()), StatusCode::UNAUTHORIZED),
        (Some("Bearer test-api-token"), StatusCode::FORBIDDEN),
        (Some(&format!("Bearer {FORGED}")), StatusCode::FORBIDDEN),
        (Some(&format!("Bearer {TOKEN}x")), StatusCode::FORBIDDEN),
    ] {
        for route in [
            "/api/v1/approvals".to_owned(),
            path(&p.id),
            "/api/v1/nope".to_owned(),
        ] {
            let r = s.get(&route, auth).await;
            assert_eq!(r.status, status, "{auth:?} {route}: {}", r.text);
            let message = r.error();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = r.headers["www-authenticate"].to_str().unwrap();
                assert!(challenge.starts_with("Bearer "), "{challenge}");
                assert!(
                    message.contains("`Authorization: Bearer <token>`"),
                    "{message}"
                );
            } else {
                assert!(!r.headers.contains_key("www-authenticate"));
                assert_eq!(message, "the bearer token is not valid for this server");
            }
            seen.push(r);
        }
        // A decision without the right token changes nothing.
        let mut request = s
            .http
            .post(format!("{}{}", s.url, path(&p.id)))
            .json(&json!({"decision": "approve", "by": "mallory"}));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let r = s.send(request).await;
        assert_eq!(r.status, status);
        seen.push(r);
        assert_eq!(s.state_of(&p.id).await, ApprovalState::Pending);
    }
    let ok = s.get("/api/v1/approvals", Some(&lower)).await;
    assert_eq!(ok.status, StatusCode::OK, "the scheme is case-insensitive");
    seen.push(ok);
    for r in &seen {
        let all = r.everything();
        assert!(!all.contains(TOKEN), "the token leaked: {all}");
        assert!(!all.contains(FORGED), "the forged token was echoed: {all}");
    }
    // Outside /api, nothing needs a token.
    assert_eq!(s.get("/healthz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_rotated_token_file_retires_the_old_token_at_once() {
    let dir = std::env::temp_dir().join(format!(
        "sre-api-rotate-{}-{}",
        std::process::id(),
        now_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    let old = "old-token-0123456789abcdef";
    let new = "new-token-fedcba9876543210";
    std::fs::write(&file, format!("{old}\n")).unwrap();
    let s = start_with(Some(ApiToken::from_file(&file).unwrap())).await;
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(
        s.get("/api/v1/approvals", Some(&bearer(old))).await.status,
        StatusCode::OK
    );
    // The Secret is rotated (a new file behind the same path).
    let next = dir.join("token.next");
    std::fs::write(&next, format!("{new}\n")).unwrap();
    std::fs::rename(&next, &file).unwrap();
    let r = s.get("/api/v1/approvals", Some(&bearer(old))).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the old token is retired: {}",
        r.text
    );
    assert_eq!(
        s.get("/api/v1/approvals", Some(&bearer(new))).await.status,
        StatusCode::OK
    );
    // A file that holds no valid token refuses everyone (fail closed), and says nothing of it.
    std::fs::write(&next, "short\n").unwrap();
    std::fs::rename(&next, &file).unwrap();
    for t in [old, new, "short"] {
        let r = s.get("/api/v1/approvals", Some(&bearer(t))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{t}: {}", r.text);
        assert!(!r.text.contains(t));
    }
    // A valid token again: in use at once.
    std::fs::write(&next, format!("{new}\n")).unwrap();
    std::fs::rename(&next, &file).unwrap();
    assert_eq!(
        s.get("/api/v1/approvals", Some(&bearer(new))).await.status,
        StatusCode::OK
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_server_without_a_token_turns_the_api_off() {
    let s = start(None).await;
    for auth in [None, Some(bearer())] {
        let r = s.get("/api/v1/approvals", auth.as_deref()).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.error().contains("--api-token"), "{}", r.text);
    }
    assert_eq!(s.get("/healthz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = start(Some(TOKEN)).await;
    let h = s.get("/healthz", None).await;
    assert_eq!(
        (h.status, h.json()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let r = s.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["ready"], json!(false));
    assert_eq!(r.json()["leader"], json!(true));
    s.health.set_watching(true);
    let r = s.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["ready"], json!(true));
    s.health.set_leader(false);
    let r = s.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["leader"], json!(false));
    let m = s.get("/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(
        m.headers["content-type"].to_str().unwrap(),
        api::OPENMETRICS_CONTENT_TYPE
    );
    assert!(
        m.text
            .contains("# TYPE sre_agent_approval_latency_seconds histogram"),
        "{}",
        m.text
    );
    assert!(m.text.trim_end().ends_with("# EOF"), "{}", m.text);
}

#[tokio::test]
async fn unknown_already_decided_expired_and_other_action() {
    let s = start(Some(TOKEN)).await;
    let live = park(s.store.as_ref(), "web", HOUR).await;
    let old = park(s.store.as_ref(), "api", -1_000).await;

    let r = s
        .get(&path("apv-000000000000000000000000"), Some(&bearer()))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.error()
            .contains("no approval \"apv-000000000000000000000000\"")
    );
    let r = s
        .post(
            &path("apv-000000000000000000000000"),
            &json!({"decision": "approve", "by": "alice"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // The approval waits for another action: the approver saw another plan.
    let r = s
        .post(
            &path(&live.id),
            &json!({"decision": "approve", "by": "alice", "action": "sha256:feedface"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["code"], json!("other_action"));
    let message = r.error();
    assert!(
        message.contains(&live.action) && message.contains("sha256:feedface"),
        "{message}"
    );
    assert!(message.contains("review it again"), "{message}");
    assert_eq!(s.state_of(&live.id).await, ApprovalState::Pending);

    let first = s
        .post(
            &path(&live.id),
            &json!({"decision": "reject", "by": "bob", "reason": "not now"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let again = s
        .post(
            &path(&live.id),
            &json!({"decision": "approve", "by": "alice"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let body = again.json();
    assert_eq!(body["code"], json!("already_decided"));
    assert_eq!(body["approval"]["state"], json!("rejected"));
    assert_eq!(body["approval"]["decided_by"], json!("api:bob"));
    assert_eq!(body["approval"]["reason"], json!("not now"));
    assert!(
        again.error().contains("already rejected by api:bob"),
        "{}",
        again.text
    );

    let shown = s.get(&path(&old.id), Some(&bearer())).await;
    assert_eq!(shown.json()["state"], json!("expired"));
    let late = s
        .post(
            &path(&old.id),
            &json!({"decision": "approve", "by": "alice"}),
        )
        .await;
    assert_eq!(late.status, StatusCode::GONE, "{}", late.text);
    assert_eq!(late.json()["approval"]["state"], json!("expired"));
    assert!(late.error().contains("expired at"), "{}", late.text);
    assert_eq!(s.state_of(&old.id).await, ApprovalState::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_approvals_of_one_id_decide_it_once() {
    let s = Arc::new(start(Some(TOKEN)).await);
    let p = park(s.store.as_ref(), "web", HOUR).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (s, id, barrier) = (s.clone(), p.id.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = s
                .post(
                    &path(&id),
                    &json!({"decision": "approve", "by": format!("approver-{n}")}),
                )
                .await;
            (n, r.status, r.json())
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (n, status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => winners.push((n, body)),
            StatusCode::CONFLICT => {
                assert_eq!(body["code"], json!("already_decided"), "{body}");
                conflicts += 1;
            }
            other => panic!("approver {n}: {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(conflicts, 7);
    let (n, body) = &winners[0];
    let by = format!("api:approver-{n}");
    assert_eq!(body["decided_by"], json!(by));
    let record = s.store.get(&p.key).await.unwrap().unwrap();
    assert_eq!(
        record.answer.unwrap().decision,
        sre_core::Decision::approve(by)
    );
    let metrics = s.metrics.encode();
    assert!(
        metrics.contains("sre_agent_approvals_total{decision=\"approve\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn strict_bodies_are_refused_naming_the_field() {
    let s = start(Some(TOKEN)).await;
    let p = park(s.store.as_ref(), "web", HOUR).await;
    let at = path(&p.id);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"decision": "approve", "by": "a", "approve": true}),
            "unknown field \"approve\"",
        ),
        (
            json!({"decision": "yes", "by": "a"}),
            "\"decision\" must be \"approve\" or \"reject\"",
        ),
        (json!({"by": "a"}), "\"decision\" is required"),
        (json!({"decision": "approve"}), "\"by\" is required"),
        (
            json!({"decision": "approve", "by": ""}),
            "\"by\" must not be empty",
        ),
        (
            json!({"decision": "approve", "by": "   "}),
            "\"by\" must not be empty",
        ),
        (
            json!({"decision": "approve", "by": "a".repeat(129)}),
            "\"by\" is 129 bytes long",
        ),
        (
            json!({"decision": "approve", "by": "al\u{1b}[2Jice"}),
            "\"by\" contains U+001B",
        ),
        (
            json!({"decision": "approve", "by": "al\u{202e}ice"}),
            "\"by\" contains U+202E",
        ),
        (
            json!({"decision": "reject", "by": "a", "reason": "x".repeat(1025)}),
            "\"reason\" is 1025 bytes long",
        ),
        (
            json!({"decision": "reject", "by": "a", "reason": "one\rtwo"}),
            "\"reason\" contains U+000D",
        ),
        (
            json!({"decision": "reject", "by": "a", "reason": 5}),
            "\"reason\" must be a string",
        ),
        (json!(["approve"]), "must be a JSON object"),
    ];
    for (body, needle) in cases {
        let r = s.post(&at, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.error().contains(needle), "{body}: {}", r.text);
    }
    let r = s
        .post_raw(&at, "application/json", "{\"decision\":".to_owned())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("not valid JSON"), "{}", r.text);

    let big = json!({"decision": "reject", "by": "a", "reason": "x".repeat(20 * 1024)});
    let r = s.post(&at, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert!(r.error().contains("larger than 16384 bytes"), "{}", r.text);

    let good = json!({"decision": "approve", "by": "alice"}).to_string();
    let r = s.post_raw(&at, "text/plain", good.clone()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.error().contains("application/json"), "{}", r.text);
    let r = s
        .send(
            s.http
                .post(format!("{}{at}", s.url))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(good.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    assert_eq!(s.state_of(&p.id).await, ApprovalState::Pending);

    let r = s
        .post_raw(
            &at,
            "application/json; charset=utf-8",
            json!({"decision": "reject", "by": "b".repeat(128), "reason": "r".repeat(1024)})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(s.state_of(&p.id).await, ApprovalState::Rejected);
}

#[tokio::test]
async fn an_id_cannot_leave_the_collection() {
    let s = start(Some(TOKEN)).await;
    let p = park(s.store.as_ref(), "web", HOUR).await;
    let client = s.client();

    // The client sends `../x` as one escaped segment: the server looks it up and finds nothing.
    let e = client.get("../x").await.unwrap_err();
    assert!(
        matches!(&e, ClientError::NotFound(m) if m.contains("no approval")),
        "{e:?}"
    );
    let sneaky = format!("../{}", p.id);
    let e = client
        .decide(&sneaky, true, "mallory", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NotFound(_)), "{e:?}");
    for id in ["..", ".", ""] {
        let e = client.get(id).await.unwrap_err();
        assert!(matches!(e, ClientError::InvalidId(_)), "{id:?}: {e:?}");
    }
    // Encoded traversal on the wire is one segment too.
    for raw in [
        "/api/v1/approvals/..%2F..%2Fhealthz".to_owned(),
        format!("/api/v1/approvals/..%2F{}", p.id),
        format!("/api/v1/approvals/%2E%2E%2F{}", p.id),
    ] {
        let r = s.get(&raw, Some(&bearer())).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{raw}: {}", r.text);
        assert!(r.error().contains("no approval"), "{raw}: {}", r.text);
    }
    assert_eq!(s.state_of(&p.id).await, ApprovalState::Pending);
}

#[tokio::test]
async fn the_client_types_every_answer() {
    let s = start(Some(TOKEN)).await;
    let live = park(s.store.as_ref(), "web", HOUR).await;
    let old = park(s.store.as_ref(), "api", -1_000).await;
    let client = s.client();

    let listed = client.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(client.get(&live.id).await.unwrap().action, live.action);

    let e = client
        .decide(&live.id, true, "alice", None, Some("sha256:other"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Conflict(m) if m.contains("sha256:other")),
        "{e:?}"
    );
    let view = client
        .decide(&live.id, true, "alice", Some("ok"), Some(&live.action))
        .await
        .unwrap();
    assert_eq!(view.state, ApprovalState::Approved);
    assert_eq!(view.decided_by.as_deref(), Some("api:alice"));
    match client.decide(&live.id, false, "bob", None, None).await {
        Err(ClientError::AlreadyDecided { message, view }) => {
            assert!(
                message.contains("already approved by api:alice"),
                "{message}"
            );
            assert_eq!(view.unwrap().state, ApprovalState::Approved);
        }
        other => panic!("{other:?}"),
    }
    match client.decide(&old.id, true, "alice", None, None).await {
        Err(ClientError::Expired { message, view }) => {
            assert!(message.contains("expired at"), "{message}");
            assert_eq!(view.unwrap().state, ApprovalState::Expired);
        }
        other => panic!("{other:?}"),
    }
    let e = client
        .decide("apv-000000000000000000000000", true, "alice", None, None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    let e = client
        .decide(&live.id, true, "", None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Server { status: 400, message } if message.contains("\"by\"")),
        "{e:?}"
    );

    let forged = ApprovalsClient::new(&s.url, ApiToken::from_string(FORGED).unwrap()).unwrap();
    let e = forged.list().await.unwrap_err();
    assert!(matches!(e, ClientError::Forbidden(_)), "{e:?}");
    assert!(!e.to_string().contains(FORGED));

    let off = start(None).await;
    let e = ApprovalsClient::new(&off.url, ApiToken::from_string(TOKEN).unwrap())
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Server { status: 503, message } if message.contains("off")),
        "{e:?}"
    );

    // Nothing listens: a transport error naming the server, never the token.
    drop(off);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let e = ApprovalsClient::new(&dead, ApiToken::from_string(TOKEN).unwrap())
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Transport { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(TOKEN));
}

#[tokio::test]
async fn an_approval_carries_the_evidence_it_was_asked_with() {
    let s = start(Some(TOKEN)).await;
    let crash = sre_core::evidence::CrashEvidence {
        pod: "web-7d4b9-x2x".into(),
        container: "web".into(),
        image: "nginx:1.25.3".into(),
        reason: "CrashLoopBackOff (Error)".into(),
        exit_code: Some(1),
        restarts: 7,
        failing_pods: 3,
        last_log_lines: vec!["panic: DATABASE_URL is not set".into()],
        events: vec!["BackOff: Back-off restarting failed container (x28)".into()],
    };
    let evidence = sre_core::evidence::Evidence {
        vulnerabilities: None,
        crash: Some(crash.clone()),
        target_crash: None,
        target_scan: None,
        unchecked: Vec::new(),
    };
    let web = parked::Sample::new("web", HOUR)
        .plan_evidence(evidence)
        .park(s.store.as_ref())
        .await;
    let one = s.get(&path(&web.approval.id), Some(&bearer())).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    let body = one.json();
    assert_eq!(body["evidence"]["crash"]["exit_code"], 1, "{body}");
    let view: ApprovalView = serde_json::from_str(&one.text).unwrap();
    assert_eq!(view.evidence.and_then(|e| e.crash), Some(crash));
    // A plan without evidence says nothing about it.
    let api = park(s.store.as_ref(), "api", HOUR).await;
    let other = s.get(&path(&api.id), Some(&bearer())).await.json();
    assert!(other.get("evidence").is_none(), "{other}");
}
