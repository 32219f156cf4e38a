//! The [`Agent`]: ask the model, validate its tool calls, run reads concurrently, put every write
//! through preview → policy → grant → apply → verify, until a final answer or a budget ends the run.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::approval::{ApprovalPolicy, ApprovalRequest, Decision, ReadOnly};
use crate::audit::AuditLog;
use crate::canon::{canonical_json, now_rfc3339};
use crate::error::{Error, Result};
use crate::event::{Event, Observer};
use crate::gate::{Gate, Step, guarded};
use crate::llm::LlmProvider;
use crate::message::{ChatRequest, Message, Role, ToolCall, Usage};
pub use crate::outcome::{ActionStatus, Outcome, RollbackRecord};
use crate::redact::Redactor;
pub use crate::report::{ActionRecord, RunReport};
use crate::tool::{Effect, Tool, ToolContext, ToolError, ToolOutput, ToolSet, Verification};

/// The default system prompt: an SRE that investigates before it acts.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a careful Kubernetes SRE agent. Investigate with the read tools before \
proposing any change. Propose the smallest change that fixes the problem. Every write is shown to an approver as a \
dry-run diff and may be denied: if it is, do not retry it; explain what you would have done and stop. Never invent \
tool names or arguments. Finish with a short report: what was wrong, the evidence, what you changed, and what a \
human still has to do.";

/// Limits on one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// Model calls at most.
    pub max_steps: usize,
    /// Input plus output tokens at most, over the whole run.
    pub max_total_tokens: Option<u64>,
    /// Wall time at most, from the start of the run.
    pub deadline: Option<Duration>,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            max_steps: 20,
            max_total_tokens: None,
            deadline: None,
        }
    }
}

/// Builds an [`Agent`].
pub struct AgentBuilder {
    provider: Arc<dyn LlmProvider>,
    tools: Vec<Arc<dyn Tool>>,
    policy: Arc<dyn ApprovalPolicy>,
    system_prompt: String,
    budgets: Budgets,
    observers: Vec<Arc<dyn Observer>>,
    redactor: Option<Redactor>,
    approval_ttl: Duration,
    max_tool_output_bytes: usize,
    audit: Option<Arc<AuditLog>>,
}

impl fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("provider", &self.provider.name())
            .field("tools", &self.tools.len())
            .field("budgets", &self.budgets)
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    /// Adds a tool.
    #[must_use]
    pub fn tool(mut self, tool: impl Tool + 'static) -> Self {
        self.tools.push(Arc::new(tool));
        self
    }

    /// Adds shared tools.
    #[must_use]
    pub fn tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// The approval policy for writes. Default: [`ReadOnly`].
    #[must_use]
    pub fn policy(mut self, policy: impl ApprovalPolicy + 'static) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// A shared approval policy.
    #[must_use]
    pub fn policy_arc(mut self, policy: Arc<dyn ApprovalPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// The system prompt. Default: [`DEFAULT_SYSTEM_PROMPT`].
    #[must_use]
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = prompt.into();
        self
    }

    /// All budgets at once.
    #[must_use]
    pub fn budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// Model calls at most (default 20).
    #[must_use]
    pub fn max_steps(mut self, n: usize) -> Self {
        self.budgets.max_steps = n;
        self
    }

    /// Tokens at most over the run.
    #[must_use]
    pub fn max_total_tokens(mut self, n: u64) -> Self {
        self.budgets.max_total_tokens = Some(n);
        self
    }

    /// Wall time at most.
    #[must_use]
    pub fn deadline(mut self, d: Duration) -> Self {
        self.budgets.deadline = Some(d);
        self
    }

    /// Adds an observer of every event.
    #[must_use]
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// Adds a shared observer.
    #[must_use]
    pub fn observer_arc(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Writes every event to `log` and puts its anchor (head hash) into the [`RunReport`].
    #[must_use]
    pub fn audit_log(mut self, log: Arc<AuditLog>) -> Self {
        self.observers.push(Arc::clone(&log) as Arc<dyn Observer>);
        self.audit = Some(log);
        self
    }

    /// The redactor (default: the built-in rules).
    #[must_use]
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// How long an approval stays valid (default 5 minutes).
    #[must_use]
    pub fn approval_ttl(mut self, ttl: Duration) -> Self {
        self.approval_ttl = ttl;
        self
    }

    /// Tool results longer than this are cut (default 32 KiB).
    #[must_use]
    pub fn max_tool_output_bytes(mut self, n: usize) -> Self {
        self.max_tool_output_bytes = n;
        self
    }

    /// The agent.
    ///
    /// # Errors
    /// Duplicate or invalid tool names or schemas, or a zero step budget.
    pub fn build(self) -> Result<Agent> {
        if self.budgets.max_steps == 0 {
            return Err(Error::Config("max_steps must be at least 1".into()));
        }
        let mut tools = ToolSet::new();
        for t in self.tools {
            tools.add(t)?;
        }
        Ok(Agent {
            inner: Arc::new(Inner {
                provider: self.provider,
                tools,
                policy: self.policy,
                system_prompt: self.system_prompt,
                budgets: self.budgets,
                observers: self.observers,
                gate: Gate::new(self.redactor.unwrap_or_default(), self.approval_ttl),
                max_tool_output_bytes: self.max_tool_output_bytes,
                audit: self.audit,
            }),
        })
    }
}

struct Inner {
    provider: Arc<dyn LlmProvider>,
    tools: ToolSet,
    policy: Arc<dyn ApprovalPolicy>,
    system_prompt: String,
    budgets: Budgets,
    observers: Vec<Arc<dyn Observer>>,
    gate: Gate,
    max_tool_output_bytes: usize,
    audit: Option<Arc<AuditLog>>,
}

/// The agent: a provider, tools, a policy and budgets. Cheap to clone; runs are independent.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("provider", &self.inner.provider.name())
            .field("tools", &self.inner.tools)
            .field("budgets", &self.inner.budgets)
            .finish_non_exhaustive()
    }
}

fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("run-{ms}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn truncate_to(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = s.len() - cut;
    s.truncate(cut);
    let _ = write!(s, "\n… [truncated {dropped} bytes]");
    s
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The state of one run.
#[expect(
    clippy::struct_field_names,
    reason = "run_id is the name used in events and reports"
)]
struct Run<'a> {
    agent: &'a Inner,
    run_id: String,
    task: String,
    started: Instant,
    deadline: Option<Instant>,
    usage: Usage,
    steps: usize,
    tool_calls: usize,
    actions: Vec<ActionRecord>,
    writes_applied: usize,
    seen: HashMap<String, u32>,
}

enum Turn {
    Continue,
    Stop(Outcome),
}

impl Agent {
    /// A builder around `provider`, with no tools, the [`ReadOnly`] policy and default budgets.
    pub fn builder(provider: impl LlmProvider + 'static) -> AgentBuilder {
        Self::builder_arc(Arc::new(provider))
    }

    /// A builder around a shared provider.
    pub fn builder_arc(provider: Arc<dyn LlmProvider>) -> AgentBuilder {
        AgentBuilder {
            provider,
            tools: Vec::new(),
            policy: Arc::new(ReadOnly),
            system_prompt: DEFAULT_SYSTEM_PROMPT.to_owned(),
            budgets: Budgets::default(),
            observers: Vec::new(),
            redactor: None,
            approval_ttl: Duration::from_secs(300),
            max_tool_output_bytes: 32 * 1024,
            audit: None,
        }
    }

    /// The tools, with their validators.
    pub fn tools(&self) -> &ToolSet {
        &self.inner.tools
    }

    /// The budgets.
    pub fn budgets(&self) -> Budgets {
        self.inner.budgets
    }

    /// Runs the agent on `task` until a final answer or a budget ends it.
    pub async fn run(&self, task: &str) -> RunReport {
        self.run_messages(vec![Message::user(task)]).await
    }

    /// Runs the agent on a conversation. The system prompt is added in front unless the
    /// conversation starts with a system message.
    pub async fn run_messages(&self, messages: Vec<Message>) -> RunReport {
        let inner = &*self.inner;
        let task = messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let mut transcript = Vec::with_capacity(messages.len() + 8);
        if messages.first().map(|m| m.role) != Some(Role::System) {
            transcript.push(Message::system(inner.system_prompt.clone()));
        }
        transcript.extend(messages);
        let started = Instant::now();
        let mut run = Run {
            agent: inner,
            run_id: new_run_id(),
            task,
            started,
            deadline: inner.budgets.deadline.map(|d| started + d),
            usage: Usage::default(),
            steps: 0,
            tool_calls: 0,
            actions: Vec::new(),
            writes_applied: 0,
            seen: HashMap::new(),
        };
        let started_at = now_rfc3339();
        run.emit(|run_id| Event::RunStarted {
            run_id,
            task: run.task.clone(),
            provider: inner.provider.name(),
            tools: inner.tools.specs().into_iter().map(|s| s.name).collect(),
        });
        let mut request = ChatRequest {
            messages: transcript,
            tools: inner.tools.specs(),
            ..ChatRequest::default()
        };
        let (outcome, answer) = run.drive(&mut request).await;
        run.emit(|run_id| Event::RunFinished {
            run_id,
            outcome: outcome.clone(),
            steps: run.steps,
            usage: run.usage,
        });
        RunReport {
            run_id: run.run_id,
            provider: inner.provider.name(),
            task: run.task,
            outcome,
            answer,
            actions: run.actions,
            tool_calls: run.tool_calls,
            steps: run.steps,
            usage: run.usage,
            started_at,
            duration_ms: millis(run.started.elapsed()),
            transcript: request.messages,
            audit: inner.audit.as_ref().map(|log| log.summary()),
        }
    }
}

