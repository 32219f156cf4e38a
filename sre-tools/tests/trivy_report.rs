//! Every Trivy report of `tests/fixtures/trivy` (see PROVENANCE.md) parses, and its summary's counts
//! equal counts computed here independently by walking the raw JSON. Every document that is *not*
//! a Trivy image/fs/repo report — the real `CycloneDX`, SPDX, SARIF, GitHub and `trivy k8s` outputs
//! of `tests/fixtures/not-trivy`, `{}`, `[]` — is an error naming what it is, never a clean report.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sre_tools::trivy::report::{Report, ReportErrorKind, Severity};
use sre_tools::trivy::summary::Summary;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trivy");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn rank(s: &str) -> usize {
    ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
        .iter()
        .position(|x| *x == s)
        .unwrap_or(4)
}

/// Counts by walking the raw JSON: [entries by severity], [unique IDs by worst severity], fixable,
/// unfixable, failed misconfigurations, secrets.
fn walk(raw: &Value) -> ([usize; 5], [usize; 5], usize, usize, usize, usize) {
    let mut entries = [0; 5];
    let mut worst: BTreeMap<String, usize> = BTreeMap::new();
    let (mut fixable, mut unfixable, mut misconf, mut secrets) = (0, 0, 0, 0);
    for r in raw["Results"].as_array().into_iter().flatten() {
        for v in r["Vulnerabilities"].as_array().into_iter().flatten() {
            let sev = rank(v["Severity"].as_str().unwrap_or(""));
            entries[sev] += 1;
            let id = v["VulnerabilityID"].as_str().unwrap().to_owned();
            let w = worst.entry(id).or_insert(sev);
            *w = (*w).min(sev);
            if v["FixedVersion"]
                .as_str()
                .is_some_and(|f| !f.trim().is_empty())
            {
                fixable += 1;
            } else {
                unfixable += 1;
            }
        }
        for m in r["Misconfigurations"].as_array().into_iter().flatten() {
            if m["Status"].as_str().is_none_or(|s| s == "FAIL") {
                misconf += 1;
            }
        }
        secrets += r["Secrets"].as_array().map_or(0, Vec::len);
    }
    let mut unique = [0; 5];
    for s in worst.values() {
        unique[*s] += 1;
    }
    (entries, unique, fixable, unfixable, misconf, secrets)
}

