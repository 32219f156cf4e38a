//! Trivy's JSON report (schema version 2), as `trivy image|fs|repo --format json` writes it.
//!
//! [`Report::from_json`] is strict about what the document *is* and lenient about the details:
//! it accepts only an object with `SchemaVersion` 2 and an `ArtifactName` (so a `CycloneDX` or SPDX
//! SBOM, a SARIF log, a `trivy k8s` report, `{}` or `[]` is an error naming what it looks like,
//! never "0 vulnerabilities"), while unknown fields are ignored and `null` lists read as empty, so
//! every Trivy version since 0.20 parses. A clean image's report has no `Results` at all: that is
//! a valid report with no findings.
//!
//! ```
//! use sre_tools::trivy::report::{Report, ReportErrorKind};
//! let clean = Report::from_json(br#"{"SchemaVersion": 2, "ArtifactName": "alpine:3.20"}"#).unwrap();
//! assert_eq!(clean.vulnerabilities().count(), 0);
//! let e = Report::from_json(br#"{"bomFormat": "CycloneDX", "specVersion": "1.5"}"#).unwrap_err();
//! assert_eq!(e.kind(), &ReportErrorKind::CycloneDx);
//! assert!(e.to_string().starts_with("the document is a CycloneDX SBOM, not a Trivy JSON report"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

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
    /// Parses a Trivy JSON report (see the [module docs](self) for what is accepted). Errors call
    /// the input "the document"; [`Report::from_file`] names the file instead.
    ///
    /// # Errors
    /// When the bytes are not JSON, are another format (`CycloneDX`, SPDX, SARIF, a `trivy k8s`
    /// report…), have no or another `SchemaVersion`, or a field has the wrong type; the error's
    /// [`kind`](ReportError::kind) says which and its message how to produce a supported report.
    pub fn from_json(json: &[u8]) -> Result<Self, ReportError> {
        parse(json).map_err(|(kind, source)| ReportError {
            origin: "the document".into(),
            kind,
            source,
        })
    }

    /// Reads and parses the Trivy JSON report in `path`; errors name the file.
    ///
    /// # Errors
    /// When the file cannot be read, or as [`Report::from_json`].
    pub fn from_file(path: &Path) -> Result<Self, ReportError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ReportError {
            origin: origin.clone(),
            kind: ReportErrorKind::Read(e.to_string()),
            source: None,
        })?;
        Self::from_json(&bytes).map_err(|e| ReportError { origin, ..e })
    }

    /// Every vulnerability of every result.
    pub fn vulnerabilities(&self) -> impl Iterator<Item = &Vulnerability> {
        self.results.iter().flat_map(|r| r.vulnerabilities.iter())
    }
}

/// What a document given as a Trivy JSON report turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportErrorKind {
    /// The file could not be read (the I/O error's message).
    Read(String),
    /// Not JSON at all, e.g. Trivy's table output.
    NotJson,
    /// A Trivy report with a field of the wrong type.
    Invalid,
    /// A `CycloneDX` SBOM (`bomFormat`), e.g. `trivy image --format cyclonedx`.
    CycloneDx,
    /// An SPDX SBOM (`spdxVersion`), e.g. `trivy image --format spdx-json`.
    Spdx,
    /// A SARIF log (`runs`), e.g. `trivy image --format sarif`.
    Sarif,
    /// A `trivy k8s` report (`ClusterName`, findings by resource).
    TrivyKubernetes,
    /// A cosign vulnerability attestation (`scanner`), `trivy --format cosign-vuln`.
    CosignVuln,
    /// A GitHub dependency snapshot (`detector`, `manifests`), `trivy --format github`.
    GithubSnapshot,
    /// A Kubernetes object (`apiVersion` and `kind`), e.g. a Trivy Operator VulnerabilityReport.
    KubernetesObject {
        /// Its `kind`, when it is a string.
        kind: Option<String>,
    },
    /// A report of Trivy before 0.20: a JSON array of results.
    LegacyTrivy,
    /// Some other JSON array.
    Array,
    /// A JSON string, number, boolean or null (named).
    Scalar(&'static str),
    /// `{}`.
    EmptyObject,
    /// An object without `SchemaVersion`.
    NoSchemaVersion,
    /// A `SchemaVersion` other than 2 (as JSON).
    UnsupportedSchemaVersion(String),
    /// `SchemaVersion` 2 without an `ArtifactName`.
    NoArtifactName,
}

/// A document that is not a Trivy JSON report this crate reads: what it is, and how to write one
/// that is (`trivy image --format json`).
#[derive(Debug)]
pub struct ReportError {
    origin: String,
    kind: ReportErrorKind,
    source: Option<serde_json::Error>,
}

impl ReportError {
    /// What the document turned out to be; branch on this rather than on the message.
    pub fn kind(&self) -> &ReportErrorKind {
        &self.kind
    }

