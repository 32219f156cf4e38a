//! The approval gate: every write goes preview → [`ApprovalPolicy`] → [`Grant`] → apply.
//!
//! Deny by default: an agent without a policy is [`ReadOnly`]. A [`Grant`] is bound to the
//! fingerprint of the previewed target, can be redeemed once, and expires.

use std::fmt;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::canon::now_rfc3339;
use crate::evidence::CrashEvidence;
use crate::image::{ImageRef, normalize_prefix};
use crate::plan::{Preview, Risk};
use crate::text::escape_untrusted;

/// Everything an approver needs to decide on one write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The agent run.
    pub run_id: String,
    /// The write tool.
    pub tool: String,
    /// The model's id for the call.
    pub call_id: String,
    /// Validated arguments.
    pub arguments: Value,
    /// What would change, and the target's fingerprint.
    pub preview: Preview,
    /// The task that led here.
    pub incident: String,
    /// Writes already applied in this run.
    pub writes_so_far: usize,
    /// True when the tool verifies the change and rolls it back automatically if that fails.
    pub rollback_on_failure: bool,
}

impl ApprovalRequest {
    /// The namespace of the plan's target (never read from the arguments).
    pub fn namespace(&self) -> Option<&str> {
        self.preview.target.as_ref().map(|t| t.namespace.as_str())
    }

    /// The action fingerprint this request approves (see [`Preview::action_fingerprint`]).
    pub fn action_fingerprint(&self) -> String {
        self.preview.action_fingerprint(&self.tool, &self.arguments)
    }

    /// The request as a human reads it in a terminal or a chat message. Every untrusted string
    /// (arguments, names, images, the diff, the incident) has its control and invisible
    /// characters escaped, so it cannot rewrite what the approver sees.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let e = escape_untrusted;
        let mut out = String::new();
        if let Some(w) = &self.preview.warning {
            let _ = writeln!(out, "WARNING: {}", e(w));
        }
        let _ = writeln!(out, "approval needed: {}", e(&self.preview.summary));
        let _ = writeln!(
            out,
            "  tool:      {} (risk: {})",
            e(&self.tool),
            match self.preview.risk {
                Risk::Low => "low",
                Risk::Medium => "medium",
                Risk::High => "HIGH",
            }
        );
        let _ = writeln!(out, "  arguments: {}", e(&self.arguments.to_string()));
        match &self.preview.target {
            Some(t) => {
                let _ = writeln!(out, "  target:    {}", e(&t.to_string()));
            }
            None => {
                let _ = writeln!(out, "  target:    {}", e(&self.preview.fingerprint));
            }
        }
        for c in self.preview.changed_images() {
            let _ = writeln!(
                out,
                "  image:     container {}: {} -> {}",
                e(&c.container),
                e(c.before.as_deref().unwrap_or("(new container)")),
                e(&c.after)
            );
        }
        if let Some(evidence) = self.preview.evidence.as_ref().filter(|e| !e.is_empty()) {
            // Already escaped line by line.
            for line in evidence.render().lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if !self.incident.is_empty() {
            let _ = writeln!(out, "  incident:  {}", e(first_line(&self.incident)));
        }
        if !self.preview.diff.is_empty() {
            let _ = writeln!(out, "  diff:");
            for line in self.preview.diff.lines() {
                let _ = writeln!(out, "    {}", e(line));
            }
        }
        if self.rollback_on_failure {
            let _ = writeln!(
                out,
                "  if verification fails, the change is rolled back automatically"
            );
        }
        let _ = writeln!(out, "  action:    {}", self.action_fingerprint());
        out
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// An approver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision {
    /// Go ahead.
    Approved {
        /// Who approved: a person, a channel, or a policy.
        by: String,
    },
    /// Do not.
    Denied {
        /// Who denied.
        by: String,
        /// Why, shown to the model and in the report.
        reason: String,
    },
}

impl Decision {
    /// Approved by `by`.
    pub fn approve(by: impl Into<String>) -> Self {
        Self::Approved { by: by.into() }
    }

    /// Denied by `by` for `reason`.
    pub fn deny(by: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Denied {
            by: by.into(),
            reason: reason.into(),
        }
    }

    /// True when approved.
    pub fn is_approved(&self) -> bool {
        matches!(self, Self::Approved { .. })
    }

    /// Who decided.
    pub fn by(&self) -> &str {
        match self {
            Self::Approved { by } | Self::Denied { by, .. } => by,
        }
    }
}

/// What a policy rules on a write: decided now, or parked until a human decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ruling {
    /// Decided now.
    Decided(Decision),
    /// A human decides later: the run parks (see [`crate::park`]) and resumes with the answer.
    Park,
}

/// Decides whether a write may proceed.
#[async_trait]
pub trait ApprovalPolicy: Send + Sync {
    /// The decision for one request. A policy that cannot decide must deny.
    async fn decide(&self, request: &ApprovalRequest) -> Decision;

    /// The ruling for one request: [`Ruling::Park`] when a human must decide later. Default: the
    /// [`decide`](Self::decide) decision.
    async fn rule(&self, request: &ApprovalRequest) -> Ruling {
        Ruling::Decided(self.decide(request).await)
    }

    /// Checks again, without asking anyone, a write decided earlier — a parked run resuming
    /// hours later, maybe in a process started with stricter rules: the denial when the policy
    /// no longer allows it. Default: `None` (nothing to re-check).
    async fn recheck(&self, request: &ApprovalRequest) -> Option<Decision> {
        let _ = request;
        None
    }
}

