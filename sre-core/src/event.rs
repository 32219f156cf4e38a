//! Typed events the agent emits at every step, and the [`Observer`] that receives them
//! (progress UI, tracing, Python callbacks, the [`AuditLog`](crate::AuditLog)).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::approval::{ApprovalRequest, Decision};
use crate::message::{StopReason, Usage};
use crate::outcome::{Outcome, ParkReason, RollbackRecord};
use crate::plan::Verification;
use crate::tool::Effect;

/// One thing that happened in a run. Tool results in events are already redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The run began.
    RunStarted {
        /// Run id.
        run_id: String,
        /// The task.
        task: String,
        /// Provider name and model.
        provider: String,
        /// Names of the tools the model may call.
        tools: Vec<String>,
    },
    /// A model call is about to be made.
    StepStarted {
        /// Run id.
        run_id: String,
        /// 1-based step number.
        step: usize,
    },
    /// The model answered.
    ModelResponded {
        /// Run id.
        run_id: String,
        /// Step number.
        step: usize,
        /// Why it stopped.
        stop_reason: StopReason,
        /// Tokens of this call.
        usage: Usage,
        /// Names of the tools it called.
        tool_calls: Vec<String>,
    },
    /// A tool call was refused before running: unknown tool, invalid arguments, or a repeat.
    ToolRejected {
        /// Run id.
        run_id: String,
        /// Call id.
        call_id: String,
        /// Tool name as the model gave it.
        tool: String,
        /// Why.
        error: String,
    },
    /// A tool is running.
    ToolStarted {
        /// Run id.
        run_id: String,
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// Validated arguments.
        arguments: Value,
        /// Read or write.
        effect: Effect,
    },
    /// A tool finished.
    ToolFinished {
        /// Run id.
        run_id: String,
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// False when it returned an error.
        ok: bool,
        /// The redacted result or error.
        result: String,
        /// Wall time in milliseconds.
        duration_ms: u64,
    },
    /// A write was previewed and goes to the policy.
    ApprovalRequested {
        /// Run id.
        run_id: String,
        /// The request (boxed: it carries the whole plan).
        request: Box<ApprovalRequest>,
    },
    /// The policy decided.
    ApprovalDecided {
        /// Run id.
        run_id: String,
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// The approved target fingerprint.
        fingerprint: String,
        /// The decision.
        decision: Decision,
    },
    /// A human's decision on a parked approval came in through a channel (the approvals API,
    /// Slack, Teams), its request verified: who, where, for which action.
    DecisionReceived {
        /// Run id.
        run_id: String,
        /// The approval's id.
        approval: String,
        /// The channel (`api`, `slack`, `teams`).
        channel: String,
        /// The action fingerprint decided on.
        action: String,
        /// The decision, with who made it (`slack:U…`).
        decision: Decision,
        /// SHA-256 (hex) of the raw signed request it came in.
        request_digest: String,
    },
    /// An approved write was not applied: the target changed, the grant expired, or it was reused.
    WriteRefused {
        /// Run id.
        run_id: String,
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// Why.
        reason: String,
    },
    /// A write's verification finished.
    Verified {
        /// Run id.
        run_id: String,
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// What was observed.
        verification: Verification,
    },
    /// A write whose verification failed was rolled back.
    RolledBack {
        /// Run id.
        run_id: String,
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// What happened.
        rollback: RollbackRecord,
    },
    /// The run parked: it waits for a decision on a write, or its process is stopping.
    RunParked {
        /// Run id.
        run_id: String,
        /// Why.
        reason: ParkReason,
        /// The pending approval's id, when it waits for one.
        approval: Option<String>,
    },
    /// A parked run went on.
    RunResumed {
        /// Run id.
        run_id: String,
        /// The approval it waited for, if any.
        approval: Option<String>,
    },
    /// The run ended.
    RunFinished {
        /// Run id.
        run_id: String,
        /// How it ended.
        outcome: Outcome,
        /// Model calls made.
        steps: usize,
        /// Tokens used.
        usage: Usage,
    },
}

/// Receives every [`Event`] of a run, in order. Must be quick; hand heavy work to a channel.
pub trait Observer: Send + Sync {
    /// Called for each event.
    fn on_event(&self, event: &Event);
}

impl<T: Observer + ?Sized> Observer for &T {
    fn on_event(&self, event: &Event) {
        (**self).on_event(event);
    }
}

impl<T: Observer + ?Sized> Observer for Box<T> {
    fn on_event(&self, event: &Event) {
        (**self).on_event(event);
    }
}

impl<T: Observer + ?Sized> Observer for Arc<T> {
    fn on_event(&self, event: &Event) {
        (**self).on_event(event);
    }
}

/// An observer made from a closure.
pub struct FnObserver<F>(pub F);

impl<F: Fn(&Event) + Send + Sync> Observer for FnObserver<F> {
    fn on_event(&self, event: &Event) {
        (self.0)(event);
    }
}

/// Forwards events to `tracing` at debug level (info for approvals and the end of a run).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingObserver;

impl Observer for TracingObserver {
    fn on_event(&self, event: &Event) {
        match event {
            Event::ApprovalDecided { .. }
            | Event::DecisionReceived { .. }
            | Event::RunParked { .. }
            | Event::RunResumed { .. }
            | Event::RunFinished { .. }
            | Event::RolledBack { .. } => {
                tracing::info!(event = ?event, "sre-agent");
            }
            _ => tracing::debug!(event = ?event, "sre-agent"),
        }
    }
}