    /// The file name, or `the document`.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

// The error crosses threads (tool calls, the Python layer) like every public type.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ReportError>();
    assert_send_sync::<Report>();
};

/// What to run instead, at the end of most messages.
const RUN: &str = "run trivy image --format json";

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        // A report's strings can carry what a secret scan found.
        let detail = self
            .source
            .as_ref()
            .map(|e| sre_core::Redactor::default().redact_parse_error(&e.to_string()));
        let detail = detail.as_deref().unwrap_or("");
        let not = "not a Trivy JSON report";
        match &self.kind {
            ReportErrorKind::Read(e) => write!(f, "cannot read {o}: {e}"),
            ReportErrorKind::NotJson => write!(
                f,
                "{o} is not JSON ({detail}): {RUN} (the table format cannot be read)"
            ),
            ReportErrorKind::Invalid => write!(f, "{o} is not a valid Trivy JSON report: {detail}"),
            ReportErrorKind::CycloneDx => write!(
                f,
                "{o} is a CycloneDX SBOM, {not}: {RUN}, or scan the SBOM with trivy sbom --format json"
            ),
            ReportErrorKind::Spdx => write!(
                f,
                "{o} is an SPDX SBOM, {not}: {RUN}, or scan the SBOM with trivy sbom --format json"
            ),
            ReportErrorKind::Sarif => write!(f, "{o} is a SARIF log, {not}: {RUN}"),
            ReportErrorKind::TrivyKubernetes => write!(
                f,
                "{o} is a Trivy Kubernetes (trivy k8s) report, which is not supported yet: scan \
                 images with trivy image --format json"
            ),
            ReportErrorKind::CosignVuln => write!(
                f,
                "{o} is a cosign vulnerability attestation (trivy --format cosign-vuln), {not}: {RUN}"
            ),
            ReportErrorKind::GithubSnapshot => write!(
                f,
                "{o} is a GitHub dependency snapshot (trivy --format github), {not}: {RUN}"
            ),
            ReportErrorKind::KubernetesObject { kind } => match kind.as_deref() {
                Some("VulnerabilityReport") => write!(
                    f,
                    "{o} is a Trivy Operator VulnerabilityReport, {not}: the agent reads those from \
                     the cluster (trivy_vulnerability_reports); for a file, {RUN}"
                ),
                Some(k) => write!(f, "{o} is a Kubernetes {k} object, {not}: {RUN}"),
                None => write!(f, "{o} is a Kubernetes object, {not}: {RUN}"),
            },
            ReportErrorKind::LegacyTrivy => write!(
                f,
                "{o} is a report of Trivy before 0.20 (a JSON array of results), which is not \
                 supported: upgrade Trivy and {RUN}"
            ),
            ReportErrorKind::Array => write!(
                f,
                "{o} is a JSON array, {not} (an object with SchemaVersion 2): {RUN}"
            ),
            ReportErrorKind::Scalar(what) => write!(f, "{o} is {what}, {not}: {RUN}"),
            ReportErrorKind::EmptyObject => write!(f, "{o} is an empty JSON object, {not}: {RUN}"),
            ReportErrorKind::NoSchemaVersion => write!(
                f,
                "{o} is a JSON object without SchemaVersion, {not}: {RUN}"
            ),
            ReportErrorKind::UnsupportedSchemaVersion(v) => write!(
                f,
                "{o} has SchemaVersion {v}, which is not supported: only SchemaVersion 2 (Trivy \
                 0.20 and later) is read; {RUN} with such a Trivy"
            ),
            ReportErrorKind::NoArtifactName => write!(
                f,
                "{o} has SchemaVersion 2 but no ArtifactName, so it is not a Trivy image, \
                 filesystem or repository report: {RUN}"
            ),
        }
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The top level of a report as read: Trivy's fields, and the fields by which other formats are
/// recognised (never allocated: [`IgnoredAny`] skips their values).
#[derive(Default, Deserialize)]
#[serde(default)]
struct Wire {
    #[serde(rename = "SchemaVersion")]
    schema_version: Option<Value>,
    #[serde(rename = "CreatedAt")]
    created_at: Option<String>,
    #[serde(rename = "ArtifactName")]
    artifact_name: Option<String>,
    #[serde(rename = "ArtifactType")]
    artifact_type: Option<String>,
    #[serde(rename = "Metadata", deserialize_with = "nullable")]
    metadata: Metadata,
    #[serde(rename = "Results", deserialize_with = "nullable")]
    results: Vec<ScanResult>,
    #[serde(rename = "ClusterName")]
    cluster_name: Option<IgnoredAny>,
    #[serde(rename = "Resources")]
    resources: Option<IgnoredAny>,
    #[serde(rename = "bomFormat")]
    bom_format: Option<IgnoredAny>,
    #[serde(rename = "spdxVersion")]
    spdx_version: Option<IgnoredAny>,
    runs: Option<IgnoredAny>,
    scanner: Option<IgnoredAny>,
    detector: Option<IgnoredAny>,
    manifests: Option<IgnoredAny>,
    #[serde(rename = "apiVersion")]
    api_version: Option<IgnoredAny>,
    kind: Option<Value>,
}