impl Run<'_> {
    fn emit(&self, make: impl FnOnce(String) -> Event) {
        if self.agent.observers.is_empty() {
            return;
        }
        let event = make(self.run_id.clone());
        for o in &self.agent.observers {
            o.on_event(&event);
        }
    }

    fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn redact(&self, text: String) -> String {
        let text = truncate_to(text, self.agent.max_tool_output_bytes);
        match self.agent.gate.redactor().redact(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(s) => s,
        }
    }

    async fn drive(&mut self, request: &mut ChatRequest) -> (Outcome, Option<String>) {
        loop {
            if self.steps >= self.agent.budgets.max_steps {
                return (Outcome::MaxSteps, None);
            }
            if self.deadline_passed() {
                return (Outcome::Deadline, None);
            }
            self.steps += 1;
            let step = self.steps;
            self.emit(|run_id| Event::StepStarted { run_id, step });
            let call = self.agent.provider.chat(request);
            let response = match self.deadline {
                Some(d) => match tokio::time::timeout_at(d, call).await {
                    Ok(r) => r,
                    Err(_) => return (Outcome::Deadline, None),
                },
                None => call.await,
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    // Providers quote their response bodies, which may echo a key.
                    return (
                        Outcome::ProviderError {
                            kind: e.kind().to_owned(),
                            message: self.redact(e.to_string()),
                        },
                        None,
                    );
                }
            };
            self.usage += response.usage;
            self.emit(|run_id| Event::ModelResponded {
                run_id,
                step,
                stop_reason: response.stop_reason,
                usage: response.usage,
                tool_calls: response
                    .message
                    .tool_calls
                    .iter()
                    .map(|c| c.name.clone())
                    .collect(),
            });
            let mut message = response.message;
            message.role = Role::Assistant;
            let calls = message.tool_calls.clone();
            if calls.is_empty() {
                let answer = message.content.clone();
                request.messages.push(message);
                return (Outcome::Completed, Some(answer));
            }
            request.messages.push(message);
            if let Some(max) = self.agent.budgets.max_total_tokens
                && self.usage.total() > max
            {
                return (Outcome::TokenBudget, None);
            }
            match self.run_tools(&calls, &mut request.messages).await {
                Turn::Continue => {}
                Turn::Stop(outcome) => return (outcome, None),
            }
        }
    }

    /// Runs one turn's calls and appends one tool message per call, in the model's order.
    async fn run_tools(&mut self, calls: &[ToolCall], messages: &mut Vec<Message>) -> Turn {
        let agent = self.agent;
        let world = self.writes_applied;
        let mut results: Vec<Option<Message>> = vec![None; calls.len()];
        let mut reads: Vec<(usize, &Arc<dyn Tool>)> = Vec::new();
        let mut writes: Vec<(usize, &Arc<dyn Tool>)> = Vec::new();
        let mut stop = None;
        self.tool_calls += calls.len();
        for (i, call) in calls.iter().enumerate() {
            let tool = match agent.tools.validate(&call.name, &call.arguments) {
                Ok(tool) => tool,
                Err(e) => {
                    results[i] = Some(self.reject(call, &e.to_string()));
                    continue;
                }
            };
            // A call identical to an earlier one since the last applied write is not run again.
            let key = format!("{world}|{}|{}", call.name, canonical_json(&call.arguments));
            let count = self.seen.entry(key).or_insert(0);
            *count += 1;
            if *count > 1 {
                let again = *count;
                results[i] = Some(self.reject(
                    call,
                    &format!(
                        "repeated call: {} was already called with these arguments and nothing has changed since; \
                         its result is above. Use it or do something else.",
                        call.name
                    ),
                ));
                if again > 2 {
                    stop = Some(Outcome::RepeatedCalls);
                }
                continue;
            }
            match tool.effect() {
                Effect::Read => reads.push((i, tool)),
                Effect::Write => writes.push((i, tool)),
            }
        }
        if let Some(outcome) = stop {
            Self::push_results(results, calls, messages);
            return Turn::Stop(outcome);
        }

        let this = &*self;
        let read_futures = reads.iter().map(|&(i, tool)| {
            let call = &calls[i];
            async move { (i, this.call_read(tool, call).await) }
        });
        let joined = futures::future::join_all(read_futures);
        let read_results = if let Some(d) = self.deadline {
            if let Ok(r) = tokio::time::timeout_at(d, joined).await {
                r
            } else {
                Self::push_results(results, calls, messages);
                return Turn::Stop(Outcome::Deadline);
            }
        } else {
            joined.await
        };
        for (i, message) in read_results {
            results[i] = Some(message);
        }

        for (i, tool) in writes {
            let call = &calls[i];
            if self.deadline_passed() {
                self.actions.push(ActionRecord {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    arguments: call.arguments.clone(),
                    preview: None,
                    decision: None,
                    decided_at: None,
                    status: ActionStatus::Skipped,
                    result: "not started: the deadline had passed".into(),
                    verification: None,
                    rolled_back: None,
                });
                Self::push_results(results, calls, messages);
                return Turn::Stop(Outcome::Deadline);
            }
            results[i] = Some(self.call_write(tool.as_ref(), call).await);
        }
        Self::push_results(results, calls, messages);
        Turn::Continue
    }

    fn push_results(
        results: Vec<Option<Message>>,
        calls: &[ToolCall],
        messages: &mut Vec<Message>,
    ) {
        for (slot, call) in results.into_iter().zip(calls) {
            messages.push(slot.unwrap_or_else(|| {
                Message::tool_error(call, "not run: the run stopped before this call")
            }));
        }
    }

    fn reject(&self, call: &ToolCall, error: &str) -> Message {
        let error = self.redact(error.to_owned());
        self.emit(|run_id| Event::ToolRejected {
            run_id,
            call_id: call.id.clone(),
            tool: call.name.clone(),
            error: error.clone(),
        });
        Message::tool_error(call, error)
    }

    fn context(&self, call: &ToolCall) -> ToolContext {
        ToolContext {
            run_id: self.run_id.clone(),
            call_id: call.id.clone(),
            grant: None,
        }
    }

    fn finished(
        &self,
        call: &ToolCall,
        result: Result<ToolOutput, ToolError>,
        started: Instant,
    ) -> (Message, bool, String) {
        let (ok, text, data) = match result {
            Ok(out) => (
                true,
                self.redact(out.content),
                out.data
                    .map(|d| self.agent.gate.redactor().redact_value(&d)),
            ),
            Err(e) => (
                false,
                self.redact(format!("tool {} failed: {e}", call.name)),
                None,
            ),
        };
        self.emit(|run_id| Event::ToolFinished {
            run_id,
            call_id: call.id.clone(),
            tool: call.name.clone(),
            ok,
            result: text.clone(),
            duration_ms: millis(started.elapsed()),
        });
        let mut message = if ok {
            Message::tool_result(call, text.clone())
        } else {
            Message::tool_error(call, text.clone())
        };
        message.data = data;
        (message, ok, text)
    }

    async fn call_read(&self, tool: &Arc<dyn Tool>, call: &ToolCall) -> Message {
        self.emit(|run_id| Event::ToolStarted {
            run_id,
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
            effect: Effect::Read,
        });
        let started = Instant::now();
        let ctx = self.context(call);
        let result = guarded(tool.call(&call.arguments, &ctx)).await;
        self.finished(call, result, started).0
    }

    /// Plan → policy → [`Gate`]: the gate alone authorizes and applies the write, verifies it and
    /// rolls it back; the run records and reports each step.
    #[expect(
        clippy::too_many_lines,
        reason = "one linear pipeline: plan, decide, authorize, apply, record"
    )]
    async fn call_write(&mut self, tool: &dyn Tool, call: &ToolCall) -> Message {
        let mut record = ActionRecord {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
            preview: None,
            decision: None,
            decided_at: None,
            status: ActionStatus::Failed,
            result: String::new(),
            verification: None,
            rolled_back: None,
        };
        let gate = &self.agent.gate;
        let planned = match gate.plan(tool, &call.arguments, &self.context(call)).await {
            Ok(p) => p,
            Err(e) => {
                let text = self.redact(format!(
                    "preview of {} failed, nothing was changed: {e}",
                    call.name
                ));
                record.result.clone_from(&text);
                self.actions.push(record);
                return self.reject(call, &text);
            }
        };
        record.preview = Some(planned.plan.clone());
        let request = ApprovalRequest {
            run_id: self.run_id.clone(),
            tool: call.name.clone(),
            call_id: call.id.clone(),
            arguments: call.arguments.clone(),
            // Promise an automatic undo only when the plan carries one.
            rollback_on_failure: !planned.plan.undo.is_null(),
            preview: planned.plan,
            incident: self.task.clone(),
            writes_so_far: self.writes_applied,
        };
        self.emit(|run_id| Event::ApprovalRequested {
            run_id,
            request: Box::new(request.clone()),
        });
        let decision = self.agent.policy.decide(&request).await;
        record.decided_at = Some(now_rfc3339());
        record.decision = Some(decision.clone());
        self.emit(|run_id| Event::ApprovalDecided {
            run_id,
            call_id: call.id.clone(),
            tool: call.name.clone(),
            fingerprint: request.preview.fingerprint.clone(),
            decision: decision.clone(),
        });
        let by = match decision {
            Decision::Denied { by, reason } => {
                gate.withdraw(&planned.action);
                let text = format!(
                    "denied by {by}: {reason}. Nothing was changed. Do not retry this write; \
                     report what you would have done and why."
                );
                record.status = ActionStatus::Denied;
                record.result.clone_from(&text);
                self.actions.push(record);
                return Message::tool_error(call, text);
            }
            Decision::Approved { by } => by,
        };
        let grant = match gate
            .authorize(tool, &call.arguments, &planned.action, &by, &call.id)
            .await
        {
            Ok(g) => g,
            Err(e) => {
                let reason = self.redact(e.to_string());
                self.emit(|run_id| Event::WriteRefused {
                    run_id,
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    reason: reason.clone(),
                });
                record.status = ActionStatus::Refused;
                record.result = format!("refused: {reason}");
                self.actions.push(record);
                return Message::tool_error(call, format!("{} refused: {reason}", call.name));
            }
        };
        self.emit(|run_id| Event::ToolStarted {
            run_id,
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
            effect: Effect::Write,
        });
        let started = Instant::now();
        let this = &*self;
        let mut finished = None;
        let applied = gate
            .execute(
                tool,
                &call.arguments,
                grant,
                &this.run_id,
                &call.id,
                |step| match step {
                    Step::Applied(result) => {
                        finished = Some(this.finished(call, result.clone(), started));
                    }
                    Step::Verified(v) => {
                        let verification = Verification {
                            passed: v.passed,
                            detail: this.redact(v.detail.clone()),
                        };
                        this.emit(|run_id| Event::Verified {
                            run_id,
                            call_id: call.id.clone(),
                            tool: call.name.clone(),
                            verification,
                        });
                    }
                    Step::RolledBack(r) => {
                        let rollback = RollbackRecord {
                            ok: r.ok,
                            detail: this.redact(r.detail.clone()),
                        };
                        this.emit(|run_id| Event::RolledBack {
                            run_id,
                            call_id: call.id.clone(),
                            tool: call.name.clone(),
                            rollback,
                        });
                    }
                },
            )
            .await;
        let (mut message, _, text) = finished.unwrap_or_else(|| {
            self.finished(
                call,
                Err(ToolError::Failed("the gate reported no result".into())),
                started,
            )
        });
        record.result = text;
        if let Ok(applied) = applied {
            record.status = ActionStatus::Applied;
            self.writes_applied += 1;
            if let Some(mut v) = applied.verification {
                v.detail = self.redact(v.detail);
                let _ = write!(message.content, "\nverification: {}", v.detail);
                record.verification = Some(v);
            }
            if let Some(mut rollback) = applied.rollback {
                rollback.detail = self.redact(rollback.detail);
                let _ = write!(
                    message.content,
                    "\nverification failed; automatic rollback {}: {}",
                    if rollback.ok { "done" } else { "FAILED" },
                    rollback.detail
                );
                message.is_error = true;
                record.rolled_back = Some(rollback);
            }
        }
        self.actions.push(record);
        message
    }
}
