//! The Trivy Operator's `VulnerabilityReport` resources (`aquasecurity.github.io/v1alpha1`):
//! read from a namespace, resolved from their owner ReplicaSet to the Deployment and container,
//! and summarized per workload.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::{Deserialize, Serialize};

use super::report::Severity;

/// The `report` of a VulnerabilityReport.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OperatorReport {
    /// The scanned image.
    pub artifact: Artifact,
    /// Its registry.
    pub registry: Registry,
    /// Counts by severity.
    pub summary: OperatorSummary,
    /// The findings.
    pub vulnerabilities: Vec<OperatorVulnerability>,
    /// When it was scanned.
    pub update_timestamp: Option<String>,
}

/// The scanned image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Artifact {
    /// Repository, e.g. `library/nginx`.
    pub repository: String,
    /// Tag.
    pub tag: Option<String>,
    /// Digest.
    pub digest: Option<String>,
}

/// The image's registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Registry {
    /// Host, e.g. `index.docker.io`.
    pub server: String,
}

/// Counts by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OperatorSummary {
    /// CRITICAL.
    pub critical_count: u64,
    /// HIGH.
    pub high_count: u64,
    /// MEDIUM.
    pub medium_count: u64,
    /// LOW.
    pub low_count: u64,
    /// UNKNOWN.
    pub unknown_count: u64,
}

/// One finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OperatorVulnerability {
    /// Vulnerability ID.
    #[serde(rename = "vulnerabilityID")]
    pub vulnerability_id: String,
    /// Package.
    pub resource: String,
    /// Installed version.
    pub installed_version: String,
    /// Fixed version.
    pub fixed_version: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// CVSS score.
    pub score: Option<f64>,
    /// Title.
    pub title: Option<String>,
}

/// A report resolved to its workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// Namespace.
    pub namespace: String,
    /// `Deployment`, or the owner kind when it is not a Deployment's ReplicaSet.
    pub kind: String,
    /// Workload name.
    pub name: String,
    /// Container.
    pub container: String,
    /// The resource name of the report.
    pub report_name: String,
    /// The report.
    pub report: OperatorReport,
}

/// The `ApiResource` of VulnerabilityReports.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "aquasecurity.github.io",
        "v1alpha1",
        "VulnerabilityReport",
    ))
}

/// A ReplicaSet's Deployment from its name when the ReplicaSet cannot be read: the controller names
/// it `<deployment>-<pod-template-hash>` (a hash of 6 to 10 alphanumerics).
fn deployment_from_rs_name(rs: &str) -> Option<String> {
    let (dep, hash) = rs.rsplit_once('-')?;
    ((6..=10).contains(&hash.len())
        && hash.chars().all(|c| c.is_ascii_alphanumeric())
        && !dep.is_empty())
    .then(|| dep.to_owned())
}

/// Lists the reports of `namespace` and resolves each to its workload.
///
/// # Errors
/// When the API call fails (403 without `vulnerabilityreports` list, 404 without the CRD).
pub async fn workload_reports(
    client: &kube::Client,
    namespace: &str,
) -> Result<Vec<WorkloadReport>, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &api_resource());
    let list = api.list(&ListParams::default()).await?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let mut owners: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for obj in list.items {
        let mut w = read_report(&obj, namespace);
        if w.kind == "ReplicaSet" {
            let name = w.name.clone();
            let resolved = if let Some(cached) = owners.get(&name) {
                cached.clone()
            } else {
                let resolved = match rs_api.get_opt(&name).await {
                    Ok(Some(rs)) => rs
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|o| o.kind == "Deployment")
                        .map_or_else(
                            || ("ReplicaSet".to_owned(), name.clone()),
                            |o| ("Deployment".to_owned(), o.name.clone()),
                        ),
                    // The ReplicaSet is gone or unreadable: its name still says its Deployment.
                    _ => deployment_from_rs_name(&name).map_or_else(
                        || ("ReplicaSet".to_owned(), name.clone()),
                        |d| ("Deployment".to_owned(), d),
                    ),
                };
                owners.insert(name, resolved.clone());
                resolved
            };
            (w.kind, w.name) = resolved;
        }
        out.push(w);
    }
    out.sort_by(|a, b| (&a.kind, &a.name, &a.container).cmp(&(&b.kind, &b.name, &b.container)));
    Ok(out)
}

