//! The secret corpus of `secrets-everywhere.yaml` (API keys, bearer tokens, AWS keys, a private
//! key, a JWT, URL passwords, `KEY=value`) planted in a crashing container's logs never reaches
//! the report, `--json`, the progress lines or the `--audit` file of the CLI.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::process::{Command, Stdio};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../sre-tools/tests/fixtures/scenarios/secrets-everywhere.yaml"
);

/// Every planted secret (or its distinctive part), one a line; the Python tests read the same list.
fn secrets() -> Vec<String> {
    std::fs::read_to_string(FIXTURE.replace(".yaml", ".secrets"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn planted_secrets_never_reach_the_report_the_json_or_the_audit_file() {
    for json in [true, false] {
        let audit = std::env::temp_dir().join(format!(
            "sre-cli-secrets-{json}-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&audit);
        let mut args = vec![
            "demo".to_owned(),
            "--scenario".into(),
            FIXTURE.into(),
            "--approve".into(),
            "auto".into(),
            "--audit".into(),
            audit.display().to_string(),
        ];
        if json {
            args.push("--json".into());
        }
        let o = Command::new(env!("CARGO_BIN_EXE_sre-agent"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let log = std::fs::read_to_string(&audit).unwrap();
        for (what, text) in [("stdout", &*stdout), ("stderr", &*stderr), ("audit", &*log)] {
            for secret in secrets() {
                assert!(
                    !text.contains(&secret),
                    "{what} (json={json}) leaks {secret}"
                );
            }
        }
        // The secrets were read (the crashed container's logs), and redacted on the way.
        assert!(
            log.contains("[REDACTED]"),
            "the audit log shows the redacted logs"
        );
        assert!(stdout.contains("[REDACTED]"), "{stdout}");
        let _ = std::fs::remove_file(&audit);
    }
}
