//! [`RunStore`]: where `serve` keeps its incidents and parked runs, so that a decision that comes
//! minutes or hours later — to this process, after a restart, or to another replica — resumes
//! the run exactly once.
//!
//! One record per incident key. Its life: [`open`](RunStore::open) (running, owned by the
//! replica that runs it) → [`park`](RunStore::park) (a parked run waits for a decision or for a
//! replica to go on after a shutdown) → [`decide`](RunStore::decide) (a human's answer, recorded
//! once) → [`claim`](RunStore::claim) (one replica takes it back: running again) →
//! [`close`](RunStore::close) (done; kept for the cooldown so the same incident is not handled
//! twice). Every transition is a compare-and-swap: two replicas, or two approvers, never both win.
//!
//! Two stores: [`SqliteStore`](super::SqliteStore) (one process, `--store sqlite:PATH`) and
//! [`KubeStore`](super::KubeStore) (ConfigMaps in the agent's own namespace, shared by every
//! replica, `--store kubernetes`).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sre_core::{Answer, ImageChange, ParkReason, ParkedRun, PendingApproval, Risk, Target};

/// What started an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The watcher over pods and deployments.
    Watcher,
    /// An Alertmanager webhook.
    Alertmanager,
    /// The sweep of Trivy Operator VulnerabilityReports.
    Trivy,
}

impl Trigger {
    /// The name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Watcher => "watcher",
            Self::Alertmanager => "alertmanager",
            Self::Trivy => "trivy",
        }
    }
}

/// One problem with one workload, as a trigger saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The de-duplication key: one incident, one run at a time (e.g.
    /// `shop/web/health`, `shop/web/vulnerabilities`).
    pub key: String,
    /// What saw it.
    pub trigger: Trigger,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload (a deployment's name).
    pub workload: String,
    /// What was seen, one line; becomes the run's task.
    pub summary: String,
}

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// A replica runs it.
    Running,
    /// Its run is parked.
    Parked,
    /// Its run finished.
    Closed,
}

/// One stored incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// The incident.
    pub incident: Incident,
    /// Where it is.
    pub state: IncidentState,
    /// The replica that opened, parked, claimed or closed it last.
    pub owner: String,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// The parked run (state `Parked`).
    pub run: Option<ParkedRun>,
    /// The decision on the parked run's approval, once made.
    pub answer: Option<Answer>,
    /// How the run ended (state `Closed`), one line.
    pub outcome: Option<String>,
}

/// The state of an approval, as the approvals API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a decision.
    Pending,
    /// Approved; the run resumes.
    Approved,
    /// Rejected; the run resumes without the write.
    Rejected,
    /// Nobody decided in time; the write is denied.
    Expired,
}

/// One approval as the approvals API, the CLI and chat channels show it. Every string in it was
/// redacted by the gate before the run parked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    /// The approval's id.
    pub id: String,
    /// The run.
    pub run_id: String,
    /// The incident's key.
    pub incident: String,
    /// What started it.
    pub trigger: Trigger,
    /// The write tool.
    pub tool: String,
    /// Its arguments.
    pub arguments: Value,
    /// One line: what changes.
    pub summary: String,
    /// The server-side dry-run diff.
    pub diff: String,
    /// The tool's risk estimate.
    pub risk: Risk,
    /// A warning the approver must read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The object the write changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Every container's image before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<ImageChange>>,
    /// Why the write is proposed: the scans of a CVE patch, the crash behind a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Box<sre_core::evidence::Evidence>>,
    /// The action fingerprint a decision approves.
    pub action: String,
    /// When it was asked (RFC 3339).
    pub requested_at: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Its state.
    pub state: ApprovalState,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was decided (milliseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<u64>,
}

impl ApprovalView {
    /// The view of `record`'s pending approval at `now_ms`, when it has one.
    pub fn of(record: &IncidentRecord, now_ms: u64) -> Option<Self> {
        let run = record.run.as_ref()?;
        let pending: &PendingApproval = run.approval.as_ref()?;
        let plan = &pending.request.preview;
        let (state, decided_by, reason, decided_at_ms) = match &record.answer {
            Some(answer) => match &answer.decision {
                sre_core::Decision::Approved { by } => (
                    ApprovalState::Approved,
                    Some(by.clone()),
                    None,
                    Some(answer.decided_at_ms),
                ),
                sre_core::Decision::Denied { by, reason } => (
                    ApprovalState::Rejected,
                    Some(by.clone()),
                    Some(reason.clone()),
                    Some(answer.decided_at_ms),
                ),
            },
            None if pending.expired_at(now_ms) => (ApprovalState::Expired, None, None, None),
            None => (ApprovalState::Pending, None, None, None),
        };
        Some(Self {
            id: pending.id.clone(),
            run_id: run.run_id.clone(),
            incident: record.incident.key.clone(),
            trigger: record.incident.trigger,
            tool: pending.request.tool.clone(),
            arguments: pending.request.arguments.clone(),
            summary: plan.summary.clone(),
            diff: plan.diff.clone(),
            risk: plan.risk,
            warning: plan.warning.clone(),
            target: plan.target.clone(),
            images: plan.images.clone(),
            evidence: plan.evidence.clone(),
            action: pending.action.clone(),
            requested_at: pending.requested_at.clone(),
            expires_at: pending.expires_at.clone(),
            state,
            decided_by,
            reason,
            decided_at_ms,
        })
    }
}

