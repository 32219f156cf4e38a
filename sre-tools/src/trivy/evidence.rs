//! Scans as evidence: a Trivy [`Report`] as an [`ImageScan`], two of them compared for an
//! approval ([`compare`]), and the re-scan of what runs after a patch checked against what the
//! approval was shown ([`check`]). Pure functions over typed reports.

use std::collections::{BTreeMap, BTreeSet};

use sre_core::evidence::{
    Finding, ImageScan, ScanSource, SecurityCheck, Severities, VulnerabilityEvidence,
};

use super::report::{Report, Severity};
use super::summary::Summary;

/// How many CRITICAL/HIGH findings an [`ImageScan`] keeps (the worst); the counts stay exact.
pub const MAX_FINDINGS: usize = 1_000;

/// `report` of `image` as evidence: unique ids by severity, and every CRITICAL and HIGH finding
/// (one per id, at its worst), worst first. `digest` is the content digest when the caller knows
/// it; otherwise the report's own (`RepoDigests`) is used.
pub fn image_scan(
    report: &Report,
    image: &str,
    digest: Option<String>,
    source: ScanSource,
) -> ImageScan {
    let unique = Summary::of(report).unique;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let counts = Severities {
        critical: count(unique.critical),
        high: count(unique.high),
        medium: count(unique.medium),
        low: count(unique.low),
        unknown: count(unique.unknown),
    };
    let mut by_id: BTreeMap<&str, Finding> = BTreeMap::new();
    for v in report
        .vulnerabilities()
        .filter(|v| v.severity <= Severity::High && !v.vulnerability_id.is_empty())
    {
        let candidate = Finding {
            id: v.vulnerability_id.clone(),
            severity: v.severity.to_string(),
            package: v.pkg_name.clone(),
            installed: v.installed_version.clone(),
            fixed: v.fixed_version.clone().filter(|f| !f.trim().is_empty()),
            cvss: v.score(),
        };
        let worse = |old: &Finding| {
            Severity::parse(&candidate.severity) < Severity::parse(&old.severity)
                || (candidate.severity == old.severity
                    && candidate.cvss.unwrap_or(0.0) > old.cvss.unwrap_or(0.0))
        };
        match by_id.get(v.vulnerability_id.as_str()) {
            Some(old) if !worse(old) => {}
            _ => {
                by_id.insert(v.vulnerability_id.as_str(), candidate);
            }
        }
    }
    let mut findings: Vec<Finding> = by_id.into_values().collect();
    findings.sort_by(|a, b| {
        Severity::parse(&a.severity)
            .cmp(&Severity::parse(&b.severity))
            .then_with(|| b.cvss.unwrap_or(0.0).total_cmp(&a.cvss.unwrap_or(0.0)))
            .then_with(|| a.id.cmp(&b.id))
    });
    // Bounded: a plan waits in a store (a ConfigMap holds under 1 MiB) and travels to chats.
    findings.truncate(MAX_FINDINGS);
    let digest = digest.or_else(|| report_digest(report));
    ImageScan {
        image: image.to_owned(),
        digest,
        counts,
        findings,
        source,
    }
}

/// The content digest a report names (`RepoDigests`: `repo@sha256:…`), if any.
pub fn report_digest(report: &Report) -> Option<String> {
    report
        .metadata
        .repo_digests
        .iter()
        .find_map(|d| d.rsplit_once('@').map(|(_, d)| d.to_owned()))
        .filter(|d| d.starts_with("sha256:"))
}

fn serious(scan: &ImageScan) -> BTreeSet<&str> {
    scan.findings.iter().map(|f| f.id.as_str()).collect()
}

/// The ids of `scan`'s findings (worst first) for which `keep` holds.
fn ids_of(scan: &ImageScan, keep: impl Fn(&str) -> bool) -> Vec<String> {
    scan.findings
        .iter()
        .map(|f| f.id.as_str())
        .filter(|id| keep(id))
        .map(str::to_owned)
        .collect()
}

