//! The summary of a Trivy report that a model and a human read: counts by severity (entries and
//! unique vulnerability IDs), fixable vs unfixable, the top findings, end-of-life OS,
//! misconfigurations and secrets — a few lines, not the report.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::report::{Report, Severity};

/// Counts by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    /// CRITICAL.
    pub critical: usize,
    /// HIGH.
    pub high: usize,
    /// MEDIUM.
    pub medium: usize,
    /// LOW.
    pub low: usize,
    /// UNKNOWN.
    pub unknown: usize,
}

impl SeverityCounts {
    /// Adds one of `s`.
    pub fn add(&mut self, s: Severity) {
        *self.get_mut(s) += 1;
    }

    fn get_mut(&mut self, s: Severity) -> &mut usize {
        match s {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Unknown => &mut self.unknown,
        }
    }

    /// The count of `s`.
    pub fn get(&self, s: Severity) -> usize {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Unknown => self.unknown,
        }
    }

    /// All of them.
    pub fn total(&self) -> usize {
        self.critical + self.high + self.medium + self.low + self.unknown
    }

    /// Findings at `s` or worse.
    pub fn at_least(&self, s: Severity) -> usize {
        Severity::ALL
            .iter()
            .filter(|x| **x <= s)
            .map(|x| self.get(*x))
            .sum()
    }

    /// `2 CRITICAL, 6 HIGH` (zero counts left out; `none` when empty).
    pub fn render(&self) -> String {
        let parts: Vec<String> = Severity::ALL
            .iter()
            .filter(|s| self.get(**s) > 0)
            .map(|s| format!("{} {s}", self.get(*s)))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One of the top findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopFinding {
    /// Vulnerability ID.
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// Highest CVSS score.
    pub score: Option<f64>,
    /// Package.
    pub package: String,
    /// Installed version.
    pub installed: String,
    /// Fixed version, if any.
    pub fixed: Option<String>,
    /// Title.
    pub title: Option<String>,
}

/// The summary of one report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The scanned artifact.
    pub artifact: String,
    /// `alpine 3.10.2`, when detected.
    pub os: Option<String>,
    /// True when the OS is end-of-life.
    pub os_eol: bool,
    /// True when the findings come from a stand-in scanner (the simulator), not Trivy.
    pub simulated: bool,
    /// Vulnerability entries as Trivy lists them (one per package and ID).
    pub entries: SeverityCounts,
    /// Unique vulnerability IDs (each at its highest severity).
    pub unique: SeverityCounts,
    /// Entries with a fixed version.
    pub fixable: usize,
    /// Entries without one.
    pub unfixable: usize,
    /// Failed misconfiguration checks.
    pub misconfigurations: SeverityCounts,
    /// Secrets.
    pub secrets: SeverityCounts,
    /// The most severe findings: critical first, then by CVSS.
    pub top: Vec<TopFinding>,
}

/// How many top findings a summary lists.
pub const TOP: usize = 5;

impl Summary {
    /// Summarizes `report`.
    pub fn of(report: &Report) -> Self {
        let mut s = Self {
            artifact: report.artifact_name.clone(),
            os: report
                .metadata
                .os
                .as_ref()
                .filter(|o| !o.family.is_empty())
                .map(|o| format!("{} {}", o.family, o.name).trim().to_owned()),
            os_eol: report.metadata.os.as_ref().is_some_and(|o| o.eosl),
            ..Self::default()
        };
        let mut unique: BTreeMap<&str, Severity> = BTreeMap::new();
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        let mut candidates = Vec::new();
        for v in report.vulnerabilities() {
            s.entries.add(v.severity);
            if v.fixable() {
                s.fixable += 1;
            } else {
                s.unfixable += 1;
            }
            let e = unique.entry(&v.vulnerability_id).or_insert(v.severity);
            *e = (*e).min(v.severity);
            if seen.insert((&v.vulnerability_id, &v.pkg_name)) {
                candidates.push(v);
            }
        }
        for sev in unique.values() {
            s.unique.add(*sev);
        }
        candidates.sort_by(|a, b| {
            a.severity
                .cmp(&b.severity)
                .then_with(|| {
                    b.score()
                        .unwrap_or(-1.0)
                        .total_cmp(&a.score().unwrap_or(-1.0))
                })
                .then_with(|| a.vulnerability_id.cmp(&b.vulnerability_id))
        });
        s.top = candidates
            .into_iter()
            .take(TOP)
            .map(|v| TopFinding {
                id: v.vulnerability_id.clone(),
                severity: v.severity,
                score: v.score(),
                package: v.pkg_name.clone(),
                installed: v.installed_version.clone(),
                fixed: v.fixed_version.clone().filter(|f| !f.trim().is_empty()),
                title: v.title.clone(),
            })
            .collect();
        for r in &report.results {
            for m in &r.misconfigurations {
                if m.status
                    .as_deref()
                    .is_none_or(|st| st.eq_ignore_ascii_case("FAIL"))
                {
                    s.misconfigurations.add(m.severity);
                }
            }
            for x in &r.secrets {
                s.secrets.add(x.severity);
            }
        }
        s
    }

    /// The compact text for a model and a human.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "{}", self.artifact);
        if let Some(os) = &self.os {
            let _ = write!(out, " ({os})");
        }
        if self.simulated {
            out.push_str(
                " [SIMULATED scan: findings come from the demo's image catalogue, not Trivy]",
            );
        }
        let _ = writeln!(
            out,
            ": {} vulnerabilities ({}) in {} unique IDs ({}); {} fixable, {} without a fix",
            self.entries.total(),
            self.entries.render(),
            self.unique.total(),
            self.unique.render(),
            self.fixable,
            self.unfixable
        );
        for t in &self.top {
            let _ = write!(out, "  {} {}", t.id, t.severity);
            if let Some(score) = t.score {
                let _ = write!(out, " {score:.1}");
            }
            let _ = write!(out, " {} {}", t.package, t.installed);
            match &t.fixed {
                Some(f) => {
                    let _ = write!(out, " -> {f}");
                }
                None => out.push_str(" (no fix)"),
            }
            if let Some(title) = t.title.as_deref().filter(|t| !t.is_empty()) {
                let title: String = title.chars().take(80).collect();
                let _ = write!(out, ": {title}");
            }
            out.push('\n');
        }
        if self.os_eol {
            let _ = writeln!(
                out,
                "  base OS {} is END-OF-LIFE: it gets no security fixes; move to a supported base image",
                self.os.as_deref().unwrap_or("?")
            );
        }
        if self.misconfigurations.total() > 0 {
            let _ = writeln!(
                out,
                "  misconfigurations: {} ({})",
                self.misconfigurations.total(),
                self.misconfigurations.render()
            );
        }
        if self.secrets.total() > 0 {
            let _ = writeln!(
                out,
                "  secrets: {} ({})",
                self.secrets.total(),
                self.secrets.render()
            );
        }
        out.truncate(out.trim_end().len());
        out
    }
}
