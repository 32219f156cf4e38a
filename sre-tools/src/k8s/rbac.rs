//! Least privilege: the permissions each tool needs, the Role that grants exactly those
//! (`deploy/rbac.yaml`), and [`preflight`], which checks the agent's own identity with
//! SelfSubjectAccessReviews.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One permission: a verb on a resource (with subresource as `pods/log`) of an API group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Permission {
    /// API group (`""` is core).
    pub group: String,
    /// Resource, e.g. `deployments` or `pods/log`.
    pub resource: String,
    /// Verb.
    pub verb: String,
}

fn perm(group: &str, resource: &str, verb: &str) -> Permission {
    Permission {
        group: group.into(),
        resource: resource.into(),
        verb: verb.into(),
    }
}

/// What a tool needs, by tool name. Unknown names need nothing.
pub fn required(tool: &str) -> Vec<Permission> {
    let apps = "apps";
    match tool {
        "k8s_list_pods" => vec![perm("", "pods", "list")],
        "k8s_find_unhealthy" => vec![
            perm("", "pods", "list"),
            perm(apps, "replicasets", "list"),
            perm(apps, "deployments", "list"),
        ],
        "k8s_describe_pod" => vec![perm("", "pods", "get"), perm("", "events", "list")],
        "k8s_pod_logs" => vec![perm("", "pods/log", "get")],
        "k8s_events" => vec![perm("", "events", "list")],
        "k8s_get_deployment" => vec![
            perm(apps, "deployments", "get"),
            perm(apps, "replicasets", "list"),
        ],
        "k8s_rollback" => vec![
            perm(apps, "deployments", "get"),
            perm(apps, "replicasets", "list"),
            perm(apps, "deployments", "patch"),
        ],
        "k8s_rollout_status" => vec![perm(apps, "deployments", "get")],
        "k8s_patch_image" | "k8s_restart_deployment" | "k8s_scale_deployment" => {
            vec![
                perm(apps, "deployments", "get"),
                perm(apps, "deployments", "patch"),
            ]
        }
        "trivy_vulnerability_reports" => vec![
            perm("aquasecurity.github.io", "vulnerabilityreports", "list"),
            perm(apps, "replicasets", "get"),
        ],
        _ => Vec::new(),
    }
}

/// Every Kubernetes tool name.
pub const TOOL_NAMES: &[&str] = &[
    "k8s_list_pods",
    "k8s_find_unhealthy",
    "k8s_describe_pod",
    "k8s_pod_logs",
    "k8s_events",
    "k8s_get_deployment",
    "k8s_rollout_status",
    "k8s_patch_image",
    "k8s_rollback",
    "k8s_restart_deployment",
    "k8s_scale_deployment",
    "trivy_vulnerability_reports",
];

/// The Role's rules: every permission of the tools, plus `get` wherever `list` is granted (so that
/// a read of one object works too), grouped as (groups, resources, verbs).
pub fn role_rules() -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut perms: BTreeSet<Permission> = TOOL_NAMES.iter().flat_map(|t| required(t)).collect();
    let lists: Vec<Permission> = perms.iter().filter(|p| p.verb == "list").cloned().collect();
    for p in lists {
        perms.insert(perm(&p.group, &p.resource, "get"));
    }
    // Group resources with identical verb sets, per API group.
    let mut by: std::collections::BTreeMap<(String, Vec<String>), Vec<String>> =
        std::collections::BTreeMap::new();
    let resources: BTreeSet<(String, String)> = perms
        .iter()
        .map(|p| (p.group.clone(), p.resource.clone()))
        .collect();
    for (g, r) in resources {
        let verbs: Vec<String> = perms
            .iter()
            .filter(|p| p.group == g && p.resource == r)
            .map(|p| p.verb.clone())
            .collect();
        by.entry((g, verbs)).or_default().push(r);
    }
    by.into_iter()
        .map(|((g, verbs), res)| (g, res, verbs))
        .collect()
}

