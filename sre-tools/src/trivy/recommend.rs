//! Image recommendation: newer tags of the same line and variant (`1.25.3-alpine` →
//! `1.25.x-alpine`, then `1.26.x-alpine`; never a floating tag like `latest`), scanned smallest
//! upgrade first, and the first one that clears the findings at or above the threshold.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::registry::{ImageRef, TagLister};
use super::report::{Report, Severity};
use super::scanner::ImageScanner;
use super::summary::{SeverityCounts, Summary};

/// A version tag split into numbers and a variant suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagVersion {
    /// `v` prefix, if any.
    pub prefix: String,
    /// Numeric parts (1 to 4).
    pub numbers: Vec<u64>,
    /// The rest, e.g. `-alpine` (the variant).
    pub variant: String,
}

impl TagVersion {
    /// Parses `v1.25.3-alpine`; `None` for non-version tags like `latest` or `stable`.
    pub fn parse(tag: &str) -> Option<Self> {
        let (prefix, rest) = tag.strip_prefix('v').map_or(("", tag), |r| ("v", r));
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let numeric = rest[..end].trim_end_matches('.');
        if numeric.is_empty() {
            return None;
        }
        let numbers: Option<Vec<u64>> = numeric.split('.').map(|n| n.parse().ok()).collect();
        let numbers = numbers.filter(|n| (1..=4).contains(&n.len()))?;
        Some(Self {
            prefix: prefix.to_owned(),
            numbers,
            variant: rest[numeric.len()..].to_owned(),
        })
    }

    fn cmp_numbers(&self, other: &Self) -> Ordering {
        let n = self.numbers.len().max(other.numbers.len());
        for i in 0..n {
            let a = self.numbers.get(i).copied().unwrap_or(0);
            let b = other.numbers.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }
}

/// Newer tags of the same line (same major, same number of parts, same `v` prefix) and the same
/// variant, smallest upgrade first.
pub fn candidates(current: &str, tags: &[String]) -> Vec<String> {
    let Some(cur) = TagVersion::parse(current) else {
        return Vec::new();
    };
    let mut out: Vec<(TagVersion, String)> = tags
        .iter()
        .filter_map(|t| TagVersion::parse(t).map(|v| (v, t.clone())))
        .filter(|(v, _)| {
            v.variant == cur.variant
                && v.prefix == cur.prefix
                && v.numbers.len() == cur.numbers.len()
                && v.numbers.first() == cur.numbers.first()
                && v.cmp_numbers(&cur) == Ordering::Greater
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp_numbers(&b.0));
    out.dedup_by(|a, b| a.1 == b.1);
    out.into_iter().map(|(_, t)| t).collect()
}

/// One scanned candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The image.
    pub image: String,
    /// Unique vulnerability IDs by severity.
    pub unique: SeverityCounts,
    /// The content digest the scan was of (`sha256:…`), when the report names it: pin it, so
    /// that what was scanned is what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl Evidence {
    /// `image@digest` when the digest is known (and not already in the reference).
    pub fn pinned(&self) -> Option<String> {
        self.digest
            .as_ref()
            .filter(|d| !self.image.contains(d.as_str()))
            .map(|d| format!("{}@{d}", self.image))
    }
}

/// The outcome of a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The image asked about.
    pub current: Evidence,
    /// The recommended image, if one clears the threshold.
    pub recommended: Option<Evidence>,
    /// Every candidate scanned, in order.
    pub scanned: Vec<Evidence>,
    /// The threshold: findings at this severity or worse must be gone.
    pub max_severity: Severity,
    /// True when the scans were simulated.
    pub simulated: bool,
    /// Notes (digest pins, no candidates…).
    pub notes: Vec<String>,
}

impl Recommendation {
    /// The compact text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let line = |e: &Evidence| format!("{}: {}", e.image, e.unique.render());
        let _ = writeln!(out, "current {}", line(&self.current));
        match &self.recommended {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "RECOMMENDED {} (clears every {} or worse finding; smallest such upgrade)",
                    line(r),
                    self.max_severity
                );
                if let Some(p) = r.pinned() {
                    let _ = writeln!(out, "  pin: {p} (the scanned content)");
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "no candidate clears every {} or worse finding",
                    self.max_severity
                );
            }
        }
        for e in self
            .scanned
            .iter()
            .filter(|e| Some(*e) != self.recommended.as_ref())
        {
            let _ = writeln!(out, "  scanned {}", line(e));
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if self.simulated {
            out.push_str("  [SIMULATED scans from the demo's image catalogue]\n");
        }
        out.truncate(out.trim_end().len());
        out
    }
}

