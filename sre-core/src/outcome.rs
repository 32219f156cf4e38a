//! How a run ended ([`Outcome`]) and what happened to each write ([`ActionStatus`],
//! [`RollbackRecord`]): the facts events and reports share.

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The model gave a final answer.
    Completed,
    /// `max_steps` model calls were made without a final answer.
    MaxSteps,
    /// The token budget was exceeded.
    TokenBudget,
    /// The deadline passed.
    Deadline,
    /// The model kept repeating an identical call.
    RepeatedCalls,
    /// The provider failed; the report holds what was done until then.
    ProviderError {
        /// [`LlmError::kind`](crate::LlmError::kind).
        kind: String,
        /// The error message.
        message: String,
    },
    /// The run parked: for a human's decision on a write (with the approval's id), or because the
    /// process was stopping. [`Agent::resume`](crate::Agent::resume) goes on with it.
    Parked {
        /// The pending approval's id, when it waits for one.
        approval: Option<String>,
    },
}

impl Outcome {
    /// True for [`Outcome::Completed`].
    pub fn is_completed(&self) -> bool {
        matches!(self, Self::Completed)
    }
}

/// What happened to one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Applied (see `verification` and `rolled_back`).
    Applied,
    /// The policy denied it; nothing was called.
    Denied,
    /// Approved but not applied: the target changed, the approval expired or was reused.
    Refused,
    /// The preview or the apply failed.
    Failed,
    /// Not started because the deadline had passed.
    Skipped,
}

/// A rollback made after a failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRecord {
    /// True when the rollback succeeded.
    pub ok: bool,
    /// The tool's result or error.
    pub detail: String,
}

/// Why a run parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// A write waits for a human's decision.
    Approval,
    /// The process was asked to stop; the run goes on where it left off.
    Shutdown,
}
