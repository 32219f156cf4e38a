//! Trivy's JSON report (schema version 2), as `trivy image --format json` writes it. Unknown
//! fields are ignored and `null` lists read as empty, so every Trivy version since 0.20 parses.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::serde_util::nullable;

/// A Trivy severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Most severe.
    Critical,
    /// High.
    High,
    /// Medium.
    Medium,
    /// Low.
    Low,
    /// Unknown (no severity assigned).
    #[default]
    Unknown,
}

impl Severity {
    /// Parses Trivy's spelling; anything else is `Unknown`.
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "CRITICAL" => Self::Critical,
            "HIGH" => Self::High,
            "MEDIUM" => Self::Medium,
            "LOW" => Self::Low,
            _ => Self::Unknown,
        }
    }

    /// All severities, most severe first.
    pub const ALL: [Self; 5] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Unknown,
    ];
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Critical => "CRITICAL",
            Self::High => "HIGH",
            Self::Medium => "MEDIUM",
            Self::Low => "LOW",
            Self::Unknown => "UNKNOWN",
        })
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map_or(Self::Unknown, |s| Self::parse(&s)))
    }
}

/// A whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Report {
    /// 2 for every report this crate reads.
    pub schema_version: Option<u32>,
    /// When it was made.
    pub created_at: Option<String>,
    /// The image or path scanned.
    #[serde(deserialize_with = "nullable")]
    pub artifact_name: String,
    /// `container_image`, `filesystem`, `repository`…
    pub artifact_type: Option<String>,
    /// Image metadata.
    #[serde(deserialize_with = "nullable")]
    pub metadata: Metadata,
    /// One result per target (OS packages, a lock file, a Dockerfile…).
    #[serde(deserialize_with = "nullable")]
    pub results: Vec<ScanResult>,
}

/// Image metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Metadata {
    /// The base OS, when detected.
    #[serde(rename = "OS")]
    pub os: Option<Os>,
    /// The image ID (config digest).
    #[serde(rename = "ImageID")]
    pub image_id: Option<String>,
    /// `repo@sha256:…` digests.
    #[serde(deserialize_with = "nullable")]
    pub repo_digests: Vec<String>,
    /// `repo:tag` names.
    #[serde(deserialize_with = "nullable")]
    pub repo_tags: Vec<String>,
    /// Layer diff IDs.
    #[serde(rename = "DiffIDs", deserialize_with = "nullable")]
    pub diff_ids: Vec<String>,
}

/// The base OS of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Os {
    /// e.g. `alpine`, `debian`.
    #[serde(deserialize_with = "nullable")]
    pub family: String,
    /// e.g. `3.10.2`.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// End of service life: the distribution no longer gets security fixes.
    #[serde(rename = "EOSL")]
    pub eosl: bool,
}

/// The findings for one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ScanResult {
    /// What was scanned, e.g. `nginx:1.25 (alpine 3.18.4)` or `package-lock.json`.
    #[serde(deserialize_with = "nullable")]
    pub target: String,
    /// `os-pkgs`, `lang-pkgs`, `config`, `secret`, `license`.
    pub class: Option<String>,
    /// e.g. `alpine`, `npm`, `dockerfile`.
    #[serde(rename = "Type")]
    pub type_: Option<String>,
    /// Vulnerabilities: one entry per package and vulnerability ID.
    #[serde(deserialize_with = "nullable")]
    pub vulnerabilities: Vec<Vulnerability>,
    /// Misconfigurations.
    #[serde(deserialize_with = "nullable")]
    pub misconfigurations: Vec<Misconfiguration>,
    /// Secrets.
    #[serde(deserialize_with = "nullable")]
    pub secrets: Vec<SecretFinding>,
}

/// One vulnerable package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Vulnerability {
    /// e.g. `CVE-2023-4863`, `GHSA-…`.
    #[serde(rename = "VulnerabilityID", deserialize_with = "nullable")]
    pub vulnerability_id: String,
    /// Package name.
    #[serde(deserialize_with = "nullable")]
    pub pkg_name: String,
    /// Installed version.
    #[serde(deserialize_with = "nullable")]
    pub installed_version: String,
    /// The first fixed version(s), empty when there is no fix.
    pub fixed_version: Option<String>,
    /// `fixed`, `affected`, `will_not_fix`, `fix_deferred`, `end_of_life`… (Trivy ≥ 0.35).
    pub status: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// Short title.
    pub title: Option<String>,
    /// Advisory link.
    #[serde(rename = "PrimaryURL")]
    pub primary_url: Option<String>,
    /// CVSS by source (`nvd`, `redhat`, `ghsa`…).
    #[serde(rename = "CVSS", deserialize_with = "nullable")]
    pub cvss: BTreeMap<String, Cvss>,
}

impl Vulnerability {
    /// True when a fixed version exists.
    pub fn fixable(&self) -> bool {
        self.fixed_version
            .as_deref()
            .is_some_and(|v| !v.trim().is_empty())
    }

    /// The highest CVSS score of any source (v3 preferred over v2).
    pub fn score(&self) -> Option<f64> {
        let best = |f: fn(&Cvss) -> Option<f64>| self.cvss.values().filter_map(f).reduce(f64::max);
        best(|c| c.v3_score).or_else(|| best(|c| c.v2_score))
    }
}

/// A CVSS entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Cvss {
    /// CVSS v3 base score.
    #[serde(rename = "V3Score")]
    pub v3_score: Option<f64>,
    /// CVSS v2 base score.
    #[serde(rename = "V2Score")]
    pub v2_score: Option<f64>,
}

/// A misconfiguration check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Misconfiguration {
    /// Check ID, e.g. `DS002`.
    #[serde(rename = "ID", deserialize_with = "nullable")]
    pub id: String,
    /// Title.
    #[serde(deserialize_with = "nullable")]
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// `FAIL` or `PASS`.
    pub status: Option<String>,
    /// What was found.
    pub message: Option<String>,
}

/// A secret found in a file or layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SecretFinding {
    /// Rule, e.g. `aws-access-key-id`.
    #[serde(rename = "RuleID", deserialize_with = "nullable")]
    pub rule_id: String,
    /// Category, e.g. `AWS`.
    #[serde(deserialize_with = "nullable")]
    pub category: String,
    /// Severity.
    pub severity: Severity,
    /// Title.
    #[serde(deserialize_with = "nullable")]
    pub title: String,
    /// First line.
    pub start_line: Option<u32>,
}

impl Report {
    /// Parses a report.
    ///
    /// # Errors
    /// When the JSON is not a Trivy report; the message names the line and column.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// Every vulnerability of every result.
    pub fn vulnerabilities(&self) -> impl Iterator<Item = &Vulnerability> {
        self.results.iter().flat_map(|r| r.vulnerabilities.iter())
    }
}
