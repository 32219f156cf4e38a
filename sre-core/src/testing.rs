//! Test helpers (feature `test-util`): a [`ScriptedProvider`] that replays responses and records
//! the requests it got, simple read and write tools, and (feature `mocks`) mockall mocks of the
//! core traits.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::llm::{LlmError, LlmProvider};
use crate::message::{ChatRequest, ChatResponse, ToolCall, ToolSpec, Usage};
use crate::tool::{
    Effect, Preview, Risk, Target, Tool, ToolContext, ToolError, ToolOutput, Verification,
    parse_args, spec_for,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A provider that replays scripted responses in order and records every request.
/// When the script runs out it answers with an error.
pub struct ScriptedProvider {
    name: String,
    script: Mutex<VecDeque<Result<ChatResponse, LlmError>>>,
    requests: Mutex<Vec<ChatRequest>>,
    record: bool,
    calls: AtomicUsize,
}

impl std::fmt::Debug for ScriptedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedProvider")
            .field("name", &self.name)
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

impl ScriptedProvider {
    /// Replays `responses`.
    pub fn new(responses: impl IntoIterator<Item = ChatResponse>) -> Self {
        Self::with_results(responses.into_iter().map(Ok))
    }

    /// Replays responses and errors.
    pub fn with_results(results: impl IntoIterator<Item = Result<ChatResponse, LlmError>>) -> Self {
        Self {
            name: "scripted/test".into(),
            script: Mutex::new(results.into_iter().collect()),
            requests: Mutex::new(Vec::new()),
            record: true,
            calls: AtomicUsize::new(0),
        }
    }

    /// Stops recording requests (benchmarks: recording clones the transcript).
    #[must_use]
    pub fn without_recording(mut self) -> Self {
        self.record = false;
        self
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<ChatRequest> {
        lock(&self.requests).clone()
    }

    /// How many times `chat` was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Responses not yet replayed.
    pub fn remaining(&self) -> usize {
        lock(&self.script).len()
    }
}

#[async_trait]
impl LlmProvider for ScriptedProvider {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.record {
            lock(&self.requests).push(request.clone());
        }
        lock(&self.script).pop_front().unwrap_or_else(|| {
            Err(LlmError::Other(
                "the scripted provider has no more responses".into(),
            ))
        })
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A tool call, for scripts.
pub fn call(id: &str, name: &str, arguments: Value) -> ToolCall {
    ToolCall::new(id, name, arguments)
}

/// A scripted turn that calls tools (10 input, 5 output tokens).
pub fn tool_turn(calls: Vec<ToolCall>) -> ChatResponse {
    ChatResponse::tool_calls(calls, Usage::new(10, 5))
}

/// A scripted final answer (10 input, 5 output tokens).
pub fn answer(text: &str) -> ChatResponse {
    ChatResponse::text(text, Usage::new(10, 5))
}

/// Arguments of [`EchoTool`].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoArgs {
    /// Text to return.
    pub text: String,
}

/// A read tool named `echo` that returns its `text` argument and counts its calls.
#[derive(Debug, Clone)]
pub struct EchoTool {
    spec: ToolSpec,
    calls: Arc<AtomicUsize>,
}

impl Default for EchoTool {
    fn default() -> Self {
        Self::named("echo")
    }
}

impl EchoTool {
    /// An echo tool with another name.
    pub fn named(name: &str) -> Self {
        Self {
            spec: spec_for::<EchoArgs>(name, "Returns the text it is given."),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Tool for EchoTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, args: &Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let args: EchoArgs = parse_args(&self.spec.name, args)?;
        Ok(ToolOutput::text(args.text))
    }
}

/// Arguments of [`ScaleTool`].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleArgs {
    /// Namespace of the deployment.
    pub namespace: String,
    /// Deployment name.
    pub deployment: String,
    /// Desired replicas.
    pub replicas: u32,
}

/// The state behind a [`ScaleTool`]: one deployment with a version that changes on every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleState {
    /// Current replicas.
    pub replicas: u32,
    /// Bumped on every change (the fingerprint).
    pub version: u64,
    /// Writes applied (including rollbacks).
    pub writes: usize,
}

/// A write tool named `scale` over an in-memory deployment, with preview, fingerprint,
/// precondition, optional failing verification and rollback.
#[derive(Debug, Clone)]
pub struct ScaleTool {
    spec: ToolSpec,
    state: Arc<Mutex<ScaleState>>,
    fail_verification: bool,
}

impl Default for ScaleTool {
    fn default() -> Self {
        Self {
            spec: spec_for::<ScaleArgs>("scale", "Scales a deployment to a number of replicas."),
            state: Arc::new(Mutex::new(ScaleState {
                replicas: 1,
                version: 1,
                writes: 0,
            })),
            fail_verification: false,
        }
    }
}

impl ScaleTool {
    /// A tool whose verification always fails (so the agent rolls back).
    #[must_use]
    pub fn failing_verification(mut self) -> Self {
        self.fail_verification = true;
        self
    }

    /// The current state.
    pub fn state(&self) -> ScaleState {
        lock(&self.state).clone()
    }

    /// Changes the target behind the agent's back (as another actor would).
    pub fn bump(&self) {
        lock(&self.state).version += 1;
    }

    fn fingerprint_now(&self, args: &ScaleArgs) -> String {
        format!(
            "{}/{}@v{}",
            args.namespace,
            args.deployment,
            lock(&self.state).version
        )
    }
}

#[async_trait]
impl Tool for ScaleTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn effect(&self) -> Effect {
        Effect::Write
    }

    async fn preview(&self, args: &Value, _ctx: &ToolContext) -> Result<Preview, ToolError> {
        let args: ScaleArgs = parse_args(&self.spec.name, args)?;
        let current = lock(&self.state).replicas;
        let mut plan = Preview::new(
            format!(
                "deployment {}/{}: replicas {current} -> {}",
                args.namespace, args.deployment, args.replicas
            ),
            format!("- replicas: {current}\n+ replicas: {}", args.replicas),
            self.fingerprint_now(&args),
            Risk::Low,
        );
        plan.target = Some(Target {
            kind: "deployments.apps".into(),
            namespace: args.namespace.clone(),
            name: args.deployment.clone(),
            resource_version: lock(&self.state).version.to_string(),
        });
        // A scale changes no image; the undo restores the replicas it found.
        plan.images = Some(Vec::new());
        plan.undo = serde_json::json!({"replicas": current});
        Ok(plan)
    }

    async fn call(&self, args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let approved = ctx.approved_fingerprint()?.to_owned();
        let args: ScaleArgs = parse_args(&self.spec.name, args)?;
        if self.fingerprint_now(&args) != approved {
            return Err(ToolError::Conflict(format!(
                "{}/{} changed since {approved}",
                args.namespace, args.deployment
            )));
        }
        let mut s = lock(&self.state);
        let before = s.replicas;
        s.replicas = args.replicas;
        s.version += 1;
        s.writes += 1;
        Ok(ToolOutput::text(format!(
            "scaled {}/{} from {before} to {} replicas",
            args.namespace, args.deployment, args.replicas
        )))
    }

    async fn verify(
        &self,
        _args: &Value,
        _output: &ToolOutput,
        _ctx: &ToolContext,
    ) -> Option<Verification> {
        Some(if self.fail_verification {
            Verification::new(false, "0 of the new replicas became ready")
        } else {
            Verification::new(true, "all replicas ready")
        })
    }

    async fn rollback(
        &self,
        args: &Value,
        _output: &ToolOutput,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        // The approved plan carries its own undo.
        let before = ctx
            .approved_plan(&self.spec.name, args)?
            .undo
            .get("replicas")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ToolError::Failed("the plan carries no undo".into()))?;
        let mut s = lock(&self.state);
        s.replicas = before;
        s.version += 1;
        s.writes += 1;
        Ok(ToolOutput::text(format!("restored {before} replicas")))
    }
}