/// A channel that asks someone (a person at a terminal, a chat, a callback) about a request
/// that passed a policy's rules.
#[async_trait]
pub trait Approver: Send + Sync {
    /// The answer. An approver that gets no answer must deny.
    async fn review(&self, request: &ApprovalRequest) -> Decision;

    /// The answer now, or [`Ruling::Park`] when it comes later. Default: the
    /// [`review`](Self::review) answer.
    async fn ask(&self, request: &ApprovalRequest) -> Ruling {
        Ruling::Decided(self.review(request).await)
    }
}

macro_rules! forward {
    (@one $trait:ident, [$($method:ident -> $out:ty),*], $ty:ty) => {
        #[async_trait]
        impl<T: $trait + ?Sized> $trait for $ty {
            $(
                async fn $method(&self, request: &ApprovalRequest) -> $out {
                    (**self).$method(request).await
                }
            )*
        }
    };
    ($trait:ident, $methods:tt, $($ty:ty),*) => {$(
        forward!(@one $trait, $methods, $ty);
    )*};
}

forward!(ApprovalPolicy, [decide -> Decision, rule -> Ruling, recheck -> Option<Decision>], &T, Box<T>, Arc<T>);
forward!(Approver, [review -> Decision, ask -> Ruling], &T, Box<T>, Arc<T>);

/// The approver of a durable service: every write that passes the rules parks its run until a
/// human decides through an approval channel (the approvals API, Slack, Teams). Asked for an
/// answer now — by a run that cannot park — it denies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Park;

#[async_trait]
impl Approver for Park {
    async fn review(&self, request: &ApprovalRequest) -> Decision {
        Decision::deny(
            "policy:park",
            format!(
                "{} needs a human's decision and this run cannot wait for one (it is not a durable run)",
                request.tool
            ),
        )
    }

    async fn ask(&self, _request: &ApprovalRequest) -> Ruling {
        Ruling::Park
    }
}

/// Approves every write. Opt-in only; the report records `policy:auto` as the approver.
#[derive(Debug, Clone, Copy, Default)]
pub struct AutoApprove;

#[async_trait]
impl ApprovalPolicy for AutoApprove {
    async fn decide(&self, _request: &ApprovalRequest) -> Decision {
        Decision::approve("policy:auto")
    }
}

/// Denies every write. The default policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOnly;

#[async_trait]
impl ApprovalPolicy for ReadOnly {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        Decision::deny(
            "policy:read-only",
            format!("{} is a write and this agent is read-only", request.tool),
        )
    }

    async fn recheck(&self, request: &ApprovalRequest) -> Option<Decision> {
        Some(self.decide(request).await)
    }
}

/// Allow-lists and limits checked first; a request that passes them goes to the [`Approver`].
#[derive(Clone)]
pub struct Rules {
    namespaces: Option<Vec<String>>,
    registries: Option<Vec<Result<String, String>>>,
    same_repository: bool,
    evidence_required: bool,
    max_writes_per_run: usize,
    max_risk: Risk,
    approver: Arc<dyn Approver>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("namespaces", &self.namespaces)
            .field("registries", &self.registries)
            .field("same_repository", &self.same_repository)
            .field("evidence_required", &self.evidence_required)
            .field("max_writes_per_run", &self.max_writes_per_run)
            .field("max_risk", &self.max_risk)
            .finish_non_exhaustive()
    }
}

impl Rules {
    /// Rules that ask `approver`, with at most 3 writes per run and no allow-lists yet.
    pub fn new(approver: impl Approver + 'static) -> Self {
        Self {
            namespaces: None,
            registries: None,
            same_repository: false,
            evidence_required: false,
            max_writes_per_run: 3,
            max_risk: Risk::High,
            approver: Arc::new(approver),
        }
    }

    /// Only writes to these namespaces; a write without a namespace argument is denied.
    #[must_use]
    pub fn namespaces<I: IntoIterator<Item = S>, S: Into<String>>(mut self, namespaces: I) -> Self {
        self.namespaces = Some(namespaces.into_iter().map(Into::into).collect());
        self
    }

    /// Only images from these registries or repository prefixes (e.g. `ghcr.io/acme`,
    /// `docker.io/library`). Every image a write's plan changes must lie below one of them, and a
    /// write whose plan does not say which images it runs is denied. An entry that is not a valid
    /// registry or repository prefix (white space, control characters) matches nothing and is
    /// reported when a write is checked.
    #[must_use]
    pub fn registries<I: IntoIterator<Item = S>, S: Into<String>>(mut self, registries: I) -> Self {
        self.registries = Some(
            registries
                .into_iter()
                .map(|r| {
                    let r = r.into();
                    normalize_prefix(&r).map_err(|e| e.to_string())
                })
                .collect(),
        );
        self
    }

    /// Every image a write changes must stay in the repository its container runs now (another
    /// tag or digest of the same image, or a rollback to one); a container the write adds is
    /// denied. The default for unattended approval: a change never brings in a new source.
    #[must_use]
    pub fn same_repository_only(mut self) -> Self {
        self.same_repository = true;
        self
    }

