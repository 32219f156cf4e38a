//! End to end: the real `sre-agent approvals list|approve|reject` binary against the real
//! approvals API (the router on 127.0.0.1:0 in front of an in-memory `SQLite` store) — the table
//! with hostile strings escaped, `--json`, decisions recorded as `api:NAME`, the server's refusals
//! (409, 410, 404, 403) as exit 1 with its message, configuration errors as exit 2, and the token
//! never printed.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

#[path = "../../sre-tools/tests/support/parked.rs"]
mod parked;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sre_core::Decision;
use sre_tools::serve::api::{self, ApiState, ApiToken};
use sre_tools::serve::metrics::Metrics;
use sre_tools::serve::{ApprovalState, Health, RunStore, SqliteStore};
use tokio::sync::{Notify, oneshot};

const TOKEN: &str = "cli-approvals-token-0123456789abcdef";

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

struct Server {
    url: String,
    store: Arc<SqliteStore>,
    _stop: oneshot::Sender<()>,
}

async fn start() -> Server {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let state = ApiState {
        store: store.clone(),
        token: Some(ApiToken::from_string(TOKEN).unwrap()),
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(Health::new(false)),
        decided: Arc::new(Notify::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, api::router(state), async {
        let _ = stopped.await;
    }));
    Server {
        url,
        store,
        _stop: stop,
    }
}

struct Parked {
    id: String,
    action: String,
    key: String,
}

/// Parks a run of `workload` in `store` with a plan whose summary is `summary`; its approval
/// expires `ttl_ms` from now (negative: already expired).
async fn park(store: &dyn RunStore, workload: &str, summary: &str, ttl_ms: i64) -> Parked {
    let ask = parked::Sample::new(workload, ttl_ms)
        .summary(summary)
        .park(store)
        .await;
    Parked {
        id: ask.approval.id,
        action: ask.approval.action,
        key: ask.incident.key,
    }
}

const HOUR: i64 = 3_600_000;

