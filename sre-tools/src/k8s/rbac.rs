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
        TRIGGERS => vec![
            perm("", "pods", "list"),
            perm("", "pods", "watch"),
            perm(apps, "deployments", "list"),
            perm(apps, "deployments", "watch"),
            perm("aquasecurity.github.io", "vulnerabilityreports", "list"),
        ],
        _ => Vec::new(),
    }
}

/// The name under which [`required`] lists what `sre-agent serve`'s triggers need in each
/// watched namespace: `watch` (and `list`) on pods and deployments, `list` on Trivy Operator
/// VulnerabilityReports. Pass it to [`preflight`] with the tool names.
pub const TRIGGERS: &str = "serve_triggers";

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

/// The Role's rules: every permission of the tools and of `serve`'s [`TRIGGERS`], plus `get`
/// wherever `list` is granted (so that a read of one object works too), grouped as (groups,
/// resources, verbs).
pub fn role_rules() -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut perms: BTreeSet<Permission> = TOOL_NAMES
        .iter()
        .chain(std::iter::once(&TRIGGERS))
        .flat_map(|t| required(t))
        .collect();
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

/// What `sre-agent serve` needs in the agent's own namespace, and nothing more: its run store
/// (`KubeStore`, `--store kubernetes`) keeps one `ConfigMap` per incident (get, list, create,
/// update, delete) and its leader election one Lease (get, create, update).
pub fn own_namespace() -> Vec<Permission> {
    let mut perms: Vec<Permission> = ["get", "list", "create", "update", "delete"]
        .into_iter()
        .map(|v| perm("", "configmaps", v))
        .collect();
    perms.extend(
        ["get", "create", "update"]
            .into_iter()
            .map(|v| perm("coordination.k8s.io", "leases", v)),
    );
    perms
}

/// The rules of the own-namespace Role (see [`own_namespace`]), grouped as (group, resources,
/// verbs), verbs in the table's order.
pub fn own_namespace_rules() -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut rules: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for p in own_namespace() {
        match rules
            .iter_mut()
            .find(|(g, r, _)| *g == p.group && r.first() == Some(&p.resource))
        {
            Some((_, _, verbs)) => verbs.push(p.verb),
            None => rules.push((p.group, vec![p.resource], vec![p.verb])),
        }
    }
    rules
}

/// The name of the Role and RoleBinding `sre-agent serve` gets in its own namespace.
pub const SERVE_ROLE: &str = "sre-agent-serve";

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends a Role named `role` in `ns` with `rules`, and its RoleBinding to the ServiceAccount
/// `sre-agent` of `home`.
fn role_and_binding(
    out: &mut String,
    role: &str,
    ns: &str,
    home: &str,
    rules: &[(String, Vec<String>, Vec<String>)],
) {
    let _ = write!(
        out,
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {role}\n  namespace: {ns}\nrules:\n"
    );
    for (group, resources, verbs) in rules {
        let _ = write!(
            out,
            "  - apiGroups: [\"{group}\"]\n    resources: [{}]\n    verbs: [{}]\n",
            quoted(resources),
            quoted(verbs)
        );
    }
    let _ = write!(
        out,
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {role}\n  namespace: {ns}\n\
         roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {role}\n\
         subjects:\n  - kind: ServiceAccount\n    name: sre-agent\n    namespace: {home}\n"
    );
}

fn service_account(out: &mut String, header: &str, home: &str) {
    let _ = write!(
        out,
        "{header}apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sre-agent\n  namespace: {home}\n"
    );
}

const HEADER: &str = "# Least-privilege RBAC for sre-agent: read pods, logs, events, replicasets and Trivy\n\
                      # VulnerabilityReports; get, list and patch deployments. No delete, no secrets, no exec.\n";

