//! Times parse + triage of a `PodList` file (best of N runs, milliseconds), for the comparison
//! script and the README: prints `rust_ms=<ms> workloads=<n> parse_ms=<ms> triage_ms=<ms>
//! drop_ms=<ms> peak_mib=<MiB> before_parse_mib=<MiB>` — the best total (parse, triage and
//! freeing the facts, the work of `k8s_find_unhealthy` after the HTTP call), the best of each part
//! over the same runs — and the peak resident memory of the process (`VmHWM`, which includes the
//! file's bytes) and its resident memory once the file is read, before any parse.
//!
//! ```sh
//! cargo run --release -p sre-benches --bin gen-podlist -- 10000 /tmp/pods.json
//! cargo run --release -p sre-benches --bin triage-file -- /tmp/pods.json 20
//! ```

#![expect(clippy::cast_precision_loss, reason = "sizes printed in MiB")]

use std::time::Instant;

use sre_tools::k8s::analyze::{parse_pod_list, triage_facts};

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

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: triage-file FILE [RUNS]")?;
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let bytes = std::fs::read(&path)?;
    let before = status_kib("VmRSS:");
    let (mut total, mut parse, mut triage, mut free) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let mut workloads = 0;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let pods = parse_pod_list(&bytes)?;
        let parsed = ms(start);
        let at = Instant::now();
        let t = triage_facts(&pods, &[], &[], k8s_openapi::jiff::Timestamp::now());
        let triaged = ms(at);
        let at = Instant::now();
        drop(pods);
        free = free.min(ms(at));
        total = total.min(ms(start));
        parse = parse.min(parsed);
        triage = triage.min(triaged);
        workloads = t.workloads.len();
    }
    println!(
        "rust_ms={total:.1} workloads={workloads} parse_ms={parse:.1} triage_ms={triage:.1} drop_ms={free:.1} peak_mib={:.1} before_parse_mib={:.1}",
        status_kib("VmHWM:") as f64 / 1024.0,
        before as f64 / 1024.0
    );
    Ok(())
}