/// A grant for `plan` of `tool` with `args`, for tests of a write tool on its own (its `call`,
/// `verify` and `rollback` with the context this returns). Production code gets grants only from
/// the [`Gate`](crate::Gate).
pub fn grant(tool: &str, args: &Value, plan: &crate::tool::Preview) -> crate::tool::ToolContext {
    crate::tool::ToolContext {
        run_id: "test".into(),
        call_id: "test".into(),
        grant: Some(crate::approval::Grant::for_plan(
            tool,
            "test",
            args,
            plan.clone(),
            "test",
            std::time::Duration::from_secs(300),
        )),
    }
}

/// A cloneable in-memory writer (for [`Prompt`](crate::Prompt) output and audit logs in tests).
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// The bytes written so far, as text.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// mockall mocks of the core traits (feature `mocks`).
#[cfg(feature = "mocks")]
pub mod mocks {
    use async_trait::async_trait;
    use serde_json::Value;

    use crate::approval::{ApprovalPolicy, ApprovalRequest, Approver, Decision};
    use crate::event::{Event, Observer};
    use crate::llm::{LlmError, LlmProvider};
    use crate::message::{ChatRequest, ChatResponse, ToolSpec};
    use crate::tool::{Effect, Preview, Tool, ToolContext, ToolError, ToolOutput, Verification};

    mockall::mock! {
        /// A mock [`LlmProvider`].
        pub Provider {}
        #[async_trait]
        impl LlmProvider for Provider {
            async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
            fn name(&self) -> String;
        }
    }

    mockall::mock! {
        /// A mock [`Tool`].
        pub Tool {}
        #[async_trait]
        impl Tool for Tool {
            fn spec(&self) -> &ToolSpec;
            async fn call(&self, args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError>;
            fn effect(&self) -> Effect;
            async fn preview(&self, args: &Value, ctx: &ToolContext) -> Result<Preview, ToolError>;
            async fn fingerprint(&self, args: &Value, ctx: &ToolContext) -> Result<String, ToolError>;
            async fn verify(&self, args: &Value, output: &ToolOutput, ctx: &ToolContext) -> Option<Verification>;
            async fn rollback(&self, args: &Value, output: &ToolOutput, ctx: &ToolContext) -> Result<ToolOutput, ToolError>;
        }
    }

    mockall::mock! {
        /// A mock [`ApprovalPolicy`].
        pub Policy {}
        #[async_trait]
        impl ApprovalPolicy for Policy {
            async fn decide(&self, request: &ApprovalRequest) -> Decision;
        }
    }

    mockall::mock! {
        /// A mock [`Approver`].
        pub Approver {}
        #[async_trait]
        impl Approver for Approver {
            async fn review(&self, request: &ApprovalRequest) -> Decision;
        }
    }

    mockall::mock! {
        /// A mock [`Observer`].
        pub Observer {}
        impl Observer for Observer {
            fn on_event(&self, event: &Event);
        }
    }
}
