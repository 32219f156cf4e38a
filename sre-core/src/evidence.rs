//! Evidence: why a write is proposed and what it is expected to change, gathered by the write tool
//! itself from structured data (scans, pod statuses, logs, events) — never from the model's text.
//!
//! A write plan ([`Preview`](crate::Preview)) carries an [`Evidence`] so that every approver (the
//! terminal prompt, Slack, Teams, Python, the approvals API) sees the same short account: for a CVE
//! patch the CRITICAL/HIGH findings it fixes, the candidate's own scan and what remains; for a
//! rollback the crash that led to it. After a CVE patch rolls out, the tool scans what *runs* and
//! reports a [`SecurityCheck`] in its [`Verification`](crate::Verification).
//!
//! Crash evidence is not part of the action fingerprint: it describes the target, which moves on
//! (a crash loop's restart count grows) without changing what is approved. The scans' ids are
//! (see [`Preview::action_fingerprint`](crate::Preview::action_fingerprint)), and their claims
//! are checked again after the write.
//!
//! ```
//! use sre_core::evidence::{Severities, Finding};
//! let counts = Severities { critical: 2, high: 1, ..Severities::default() };
//! assert_eq!(counts.render(), "2 CRITICAL, 1 HIGH");
//! assert_eq!(Severities::default().render(), "no findings");
//! ```

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::text::escape_untrusted;

/// How many findings and log or event lines a rendering shows; the full lists are in the JSON.
pub const SHOWN: usize = 5;

/// Why a write is proposed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// For an image patch: the scans of the current and the candidate image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerabilities: Option<VulnerabilityEvidence>,
    /// For a rollback or restart: the crash that led to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<CrashEvidence>,
    /// For a rollback: the pods of the revision it returns to, failing as well — going back runs
    /// code that fails too, so it is no fix (an unattended approval never makes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_crash: Option<CrashEvidence>,
    /// For a rollback: the scan of what runs now against what the revision it returns to runs.
    /// Unlike a patch's scan it only ever speaks against the write (a rollback that brings back
    /// a CRITICAL/HIGH finding is vetoed); what it clears is shown, never counted as a reason,
    /// since nothing re-scans what a rollback runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_scan: Option<VulnerabilityEvidence>,
    /// What the plan could not check (a scan that failed, pods that could not be listed). An
    /// unattended approval needs this empty: an unchecked veto is not a passed one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
}

impl Evidence {
    /// True when there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.vulnerabilities.is_none()
            && self.crash.is_none()
            && self.target_crash.is_none()
            && self.target_scan.is_none()
            && self.unchecked.is_empty()
    }

    /// The evidence in one line of counts — trusted data only (numbers and fixed words), so a
    /// chat can show it as markup — e.g. `2 CRITICAL, 6 HIGH now -> 4 MEDIUM in the candidate;
    /// clears 2, remains 0` or `crash: exit code 1, 7 restarts, 3 failing pod(s)`.
    pub fn headline(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.vulnerabilities.as_ref().or(self.target_scan.as_ref()) {
            let mut s = format!(
                "{} now -> {} in the candidate; clears {}, remains {}",
                v.current.counts.render(),
                v.candidate.counts.render(),
                v.clears.len(),
                v.remains.len()
            );
            if !v.introduces.is_empty() {
                let _ = write!(s, ", INTRODUCES {}", v.introduces.len());
            }
            parts.push(s);
        }
        if let Some(c) = &self.crash {
            let exit = c
                .exit_code
                .map_or_else(String::new, |code| format!("exit code {code}, "));
            parts.push(format!(
                "crash: {exit}{} restarts, {} failing pod(s)",
                c.restarts, c.failing_pods
            ));
        }
        if !self.unchecked.is_empty() {
            parts.push(format!(
                "{} check(s) could not be made",
                self.unchecked.len()
            ));
        }
        if let Some(c) = &self.target_crash {
            parts.push(format!(
                "the revision it returns to FAILS TOO: {} failing pod(s)",
                c.failing_pods
            ));
        }
        parts.join("; ")
    }

    /// A few lines for a human deciding in ten seconds (untrusted text escaped), without a
    /// trailing newline; empty when there is no evidence.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Some(v) = &self.vulnerabilities {
            out.extend(v.render_lines());
        }
        if let Some(v) = &self.target_scan {
            out.push("the revision it returns to, scanned:".to_owned());
            out.extend(v.render_lines());
        }
        if let Some(c) = &self.crash {
            out.extend(c.render_lines());
        }
        for u in &self.unchecked {
            out.push(format!("not checked: {}", clip(&escape_untrusted(u))));
        }
        if let Some(c) = &self.target_crash {
            out.push("the revision it returns to fails too:".to_owned());
            out.extend(c.render_lines());
        }
        out.join("\n")
    }
}

