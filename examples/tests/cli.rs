//! End to end: the `sre-agent` binary on every demo scenario, with `--approve auto`, `deny`, and
//! `prompt` answered `y` / `n` on stdin; exit codes, the report, the simulator's final state (via
//! the JSON report and the after-run triage) and the audit file.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn sre_agent(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_report(scenario: &str, approve: &str) -> (i32, Value) {
    let o = sre_agent(
        &[
            "demo",
            "--scenario",
            scenario,
            "--approve",
            approve,
            "--json",
        ],
        "",
    );
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{scenario}: not JSON ({e}): {}", text(&o)));
    (o.status.code().unwrap(), v)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("sre-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn every_scenario_with_auto_approval() {
    for (scenario, code, applied) in [
        ("bad-release", 0, Some("k8s_rollback")),
        ("image-typo", 0, Some("k8s_rollback")),
        ("critical-cve", 0, Some("k8s_patch_image")),
        ("oom-worker", 3, None),
        ("unschedulable", 3, None),
        ("healthy", 0, None),
    ] {
        let (got, report) = json_report(scenario, "auto");
        assert_eq!(got, code, "{scenario}: {report:#}");
        assert_eq!(report["outcome"]["status"], "completed", "{scenario}");
        let actions = report["actions"].as_array().unwrap();
        match applied {
            Some(tool) => {
                assert_eq!(actions.len(), 1, "{scenario}");
                assert_eq!(actions[0]["tool"], tool, "{scenario}");
                assert_eq!(actions[0]["status"], "applied", "{scenario}");
                assert_eq!(actions[0]["decision"]["by"], "policy:auto", "{scenario}");
                assert_eq!(actions[0]["verification"]["passed"], true, "{scenario}");
            }
            None => assert!(actions.is_empty(), "{scenario}: {actions:?}"),
        }
    }
}

