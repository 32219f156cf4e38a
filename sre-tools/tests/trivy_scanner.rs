//! The Trivy CLI scanner against stand-in `trivy` executables written by the test: one that prints
//! a real report, and one for each way a scan fails — including one that hangs until killed.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sre_tools::trivy::report::Severity;
use sre_tools::trivy::scanner::{ImageScanner, ScanError, TrivyCli};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sre-trivy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes an executable shell script that also records its arguments in `args.txt`.
fn stand_in(d: &Path, body: &str) -> PathBuf {
    let path = d.join("trivy");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}/args.txt'\n{body}\n",
        d.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trivy")
        .join(name)
}

fn cli(binary: PathBuf) -> TrivyCli {
    let mut c = TrivyCli::new(binary);
    c.timeout = Duration::from_secs(10);
    c
}

#[tokio::test]
async fn a_scan_runs_trivy_with_the_right_arguments_and_parses_its_report() {
    let d = dir("ok");
    let bin = stand_in(
        &d,
        &format!("cat '{}'", fixture("debian-buster.json").display()),
    );
    let mut scanner = cli(bin);
    scanner.server = Some("http://trivy.internal:4954".into());
    scanner.severities = vec![Severity::Critical, Severity::High];
    let report = scanner.scan("nginx:1.25").await.unwrap();
    assert_eq!(report.vulnerabilities().count(), 2);
    let args = std::fs::read_to_string(d.join("args.txt")).unwrap();
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "image",
            "--format",
            "json",
            "--quiet",
            "--server",
            "http://trivy.internal:4954",
            "--severity",
            "CRITICAL,HIGH",
            "nginx:1.25"
        ]
    );
    // Cached: a second scan does not run trivy (the stand-in would record again).
    std::fs::remove_file(d.join("args.txt")).unwrap();
    scanner.scan("nginx:1.25").await.unwrap();
    assert!(
        !d.join("args.txt").exists(),
        "the second scan came from the cache"
    );
    // An expired cache entry scans again.
    scanner.cache_ttl = Duration::ZERO;
    scanner.scan("nginx:1.25").await.unwrap();
    assert!(d.join("args.txt").exists());
}

#[tokio::test]
async fn trivy_not_installed() {
    let e = cli(PathBuf::from("/nonexistent/trivy"))
        .scan("nginx")
        .await
        .unwrap_err();
    assert!(matches!(e, ScanError::NotInstalled { .. }), "{e}");
    assert!(e.to_string().contains("install Trivy"), "{e}");
    assert!(e.to_string().contains("--server"), "{e}");
}

#[tokio::test]
async fn image_not_found_and_registry_auth() {
    let d = dir("nf");
    let bin = stand_in(
        &d,
        "echo '2026-11-25T10:00:00Z\tFATAL\tFatal error\timage scan error: unable to find the specified image \"nginx:9.9\" in [\"docker\" \"remote\"]: GET https://index.docker.io/v2/library/nginx/manifests/9.9: MANIFEST_UNKNOWN: manifest unknown' >&2; exit 1",
    );
    let e = cli(bin).scan("nginx:9.9").await.unwrap_err();
    assert!(matches!(e, ScanError::ImageNotFound { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("image nginx:9.9 was not found in its registry"),
        "{e}"
    );

    let d = dir("auth");
    let bin = stand_in(
        &d,
        "echo 'FATAL: GET https://ghcr.io/v2/acme/private/manifests/1: UNAUTHORIZED: authentication required' >&2; exit 1",
    );
    let e = cli(bin).scan("ghcr.io/acme/private:1").await.unwrap_err();
    assert!(matches!(e, ScanError::RegistryAuth { .. }), "{e}");
    assert!(e.to_string().contains("TRIVY_USERNAME"), "{e}");
}

#[tokio::test]
async fn other_failures_quote_stderr_and_the_exit_code() {
    let d = dir("fail");
    let bin = stand_in(
        &d,
        "echo 'line one' >&2; echo 'FATAL: db download failed: disk full' >&2; exit 3",
    );
    let e = cli(bin).scan("nginx").await.unwrap_err();
    assert_eq!(
        e,
        ScanError::Failed {
            image: "nginx".into(),
            code: 3,
            stderr: "line one | FATAL: db download failed: disk full".into()
        }
    );
}

#[tokio::test]
async fn invalid_json() {
    let d = dir("json");
    let bin = stand_in(&d, "echo 'this is not json'");
    let e = cli(bin).scan("nginx").await.unwrap_err();
    assert!(matches!(e, ScanError::InvalidJson { .. }), "{e}");
    assert!(e.to_string().contains("expected"), "{e}");
}

#[tokio::test]
async fn a_hung_scan_is_killed_at_the_timeout() {
    let d = dir("hang");
    let pid_file = d.join("pid");
    let bin = stand_in(
        &d,
        &format!("echo $$ > '{}'\nexec sleep 60", pid_file.display()),
    );
    let mut scanner = cli(bin);
    scanner.timeout = Duration::from_millis(500);
    let start = std::time::Instant::now();
    let e = scanner.scan("nginx").await.unwrap_err();
    assert!(matches!(e, ScanError::Timeout { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    // kill_on_drop sends SIGKILL; give the kernel a moment to reap it.
    let mut gone = false;
    for _ in 0..50 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.is_empty() || status.contains("State:\tZ") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "trivy process {pid} still running after the timeout");
}

#[tokio::test]
async fn an_image_that_looks_like_a_flag_never_reaches_trivy() {
    // Regression: the model's image argument went to trivy's command line as it was, so
    // `--output=…` would have been read as a flag.
    let d = dir("flag");
    let bin = stand_in(&d, "echo '{}'");
    for image in ["--output=/tmp/pwned", "-q", " nginx:1", "nginx:1\n--debug"] {
        let e = cli(bin.clone()).scan(image).await.unwrap_err();
        assert!(
            e.to_string().contains("refused to run trivy"),
            "{image:?}: {e}"
        );
        assert!(
            !d.join("args.txt").exists(),
            "{image:?}: trivy must not have been started"
        );
    }
}
