//! The agent with Ollama as its brain, on the embedded simulator's `bad-release` scenario; every
//! write is asked at the terminal. Needs
//! a running Ollama (`OLLAMA_HOST`) with a tool-calling model (`OLLAMA_MODEL`).
//!
//! ```sh
//! cargo run -p sre-examples --example ollama_agent
//! ```

use sre_core::{Agent, Prompt, Rules};
use sre_llm::{ProviderConfig, ProviderKind};
use sre_tools::k8s::Limits;
use sre_tools::sim::Simulator;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ProviderConfig::new(ProviderKind::Ollama);
    config.model = Some(std::env::var("OLLAMA_MODEL").unwrap_or_else(|_| "llama3.1".into()));
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