#[test]
fn every_fixture_parses_and_its_counts_match_an_independent_walk() {
    let all = fixtures();
    assert_eq!(all.len(), 13);
    for (name, bytes) in all {
        let report = Report::from_json(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        let s = Summary::of(&report);
        let (entries, unique, fixable, unfixable, misconf, secrets) = walk(&raw);
        for (i, sev) in Severity::ALL.iter().enumerate() {
            assert_eq!(s.entries.get(*sev), entries[i], "{name}: entries {sev}");
            assert_eq!(s.unique.get(*sev), unique[i], "{name}: unique {sev}");
        }
        assert_eq!(
            (s.fixable, s.unfixable),
            (fixable, unfixable),
            "{name}: fixable"
        );
        assert_eq!(
            s.misconfigurations.total(),
            misconf,
            "{name}: misconfigurations"
        );
        assert_eq!(s.secrets.total(), secrets, "{name}: secrets");
        assert_eq!(s.artifact, raw["ArtifactName"].as_str().unwrap(), "{name}");
        // The top findings are sorted: critical first, then by score.
        for w in s.top.windows(2) {
            assert!(w[0].severity <= w[1].severity, "{name}: top order");
            if w[0].severity == w[1].severity {
                assert!(
                    w[0].score.unwrap_or(-1.0) >= w[1].score.unwrap_or(-1.0),
                    "{name}: score order"
                );
            }
        }
        let ids: HashSet<(&str, &str)> = s
            .top
            .iter()
            .map(|t| (t.id.as_str(), t.package.as_str()))
            .collect();
        assert_eq!(ids.len(), s.top.len(), "{name}: no duplicates in top");
    }
}

#[test]
fn the_oldest_format_and_empty_results_parse() {
    let all = fixtures();
    let old = &all
        .iter()
        .find(|(n, _)| n == "debian-buster-trivy-v0.20.json")
        .unwrap()
        .1;
    let r = Report::from_json(old).unwrap();
    assert_eq!(r.vulnerabilities().count(), 93);
    assert!(
        r.vulnerabilities().all(|v| v.status.is_none()),
        "v0.20 has no Status"
    );
    let empty = &all
        .iter()
        .find(|(n, _)| n == "alpine-39-empty-results.json")
        .unwrap()
        .1;
    let r = Report::from_json(empty).unwrap();
    assert!(r.results.is_empty());
    let s = Summary::of(&r);
    assert_eq!(s.entries.total(), 0);
    assert!(
        s.render().contains(
            ": 0 vulnerabilities (none) in 0 unique IDs (none); 0 fixable, 0 without a fix"
        ),
        "{}",
        s.render()
    );
}

#[test]
fn summary_text_is_compact_and_names_fixes() {
    let all = fixtures();
    let buster = &all
        .iter()
        .find(|(n, _)| n == "debian-buster.json")
        .unwrap()
        .1;
    let s = Summary::of(&Report::from_json(buster).unwrap());
    let text = s.render();
    assert!(text.starts_with("testdata/fixtures/images/debian-buster.tar.gz (debian 10.1): 2 vulnerabilities (1 CRITICAL, 1 LOW) in 2 unique IDs"), "{text}");
    let first_top = text.lines().nth(1).unwrap();
    assert!(first_top.contains("CRITICAL"), "critical first: {text}");
    assert!(first_top.contains(" -> "), "installed -> fixed: {text}");
    assert!(text.contains("(no fix)"), "{text}");
    assert!(text.len() < 600, "token-lean: {} bytes", text.len());
    let secrets = &all
        .iter()
        .find(|(n, _)| n == "secrets-repo.json")
        .unwrap()
        .1;
    let s = Summary::of(&Report::from_json(secrets).unwrap());
    assert!(s.render().contains("secrets: 2"), "{}", s.render());
    let misconf = &all
        .iter()
        .find(|(n, _)| n == "dockerfile-misconfig.json")
        .unwrap()
        .1;
    let s = Summary::of(&Report::from_json(misconf).unwrap());
    assert!(s.render().contains("misconfigurations: "), "{}", s.render());
}

#[test]
fn an_end_of_life_os_is_flagged() {
    let all = fixtures();
    let alpine = &all.iter().find(|(n, _)| n == "alpine-310.json").unwrap().1;
    let mut raw: Value = serde_json::from_slice(alpine).unwrap();
    raw["Metadata"]["OS"]["EOSL"] = Value::Bool(true);
    let s = Summary::of(&Report::from_json(raw.to_string().as_bytes()).unwrap());
    assert!(s.os_eol);
    assert!(
        s.render().contains("base OS alpine 3.10.2 is END-OF-LIFE"),
        "{}",
        s.render()
    );
}

#[test]
fn bad_json_is_a_clear_error() {
    let e = Report::from_json(b"{\"Results\": 3}").unwrap_err();
    assert!(e.to_string().contains("invalid type"), "{e}");
}

fn not_trivy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/not-trivy")
        .join(name)
}

