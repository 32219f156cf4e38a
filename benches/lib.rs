//! Criterion benchmarks of sre-agent live in `benches/`; run them with `cargo bench -p sre-benches`.
