//! `k8s_triage`: the Kubernetes analyzers at scale.
//!
//! - `parse_and_triage_10k_pods`: a generated 10,000-pod `PodList` of real pod objects from the
//!   fixtures (31 MB, no `managedFields`), parsed into the pod facts and triaged.
//! - `parse_and_triage_10k_realistic_pods`: the realistic list (`realistic_pod_list_json`, 65 MB:
//!   `managedFields` of two managers, annotations, owner references, 1–3 containers, mixed
//!   states) parsed into the pod facts and triaged. Target: under 60 ms.
//! - `parse_10k_realistic_pods_serde_facts` and `parse_10k_realistic_pods_k8s_openapi`: the
//!   same bytes through `serde_json` into the facts (their serde derive, one thread) and into
//!   whole `k8s_openapi` `Pod`s, the two parsers the facts reader is measured against.
//! - `sim_list_and_triage_10k_pods`: `k8s_find_unhealthy` over the simulator's `large-cluster`
//!   scenario through the real kube client (HTTP, JSON, 10 namespaces × pods, replicasets and
//!   deployments). Target: under 300 ms. The simulator's resident memory for the scenario is
//!   printed before the runs.
//!
//! ```sh
//! cargo bench -p sre-benches --bench k8s_triage
//! ```

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up must stop"
)]
#![expect(clippy::cast_precision_loss, reason = "sizes printed in MiB")]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use sre_core::ToolContext;
use sre_tools::k8s::facts::PodFacts;
use sre_tools::k8s::{K8s, Scope};
use sre_tools::sim::Simulator;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Measured first, in a fresh process, so that no freed memory is reused.
    let before = rss_kib();
    let sim = rt
        .block_on(Simulator::start_named("large-cluster"))
        .expect("simulator");
    let after = rss_kib();
    eprintln!(
        "simulator large-cluster: {} pods, {} objects in all, resident memory +{:.1} MiB",
        sim.count("pods"),
        sim.count("pods")
            + sim.count("replicasets")
            + sim.count("deployments")
            + sim.count("namespaces"),
        (after.saturating_sub(before)) as f64 / 1024.0
    );

    let json = sre_benches::pod_list_json(10_000);
    let mut group = c.benchmark_group("k8s_triage");
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    eprintln!("generated PodList: {:.1} MB", json.len() as f64 / 1e6);
    group.bench_function("parse_and_triage_10k_pods", |b| {
        b.iter(|| {
            let t = sre_benches::parse_and_triage(json.as_bytes()).expect("valid list");
            assert_eq!(t.workloads.len(), 20);
            t
        });
    });

    let ns = sim.scenario().all_namespaces();
    let tool = rt.block_on(async {
        let k8s = K8s::new(sim.client().expect("client"), Scope::namespaces(ns));
        k8s.read_tools()
            .into_iter()
            .find(|t| t.spec().name == "k8s_find_unhealthy")
            .expect("tool")
    });
    group.bench_function("sim_list_and_triage_10k_pods", |b| {
        b.to_async(&rt).iter(|| async {
            let out = tool
                .call(&json!({}), &ToolContext::default())
                .await
                .expect("triage");
            assert!(
                out.content
                    .starts_with("20 unhealthy workload(s) (10000 pods"),
                "{}",
                &out.content[..80]
            );
            out
        });
    });
    group.finish();

    let realistic = sre_benches::realistic_pod_list_json(10_000);
    let unhealthy = sre_benches::realistic_unhealthy_workloads(10_000);
    eprintln!("realistic PodList: {:.1} MB", realistic.len() as f64 / 1e6);
    let mut group = c.benchmark_group("k8s_triage_realistic");
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("parse_and_triage_10k_realistic_pods", |b| {
        b.iter(|| {
            let t = sre_benches::parse_and_triage(realistic.as_bytes()).expect("valid list");
            assert_eq!(t.workloads.len(), unhealthy);
            t
        });
    });
    group.sample_size(10);
    group.bench_function("parse_10k_realistic_pods_serde_facts", |b| {
        #[derive(serde::Deserialize)]
        struct List {
            items: Vec<PodFacts>,
        }
        b.iter(|| {
            let list: List = serde_json::from_str(&realistic).expect("valid list");
            assert_eq!(list.items.len(), 10_000);
            list
        });
    });
    group.bench_function("parse_10k_realistic_pods_k8s_openapi", |b| {
        b.iter(|| {
            let list: k8s_openapi::List<Pod> =
                serde_json::from_str(&realistic).expect("valid list");
            assert_eq!(list.items.len(), 10_000);
            list
        });
    });
    group.finish();
    drop(tool);
    rt.block_on(sim.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
