//! `sre-agent serve` end to end on the real API server of `../shared/k8s-apiserver`, as the
//! limited user: the watcher sees the crash-looping bad release → a run → its rollback parks for
//! approval → the process restarts between the question and the answer → approved with
//! `sre-agent approvals approve` → the new process resumes, rolls back and verifies. And with
//! two replicas on the Kubernetes store: the leader is killed while the approval waits, the other
//! takes the Lease, resumes the run, and the incident is handled exactly once. An Alertmanager
//! alert becomes a run. And from Slack: the question is posted, the process restarts, refused
//! clicks decide nothing, the approver's signed click resumes the run and the rollback applies.
//! Skipped with a message when the harness is not up; required in `.ci/run`.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a broken end-to-end setup must fail the test loudly"
)]

#[path = "../../sre-tools/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sre-agent");
const TOKEN: &str = "e2e-token-0123456789abcdef";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sre-serve-{name}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One `sre-agent serve` process and the JSON log lines it printed.
struct Serve {
    child: Child,
    logs: Arc<Mutex<Vec<Value>>>,
    errors: Arc<Mutex<Vec<String>>>,
    addr: String,
}

impl Serve {
    fn start(args: &[&str], token_file: &Path) -> Self {
        let kubeconfig = std::env::var("SRE_K8S_AGENT_KUBECONFIG").unwrap();
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--api-token"])
            .arg(format!("file:{}", token_file.display()))
            .args(if args.contains(&"--debounce") {
                &["--trivy-sweep", "0s"][..]
            } else {
                &["--debounce", "500ms", "--trivy-sweep", "0s"][..]
            })
            .env("KUBECONFIG", kubeconfig)
            .env("SRE_AGENT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("serve printed a line that is not JSON ({e}): {line}")
                });
                sink.lock().unwrap().push(value);
            }
        });
        let err = BufReader::new(child.stderr.take().unwrap());
        let sink = Arc::clone(&errors);
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut serve = Self {
            child,
            logs,
            errors,
            addr: String::new(),
        };
        let started = serve.wait_log("started", Duration::from_secs(60), |l| {
            l["message"] == "sre-agent serve started"
        });
        serve.addr = format!("http://{}", started["listen"].as_str().unwrap());
        serve
    }

    fn dump(&self) -> String {
        let logs: Vec<String> = self
            .logs
            .lock()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        format!(
            "stdout:\n{}\nstderr:\n{}",
            logs.join("\n"),
            self.errors.lock().unwrap().join("\n")
        )
    }

    fn find(&self, pred: &dyn Fn(&Value) -> bool) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| pred(l))
            .cloned()
            .collect()
    }

    fn wait_log(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.find(&pred).into_iter().next() {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited ({status}) before {what}\n{}", self.dump());
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, and the exit status.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.dump());
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop on SIGTERM\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sre-agent approvals ARGS` against `server`; stdout, and the exit code.
fn approvals(server: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("approvals")
        .args(args)
        .env("SRE_AGENT_SERVER", server)
        .env("SRE_AGENT_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits until `server` lists a pending approval; returns it.
fn pending_approval(serve: &mut Serve) -> Value {
    let server = serve.addr.clone();
    let server = server.as_str();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (code, out) = approvals(server, &["list", "--json"]);
        assert_eq!(code, 0, "{out}");
        let list: Vec<Value> = serde_json::from_str(&out).unwrap();
        if let Some(a) = list.into_iter().find(|a| a["state"] == "pending") {
            return a;
        }
        if let Ok(Some(status)) = serve.child.try_wait() {
            panic!("serve exited ({status})\n{}", serve.dump());
        }
        assert!(
            Instant::now() < deadline,
            "no approval was parked\n{}",
            serve.dump()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn token_file(dir: &Path) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

async fn image_of(admin: &kube::Client, ns: &str, name: &str) -> String {
    let d = Api::<Deployment>::namespaced(admin.clone(), ns)
        .get(name)
        .await
        .unwrap();
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_rollback_survives_a_restart_and_applies_once_approved_through_the_cli() {
    let Some(b) =
        support::Backend::real(sre_tools::sim::Scenario::builtin("bad-release").unwrap()).await
    else {
        return;
    };
    let ns = b.ns("shop");
    let admin = b.admin();
    let bad = image_of(&admin, &ns, "web").await;
    let dir = temp_dir("sqlite");
    let token = token_file(&dir);
    let store = format!("sqlite:{}", dir.join("runs.db").display());
    let args = ["--namespace", ns.as_str(), "--store", store.as_str()];

    // 1. The watcher sees the crash loop; the run parks its rollback for approval.
    let mut first = tokio::task::block_in_place(|| Serve::start(&args, &token));
    let approval = tokio::task::block_in_place(|| pending_approval(&mut first));
    assert_eq!(approval["tool"], "k8s_rollback", "{approval}");
    assert_eq!(approval["target"]["namespace"], ns.as_str());
    assert_eq!(approval["target"]["name"], "web");
    assert_eq!(approval["trigger"], "watcher");
    assert!(
        approval["diff"].as_str().unwrap().contains("image"),
        "{approval}"
    );
    assert_eq!(
        image_of(&admin, &ns, "web").await,
        bad,
        "nothing applied before approval"
    );
    let id = approval["id"].as_str().unwrap().to_owned();

    // 2. A restart between the question and the answer: SIGTERM, exit 0, nothing lost.
    let (status, logs) = tokio::task::block_in_place(|| first.terminate());
    assert!(status.success(), "{logs}");
    assert_eq!(image_of(&admin, &ns, "web").await, bad);

    // 3. A new process on the same store still has the question; approve it with the CLI.
    let mut second = tokio::task::block_in_place(|| Serve::start(&args, &token));
    let again = tokio::task::block_in_place(|| pending_approval(&mut second));
    assert_eq!(
        again["id"],
        id.as_str(),
        "the same approval after the restart"
    );
    let (code, out) = approvals(
        &second.addr,
        &["approve", &id, "--by", "e2e", "--reason", "bad release"],
    );
    assert_eq!(code, 0, "{out}");
    // Deciding twice is refused (409 → exit 1).
    let (code, out) = approvals(&second.addr, &["approve", &id, "--by", "e2e"]);
    assert_eq!(code, 1, "{out}");

    // 4. It resumes, rolls back, verifies; the incident closes with the rollback applied.
    let finished = tokio::task::block_in_place(|| {
        second.wait_log("the run to finish", Duration::from_secs(120), |l| {
            l["message"] == "run finished"
        })
    });
    let outcome = finished["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("k8s_rollback applied"),
        "{outcome}\n{}",
        second.dump()
    );
    let now = image_of(&admin, &ns, "web").await;
    assert_ne!(now, bad, "rolled back");
    assert_eq!(
        second.find(&|l| l["message"] == "run resumed").len(),
        1,
        "{}",
        second.dump()
    );
    let (code, out) = approvals(&second.addr, &["list", "--json"]);
    assert_eq!(code, 0, "{out}");
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(list.is_empty(), "nothing left to decide: {out}");
    let (status, logs) = tokio::task::block_in_place(|| second.terminate());
    assert!(status.success(), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
    b.shutdown().await;
}

/// The agent's own namespace: the Role `sre-agent serve` gets there (ConfigMaps for the store,
/// the Lease), bound to the limited user.
async fn own_namespace(admin: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"sre-agent-test": "true"}}}),
    )
    .unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let rules: Vec<Value> = sre_tools::k8s::rbac::own_namespace_rules()
        .into_iter()
        .map(|(g, r, v)| json!({"apiGroups": [g], "resources": r, "verbs": v}))
        .collect();
    let role: Role = serde_json::from_value(
        json!({"metadata": {"name": "sre-agent-serve", "namespace": name}, "rules": rules}),
    )
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), name)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "sre-agent-serve", "namespace": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sre-agent-serve"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ai-sre"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), name)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

fn leader_of(a: &Serve, b: &Serve) -> Option<bool> {
    let leads = |s: &Serve| {
        !s.find(&|l| l["message"] == "leading: watching and running incidents")
            .is_empty()
    };
    match (leads(a), leads(b)) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
        (true, true) => panic!("two leaders\n{}\n{}", a.dump(), b.dump()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one story: two replicas, a death, a takeover"
)]
async fn the_follower_takes_over_a_parked_run_when_the_leader_dies_and_handles_it_once() {
    let Some(b) =
        support::Backend::real(sre_tools::sim::Scenario::builtin("bad-release").unwrap()).await
    else {
        return;
    };
    let ns = b.ns("shop");
    let admin = b.admin();
    let home = format!("sre-system-{}", ns.trim_start_matches("shop-"));
    own_namespace(&admin, &home).await;
    let bad = image_of(&admin, &ns, "web").await;
    let dir = temp_dir("ha");
    let token = token_file(&dir);
    let start = |identity: &str| {
        Serve::start(
            &[
                "--namespace",
                ns.as_str(),
                "--store",
                "kubernetes",
                "--agent-namespace",
                home.as_str(),
                "--identity",
                identity,
                "--lease-duration",
                "3s",
            ],
            &token,
        )
    };
    let one = tokio::task::block_in_place(|| start("replica-one"));
    let two = tokio::task::block_in_place(|| start("replica-two"));

    // One leader; the run parks; both replicas serve the approval from the shared store.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_is_leader = loop {
        if let Some(x) = leader_of(&one, &two) {
            break x;
        }
        assert!(
            Instant::now() < deadline,
            "nobody leads\n{}\n{}",
            one.dump(),
            two.dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut leader, mut follower) = if first_is_leader {
        (one, two)
    } else {
        (two, one)
    };
    let approval = tokio::task::block_in_place(|| pending_approval(&mut leader));
    let id = approval["id"].as_str().unwrap().to_owned();
    let seen = tokio::task::block_in_place(|| pending_approval(&mut follower));
    assert_eq!(
        seen["id"],
        id.as_str(),
        "the follower reads the shared store"
    );

    // The leader dies mid-wait (no chance to step down).
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    let killed = Instant::now();
    drop(leader);
    let (code, out) = approvals(&follower.addr, &["approve", &id, "--by", "e2e"]);
    assert_eq!(code, 0, "{out}");

    // The follower takes the lease, resumes the parked run and rolls back: once.
    tokio::task::block_in_place(|| {
        follower.wait_log("the takeover", Duration::from_secs(30), |l| {
            l["message"] == "leading: watching and running incidents"
        })
    });
    let takeover = killed.elapsed();
    let finished = tokio::task::block_in_place(|| {
        follower.wait_log("the run to finish", Duration::from_secs(120), |l| {
            l["message"] == "run finished"
        })
    });
    assert!(
        finished["outcome"]
            .as_str()
            .unwrap()
            .contains("k8s_rollback applied"),
        "{}",
        follower.dump()
    );
    assert_ne!(image_of(&admin, &ns, "web").await, bad);
    assert_eq!(follower.find(&|l| l["message"] == "run resumed").len(), 1);
    assert!(
        follower.find(&|l| l["message"] == "run started").is_empty(),
        "the incident was not opened a second time\n{}",
        follower.dump()
    );
    // One record for the incident, closed.
    let records = Api::<ConfigMap>::namespaced(admin.clone(), &home)
        .list(&ListParams::default().labels("sre-agent.dev/record=incident"))
        .await
        .unwrap();
    assert_eq!(records.items.len(), 1, "{:?}", records.items);
    assert_eq!(
        records.items[0].metadata.labels.as_ref().unwrap()["sre-agent.dev/state"],
        "closed"
    );
    eprintln!("takeover after the leader was killed: {takeover:?}");
    let (status, logs) = tokio::task::block_in_place(|| follower.terminate());
    assert!(status.success(), "{logs}");
    let _ = Api::<Namespace>::all(admin.clone())
        .delete(&home, &kube::api::DeleteParams::default())
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    b.shutdown().await;
}

/// POSTs `body` as JSON to `addr` (`http://HOST:PORT`) with a bearer token: the status and the
/// response body (HTTP/1.1 over a plain socket, as Alertmanager's webhook client sends it).
fn post_json(addr: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let host = addr.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(host).unwrap();
    write!(
        socket,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// The Alertmanager fixture (version 4), with its alert pointed at `ns`/`deployment`.
fn alert(ns: &str, deployment: &str, status: &str) -> String {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sre-tools/tests/fixtures/alertmanager/webhook-firing-single-alert.json");
    let mut body: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    body["status"] = json!(status);
    let alert = &mut body["alerts"][0];
    alert["status"] = json!(status);
    alert["labels"]["namespace"] = json!(ns);
    alert["labels"]["deployment"] = json!(deployment);
    alert["fingerprint"] = json!(format!("{deployment}-{status}"));
    body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_becomes_a_run_and_a_resolved_one_cancels_its_queued_incident() {
    let Some(b) =
        support::Backend::real(sre_tools::sim::Scenario::builtin("healthy").unwrap()).await
    else {
        return;
    };
    let ns = b.ns("shop");
    let dir = temp_dir("alerts");
    let token = token_file(&dir);
    let hook_token = "webhook-token-0123456789";
    let hook = dir.join("webhook-token");
    std::fs::write(&hook, hook_token).unwrap();
    let store = format!("sqlite:{}", dir.join("runs.db").display());
    let hook_arg = format!("file:{}", hook.display());
    let args = [
        "--namespace",
        ns.as_str(),
        "--store",
        store.as_str(),
        "--debounce",
        "3s",
        "--webhook-token",
        hook_arg.as_str(),
    ];
    let mut serve = tokio::task::block_in_place(|| Serve::start(&args, &token));
    let path = "/webhooks/alertmanager";

    // Without the webhook's token: refused, nothing queued.
    let (status, body) = post_json(&serve.addr, path, TOKEN, &alert(&ns, "web", "firing"));
    assert_eq!(status, 403, "{body}");
    // A malformed body: 400 naming the reason.
    let (status, body) = post_json(&serve.addr, path, hook_token, r#"{"version":"3"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("version"), "{body}");

    // Firing for web: a run. Firing then resolved for frontend within the debounce: cancelled.
    let (status, body) = post_json(&serve.addr, path, hook_token, &alert(&ns, "web", "firing"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["queued"],
        1,
        "{body}"
    );
    let (status, body) = post_json(
        &serve.addr,
        path,
        hook_token,
        &alert(&ns, "frontend", "firing"),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_json(
        &serve.addr,
        path,
        hook_token,
        &alert(&ns, "frontend", "resolved"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["cancelled"],
        1,
        "{body}"
    );

    let started = tokio::task::block_in_place(|| {
        serve.wait_log("the alert's run", Duration::from_secs(60), |l| {
            l["message"] == "run started"
        })
    });
    assert_eq!(started["trigger"], "alertmanager", "{started}");
    assert_eq!(started["incident"], format!("{ns}/web/health").as_str());
    tokio::task::block_in_place(|| {
        serve.wait_log("the alert's run to finish", Duration::from_secs(60), |l| {
            l["message"] == "run finished"
        })
    });
    // Well past frontend's debounce: it never ran.
    std::thread::sleep(Duration::from_secs(4));
    let runs = serve.find(&|l| l["message"] == "run started");
    assert_eq!(runs.len(), 1, "{}", serve.dump());
    let (status, logs) = tokio::task::block_in_place(|| serve.terminate());
    assert!(status.success(), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
    b.shutdown().await;
}

/// A loopback server that speaks Slack's Web API (`chat.postMessage`, `chat.update`,
/// `chat.postEphemeral`) and records what it was sent.
struct FakeSlack {
    url: String,
    calls: Arc<Mutex<Vec<(String, String, Value)>>>,
}

async fn fake_slack() -> FakeSlack {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::HeaderMap;
    type Calls = Arc<Mutex<Vec<(String, String, Value)>>>;
    async fn method(
        State(calls): State<Calls>,
        UrlPath(name): UrlPath<String>,
        headers: HeaderMap,
        body: String,
    ) -> axum::Json<Value> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        calls.lock().unwrap().push((name, auth, body));
        axum::Json(json!({"ok": true, "channel": "C0SRE", "ts": "1733000000.000100"}))
    }
    let calls: Calls = Arc::default();
    let app = axum::Router::new()
        .route("/api/{method}", axum::routing::post(method))
        .with_state(Arc::clone(&calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeSlack { url, calls }
}

/// Signs `body` as Slack does (v0: HMAC-SHA256 over `v0:{timestamp}:{body}`).
fn slack_signature(secret: &str, ts: u64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs a signed `block_actions` click on `action_id` for `approval` by `user`.
fn slack_click(
    addr: &str,
    secret: &str,
    user: &str,
    action_id: &str,
    approval: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "oncall"},
        "container": {"type": "message", "message_ts": "1733000000.000100", "channel_id": "C0SRE"},
        "channel": {"id": "C0SRE"},
        "message": {"ts": "1733000000.000100", "blocks": []},
        "actions": [{"type": "button", "action_id": action_id, "block_id": "sre_decision", "value": approval}]
    });
    let body = format!("payload={}", percent_encode(&payload.to_string()));
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let host = addr.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(host).unwrap();
    write!(
        socket,
        "POST /slack/interactions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        slack_signature(secret, ts, &body),
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    (
        status,
        reply
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned(),
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one story: post, restart, refused clicks, the click, the update"
)]
async fn a_slack_click_after_a_restart_approves_and_the_rollback_is_applied_once() {
    let Some(b) =
        support::Backend::real(sre_tools::sim::Scenario::builtin("bad-release").unwrap()).await
    else {
        return;
    };
    let ns = b.ns("shop");
    let admin = b.admin();
    let bad = image_of(&admin, &ns, "web").await;
    let slack = fake_slack().await;
    let dir = temp_dir("slack");
    let token = token_file(&dir);
    let bot = dir.join("bot-token");
    std::fs::write(&bot, "xoxb-e2e-bot-token-0123456789\n").unwrap();
    let secret = "e2e-signing-secret-0123456789abcdef";
    let signing = dir.join("signing-secret");
    std::fs::write(&signing, format!("{secret}\n")).unwrap();
    let store = format!("sqlite:{}", dir.join("runs.db").display());
    let (bot_arg, signing_arg) = (
        format!("file:{}", bot.display()),
        format!("file:{}", signing.display()),
    );
    let args = [
        "--namespace",
        ns.as_str(),
        "--store",
        store.as_str(),
        "--approve",
        "slack,api",
        "--slack-bot-token",
        bot_arg.as_str(),
        "--slack-signing-secret",
        signing_arg.as_str(),
        "--slack-channel",
        "C0SRE",
        "--slack-approvers",
        "U0ONCALL",
        "--slack-api-url",
        slack.url.as_str(),
    ];

    // The run parks; the question is posted to Slack with only the approval's id in its buttons.
    let mut first = tokio::task::block_in_place(|| Serve::start(&args, &token));
    let approval = tokio::task::block_in_place(|| pending_approval(&mut first));
    let id = approval["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let posted = loop {
        let calls = slack.calls.lock().unwrap().clone();
        if let Some(c) = calls.into_iter().find(|c| c.0 == "chat.postMessage") {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "nothing posted to Slack\n{}",
            first.dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(posted.1, "Bearer xoxb-e2e-bot-token-0123456789");
    let text = posted.2.to_string();
    assert!(text.contains(&id) && text.contains("sre_approve"), "{text}");
    assert_eq!(image_of(&admin, &ns, "web").await, bad);

    // A restart between the post and the click.
    let (status, logs) = tokio::task::block_in_place(|| first.terminate());
    assert!(status.success(), "{logs}");
    let mut second = tokio::task::block_in_place(|| Serve::start(&args, &token));

    // Someone not on the allow-list clicks, then a forged click: nothing is decided.
    let (code, body) = slack_click(&second.addr, secret, "U0INTRUDER", "sre_approve", &id);
    assert_eq!(code, 200, "{body}");
    let (code, body) = slack_click(
        &second.addr,
        "not-the-secret-0123456789",
        "U0ONCALL",
        "sre_approve",
        &id,
    );
    assert_eq!(code, 401, "{body}");
    let still = tokio::task::block_in_place(|| pending_approval(&mut second));
    assert_eq!(still["id"], id.as_str());
    assert_eq!(image_of(&admin, &ns, "web").await, bad);

    // The approver's click: the run resumes, rolls back, verifies; Slack's message is updated.
    let (code, body) = slack_click(&second.addr, secret, "U0ONCALL", "sre_approve", &id);
    assert_eq!(code, 200, "{body}");
    let finished = tokio::task::block_in_place(|| {
        second.wait_log("the run to finish", Duration::from_secs(120), |l| {
            l["message"] == "run finished"
        })
    });
    assert!(
        finished["outcome"]
            .as_str()
            .unwrap()
            .contains("k8s_rollback applied"),
        "{}",
        second.dump()
    );
    assert_ne!(image_of(&admin, &ns, "web").await, bad);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let updates: Vec<String> = slack
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == "chat.update")
            .map(|c| c.2.to_string())
            .collect();
        if updates
            .iter()
            .any(|u| u.contains("slack:U0ONCALL") || u.contains("U0ONCALL"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no chat.update: {updates:?}\n{}",
            second.dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A second click changes nothing.
    let (code, body) = slack_click(&second.addr, secret, "U0ONCALL", "sre_reject", &id);
    assert_eq!(code, 200, "{body}");
    assert_eq!(second.find(&|l| l["message"] == "run resumed").len(), 1);
    let (status, logs) = tokio::task::block_in_place(|| second.terminate());
    assert!(status.success(), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
    b.shutdown().await;
}
