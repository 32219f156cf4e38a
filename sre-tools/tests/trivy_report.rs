//! Every Trivy report of `tests/fixtures/trivy` (see PROVENANCE.md) parses, and its summary's counts
//! equal counts computed here independently by walking the raw JSON.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use sre_tools::trivy::report::{Report, Severity};
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
