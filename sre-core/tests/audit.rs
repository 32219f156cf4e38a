//! The hash-chained audit log: an agent run's log verifies, and an edited, deleted, reordered or
//! inserted line is pinpointed.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::io::Cursor;

use serde_json::{Value, json};
use sre_core::audit::{self, GENESIS};
use sre_core::testing::{
    EchoTool, ScaleTool, ScriptedProvider, SharedBuffer, answer, call, tool_turn,
};
use sre_core::{Agent, AuditError, AuditLog, AutoApprove};

async fn logged_run() -> (Vec<String>, String) {
    let buf = SharedBuffer::default();
    let log = std::sync::Arc::new(AuditLog::new(buf.clone()));
    let agent = Agent::builder(ScriptedProvider::new([
        tool_turn(vec![call(
            "r1",
            "echo",
            json!({"text": "web crash-looping"}),
        )]),
        tool_turn(vec![call(
            "w1",
            "scale",
            json!({"namespace": "shop", "deployment": "web", "replicas": 2}),
        )]),
        answer("done"),
    ]))
    .tool(EchoTool::default())
    .tool(ScaleTool::default())
    .policy(AutoApprove)
    .observer_arc(log.clone())
    .build()
    .unwrap();
    agent.run("fix web").await;
    assert!(log.failure().is_none());
    let lines = buf.contents().lines().map(str::to_owned).collect();
    (lines, log.head())
}

fn check(lines: &[String]) -> Result<audit::AuditSummary, AuditError> {
    audit::verify(Cursor::new(lines.join("\n")))
}

fn tampered_line(result: Result<audit::AuditSummary, AuditError>) -> (usize, String) {
    match result {
        Err(AuditError::Tampered { line, reason }) => (line, reason),
        other => panic!("expected tampering, got {other:?}"),
    }
}

#[tokio::test]
async fn a_run_log_verifies_and_records_the_approval() {
    let (lines, head) = logged_run().await;
    assert!(lines.len() >= 10, "{}", lines.len());
    let summary = check(&lines).unwrap();
    assert_eq!(summary.records, lines.len());
    assert_eq!(summary.head, head);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["prev"], GENESIS);
    assert_eq!(first["seq"], 1);
    assert_eq!(first["event"]["type"], "run_started");
    let approval = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["event"]["type"] == "approval_decided")
        .unwrap();
    assert_eq!(approval["event"]["decision"]["by"], "policy:auto");
    assert_eq!(approval["event"]["fingerprint"], "shop/web@v1");
}

#[tokio::test]
async fn an_edited_line_is_found() {
    let (mut lines, _) = logged_run().await;
    let i = lines
        .iter()
        .position(|l| l.contains("\"approval_decided\""))
        .unwrap();
    lines[i] = lines[i].replace("policy:auto", "policy:human");
    let (line, reason) = tampered_line(check(&lines));
    assert_eq!(line, i + 1);
    assert!(reason.contains("edited"), "{reason}");
}

#[tokio::test]
async fn an_edit_that_recomputes_its_own_hash_breaks_the_next_line() {
    let (mut lines, _) = logged_run().await;
    let mut v: Value = serde_json::from_str(&lines[2]).unwrap();
    v["event"]["step"] = json!(99);
    // The forger recomputes this line's hash the way the log does…
    let canonical = audit::canonical_json(&v["event"]);
    let mut h = sha2_hex(&format!(
        "{}\n{}\n{}\n{canonical}",
        v["seq"],
        v["ts"].as_str().unwrap(),
        v["prev"].as_str().unwrap()
    ));
    v["hash"] = json!(h.split_off(0));
    lines[2] = v.to_string();
    // …but the next line still points at the old hash.
    let (line, reason) = tampered_line(check(&lines));
    assert_eq!(line, 4);
    assert!(reason.contains("prev does not match"), "{reason}");
}

fn sha2_hex(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn a_deleted_line_is_found() {
    let (mut lines, _) = logged_run().await;
    lines.remove(3);
    let (line, reason) = tampered_line(check(&lines));
    assert_eq!(line, 4);
    assert!(
        reason.contains("sequence number 5 where 4 was expected"),
        "{reason}"
    );
    // Deleting the first line is found at line 1.
    let (mut lines, _) = logged_run().await;
    lines.remove(0);
    assert_eq!(tampered_line(check(&lines)).0, 1);
}

#[tokio::test]
async fn reordered_lines_are_found() {
    let (mut lines, _) = logged_run().await;
    lines.swap(5, 6);
    let (line, _) = tampered_line(check(&lines));
    assert_eq!(line, 6);
}

#[tokio::test]
async fn garbage_is_found() {
    let (mut lines, _) = logged_run().await;
    lines.insert(2, "not json".into());
    let (line, reason) = tampered_line(check(&lines));
    assert_eq!(line, 3);
    assert!(reason.starts_with("not a JSON record"), "{reason}");
}

#[tokio::test]
async fn open_continues_a_chain_and_refuses_a_broken_one() {
    let dir = std::env::temp_dir().join(format!("sre-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let (lines, _) = logged_run().await;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let log = AuditLog::open(&path).unwrap();
    log.append(&sre_core::Event::StepStarted {
        run_id: "r".into(),
        step: 1,
    })
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let summary = audit::verify(Cursor::new(&text)).unwrap();
    assert_eq!(summary.records, lines.len() + 1);
    assert_eq!(summary.head, log.head());

    std::fs::write(&path, text.replacen("\"seq\":2", "\"seq\":7", 1)).unwrap();
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::Tampered { line: 2, .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
