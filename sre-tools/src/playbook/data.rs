//! What the playbook reads: the tools' typed data ([`crate::data`], the triage's
//! [`Triage`](crate::k8s::analyze::Triage)), never their text. A tool result without data is
//! treated as telling nothing.

use serde::Deserialize as _;
use serde_json::Value;

use crate::data::{DeploymentData, RecommendationData, ReportData};
use crate::k8s::analyze::Triage;

/// A workload of a triage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Workload {
    pub(crate) namespace: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) findings: Vec<Finding>,
}

/// A finding line of a triage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) kind: String,
    pub(crate) container: Option<String>,
    pub(crate) image: Option<String>,
    pub(crate) pods: Vec<String>,
    pub(crate) memory_limit: Option<String>,
    pub(crate) message: String,
}

impl Workload {
    /// The workload with the finding that decides the runbook first: an OOM kill explains a crash
    /// loop, and a scheduling or pull problem comes before anything the container does.
    pub(crate) fn primary_first(&self) -> Self {
        const ORDER: [&str; 5] = [
            "OOMKilled",
            "Unschedulable",
            "ImagePull",
            "CreateContainerConfigError",
            "CrashLoopBackOff",
        ];
        let rank = |f: &Finding| {
            ORDER
                .iter()
                .position(|k| *k == f.kind)
                .unwrap_or(ORDER.len())
        };
        let mut w = self.clone();
        w.findings.sort_by_key(rank);
        w
    }
}

/// The workloads of `k8s_find_unhealthy`'s data.
pub(crate) fn workloads_of(data: Option<&Value>) -> Vec<Workload> {
    let Some(t) = data.and_then(|d| Triage::deserialize(d).ok()) else {
        return Vec::new();
    };
    t.workloads
        .into_iter()
        .map(|w| Workload {
            namespace: w.namespace,
            kind: w.kind,
            name: w.name,
            findings: w
                .findings
                .iter()
                .map(|f| Finding {
                    kind: f.kind.label().to_owned(),
                    container: f.container.clone(),
                    image: f.image.clone(),
                    pods: f.pods.clone(),
                    memory_limit: f.memory_limit.clone(),
                    message: f.text(),
                })
                .collect(),
        })
        .collect()
}

/// A revision of `k8s_get_deployment`'s data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revision {
    pub(crate) number: u64,
    pub(crate) current: bool,
    /// `container=image` pairs, for the report.
    pub(crate) images: String,
}

fn deployment(data: Option<&Value>) -> Option<DeploymentData> {
    data.and_then(|d| DeploymentData::deserialize(d).ok())
}

/// The revisions of `k8s_get_deployment`'s data, newest first.
pub(crate) fn revisions_of(data: Option<&Value>) -> Vec<Revision> {
    deployment(data)
        .map(|d| {
            d.revisions
                .into_iter()
                .map(|r| Revision {
                    number: r.number,
                    current: r.current,
                    images: r
                        .images
                        .iter()
                        .map(|c| format!("{}={}", c.container, c.image))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `(container, image)` pairs of `k8s_get_deployment`'s data.
pub(crate) fn images_of(data: Option<&Value>) -> Vec<(String, String)> {
    deployment(data)
        .map(|d| {
            d.images
                .into_iter()
                .map(|c| (c.container, c.image))
                .collect()
        })
        .unwrap_or_default()
}

/// The workload containers of `trivy_vulnerability_reports`' data.
pub(crate) fn reports_of(data: Option<&Value>) -> Vec<ReportData> {
    data.and_then(|d| Vec::<ReportData>::deserialize(d).ok())
        .unwrap_or_default()
}

/// The recommended image of `image_recommend`'s data.
pub(crate) fn recommended_of(data: Option<&Value>) -> Option<String> {
    data.and_then(|d| RecommendationData::deserialize(d).ok())
        .and_then(|r| r.recommended)
}
