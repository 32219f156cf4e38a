//! The agent with Bedrock as its brain, on the embedded simulator's `bad-release` scenario; every
//! write is asked at the terminal. Needs
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_REGION` (optionally `BEDROCK_MODEL_ID`).
//!
//! ```sh
//! cargo run -p sre-examples --example bedrock_agent
//! ```

use sre_core::{Agent, Prompt, Rules};
use sre_llm::{ProviderConfig, ProviderKind};
use sre_tools::k8s::Limits;
use sre_tools::sim::Simulator;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ProviderConfig::new(ProviderKind::Bedrock);
    config.model = Some(
        std::env::var("BEDROCK_MODEL_ID")
            .unwrap_or_else(|_| "anthropic.claude-3-5-sonnet-20240620-v1:0".into()),
    );
    let brain = config.build()?;
    let sim = Simulator::start_named("bad-release").await?;
    let agent = Agent::builder_arc(brain)
        .tools(sim.tools(Limits::default())?)
        .policy(Rules::new(Prompt::terminal()).namespaces(["shop"]))
        .max_steps(12)
        .build()?;
    let report = agent.run(&sim.scenario().task).await;
    println!("{}", report.answer.as_deref().unwrap_or("(no answer)"));
    println!("outcome: {:?}, tokens: {:?}", report.outcome, report.usage);
    sim.shutdown().await;
    Ok(())
}
