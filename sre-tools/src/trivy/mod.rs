//! Trivy: the JSON report model ([`report`]), its [`summary`], the scanner ([`scanner`]: the
//! `trivy` CLI, or the simulator's catalogue), the Trivy Operator's VulnerabilityReports
//! ([`operator`]), registry tags ([`registry`]) and image recommendation ([`recommend`]), and the
//! tools `trivy_scan_image`, `trivy_vulnerability_reports` and `image_recommend`.
//!
//! ```
//! use sre_tools::trivy::{report::Report, summary::Summary};
//! let report = Report::from_json(br#"{"SchemaVersion": 2, "ArtifactName": "nginx:1.25", "Results": null}"#).unwrap();
//! assert_eq!(Summary::of(&report).entries.total(), 0);
//! ```

pub mod evidence;
pub mod operator;
pub mod recommend;
pub mod registry;
pub mod report;
pub mod scanner;
pub mod summary;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use sre_core::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec, parse_args, spec_for};

use crate::k8s::{Scope, kube_error};
use registry::TagLister;
use report::Severity;
use scanner::{ImageScanner, ScanError};
use summary::Summary;

impl From<ScanError> for ToolError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::ImageNotFound { .. } => Self::NotFound(e.to_string()),
            ScanError::RegistryAuth { .. } => Self::Forbidden(e.to_string()),
            ScanError::Timeout { .. } => Self::Timeout(e.to_string()),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// Arguments of `trivy_scan_image`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ScanArgs {
    /// Image reference.
    #[schemars(length(min = 1, max = 512))]
    image: String,
}

/// Arguments of `trivy_vulnerability_reports`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReportsArgs {
    /// Kubernetes namespace.
    namespace: crate::k8s::names::Namespace,
    /// Only this deployment.
    #[serde(default)]
    deployment: Option<crate::k8s::names::Subdomain>,
}

/// Arguments of `image_recommend`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RecommendArgs {
    /// Image reference.
    #[schemars(length(min = 1, max = 512))]
    image: String,
    /// Default: CRITICAL.
    #[serde(default)]
    max_severity: Option<SeverityArg>,
}

/// A severity threshold.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum SeverityArg {
    /// CRITICAL.
    Critical,
    /// HIGH.
    High,
    /// MEDIUM.
    Medium,
}

/// What the Trivy tools use.
#[derive(Clone)]
pub struct Trivy {
    scanner: Arc<dyn ImageScanner>,
    tags: Arc<dyn TagLister>,
    cluster: Option<(kube::Client, Scope)>,
}

impl std::fmt::Debug for Trivy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trivy")
            .field("simulated", &self.scanner.simulated())
            .finish_non_exhaustive()
    }
}

impl Trivy {
    /// Tools over a scanner and a tag lister; `cluster` enables `trivy_vulnerability_reports`.
    pub fn new(
        scanner: Arc<dyn ImageScanner>,
        tags: Arc<dyn TagLister>,
        cluster: Option<(kube::Client, Scope)>,
    ) -> Self {
        Self {
            scanner,
            tags,
            cluster,
        }
    }

    /// The tools.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let mut v: Vec<Arc<dyn Tool>> = vec![
            Arc::new(TrivyTool {
                spec: spec_for::<ScanArgs>("trivy_scan_image", "Trivy scan of an image."),
                kind: Kind::Scan,
                trivy: self.clone(),
            }),
            Arc::new(TrivyTool {
                spec: spec_for::<RecommendArgs>(
                    "image_recommend",
                    "Smallest upgrade of an image (same line) clearing its findings at max_severity or worse.",
                ),
                kind: Kind::Recommend,
                trivy: self.clone(),
            }),
        ];
        if self.cluster.is_some() {
            v.push(Arc::new(TrivyTool {
                spec: spec_for::<ReportsArgs>(
                    "trivy_vulnerability_reports",
                    "Trivy Operator reports per deployment.",
                ),
                kind: Kind::Reports,
                trivy: self.clone(),
            }));
        }
        v
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Scan,
    Recommend,
    Reports,
}

struct TrivyTool {
    spec: ToolSpec,
    kind: Kind,
    trivy: Trivy,
}

#[async_trait]
impl Tool for TrivyTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, args: &Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let name = &self.spec.name;
        match self.kind {
            Kind::Scan => {
                let a: ScanArgs = parse_args(name, args)?;
                let report = self.trivy.scanner.scan(&a.image).await?;
                let mut s = Summary::of(&report);
                s.simulated = self.trivy.scanner.simulated();
                if s.artifact.is_empty() {
                    s.artifact.clone_from(&a.image);
                }
                Ok(ToolOutput::text(s.render()))
            }
            Kind::Recommend => {
                let a: RecommendArgs = parse_args(name, args)?;
                let threshold = match a.max_severity {
                    None | Some(SeverityArg::Critical) => Severity::Critical,
                    Some(SeverityArg::High) => Severity::High,
                    Some(SeverityArg::Medium) => Severity::Medium,
                };
                let r = recommend::recommend(
                    &a.image,
                    threshold,
                    self.trivy.tags.as_ref(),
                    self.trivy.scanner.as_ref(),
                )
                .await
                .map_err(ToolError::Failed)?;
                let data = crate::data::RecommendationData {
                    current: r.current.image.clone(),
                    recommended: r.recommended.as_ref().map(|e| e.image.clone()),
                    recommended_pinned: r
                        .recommended
                        .as_ref()
                        .and_then(recommend::Evidence::pinned),
                };
                ToolOutput::with_data(r.render(), &data)
            }
            Kind::Reports => {
                let a: ReportsArgs = parse_args(name, args)?;
                let Some((client, scope)) = &self.trivy.cluster else {
                    return Err(ToolError::Failed("no cluster configured".into()));
                };
                scope.check(&a.namespace)?;
                let mut reports = operator::workload_reports(client, &a.namespace)
                    .await
                    .map_err(|e| {
                        kube_error(&format!("vulnerabilityreports in {}", a.namespace), &e)
                    })?;
                if let Some(d) = &a.deployment {
                    reports.retain(|r| r.kind == "Deployment" && r.name == d.as_str());
                }
                ToolOutput::with_data(operator::render(&reports, 3), &operator::data(&reports))
            }
        }
    }
}