/// Counts of unique vulnerability ids by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Severities {
    /// CRITICAL.
    pub critical: u32,
    /// HIGH.
    pub high: u32,
    /// MEDIUM.
    pub medium: u32,
    /// LOW.
    pub low: u32,
    /// UNKNOWN.
    pub unknown: u32,
}

impl Severities {
    /// `2 CRITICAL, 6 HIGH, 11 MEDIUM` (zero counts left out), or `no findings`.
    pub fn render(&self) -> String {
        let parts: Vec<String> = [
            (self.critical, "CRITICAL"),
            (self.high, "HIGH"),
            (self.medium, "MEDIUM"),
            (self.low, "LOW"),
            (self.unknown, "UNKNOWN"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, s)| format!("{n} {s}"))
        .collect();
        if parts.is_empty() {
            "no findings".into()
        } else {
            parts.join(", ")
        }
    }

    /// CRITICAL plus HIGH.
    pub fn serious(&self) -> u32 {
        self.critical + self.high
    }
}

/// One vulnerability of a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `CVE-2024-…` or the advisory id.
    pub id: String,
    /// `CRITICAL`, `HIGH`, …
    pub severity: String,
    /// The affected package.
    pub package: String,
    /// Installed version.
    pub installed: String,
    /// First fixed version, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// The highest CVSS score given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<f64>,
}

impl Finding {
    /// `CVE-2024-1 openssl 3.1.4-r0 -> 3.1.4-r1 (CVSS 9.8)`, escaped.
    pub fn render(&self) -> String {
        let e = escape_untrusted;
        let mut s = format!(
            "{} {} {}",
            e(&self.id),
            e(&self.package),
            e(&self.installed)
        );
        match &self.fixed {
            Some(f) => {
                let _ = write!(s, " -> {}", e(f));
            }
            None => s.push_str(" (no fix)"),
        }
        if let Some(c) = self.cvss {
            let _ = write!(s, " (CVSS {c:.1})");
        }
        s
    }
}

/// Where scan data came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ScanSource {
    /// A fresh `trivy image` scan.
    TrivyCli,
    /// A Trivy Operator `VulnerabilityReport`.
    TrivyOperator {
        /// `namespace/name` of the report.
        report: String,
        /// Its age when read, in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        age_seconds: Option<u64>,
    },
    /// The simulator's image catalogue (not a real scan).
    Simulated,
}

impl ScanSource {
    /// `trivy CLI`, `Trivy Operator report ns/name (3h old)`, `simulated catalogue`.
    pub fn render(&self) -> String {
        match self {
            Self::TrivyCli => "trivy CLI scan".into(),
            Self::TrivyOperator {
                report,
                age_seconds,
            } => {
                let age = age_seconds.map_or_else(String::new, |s| format!(", {} old", age(s)));
                format!("Trivy Operator report {}{age}", escape_untrusted(report))
            }
            Self::Simulated => "simulated catalogue, not a real scan".into(),
        }
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// One image's scan, as evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageScan {
    /// The reference that was scanned.
    pub image: String,
    /// Its content digest (`sha256:…`) when known: what was scanned is what this names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Unique ids by severity.
    pub counts: Severities,
    /// The CRITICAL and HIGH findings, worst first.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Where the data came from.
    pub source: ScanSource,
}

/// The evidence for an image patch: the current image's scan, the candidate's, and the CRITICAL
/// and HIGH ids the change clears, keeps and adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnerabilityEvidence {
    /// The container whose image changes.
    pub container: String,
    /// What runs now.
    pub current: ImageScan,
    /// What the patch will run.
    pub candidate: ImageScan,
    /// CRITICAL/HIGH ids of the current image that the candidate does not have.
    #[serde(default)]
    pub clears: Vec<String>,
    /// CRITICAL/HIGH ids both have.
    #[serde(default)]
    pub remains: Vec<String>,
    /// CRITICAL/HIGH ids only the candidate has.
    #[serde(default)]
    pub introduces: Vec<String>,
}