    /// Only writes whose plan carries evidence of the problem they fix: a crash of the target's
    /// current pods that other code may fix (a container exiting by itself, an image that cannot
    /// be pulled — not an OOM kill or a configuration error), for a change of that container's
    /// image (a rollback, an image patch; a restart or a scale runs the same code again), or an
    /// image patch that clears CRITICAL/HIGH findings. A plan whose scan finds the candidate
    /// brings in a CRITICAL/HIGH finding is denied whatever else speaks for it. The default for unattended approval: a model talked into changing a
    /// healthy workload (by text injected into a log, an event or a scan) is denied, and so is a
    /// second change to a workload the run already fixed.
    #[must_use]
    pub fn evidence_required(mut self) -> Self {
        self.evidence_required = true;
        self
    }

    /// At most `n` applied writes per run.
    #[must_use]
    pub fn max_writes_per_run(mut self, n: usize) -> Self {
        self.max_writes_per_run = n;
        self
    }

    /// Deny writes riskier than `risk` without asking.
    #[must_use]
    pub fn max_risk(mut self, risk: Risk) -> Self {
        self.max_risk = risk;
        self
    }

    fn check(&self, request: &ApprovalRequest) -> Result<(), String> {
        if request.writes_so_far >= self.max_writes_per_run {
            return Err(format!(
                "the limit of {} write(s) per run is reached",
                self.max_writes_per_run
            ));
        }
        if request.preview.risk > self.max_risk {
            return Err(format!(
                "risk {:?} is above the allowed {:?}",
                request.preview.risk, self.max_risk
            ));
        }
        if let Some(allowed) = &self.namespaces {
            match request.namespace() {
                None => {
                    return Err(format!(
                        "the plan of {} names no target namespace to check",
                        request.tool
                    ));
                }
                Some(ns) if !allowed.iter().any(|a| a == ns) => {
                    return Err(format!(
                        "namespace {ns:?} is not in the allow-list ({})",
                        allowed.join(", ")
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(allowed) = &self.registries {
            check_registries(request, allowed)?;
        }
        if self.same_repository {
            check_same_repository(request)?;
        }
        if self.evidence_required {
            check_evidence(request)?;
        }
        Ok(())
    }
}

fn check_evidence(request: &ApprovalRequest) -> Result<(), String> {
    let evidence = request.preview.evidence.as_deref();
    // A scan that finds the candidate brings in a CRITICAL/HIGH finding vetoes the change,
    // whatever else speaks for it.
    if let Some(v) = evidence.and_then(|e| {
        [&e.vulnerabilities, &e.target_scan]
            .into_iter()
            .flatten()
            .find(|v| !v.introduces.is_empty())
    }) {
        return Err(format!(
            "the plan of {} brings in {} CRITICAL/HIGH finding(s) the running image does not have; \
             an unattended approval never does",
            request.tool,
            v.introduces.len()
        ));
    }
    // A check the plan could not make is not a check passed.
    if let Some(e) = evidence.filter(|e| !e.unchecked.is_empty()) {
        return Err(format!(
            "the plan of {} could not check {} thing(s) an unattended approval relies on (a scan, \
             the pods of a revision); a human must decide",
            request.tool,
            e.unchecked.len()
        ));
    }
    // Going back to a revision whose own pods fail runs code that fails too.
    if let Some(c) = evidence.and_then(|e| e.target_crash.as_ref()) {
        return Err(format!(
            "the plan of {} returns to a revision whose own pods fail too ({} failing pod(s)); \
             an unattended approval never does",
            request.tool, c.failing_pods
        ));
    }
    // A crash is fixed by running other code in the container that crashes: a restart or a scale
    // runs the same code again, and a change of another container fixes nothing.
    let changes_the_crashed_container = |crash: &CrashEvidence| {
        request.preview.images.as_ref().is_some_and(|images| {
            images
                .iter()
                .any(|c| c.changes() && c.container == crash.container)
        })
    };
    let shows_a_problem = evidence.is_some_and(|e| {
        e.crash
            .as_ref()
            .is_some_and(|c| c.other_code_may_fix() && changes_the_crashed_container(c))
            || e.vulnerabilities
                .as_ref()
                .is_some_and(|v| !v.clears.is_empty())
    });
    if shows_a_problem {
        Ok(())
    } else {
        Err(format!(
            "the plan of {} shows no problem it fixes (no crash of the target's pods, no \
             CRITICAL/HIGH finding it clears, no crash of the container it changes that other code could fix); \
             an unattended approval needs that evidence",
            request.tool
        ))
    }
}

fn check_same_repository(request: &ApprovalRequest) -> Result<(), String> {
    let Some(images) = &request.preview.images else {
        return Err(format!(
            "the plan of {} does not say which images it runs; denied (images must stay in their repositories)",
            request.tool
        ));
    };
    for change in images.iter().filter(|c| c.changes()) {
        let container = escape_untrusted(&change.container);
        let after =
            ImageRef::parse(&change.after).map_err(|e| format!("container {container}: {e}"))?;
        let Some(before) = &change.before else {
            return Err(format!(
                "the write adds container {container} with image {}; only image changes within a container's repository are allowed",
                after.repository()
            ));
        };
        let before =
            ImageRef::parse(before).map_err(|e| format!("container {container} now runs {e}"))?;
        if before.repository() != after.repository() {
            return Err(format!(
                "container {container} would move from {} to {}; only the repository it runs now is allowed",
                before.repository(),
                after.repository()
            ));
        }
    }
    Ok(())
}

fn check_registries(
    request: &ApprovalRequest,
    allowed: &[Result<String, String>],
) -> Result<(), String> {
    let prefixes: Vec<&str> = allowed
        .iter()
        .filter_map(|r| r.as_ref().ok().map(String::as_str))
        .collect();
    if let Some(Err(bad)) = allowed.iter().find(|r| r.is_err()) {
        return Err(format!("the registry allow-list is misconfigured: {bad}"));
    }
    let Some(images) = &request.preview.images else {
        return Err(format!(
            "the plan of {} does not say which images it runs; denied under a registry allow-list",
            request.tool
        ));
    };
    for change in images.iter().filter(|c| c.changes()) {
        let shown = escape_untrusted(&change.after);
        let image = ImageRef::parse(&change.after)
            .map_err(|e| format!("container {}: {e}", escape_untrusted(&change.container)))?;
        if !prefixes.iter().any(|p| image.is_under(p)) {
            return Err(format!(
                "image {shown:?} ({}) is not from an allowed registry ({})",
                image.repository(),
                prefixes.join(", ")
            ));
        }
    }
    Ok(())
}

/// The fully qualified repository of an image reference, without tag or digest:
/// `nginx:1.25` → `docker.io/library/nginx`, `ghcr.io/acme/api@sha256:…` → `ghcr.io/acme/api`.
///
/// # Errors
/// A reference that is not canonical (see [`ImageRef::parse`]).
pub fn normalize_repository(image: &str) -> Result<String, crate::image::ImageRefError> {
    ImageRef::parse(image).map(|r| r.repository())
}

#[async_trait]
impl ApprovalPolicy for Rules {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        match self.check(request) {
            Ok(()) => self.approver.review(request).await,
            Err(reason) => Decision::deny("policy:rules", reason),
        }
    }

    async fn rule(&self, request: &ApprovalRequest) -> Ruling {
        match self.check(request) {
            Ok(()) => self.approver.ask(request).await,
            Err(reason) => Ruling::Decided(Decision::deny("policy:rules", reason)),
        }
    }

    async fn recheck(&self, request: &ApprovalRequest) -> Option<Decision> {
        self.check(request)
            .err()
            .map(|reason| Decision::deny("policy:rules", reason))
    }
}

/// Asks at a terminal (or any reader and writer): prints the request, reads `y`/`yes` to approve;
/// anything else, end of input or no answer in time denies.
pub struct Prompt {
    io: Arc<Mutex<PromptIo>>,
    who: String,
    timeout: Option<Duration>,
}

struct PromptIo {
    reader: Box<dyn BufRead + Send>,
    writer: Box<dyn Write + Send>,
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("who", &self.who)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Prompt {
    /// A prompt on `reader` / `writer`; the decision is recorded as by `prompt:<who>`.
    pub fn new(
        reader: impl BufRead + Send + 'static,
        writer: impl Write + Send + 'static,
        who: impl Into<String>,
    ) -> Self {
        Self {
            io: Arc::new(Mutex::new(PromptIo {
                reader: Box::new(reader),
                writer: Box::new(writer),
            })),
            who: who.into(),
            timeout: None,
        }
    }

    /// A prompt on this process's stdin and stderr, recorded as by the `USER` of the process.
    pub fn terminal() -> Self {
        let who = std::env::var("USER").unwrap_or_else(|_| "terminal".into());
        Self::new(
            std::io::BufReader::new(std::io::stdin()),
            std::io::stderr(),
            who,
        )
    }

    /// Deny when no answer comes within `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn ask_blocking(io: &Mutex<PromptIo>, text: &str) -> std::io::Result<Option<String>> {
        let mut io = io
            .lock()
            .map_err(|_| std::io::Error::other("prompt lock poisoned"))?;
        io.writer.write_all(text.as_bytes())?;
        io.writer.write_all(b"Approve this change? [y/N] ")?;
        io.writer.flush()?;
        let mut line = String::new();
        let n = io.reader.read_line(&mut line)?;
        Ok((n > 0).then_some(line))
    }
}

#[async_trait]
impl Approver for Prompt {
    async fn review(&self, request: &ApprovalRequest) -> Decision {
        let by = format!("prompt:{}", self.who);
        let io = Arc::clone(&self.io);
        let text = request.render();
        let task = tokio::task::spawn_blocking(move || Self::ask_blocking(&io, &text));
        let answer = match self.timeout {
            Some(t) => match tokio::time::timeout(t, task).await {
                Ok(joined) => joined,
                Err(_) => {
                    return Decision::deny(
                        by,
                        format!("no answer within {}", humantime::format_duration(t)),
                    );
                }
            },
            None => task.await,
        };
        match answer {
            Ok(Ok(Some(line))) => {
                let line = line.trim().to_ascii_lowercase();
                if line == "y" || line == "yes" {
                    Decision::approve(by)
                } else {
                    Decision::deny(by, "declined at the prompt")
                }
            }
            Ok(Ok(None)) => Decision::deny(by, "no answer (end of input)"),
            Ok(Err(e)) => Decision::deny(by, format!("prompt failed: {e}")),
            Err(e) => Decision::deny(by, format!("prompt failed: {e}")),
        }
    }
}

/// An approver backed by a closure (used by the Python bindings and by tests).
pub struct Callback {
    f: Box<dyn Fn(&ApprovalRequest) -> Decision + Send + Sync>,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Callback")
    }
}

impl Callback {
    /// Wraps `f`.
    pub fn new(f: impl Fn(&ApprovalRequest) -> Decision + Send + Sync + 'static) -> Self {
        Self { f: Box::new(f) }
    }
}

#[async_trait]
impl Approver for Callback {
    async fn review(&self, request: &ApprovalRequest) -> Decision {
        (self.f)(request)
    }
}

/// Why a [`Grant`] could not be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The target changed between preview and apply.
    #[error(
        "the target changed since it was approved (approved {approved}, now {current}); nothing was applied"
    )]
    FingerprintMismatch {
        /// Fingerprint at approval.
        approved: String,
        /// Fingerprint now.
        current: String,
    },
    /// The grant was issued for another action (another tool, or other arguments).
    #[error(
        "the approval was for another action ({approved_tool}, action {approved}), not this one ({tool}, action {current}); nothing was applied"
    )]
    OtherAction {
        /// The approved tool.
        approved_tool: String,
        /// The approved action fingerprint.
        approved: String,
        /// The tool being applied.
        tool: String,
        /// The action fingerprint being applied.
        current: String,
    },
    /// Too much time passed between approval and apply.
    #[error("the approval expired after {}; nothing was applied", humantime::format_duration(*ttl))]
    Expired {
        /// The grant's time to live.
        ttl: Duration,
    },
    /// The grant was already used.
    #[error("the approval was already used; nothing was applied")]
    AlreadyUsed,
}

