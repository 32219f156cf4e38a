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
