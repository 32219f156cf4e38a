//! Typed tool data: what the tools return beside their compact text, for code — the offline
//! brain, reports, exit codes, Python — never for a model. `k8s_find_unhealthy` returns a
//! [`Triage`](crate::k8s::analyze::Triage); the others return the types here.

use serde::{Deserialize, Serialize};

/// A container and its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerImage {
    /// Container name.
    pub container: String,
    /// Image reference.
    pub image: String,
}

/// One revision of a deployment (a ReplicaSet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionData {
    /// The `deployment.kubernetes.io/revision` number.
    pub number: u64,
    /// True for the revision the deployment runs now.
    pub current: bool,
    /// Its containers' images.
    pub images: Vec<ContainerImage>,
}

/// `k8s_get_deployment`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentData {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The containers' images now.
    pub images: Vec<ContainerImage>,
    /// Revisions, newest first.
    pub revisions: Vec<RevisionData>,
}

/// One workload container of `trivy_vulnerability_reports`' data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportData {
    /// Namespace.
    pub namespace: String,
    /// `Deployment`, or the owner kind.
    pub kind: String,
    /// Workload name.
    pub name: String,
    /// Container.
    pub container: String,
    /// The scanned image.
    pub image: String,
    /// CRITICAL findings.
    pub critical: u64,
    /// HIGH findings.
    pub high: u64,
}

/// `image_recommend`'s data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendationData {
    /// The image asked about.
    pub current: String,
    /// The recommended image, if one clears the threshold.
    pub recommended: Option<String>,
    /// The recommended image pinned to the digest that was scanned (`repo:tag@sha256:…`), when
    /// the scan named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_pinned: Option<String>,
}
