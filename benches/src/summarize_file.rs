//! Times parse + summary of a Trivy JSON report file (best of N runs); with `--generate BYTES`
//! writes the synthetic report first. Prints `rust_ms=<ms> entries=<n> unique=<n>`.
//!
//! ```sh
//! cargo run --release -p sre-benches --bin summarize-file -- /tmp/trivy.json 5 --generate 50000000
//! ```

use std::time::Instant;

use sre_tools::trivy::report::Report;
use sre_tools::trivy::summary::Summary;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: summarize-file FILE [RUNS] [--generate BYTES]")?;
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    if let Some(i) = args.iter().position(|a| a == "--generate") {
        let bytes: usize = args
            .get(i + 1)
            .and_then(|a| a.parse().ok())
            .ok_or("--generate needs a size")?;
        std::fs::write(path, sre_benches::trivy_report_json(bytes))?;
    }
    let bytes = std::fs::read(path)?;
    let mut best = f64::MAX;
    let mut s = Summary::default();
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        s = Summary::of(&Report::from_json(&bytes)?);
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "rust_ms={best:.1} entries={} unique={} bytes={}",
        s.entries.total(),
        s.unique.total(),
        bytes.len()
    );
    Ok(())
}
