//! The [`Gate`]: the one place that turns an approved write plan into an applied, verified (or
//! rolled back), redacted action. The agent loop, the CLI, the Python bindings (`SreToolkit`,
//! `create_sre_agent`, `sre_agent.run`) and LangGraph interrupts all go through it; nothing else
//! can apply a write, because nothing else can mint the [`Grant`] a write tool demands.
//!
//! The steps, each its own method so that callers can report progress between them:
//! 1. [`Gate::plan`] previews the write (a side-effect-free dry run), redacts what a human sees,
//!    and keeps the plan under its action fingerprint until it expires.
//! 2. Someone decides — an [`ApprovalPolicy`](crate::ApprovalPolicy), a human at a prompt, a chat
//!    button, a LangGraph interrupt. A denial [`withdraws`](Gate::withdraw) the plan.
//! 3. [`Gate::authorize`] redeems the decision for exactly the planned action: same tool, same
//!    arguments, unexpired, and the target (and everything the plan read) unchanged. Only this
//!    mints a grant.
//! 4. [`Gate::execute`] applies the approved plan (the tool sends the plan's payload, nothing
//!    re-planned), verifies it, rolls it back from the plan's own undo when verification fails, and
//!    redacts every result.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use serde_json::json;
//! use sre_core::testing::ScaleTool;
//! use sre_core::{Gate, Redactor, ToolContext};
//!
//! let gate = Gate::new(Redactor::default(), std::time::Duration::from_secs(300));
//! let scale = ScaleTool::default();
//! let args = json!({"namespace": "shop", "deployment": "web", "replicas": 3});
//! let planned = gate.plan(&scale, &args, &ToolContext::default()).await.unwrap();
//! // … a human approves `planned.plan` …
//! let grant = gate.authorize(&scale, &args, &planned.action, "alice", "c1").await.unwrap();
//! let applied = gate.execute(&scale, &args, grant, "run", "c1", |_| {}).await.unwrap();
//! assert!(applied.verification.unwrap().passed);
//! assert_eq!(scale.state().replicas, 3);
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt as _;
use serde_json::Value;
use tokio::time::Instant;

use crate::approval::Grant;
use crate::evidence::Evidence;
use crate::outcome::RollbackRecord;
use crate::plan::{Preview, Verification};
use crate::redact::Redactor;
use crate::tool::{Tool, ToolContext, ToolError, ToolOutput};

/// A previewed write plan waiting for a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The plan, with what a human sees (summary, diff, warning) redacted. Its payload is the
    /// tool's and is applied as it is.
    pub plan: Preview,
    /// The action fingerprint a decision must name ([`Preview::action_fingerprint`]).
    pub action: String,
    /// How long the plan stays valid.
    pub expires_in: Duration,
    /// This plan among identical ones (the same action planned by two callers at once): a
    /// [withdrawal](Gate::withdraw) drops only its own.
    pub ticket: u64,
}

/// Why the gate did not apply a write. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// No plan with this action fingerprint is waiting (never planned, already applied,
    /// withdrawn, or expired and pruned).
    #[error(
        "no planned write has the action fingerprint {0} (never planned, already applied, withdrawn or expired); nothing was applied: plan it again"
    )]
    NotPlanned(String),
    /// The plan is for another tool or other arguments.
    #[error("the plan {action} was made for {tool} with other arguments; nothing was applied")]
    OtherAction {
        /// The action fingerprint named.
        action: String,
        /// The tool the plan was made for.
        tool: String,
    },
    /// The decision came after the plan expired.
    #[error(
        "the approval expired: it came after the plan's {} were up; nothing was applied",
        humantime::format_duration(*ttl)
    )]
    Expired {
        /// How long a plan is valid.
        ttl: Duration,
    },
    /// The target changed since the plan, or cannot be re-read.
    #[error("{0}")]
    Refused(String),
}

struct Pending {
    ticket: u64,
    tool: String,
    args: Value,
    plan: Preview,
    expires: Instant,
}

struct Inner {
    redactor: Redactor,
    ttl_ms: AtomicU64,
    /// The plans waiting for a decision, by action fingerprint; several callers may have planned
    /// the same action, each with its own ticket.
    pending: Mutex<HashMap<String, Vec<Pending>>>,
    tickets: AtomicU64,
}