impl VulnerabilityEvidence {
    /// The lines [`Evidence::render`] shows.
    pub fn render_lines(&self) -> Vec<String> {
        let e = escape_untrusted;
        let mut out = vec![format!(
            "now:       {} — {} ({})",
            e(&self.current.image),
            self.current.counts.render(),
            self.current.source.render()
        )];
        for f in self.current.findings.iter().take(SHOWN) {
            out.push(format!("           {} {}", e(&f.severity), f.render()));
        }
        if self.current.findings.len() > SHOWN {
            out.push(format!(
                "           … and {} more (--json has them all)",
                self.current.findings.len() - SHOWN
            ));
        }
        let pinned = self
            .candidate
            .digest
            .as_deref()
            .filter(|d| !self.candidate.image.contains(*d))
            .map_or_else(String::new, |d| format!(" ({})", e(d)));
        out.push(format!(
            "candidate: {}{pinned} — {} ({})",
            e(&self.candidate.image),
            self.candidate.counts.render(),
            self.candidate.source.render()
        ));
        out.push(format!("clears:    {}", ids(&self.clears)));
        if !self.remains.is_empty() {
            out.push(format!("remains:   {}", ids(&self.remains)));
        }
        if !self.introduces.is_empty() {
            out.push(format!("INTRODUCES: {}", ids(&self.introduces)));
        }
        out
    }
}

/// `a, b, c and 4 more`, escaped; `none` when empty.
pub fn ids(ids: &[String]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    let shown: Vec<_> = ids
        .iter()
        .take(SHOWN)
        .map(|i| escape_untrusted(i).into_owned())
        .collect();
    let mut s = shown.join(", ");
    if ids.len() > SHOWN {
        let _ = write!(s, " and {} more", ids.len() - SHOWN);
    }
    s
}

/// The widest log or event line a rendering shows, in characters (the JSON keeps it whole).
pub const LINE: usize = 300;

/// `s` cut to [`LINE`] characters, with `…` when cut.
fn clip(s: &str) -> String {
    if s.chars().count() <= LINE {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(LINE - 1).collect();
    out.push('…');
    out
}

/// The evidence for a rollback or restart: what the failing pods show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashEvidence {
    /// A failing pod.
    pub pod: String,
    /// Its failing container.
    pub container: String,
    /// The image it runs.
    pub image: String,
    /// `CrashLoopBackOff`, `OOMKilled`, `ImagePullBackOff`, …
    pub reason: String,
    /// The last exit code, if it terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Restarts so far.
    pub restarts: i32,
    /// How many of the deployment's pods fail like this.
    pub failing_pods: u32,
    /// The last lines of the failing container's log (previous instance when it restarted).
    #[serde(default)]
    pub last_log_lines: Vec<String>,
    /// Warning events, newest first (`reason: message (×count)`).
    #[serde(default)]
    pub events: Vec<String>,
}

impl CrashEvidence {
    /// True when running other code (an earlier revision, another image) may fix this failure:
    /// a container that exits by itself, or an image that cannot be pulled. Not an OOM kill (a
    /// capacity decision), a configuration error (a missing Secret or ConfigMap: no image fixes
    /// it), a readiness failure or a restart storm of a container that otherwise runs.
    pub fn other_code_may_fix(&self) -> bool {
        const BY_CODE: [&str; 5] = [
            "CrashLoopBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "InvalidImageName",
            "Error",
        ];
        let head = self.reason.split(" (").next().unwrap_or_default();
        BY_CODE.contains(&head) && !self.reason.contains("OOMKilled")
    }

