//! The memory of the embedded Kubernetes API simulator: starts a scenario (`large-cluster` by
//! default: 10,000 pods, 12,010 objects), prints the objects, the JSON bytes the store holds and
//! the process's resident memory before and after (`VmRSS` from `/proc/self/status`), then
//! lists every pod over HTTP, namespace by namespace, and decodes them as `k8s_openapi` `Pod`s, as the kube client does —
//! in one request (`--list full`), in pages of 500 (`--list pages`, as kube-runtime's watcher and
//! the paginated tools ask) or not at all (`--list none`) — and prints the peak (`VmHWM`). With
//! `--hold` every decoded pod is kept until the end, as a tool that triages whole `Pod`s holds
//! them, so the peak shows what the client side costs on top of the simulator.
//!
//! ```sh
//! cargo run --release -p sre-benches --bin sim-rss
//! cargo run --release -p sre-benches --bin sim-rss -- large-cluster --list full
//! ```

#![expect(clippy::cast_precision_loss, reason = "sizes printed in MiB")]

use std::io::{Read as _, Write as _};

use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;
use sre_tools::sim::Simulator;

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

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// How the pods are listed after the simulator starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    None,
    Full,
    Pages,
}

fn usage() -> String {
    "usage: sim-rss [SCENARIO] [--list none|full|pages] [--hold]".to_owned()
}

/// What to run.
struct Args {
    scenario: String,
    listing: Listing,
    hold: bool,
}

fn args() -> Result<Args, String> {
    let mut scenario = "large-cluster".to_owned();
    let mut listing = Listing::Pages;
    let mut hold = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--list" => {
                listing = match it.next().as_deref() {
                    Some("none") => Listing::None,
                    Some("full") => Listing::Full,
                    Some("pages") => Listing::Pages,
                    other => return Err(format!("--list {other:?}: {}", usage())),
                };
            }
            "--hold" => hold = true,
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}: {}", usage())),
            s => s.clone_into(&mut scenario),
        }
    }
    Ok(Args {
        scenario,
        listing,
        hold,
    })
}

/// `GET path` on the simulator (HTTP/1.1, one connection per request): the body of a 200.
fn get(sim: &Simulator, path: &str) -> Result<Vec<u8>, String> {
    let mut conn = std::net::TcpStream::connect(sim.addr()).map_err(|e| e.to_string())?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        sim.addr()
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).map_err(|e| e.to_string())?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the answer")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    if head.contains("transfer-encoding: chunked") {
        return Err(format!(
            "GET {path}: a chunked answer (a list has a length)"
        ));
    }
    Ok(response.split_off(split + 4))
}

/// Lists every pod, namespace by namespace (the caller's Role is namespaced, as the tools' is),
/// decoding each answer as the kube client does; returns the pods when `hold`, else none, and
/// how many there were.
fn list_pods(sim: &Simulator, listing: Listing, hold: bool) -> Result<(Vec<Pod>, usize), String> {
    let mut count = 0;
    let mut kept = Vec::new();
    for ns in sim.scenario().all_namespaces() {
        let mut token: Option<String> = None;
        loop {
            let path = match (listing, &token) {
                (Listing::Pages, None) => format!("/api/v1/namespaces/{ns}/pods?limit=500"),
                (Listing::Pages, Some(t)) => {
                    format!("/api/v1/namespaces/{ns}/pods?limit=500&continue={t}")
                }
                _ => format!("/api/v1/namespaces/{ns}/pods"),
            };
            let body = get(sim, &path)?;
            let page: List<Pod> = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            drop(body);
            count += page.items.len();
            if hold {
                kept.extend(page.items);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(t) if listing == Listing::Pages => token = Some(t),
                _ => break,
            }
        }
    }
    Ok((kept, count))
}

fn main() -> std::process::ExitCode {
    let Args {
        scenario,
        listing,
        hold,
    } = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sim-rss: no runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let before = status_kib("VmRSS:");
    let sim = match rt.block_on(Simulator::start_named(&scenario)) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("sim-rss: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let after = status_kib("VmRSS:");
    let objects: usize = ["pods", "replicasets", "deployments", "namespaces", "events"]
        .iter()
        .map(|p| sim.count(p))
        .sum();
    println!(
        "scenario {scenario}: {} pods, {objects} objects, {:.1} MiB of JSON stored",
        sim.count("pods"),
        sim.stored_bytes() as f64 / (1024.0 * 1024.0)
    );
    println!(
        "resident memory: {:.1} MiB before the simulator, {:.1} MiB after (+{:.1} MiB), peak {:.1} MiB",
        mib(before),
        mib(after),
        mib(after.saturating_sub(before)),
        mib(status_kib("VmHWM:"))
    );
    if listing != Listing::None {
        let how = if listing == Listing::Full {
            "in one list"
        } else {
            "in pages of 500"
        };
        match list_pods(&sim, listing, hold) {
            Ok((kept, count)) => println!(
                "listed {count} pods as k8s_openapi Pods {how}{}: resident {:.1} MiB, peak {:.1} MiB",
                if kept.is_empty() {
                    ""
                } else {
                    ", holding them all"
                },
                mib(status_kib("VmRSS:")),
                mib(status_kib("VmHWM:"))
            ),
            Err(e) => {
                eprintln!("sim-rss: listing pods failed: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    rt.block_on(sim.shutdown());
    std::process::ExitCode::SUCCESS
}
