//! An offline agent run: a scripted model investigates, asks to scale a deployment, a terminal
//! prompt asks you to approve, and the report is printed as JSON.
//!
//! ```sh
//! cargo run -p sre-examples --example offline_agent
//! ```

use serde_json::json;
use sre_core::testing::{EchoTool, ScaleTool, ScriptedProvider, answer, call, tool_turn};
use sre_core::{Agent, Prompt, Rules};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = ScriptedProvider::new([
        tool_turn(vec![call(
            "1",
            "echo",
            json!({"text": "shop/web: 1 replica, p99 latency 4s"}),
        )]),
        tool_turn(vec![call(
            "2",
            "scale",
            json!({"namespace": "shop", "deployment": "web", "replicas": 3}),
        )]),
        answer("shop/web was under-provisioned; scaling to 3 replicas was proposed."),
    ]);
    let scale = ScaleTool::default();
    let agent = Agent::builder(model)
        .tool(EchoTool::default())
        .tool(scale.clone())
        .policy(Rules::new(Prompt::terminal()).namespaces(["shop"]))
        .build()?;
    let report = agent.run("shop/web is slow").await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("replicas now: {}", scale.state().replicas);
    Ok(())
}