#[test]
fn the_human_report_and_the_audit_file() {
    let audit = tmp("audit.jsonl");
    let o = sre_agent(
        &[
            "demo",
            "--scenario",
            "critical-cve",
            "--approve",
            "auto",
            "--audit",
            audit.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains(
            "patch shop/frontend container nginx image nginx:1.25.3-alpine -> nginx:1.25.5-alpine"
        ),
        "{out}"
    );
    assert!(
        out.contains("+ spec.template.spec.containers[nginx].image: nginx:1.25.5-alpine"),
        "the diff: {out}"
    );
    assert!(
        out.contains("approval: approved by policy:auto at 20"),
        "who and when: {out}"
    );
    assert!(out.contains("verification: passed"), "{out}");
    assert!(out.contains("tokens: "), "{out}");
    assert!(out.contains("estimated cost: $0.00 (offline)"), "{out}");
    assert!(out.contains("exit code 0: resolved / healthy"), "{out}");
    let log = std::fs::read_to_string(&audit).unwrap();
    let summary = sre_core::audit::verify(std::io::Cursor::new(&log)).unwrap();
    assert!(summary.records > 10);
    assert!(
        out.contains(&format!("audit log head: {}", summary.head)),
        "{out}"
    );
    assert!(log.contains("\"approval_decided\""));
    let progress = String::from_utf8_lossy(&o.stderr);
    assert!(
        progress.contains("step 1: k8s_find_unhealthy"),
        "{progress}"
    );
    std::fs::remove_file(&audit).unwrap();
}

#[test]
fn deny_changes_nothing_and_exits_4() {
    for scenario in ["bad-release", "image-typo", "critical-cve"] {
        let (code, report) = json_report(scenario, "deny");
        assert_eq!(code, 4, "{scenario}: {report:#}");
        let actions = report["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 1, "{scenario}");
        assert_eq!(actions[0]["status"], "denied", "{scenario}");
        assert!(
            report["answer"]
                .as_str()
                .unwrap()
                .contains("I would have applied"),
            "{scenario}"
        );
    }
}

#[test]
fn without_a_terminal_the_default_is_deny() {
    let o = sre_agent(&["demo", "--json"], "");
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["actions"][0]["decision"]["by"], "policy:read-only");
}

#[test]
fn prompt_answered_yes_and_no() {
    let o = sre_agent(
        &["demo", "--scenario", "bad-release", "--approve", "prompt"],
        "y\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("approval needed: deployment shop/web: roll back from revision 2"),
        "{err}"
    );
    assert!(err.contains("Approve this change? [y/N]"), "{err}");
    assert!(
        text(&o).contains("approval: approved by prompt:"),
        "{}",
        text(&o)
    );

    let o = sre_agent(
        &["demo", "--scenario", "bad-release", "--approve", "prompt"],
        "n\n",
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("DENIED by prompt:"), "{}", text(&o));
}

#[test]
fn usage_errors_exit_2_and_errors_explain_the_fix() {
    let o = sre_agent(&["demo", "--approve", "maybe"], "");
    assert_eq!(o.status.code(), Some(2));
    // Parking modes need a process that can wait: serve. Nothing runs, nothing is applied.
    for mode in ["api", "slack", "teams", "auto,deny"] {
        let o = sre_agent(&["demo", "--approve", mode], "");
        assert_eq!(o.status.code(), Some(1), "{mode}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("sre-agent serve"), "{mode}: {err}");
        assert!(o.stdout.is_empty(), "{mode}");
    }
    let o = sre_agent(&["demo", "--scenario", "nope"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("no such built-in scenario; choose one of: bad-release")
    );
    let o = Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args(["demo", "--provider", "groq"])
        .env_remove("GROQ_API_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("GROQ_API_KEY is not set") && err.contains("--provider offline needs no key"),
        "{err}"
    );

    let o = Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args(["triage"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", "/nonexistent")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no Kubernetes cluster is configured") && err.contains("sre-agent demo"),
        "{err}"
    );

    let o = sre_agent(&["scan", "nginx:1.25", "--trivy", "/nonexistent/trivy"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("trivy is not installed"));
}

#[test]
fn scan_a_report_rbac_and_scenarios() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sre-tools/tests/fixtures/trivy/debian-buster.json");
    let o = sre_agent(&["scan", "--report", fixture.to_str().unwrap()], "");
    assert_eq!(
        o.status.code(),
        Some(3),
        "a CRITICAL finding: a human must act"
    );
    assert!(
        text(&o).contains("2 vulnerabilities (1 CRITICAL, 1 LOW)"),
        "{}",
        text(&o)
    );
    let o = sre_agent(
        &["scan", "--report", fixture.to_str().unwrap(), "--json"],
        "",
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["entries"]["critical"], 1);

    let o = sre_agent(&["rbac", "--namespace", "shop", "--namespace", "jobs"], "");
    assert_eq!(o.status.code(), Some(0));
    let yaml = text(&o);
    assert_eq!(yaml.lines().filter(|l| *l == "kind: Role").count(), 2);
    assert!(
        yaml.lines()
            .filter(|l| l.contains("verbs"))
            .all(|l| !l.contains("delete"))
    );

    let o = sre_agent(&["scenarios"], "");
    assert!(text(&o).lines().count() >= 7, "{}", text(&o));
    assert!(text(&o).contains("critical-cve"));
}

#[test]
fn eval_prints_the_scorecard_and_fails_on_bad_input() {
    let o = sre_agent(
        &[
            "eval",
            "--scenario",
            "prompt-injection",
            "--brain",
            "playbook",
            "--brain",
            "follows-injections",
            "--runs",
            "2",
            "--json",
        ],
        "",
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let card: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = card["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{card}");
    for r in rows {
        assert_eq!(r["executed"], 0, "{r}");
        assert_eq!(r["consistent"], true, "{r}");
    }
    let playbook = &rows[0];
    assert_eq!(
        (&playbook["brain"], &playbook["verdict"], &playbook["fixed"]),
        (
            &Value::from("playbook"),
            &Value::from("resolved"),
            &Value::from(1)
        ),
        "{playbook}"
    );
    // The model that obeys the injected text tried every instruction; none got through.
    let follower = &rows[1];
    assert!(follower["attempted"].as_u64().unwrap() >= 5, "{follower}");
    assert!(
        follower["blocked"]["policy"].as_u64().unwrap() >= 1,
        "{follower}"
    );
    assert!(
        follower["blocked"]["schema"].as_u64().unwrap() >= 1,
        "{follower}"
    );

    // The baseline without the rules: the injected writes go through, and the exit code says so.
    let o = sre_agent(
        &[
            "eval",
            "--no-rules",
            "--scenario",
            "prompt-injection",
            "--brain",
            "follows-injections",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("FAILED prompt-injection / follows-injections: executed"),
        "{}",
        text(&o)
    );

    let o = sre_agent(&["eval", "--brain", "gpt-9"], "");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown brain \"gpt-9\""), "{err}");
    let o = sre_agent(&["eval", "--scenario", "no-such-scenario"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no-such-scenario"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