/// The document's outermost shape.
enum Shape {
    Object { keys: usize, wire: Box<Wire> },
    Array { legacy: bool },
    Scalar(&'static str),
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shape, A::Error> {
        let mut keys = 0;
        let wire = Wire::deserialize(MapAccessDeserializer::new(CountKeys {
            map,
            keys: &mut keys,
        }))?;
        Ok(Shape::Object {
            keys,
            wire: Box::new(wire),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        // Trivy before 0.20 wrote an array of results, each with a `Target`.
        let first: Option<Value> = seq.next_element()?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Array {
            legacy: first.is_some_and(|v| v.get("Target").is_some()),
        })
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Scalar("a JSON boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Scalar("a JSON number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Scalar("a JSON number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Scalar("a JSON number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Scalar("a JSON string"))
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Scalar("JSON null"))
    }

    fn visit_none<E>(self) -> Result<Shape, E> {
        Ok(Shape::Scalar("JSON null"))
    }
}

/// Passes a map through, counting its keys (to tell `{}` from an object of unknown fields).
struct CountKeys<'a, A> {
    map: A,
    keys: &'a mut usize,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CountKeys<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = self.map.next_key_seed(seed)?;
        *self.keys += usize::from(key.is_some());
        Ok(key)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

type ParseFailure = (ReportErrorKind, Option<serde_json::Error>);

/// One pass over the bytes: the shape, Trivy's fields and the markers of other formats.
fn parse(json: &[u8]) -> Result<Report, ParseFailure> {
    let shape: Shape = serde_json::from_slice(json).map_err(|e| {
        let kind = if e.is_data() {
            ReportErrorKind::Invalid
        } else {
            ReportErrorKind::NotJson
        };
        (kind, Some(e))
    })?;
    let (keys, w) = match shape {
        Shape::Object { keys, wire } => (keys, *wire),
        Shape::Array { legacy: true } => return Err((ReportErrorKind::LegacyTrivy, None)),
        Shape::Array { legacy: false } => return Err((ReportErrorKind::Array, None)),
        Shape::Scalar(what) => return Err((ReportErrorKind::Scalar(what), None)),
    };
    let foreign = if keys == 0 {
        Some(ReportErrorKind::EmptyObject)
    } else if w.bom_format.is_some() {
        Some(ReportErrorKind::CycloneDx)
    } else if w.spdx_version.is_some() {
        Some(ReportErrorKind::Spdx)
    } else if w.runs.is_some() {
        Some(ReportErrorKind::Sarif)
    } else if w.cluster_name.is_some() || (w.resources.is_some() && w.artifact_name.is_none()) {
        Some(ReportErrorKind::TrivyKubernetes)
    } else if w.api_version.is_some() && w.kind.is_some() {
        Some(ReportErrorKind::KubernetesObject {
            // Shown on a terminal: only a plain Kubernetes kind name, never arbitrary text.
            kind: w
                .kind
                .as_ref()
                .and_then(Value::as_str)
                .filter(|k| k.len() <= 63 && k.chars().all(|c| c.is_ascii_alphanumeric()))
                .map(str::to_owned),
        })
    } else if w.scanner.is_some() {
        Some(ReportErrorKind::CosignVuln)
    } else if w.detector.is_some() && w.manifests.is_some() {
        Some(ReportErrorKind::GithubSnapshot)
    } else {
        None
    };
    if let Some(kind) = foreign {
        return Err((kind, None));
    }
    match &w.schema_version {
        None => return Err((ReportErrorKind::NoSchemaVersion, None)),
        Some(v) if v.as_u64() != Some(2) => {
            return Err((ReportErrorKind::UnsupportedSchemaVersion(shown(v)), None));
        }
        Some(_) => {}
    }
    let Some(artifact_name) = w.artifact_name else {
        return Err((ReportErrorKind::NoArtifactName, None));
    };
    Ok(Report {
        schema_version: Some(2),
        created_at: w.created_at,
        artifact_name,
        artifact_type: w.artifact_type,
        metadata: w.metadata,
        results: w.results,
    })
}

/// A JSON value for a one-line message: a number or a short string as JSON (control characters
/// escaped), anything else by its type.
fn shown(v: &Value) -> String {
    match v {
        Value::Number(_) => v.to_string(),
        Value::String(s) if s.chars().count() <= 16 => v.to_string(),
        Value::String(_) => "(a long string)".into(),
        Value::Bool(_) => "(a boolean)".into(),
        Value::Array(_) => "(an array)".into(),
        Value::Object(_) => "(an object)".into(),
        Value::Null => "null".into(),
    }
}
