//! # sre-core — the agent loop, its traits and the approval gate
//!
//! The core of sre-agent, an autonomous Kubernetes SRE / DevSecOps agent. It has no Kubernetes,
//! HTTP or Python dependency: providers live in `sre-llm`, tools in `sre-tools`, bindings in `sre-py`.
//!
//! - Chat types ([`Message`], [`ToolCall`], [`ToolSpec`], [`ChatRequest`], [`ChatResponse`], [`Usage`])
//!   and the [`LlmProvider`] trait every model (or the offline playbook brain) implements.
//! - [`Tool`]: a spec with a JSON Schema (from a typed argument struct via [`spec_for`]), an
//!   [`Effect`], `call`, and for writes `preview` (a diff and the target's fingerprint).
//! - The approval gate: [`ApprovalPolicy`] ([`AutoApprove`], [`ReadOnly`], [`Rules`] with an
//!   [`Approver`] such as [`Prompt`] or [`Callback`]). Deny by default. A [`Grant`] is bound to the
//!   previewed fingerprint, single use, and expires.
//! - The [`Agent`] loop with [`Budgets`], returning a [`RunReport`]; typed [`Event`]s to [`Observer`]s;
//!   a hash-chained [`AuditLog`] with [`verify`](audit::verify); a [`Redactor`] every tool result passes.
//!
//! ## Example
//!
//! An offline run with the scripted provider of the `test-util` feature: the model reads, scales a
//! deployment (approved by a callback), and answers.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sre_core::Error> {
//! use serde_json::json;
//! use sre_core::testing::{EchoTool, ScaleTool, ScriptedProvider, answer, call, tool_turn};
//! use sre_core::{Agent, Callback, Decision, Outcome, Rules};
//!
//! let model = ScriptedProvider::new([
//!     tool_turn(vec![call("1", "echo", json!({"text": "web has 1 replica, needs 3"}))]),
//!     tool_turn(vec![call("2", "scale", json!({"namespace": "shop", "deployment": "web", "replicas": 3}))]),
//!     answer("Scaled shop/web to 3 replicas; all ready."),
//! ]);
//! let scale = ScaleTool::default();
//! let agent = Agent::builder(model)
//!     .tool(EchoTool::default())
//!     .tool(scale.clone())
//!     .policy(Rules::new(Callback::new(|_| Decision::approve("alice"))).namespaces(["shop"]))
//!     .max_steps(5)
//!     .build()?;
//!
//! let report = agent.run("web is overloaded").await;
//! assert_eq!(report.outcome, Outcome::Completed);
//! assert_eq!(report.actions[0].decision, Some(Decision::approve("alice")));
//! assert_eq!(scale.state().replicas, 3);
//! println!("{}", serde_json::to_string_pretty(&report).unwrap());
//! # Ok(())
//! # }
//! ```

pub mod agent;
pub mod approval;
pub mod audit;
mod canon;
mod error;
pub mod event;
pub mod evidence;
pub mod gate;
pub mod image;
pub mod llm;
pub mod message;
pub mod outcome;
pub mod park;
pub mod plan;
pub mod redact;
pub mod report;
pub mod secret;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod text;
pub mod tool;

pub use agent::{
    ActionRecord, ActionStatus, Agent, AgentBuilder, Budgets, DEFAULT_SYSTEM_PROMPT, Outcome,
    RollbackRecord, RunEnd, RunReport,
};
pub use approval::{
    ApprovalPolicy, ApprovalRequest, Approver, AutoApprove, Callback, Decision, Grant, GrantError,
    Park, Prompt, ReadOnly, Rules, Ruling,
};
pub use audit::{AuditError, AuditKey, AuditLog, AuditSummary, VerifyOptions};
pub use error::{Error, Result};
pub use event::{Event, FnObserver, Observer, TracingObserver};
pub use gate::{Applied, Gate, GateError, Planned};
pub use llm::{LlmError, LlmProvider};
pub use message::{
    ChatRequest, ChatResponse, Message, Role, StopReason, ToolCall, ToolChoice, ToolSpec, Usage,
};
pub use park::{Answer, ParkReason, ParkedRun, ParkedTurn, PendingApproval, Stop};
pub use redact::Redactor;
pub use tool::{
    Effect, ImageChange, Preview, Risk, Target, Tool, ToolContext, ToolError, ToolOutput, ToolSet,
    Verification, compact_schema, parse_args, schema_for, spec_for,
};

// Public types are Send + Sync: the Python layer and LangGraph run tools from many threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<Agent>();
    assert_send_sync::<AgentBuilder>();
    assert_send_sync::<RunReport>();
    assert_send_sync::<ToolSet>();
    assert_send_sync::<Grant>();
    assert_send_sync::<Rules>();
    assert_send_sync::<Prompt>();
    assert_send_sync::<Callback>();
    assert_send_sync::<AuditLog>();
    assert_send_sync::<Redactor>();
    assert_send_sync::<Event>();
    assert_send_sync::<dyn LlmProvider>();
    assert_send_sync::<dyn Tool>();
    assert_send_sync::<dyn ApprovalPolicy>();
    assert_send_sync::<dyn Approver>();
    assert_send_sync::<dyn Observer>();
};