/// One line per workload and container, with its worst findings.
/// Reads one listed `VulnerabilityReport` object: its workload (`kind`, `name`) from the
/// `trivy-operator.resource.*` labels or else its first owner reference, its container, its
/// resource name and its `report` (a `report` that does not parse reads as empty). A ReplicaSet
/// owner is returned as is; [`workload_reports`] resolves it to its Deployment. Public for the
/// fuzz targets in `benches/fuzz`, which feed it what the API server could list.
#[doc(hidden)]
pub fn read_report(obj: &DynamicObject, namespace: &str) -> WorkloadReport {
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    let owner_from_refs = obj
        .metadata
        .owner_references
        .iter()
        .flatten()
        .next()
        .map(|o| (o.kind.clone(), o.name.clone()));
    let (kind, name) = match (
        labels.get("trivy-operator.resource.kind"),
        labels.get("trivy-operator.resource.name"),
    ) {
        (Some(k), Some(n)) => (k.clone(), n.clone()),
        _ => owner_from_refs.unwrap_or_else(|| {
            (
                "Unknown".into(),
                obj.metadata.name.clone().unwrap_or_default(),
            )
        }),
    };
    let container = labels
        .get("trivy-operator.container.name")
        .cloned()
        .unwrap_or_default();
    let report: OperatorReport =
        serde_json::from_value(obj.data.get("report").cloned().unwrap_or_default())
            .unwrap_or_default();
    WorkloadReport {
        namespace: namespace.to_owned(),
        kind,
        name,
        container,
        report_name: obj.metadata.name.clone().unwrap_or_default(),
        report,
    }
}

/// The typed data of the reports (what the offline brain reads).
pub fn data(reports: &[WorkloadReport]) -> Vec<crate::data::ReportData> {
    reports
        .iter()
        .map(|w| crate::data::ReportData {
            namespace: w.namespace.clone(),
            kind: w.kind.clone(),
            name: w.name.clone(),
            container: w.container.clone(),
            image: match &w.report.artifact.tag {
                Some(t) => format!("{}:{t}", w.report.artifact.repository),
                None => w.report.artifact.repository.clone(),
            },
            critical: w.report.summary.critical_count,
            high: w.report.summary.high_count,
        })
        .collect()
}

/// The reports as compact text for a model.
pub fn render(reports: &[WorkloadReport], top: usize) -> String {
    if reports.is_empty() {
        return "no VulnerabilityReports (is the Trivy Operator installed and has it scanned this namespace?)".into();
    }
    let mut out = String::new();
    for w in reports {
        let s = w.report.summary;
        let image = match &w.report.artifact.tag {
            Some(t) => format!("{}:{t}", w.report.artifact.repository),
            None => w.report.artifact.repository.clone(),
        };
        let _ = writeln!(
            out,
            "{}/{} {} container {} ({image}): {} CRITICAL, {} HIGH, {} MEDIUM, {} LOW, {} UNKNOWN",
            w.namespace,
            w.kind.to_lowercase(),
            w.name,
            w.container,
            s.critical_count,
            s.high_count,
            s.medium_count,
            s.low_count,
            s.unknown_count
        );
        let mut vulns: Vec<&OperatorVulnerability> = w.report.vulnerabilities.iter().collect();
        vulns.sort_by(|a, b| {
            a.severity
                .cmp(&b.severity)
                .then_with(|| b.score.unwrap_or(-1.0).total_cmp(&a.score.unwrap_or(-1.0)))
        });
        for v in vulns.into_iter().take(top) {
            let fixed = v
                .fixed_version
                .as_deref()
                .filter(|f| !f.is_empty())
                .map_or_else(|| "(no fix)".to_owned(), |f| format!("-> {f}"));
            let _ = writeln!(
                out,
                "  {} {}{} {} {} {fixed}",
                v.vulnerability_id,
                v.severity,
                v.score.map(|s| format!(" {s:.1}")).unwrap_or_default(),
                v.resource,
                v.installed_version
            );
        }
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_set_names_give_their_deployment() {
        assert_eq!(
            deployment_from_rs_name("nginx-6d4cf56db6").as_deref(),
            Some("nginx")
        );
        assert_eq!(
            deployment_from_rs_name("shop-web-7c9f8b6d4").as_deref(),
            Some("shop-web")
        );
        assert_eq!(deployment_from_rs_name("nginx"), None);
        assert_eq!(deployment_from_rs_name("web-x"), None);
    }
}
