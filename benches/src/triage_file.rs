//! Times parse + triage of a `PodList` file (best of N runs, milliseconds), for the comparison
//! script; prints `rust_ms=<ms> workloads=<n>`.
//!
//! ```sh
//! cargo run --release -p sre-benches --bin triage-file -- /tmp/pods.json 5
//! ```

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: triage-file FILE [RUNS]")?;
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let bytes = std::fs::read(&path)?;
    let mut best = f64::MAX;
    let mut workloads = 0;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let t = sre_benches::parse_and_triage(&bytes)?;
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
        workloads = t.workloads.len();
    }
    let start = Instant::now();
    let pods = sre_tools::k8s::analyze::parse_pod_list(&bytes)?;
    let parsed = start.elapsed().as_secs_f64() * 1000.0;
    let start = Instant::now();
    let t =
        sre_tools::k8s::analyze::triage_facts(&pods, &[], &[], k8s_openapi::jiff::Timestamp::now());
    let analyzed = start.elapsed().as_secs_f64() * 1000.0;
    let start = Instant::now();
    drop(pods);
    let dropped = start.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "last run: parse {parsed:.1} ms, triage {analyzed:.1} ms ({} workloads), drop {dropped:.1} ms",
        t.workloads.len()
    );
    println!("rust_ms={best:.1} workloads={workloads}");
    Ok(())
}