/// Parses `json`, expecting an error of `kind` whose message contains every one of `words`.
fn refused(json: &[u8], kind: &ReportErrorKind, words: &[&str]) {
    let e = Report::from_json(json).map(|r| Summary::of(&r).render());
    let e = match e {
        Ok(summary) => panic!("accepted as a Trivy report: {summary}"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), kind, "{e}");
    let text = e.to_string();
    for w in words {
        assert!(text.contains(w), "{w:?} not in: {text}");
    }
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn an_empty_object_is_refused_not_read_as_zero_vulnerabilities() {
    refused(
        b"{}",
        &ReportErrorKind::EmptyObject,
        &[
            "the document is an empty JSON object, not a Trivy JSON report",
            "trivy image --format json",
        ],
    );
    refused(
        b" { } ",
        &ReportErrorKind::EmptyObject,
        &["empty JSON object"],
    );
}

#[test]
fn a_json_array_is_refused_not_read_as_zero_vulnerabilities() {
    refused(
        b"[]",
        &ReportErrorKind::Array,
        &[
            "is a JSON array, not a Trivy JSON report",
            "trivy image --format json",
        ],
    );
    refused(b"[1, {\"a\": 2}]", &ReportErrorKind::Array, &["JSON array"]);
    // Trivy before 0.20 wrote an array of results.
    let legacy = json!([{"Target": "alpine:3.10 (alpine 3.10.2)", "Type": "alpine",
        "Vulnerabilities": [{"VulnerabilityID": "CVE-2019-1549", "PkgName": "libssl1.1",
            "InstalledVersion": "1.1.1c-r0", "FixedVersion": "1.1.1d-r0", "Severity": "CRITICAL"}]}]);
    refused(
        legacy.to_string().as_bytes(),
        &ReportErrorKind::LegacyTrivy,
        &[
            "Trivy before 0.20",
            "not supported",
            "trivy image --format json",
        ],
    );
}

#[test]
fn a_refused_report_never_quotes_its_strings() {
    // From an adversarial review: serde's message quoted the refused string whole, and a
    // report's strings carry what a secret scan found (`sre-agent scan --report` prints it).
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ0123";
    for doc in [
        json!({"SchemaVersion": 2, "Metadata": token, "Results": []}),
        json!({"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Target": "t", "Vulnerabilities": token}]}),
    ] {
        let e = Report::from_json(doc.to_string().as_bytes()).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.kind(), &ReportErrorKind::Invalid, "{text}");
        assert!(!text.contains("0123456789abcdefghij"), "{text}");
        assert!(
            text.contains("invalid type: string (38 characters)"),
            "{text}"
        );
    }
}

#[test]
fn a_json_scalar_is_refused() {
    refused(
        b"null",
        &ReportErrorKind::Scalar("JSON null"),
        &["is JSON null, not a Trivy JSON report"],
    );
    refused(
        b"\"ok\"",
        &ReportErrorKind::Scalar("a JSON string"),
        &["is a JSON string"],
    );
    refused(
        b"0",
        &ReportErrorKind::Scalar("a JSON number"),
        &["is a JSON number"],
    );
    refused(
        b"true",
        &ReportErrorKind::Scalar("a JSON boolean"),
        &["is a JSON boolean"],
    );
}

#[test]
fn a_cyclonedx_sbom_with_a_critical_cve_is_refused_not_read_as_clean() {
    let bytes = std::fs::read(not_trivy("cyclonedx-pom.json")).unwrap();
    refused(
        &bytes,
        &ReportErrorKind::CycloneDx,
        &[
            "the document is a CycloneDX SBOM, not a Trivy JSON report: run trivy image --format json",
            "trivy sbom --format json",
        ],
    );
}

#[test]
fn an_spdx_sbom_is_refused() {
    let bytes = std::fs::read(not_trivy("spdx-conda.json")).unwrap();
    refused(
        &bytes,
        &ReportErrorKind::Spdx,
        &[
            "is an SPDX SBOM, not a Trivy JSON report",
            "trivy image --format json",
        ],
    );
}

#[test]
fn a_sarif_log_is_refused() {
    let bytes = std::fs::read(not_trivy("sarif-alpine-310.json")).unwrap();
    refused(
        &bytes,
        &ReportErrorKind::Sarif,
        &[
            "is a SARIF log, not a Trivy JSON report",
            "trivy image --format json",
        ],
    );
}

