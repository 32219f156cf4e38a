//! Approval channels: Slack, Microsoft Teams — a chat message that asks "Patch now? [Yes/No]"
//! about a parked approval, and an endpoint that takes the click.
//!
//! A channel only asks and shows: its endpoint verifies who clicked (a signed request, an
//! allow-list) and records that human's decision with [`decide`] in the [`RunStore`], exactly as
//! the approvals API does. The leader then resumes the run and the gate re-plans, authorizes and
//! applies — or asks again when the target changed. A channel never applies anything and never
//! reaches the gate by another path. Several channels at once: every one asks, the first valid
//! decision wins (the store records one decision), and every channel's message shows how it ended.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sre_core::park::now_unix_ms;
use sre_core::{Answer, Decision, Event, Observer, PendingApproval};
use tokio::sync::Notify;

use super::metrics::Metrics;
use super::{ApprovalView, DecideError, Incident, RunStore};

/// A parked approval to ask about.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// What was seen (the evidence), and where.
    pub incident: Incident,
    /// The write waiting: tool, arguments, the redacted plan (summary, diff, target, images,
    /// risk, warning), its action fingerprint and expiry.
    pub approval: PendingApproval,
}

/// How an asked approval ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Ending {
    /// Approved, applied, and verified (or with no verification to run).
    Applied {
        /// Who approved.
        by: String,
    },
    /// Approved and applied, but verification failed: rolled back (or the rollback failed).
    RolledBack {
        /// Who approved.
        by: String,
        /// The rollback's detail.
        detail: String,
    },
    /// Approved, but not applied: the gate refused (e.g. the target changed at apply time).
    Refused {
        /// Who approved.
        by: String,
        /// Why.
        reason: String,
    },
    /// The target changed while the approver decided: this approval is void and a new one asks.
    AskedAgain {
        /// The new approval's id.
        approval: String,
    },
    /// Rejected, or denied by the rules in force at resume.
    Denied {
        /// Who denied.
        by: String,
        /// Why.
        reason: String,
    },
    /// Nobody decided in time.
    Expired,
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Applied { by } => write!(f, "approved by {by}: applied and verified"),
            Self::RolledBack { by, detail } => {
                write!(
                    f,
                    "approved by {by}: applied, verification failed, rolled back ({detail})"
                )
            }
            Self::Refused { by, reason } => {
                write!(f, "approved by {by}, but not applied: {reason}")
            }
            Self::AskedAgain { approval } => write!(
                f,
                "the target changed before it was applied: this approval is void; asked again as {approval}"
            ),
            Self::Denied { by, reason } => write!(f, "denied by {by}: {reason}"),
            Self::Expired => f.write_str("expired: nobody decided in time; nothing was applied"),
        }
    }
}

/// An asked approval that ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The approval asked about.
    pub approval: PendingApproval,
    /// Its incident.
    pub incident: Incident,
    /// How it ended.
    pub ending: Ending,
}

/// Why a channel could not ask or show. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{channel}: {message}")]
pub struct ChannelError {
    /// `slack`, `teams`, …
    pub channel: &'static str,
    /// What went wrong, with the service's own error (e.g. `channel_not_found`).
    pub message: String,
}

/// A chat that asks humans about parked approvals.
#[async_trait]
pub trait Channel: Send + Sync {
    /// `slack`, `teams`, … (used in `by`, audit records and metrics).
    fn name(&self) -> &'static str;

    /// Posts the question: the evidence, the diff, the target, the expiry, Approve / Reject
    /// buttons carrying only the approval's id.
    async fn ask(&self, ask: &Ask) -> Result<(), ChannelError>;

    /// Shows how an approval it asked about ended (updates its message).
    async fn settle(&self, settled: &Settled) -> Result<(), ChannelError>;
}

/// Every configured channel, asked and told in the background: a slow or failing chat never
/// holds a run, and every failure is logged.
#[derive(Clone, Default)]
pub struct Channels {
    channels: Vec<Arc<dyn Channel>>,
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.channels.iter().map(|c| c.name()))
            .finish()
    }
}