/// Runs `sre-agent approvals ARGS` with only `env` set of the variables it reads.
async fn approvals(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sre-agent"));
    command
        .arg("approvals")
        .args(args)
        .env_remove("SRE_AGENT_SERVER")
        .env_remove("SRE_AGENT_API_TOKEN")
        .env_remove("USER")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Checks the exit code and that the token appears nowhere in the output.
fn expect(o: &Output, code: i32) {
    let all = stdout(o) + &stderr(o);
    assert_eq!(o.status.code(), Some(code), "{all}");
    assert!(!all.contains(TOKEN), "the token leaked: {all}");
}

/// A directory holding a token file for one test.
fn token_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sre-cli-approvals-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("api.token");
    std::fs::write(&path, content).unwrap();
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn answer_of(store: &SqliteStore, key: &str) -> Option<Decision> {
    store
        .get(key)
        .await
        .unwrap()
        .unwrap()
        .answer
        .map(|a| a.decision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_escapes_hostile_strings_and_prints_json() {
    let s = start().await;
    let web = park(
        s.store.as_ref(),
        "web",
        "roll back deployment shop/web\u{1b}[2J\u{202e}evil",
        HOUR,
    )
    .await;
    let api = park(
        s.store.as_ref(),
        "api",
        "roll back deployment shop/api",
        HOUR,
    )
    .await;
    let file = token_file("list", &format!("{TOKEN}\n"));

    let o = approvals(
        &["list", "--server", &s.url, "--token-file", path_str(&file)],
        &[],
    )
    .await;
    expect(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for column in ["ID", "STATE", "RISK", "TARGET", "SUMMARY", "EXPIRES"] {
        assert!(lines[0].contains(column), "{out}");
    }
    let web_line = lines.iter().find(|l| l.starts_with(&web.id)).unwrap();
    assert!(web_line.contains("pending"), "{web_line}");
    assert!(web_line.contains("medium"), "{web_line}");
    assert!(web_line.contains("deployments.apps/shop/web"), "{web_line}");
    assert!(
        web_line.contains("shop/web\\e[2J\\u{202e}evil"),
        "{web_line}"
    );
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert!(lines.iter().any(|l| l.starts_with(&api.id)), "{out}");

    // The same from the environment, as JSON.
    let o = approvals(
        &["list", "--json"],
        &[("SRE_AGENT_SERVER", &s.url), ("SRE_AGENT_API_TOKEN", TOKEN)],
    )
    .await;
    expect(&o, 0);
    let views: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let views = views.as_array().unwrap();
    assert_eq!(views.len(), 2);
    let shown = views.iter().find(|v| v["id"] == json!(web.id)).unwrap();
    assert_eq!(shown["action"], json!(web.action));
    assert_eq!(shown["state"], json!("pending"));

    // Options may come after the subcommand or before it.
    let o = approvals(
        &[
            "--server",
            &s.url,
            "--token-file",
            path_str(&file),
            "list",
            "--pending",
        ],
        &[],
    )
    .await;
    expect(&o, 0);
    assert_eq!(stdout(&o).lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_reject_record_the_decision_and_refusals_exit_1() {
    let s = start().await;
    let web = park(s.store.as_ref(), "web", "roll back shop/web", HOUR).await;
    let api = park(s.store.as_ref(), "api", "roll back shop/api", HOUR).await;
    let old = park(s.store.as_ref(), "old", "roll back shop/old", -1_000).await;
    let env = [
        ("SRE_AGENT_SERVER", s.url.as_str()),
        ("SRE_AGENT_API_TOKEN", TOKEN),
    ];

    // Another action than the one waiting: refused, nothing recorded.
    let o = approvals(&["approve", &web.id, "--action", "sha256:0000"], &env).await;
    expect(&o, 1);
    assert!(stderr(&o).contains("review it again"), "{}", stderr(&o));
    assert_eq!(answer_of(&s.store, &web.key).await, None);

    let o = approvals(
        &[
            "approve",
            &web.id,
            "--by",
            "alice",
            "--action",
            &web.action,
            "--reason",
            "diff checked",
        ],
        &env,
    )
    .await;
    expect(&o, 0);
    assert!(
        stdout(&o).starts_with(&format!(
            "approved {} by api:alice: roll back shop/web",
            web.id
        )),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        answer_of(&s.store, &web.key).await,
        Some(Decision::approve("api:alice"))
    );

    let o = approvals(&["reject", &web.id, "--by", "bob"], &env).await;
    expect(&o, 1);
    assert!(
        stderr(&o).contains("already approved by api:alice"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        answer_of(&s.store, &web.key).await,
        Some(Decision::approve("api:alice"))
    );

    // --by defaults to $USER.
    let mut with_user = env.to_vec();
    with_user.push(("USER", "carol"));
    let o = approvals(&["reject", &api.id], &with_user).await;
    expect(&o, 0);
    assert!(stdout(&o).contains("by api:carol"), "{}", stdout(&o));
    assert_eq!(
        answer_of(&s.store, &api.key).await,
        Some(Decision::deny("api:carol", api::DEFAULT_REJECT_REASON))
    );

    let o = approvals(&["approve", &old.id], &env).await;
    expect(&o, 1);
    assert!(stderr(&o).contains("expired at"), "{}", stderr(&o));
    assert_eq!(
        s.store
            .approvals(now_ms())
            .await
            .unwrap()
            .iter()
            .find(|v| v.id == old.id)
            .unwrap()
            .state,
        ApprovalState::Expired
    );

    let o = approvals(&["approve", "apv-000000000000000000000000"], &env).await;
    expect(&o, 1);
    assert!(stderr(&o).contains("no approval"), "{}", stderr(&o));

    // A wrong token: the server's 403, exit 1.
    let o = approvals(
        &["list"],
        &[
            ("SRE_AGENT_SERVER", s.url.as_str()),
            ("SRE_AGENT_API_TOKEN", "not-the-token-0123456789"),
        ],
    )
    .await;
    expect(&o, 1);
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_exit_2_without_printing_the_token() {
    let s = start().await;
    let p = park(s.store.as_ref(), "web", "roll back shop/web", HOUR).await;
    let good = token_file("config", &format!("{TOKEN}\n"));
    let short = token_file("config-short", "abc\n");
    let spaced = token_file("config-spaced", &format!("{TOKEN} extra\n"));

    for (args, env, needle) in [
        (
            vec!["list"],
            vec![("SRE_AGENT_API_TOKEN", TOKEN)],
            "no server",
        ),
        (vec!["list", "--server", &s.url], vec![], "no API token"),
        (
            vec!["list", "--server", &s.url, "--token-file", path_str(&short)],
            vec![],
            "is 3 bytes long",
        ),
        (
            vec![
                "list",
                "--server",
                &s.url,
                "--token-file",
                path_str(&spaced),
            ],
            vec![],
            "U+0020",
        ),
        (
            vec![
                "list",
                "--server",
                "ftp://example.test",
                "--token-file",
                path_str(&good),
            ],
            vec![],
            "use http or https",
        ),
        (
            vec![
                "list",
                "--server",
                "http://u:hunter2@example.test",
                "--token-file",
                path_str(&good),
            ],
            vec![],
            "carries credentials",
        ),
        (
            vec![
                "approve",
                "..",
                "--server",
                &s.url,
                "--token-file",
                path_str(&good),
            ],
            vec![],
            "bad approval id",
        ),
        (
            vec![
                "approve",
                &p.id,
                "--by",
                "eve\u{7}",
                "--server",
                &s.url,
                "--token-file",
                path_str(&good),
            ],
            vec![],
            "\"by\" contains U+0007",
        ),
    ] {
        let o = approvals(&args, &env).await;
        expect(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!err.contains("abc\n") && !err.contains("extra"), "{err}");
    }
    // clap's own usage errors are exit 2 too.
    let o = approvals(&["approve"], &[]).await;
    expect(&o, 2);
    // Nothing was decided by any of it.
    assert_eq!(answer_of(&s.store, &p.key).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_exits_1_naming_it() {
    let good = token_file("unreachable", &format!("{TOKEN}\n"));
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let o = approvals(
        &["list", "--server", &dead, "--token-file", path_str(&good)],
        &[],
    )
    .await;
    expect(&o, 1);
    assert!(
        stderr(&o).contains("cannot reach the approvals API"),
        "{}",
        stderr(&o)
    );
}
