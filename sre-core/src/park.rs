//! Parked runs: a run whose next write needs a human stops, is stored, and resumes when the
//! decision arrives — in the same process or another replica, minutes or hours later.
//!
//! [`Agent::start`](crate::Agent::start) runs until a final answer, a budget, a [`Stop`], or a
//! write the policy [parks](crate::approval::Ruling::Park). A parked run is a [`ParkedRun`]:
//! the transcript, the turn in progress, budgets used, the actions so far and the
//! [`PendingApproval`] (the plan as previewed, its action fingerprint and its expiry). It is plain
//! serde data, so any store can keep it. [`Agent::resume`](crate::Agent::resume) takes it back
//! with the [`Answer`] and goes on. On resume the gate re-plans the write: a changed target asks
//! again (the old decision is void), an answer that came after the expiry denies, and only an
//! approval of exactly the re-planned action applies it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::approval::{ApprovalRequest, Decision};
use crate::message::{Message, ToolCall, Usage};
pub use crate::outcome::ParkReason;
use crate::report::ActionRecord;

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// A write waiting for a human's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The approval's id: URL-safe, unique per run, call and action.
    pub id: String,
    /// What the approver sees: tool, arguments, the redacted plan, the incident.
    pub request: ApprovalRequest,
    /// The action fingerprint a decision approves ([`ApprovalRequest::action_fingerprint`]).
    pub action: String,
    /// When it was asked (RFC 3339).
    pub requested_at: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

impl PendingApproval {
    /// The id for an approval of `action` asked by `call_id` in `run_id`: `apv-` and 24 hex digits.
    pub fn id_for(run_id: &str, call_id: &str, action: &str) -> String {
        let digest = Sha256::digest(format!("{run_id}\n{call_id}\n{action}").as_bytes());
        format!("apv-{}", &hex::encode(digest)[..24])
    }

    /// True when `at_ms` is past the expiry.
    pub fn expired_at(&self, at_ms: u64) -> bool {
        at_ms > self.expires_at_ms
    }
}

/// A human's decision on a [`PendingApproval`], with when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Approved or denied, and by whom.
    pub decision: Decision,
    /// When it was made, in milliseconds since the Unix epoch.
    pub decided_at_ms: u64,
}

impl Answer {
    /// `decision`, made now.
    pub fn now(decision: Decision) -> Self {
        Self {
            decision,
            decided_at_ms: now_unix_ms(),
        }
    }
}

/// The tool calls of the model turn a run parked in, and what is done of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedTurn {
    /// The turn's calls, in the model's order.
    pub calls: Vec<ToolCall>,
    /// The result of each call that has one.
    pub results: Vec<Option<Message>>,
    /// Indexes into `calls` of the writes not done yet; the first is the one waiting.
    pub writes: Vec<usize>,
}

/// A run stopped at a safe point, to be resumed by [`Agent::resume`](crate::Agent::resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedRun {
    /// The run's id, kept across resumes.
    pub run_id: String,
    /// The task.
    pub task: String,
    /// Provider name and model when it parked.
    pub provider: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// Why it parked.
    pub reason: ParkReason,
    /// When it parked (RFC 3339).
    pub parked_at: String,
    /// Model calls made.
    pub steps: usize,
    /// Tool calls made.
    pub tool_calls: usize,
    /// Tokens used.
    pub usage: Usage,
    /// Writes applied.
    pub writes_applied: usize,
    /// Time spent running (not waiting), in milliseconds; the deadline counts only this.
    pub active_ms: u64,
    /// The conversation so far.
    pub transcript: Vec<Message>,
    /// The writes so far.
    pub actions: Vec<ActionRecord>,
    /// Calls seen since the last applied write (for repeat detection).
    pub seen: BTreeMap<String, u32>,
    /// The turn in progress, when it parked in one.
    pub turn: Option<ParkedTurn>,
    /// The write waiting for a decision.
    pub approval: Option<PendingApproval>,
}

#[derive(Default)]
struct StopInner {
    stopped: AtomicBool,
    notify: Notify,
}

/// A signal to park runs at their next safe point (between model calls; a write in progress
/// always finishes). Cheap to clone; clones share the signal.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<StopInner>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl Stop {
    /// A signal not given yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives the signal: every run holding a clone parks at its next safe point.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// True once the signal is given.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Waits for the signal.
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}
