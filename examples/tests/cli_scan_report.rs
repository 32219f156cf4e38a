//! `sre-agent scan --report FILE` as a CI gate: a file that is not a Trivy image/fs/repo JSON
//! report (`{}`, `[]`, a `CycloneDX` SBOM, a SARIF log, a `trivy k8s` report) once passed as
//! "0 vulnerabilities" with exit 0. Now each exits 1 with one line naming what the file is, and a
//! real report still passes (0) or fails on a CRITICAL finding (3).

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sre-tools/tests/fixtures")
}

fn scan_report(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sre-agent"))
        .args(["scan", "--report", path.to_str().unwrap()])
        .output()
        .unwrap()
}

/// A file with `contents` in a directory of its own.
fn file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sre-cli-scan-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Runs `scan --report path`, expecting exit 1, nothing on stdout (no summary a gate could
/// mistake for a pass) and exactly one stderr line: `error: <path> <what>`.
fn assert_refused(path: &Path, what: &str) {
    let o = scan_report(path);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}: stdout: {stdout}\nstderr: {stderr}",
        path.display()
    );
    assert!(stdout.is_empty(), "no summary on stdout: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let expected = format!("error: {} {what}", path.display());
    assert!(
        stderr.starts_with(&expected),
        "expected {expected:?}\n     got {stderr:?}"
    );
}

#[test]
fn an_empty_object_fails_the_gate() {
    assert_refused(
        &file("empty.json", "{}\n"),
        "is an empty JSON object, not a Trivy JSON report: run trivy image --format json",
    );
}

#[test]
fn a_json_array_fails_the_gate() {
    assert_refused(
        &file("array.json", "[]"),
        "is a JSON array, not a Trivy JSON report",
    );
}

#[test]
fn a_cyclonedx_sbom_fails_the_gate() {
    assert_refused(
        &fixtures().join("not-trivy/cyclonedx-pom.json"),
        "is a CycloneDX SBOM, not a Trivy JSON report: run trivy image --format json",
    );
}

#[test]
fn a_sarif_log_fails_the_gate() {
    assert_refused(
        &fixtures().join("not-trivy/sarif-alpine-310.json"),
        "is a SARIF log, not a Trivy JSON report: run trivy image --format json",
    );
}

#[test]
fn a_trivy_k8s_report_fails_the_gate() {
    assert_refused(
        &fixtures().join("not-trivy/trivy-k8s-docs.json"),
        "is a Trivy Kubernetes (trivy k8s) report, which is not supported yet: scan images with \
         trivy image --format json",
    );
    // The current shape, hand-written from trivy's pkg/k8s/report Report struct.
    let current = r#"{"ClusterName": "kind-kind", "Resources": [{"Namespace": "shop",
        "Kind": "Deployment", "Name": "web", "Results": [{"Target": "nginx:1.25.3 (debian 12.4)",
        "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [{"VulnerabilityID":
        "CVE-2023-45853", "PkgName": "zlib1g", "InstalledVersion": "1:1.2.13.dfsg-1",
        "Severity": "CRITICAL"}]}]}]}"#;
    assert_refused(
        &file("k8s.json", current),
        "is a Trivy Kubernetes (trivy k8s) report, which is not supported yet",
    );
}

#[test]
fn an_unknown_schema_version_fails_the_gate() {
    assert_refused(
        &file(
            "v3.json",
            r#"{"SchemaVersion": 3, "ArtifactName": "nginx:1.25", "Results": []}"#,
        ),
        "has SchemaVersion 3, which is not supported",
    );
}

#[test]
fn real_image_reports_still_pass_or_fail_on_their_findings() {
    // A clean image: trivy writes no Results at all; that is 0 vulnerabilities, exit 0.
    let o = scan_report(&fixtures().join("trivy/alpine-39-empty-results.json"));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains(": 0 vulnerabilities (none)"), "{stdout}");
    // Only MEDIUM findings: passes.
    let o = scan_report(&fixtures().join("trivy/alpine-310.json"));
    assert_eq!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("4 vulnerabilities (4 MEDIUM)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // The oldest supported format (Trivy 0.20): read, no CRITICAL finding.
    let o = scan_report(&fixtures().join("trivy/debian-buster-trivy-v0.20.json"));
    assert_eq!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": 93 vulnerabilities"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A CRITICAL finding: a human must act.
    let o = scan_report(&fixtures().join("trivy/debian-buster.json"));
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn a_missing_file_names_it() {
    let missing = std::env::temp_dir().join("sre-cli-scan-report-does-not-exist.json");
    let o = scan_report(&missing);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.starts_with(&format!("error: cannot read {}: ", missing.display())),
        "{stderr}"
    );
}
