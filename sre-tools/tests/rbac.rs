//! `deploy/rbac.yaml` grants exactly what the tools need: generated from the same table the tools
//! and preflight use, with no delete, no secrets, and nothing cluster-wide.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;
use sre_tools::k8s::rbac::{self, TOOL_NAMES};

fn rbac_yaml() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac.yaml");
    std::fs::read_to_string(path).unwrap()
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

/// (group, resource, verb) granted by the Roles named `role` of a manifest.
fn granted_by(yaml: &str, role: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for d in docs(yaml)
        .iter()
        .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == role)
    {
        for rule in d["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for v in rule["verbs"].as_array().unwrap() {
                        out.insert((
                            g.as_str().unwrap().into(),
                            r.as_str().unwrap().into(),
                            v.as_str().unwrap().into(),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// What the tools' Role (`sre-agent`) of a manifest grants.
fn granted(yaml: &str) -> BTreeSet<(String, String, String)> {
    granted_by(yaml, "sre-agent")
}

#[test]
fn deploy_rbac_yaml_is_the_generated_manifest() {
    assert_eq!(
        rbac_yaml(),
        rbac::serve_manifests("sre-agent", &["sre-agent".to_owned()]),
        "deploy/rbac.yaml is out of date: regenerate it with `sre-agent rbac --namespace sre-agent --agent-namespace sre-agent` (or rbac::serve_manifests)"
    );
}

#[test]
fn the_serve_role_grants_exactly_the_store_and_the_lease_in_its_own_namespace() {
    let granted = granted_by(&rbac_yaml(), rbac::SERVE_ROLE);
    let needed: BTreeSet<(String, String, String)> = rbac::own_namespace()
        .into_iter()
        .map(|p| (p.group, p.resource, p.verb))
        .collect();
    assert_eq!(granted, needed);
    for (g, r, _) in &granted {
        assert!(
            (g.is_empty() && r == "configmaps") || (g == "coordination.k8s.io" && r == "leases"),
            "{g}/{r}"
        );
    }
    let serve_roles: Vec<Value> = docs(&rbac_yaml())
        .into_iter()
        .filter(|d| d["metadata"]["name"] == rbac::SERVE_ROLE)
        .collect();
    assert!(
        serve_roles
            .iter()
            .all(|d| d["metadata"]["namespace"] == "sre-agent"),
        "only in the agent's own namespace"
    );
}

#[test]
fn the_role_grants_exactly_what_the_tools_need() {
    let granted = granted(&rbac_yaml());
    let mut needed: BTreeSet<(String, String, String)> = TOOL_NAMES
        .iter()
        .chain(std::iter::once(&rbac::TRIGGERS))
        .flat_map(|t| rbac::required(t))
        .map(|p| (p.group, p.resource, p.verb))
        .collect();
    // `get` goes with `list` so that single reads work; nothing else is added.
    let lists: Vec<_> = needed
        .iter()
        .filter(|(_, _, v)| v == "list")
        .cloned()
        .collect();
    for (g, r, _) in lists {
        needed.insert((g, r, "get".into()));
    }
    assert_eq!(granted, needed);
    for (g, r, v) in &granted {
        assert!(
            ![
                "delete",
                "deletecollection",
                "create",
                "update",
                "escalate",
                "bind",
                "impersonate",
                "*"
            ]
            .contains(&v.as_str()),
            "{g}/{r} {v}"
        );
        assert!(r != "secrets" && r != "*" && g != "*", "{g}/{r} {v}");
    }
    let expected: BTreeSet<(String, String, String)> = [
        ("apps", "deployments", "get"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments", "watch"),
        ("apps", "replicasets", "get"),
        ("apps", "replicasets", "list"),
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods/log", "get"),
        ("", "events", "get"),
        ("", "events", "list"),
        ("aquasecurity.github.io", "vulnerabilityreports", "get"),
        ("aquasecurity.github.io", "vulnerabilityreports", "list"),
    ]
    .into_iter()
    .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(granted, expected, "the design's Role");
}

#[test]
fn manifests_bind_a_service_account_in_every_namespace_and_nothing_cluster_wide() {
    let yaml = rbac::manifests(&["shop".to_owned(), "jobs".to_owned()]);
    let d = docs(&yaml);
    let kinds: Vec<&str> = d.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding"
        ]
    );
    assert!(!yaml.contains("ClusterRole"));
    assert_eq!(d[4]["metadata"]["namespace"], "jobs");
    assert_eq!(d[4]["subjects"][0]["namespace"], "shop");
}

#[test]
fn the_simulator_enforces_the_same_role() {
    let sim_rules: BTreeSet<(String, String, String)> = sre_tools::sim::scenario::default_rules()
        .into_iter()
        .flat_map(|r| {
            let mut v = Vec::new();
            for g in &r.api_groups {
                for res in &r.resources {
                    for verb in &r.verbs {
                        v.push((g.clone(), res.clone(), verb.clone()));
                    }
                }
            }
            v
        })
        .collect();
    assert_eq!(sim_rules, granted(&rbac_yaml()));
}