/// The evidence for patching `container` from `current` to `candidate`: the CRITICAL/HIGH ids it
/// clears, keeps and introduces.
pub fn compare(container: &str, current: ImageScan, candidate: ImageScan) -> VulnerabilityEvidence {
    let (now, next) = (serious(&current), serious(&candidate));
    // Worst first, as the scans list them.
    let clears = ids_of(&current, |id| !next.contains(id));
    let remains = ids_of(&current, |id| next.contains(id));
    let introduces = ids_of(&candidate, |id| !now.contains(id));
    VulnerabilityEvidence {
        container: container.to_owned(),
        current,
        candidate,
        clears,
        remains,
        introduces,
    }
}

/// Checks a fresh scan of what runs (`running`, by digest) against what the approval was shown.
/// It fails when what runs is not the content the approved scan was of (its digest, when
/// known), when an id the approval said the patch clears is present, or when a CRITICAL/HIGH id
/// appears that neither the approved candidate's scan nor the old image had (the image is worse
/// than what was approved — e.g. the tag moved to other content). `old_now`, a fresh scan of the
/// image that ran before, makes a finding disclosed meanwhile that both have an expected one.
pub fn check(
    approved: &VulnerabilityEvidence,
    running: &str,
    fresh: &ImageScan,
    old_now: Option<&ImageScan>,
) -> SecurityCheck {
    let mut old = serious(&approved.current);
    // A finding disclosed since the approval that the old image has too is not the patch's
    // fault: rolling back would only bring back the more vulnerable image.
    if let Some(o) = old_now {
        old.extend(serious(o));
    }
    let candidate = serious(&approved.candidate);
    let now = serious(fresh);
    let gone = ids_of(&approved.current, |id| !now.contains(id));
    let remaining = ids_of(fresh, |id| old.contains(id));
    let not_cleared: Vec<String> = approved
        .clears
        .iter()
        .filter(|id| now.contains(id.as_str()))
        .cloned()
        .collect();
    let unexpected = ids_of(fresh, |id| !candidate.contains(id) && !old.contains(id));
    // What runs must be the content that was approved, when the approval named it: a moved tag
    // fails even when its new content has no known CVE (a build without a package database).
    let same_content = approved
        .candidate
        .digest
        .as_deref()
        .is_none_or(|d| running.rsplit_once('@').is_some_and(|(_, r)| r == d));
    let passed = not_cleared.is_empty() && unexpected.is_empty() && same_content;
    SecurityCheck {
        container: approved.container.clone(),
        running: running.to_owned(),
        approved_digest: approved.candidate.digest.clone(),
        before: approved.current.counts,
        after: fresh.counts,
        gone,
        remaining,
        not_cleared,
        unexpected,
        source: fresh.source.clone(),
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(vulns: &[(&str, &str, f64)], digest: Option<&str>) -> Report {
        let vulns: Vec<serde_json::Value> = vulns
            .iter()
            .map(|(id, sev, score)| {
                serde_json::json!({
                    "VulnerabilityID": id, "PkgName": "libssl3", "InstalledVersion": "3.1.4-r0",
                    "FixedVersion": "3.1.4-r5", "Severity": sev,
                    "CVSS": {"nvd": {"V3Score": score}}
                })
            })
            .collect();
        let doc = serde_json::json!({
            "SchemaVersion": 2, "ArtifactName": "nginx:1",
            "Metadata": {"RepoDigests": digest.map(|d| vec![format!("nginx@{d}")]).unwrap_or_default()},
            "Results": [{"Target": "nginx:1 (alpine 3.19)", "Class": "os-pkgs", "Vulnerabilities": vulns}]
        });
        Report::from_json(doc.to_string().as_bytes()).unwrap()
    }

    fn scan(vulns: &[(&str, &str, f64)]) -> ImageScan {
        image_scan(
            &report(vulns, Some("sha256:aa")),
            "nginx:1",
            None,
            ScanSource::TrivyCli,
        )
    }

    #[test]
    fn a_scan_keeps_each_serious_id_once_at_its_worst_and_sorts_worst_first() {
        let s = scan(&[
            ("CVE-2", "HIGH", 7.5),
            ("CVE-1", "CRITICAL", 9.1),
            ("CVE-1", "HIGH", 7.0),
            ("CVE-3", "CRITICAL", 9.8),
            ("CVE-4", "MEDIUM", 5.0),
        ]);
        let ids: Vec<_> = s.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["CVE-3", "CVE-1", "CVE-2"]);
        assert_eq!(s.findings[1].severity, "CRITICAL");
        assert_eq!(
            (s.counts.critical, s.counts.high, s.counts.medium),
            (2, 1, 1)
        );
        assert_eq!(s.digest.as_deref(), Some("sha256:aa"));
    }

    #[test]
    fn compare_names_what_is_cleared_kept_and_introduced() {
        let e = compare(
            "nginx",
            scan(&[("CVE-1", "CRITICAL", 9.8), ("CVE-2", "HIGH", 7.5)]),
            scan(&[("CVE-2", "HIGH", 7.5), ("CVE-9", "CRITICAL", 9.0)]),
        );
        assert_eq!(e.clears, ["CVE-1"]);
        assert_eq!(e.remains, ["CVE-2"]);
        assert_eq!(e.introduces, ["CVE-9"]);
    }

    #[test]
    fn the_check_passes_when_what_runs_is_what_was_approved() {
        let e = compare(
            "nginx",
            scan(&[("CVE-1", "CRITICAL", 9.8), ("CVE-2", "HIGH", 7.5)]),
            scan(&[]),
        );
        let c = check(
            &e,
            "nginx@sha256:aa",
            &scan(&[("CVE-5", "MEDIUM", 5.0)]),
            None,
        );
        assert!(c.passed, "{c:?}");
        assert_eq!(c.gone, ["CVE-1", "CVE-2"]);
        assert!(c.remaining.is_empty());
        assert_eq!(c.before.critical, 1);
        assert_eq!(c.after.critical, 0);
    }

    #[test]
    fn the_check_fails_when_a_cleared_id_is_still_there() {
        let e = compare("nginx", scan(&[("CVE-1", "CRITICAL", 9.8)]), scan(&[]));
        let c = check(
            &e,
            "nginx@sha256:aa",
            &scan(&[("CVE-1", "CRITICAL", 9.8)]),
            None,
        );
        assert!(!c.passed);
        assert_eq!(c.not_cleared, ["CVE-1"]);
        assert_eq!(c.remaining, ["CVE-1"]);
    }

    #[test]
    fn the_check_fails_when_what_runs_is_worse_than_the_approved_scan() {
        let e = compare("nginx", scan(&[("CVE-1", "CRITICAL", 9.8)]), scan(&[]));
        let c = check(
            &e,
            "nginx@sha256:aa",
            &scan(&[("CVE-7", "HIGH", 8.0)]),
            None,
        );
        assert!(!c.passed);
        assert_eq!(c.unexpected, ["CVE-7"]);
        assert_eq!(c.gone, ["CVE-1"]);
    }

    #[test]
    fn the_check_fails_when_other_content_runs_even_without_known_cves() {
        let e = compare("nginx", scan(&[("CVE-1", "CRITICAL", 9.8)]), scan(&[]));
        let c = check(&e, "nginx@sha256:ff", &scan(&[]), None);
        assert!(!c.passed, "{c:?}");
        assert_eq!(c.approved_digest.as_deref(), Some("sha256:aa"));
    }

    #[test]
    fn a_known_remaining_id_does_not_fail_the_check() {
        let e = compare(
            "nginx",
            scan(&[("CVE-1", "CRITICAL", 9.8), ("CVE-2", "HIGH", 7.5)]),
            scan(&[("CVE-2", "HIGH", 7.5)]),
        );
        let c = check(
            &e,
            "nginx@sha256:aa",
            &scan(&[("CVE-2", "HIGH", 7.5)]),
            None,
        );
        assert!(c.passed, "{c:?}");
        assert_eq!(c.remaining, ["CVE-2"]);
    }
}
