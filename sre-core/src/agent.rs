//! The [`Agent`]: ask the model, validate its tool calls, run reads concurrently, put every write
//! through preview → policy → grant → apply → verify, until a final answer or a budget ends the run.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::approval::{ApprovalPolicy, ApprovalRequest, Decision, ReadOnly, Ruling};
use crate::audit::AuditLog;
use crate::canon::{canonical_json, now_rfc3339};
use crate::error::{Error, Result};
use crate::event::{Event, Observer};
use crate::gate::{Gate, Planned, Step, guarded};
use crate::llm::LlmProvider;
use crate::message::{ChatRequest, Message, Role, ToolCall, Usage};
pub use crate::outcome::{ActionStatus, Outcome, RollbackRecord};
use crate::park::{Answer, ParkReason, ParkedRun, ParkedTurn, PendingApproval, Stop, now_unix_ms};
use crate::redact::Redactor;
pub use crate::report::{ActionRecord, RunReport};
use crate::tool::{Effect, Tool, ToolContext, ToolError, ToolOutput, ToolSet};

/// The default system prompt: an SRE that investigates before it acts. Short, because it is
/// resent on every model call, and fixed, so that it stays in the prefix providers cache.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a careful Kubernetes SRE agent. Investigate, then make the smallest \
fix. If a write is denied, do not retry it; say what you would have done. Never invent tools or arguments. End with \
a short report: cause, evidence, changes, what a human must still do.";

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

/// The deepest nesting of tool-call arguments kept: deeper arguments are replaced by a note
/// (the call is then refused as invalid), so that nothing a model writes makes a stored run, an
/// audit line or a report unreadable (JSON readers stop at 128 levels).
pub const MAX_ARGUMENT_DEPTH: usize = 32;

/// The most tool calls of one model response that run. The rest are refused (each gets an error
/// result telling the model to call it in a later step), so that a model cannot fan out
/// thousands of reads against the API server, or of writes against the approvers, in one step.
pub const MAX_CALLS_PER_STEP: usize = 64;

fn depth_exceeds(value: &serde_json::Value, max: usize) -> bool {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if d > max {
            return true;
        }
        stack.extend(children.map(|c| (c, d + 1)));
    }
    false
}

fn bound_arguments(calls: &mut [ToolCall]) {
    for call in calls {
        if depth_exceeds(&call.arguments, MAX_ARGUMENT_DEPTH) {
            call.arguments = serde_json::Value::String(format!(
                "[arguments dropped: nested deeper than {MAX_ARGUMENT_DEPTH} levels]"
            ));
        }
    }
}

fn record_with_time(mut record: ActionRecord) -> ActionRecord {
    record.decided_at = Some(now_rfc3339());
    record
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
    started_at: String,
    started: Instant,
    deadline: Option<Instant>,
    stop: Stop,
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
    Park(Box<Parking>),
}

/// Where a run parks: why, the write waiting (if any) and the turn in progress (if any).
struct Parking {
    reason: ParkReason,
    approval: Option<PendingApproval>,
    turn: Option<ParkedTurn>,
}

impl Parking {
    fn shutdown() -> Self {
        Self {
            reason: ParkReason::Shutdown,
            approval: None,
            turn: None,
        }
    }
}

/// What one write came to: a tool message, or a park until a human decides.
enum WriteEnd {
    Done(Message),
    Park(Box<PendingApproval>),
}

/// How a run started by [`Agent::start`] or [`Agent::resume`] ended for now.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// The run finished.
    Finished(Box<RunReport>),
    /// The run parked; store it and [`resume`](Agent::resume) it later.
    Parked(Box<ParkedRun>),
}

impl RunEnd {
    /// The report: the finished run's, or what a parked run did so far (outcome
    /// [`Outcome::Parked`]).
    pub fn into_report(self) -> RunReport {
        match self {
            Self::Finished(report) => *report,
            Self::Parked(parked) => parked.report(),
        }
    }
}