#[test]
fn a_trivy_k8s_report_is_refused_in_every_shape() {
    // The documented shape of `trivy k8s --format json` (findings under Vulnerabilities).
    let bytes = std::fs::read(not_trivy("trivy-k8s-docs.json")).unwrap();
    let words = [
        "is a Trivy Kubernetes (trivy k8s) report, which is not supported yet",
        "scan images with trivy image --format json",
    ];
    refused(&bytes, &ReportErrorKind::TrivyKubernetes, &words);
    // The current shape, hand-written from trivy's pkg/k8s/report Report struct (ClusterName,
    // Resources by resource), with and without SchemaVersion, and the consolidated summary
    // (Findings).
    let resources = json!([{"Namespace": "shop", "Kind": "Deployment", "Name": "web",
        "Results": [{"Target": "nginx:1.25.3 (debian 12.4)", "Class": "os-pkgs", "Type": "debian",
            "Vulnerabilities": [{"VulnerabilityID": "CVE-2023-45853", "PkgName": "zlib1g",
                "InstalledVersion": "1:1.2.13.dfsg-1", "Severity": "CRITICAL"}]}]}]);
    for doc in [
        json!({"ClusterName": "kind-kind", "Resources": resources}),
        json!({"SchemaVersion": 2, "ClusterName": "kind-kind", "Resources": resources}),
        json!({"ClusterName": "kind-kind", "Findings": resources}),
        json!({"SchemaVersion": 2, "Resources": resources}),
    ] {
        refused(
            doc.to_string().as_bytes(),
            &ReportErrorKind::TrivyKubernetes,
            &words,
        );
    }
}

#[test]
fn other_trivy_outputs_and_kubernetes_objects_are_refused() {
    let bytes = std::fs::read(not_trivy("github-snapshot-alpine-310.json")).unwrap();
    refused(
        &bytes,
        &ReportErrorKind::GithubSnapshot,
        &["GitHub dependency snapshot (trivy --format github)"],
    );
    let cosign = json!({"invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {"uri": "pkg:github/aquasecurity/trivy@dev", "version": "dev",
            "db": {"uri": "", "version": ""},
            "result": {"SchemaVersion": 2, "ArtifactName": "alpine:3.10", "Results": []}},
        "metadata": {"scanStartedOn": "2021-08-25T12:20:30Z", "scanFinishedOn": "2021-08-25T12:20:30Z"}});
    refused(
        cosign.to_string().as_bytes(),
        &ReportErrorKind::CosignVuln,
        &["cosign vulnerability attestation"],
    );
    let operator = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/trivy-operator/vulnerabilityreport-nginx-docs.json"),
    )
    .unwrap();
    refused(
        &operator,
        &ReportErrorKind::KubernetesObject {
            kind: Some("VulnerabilityReport".into()),
        },
        &["is a Trivy Operator VulnerabilityReport, not a Trivy JSON report"],
    );
    // A kind is shown only when it is a plain name: no escape sequences reach the terminal.
    refused(
        br#"{"apiVersion": "v1", "kind": "Config\u001b[2J"}"#,
        &ReportErrorKind::KubernetesObject { kind: None },
        &["is a Kubernetes object, not a Trivy JSON report"],
    );
    refused(
        br#"{"apiVersion": "v1", "kind": "ConfigMap", "data": {}}"#,
        &ReportErrorKind::KubernetesObject {
            kind: Some("ConfigMap".into()),
        },
        &["is a Kubernetes ConfigMap object, not a Trivy JSON report"],
    );
}