    /// The lines [`Evidence::render`] shows.
    pub fn render_lines(&self) -> Vec<String> {
        let e = escape_untrusted;
        let exit = self
            .exit_code
            .map_or_else(String::new, |c| format!(", exit code {c}"));
        let mut out = vec![format!(
            "crash:     pod {} container {} ({}): {}{exit}, {} restarts; {} failing pod(s)",
            e(&self.pod),
            e(&self.container),
            e(&self.image),
            e(&self.reason),
            self.restarts,
            self.failing_pods
        )];
        let skip = self.last_log_lines.len().saturating_sub(SHOWN);
        for l in &self.last_log_lines[skip..] {
            out.push(format!("  log:     {}", clip(&e(l))));
        }
        for ev in self.events.iter().take(3) {
            out.push(format!("  event:   {}", clip(&e(ev))));
        }
        out
    }
}

/// The security check after an image patch rolled out: the image that *runs* (the pods'
/// `imageID` digest, not the tag) scanned afresh and compared with what the approval was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityCheck {
    /// The container checked.
    pub container: String,
    /// What runs, by digest (`repo@sha256:…`), from the pods' status.
    pub running: String,
    /// The digest the approval's candidate scan was of, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_digest: Option<String>,
    /// Counts at approval time (the image that ran before).
    pub before: Severities,
    /// Counts of the fresh scan of what runs.
    pub after: Severities,
    /// CRITICAL/HIGH ids of the old image that are gone.
    #[serde(default)]
    pub gone: Vec<String>,
    /// CRITICAL/HIGH ids still present.
    #[serde(default)]
    pub remaining: Vec<String>,
    /// Ids the approval said the patch clears that are still present (fails the check).
    #[serde(default)]
    pub not_cleared: Vec<String>,
    /// CRITICAL/HIGH ids that neither the approved candidate scan nor the old image had (fails
    /// the check: the image is worse than what was approved, e.g. the tag moved).
    #[serde(default)]
    pub unexpected: Vec<String>,
    /// Where the fresh data came from.
    pub source: ScanSource,
    /// True when nothing the approval promised is contradicted.
    pub passed: bool,
}

impl SecurityCheck {
    /// One line: `security: nginx@sha256:… 2 CRITICAL, 6 HIGH -> 0; gone: …; remaining: none`.
    pub fn render(&self) -> String {
        let e = escape_untrusted;
        let mut s = format!(
            "security re-scan of what runs ({}): {} -> {}; gone: {}; remaining: {}",
            e(&self.running),
            self.before.render(),
            self.after.render(),
            ids(&self.gone),
            ids(&self.remaining)
        );
        if !self.not_cleared.is_empty() {
            let _ = write!(
                s,
                "; NOT CLEARED though approved as cleared: {}",
                ids(&self.not_cleared)
            );
        }
        if !self.unexpected.is_empty() {
            let _ = write!(
                s,
                "; NEW since the approved scan: {}",
                ids(&self.unexpected)
            );
        }
        if let Some(d) = self
            .approved_digest
            .as_deref()
            .filter(|d| !self.running.ends_with(*d))
        {
            let _ = write!(s, "; RUNS OTHER CONTENT than the approved {}", e(d));
        }
        let _ = write!(s, " [{}]", self.source.render());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str) -> Finding {
        Finding {
            id: id.into(),
            severity: "CRITICAL".into(),
            package: "openssl".into(),
            installed: "3.1.4-r0".into(),
            fixed: Some("3.1.4-r5".into()),
            cvss: Some(9.8),
        }
    }