/// The one safety gate of every write path. Cheap to clone; clones share their plans.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("ttl", &self.ttl())
            .field("pending", &self.pending().len())
            .finish_non_exhaustive()
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new(Redactor::default(), Duration::from_secs(300))
    }
}

/// What [`Gate::execute`] reports while it works, for progress and events.
#[derive(Debug)]
#[non_exhaustive]
pub enum Step<'a> {
    /// The tool ran: its redacted result or error.
    Applied(&'a Result<ToolOutput, ToolError>),
    /// The change was checked (detail redacted).
    Verified(&'a Verification),
    /// The change was undone after a failed verification (detail redacted).
    RolledBack(&'a RollbackRecord),
}

/// An applied write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The tool's result, redacted.
    pub output: ToolOutput,
    /// The check after applying, if the tool verifies.
    pub verification: Option<Verification>,
    /// The automatic rollback after a failed verification.
    pub rollback: Option<RollbackRecord>,
}

/// Runs a tool future, turning a panic into a tool error.
pub(crate) async fn guarded<T>(
    fut: impl std::future::Future<Output = Result<T, ToolError>>,
) -> Result<T, ToolError> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(_) => Err(ToolError::Failed("the tool panicked".into())),
    }
}

impl Gate {
    /// A gate that redacts with `redactor` and keeps plans valid for `ttl`.
    pub fn new(redactor: Redactor, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                redactor,
                ttl_ms: AtomicU64::new(millis(ttl)),
                pending: Mutex::new(HashMap::new()),
                tickets: AtomicU64::new(0),
            }),
        }
    }

    /// The redactor every result, plan and detail passes.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// How long a plan waits for its decision.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.inner.ttl_ms.load(Ordering::Relaxed))
    }

    /// Changes how long new plans wait for their decision.
    pub fn set_ttl(&self, ttl: Duration) {
        self.inner.ttl_ms.store(millis(ttl), Ordering::Relaxed);
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<String, Vec<Pending>>> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn redact(&self, text: &str) -> String {
        self.inner.redactor.redact(text).into_owned()
    }

    /// Evidence quotes logs and events: every string in it is redacted like a tool result.
    fn redact_evidence(&self, mut evidence: Box<Evidence>) -> Box<Evidence> {
        // Every crash it carries: the target's and, for a rollback, the revision it returns to.
        for c in [&mut evidence.crash, &mut evidence.target_crash]
            .into_iter()
            .flatten()
        {
            // As one text: a secret spread over lines (a PEM key in a log) is found whole.
            let log = self.redact(&c.last_log_lines.join("\n"));
            c.last_log_lines = log.lines().map(str::to_owned).collect();
            for s in c.events.iter_mut().chain([
                &mut c.reason,
                &mut c.pod,
                &mut c.container,
                &mut c.image,
            ]) {
                *s = self.redact(s);
            }
        }
        for v in [&mut evidence.vulnerabilities, &mut evidence.target_scan]
            .into_iter()
            .flatten()
        {
            for scan in [&mut v.current, &mut v.candidate] {
                scan.image = self.redact(&scan.image);
            }
        }
        for u in &mut evidence.unchecked {
            *u = self.redact(u);
        }
        evidence
    }

    /// Previews `tool` with `args` (side-effect free) and keeps the plan for a decision.
    ///
    /// # Errors
    /// The tool's preview error (or a panic turned into one).
    pub async fn plan(
        &self,
        tool: &dyn Tool,
        args: &Value,
        ctx: &ToolContext,
    ) -> Result<Planned, ToolError> {
        let mut plan = guarded(tool.preview(args, ctx)).await?;
        plan.summary = self.redact(&plan.summary);
        plan.diff = self.redact(&plan.diff);
        plan.warning = plan.warning.map(|w| self.redact(&w));
        plan.evidence = plan.evidence.map(|e| self.redact_evidence(e));
        let name = tool.spec().name.clone();
        let action = plan.action_fingerprint(&name, args);
        let ttl = self.ttl();
        let now = Instant::now();
        let ticket = self.inner.tickets.fetch_add(1, Ordering::Relaxed);
        let mut pending = self.pending();
        pending.retain(|_, plans| {
            plans.retain(|p| p.expires > now);
            !plans.is_empty()
        });
        pending.entry(action.clone()).or_default().push(Pending {
            ticket,
            tool: name,
            args: args.clone(),
            plan: plan.clone(),
            expires: now + ttl,
        });
        Ok(Planned {
            plan,
            action,
            expires_in: ttl,
            ticket,
        })
    }

    /// Drops a plan that was denied (or abandoned); a later [`Gate::authorize`] for it fails. Only
    /// this plan: another caller's plan of the same action stays for its own decision (a decline
    /// in one MCP session or run cannot cancel what another approved).
    pub fn withdraw(&self, planned: &Planned) {
        let mut pending = self.pending();
        if let Some(plans) = pending.get_mut(&planned.action) {
            plans.retain(|p| p.ticket != planned.ticket);
            if plans.is_empty() {
                pending.remove(&planned.action);
            }
        }
    }

    /// Redeems a decision of `approved_by` for the planned `action` of `tool` with `args`: the
    /// plan must be waiting, unexpired, for this tool and these arguments, and the target (with
    /// everything the plan read) unchanged. The plan is used up either way, unless the call names
    /// another action than the plan (it stays for its own decision).
    ///
    /// # Errors
    /// [`GateError`] saying why nothing may be applied.
    pub async fn authorize(
        &self,
        tool: &dyn Tool,
        args: &Value,
        action: &str,
        approved_by: &str,
        call_id: &str,
    ) -> Result<Grant, GateError> {
        let name = tool.spec().name.clone();
        let pending = {
            let mut map = self.pending();
            let Some(plans) = map.get_mut(action).filter(|plans| !plans.is_empty()) else {
                return Err(GateError::NotPlanned(action.to_owned()));
            };
            if let Some(p) = plans.iter().find(|p| p.tool != name || p.args != *args) {
                return Err(GateError::OtherAction {
                    action: action.to_owned(),
                    tool: p.tool.clone(),
                });
            }
            // One decision redeems one plan: the oldest of identical ones.
            let taken = plans.remove(0);
            if plans.is_empty() {
                map.remove(action);
            }
            taken
        };
        let left = pending.expires.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(GateError::Expired { ttl: self.ttl() });
        }
        let grant = Grant::for_plan(&name, call_id, args, pending.plan, approved_by, left);
        // The target must still be what was planned.
        let current = guarded(tool.fingerprint(args, &ToolContext::default()))
            .await
            .map_err(|e| {
                GateError::Refused(self.redact(&format!(
                    "could not re-read the target: {e}; nothing was applied"
                )))
            })?;
        grant
            .redeem(&name, args, &current)
            .map_err(|e| GateError::Refused(self.redact(&e.to_string())))?;
        Ok(grant)
    }

    /// Applies the write `grant` authorizes — the tool sends the approved plan — then verifies it
    /// and, if verification fails, rolls it back from the plan's undo. Every result and detail is
    /// redacted; `observe` sees each step as it happens.
    ///
    /// # Errors
    /// The tool's error when applying failed (nothing to verify).
    pub async fn execute(
        &self,
        tool: &dyn Tool,
        args: &Value,
        grant: Grant,
        run_id: &str,
        call_id: &str,
        mut observe: impl FnMut(Step<'_>),
    ) -> Result<Applied, ToolError> {
        let ctx = ToolContext {
            run_id: run_id.to_owned(),
            call_id: call_id.to_owned(),
            grant: Some(grant),
        };
        let result = guarded(tool.call(args, &ctx)).await.map(|out| ToolOutput {
            content: self.redact(&out.content),
            data: out.data.map(|d| self.inner.redactor.redact_value(&d)),
        });
        let result = result.map_err(|e| redact_tool_error(&self.inner.redactor, e));
        observe(Step::Applied(&result));
        let output = result?;
        let verification = AssertUnwindSafe(tool.verify(args, &output, &ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Some(Verification::new(false, "the verification panicked")))
            .map(|mut v| {
                v.detail = self.redact(&v.detail);
                v
            });
        if let Some(v) = &verification {
            observe(Step::Verified(v));
        }
        let rollback = match &verification {
            Some(v) if !v.passed => {
                let record = match guarded(tool.rollback(args, &output, &ctx)).await {
                    Ok(out) => RollbackRecord {
                        ok: true,
                        detail: self.redact(&out.content),
                    },
                    Err(e) => RollbackRecord {
                        ok: false,
                        detail: self.redact(&e.to_string()),
                    },
                };
                observe(Step::RolledBack(&record));
                Some(record)
            }
            _ => None,
        };
        Ok(Applied {
            output,
            verification,
            rollback,
        })
    }

    /// [`Gate::authorize`] then [`Gate::execute`]: how a decision taken outside an agent (Python,
    /// a chat button, an interrupt) is applied.
    ///
    /// # Errors
    /// Why nothing was applied, as a [`ToolError`] (`Denied` for an expired or unknown plan or
    /// another action, `Conflict` for a changed target), or the tool's own error.
    pub async fn apply(
        &self,
        tool: &dyn Tool,
        args: &Value,
        action: &str,
        approved_by: &str,
        run_id: &str,
        call_id: &str,
    ) -> Result<Applied, ToolError> {
        let grant = self
            .authorize(tool, args, action, approved_by, call_id)
            .await
            .map_err(|e| match e {
                GateError::Refused(m) => ToolError::Conflict(m),
                GateError::NotPlanned(_) => ToolError::Conflict(e.to_string()),
                other => ToolError::Denied(other.to_string()),
            })?;
        self.execute(tool, args, grant, run_id, call_id, |_| {})
            .await
    }
}

/// `e` with its message redacted (errors quote logs, objects and provider bodies).
pub fn redact_tool_error(redactor: &Redactor, e: ToolError) -> ToolError {
    match e {
        ToolError::Failed(m) => ToolError::Failed(redactor.redact(&m).into_owned()),
        ToolError::Conflict(m) => ToolError::Conflict(redactor.redact(&m).into_owned()),
        ToolError::NotFound(m) => ToolError::NotFound(redactor.redact(&m).into_owned()),
        ToolError::Forbidden(m) => ToolError::Forbidden(redactor.redact(&m).into_owned()),
        ToolError::Refused(m) => ToolError::Refused(redactor.redact(&m).into_owned()),
        ToolError::Denied(m) => ToolError::Denied(redactor.redact(&m).into_owned()),
        ToolError::Timeout(m) => ToolError::Timeout(redactor.redact(&m).into_owned()),
        other => other,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use super::*;
    use crate::testing::ScaleTool;
    use serde_json::json;

    fn args(replicas: u32) -> Value {
        json!({"namespace": "shop", "deployment": "web", "replicas": replicas})
    }

    #[tokio::test]
    async fn a_plan_applies_once_and_only_as_planned() {
        let gate = Gate::default();
        let scale = ScaleTool::default();
        let planned = gate
            .plan(&scale, &args(3), &ToolContext::default())
            .await
            .unwrap();
        let e = gate
            .authorize(&scale, &args(0), &planned.action, "mallory", "c1")
            .await
            .unwrap_err();
        assert!(matches!(e, GateError::OtherAction { .. }), "{e}");
        let grant = gate
            .authorize(&scale, &args(3), &planned.action, "alice", "c1")
            .await
            .unwrap();
        let applied = gate
            .execute(&scale, &args(3), grant, "r", "c1", |_| {})
            .await
            .unwrap();
        assert!(applied.verification.unwrap().passed);
        assert_eq!(scale.state().replicas, 3);
        let e = gate
            .authorize(&scale, &args(3), &planned.action, "alice", "c1")
            .await
            .unwrap_err();
        assert!(matches!(e, GateError::NotPlanned(_)), "{e}");
    }

    #[tokio::test]
    async fn a_changed_target_or_an_expired_plan_applies_nothing() {
        let gate = Gate::default();
        let scale = ScaleTool::default();
        let planned = gate
            .plan(&scale, &args(3), &ToolContext::default())
            .await
            .unwrap();
        scale.bump();
        let e = gate
            .authorize(&scale, &args(3), &planned.action, "alice", "c1")
            .await
            .unwrap_err();
        assert!(matches!(e, GateError::Refused(_)), "{e}");
        let gate = Gate::new(Redactor::default(), Duration::ZERO);
        let planned = gate
            .plan(&scale, &args(3), &ToolContext::default())
            .await
            .unwrap();
        let e = gate
            .authorize(&scale, &args(3), &planned.action, "alice", "c1")
            .await
            .unwrap_err();
        assert!(
            matches!(e, GateError::Expired { .. } | GateError::NotPlanned(_)),
            "{e}"
        );
        assert_eq!(scale.state().writes, 0);
    }

    #[test]
    fn a_private_key_spread_over_log_lines_is_redacted_whole() {
        let gate = Gate::default();
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDtestonlykeymaterial";
        let lines: Vec<String> = [
            "loading key",
            "-----BEGIN PRIVATE KEY-----",
            body,
            body,
            "-----END PRIVATE KEY-----",
            "panic: bad key",
        ]
        .iter()
        .map(|l| (*l).to_owned())
        .collect();
        let crash = crate::evidence::CrashEvidence {
            pod: "web-1".into(),
            container: "web".into(),
            image: "web:2".into(),
            reason: "CrashLoopBackOff".into(),
            exit_code: Some(1),
            restarts: 3,
            failing_pods: 1,
            last_log_lines: lines,
            events: vec!["token=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB".into()],
        };
        // A rollback's evidence carries the crash of the revision it returns to as well.
        let mut target = crash.clone();
        target.last_log_lines =
            vec!["AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()];
        target.events = vec!["BackOff: password=hunter2hunter2 in xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx".into()];
        let evidence = Evidence {
            vulnerabilities: None,
            crash: Some(crash),
            target_crash: Some(target),
            target_scan: None,
            unchecked: vec!["the scan of repo:1 failed: 401 for token=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB".into()],
        };
        let out = gate.redact_evidence(Box::new(evidence));
        let json = serde_json::to_string(&out).unwrap_or_default();
        assert!(!json.contains("testonlykeymaterial"), "{json}");
        assert!(!json.contains("ghp_0123456789"), "{json}");
        assert!(!json.contains("wJalrXUtnFEMI"), "{json}");
        assert!(!json.contains("xoxb-123456789012"), "{json}");
        let crash = out.crash.unwrap_or_else(|| unreachable!());
        assert_eq!(
            crash.last_log_lines.first().map(String::as_str),
            Some("loading key")
        );
        assert_eq!(
            crash.last_log_lines.last().map(String::as_str),
            Some("panic: bad key")
        );
    }

    #[tokio::test]
    async fn a_withdrawal_drops_only_its_own_plan_of_an_action() {
        let gate = Gate::default();
        let scale = ScaleTool::default();
        let ctx = ToolContext::default();
        let mine = gate.plan(&scale, &args(3), &ctx).await.unwrap();
        let theirs = gate.plan(&scale, &args(3), &ctx).await.unwrap();
        assert_eq!(mine.action, theirs.action);
        assert_ne!(mine.ticket, theirs.ticket);
        // They decline; my approval still redeems my plan — once.
        gate.withdraw(&theirs);
        gate.authorize(&scale, &args(3), &mine.action, "alice", "c1")
            .await
            .unwrap();
        let again = gate
            .authorize(&scale, &args(3), &mine.action, "alice", "c2")
            .await
            .unwrap_err();
        assert!(matches!(again, GateError::NotPlanned(_)), "{again}");
    }

    #[tokio::test]
    async fn a_withdrawn_plan_cannot_be_authorized() {
        let gate = Gate::default();
        let scale = ScaleTool::default();
        let planned = gate
            .plan(&scale, &args(3), &ToolContext::default())
            .await
            .unwrap();
        gate.withdraw(&planned);
        assert!(
            gate.authorize(&scale, &args(3), &planned.action, "alice", "c1")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_failed_verification_rolls_back_from_the_plan() {
        let gate = Gate::default();
        let scale = ScaleTool::default().failing_verification();
        let planned = gate
            .plan(&scale, &args(3), &ToolContext::default())
            .await
            .unwrap();
        let mut steps = Vec::new();
        let grant = gate
            .authorize(&scale, &args(3), &planned.action, "alice", "c1")
            .await
            .unwrap();
        let applied = gate
            .execute(&scale, &args(3), grant, "r", "c1", |s| {
                steps.push(format!("{s:?}").split('(').next().unwrap().to_owned());
            })
            .await
            .unwrap();
        assert_eq!(steps, ["Applied", "Verified", "RolledBack"]);
        assert!(applied.rollback.unwrap().ok);
        assert_eq!(scale.state().replicas, 1);
    }
}