/// A parked run taken back by [`RunStore::claim`]: resume it with
/// [`Agent::resume`](sre_core::Agent::resume).
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The incident.
    pub incident: Incident,
    /// The run.
    pub run: ParkedRun,
    /// The decision, when one was made (none: parked by a shutdown, or the approval expired).
    pub answer: Option<Answer>,
}

/// How long an approval asked at `requested_at` (RFC 3339) had waited at `at_ms` (milliseconds
/// since the Unix epoch); zero when the time cannot be read or lies ahead.
pub fn waited(requested_at: &str, at_ms: u64) -> Duration {
    humantime::parse_rfc3339_weak(requested_at)
        .ok()
        .and_then(|asked| asked.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|asked| u64::try_from(asked.as_millis()).ok())
        .map_or(Duration::ZERO, |asked| {
            Duration::from_millis(at_ms.saturating_sub(asked))
        })
}

/// True when a parked record is ready to go on at `now_ms`: decided, expired undecided, or
/// parked by a shutdown.
pub fn ready(record: &IncidentRecord, now_ms: u64) -> bool {
    if record.state != IncidentState::Parked {
        return false;
    }
    let Some(run) = &record.run else { return false };
    match (&run.approval, run.reason) {
        (_, ParkReason::Shutdown) | (None, _) => true,
        (Some(pending), ParkReason::Approval) => {
            record.answer.is_some() || pending.expired_at(now_ms)
        }
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing database or API failed.
    #[error("run store: {0}")]
    Backend(String),
    /// A stored record could not be read back.
    #[error("run store: record {key:?} is corrupt: {message}")]
    Corrupt {
        /// The incident key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Another replica changed the record first; nothing was written.
    #[error("run store: record {0:?} was changed by another replica; nothing was written")]
    Conflict(String),
    /// No record with this key.
    #[error("run store: no incident {0:?}")]
    NotFound(String),
}

/// Why a decision was not recorded. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecideError {
    /// No pending approval has this id.
    #[error("no approval {0:?}")]
    NotFound(String),
    /// It was decided already (the view says how).
    #[error("approval {} was already decided ({:?})", .0.id, .0.state)]
    AlreadyDecided(Box<ApprovalView>),
    /// It expired before the decision came.
    #[error("approval {} expired at {}", .0.id, .0.expires_at)]
    Expired(Box<ApprovalView>),
    /// The decision names another action than the one waiting (the target changed and the run
    /// asked again, or the approver saw another plan).
    #[error("approval {id} is for action {action}, not {named}")]
    OtherAction {
        /// The approval.
        id: String,
        /// The action it waits for.
        action: String,
        /// The action the decision named.
        named: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where incidents and parked runs live. Implementations make every transition atomic.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Opens `incident` as running for `owner`, unless a record with its key is running or
    /// parked, or was closed less than `cooldown` before `now_ms`. True when this call opened it.
    async fn open(
        &self,
        incident: &Incident,
        owner: &str,
        now_ms: u64,
        cooldown: Duration,
    ) -> Result<bool, StoreError>;

    /// Parks `run` under the incident `key` (state `Parked`, no answer yet).
    async fn park(&self, key: &str, owner: &str, run: &ParkedRun) -> Result<(), StoreError>;

    /// Closes the incident `key`: its run ended with `outcome`.
    async fn close(&self, key: &str, owner: &str, outcome: &str) -> Result<(), StoreError>;

    /// Drops every running record not owned by `owner`: their replica stopped mid-run without
    /// parking (it crashed), so a trigger may open them again. Returns their keys. A new leader
    /// calls it once it holds the lease.
    async fn release(&self, owner: &str) -> Result<Vec<String>, StoreError>;

    /// Every parked run's approval, pending or decided, at `now_ms`.
    async fn approvals(&self, now_ms: u64) -> Result<Vec<ApprovalView>, StoreError>;

    /// Records `answer` on the pending approval `id`, once. When `action` is given it must be
    /// the action the approval waits for. An approval past its expiry at `answer.decided_at_ms`
    /// cannot be decided.
    async fn decide(
        &self,
        id: &str,
        action: Option<&str>,
        answer: &Answer,
    ) -> Result<ApprovalView, DecideError>;

    /// Takes one parked run that is [`ready`] at `now_ms` for `owner` (state back to running);
    /// no other caller gets the same one.
    async fn claim(&self, owner: &str, now_ms: u64) -> Result<Option<Claimed>, StoreError>;

    /// The record of `key`.
    async fn get(&self, key: &str) -> Result<Option<IncidentRecord>, StoreError>;
}
