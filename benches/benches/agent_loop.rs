//! `agent_loop`: the agent loop's own overhead per step (one model call + one tool call),
//! measured with the scripted provider and a no-op read tool, so that only sre-core's work
//! (schema validation, repeat detection, redaction, transcript, events) is timed.
//!
//! ```sh
//! cargo bench -p sre-benches --bench agent_loop
//! ```
//! Criterion's `thrpt` line is steps per second; per-step overhead is its inverse.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up must stop"
)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sre_core::testing::{EchoTool, ScriptedProvider, answer, call, tool_turn};
use sre_core::{Agent, AuditLog, Outcome};

const STEPS: usize = 20;

fn agent(audit: bool) -> Agent {
    let mut script: Vec<_> = (0..STEPS - 1)
        .map(|i| {
            tool_turn(vec![call(
                &format!("c{i}"),
                "noop",
                json!({"text": format!("pod shop/web-{i} Running, 0 restarts")}),
            )])
        })
        .collect();
    script.push(answer("all healthy"));
    let mut builder = Agent::builder(ScriptedProvider::new(script).without_recording())
        .tool(EchoTool::named("noop"))
        .max_steps(STEPS);
    if audit {
        builder = builder.observer(AuditLog::new(std::io::sink()));
    }
    builder.build().expect("valid agent")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("agent_loop");
    group.throughput(Throughput::Elements(STEPS as u64));
    for (name, audit) in [("per_step", false), ("per_step_with_audit", true)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || agent(audit),
                |agent| async move {
                    let report = agent.run("check shop").await;
                    assert_eq!(report.outcome, Outcome::Completed);
                    report
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
