//! The [`RunReport`] of one agent run and the [`ActionRecord`] of each write in it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::approval::Decision;
use crate::audit::AuditSummary;
use crate::message::{Message, Usage};
use crate::outcome::{ActionStatus, Outcome, RollbackRecord};
use crate::plan::{Preview, Verification};

/// One write of a run with its approval record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The model's call id.
    pub call_id: String,
    /// Tool name.
    pub tool: String,
    /// Validated arguments.
    pub arguments: Value,
    /// The preview shown to the approver.
    pub preview: Option<Preview>,
    /// The decision.
    pub decision: Option<Decision>,
    /// When it was decided (RFC 3339).
    pub decided_at: Option<String>,
    /// What happened.
    pub status: ActionStatus,
    /// The redacted result or error.
    pub result: String,
    /// The check after applying.
    pub verification: Option<Verification>,
    /// The automatic rollback after a failed verification.
    pub rolled_back: Option<RollbackRecord>,
}

/// Everything about one run; serializes to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Run id.
    pub run_id: String,
    /// Provider name and model.
    pub provider: String,
    /// The task.
    pub task: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The model's final answer (its findings and what it did), when it gave one.
    pub answer: Option<String>,
    /// Every write, in order.
    pub actions: Vec<ActionRecord>,
    /// Tool calls made (including rejected ones).
    pub tool_calls: usize,
    /// Model calls made.
    pub steps: usize,
    /// Tokens used.
    pub usage: Usage,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// The conversation as the model saw it (tool results redacted).
    pub transcript: Vec<Message>,
    /// The audit log's anchor after the run (records, head hash, keyed), when the agent was
    /// built with [`AgentBuilder::audit_log`](crate::AgentBuilder::audit_log): keep the head elsewhere to detect truncation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSummary>,
}

impl RunReport {
    /// True when some write was denied by the policy.
    pub fn any_denied(&self) -> bool {
        self.actions
            .iter()
            .any(|a| a.status == ActionStatus::Denied)
    }

    /// The writes that were applied and not rolled back.
    pub fn applied(&self) -> impl Iterator<Item = &ActionRecord> {
        self.actions
            .iter()
            .filter(|a| a.status == ActionStatus::Applied && a.rolled_back.is_none())
    }
}
