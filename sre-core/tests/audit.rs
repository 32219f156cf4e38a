//! The hash-chained audit log: an agent run's log verifies, and an edited, deleted, reordered or
//! inserted line is pinpointed; with a key a rebuilt chain is found, and with the head kept
//! elsewhere (the anchor) so are records cut off the end.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::io::Cursor;

use serde_json::{Value, json};
use sre_core::audit::{self, AuditKey, GENESIS, VerifyOptions};
use sre_core::testing::{
    EchoTool, ScaleTool, ScriptedProvider, SharedBuffer, answer, call, tool_turn,
};
use sre_core::{Agent, AuditError, AuditLog, AutoApprove};

async fn logged_run() -> (Vec<String>, String) {
    logged_run_with(None).await
}

async fn logged_run_with(key: Option<AuditKey>) -> (Vec<String>, String) {
    let buf = SharedBuffer::default();
    let log = std::sync::Arc::new(match key {
        Some(key) => AuditLog::keyed(buf.clone(), key),
        None => AuditLog::new(buf.clone()),
    });
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

/// A key only these tests know; it must never show up in any text.
const SECRET: &[u8] = b"s3cr3t-audit-key-never-printed";

fn key() -> AuditKey {
    AuditKey::new(SECRET).unwrap()
}

fn check_with(
    lines: &[String],
    key: Option<AuditKey>,
    expected_head: Option<&str>,
) -> Result<audit::AuditSummary, AuditError> {
    let options = VerifyOptions {
        key,
        expected_head: expected_head.map(str::to_owned),
    };
    audit::verify_with(Cursor::new(lines.join("\n")), &options)
}

fn field(line: &str, name: &str) -> Value {
    serde_json::from_str::<Value>(line).unwrap()[name].clone()
}

fn hmac_hex(key: &[u8], s: &str) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(s.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What a forger does: edit line `from` (0-based) and recompute the chain value of it and of every
/// line after it with `chain_value` (all they can compute without the key).
fn rebuild_from(lines: &mut [String], from: usize, chain_value: impl Fn(&str) -> String) {
    let mut prev = if from == 0 {
        GENESIS.to_owned()
    } else {
        field(&lines[from - 1], "hash").as_str().unwrap().to_owned()
    };
    for (i, line) in lines.iter_mut().enumerate().skip(from) {
        let mut v: Value = serde_json::from_str(line).unwrap();
        if i == from {
            v["event"]["forged"] = json!(true);
        }
        v["prev"] = json!(prev);
        let hash = chain_value(&format!(
            "{}\n{}\n{prev}\n{}",
            v["seq"],
            v["ts"].as_str().unwrap(),
            audit::canonical_json(&v["event"])
        ));
        v["hash"] = json!(hash);
        prev = hash;
        *line = v.to_string();
    }
}

#[tokio::test]
async fn truncated_log_is_detected_with_the_anchor() {
    let (lines, head) = logged_run().await;
    let n = lines.len();
    // The anchor matches the intact log, in any case.
    let summary = check_with(&lines, None, Some(&head.to_uppercase())).unwrap();
    assert_eq!((summary.records, summary.head.as_str()), (n, head.as_str()));

    let cut = &lines[..n - 2];
    // From the file alone, a log cut short looks intact…
    assert_eq!(check(cut).unwrap().records, n - 2);
    // …but not to whoever kept the head.
    let err = check_with(cut, None, Some(&head)).unwrap_err();
    let new_head = field(&cut[n - 3], "hash");
    match &err {
        AuditError::HeadMismatch {
            records,
            head: got,
            expected,
            found_at,
        } => {
            assert_eq!(*records, n - 2);
            assert_eq!(got, new_head.as_str().unwrap());
            assert_eq!(expected, &head);
            assert_eq!(*found_at, None);
        }
        other => panic!("expected a head mismatch, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "audit log ends at record {} with head {}, expected head {head}: records were removed from the end or the log was rebuilt",
            n - 2,
            new_head.as_str().unwrap()
        )
    );
    // Everything cut: an empty file is not the expected log either.
    assert!(matches!(
        check_with(&[], None, Some(&head)),
        Err(AuditError::HeadMismatch { records: 0, .. })
    ));
}

#[tokio::test]
async fn an_anchor_taken_earlier_says_how_many_records_followed_it() {
    let (lines, _) = logged_run().await;
    let earlier = field(&lines[4], "hash");
    let err = check_with(&lines, None, earlier.as_str()).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::HeadMismatch {
                found_at: Some(5),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!(
            "which is record 5: {} records were appended after it",
            lines.len() - 5
        )),
        "{err}"
    );
}

#[tokio::test]
async fn rebuilt_chain_is_detected_with_a_key() {
    // Unkeyed, a chain rebuilt after an edit verifies: nothing in the file can tell.
    let (mut plain, plain_head) = logged_run().await;
    rebuild_from(&mut plain, 4, sha2_hex);
    assert_eq!(check(&plain).unwrap().records, plain.len());
    // Only the anchor can.
    assert!(matches!(
        check_with(&plain, None, Some(&plain_head)),
        Err(AuditError::HeadMismatch { .. })
    ));

    // Keyed, the forger cannot compute the chain values: the first rebuilt line is named.
    let (lines, head) = logged_run_with(Some(key())).await;
    let summary = check_with(&lines, Some(key()), Some(&head)).unwrap();
    assert!(summary.keyed);
    assert_eq!(summary.head, head);
    assert!(lines.iter().all(|l| field(l, "alg") == "hmac-sha256"));
    for forger in [
        Box::new(sha2_hex) as Box<dyn Fn(&str) -> String>,
        Box::new(|s: &str| hmac_hex(b"a guessed key of some length", s)),
    ] {
        let mut forged = lines.clone();
        rebuild_from(&mut forged, 4, forger);
        let (line, reason) = tampered_line(check_with(&forged, Some(key()), None));
        assert_eq!(line, 5);
        assert!(reason.contains("rebuilt without the key"), "{reason}");
    }
}

#[tokio::test]
async fn a_keyed_log_verified_without_its_key_says_so() {
    let (lines, _) = logged_run_with(Some(key())).await;
    let err = check(&lines).unwrap_err();
    assert!(matches!(err, AuditError::KeyRequired), "{err:?}");
    assert!(
        err.to_string().contains("audit log is keyed (hmac-sha256)"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_key_is_an_error_at_line_1() {
    let (lines, _) = logged_run_with(Some(key())).await;
    let wrong = AuditKey::new(b"another key, just as long").unwrap();
    let (line, reason) = tampered_line(check_with(&lines, Some(wrong), None));
    assert_eq!(line, 1);
    assert!(
        reason.contains("the key is not the one the log was written with"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_unkeyed_log_verified_with_a_key_is_reported() {
    let (lines, _) = logged_run().await;
    let err = check_with(&lines, Some(key()), None).unwrap_err();
    assert!(matches!(err, AuditError::NotKeyed), "{err:?}");

    // The same for a keyed log rewritten as a plain chain (a downgrade).
    let (mut lines, _) = logged_run_with(Some(key())).await;
    for l in &mut lines {
        *l = l.replace("\"alg\":\"hmac-sha256\"", "\"alg\":\"sha256\"");
    }
    rebuild_from(&mut lines, 0, sha2_hex);
    assert!(
        check(&lines).is_ok(),
        "without the key it is just a plain chain"
    );
    assert!(matches!(
        check_with(&lines, Some(key()), None),
        Err(AuditError::NotKeyed)
    ));
}

#[tokio::test]
async fn records_of_another_mode_spliced_in_are_found() {
    let (mut lines, _) = logged_run_with(Some(key())).await;
    lines[3] = lines[3].replace("\"alg\":\"hmac-sha256\"", "\"alg\":\"sha256\"");
    let (line, reason) = tampered_line(check_with(&lines, Some(key()), None));
    assert_eq!(line, 4);
    assert!(reason.contains("alg is \"sha256\""), "{reason}");

    let (mut lines, _) = logged_run().await;
    lines[2] = lines[2].replace("\"alg\":\"sha256\"", "\"alg\":\"md5\"");
    let (line, reason) = tampered_line(check(&lines));
    assert_eq!(line, 3);
    assert!(reason.contains("unknown alg"), "{reason}");
}

#[tokio::test]
async fn a_log_written_before_keys_existed_verifies_and_continues() {
    // Lines exactly as the log wrote them before `alg` existed.
    let (lines, head) = logged_run().await;
    let old: Vec<String> = lines
        .iter()
        .map(|l| l.replace(",\"alg\":\"sha256\"", ""))
        .collect();
    assert!(old.iter().all(|l| !l.contains("\"alg\"")));
    let summary = check(&old).unwrap();
    assert_eq!(
        (summary.records, summary.head.as_str()),
        (old.len(), head.as_str())
    );
    assert!(!summary.keyed);

    let dir = std::env::temp_dir().join(format!("sre-audit-old-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    std::fs::write(&path, old.join("\n") + "\n").unwrap();
    let log = AuditLog::open(&path).unwrap();
    log.append(&sre_core::Event::StepStarted {
        run_id: "r".into(),
        step: 1,
    })
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let summary = audit::verify(Cursor::new(&text)).unwrap();
    assert_eq!(summary.records, old.len() + 1);
    assert_eq!(summary, log.summary());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_keyed_log_continues_only_with_its_key() {
    let dir = std::env::temp_dir().join(format!("sre-audit-keyed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let (lines, _) = logged_run_with(Some(key())).await;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    assert!(matches!(
        AuditLog::open(&path),
        Err(AuditError::KeyRequired)
    ));
    let wrong = AuditKey::new(b"another key, just as long").unwrap();
    assert!(matches!(
        AuditLog::open_keyed(&path, wrong),
        Err(AuditError::Tampered { line: 1, .. })
    ));
    let log = AuditLog::open_keyed(&path, key()).unwrap();
    assert!(log.is_keyed());
    log.append(&sre_core::Event::StepStarted {
        run_id: "r".into(),
        step: 1,
    })
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let options = VerifyOptions {
        key: Some(key()),
        expected_head: Some(log.head()),
    };
    let summary = audit::verify_with(Cursor::new(&text), &options).unwrap();
    assert_eq!(summary.records, lines.len() + 1);
    assert_eq!(summary, log.summary());

    let (plain, _) = logged_run().await;
    std::fs::write(&path, plain.join("\n") + "\n").unwrap();
    assert!(matches!(
        AuditLog::open_keyed(&path, key()),
        Err(AuditError::NotKeyed)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_key_never_appears_in_debug_or_error_text() {
    let secret = std::str::from_utf8(SECRET).unwrap();
    let dir = std::env::temp_dir().join(format!("sre-audit-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("audit.key");
    std::fs::write(&key_path, [SECRET, b"\n"].concat()).unwrap();
    let from_file = AuditKey::from_file(&key_path).unwrap();
    assert_eq!(from_file.source(), format!("file {}", key_path.display()));

    let (lines, head) = logged_run_with(Some(from_file.clone())).await;
    // The file's trailing newline is not part of the key.
    check_with(&lines, Some(key()), Some(&head)).unwrap();

    let mut texts = vec![
        format!("{from_file:?}"),
        format!("{:?}", AuditLog::keyed(std::io::sink(), key())),
        format!(
            "{:?}",
            VerifyOptions {
                key: Some(key()),
                expected_head: None
            }
        ),
    ];
    let wrong = AuditKey::new(b"another key, just as long").unwrap();
    let (plain, _) = logged_run().await;
    let mut cut = lines.clone();
    cut.pop();
    for err in [
        check(&lines).unwrap_err(),
        check_with(&lines, Some(wrong), None).unwrap_err(),
        check_with(&plain, Some(from_file.clone()), None).unwrap_err(),
        check_with(&cut, Some(key()), Some(&head)).unwrap_err(),
    ] {
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    // Keys that cannot be used: named by where they came from, never shown.
    let short = dir.join("short.key");
    std::fs::write(&short, "hunter2\n").unwrap();
    for err in [
        AuditKey::from_file(&short).unwrap_err(),
        AuditKey::from_file(dir.join("missing.key")).unwrap_err(),
        AuditKey::from_env("SRE_AUDIT_TEST_KEY_NOT_SET").unwrap_err(),
        AuditKey::new(b"hunter2").unwrap_err(),
    ] {
        assert!(matches!(err, AuditError::Key { .. }), "{err:?}");
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    assert!(texts[texts.len() - 8].contains("short.key"), "{texts:?}");
    assert!(
        texts[texts.len() - 4]
            .contains("environment variable SRE_AUDIT_TEST_KEY_NOT_SET is unusable: it is not set"),
        "{texts:?}"
    );
    for t in &texts {
        assert!(!t.contains(secret), "the key leaked: {t}");
        assert!(!t.contains("hunter2"), "the key leaked: {t}");
        assert!(!t.contains(&hex::encode(SECRET)), "the key leaked: {t}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_run_report_carries_the_audit_anchor() {
    use sre_core::testing::{ScriptedProvider, answer};
    let buf = sre_core::testing::SharedBuffer::default();
    let log = std::sync::Arc::new(AuditLog::new(buf.clone()));
    let agent = sre_core::Agent::builder(ScriptedProvider::new([answer("ok")]))
        .audit_log(std::sync::Arc::clone(&log))
        .build()
        .unwrap();
    let report = agent.run("check").await;
    let anchor = report.audit.expect("the report carries the anchor");
    assert_eq!(anchor.head, log.head());
    let checked = sre_core::audit::verify(std::io::Cursor::new(buf.contents())).unwrap();
    assert_eq!(
        (checked.records, checked.head),
        (anchor.records, anchor.head)
    );
}