impl ParkedRun {
    /// What the run did until it parked, as a report with outcome [`Outcome::Parked`].
    pub fn report(&self) -> RunReport {
        RunReport {
            run_id: self.run_id.clone(),
            provider: self.provider.clone(),
            task: self.task.clone(),
            outcome: Outcome::Parked {
                approval: self.approval.as_ref().map(|a| a.id.clone()),
            },
            answer: None,
            actions: self.actions.clone(),
            tool_calls: self.tool_calls,
            steps: self.steps,
            usage: self.usage,
            started_at: self.started_at.clone(),
            duration_ms: self.active_ms,
            transcript: self.transcript.clone(),
            audit: None,
        }
    }
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
        // Boxed: a run's state machine is large (plans, evidence, transcript).
        Box::pin(self.run_messages(vec![Message::user(task)])).await
    }

    /// Runs the agent on a conversation. The system prompt is added in front unless the
    /// conversation starts with a system message. A write the policy
    /// [parks](crate::approval::Ruling::Park) ends the run with [`Outcome::Parked`]; use
    /// [`start`](Self::start) to keep such a run and resume it.
    pub async fn run_messages(&self, messages: Vec<Message>) -> RunReport {
        Box::pin(self.start(messages, &Stop::new()))
            .await
            .into_report()
    }

    /// Runs the agent on a conversation until a final answer, a budget, a write that waits for
    /// a human, or `stop`. A parked run is plain data ([`ParkedRun`]): store it and
    /// [`resume`](Self::resume) it — here or in another process with an agent built the same way.
    pub async fn start(&self, messages: Vec<Message>, stop: &Stop) -> RunEnd {
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
            started_at: now_rfc3339(),
            started,
            deadline: inner.budgets.deadline.map(|d| started + d),
            stop: stop.clone(),
            usage: Usage::default(),
            steps: 0,
            tool_calls: 0,
            actions: Vec::new(),
            writes_applied: 0,
            seen: HashMap::new(),
        };
        run.emit(|run_id| Event::RunStarted {
            run_id,
            task: run.task.clone(),
            provider: inner.provider.name(),
            tools: inner.tools.specs().into_iter().map(|s| s.name).collect(),
        });
        let mut request = ChatRequest {
            messages: transcript,
            tools: inner.tools.model_specs(),
            ..ChatRequest::default()
        };
        let end = run.drive(&mut request).await;
        run.end(request, end)
    }

    /// Goes on with a parked run. `answer` is the decision on its pending write (none: nobody
    /// decided before it expired, or the run parked for a shutdown).
    ///
    /// The gate re-plans the write first: if the target changed since the approver saw it, the
    /// policy is asked again (and the run may park again with a new approval); a decision made
    /// after the approval expired, or no decision, denies the write; only an approval of exactly
    /// the re-planned action applies it.
    pub async fn resume(&self, parked: ParkedRun, answer: Option<Answer>, stop: &Stop) -> RunEnd {
        let inner = &*self.inner;
        let ParkedRun {
            run_id,
            task,
            started_at,
            steps,
            tool_calls,
            usage,
            writes_applied,
            active_ms,
            transcript,
            actions,
            seen,
            turn,
            approval,
            ..
        } = parked;
        let now = Instant::now();
        let started = now
            .checked_sub(Duration::from_millis(active_ms))
            .unwrap_or(now);
        let mut run = Run {
            agent: inner,
            run_id,
            task,
            started_at,
            started,
            deadline: inner.budgets.deadline.map(|d| started + d),
            stop: stop.clone(),
            usage,
            steps,
            tool_calls,
            actions,
            writes_applied,
            seen: seen.into_iter().collect(),
        };
        run.emit(|run_id| Event::RunResumed {
            run_id,
            approval: approval.as_ref().map(|a| a.id.clone()),
        });
        let mut request = ChatRequest {
            messages: transcript,
            tools: inner.tools.model_specs(),
            ..ChatRequest::default()
        };
        if let Some(turn) = turn {
            match Box::pin(run.finish_turn(turn, approval, answer, &mut request.messages)).await {
                Turn::Continue => {}
                Turn::Stop(outcome) => return run.end(request, Ok((outcome, None))),
                Turn::Park(parking) => return run.end(request, Err(parking)),
            }
        }
        let end = run.drive(&mut request).await;
        run.end(request, end)
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

    /// Ends the run: a report, or a parked run to store.
    fn end(
        self,
        request: ChatRequest,
        end: Result<(Outcome, Option<String>), Box<Parking>>,
    ) -> RunEnd {
        let inner = self.agent;
        let (outcome, answer) = match end {
            Ok(done) => done,
            Err(parking) => {
                let approval = parking.approval.as_ref().map(|a| a.id.clone());
                self.emit(|run_id| Event::RunParked {
                    run_id,
                    reason: parking.reason,
                    approval,
                });
                return RunEnd::Parked(Box::new(ParkedRun {
                    run_id: self.run_id,
                    task: self.task,
                    provider: inner.provider.name(),
                    started_at: self.started_at,
                    reason: parking.reason,
                    parked_at: now_rfc3339(),
                    steps: self.steps,
                    tool_calls: self.tool_calls,
                    usage: self.usage,
                    writes_applied: self.writes_applied,
                    active_ms: millis(self.started.elapsed()),
                    transcript: request.messages,
                    actions: self.actions,
                    seen: self.seen.into_iter().collect(),
                    turn: parking.turn,
                    approval: parking.approval,
                }));
            }
        };
        self.emit(|run_id| Event::RunFinished {
            run_id,
            outcome: outcome.clone(),
            steps: self.steps,
            usage: self.usage,
        });
        RunEnd::Finished(Box::new(RunReport {
            run_id: self.run_id,
            provider: inner.provider.name(),
            task: self.task,
            outcome,
            answer,
            actions: self.actions,
            tool_calls: self.tool_calls,
            steps: self.steps,
            usage: self.usage,
            started_at: self.started_at,
            duration_ms: millis(self.started.elapsed()),
            transcript: request.messages,
            audit: inner.audit.as_ref().map(|log| log.summary()),
        }))
    }

    async fn drive(
        &mut self,
        request: &mut ChatRequest,
    ) -> Result<(Outcome, Option<String>), Box<Parking>> {
        loop {
            if self.steps >= self.agent.budgets.max_steps {
                return Ok((Outcome::MaxSteps, None));
            }
            if self.deadline_passed() {
                return Ok((Outcome::Deadline, None));
            }
            if self.stop.is_stopped() {
                return Err(Box::new(Parking::shutdown()));
            }
            self.steps += 1;
            let step = self.steps;
            self.emit(|run_id| Event::StepStarted { run_id, step });
            let signal = self.stop.clone();
            let call = async {
                tokio::select! {
                    r = self.agent.provider.chat(request) => Some(r),
                    () = signal.stopped() => None,
                }
            };
            let response = match self.deadline {
                Some(d) => match tokio::time::timeout_at(d, call).await {
                    Ok(r) => r,
                    Err(_) => return Ok((Outcome::Deadline, None)),
                },
                None => call.await,
            };
            // A model call has no side effects: one cut short by a stop is made again on resume.
            let Some(response) = response else {
                self.steps -= 1;
                return Err(Box::new(Parking::shutdown()));
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    // Providers quote their response bodies, which may echo a key.
                    return Ok((
                        Outcome::ProviderError {
                            kind: e.kind().to_owned(),
                            message: self.redact(e.to_string()),
                        },
                        None,
                    ));
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
            bound_arguments(&mut message.tool_calls);
            let calls = message.tool_calls.clone();
            if calls.is_empty() {
                let answer = message.content.clone();
                request.messages.push(message);
                return Ok((Outcome::Completed, Some(answer)));
            }
            request.messages.push(message);
            if let Some(max) = self.agent.budgets.max_total_tokens
                && self.usage.total() > max
            {
                return Ok((Outcome::TokenBudget, None));
            }
            match self.run_tools(&calls, &mut request.messages).await {
                Turn::Continue => {}
                Turn::Stop(outcome) => return Ok((outcome, None)),
                Turn::Park(parking) => return Err(parking),
            }
        }
    }

    /// Runs one turn's calls and appends one tool message per call, in the model's order.
    async fn run_tools(&mut self, calls: &[ToolCall], messages: &mut Vec<Message>) -> Turn {
        let agent = self.agent;
        let world = self.writes_applied;
        let mut results: Vec<Option<Message>> = vec![None; calls.len()];
        let mut reads: Vec<(usize, &Arc<dyn Tool>)> = Vec::new();
        let mut writes: Vec<usize> = Vec::new();
        let mut stop = None;
        self.tool_calls += calls.len();
        for (i, call) in calls.iter().enumerate() {
            if i >= MAX_CALLS_PER_STEP {
                results[i] = Some(self.reject(
                    call,
                    &format!(
                        "too many tool calls in one step: the first {MAX_CALLS_PER_STEP} of {} ran; \
                         make this call in a later step if you still need it",
                        calls.len()
                    ),
                ));
                continue;
            }
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
                Effect::Write => writes.push(i),
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

        self.run_writes(calls, results, writes, messages).await
    }

    /// Runs a turn's writes one after the other, then appends the turn's results. Parks at the
    /// first write that waits for a human.
    async fn run_writes(
        &mut self,
        calls: &[ToolCall],
        mut results: Vec<Option<Message>>,
        writes: Vec<usize>,
        messages: &mut Vec<Message>,
    ) -> Turn {
        for (n, &i) in writes.iter().enumerate() {
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
            let end = match self.agent.tools.validate(&call.name, &call.arguments) {
                Ok(tool) => self.call_write(tool.as_ref(), call).await,
                Err(e) => WriteEnd::Done(self.reject(call, &e.to_string())),
            };
            match end {
                WriteEnd::Done(message) => results[i] = Some(message),
                WriteEnd::Park(approval) => {
                    return Turn::Park(Box::new(Parking {
                        reason: ParkReason::Approval,
                        approval: Some(*approval),
                        turn: Some(ParkedTurn {
                            calls: calls.to_vec(),
                            results,
                            writes: writes[n..].to_vec(),
                        }),
                    }));
                }
            }
        }
        Self::push_results(results, calls, messages);
        Turn::Continue
    }

    /// Finishes the turn a run parked in: the waiting write with its answer, then the writes
    /// after it.
    async fn finish_turn(
        &mut self,
        turn: ParkedTurn,
        approval: Option<PendingApproval>,
        answer: Option<Answer>,
        messages: &mut Vec<Message>,
    ) -> Turn {
        let ParkedTurn {
            calls,
            mut results,
            writes,
        } = turn;
        // A turn from a store is checked like a model's: it must fit.
        if results.len() != calls.len() || writes.iter().any(|&i| i >= calls.len()) {
            Self::push_results(Vec::new(), &calls, messages);
            return Turn::Stop(Outcome::ProviderError {
                kind: "parked_run".into(),
                message: "the parked turn does not fit its calls; nothing was applied".into(),
            });
        }
        let Some((&first, rest)) = writes.split_first() else {
            Self::push_results(results, &calls, messages);
            return Turn::Continue;
        };
        let call = &calls[first];
        let end = match self.agent.tools.validate(&call.name, &call.arguments) {
            Ok(tool) => {
                let tool = Arc::clone(tool);
                Box::pin(self.resume_write(tool.as_ref(), call, approval, answer)).await
            }
            Err(e) => WriteEnd::Done(self.reject(call, &e.to_string())),
        };
        match end {
            WriteEnd::Done(message) => results[first] = Some(message),
            WriteEnd::Park(approval) => {
                return Turn::Park(Box::new(Parking {
                    reason: ParkReason::Approval,
                    approval: Some(*approval),
                    turn: Some(ParkedTurn {
                        calls,
                        results,
                        writes,
                    }),
                }));
            }
        }
        self.run_writes(&calls, results, rest.to_vec(), messages)
            .await
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

    fn new_record(call: &ToolCall) -> ActionRecord {
        ActionRecord {
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
        }
    }

    /// Plan → policy → [`Gate`]: the gate alone authorizes and applies the write, verifies it and
    /// rolls it back; the run records and reports each step.
    async fn call_write(&mut self, tool: &dyn Tool, call: &ToolCall) -> WriteEnd {
        let record = Self::new_record(call);
        match self.plan_write(tool, call, record).await {
            Ok((planned, record)) => self.decide_write(tool, call, planned, record).await,
            Err(message) => WriteEnd::Done(message),
        }
    }

    async fn plan_write(
        &mut self,
        tool: &dyn Tool,
        call: &ToolCall,
        mut record: ActionRecord,
    ) -> Result<(Planned, ActionRecord), Message> {
        match self
            .agent
            .gate
            .plan(tool, &call.arguments, &self.context(call))
            .await
        {
            Ok(p) => {
                record.preview = Some(p.plan.clone());
                Ok((p, record))
            }
            Err(e) => {
                let text = self.redact(format!(
                    "preview of {} failed, nothing was changed: {e}",
                    call.name
                ));
                record.result.clone_from(&text);
                self.actions.push(record);
                Err(self.reject(call, &text))
            }
        }
    }

    fn approval_request(&self, call: &ToolCall, planned: &Planned) -> ApprovalRequest {
        ApprovalRequest {
            run_id: self.run_id.clone(),
            tool: call.name.clone(),
            call_id: call.id.clone(),
            arguments: call.arguments.clone(),
            // Promise an automatic undo only when the plan carries one.
            rollback_on_failure: !planned.plan.undo.is_null(),
            preview: planned.plan.clone(),
            incident: self.task.clone(),
            writes_so_far: self.writes_applied,
        }
    }

    /// Asks the policy about a planned write: applies it, records a denial, or parks.
    async fn decide_write(
        &mut self,
        tool: &dyn Tool,
        call: &ToolCall,
        planned: Planned,
        record: ActionRecord,
    ) -> WriteEnd {
        let request = self.approval_request(call, &planned);
        self.emit(|run_id| Event::ApprovalRequested {
            run_id,
            request: Box::new(request.clone()),
        });
        let decision = match self.agent.policy.rule(&request).await {
            Ruling::Decided(decision) => decision,
            Ruling::Park => {
                // The gate keeps nothing for a parked write: on resume it plans again.
                self.agent.gate.withdraw(&planned);
                let ttl = self.agent.gate.ttl();
                let expires = SystemTime::now() + ttl;
                let expires_at_ms = now_unix_ms().saturating_add(millis(ttl));
                return WriteEnd::Park(Box::new(PendingApproval {
                    id: PendingApproval::id_for(&self.run_id, &call.id, &planned.action),
                    action: planned.action,
                    request,
                    requested_at: now_rfc3339(),
                    expires_at: humantime::format_rfc3339_millis(expires).to_string(),
                    expires_at_ms,
                }));
            }
        };
        self.decided(tool, call, &planned, decision, record_with_time(record))
            .await
    }

    /// Records a decision on a planned write and applies it when approved.
    async fn decided(
        &mut self,
        tool: &dyn Tool,
        call: &ToolCall,
        planned: &Planned,
        decision: Decision,
        mut record: ActionRecord,
    ) -> WriteEnd {
        record.decision = Some(decision.clone());
        self.emit(|run_id| Event::ApprovalDecided {
            run_id,
            call_id: call.id.clone(),
            tool: call.name.clone(),
            fingerprint: planned.plan.fingerprint.clone(),
            decision: decision.clone(),
        });
        let by = match decision {
            Decision::Denied { by, reason } => {
                self.agent.gate.withdraw(planned);
                let text = format!(
                    "denied by {by}: {reason}. Nothing was changed. Do not retry this write; \
                     report what you would have done and why."
                );
                record.status = ActionStatus::Denied;
                record.result.clone_from(&text);
                self.actions.push(record);
                return WriteEnd::Done(Message::tool_error(call, text));
            }
            Decision::Approved { by } => by,
        };
        WriteEnd::Done(self.apply_approved(tool, call, planned, &by, record).await)
    }

    /// Goes on with a parked write: the gate re-plans it; a changed target asks the policy again,
    /// a late or missing answer denies, and an approval of exactly this action applies it.
    async fn resume_write(
        &mut self,
        tool: &dyn Tool,
        call: &ToolCall,
        approval: Option<PendingApproval>,
        answer: Option<Answer>,
    ) -> WriteEnd {
        let Some(pending) = approval else {
            return self.call_write(tool, call).await;
        };
        let mut record = Self::new_record(call);
        record.preview = Some(pending.request.preview.clone());
        let decided_at_ms = answer
            .as_ref()
            .map_or_else(now_unix_ms, |a| a.decided_at_ms);
        let decision = match answer {
            None => Decision::deny(
                "gate:expired",
                format!(
                    "nobody decided before the approval expired at {}",
                    pending.expires_at
                ),
            ),
            Some(answer) if pending.expired_at(answer.decided_at_ms) => Decision::deny(
                "gate:expired",
                format!(
                    "the decision came after the approval expired at {}",
                    pending.expires_at
                ),
            ),
            Some(answer) => answer.decision,
        };
        let (planned, record) = match self.plan_write(tool, call, record).await {
            Ok(p) => p,
            Err(message) => return WriteEnd::Done(message),
        };
        if decision.is_approved() && planned.action != pending.action {
            // The target changed since the approver saw the plan: the decision is void.
            let reason = format!(
                "the target changed since approval {} was asked; asking again",
                pending.id
            );
            self.emit(|run_id| Event::WriteRefused {
                run_id,
                call_id: call.id.clone(),
                tool: call.name.clone(),
                reason,
            });
            return self.decide_write(tool, call, planned, record).await;
        }
        // The rules in force now still bind it (they may have been tightened while it waited).
        let decision = match decision {
            Decision::Approved { .. } => {
                let request = self.approval_request(call, &planned);
                self.agent
                    .policy
                    .recheck(&request)
                    .await
                    .unwrap_or(decision)
            }
            denied @ Decision::Denied { .. } => denied,
        };
        let mut record = record;
        record.decided_at = Some(
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(decided_at_ms))
                .to_string(),
        );
        self.decided(tool, call, &planned, decision, record).await
    }

    /// The gate authorizes exactly the planned action, applies, verifies and rolls back.
    async fn apply_approved(
        &mut self,
        tool: &dyn Tool,
        call: &ToolCall,
        planned: &Planned,
        by: &str,
        mut record: ActionRecord,
    ) -> Message {
        let gate = &self.agent.gate;
        let grant = match gate
            .authorize(tool, &call.arguments, &planned.action, by, &call.id)
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
                        let mut verification = v.clone();
                        verification.detail = this.redact(verification.detail);
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
