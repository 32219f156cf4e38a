//! The memory of a `serve`-shaped watch cache: a reflector's store of every pod in scope, filled
//! the way a reflector fills it — a paginated list (500 pods a page, as kube-runtime's watcher
//! asks for) and then one `MODIFIED` watch event per pod — over the realistic pods of
//! `sre_benches::realistic_pod_list_json`. By default the store holds the slim facts triage reads
//! (`PodFacts`, decoded with `parse_pod_list` / `PodFacts::from_json`); with `--typed` it holds
//! whole `k8s_openapi` `Pod` objects, as a reflector over `Pod` does. Prints the pods held, the
//! facts' bytes (structs and heap, counted), and the resident and peak memory from
//! `/proc/self/status` (`VmRSS`, `VmHWM`).
//!
//! ```sh
//! cargo run --release -p sre-benches --bin reflector-rss -- 10000
//! cargo run --release -p sre-benches --bin reflector-rss -- 10000 --typed
//! ```

#![expect(clippy::cast_precision_loss, reason = "sizes printed in MiB")]

use std::collections::HashMap;
use std::mem::size_of;

use k8s_openapi::api::core::v1::Pod;
use sre_tools::k8s::analyze::parse_pod_list;
use sre_tools::k8s::facts::{ContainerStatusFacts, PodFacts, StateFacts};

const PAGE: usize = 500;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn opt(s: Option<&String>) -> usize {
    s.map_or(0, String::capacity)
}

fn state_heap(s: &StateFacts) -> usize {
    s.waiting
        .as_ref()
        .map_or(0, |w| opt(w.reason.as_ref()) + opt(w.message.as_ref()))
        + s.running.as_ref().map_or(0, |r| opt(r.started_at.as_ref()))
        + s.terminated
            .as_ref()
            .map_or(0, |t| opt(t.reason.as_ref()) + opt(t.message.as_ref()))
}

fn status_heap(cs: &[ContainerStatusFacts], cap: usize) -> usize {
    cap * size_of::<ContainerStatusFacts>()
        + cs.iter()
            .map(|c| {
                c.name.capacity()
                    + c.image.capacity()
                    + state_heap(&c.state)
                    + state_heap(&c.last_state)
            })
            .sum::<usize>()
}

/// The bytes a pod's facts occupy: the struct and every heap allocation it owns (allocator
/// overhead not included).
fn facts_bytes(p: &PodFacts) -> usize {
    let m = &p.metadata;
    let s = &p.status;
    size_of::<PodFacts>()
        + m.name.capacity()
        + m.namespace.capacity()
        + opt(m.pod_template_hash.as_ref())
        + opt(m.deletion_timestamp.as_ref())
        + m.owner_references.capacity() * size_of::<sre_tools::k8s::facts::OwnerFacts>()
        + m.owner_references
            .iter()
            .map(|o| o.kind.capacity() + o.name.capacity())
            .sum::<usize>()
        + [&p.spec.containers, &p.spec.init_containers]
            .iter()
            .map(|cs| {
                cs.capacity() * size_of::<sre_tools::k8s::facts::ContainerFacts>()
                    + cs.iter()
                        .map(|c| c.name.capacity() + opt(c.memory_limit.as_ref()))
                        .sum::<usize>()
            })
            .sum::<usize>()
        + opt(s.phase.as_ref())
        + opt(s.reason.as_ref())
        + opt(s.message.as_ref())
        + s.conditions.capacity() * size_of::<sre_tools::k8s::facts::ConditionFacts>()
        + s.conditions
            .iter()
            .map(|c| {
                c.type_.capacity()
                    + c.status.capacity()
                    + opt(c.reason.as_ref())
                    + opt(c.message.as_ref())
            })
            .sum::<usize>()
        + status_heap(&s.container_statuses, s.container_statuses.capacity())
        + status_heap(
            &s.init_container_statuses,
            s.init_container_statuses.capacity(),
        )
}

fn key(ns: Option<&String>, name: Option<&String>) -> (String, String) {
    (
        ns.cloned().unwrap_or_default(),
        name.cloned().unwrap_or_default(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let typed = args.iter().any(|a| a == "--typed");
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let base = status_kib("VmRSS:");
    let mut facts: HashMap<(String, String), PodFacts> = HashMap::new();
    let mut pods: HashMap<(String, String), Pod> = HashMap::new();
    // The list, page by page.
    for start in (0..n).step_by(PAGE) {
        let end = (start + PAGE).min(n);
        let token = format!("page-{end}");
        let json = sre_benches::realistic_pod_page_json(start..end, (end < n).then_some(&*token));
        if typed {
            let page: k8s_openapi::List<Pod> = serde_json::from_str(&json)?;
            for p in page.items {
                pods.insert(
                    key(p.metadata.namespace.as_ref(), p.metadata.name.as_ref()),
                    p,
                );
            }
        } else {
            for p in parse_pod_list(json.as_bytes())? {
                facts.insert((p.metadata.namespace.clone(), p.metadata.name.clone()), p);
            }
        }
    }
    let listed = status_kib("VmRSS:");
    // One MODIFIED event per pod.
    for i in 0..n {
        let json = sre_benches::realistic_pod_json(i, 1);
        if typed {
            let p: Pod = serde_json::from_str(&json)?;
            pods.insert(
                key(p.metadata.namespace.as_ref(), p.metadata.name.as_ref()),
                p,
            );
        } else {
            let p = PodFacts::from_json(json.as_bytes())?;
            facts.insert((p.metadata.namespace.clone(), p.metadata.name.clone()), p);
        }
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let held = if typed { pods.len() } else { facts.len() };
    let what = if typed { "k8s_openapi Pod" } else { "PodFacts" };
    println!("pods={held} store={what}");
    if !typed {
        let bytes: usize = facts.values().map(facts_bytes).sum();
        println!(
            "facts_bytes={bytes} ({:.0} per pod, {:.1} MiB)",
            bytes as f64 / held.max(1) as f64,
            bytes as f64 / 1024.0 / 1024.0
        );
    }
    let rss = status_kib("VmRSS:");
    println!(
        "rss_mib={:.1} peak_mib={:.1} (process at start {:.1}, after the list {:.1})",
        mib(rss),
        mib(status_kib("VmHWM:")),
        mib(base),
        mib(listed)
    );
    Ok(())
}