/// What a Role (or `ClusterRole`) document grants, one `(apiGroup, resource, verb)` triple each —
/// the shape to compare a rendered Role with [`role_rules`] or another Role, whatever the order of
/// its rules and lists. Entries that are not strings are skipped.
pub fn granted(role: &serde_json::Value) -> BTreeSet<(String, String, String)> {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

/// The least-privilege manifests for `namespaces`: a ServiceAccount (in the first namespace),
/// and a Role and RoleBinding in each namespace. Ready for `kubectl apply -f -`.
pub fn manifests(namespaces: &[String]) -> String {
    let home = namespaces.first().map_or("sre-agent", String::as_str);
    let mut out = String::new();
    service_account(&mut out, HEADER, home);
    let rules = role_rules();
    for ns in namespaces {
        role_and_binding(&mut out, "sre-agent", ns, home, &rules);
    }
    out
}

/// The manifests for `sre-agent serve` running in `own` and watching `namespaces`: the
/// ServiceAccount in `own`, the tools' Role and RoleBinding (as [`manifests`]) in each watched
/// namespace, and the Role [`SERVE_ROLE`] with exactly [`own_namespace`] (`ConfigMaps` for the
/// run store, the Lease for leader election) and its RoleBinding in `own` only. Ready for
/// `kubectl apply -f -`.
pub fn serve_manifests(own: &str, namespaces: &[String]) -> String {
    let mut out = String::new();
    service_account(
        &mut out,
        &format!(
            "{HEADER}# In its own namespace {own}, `sre-agent serve` keeps its runs in ConfigMaps and elects a\n\
             # leader with a Lease (Role {SERVE_ROLE}); no delete anywhere else.\n"
        ),
        own,
    );
    let rules = role_rules();
    for ns in namespaces {
        role_and_binding(&mut out, "sre-agent", ns, own, &rules);
    }
    role_and_binding(&mut out, SERVE_ROLE, own, own, &own_namespace_rules());
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::Deserialize as _;
    use serde_json::Value;

    use super::*;

    fn docs(yaml: &str) -> Vec<Value> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|d| Value::deserialize(d).unwrap())
            .collect()
    }

    fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
        items
            .iter()
            .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn own_namespace_needs_exactly_configmaps_and_the_lease() {
        let table: BTreeSet<_> = own_namespace()
            .into_iter()
            .map(|p| (p.group, p.resource, p.verb))
            .collect();
        assert_eq!(
            table,
            set(&[
                ("", "configmaps", "get"),
                ("", "configmaps", "list"),
                ("", "configmaps", "create"),
                ("", "configmaps", "update"),
                ("", "configmaps", "delete"),
                ("coordination.k8s.io", "leases", "get"),
                ("coordination.k8s.io", "leases", "create"),
                ("coordination.k8s.io", "leases", "update"),
            ])
        );
        assert_eq!(own_namespace().len(), table.len(), "no duplicates");
    }

    #[test]
    fn serve_manifests_add_one_role_in_the_own_namespace_only() {
        let yaml = serve_manifests("sre-agent", &["shop".to_owned(), "jobs".to_owned()]);
        let d = docs(&yaml);
        let kinds: Vec<&str> = d.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Role",
                "RoleBinding",
                "Role",
                "RoleBinding"
            ]
        );
        assert!(!yaml.contains("ClusterRole"));
        assert_eq!(d[0]["metadata"]["namespace"], "sre-agent");
        // The tools' Role in each watched namespace is unchanged.
        let tools: BTreeSet<_> = docs(&manifests(&["shop".to_owned()]))
            .iter()
            .filter(|d| d["kind"] == "Role")
            .flat_map(granted)
            .collect();
        for i in [1, 3] {
            assert_eq!(granted(&d[i]), tools);
            assert_eq!(d[i]["metadata"]["name"], "sre-agent");
        }
        assert_eq!(d[1]["metadata"]["namespace"], "shop");
        assert_eq!(d[3]["metadata"]["namespace"], "jobs");
        // The serve Role: exactly the own-namespace table, in the own namespace, bound to the
        // ServiceAccount there.
        let own: BTreeSet<_> = own_namespace()
            .into_iter()
            .map(|p| (p.group, p.resource, p.verb))
            .collect();
        assert_eq!(d[5]["metadata"]["name"], SERVE_ROLE);
        assert_eq!(d[5]["metadata"]["namespace"], "sre-agent");
        assert_eq!(granted(&d[5]), own);
        assert_eq!(d[6]["metadata"]["namespace"], "sre-agent");
        assert_eq!(d[6]["roleRef"]["name"], SERVE_ROLE);
        assert_eq!(d[6]["subjects"][0]["name"], "sre-agent");
        assert_eq!(d[6]["subjects"][0]["namespace"], "sre-agent");
        for (i, doc) in d
            .iter()
            .enumerate()
            .filter(|(_, d)| d["kind"] == "RoleBinding")
        {
            assert_eq!(doc["subjects"][0]["namespace"], "sre-agent", "binding {i}");
        }
        // Nothing in the watched namespaces may touch configmaps or leases.
        for i in [1, 3] {
            assert!(
                granted(&d[i])
                    .iter()
                    .all(|(_, r, _)| r != "configmaps" && r != "leases")
            );
        }
    }

    #[test]
    fn serve_manifests_when_the_agent_watches_its_own_namespace() {
        let yaml = serve_manifests("ops", &["ops".to_owned()]);
        let d = docs(&yaml);
        let names: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["namespace"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("ServiceAccount", "ops", "sre-agent"),
                ("Role", "ops", "sre-agent"),
                ("RoleBinding", "ops", "sre-agent"),
                ("Role", "ops", SERVE_ROLE),
                ("RoleBinding", "ops", SERVE_ROLE),
            ]
        );
    }

    #[test]
    fn own_namespace_rules_group_verbs_by_resource() {
        assert_eq!(
            own_namespace_rules(),
            vec![
                (
                    String::new(),
                    vec!["configmaps".to_owned()],
                    ["get", "list", "create", "update", "delete"]
                        .map(str::to_owned)
                        .to_vec()
                ),
                (
                    "coordination.k8s.io".to_owned(),
                    vec!["leases".to_owned()],
                    ["get", "create", "update"].map(str::to_owned).to_vec()
                ),
            ]
        );
    }
}
