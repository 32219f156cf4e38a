//! `trivy_summary`: parse + summarize Trivy JSON reports — the largest fixture, and a synthetic
//! 50 MB report (target: under 150 ms).
//!
//! ```sh
//! cargo bench -p sre-benches --bench trivy_summary
//! ```

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up must stop"
)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sre_tools::trivy::report::Report;
use sre_tools::trivy::summary::Summary;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("trivy_summary");
    let small = sre_benches::TRIVY_LARGEST.as_bytes();
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("largest_fixture", |b| {
        b.iter(|| Summary::of(&Report::from_json(small).expect("report")));
    });
    let big = sre_benches::trivy_report_json(50_000_000);
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("synthetic_50mb", |b| {
        b.iter(|| Summary::of(&Report::from_json(big.as_bytes()).expect("report")));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