/// An approval of one exact action — a tool, its arguments and the plan that was shown — bound
/// to the fingerprint of everything the plan read: single use, with an expiry. It carries the
/// approved plan, so the tool applies what was approved and nothing re-planned.
#[derive(Debug)]
pub struct Grant {
    /// The approved tool.
    pub tool: String,
    /// The approved call.
    pub call_id: String,
    /// The action fingerprint ([`Preview::action_fingerprint`]) that was approved.
    pub action: String,
    /// The fingerprint of what the plan read; write tools use it as their precondition.
    pub fingerprint: String,
    /// The approved plan.
    pub plan: Preview,
    /// Who approved.
    pub approved_by: String,
    /// When, as RFC 3339.
    pub approved_at: String,
    issued: Instant,
    ttl: Duration,
    used: AtomicBool,
}

impl Grant {
    /// Issues a grant for a decision on `plan`, the preview of `tool` with `arguments`. Only the
    /// [`Gate`](crate::Gate) (and, for tool tests, `testing::grant`) mints grants.
    pub(crate) fn for_plan(
        tool: &str,
        call_id: &str,
        arguments: &Value,
        plan: Preview,
        approved_by: &str,
        ttl: Duration,
    ) -> Self {
        Self {
            tool: tool.to_owned(),
            call_id: call_id.to_owned(),
            action: plan.action_fingerprint(tool, arguments),
            fingerprint: plan.fingerprint.clone(),
            plan,
            approved_by: approved_by.to_owned(),
            approved_at: now_rfc3339(),
            issued: Instant::now(),
            ttl,
            used: AtomicBool::new(false),
        }
    }

