//! End to end: `sre-agent audit verify` on the audit file a `demo --audit FILE` run writes — intact,
//! edited, truncated (caught with `--head`), rebuilt by someone without the key — and the head the
//! run's report carries.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sre_core::audit::AuditKey;
use sre_core::testing::SharedBuffer;
use sre_core::{AuditLog, Event};

/// A key the tests write to a key file; it must never show up in any output.
const KEY: &str = "c0ffee-audit-key-0123456789abcdef";

fn sre_agent(args: &[&str]) -> Output {
    sre_agent_env(args, &[])
}

fn sre_agent_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every byte the command printed, for "the key never appears" checks.
fn all_output(o: &Output) -> String {
    stdout(o) + &stderr(o)
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sre-cli-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn key_file(dir: &Path) -> PathBuf {
    let path = dir.join("audit.key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    path
}

/// `demo --scenario critical-cve --approve auto --audit FILE [extra…]`; the human report's
/// `audit log head:` hash.
fn demo_head(audit: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "demo",
        "--scenario",
        "critical-cve",
        "--approve",
        "auto",
        "--audit",
        audit.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = sre_agent(&args);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("audit log head: "))
        .unwrap_or_else(|| panic!("no audit head in the report: {out}"));
    line.split_whitespace().next().unwrap().to_owned()
}

fn verify(file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["audit", "verify", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    sre_agent(&args)
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(file: &Path, lines: &[String]) {
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
}

/// What a forger without the key can do: take every event, change the approval, and write a whole
/// new chain with the library itself (unkeyed, or keyed with a key they guessed).
fn rebuild(file: &Path, log: impl FnOnce(SharedBuffer) -> AuditLog) {
    let buf = SharedBuffer::default();
    let forged = log(buf.clone());
    for line in lines(file) {
        let mut record: Value = serde_json::from_str(&line).unwrap();
        if record["event"]["type"] == "approval_decided" {
            record["event"]["decision"]["by"] = "human:alice".into();
        }
        let event: Event = serde_json::from_value(record["event"].take()).unwrap();
        forged.append(&event).unwrap();
    }
    std::fs::write(file, buf.contents()).unwrap();
}

#[test]
fn a_demo_run_verifies_and_prints_the_same_head_as_the_report() {
    let d = dir("intact");
    let audit = d.join("audit.jsonl");
    let head = demo_head(&audit, &[]);
    let records = lines(&audit).len();
    assert!(records > 10, "{records}");

    let o = verify(&audit, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert_eq!(
        stdout(&o).trim_end(),
        format!(
            "audit log {}: {records} records, chain intact, head {head}, unkeyed",
            audit.display()
        )
    );
    let o = verify(&audit, &["--head", &head]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));

    let o = verify(&audit, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["intact"], true);
    assert_eq!(v["records"], records);
    assert_eq!(v["head"], head.as_str());
    assert_eq!(v["keyed"], false);

    // The JSON run report carries the same anchor.
    let audit2 = d.join("audit2.jsonl");
    let o = sre_agent(&[
        "demo",
        "--scenario",
        "critical-cve",
        "--approve",
        "auto",
        "--json",
        "--audit",
        audit2.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["audit"]["file"], audit2.to_str().unwrap());
    assert_eq!(report["audit"]["records"], lines(&audit2).len());
    assert_eq!(report["audit"]["keyed"], false);
    let head2 = report["audit"]["head"].as_str().unwrap();
    let o = verify(&audit2, &["--head", head2]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert!(
        stdout(&o).contains(&format!("head {head2}")),
        "{}",
        stdout(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_edited_line_fails_naming_the_line() {
    let d = dir("edited");
    let audit = d.join("audit.jsonl");
    demo_head(&audit, &[]);
    let mut lines = lines(&audit);
    let i = lines
        .iter()
        .position(|l| l.contains("\"approval_decided\""))
        .unwrap();
    lines[i] = lines[i].replace("policy:auto", "human:alice");
    write_lines(&audit, &lines);

    for extra in [&[][..], &["--json"][..]] {
        let o = verify(&audit, extra);
        assert_eq!(o.status.code(), Some(3), "{}", all_output(&o));
        let out = stdout(&o);
        assert!(out.contains(&format!("line {}", i + 1)), "{out}");
        assert!(out.contains("edited"), "{out}");
    }
    let v: Value = serde_json::from_slice(&verify(&audit, &["--json"]).stdout).unwrap();
    assert_eq!(v["intact"], false);
    assert_eq!(v["line"], i + 1);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_truncated_log_fails_with_the_head_from_the_report() {
    let d = dir("truncated");
    let audit = d.join("audit.jsonl");
    let head = demo_head(&audit, &[]);
    let mut lines = lines(&audit);
    lines.truncate(lines.len() - 2);
    write_lines(&audit, &lines);

    // The file alone cannot tell…
    let o = verify(&audit, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    // …the anchor kept elsewhere can.
    let o = verify(&audit, &["--head", &head]);
    assert_eq!(o.status.code(), Some(3), "{}", all_output(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("ends at record {}", lines.len())),
        "{out}"
    );
    assert!(out.contains(&format!("expected head {head}")), "{out}");
    assert!(out.contains("removed from the end"), "{out}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_unkeyed_chain_rebuilt_by_a_forger_is_caught_only_by_the_head() {
    let d = dir("rebuilt-unkeyed");
    let audit = d.join("audit.jsonl");
    let head = demo_head(&audit, &[]);
    rebuild(&audit, AuditLog::new);
    let o = verify(&audit, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "an unkeyed chain can be rebuilt: {}",
        all_output(&o)
    );
    let o = verify(&audit, &["--head", &head]);
    assert_eq!(o.status.code(), Some(3), "{}", all_output(&o));
    assert!(stdout(&o).contains("rebuilt"), "{}", stdout(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_rebuilt_chain_fails_with_the_key() {
    let d = dir("rebuilt-keyed");
    let key = key_file(&d);
    let key = key.to_str().unwrap();
    let audit = d.join("audit.jsonl");
    let head = demo_head(&audit, &["--audit-key-file", key]);

    let o = verify(&audit, &["--key-file", key, "--head", &head]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert!(stdout(&o).trim_end().ends_with(", keyed"), "{}", stdout(&o));
    let o = sre_agent_env(
        &[
            "audit",
            "verify",
            audit.to_str().unwrap(),
            "--key-env",
            "SRE_TEST_AUDIT_KEY",
        ],
        &[("SRE_TEST_AUDIT_KEY", KEY)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));

    // Without the key, a keyed log cannot be checked: say how to pass it.
    let o = verify(&audit, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert!(
        stderr(&o).contains("this log is keyed: pass --key-file/--key-env"),
        "{}",
        stderr(&o)
    );

    // A wrong key fails, and no key is ever printed.
    let o = sre_agent_env(
        &[
            "audit",
            "verify",
            audit.to_str().unwrap(),
            "--key-env",
            "SRE_TEST_AUDIT_KEY",
        ],
        &[("SRE_TEST_AUDIT_KEY", "not-the-key-but-long-enough")],
    );
    assert_eq!(o.status.code(), Some(3), "{}", all_output(&o));
    assert!(stdout(&o).contains("line 1"), "{}", stdout(&o));
    assert!(
        !all_output(&o).contains("not-the-key"),
        "{}",
        all_output(&o)
    );

    let original = std::fs::read_to_string(&audit).unwrap();
    // The forger rebuilds the chain under a key they guessed…
    rebuild(&audit, |out| {
        AuditLog::keyed(out, AuditKey::new(b"a-guessed-key-0123456789").unwrap())
    });
    let o = verify(&audit, &["--key-file", key]);
    assert_eq!(o.status.code(), Some(3), "{}", all_output(&o));
    assert!(stdout(&o).contains("tampered at line 1"), "{}", stdout(&o));
    // …or without one, as a plain chain (a downgrade).
    std::fs::write(&audit, &original).unwrap();
    rebuild(&audit, AuditLog::new);
    let o = verify(&audit, &["--key-file", key]);
    assert_eq!(o.status.code(), Some(3), "{}", all_output(&o));
    assert!(stdout(&o).contains("not keyed"), "{}", stdout(&o));

    for o in [
        verify(&audit, &["--key-file", key]),
        verify(&audit, &[]),
        verify(&audit, &["--key-file", key, "--json"]),
    ] {
        assert!(!all_output(&o).contains(KEY), "{}", all_output(&o));
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_arguments_and_unreadable_inputs() {
    let d = dir("usage");
    let audit = d.join("audit.jsonl");
    demo_head(&audit, &[]);
    let file = audit.to_str().unwrap();

    let o = sre_agent(&["audit", "verify", file, "--key-file", "k", "--key-env", "K"]);
    assert_eq!(o.status.code(), Some(2), "{}", all_output(&o));
    let o = sre_agent(&["audit", "verify", file, "--head", "not-a-hash"]);
    assert_eq!(o.status.code(), Some(2), "{}", all_output(&o));
    let o = sre_agent(&["demo", "--audit-key-env", "K"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a key needs --audit: {}",
        all_output(&o)
    );

    let missing = d.join("missing.jsonl");
    let o = verify(&missing, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert!(stderr(&o).contains("missing.jsonl"), "{}", stderr(&o));

    let o = sre_agent_env(
        &[
            "audit",
            "verify",
            file,
            "--key-env",
            "SRE_TEST_AUDIT_KEY_UNSET",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert!(
        stderr(&o).contains("SRE_TEST_AUDIT_KEY_UNSET") && stderr(&o).contains("not set"),
        "{}",
        stderr(&o)
    );
    let o = verify(&audit, &["--key-file", d.join("nokey").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert!(stderr(&o).contains("nokey"), "{}", stderr(&o));

    // An unkeyed log checked with a key is reported, not silently accepted.
    let key = key_file(&d);
    let o = verify(&audit, &["--key-file", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", all_output(&o));
    assert!(stdout(&o).contains("not keyed"), "{}", stdout(&o));
    assert!(!all_output(&o).contains(KEY));
    std::fs::remove_dir_all(&d).unwrap();
}
