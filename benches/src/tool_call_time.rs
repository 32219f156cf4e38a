//! Times one `k8s_list_pods` call against the simulator from Rust (mean of N calls, µs), to
//! separate the tool's own cost from the Python binding's in `sre-py/bench/compare_tool_call.py`.
//!
//! ```sh
//! cargo run --release -p sre-benches --bin tool-call-time
//! ```

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up must stop"
)]

use std::time::Instant;

use sre_core::ToolContext;
use sre_tools::k8s::Limits;
use sre_tools::sim::Simulator;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = rt
        .block_on(Simulator::start_named("bad-release"))
        .expect("sim");
    let tools = rt
        .block_on(async { sim.tools(Limits::default()) })
        .expect("tools");
    let tool = tools
        .into_iter()
        .find(|t| t.spec().name == "k8s_list_pods")
        .expect("tool");
    let args = serde_json::json!({"namespace": "shop"});
    for round in 0..3 {
        let n = 300;
        let start = Instant::now();
        for _ in 0..n {
            rt.block_on(tool.call(&args, &ToolContext::default()))
                .expect("call");
        }
        let block_on = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let start = Instant::now();
        rt.block_on(async {
            for _ in 0..n {
                tool.call(&args, &ToolContext::default())
                    .await
                    .expect("call");
            }
        });
        let inside = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!(
            "round {round}: block_on per call {block_on:.0} us, inside the runtime {inside:.0} us"
        );
    }
}