    /// True when the time to live has passed.
    pub fn is_expired(&self) -> bool {
        self.issued.elapsed() >= self.ttl
    }

    /// Uses the grant for `tool` called with `arguments` on a target whose fingerprint is now
    /// `current`.
    ///
    /// # Errors
    /// When the grant was used, expired, was issued for another tool or other arguments, or the
    /// target changed. A failed redemption also uses the grant up.
    pub fn redeem(&self, tool: &str, arguments: &Value, current: &str) -> Result<(), GrantError> {
        if self.used.swap(true, Ordering::SeqCst) {
            return Err(GrantError::AlreadyUsed);
        }
        if self.is_expired() {
            return Err(GrantError::Expired { ttl: self.ttl });
        }
        let action = self.plan.action_fingerprint(tool, arguments);
        if tool != self.tool || action != self.action {
            return Err(GrantError::OtherAction {
                approved_tool: self.tool.clone(),
                approved: self.action.clone(),
                tool: tool.to_owned(),
                current: action,
            });
        }
        if current != self.fingerprint {
            return Err(GrantError::FingerprintMismatch {
                approved: self.fingerprint.clone(),
                current: current.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Cursor;

    fn plan(namespace: Option<&str>, images: Option<Vec<(&str, &str)>>) -> Preview {
        let mut p = Preview::new(
            "deployment shop/web: image nginx:1.25.3 -> nginx:1.25.5",
            "- image: nginx:1.25.3\n+ image: nginx:1.25.5",
            "shop/web@rv=42",
            Risk::Medium,
        );
        p.target = namespace.map(|ns| crate::plan::Target {
            kind: "deployments.apps".into(),
            namespace: ns.into(),
            name: "web".into(),
            resource_version: "42".into(),
        });
        p.images = images.map(|v| {
            v.into_iter()
                .map(|(before, after)| crate::plan::ImageChange {
                    container: "web".into(),
                    before: Some(before.into()),
                    after: after.into(),
                })
                .collect()
        });
        p
    }

    fn request_with(args: Value, preview: Preview) -> ApprovalRequest {
        ApprovalRequest {
            run_id: "r1".into(),
            tool: "k8s_patch_image".into(),
            call_id: "c1".into(),
            arguments: args,
            preview,
            incident: "critical CVE in shop/web".into(),
            writes_so_far: 0,
            rollback_on_failure: true,
        }
    }

    fn request(args: Value) -> ApprovalRequest {
        request_with(
            args,
            plan(Some("shop"), Some(vec![("nginx:1.25.3", "nginx:1.25.5")])),
        )
    }

    fn issue(r: &ApprovalRequest) -> Grant {
        Grant::for_plan(
            &r.tool,
            &r.call_id,
            &r.arguments,
            r.preview.clone(),
            "alice",
            Duration::from_secs(60),
        )
    }

    fn yes() -> Callback {
        Callback::new(|_| Decision::approve("alice"))
    }

    #[tokio::test]
    async fn read_only_denies_and_auto_approves() {
        let r = request(json!({}));
        assert!(!ReadOnly.decide(&r).await.is_approved());
        assert_eq!(AutoApprove.decide(&r).await.by(), "policy:auto");
    }

    #[tokio::test]
    async fn rules_check_namespace_allow_list_before_asking() {
        let asked = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&asked);
        let rules = Rules::new(Callback::new(move |_| {
            flag.store(true, Ordering::SeqCst);
            Decision::approve("alice")
        }))
        .namespaces(["shop"]);
        let d = rules
            .decide(&request_with(
                json!({}),
                plan(Some("kube-system"), Some(vec![])),
            ))
            .await;
        assert_eq!(
            d,
            Decision::deny(
                "policy:rules",
                "namespace \"kube-system\" is not in the allow-list (shop)"
            )
        );
        assert!(!asked.load(Ordering::SeqCst), "approver must not be asked");
        let d = rules
            .decide(&request_with(json!({}), plan(None, Some(vec![]))))
            .await;
        assert!(
            !d.is_approved(),
            "a plan without a target namespace is denied"
        );
        // The namespace comes from the plan, never from an argument of that name.
        let d = rules
            .decide(&request_with(
                json!({"namespace": "shop"}),
                plan(Some("kube-system"), Some(vec![])),
            ))
            .await;
        assert!(!d.is_approved(), "{d:?}");
        let d = rules.decide(&request(json!({}))).await;
        assert_eq!(d, Decision::approve("alice"));
        assert!(asked.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn rules_check_registries_and_write_limit() {
        let rules = Rules::new(yes())
            .registries(["docker.io/library", "ghcr.io/acme/"])
            .max_writes_per_run(1);
        let ok = request(json!({}));
        assert!(rules.decide(&ok).await.is_approved());
        let digest = format!("ghcr.io/acme/api@sha256:{}", "a".repeat(64));
        let ok2 = request_with(
            json!({}),
            plan(Some("shop"), Some(vec![("nginx:1", &digest)])),
        );
        assert!(rules.decide(&ok2).await.is_approved());
        let evil = request_with(
            json!({}),
            plan(
                Some("shop"),
                Some(vec![("nginx:1", "ghcr.io/acme-evil/api:1")]),
            ),
        );
        let d = rules.decide(&evil).await;
        assert!(
            matches!(&d, Decision::Denied { reason, .. } if reason.contains("not from an allowed registry")),
            "{d:?}"
        );
        let mut second = ok.clone();
        second.writes_so_far = 1;
        let d = rules.decide(&second).await;
        assert!(
            matches!(&d, Decision::Denied { reason, .. } if reason.contains("limit of 1 write")),
            "{d:?}"
        );
    }

    #[tokio::test]
    #[expect(
        clippy::too_many_lines,
        reason = "one table of cases: each evidence shape and what the rule says"
    )]
    async fn evidence_required_approves_only_a_fix_the_evidence_supports() {
        use crate::evidence::{
            CrashEvidence, Evidence, ImageScan, ScanSource, VulnerabilityEvidence,
        };
        let rules = Rules::new(yes()).evidence_required();
        let with = |evidence: Option<Evidence>| {
            let mut p = plan(Some("shop"), Some(vec![("nginx:1.25.3", "nginx:1.25.5")]));
            p.evidence = evidence.map(Box::new);
            request_with(json!({}), p)
        };
        let denied = |d: &Decision| {
            matches!(d, Decision::Denied { reason, .. }
                if reason.contains("shows no problem it fixes") || reason.contains("brings in"))
        };
        // A healthy workload: no evidence at all (an injected "restart payments/api").
        let d = rules.decide(&with(None)).await;
        assert!(denied(&d), "{d:?}");
        let crash = CrashEvidence {
            pod: "web-1".into(),
            container: "web".into(),
            image: "nginx:1.25.3".into(),
            reason: "CrashLoopBackOff (Error)".into(),
            exit_code: Some(1),
            restarts: 7,
            failing_pods: 2,
            last_log_lines: Vec::new(),
            events: Vec::new(),
        };
        let crashed = Some(Evidence {
            crash: Some(crash.clone()),
            ..Evidence::default()
        });
        let d = rules.decide(&with(crashed.clone())).await;
        assert!(d.is_approved(), "{d:?}");
        // The same crash, but the revision a rollback returns to fails too: no fix. A human
        // (rules without `evidence_required`) may still approve it.
        let both = Some(Evidence {
            crash: Some(crash.clone()),
            target_crash: Some(crash.clone()),
            ..Evidence::default()
        });
        let d = rules.decide(&with(both.clone())).await;
        assert!(
            matches!(&d, Decision::Denied { reason, .. } if reason.contains("whose own pods fail too")),
            "{d:?}"
        );
        assert!(Rules::new(yes()).decide(&with(both)).await.is_approved());
        // A check the plan could not make (the scan of the revision a rollback returns to)
        // leaves the decision to a human, however strong the rest.
        let unchecked = Some(Evidence {
            crash: Some(crash.clone()),
            unchecked: vec!["the image it returns to was not scanned".into()],
            ..Evidence::default()
        });
        let d = rules.decide(&with(unchecked)).await;
        assert!(
            matches!(&d, Decision::Denied { reason, .. } if reason.contains("could not check")),
            "{d:?}"
        );
        // The same crash behind a restart (no image changes): the same code runs again.
        let mut restart = with(crashed);
        restart.preview.images = Some(vec![crate::plan::ImageChange {
            container: "web".into(),
            before: Some("nginx:1.25.3".into()),
            after: "nginx:1.25.3".into(),
        }]);
        assert!(denied(&rules.decide(&restart).await));
        // A crash no image fixes (an OOM kill, a missing Secret), and a crash of another
        // container than the one the plan changes.
        for reason in [
            "CrashLoopBackOff (OOMKilled)",
            "OOMKilled",
            "CreateContainerConfigError",
        ] {
            let mut c = crash.clone();
            c.reason = reason.into();
            let d = rules
                .decide(&with(Some(Evidence {
                    crash: Some(c),
                    ..Evidence::default()
                })))
                .await;
            assert!(denied(&d), "{reason}: {d:?}");
        }
        let mut sidecar = crash.clone();
        sidecar.container = "proxy".into();
        let d = rules
            .decide(&with(Some(Evidence {
                crash: Some(sidecar),
                ..Evidence::default()
            })))
            .await;
        assert!(denied(&d), "{d:?}");
        let scan = |image: &str| ImageScan {
            image: image.into(),
            digest: None,
            counts: crate::evidence::Severities::default(),
            findings: Vec::new(),
            source: ScanSource::Simulated,
        };
        let patch = |clears: &[&str], introduces: &[&str]| {
            Some(Evidence {
                vulnerabilities: Some(VulnerabilityEvidence {
                    container: "web".into(),
                    current: scan("nginx:1.25.3"),
                    candidate: scan("nginx:1.25.5"),
                    clears: clears.iter().map(|s| (*s).to_owned()).collect(),
                    remains: Vec::new(),
                    introduces: introduces.iter().map(|s| (*s).to_owned()).collect(),
                }),
                ..Evidence::default()
            })
        };
        // A rollback's scan only ever speaks against it: what it clears is no reason (nothing
        // re-scans what a rollback runs), what it brings back vetoes even a crash.
        let rollback_scan = |clears: &[&str], introduces: &[&str], crash: Option<CrashEvidence>| {
            let mut e = patch(clears, introduces).unwrap_or_default();
            e.target_scan = e.vulnerabilities.take();
            e.crash = crash;
            Some(e)
        };
        assert!(denied(
            &rules
                .decide(&with(rollback_scan(&["CVE-1"], &[], None)))
                .await
        ));
        assert!(denied(
            &rules
                .decide(&with(rollback_scan(&[], &["CVE-9"], Some(crash.clone()))))
                .await
        ));
        assert!(
            rules
                .decide(&with(rollback_scan(&[], &[], Some(crash.clone()))))
                .await
                .is_approved()
        );
        assert!(
            rules
                .decide(&with(patch(&["CVE-1"], &[])))
                .await
                .is_approved()
        );
        // A patch that clears nothing (a downgrade to another tag), or brings in a new finding.
        assert!(denied(&rules.decide(&with(patch(&[], &[]))).await));
        assert!(denied(
            &rules.decide(&with(patch(&["CVE-1"], &["CVE-2"]))).await
        ));
        // A crash does not outweigh a CRITICAL the candidate brings in (an older tag of the
        // same repository).
        let mut both = patch(&[], &["CVE-2021-44228"]).unwrap();
        both.crash = Some(crash.clone());
        let d = rules.decide(&with(Some(both))).await;
        assert!(
            matches!(&d, Decision::Denied { reason, .. } if reason.contains("brings in 1 CRITICAL/HIGH")),
            "{d:?}"
        );
        // Without the rule, the same healthy-workload write goes to the approver.
        assert!(Rules::new(yes()).decide(&with(None)).await.is_approved());
    }

    #[tokio::test]
    async fn rules_deny_above_max_risk() {
        let rules = Rules::new(yes()).max_risk(Risk::Low);
        assert!(!rules.decide(&request(json!({}))).await.is_approved());
    }

    #[tokio::test]
    async fn registry_allow_list_is_not_fooled_by_case_or_white_space() {
        // Regression: " localhost/…" and "Localhost/…" passed an allow-list of docker.io.
        let rules = Rules::new(yes()).registries(["docker.io"]);
        for image in [
            " localhost/app:1",
            "Localhost/app:1",
            "localhost/app:1\n",
            "LOCALHOST:5000/x:1",
        ] {
            let r = request_with(
                json!({}),
                plan(Some("shop"), Some(vec![("nginx:1", image)])),
            );
            let d = rules.decide(&r).await;
            assert!(!d.is_approved(), "{image:?} must be denied: {d:?}");
        }
        let hub = request_with(
            json!({}),
            plan(Some("shop"), Some(vec![("nginx:1", "nginx:2")])),
        );
        assert!(rules.decide(&hub).await.is_approved());
    }

    #[tokio::test]
    async fn same_repository_only_denies_a_new_source() {
        // Regression: the CLI's auto approval allowed any repository any workload in scope ran.
        let rules = Rules::new(yes()).same_repository_only();
        let ok = request_with(
            json!({}),
            plan(Some("shop"), Some(vec![("nginx:1.25", "nginx:1.26")])),
        );
        assert!(rules.decide(&ok).await.is_approved());
        let other = request_with(
            json!({}),
            plan(
                Some("shop"),
                Some(vec![("nginx:1.25", "docker.io/attacker/tool:1")]),
            ),
        );
        let d = rules.decide(&other).await;
        assert!(
            matches!(&d, Decision::Denied { reason, .. } if reason.contains("would move from docker.io/library/nginx to docker.io/attacker/tool")),
            "{d:?}"
        );
        let mut added = plan(Some("shop"), Some(vec![]));
        added.images = Some(vec![crate::plan::ImageChange {
            container: "miner".into(),
            before: None,
            after: "nginx:1.26".into(),
        }]);
        assert!(
            !rules
                .decide(&request_with(json!({}), added))
                .await
                .is_approved()
        );
    }

    #[tokio::test]
    async fn registry_allow_list_denies_a_plan_that_hides_its_images() {
        // Regression: Rules looked for an argument named "image"; a write whose image argument had
        // another name, or a rollback, skipped the allow-list.
        let rules = Rules::new(yes()).registries(["docker.io/library"]);
        let hidden = request_with(json!({"img": "evil.io/x:1"}), plan(Some("shop"), None));
        let d = rules.decide(&hidden).await;
        assert!(
            matches!(&d, Decision::Denied { reason, .. } if reason.contains("does not say which images")),
            "{d:?}"
        );
        let renamed = request_with(
            json!({"container_image": "evil.io/x:1"}),
            plan(Some("shop"), Some(vec![("nginx:1", "evil.io/x:1")])),
        );
        assert!(!rules.decide(&renamed).await.is_approved());
    }

    #[test]
    fn repositories_are_normalized() {
        assert_eq!(
            normalize_repository("nginx").unwrap(),
            "docker.io/library/nginx"
        );
        assert_eq!(
            normalize_repository("bitnami/redis:7").unwrap(),
            "docker.io/bitnami/redis"
        );
        assert!(normalize_repository(" nginx").is_err());
    }

    #[test]
    fn render_escapes_terminal_sequences() {
        // Regression: an image with ESC sequences could rewrite what the prompt showed.
        let evil = "nginx:1.25.5\u{1b}[1A\u{1b}[2K\u{9b}2Kapproved: harmless";
        let r = request_with(
            json!({"image": evil}),
            plan(Some("shop"), Some(vec![("nginx:1", evil)])),
        );
        let shown = r.render();
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{9b}'),
            "{shown:?}"
        );
        assert!(shown.contains("\\e[1A"), "{shown}");
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn prompt_approves_on_yes_and_shows_the_diff() {
        let out = Shared::default();
        let p = Prompt::new(Cursor::new("Y\n"), out.clone(), "bob");
        let d = p.review(&request(json!({"namespace": "shop"}))).await;
        assert_eq!(d, Decision::approve("prompt:bob"));
        let shown = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(shown.contains("+ image: nginx:1.25.5"), "{shown}");
        assert!(
            shown.contains("deployments.apps/shop/web@resourceVersion=42"),
            "{shown}"
        );
        assert!(shown.contains("rolled back automatically"), "{shown}");
        assert!(shown.ends_with("[y/N] "), "{shown}");
    }

    #[tokio::test]
    async fn prompt_denies_on_anything_else_and_on_eof() {
        for input in ["n\n", "\n", "sure\n", ""] {
            let p = Prompt::new(Cursor::new(input), std::io::sink(), "bob");
            let d = p.review(&request(json!({}))).await;
            assert!(!d.is_approved(), "input {input:?} must deny");
        }
    }

    #[tokio::test]
    async fn prompt_times_out_to_deny() {
        struct Never;
        impl std::io::Read for Never {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(300));
                Ok(0)
            }
        }
        let p = Prompt::new(std::io::BufReader::new(Never), std::io::sink(), "bob")
            .timeout(Duration::from_millis(20));
        let d = p.review(&request(json!({}))).await;
        assert_eq!(d, Decision::deny("prompt:bob", "no answer within 20ms"));
    }

    #[test]
    fn grant_is_single_use_and_bound_to_fingerprint() {
        let r = request(json!({}));
        let g = issue(&r);
        let tool = "k8s_patch_image";
        assert!(g.redeem(tool, &json!({}), "shop/web@rv=42").is_ok());
        assert_eq!(
            g.redeem(tool, &json!({}), "shop/web@rv=42"),
            Err(GrantError::AlreadyUsed)
        );
        let g = issue(&r);
        assert_eq!(
            g.redeem(tool, &json!({}), "shop/web@rv=43"),
            Err(GrantError::FingerprintMismatch {
                approved: "shop/web@rv=42".into(),
                current: "shop/web@rv=43".into()
            })
        );
    }

    #[test]
    fn grant_for_one_action_refuses_another_on_the_same_target() {
        let r = request(json!({"image": "nginx:1.25.5"}));
        let g = issue(&r);
        let e = g
            .redeem(
                "k8s_patch_image",
                &json!({"image": "evil.io/x:1"}),
                "shop/web@rv=42",
            )
            .unwrap_err();
        assert!(matches!(e, GrantError::OtherAction { .. }), "{e}");
        let g = issue(&r);
        let e = g
            .redeem(
                "k8s_scale_deployment",
                &json!({"image": "nginx:1.25.5"}),
                "shop/web@rv=42",
            )
            .unwrap_err();
        assert!(matches!(e, GrantError::OtherAction { .. }), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn grant_expires() {
        let r = request(json!({}));
        let g = issue(&r);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            g.redeem("k8s_patch_image", &json!({}), "shop/web@rv=42"),
            Err(GrantError::Expired {
                ttl: Duration::from_secs(60)
            })
        );
    }
}