/// The least-privilege manifests for `namespaces`: a ServiceAccount (in the first namespace),
/// and a Role and RoleBinding in each namespace. Ready for `kubectl apply -f -`.
pub fn manifests(namespaces: &[String]) -> String {
    let home = namespaces.first().map_or("sre-agent", String::as_str);
    let mut out = String::new();
    let _ = write!(
        out,
        "# Least-privilege RBAC for sre-agent: read pods, logs, events, replicasets and Trivy\n\
         # VulnerabilityReports; get, list and patch deployments. No delete, no secrets, no exec.\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sre-agent\n  namespace: {home}\n"
    );
    for ns in namespaces {
        let _ = write!(
            out,
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: sre-agent\n  namespace: {ns}\nrules:\n"
        );
        for (group, resources, verbs) in role_rules() {
            let _ = write!(
                out,
                "  - apiGroups: [\"{group}\"]\n    resources: [{}]\n    verbs: [{}]\n",
                resources
                    .iter()
                    .map(|r| format!("\"{r}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                verbs
                    .iter()
                    .map(|v| format!("\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = write!(
            out,
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: sre-agent\n  namespace: {ns}\n\
             roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: sre-agent\n\
             subjects:\n  - kind: ServiceAccount\n    name: sre-agent\n    namespace: {home}\n"
        );
    }
    out
}

/// One SelfSubjectAccessReview answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was asked.
    pub permission: Permission,
    /// Namespace asked about.
    pub namespace: String,
    /// The answer.
    pub allowed: bool,
}

/// What [`preflight`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightReport {
    /// Every check.
    pub checks: Vec<Check>,
    /// Permissions the tools need but the identity lacks: `tool: verb group/resource in ns`.
    pub missing: Vec<String>,
    /// Dangerous powers the identity has (delete, secrets, cluster-admin).
    pub dangerous: Vec<String>,
}

impl PreflightReport {
    /// True when nothing is missing and nothing is dangerous.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.dangerous.is_empty()
    }

    /// Refuses to go on when the identity is over-privileged, unless `allow_dangerous`.
    ///
    /// # Errors
    /// [`Error::Preflight`] listing the dangerous powers.
    pub fn enforce(&self, allow_dangerous: bool) -> Result<()> {
        if !self.dangerous.is_empty() && !allow_dangerous {
            return Err(Error::Preflight(format!(
                "the agent's identity is over-privileged ({}); use the least-privilege Role (sre-agent rbac), \
                 or pass the explicit override to run anyway",
                self.dangerous.join("; ")
            )));
        }
        Ok(())
    }

    /// A human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let allowed = self.checks.iter().filter(|c| c.allowed).count();
        let _ = writeln!(
            out,
            "preflight: {allowed}/{} permission checks allowed",
            self.checks.len()
        );
        if self.missing.is_empty() {
            out.push_str("missing: none\n");
        } else {
            for m in &self.missing {
                let _ = writeln!(out, "missing: {m}");
            }
        }
        if self.dangerous.is_empty() {
            out.push_str("dangerous: none\n");
        } else {
            for d in &self.dangerous {
                let _ = writeln!(out, "WARNING dangerous: {d}");
            }
        }
        out.trim_end().to_owned()
    }
}

async fn can(client: &kube::Client, p: &Permission, ns: &str) -> Result<bool> {
    let (resource, sub) = p
        .resource
        .split_once('/')
        .map_or((p.resource.as_str(), None), |(r, s)| (r, Some(s)));
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: (!ns.is_empty()).then(|| ns.to_owned()),
                verb: Some(p.verb.clone()),
                group: Some(p.group.clone()),
                resource: Some(resource.to_owned()),
                subresource: sub.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Checks, with SelfSubjectAccessReviews, every permission that `tools` need in each namespace,
/// and whether the identity could delete workloads, read secrets or is cluster-admin.
///
/// # Errors
/// When the API server cannot be asked.
pub async fn preflight(
    client: &kube::Client,
    namespaces: &[String],
    tools: &[&str],
) -> Result<PreflightReport> {
    let mut report = PreflightReport::default();
    let scopes: Vec<&str> = if namespaces.is_empty() {
        vec![""]
    } else {
        namespaces.iter().map(String::as_str).collect()
    };
    let mut needed: BTreeSet<(Permission, String)> = BTreeSet::new();
    for t in tools {
        for p in required(t) {
            needed.insert((p, (*t).to_owned()));
        }
    }
    for ns in &scopes {
        let mut asked: BTreeSet<Permission> = BTreeSet::new();
        for (p, tool) in &needed {
            let allowed = can(client, p, ns).await?;
            if !allowed {
                report.missing.push(format!(
                    "{tool}: {} {}/{} in {}",
                    p.verb,
                    if p.group.is_empty() { "core" } else { &p.group },
                    p.resource,
                    if ns.is_empty() { "all namespaces" } else { ns }
                ));
            }
            if asked.insert(p.clone()) {
                report.checks.push(Check {
                    permission: p.clone(),
                    namespace: (*ns).to_owned(),
                    allowed,
                });
            }
        }
        for (p, why) in [
            (
                perm("apps", "deployments", "delete"),
                "can delete deployments",
            ),
            (perm("", "pods", "delete"), "can delete pods"),
            (perm("", "secrets", "get"), "can read secrets"),
            (
                perm("*", "*", "*"),
                "is cluster-admin (every verb on every resource)",
            ),
        ] {
            let allowed = can(client, &p, ns).await?;
            report.checks.push(Check {
                permission: p,
                namespace: (*ns).to_owned(),
                allowed,
            });
            if allowed {
                report.dangerous.push(format!(
                    "{why} in {}",
                    if ns.is_empty() { "all namespaces" } else { ns }
                ));
            }
        }
    }
    Ok(report)
}