impl Channels {
    /// These channels.
    pub fn new(channels: Vec<Arc<dyn Channel>>) -> Self {
        Self { channels }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Asks every channel (in the background).
    pub fn ask(&self, ask: Ask) {
        let ask = Arc::new(ask);
        for channel in &self.channels {
            let (channel, ask) = (Arc::clone(channel), Arc::clone(&ask));
            tokio::spawn(async move {
                if let Err(e) = channel.ask(&ask).await {
                    tracing::error!(error = %e, approval = %ask.approval.id, "could not ask for approval");
                }
            });
        }
    }

    /// Tells every channel how an approval ended (in the background).
    pub fn settle(&self, settled: Settled) {
        let settled = Arc::new(settled);
        for channel in &self.channels {
            let (channel, settled) = (Arc::clone(channel), Arc::clone(&settled));
            tokio::spawn(async move {
                if let Err(e) = channel.settle(&settled).await {
                    tracing::error!(error = %e, approval = %settled.approval.id, "could not show how the approval ended");
                }
            });
        }
    }
}

/// A decision made in a chat, once its request was verified.
#[derive(Debug, Clone)]
pub struct ChatDecision<'a> {
    /// The channel (`slack`, `teams`).
    pub channel: &'static str,
    /// The approval id the button carried.
    pub approval: &'a str,
    /// Approve (true) or reject.
    pub approve: bool,
    /// Who clicked: the chat's own user id (`U…`, an AAD object id), checked against the
    /// channel's allow-list.
    pub user: &'a str,
    /// SHA-256 (hex) of the raw signed request, for the audit record.
    pub request_digest: String,
}

/// Where a chat endpoint records decisions: the same store, signal, metrics and audit as the
/// approvals API.
#[derive(Clone)]
pub struct DecisionSink {
    /// The run store.
    pub store: Arc<dyn RunStore>,
    /// Signalled after a decision, so the leader's loop claims the run at once.
    pub decided: Arc<Notify>,
    /// Approvals by decision and latency.
    pub metrics: Arc<Metrics>,
    /// The audit log and sinks: each decision is one [`Event::DecisionReceived`].
    pub audit: Vec<Arc<dyn Observer>>,
}

impl fmt::Debug for DecisionSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionSink")
            .field("audit", &self.audit.len())
            .finish_non_exhaustive()
    }
}

/// Records a verified chat user's decision on a pending approval, exactly once, as the
/// approvals API does: `by` is `{channel}:{user}`. Audited with the request's digest.
///
/// # Errors
/// [`DecideError`]: unknown, already decided, expired, or the store failed; nothing changed.
pub async fn decide(
    sink: &DecisionSink,
    d: &ChatDecision<'_>,
) -> Result<ApprovalView, DecideError> {
    let by = format!("{}:{}", d.channel, d.user);
    let decision = if d.approve {
        Decision::approve(by.clone())
    } else {
        Decision::deny(by.clone(), format!("rejected in {}", d.channel))
    };
    let answer = Answer {
        decision: decision.clone(),
        decided_at_ms: now_unix_ms(),
    };
    let view = sink.store.decide(d.approval, None, &answer).await?;
    sink.decided.notify_waiters();
    sink.decided.notify_one();
    let latency = super::store::waited(&view.requested_at, answer.decided_at_ms);
    sink.metrics
        .approval_decided(if d.approve { "approve" } else { "reject" }, latency);
    let event = Event::DecisionReceived {
        run_id: view.run_id.clone(),
        approval: view.id.clone(),
        channel: d.channel.to_owned(),
        action: view.action.clone(),
        decision,
        request_digest: d.request_digest.clone(),
    };
    for o in &sink.audit {
        o.on_event(&event);
    }
    tracing::info!(approval = %view.id, channel = d.channel, by = %by, approve = d.approve, "decision received");
    Ok(view)
}