/// How many candidates are scanned at most.
pub const MAX_SCANS: usize = 5;

/// Recommends the smallest upgrade of `image` whose findings at `max_severity` or worse are gone,
/// preferring one that also clears HIGH when the threshold is CRITICAL.
///
/// # Errors
/// When the image cannot be parsed, scanned, or its tags listed.
pub async fn recommend(
    image: &str,
    max_severity: Severity,
    tags: &dyn TagLister,
    scan_image: &dyn ImageScanner,
) -> Result<Recommendation, String> {
    let r = ImageRef::parse(image)?;
    let mut notes = Vec::new();
    let Some(tag) = r.tag.clone() else {
        return Err(format!(
            "{image} is pinned by digest only: there is no tag to find newer versions of; use repo:tag@digest to say which line it belongs to"
        ));
    };
    if r.digest.is_some() {
        notes.push("the image is pinned by digest; pin the recommended tag's digest too".into());
    }
    if TagVersion::parse(&tag).is_none() {
        return Err(format!(
            "tag {tag:?} of {image} is not a version (floating tags like latest cannot be compared); pin a version first"
        ));
    }
    let summary = |report: &Report, img: &str| Evidence {
        image: img.to_owned(),
        unique: Summary::of(report).unique,
        digest: super::evidence::report_digest(report),
    };
    let current_report = scan_image.scan(image).await.map_err(|e| e.to_string())?;
    let current = summary(&current_report, image);
    let all = tags.tags(&r).await?;
    let cands = candidates(&tag, &all);
    if cands.is_empty() {
        notes.push(format!(
            "no newer tag of the same line and variant as {tag} in {} tags",
            all.len()
        ));
    }
    let mut scanned = Vec::new();
    let mut fallback: Option<Evidence> = None;
    let mut best: Option<Evidence> = None;
    for t in cands.iter().take(MAX_SCANS) {
        let img = r.with_tag(t);
        let report = match scan_image.scan(&img).await {
            Ok(rep) => rep,
            Err(e) => {
                notes.push(format!("could not scan {img}: {e}"));
                continue;
            }
        };
        let ev = summary(&report, &img);
        scanned.push(ev.clone());
        if ev.unique.at_least(max_severity) == 0 {
            if max_severity == Severity::Critical && ev.unique.high > 0 {
                fallback.get_or_insert(ev);
                continue;
            }
            best = Some(ev);
            break;
        }
    }
    let recommended = best.or(fallback);
    if cands.len() > MAX_SCANS && recommended.is_none() {
        notes.push(format!(
            "only the {MAX_SCANS} smallest upgrades were scanned of {} candidates",
            cands.len()
        ));
    }
    Ok(Recommendation {
        current,
        recommended,
        scanned,
        max_severity,
        simulated: scan_image.simulated(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn same_line_and_variant_smallest_first() {
        let tags = s(&[
            "1.25.3-alpine",
            "1.25.5-alpine",
            "1.25.4-alpine",
            "1.26.2-alpine",
            "1.25.5",
            "latest",
            "alpine",
            "2.0.0-alpine",
            "1.25.10-alpine",
            "1.24.9-alpine",
            "1.26-alpine",
        ]);
        assert_eq!(
            candidates("1.25.3-alpine", &tags),
            s(&[
                "1.25.4-alpine",
                "1.25.5-alpine",
                "1.25.10-alpine",
                "1.26.2-alpine"
            ])
        );
        assert_eq!(candidates("1.25.3", &tags), s(&["1.25.5"]));
        assert!(candidates("latest", &tags).is_empty());
        assert_eq!(
            candidates("v2.1", &s(&["v2.2", "2.3", "v3.0", "v2.10"])),
            s(&["v2.2", "v2.10"])
        );
    }

    #[test]
    fn tag_versions() {
        assert_eq!(
            TagVersion::parse("1.25.3-alpine3.18").unwrap().variant,
            "-alpine3.18"
        );
        assert!(TagVersion::parse("stable").is_none());
        assert!(TagVersion::parse("1.2.3.4.5").is_none());
    }
}
