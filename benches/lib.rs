//! Shared inputs of the sre-agent benchmarks (criterion benches live in `benches/`, comparison
//! scripts beside them). Run the benches with `cargo bench -p sre-benches`.

use serde_json::{Value, json};

mod realistic;

pub use realistic::{
    PODS_PER_WORKLOAD, realistic_pod_json, realistic_pod_list_json, realistic_pod_page_json,
    realistic_unhealthy_workloads,
};

const HEALTHY: &str = include_str!("fixtures/pod-running-healthy.json");
const CRASHLOOP_LIST: &str = include_str!("fixtures/podlist-crashloop-k3s.json");

/// A `PodList` of `n` pods as the API server returns it for `GET /api/v1/pods`, from real pod objects:
/// spread over 10 namespaces and deployments of 10 pods, every 50th deployment crash-looping.
///
/// # Panics
/// Never: the embedded fixtures are valid JSON.
#[expect(clippy::expect_used, reason = "embedded fixtures")]
pub fn pod_list_json(n: usize) -> String {
    let healthy: Value = serde_json::from_str(HEALTHY).expect("fixture");
    let crash: Value =
        serde_json::from_str::<Value>(CRASHLOOP_LIST).expect("fixture")["items"][0].clone();
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let deployment = i / 10;
            let ns = format!("bulk-{}", deployment % 10);
            let dep = format!("svc-{deployment}");
            let hash = format!("{:010x}", deployment * 7919);
            let mut p = if deployment % 50 == 0 { crash.clone() } else { healthy.clone() };
            let name = format!("{dep}-{hash}-{i:05}");
            p["metadata"]["name"] = json!(name);
            p["metadata"]["namespace"] = json!(ns);
            p["metadata"]["uid"] = json!(format!("00000000-0000-0000-0000-{i:012}"));
            p["metadata"]["labels"] = json!({"app": dep, "pod-template-hash": hash});
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{dep}-{hash}"), "uid": format!("rs-{deployment}"), "controller": true, "blockOwnerDeletion": true}]);
            p
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "123456"}, "items": items}).to_string()
}

/// Parses a `PodList` and triages it: the work of `k8s_find_unhealthy` after the HTTP call
/// (`sre_tools::k8s::analyze::triage_pod_list_json`).
///
/// # Errors
/// When the JSON is not a pod list.
pub fn parse_and_triage(json: &[u8]) -> Result<sre_tools::k8s::analyze::Triage, serde_json::Error> {
    sre_tools::k8s::analyze::triage_pod_list_json(json)
}

/// The largest Trivy report of the fixtures (Trivy 0.20, Debian 10, 93 vulnerabilities).
pub const TRIVY_LARGEST: &str = include_str!("fixtures/debian-buster-trivy-v0.20.json");

/// A Trivy report of about `bytes` bytes: the largest fixture's vulnerabilities repeated with
/// distinct IDs and packages, spread over several results as a large image's report is.
///
/// # Panics
/// Never: the embedded fixture is valid JSON.
#[expect(clippy::expect_used, reason = "embedded fixture")]
pub fn trivy_report_json(bytes: usize) -> String {
    let base: Value = serde_json::from_str(TRIVY_LARGEST).expect("fixture");
    let vulns = base["Results"][0]["Vulnerabilities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let one: usize = vulns
        .iter()
        .map(|v| v.to_string().len() + 1)
        .sum::<usize>()
        .max(1);
    let rounds = bytes / one + 1;
    let mut results = Vec::new();
    for r in 0..rounds {
        let items: Vec<Value> = vulns
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut v = v.clone();
                v["VulnerabilityID"] = json!(format!(
                    "CVE-{}-{:05}",
                    2000 + r % 25,
                    (r * vulns.len() + i) % 100_000
                ));
                v["PkgName"] = json!(format!("{}-{r}", v["PkgName"].as_str().unwrap_or("pkg")));
                v
            })
            .collect();
        results.push(json!({"Target": format!("layer-{r}"), "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": items}));
    }
    let mut report = base;
    report["Results"] = Value::Array(results);
    report.to_string()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::jiff::Timestamp;
    use sre_tools::k8s::analyze::{parse_pod_list, triage, triage_facts};
    use sre_tools::k8s::facts::PodFacts;

    use super::*;

    fn now() -> Timestamp {
        "2025-12-01T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_realistic_list_triages_the_same_from_facts_and_from_typed_pods() {
        let n = 1_000;
        let json = realistic_pod_list_json(n);
        let typed: k8s_openapi::List<Pod> = serde_json::from_str(&json).unwrap();
        assert_eq!(typed.items.len(), n);
        let pods = parse_pod_list(json.as_bytes()).unwrap();
        let from_typed: Vec<PodFacts> = typed.items.iter().map(PodFacts::from).collect();
        assert_eq!(pods, from_typed);
        let fast = triage_facts(&pods, &[], &[], now());
        assert_eq!(fast, triage(&typed.items, &[], &[], now()));
        assert_eq!(fast.workloads.len(), realistic_unhealthy_workloads(n));
        let kinds: std::collections::BTreeSet<&str> = fast
            .workloads
            .iter()
            .flat_map(|w| w.findings.iter().map(|f| f.kind.label()))
            .collect();
        for kind in [
            "CrashLoopBackOff",
            "OOMKilled",
            "ImagePull",
            "Unschedulable",
            "RestartStorm",
            "CreateContainerConfigError",
        ] {
            assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
        }
        assert!(
            fast.workloads
                .iter()
                .any(|w| w.kind == "StatefulSet" && w.name == "db-17"),
            "{:?}",
            fast.workloads
        );
        // The terminating crash-looping pod of workload 20 is not a finding.
        assert!(!fast.workloads.iter().any(|w| w.name == "svc-20"));
    }

    #[test]
    fn the_realistic_shape_is_what_the_benchmark_promises() {
        let json = realistic_pod_list_json(1_000);
        let list: Value = serde_json::from_str(&json).unwrap();
        let items = list["items"].as_array().unwrap();
        for pod in items {
            let meta = &pod["metadata"];
            let managers: Vec<&str> = meta["managedFields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["manager"].as_str().unwrap())
                .collect();
            assert_eq!(managers.len(), 2, "{managers:?}");
            assert!(meta["managedFields"][0]["fieldsV1"]["f:spec"]["f:containers"].is_object());
            assert!(
                meta["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                    .as_str()
                    .is_some_and(|a| a.len() > 250)
            );
            assert_eq!(meta["ownerReferences"][0]["controller"], true);
        }
        let containers: std::collections::BTreeSet<usize> = items
            .iter()
            .map(|p| p["spec"]["containers"].as_array().unwrap().len())
            .collect();
        assert_eq!(containers, [1, 2, 3].into());
        assert!(items.iter().any(|p| p["spec"]["initContainers"].is_array()));
        let one = realistic_pod_json(105, 3);
        let pod: Pod = serde_json::from_str(&one).unwrap();
        assert_eq!(
            pod.status.unwrap().container_statuses.unwrap()[0].restart_count,
            3
        );
        let page: Value =
            serde_json::from_str(&realistic_pod_page_json(10..20, Some("t"))).unwrap();
        assert_eq!(page["metadata"]["continue"], "t");
        assert_eq!(page["items"].as_array().unwrap().len(), 10);
    }
}