    #[test]
    fn a_vulnerability_evidence_names_the_ids_and_the_candidates_counts() {
        let v = VulnerabilityEvidence {
            container: "nginx".into(),
            current: ImageScan {
                image: "nginx:1.25.3-alpine".into(),
                digest: None,
                counts: Severities {
                    critical: 2,
                    high: 6,
                    ..Severities::default()
                },
                findings: vec![finding("CVE-2024-0001"), finding("CVE-2024-0002")],
                source: ScanSource::TrivyCli,
            },
            candidate: ImageScan {
                image: "nginx:1.25.5-alpine".into(),
                digest: Some("sha256:abc".into()),
                counts: Severities {
                    medium: 4,
                    ..Severities::default()
                },
                findings: vec![],
                source: ScanSource::TrivyCli,
            },
            clears: vec!["CVE-2024-0001".into(), "CVE-2024-0002".into()],
            remains: vec![],
            introduces: vec![],
        };
        let v2 = v.clone();
        let text = Evidence {
            vulnerabilities: Some(v),
            crash: None,
            target_crash: None,
            target_scan: None,
            unchecked: Vec::new(),
        }
        .render();
        assert!(text.contains("2 CRITICAL, 6 HIGH"), "{text}");
        assert!(
            text.contains("CRITICAL CVE-2024-0001 openssl 3.1.4-r0 -> 3.1.4-r5 (CVSS 9.8)"),
            "{text}"
        );
        assert!(
            text.contains("candidate: nginx:1.25.5-alpine (sha256:abc) — 4 MEDIUM"),
            "{text}"
        );
        assert!(
            text.contains("clears:    CVE-2024-0001, CVE-2024-0002"),
            "{text}"
        );
        assert!(!text.contains("remains"), "{text}");
        assert_eq!(
            Evidence {
                vulnerabilities: Some(v2),
                crash: None,
                target_crash: None,
                target_scan: None,
                unchecked: Vec::new(),
            }
            .headline(),
            "2 CRITICAL, 6 HIGH now -> 4 MEDIUM in the candidate; clears 2, remains 0"
        );
    }

    #[test]
    fn untrusted_log_lines_and_ids_cannot_rewrite_the_prompt() {
        let c = CrashEvidence {
            pod: "web-1".into(),
            container: "web".into(),
            image: "shop/web:2".into(),
            reason: "CrashLoopBackOff".into(),
            exit_code: Some(1),
            restarts: 7,
            failing_pods: 3,
            last_log_lines: vec!["ok\u{1b}[2J\rapproved: yes".into()],
            events: vec![],
        };
        let c2 = c.clone();
        let text = Evidence {
            vulnerabilities: None,
            crash: Some(c),
            target_crash: None,
            target_scan: None,
            unchecked: Vec::new(),
        }
        .render();
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
        assert!(text.contains("exit code 1, 7 restarts; 3 failing pod(s)"));
        let long = Evidence {
            vulnerabilities: None,
            crash: Some(CrashEvidence {
                last_log_lines: vec!["x".repeat(20_000)],
                ..c2
            }),
            target_crash: None,
            target_scan: None,
            unchecked: Vec::new(),
        }
        .render();
        assert!(long.len() < 1_000, "{}", long.len());
        assert!(long.contains('…'));
        assert!(!ids(&["a\u{202e}b".to_owned()]).contains('\u{202e}'));
    }

    #[test]
    fn long_lists_are_cut_in_text_and_kept_whole_in_json() {
        let many: Vec<String> = (0..8).map(|i| format!("CVE-{i}")).collect();
        assert_eq!(ids(&many), "CVE-0, CVE-1, CVE-2, CVE-3, CVE-4 and 3 more");
        let check = SecurityCheck {
            container: "c".into(),
            running: "nginx@sha256:1".into(),
            approved_digest: None,
            before: Severities::default(),
            after: Severities::default(),
            gone: many.clone(),
            remaining: vec![],
            not_cleared: vec![],
            unexpected: vec!["CVE-X".into()],
            source: ScanSource::Simulated,
            passed: false,
        };
        let json = serde_json::to_value(&check).unwrap_or_default();
        assert_eq!(json["gone"].as_array().map(Vec::len), Some(8));
        assert!(
            check
                .render()
                .contains("NEW since the approved scan: CVE-X")
        );
    }

    #[test]
    fn operator_reports_say_how_old_they_are() {
        let s = ScanSource::TrivyOperator {
            report: "shop/replicaset-web-nginx".into(),
            age_seconds: Some(3 * 3600 + 5),
        };
        assert_eq!(
            s.render(),
            "Trivy Operator report shop/replicaset-web-nginx, 3h old"
        );
        let json = serde_json::to_value(&s).unwrap_or_default();
        assert_eq!(json["kind"], "trivy-operator");
    }
}
