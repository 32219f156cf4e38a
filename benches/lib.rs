//! Shared inputs of the sre-agent benchmarks (criterion benches live in `benches/`, comparison
//! scripts beside them). Run the benches with `cargo bench -p sre-benches`.

use serde_json::{Value, json};

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