#[test]
fn a_missing_or_unknown_schema_version_is_refused() {
    refused(
        br#"{"ArtifactName": "nginx:1.25", "Results": []}"#,
        &ReportErrorKind::NoSchemaVersion,
        &["is a JSON object without SchemaVersion, not a Trivy JSON report"],
    );
    for doc in [
        r#"{"name": "x", "version": 1}"#,
        r#"{"SchemaVersion": null, "ArtifactName": "nginx:1.25"}"#,
    ] {
        refused(
            doc.as_bytes(),
            &ReportErrorKind::NoSchemaVersion,
            &["without SchemaVersion"],
        );
    }
    for (v, shown) in [
        ("3", "3"),
        ("1", "1"),
        ("\"2\"", "\"2\""),
        ("2.5", "2.5"),
        ("\"\\u001b[31m\"", "\"\\u001b[31m\""),
        ("[2]", "(an array)"),
        ("\"a very long version string indeed\"", "(a long string)"),
    ] {
        let doc =
            format!(r#"{{"SchemaVersion": {v}, "ArtifactName": "nginx:1.25", "Results": []}}"#);
        refused(
            doc.as_bytes(),
            &ReportErrorKind::UnsupportedSchemaVersion(shown.into()),
            &[
                &format!("has SchemaVersion {shown}, which is not supported"),
                "SchemaVersion 2",
            ],
        );
    }
    refused(
        br#"{"SchemaVersion": 2, "Results": []}"#,
        &ReportErrorKind::NoArtifactName,
        &["has SchemaVersion 2 but no ArtifactName"],
    );
}

#[test]
fn a_clean_report_is_zero_vulnerabilities_with_or_without_results() {
    // What trivy writes for a clean image: no Results key at all (as the alpine-39 fixture).
    for doc in [
        r#"{"SchemaVersion": 2, "ArtifactName": "alpine:3.20", "ArtifactType": "container_image"}"#,
        r#"{"SchemaVersion": 2, "ArtifactName": "alpine:3.20", "Results": []}"#,
        r#"{"SchemaVersion": 2, "ArtifactName": "alpine:3.20", "Results": null}"#,
        r#"{"SchemaVersion": 2, "ArtifactName": "", "Results": [{"Target": "go.mod", "Class": "lang-pkgs"}]}"#,
    ] {
        let r = Report::from_json(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert_eq!(r.schema_version, Some(2));
        assert_eq!(Summary::of(&r).entries.total(), 0, "{doc}");
    }
}

#[test]
fn table_output_is_not_json_and_says_so() {
    let table =
        b"alpine:3.10 (alpine 3.10.2)\n===========================\nTotal: 4 (CRITICAL: 0)\n";
    refused(
        table,
        &ReportErrorKind::NotJson,
        &[
            "the document is not JSON (expected",
            "trivy image --format json",
        ],
    );
}

#[test]
fn from_file_names_the_file_in_every_error() {
    let dir = std::env::temp_dir().join(format!("sre-trivy-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.json");
    std::fs::write(&path, b"{}").unwrap();
    let e = Report::from_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{} is an empty JSON object, not a Trivy JSON report: run trivy image --format json",
            path.display()
        )
    );
    let e = Report::from_file(&not_trivy("cyclonedx-pom.json")).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{} is a CycloneDX SBOM, not a Trivy JSON report: run trivy image --format json",
            not_trivy("cyclonedx-pom.json").display()
        )),
        "{e}"
    );
    let missing = dir.join("missing.json");
    let e = Report::from_file(&missing).unwrap_err();
    assert!(matches!(e.kind(), ReportErrorKind::Read(_)), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{e}"
    );
    let r = Report::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trivy/debian-buster.json"),
    )
    .unwrap();
    assert_eq!(Summary::of(&r).entries.total(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn trivy_cli_output_that_is_not_an_image_report_is_a_scan_error() {
    use sre_tools::trivy::scanner::{ImageScanner, ScanError, TrivyCli};
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("sre-trivy-report-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("trivy");
    std::fs::write(&bin, "#!/bin/sh\necho '{}'\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = TrivyCli::new(bin).scan("nginx:1.25").await.unwrap_err();
    assert!(matches!(e, ScanError::InvalidJson { .. }), "{e}");
    assert!(e.to_string().contains("nginx:1.25"), "{e}");
    assert!(e.to_string().contains("empty JSON object"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
