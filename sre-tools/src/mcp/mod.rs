//! The tools as a Model Context Protocol server (feature `mcp`), built on the official Rust SDK
//! (`rmcp`), over stdio ([`McpServer::serve_stdio`]) and streamable HTTP with a bearer token
//! ([`http::serve`]).
//!
//! An MCP client gets the same tools, specs and JSON Schemas as the agent, and never a way around
//! the one safety gate ([`sre_core::Gate`]):
//! - read tools run directly, their arguments validated against the tool's schema;
//! - a write is previewed (a server-side dry run), checked against the [`McpConfig::rules`], and
//!   asked about: through MCP elicitation — the diff, the target and the expiry in the question —
//!   when the client declared that capability, else through the [`McpConfig::fallback`] policy,
//!   else it is refused with an error saying how to enable approvals. Only an approval of exactly
//!   the previewed action, in time, on an unchanged target, applies it; it is verified and rolled
//!   back automatically when verification fails;
//! - the client's own claims — a tool's hint, a `confirmed` argument, `_meta` — decide nothing:
//!   schemas are closed, and the hints are the server's;
//! - [`McpConfig::read_only`] removes the writes from the list and refuses them by name.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sre_tools::k8s::Limits;
//! use sre_tools::mcp::{McpConfig, McpServer};
//! use sre_tools::sim::Simulator;
//!
//! let sim = Simulator::start_named("bad-release").await?;
//! let server = McpServer::new(sim.tools(Limits::default())?, McpConfig::default())?;
//! server.serve_stdio().await?;
//! # Ok(()) }
//! ```

mod approve;
pub mod clients;
pub mod http;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Value, json};
use sre_core::gate::redact_tool_error;
use sre_core::tool::ToolSetError;
use sre_core::{
    ApprovalPolicy, ApprovalRequest, Decision, Effect, Gate, GateError, Planned, Redactor, Ruling,
    Tool, ToolContext, ToolError, ToolOutput, ToolSet,
};

/// How the MCP server serves its tools and approves writes. `Default`: every tool, no extra
/// rules, approval through elicitation only, a question waits 2 minutes, a plan 5.
#[derive(Clone)]
pub struct McpConfig {
    /// Offer only the read tools; a write called by name anyway is refused.
    pub read_only: bool,
    /// Rules every write must pass before anyone is asked (namespace and registry allow-lists,
    /// a risk ceiling, writes per session), checked with [`ApprovalPolicy::recheck`], which asks
    /// no one. `None`: the tools' own scope only.
    pub rules: Option<Arc<dyn ApprovalPolicy>>,
    /// Who decides a write for a client that did not declare the elicitation capability: e.g.
    /// [`sre_core::Rules`] over an automatic approver, [`sre_core::ReadOnly`], or a
    /// [`sre_core::Prompt`] when the terminal is free. `None`: such a client gets a tool error
    /// saying how to enable approvals.
    pub fallback: Option<Arc<dyn ApprovalPolicy>>,
    /// How long an elicitation question waits for its answer (never longer than the plan is
    /// valid); no answer denies.
    pub elicitation_timeout: Duration,
    /// How long a previewed plan stays valid: an approval after that applies nothing.
    pub approval_ttl: Duration,
    /// Appended to the error a client without elicitation gets when there is no fallback: how
    /// the operator enables approvals (e.g. the command-line flag).
    pub enable_hint: String,
}

impl fmt::Debug for McpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpConfig")
            .field("read_only", &self.read_only)
            .field("rules", &self.rules.is_some())
            .field("fallback", &self.fallback.is_some())
            .field("elicitation_timeout", &self.elicitation_timeout)
            .field("approval_ttl", &self.approval_ttl)
            .finish_non_exhaustive()
    }
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            read_only: false,
            rules: None,
            fallback: None,
            elicitation_timeout: Duration::from_secs(120),
            approval_ttl: Duration::from_secs(300),
            enable_hint: "use a client that supports elicitation, or configure an approval channel for clients that do not".into(),
        }
    }
}

/// What the server says about itself in `initialize`.
const INSTRUCTIONS: &str = "Kubernetes SRE and DevSecOps tools (sre-agent). Read tools run directly. \
Every write (readOnlyHint false) is first previewed with a server-side dry run; a human approves \
exactly that change (asked through elicitation: the diff, the target and the expiry), and only then \
is it applied, verified, and rolled back automatically if verification fails. An approval is bound \
to the target's version and expires; declining, cancelling or not answering changes nothing.";

/// The tools and the gate, shared by every session.
struct Shared {
    set: ToolSet,
    listed: Vec<rmcp::model::Tool>,
    /// Writes left out by `read_only`, to refuse them by name.
    withheld: BTreeSet<String>,
    gate: Gate,
    config: McpConfig,
    /// One write is authorized and applied at a time.
    applying: tokio::sync::Mutex<()>,
    sessions: AtomicU64,
    /// Writes applied by this server, whatever the session: the rules' limit counts these (a
    /// client that reconnects does not start again from zero).
    writes: AtomicUsize,
}

/// One client's session.
struct Session {
    id: u64,
}

/// The MCP server: an [`rmcp::ServerHandler`] over a set of tools. Cheap to clone; clones share
/// the tools, the gate and the session.
#[derive(Clone)]
pub struct McpServer {
    shared: Arc<Shared>,
    session: Arc<Session>,
}

impl fmt::Debug for McpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpServer")
            .field("tools", &self.shared.set)
            .field("config", &self.shared.config)
            .field("session", &self.session.id)
            .finish_non_exhaustive()
    }
}

/// MCP hints of a write tool: `(destructive, idempotent)`. Hints only — nothing is decided on
/// them; a write this table does not know is assumed destructive and not idempotent.
fn write_hints(name: &str) -> (bool, bool) {
    match name {
        // Replaces the running image / replica count; the same call again changes nothing more.
        "k8s_patch_image" | "k8s_scale_deployment" => (true, true),
        // Each call moves to another revision / restarts the pods again.
        _ => (true, false),
    }
}

fn listed(tool: &dyn Tool) -> rmcp::model::Tool {
    let spec = tool.spec();
    let schema: JsonObject = match &spec.parameters {
        Value::Object(map) => map.clone(),
        _ => JsonObject::new(),
    };
    let annotations = match tool.effect() {
        Effect::Read => ToolAnnotations::new().read_only(true),
        Effect::Write => {
            let (destructive, idempotent) = write_hints(&spec.name);
            ToolAnnotations::new()
                .read_only(false)
                .destructive(destructive)
                .idempotent(idempotent)
        }
    };
    let description = match tool.effect() {
        Effect::Read => spec.description.clone(),
        Effect::Write => format!(
            "{} Every call is previewed (server-side dry run) and applied only after a human approves exactly that change.",
            spec.description
        ),
    };
    rmcp::model::Tool::new(spec.name.clone(), description, Arc::new(schema))
        .with_annotations(annotations)
}

impl McpServer {
    /// A server over `tools` (the agent's own: `K8s::tools`, `Trivy::tools`, `Simulator::tools`).
    ///
    /// # Errors
    /// A duplicate or invalid tool name, or a schema that is not a JSON Schema of an object.
    pub fn new(tools: Vec<Arc<dyn Tool>>, config: McpConfig) -> Result<Self, ToolSetError> {
        let mut set = ToolSet::new();
        let mut withheld = BTreeSet::new();
        for tool in tools {
            if config.read_only && tool.effect() == Effect::Write {
                withheld.insert(tool.spec().name.clone());
                continue;
            }
            set.add(tool)?;
        }
        let listed = set
            .specs()
            .iter()
            .filter_map(|s| set.get(&s.name))
            .map(|t| listed(t.as_ref()))
            .collect();
        let gate = Gate::new(Redactor::default(), config.approval_ttl);
        let shared = Arc::new(Shared {
            set,
            listed,
            withheld,
            gate,
            config,
            applying: tokio::sync::Mutex::new(()),
            sessions: AtomicU64::new(0),
            writes: AtomicUsize::new(0),
        });
        Ok(Self::with_session(shared))
    }

    fn with_session(shared: Arc<Shared>) -> Self {
        let id = shared.sessions.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            session: Arc::new(Session { id }),
        }
    }

    /// A server for another client's session: the same tools and gate, its own count of
    /// applied writes. The HTTP transport makes one per session.
    #[must_use]
    pub fn new_session(&self) -> Self {
        Self::with_session(Arc::clone(&self.shared))
    }

    /// The tools as MCP lists them (name, description, input schema, annotations).
    pub fn tools(&self) -> &[rmcp::model::Tool] {
        &self.shared.listed
    }

    /// The gate every write goes through.
    pub fn gate(&self) -> &Gate {
        &self.shared.gate
    }

    /// Waits until no write is being applied (verified, rolled back): call it before the process
    /// exits, so a client that disconnects mid-write does not cut the verification short.
    pub async fn writes_done(&self) {
        drop(self.shared.applying.lock().await);
    }

    /// Serves one client on this process's stdin and stdout until it disconnects, then waits
    /// for a write being applied to finish.
    ///
    /// # Errors
    /// When the client never completes `initialize`, or the transport fails.
    pub async fn serve_stdio(self) -> std::io::Result<()> {
        let this = self.clone();
        let running = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| std::io::Error::other(format!("mcp: {e}")))?;
        let ended = running.waiting().await;
        this.writes_done().await;
        ended
            .map(|_| ())
            .map_err(|e| std::io::Error::other(format!("mcp: {e}")))
    }

    fn run_id(&self) -> String {
        format!("mcp-{}", self.session.id)
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = request.name.as_ref();
        if self.shared.withheld.contains(name) {
            return Err(ErrorData::invalid_params(
                format!(
                    "tool {name} is a write and this server is read-only: it is not offered and cannot be called; nothing was run"
                ),
                None,
            ));
        }
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let tool = match self.shared.set.validate(name, &args) {
            Ok(tool) => Arc::clone(tool),
            // An unknown tool is a protocol error; arguments outside the schema are a tool
            // error the model can read and correct (MCP 2025-11-25, SEP-1303).
            Err(e @ ToolError::UnknownTool { .. }) => {
                return Err(ErrorData::invalid_params(e.to_string(), None));
            }
            Err(e) => return Ok(failed(&e)),
        };
        let call_id = format!("mcp-{}-{}", self.session.id, context.id);
        match tool.effect() {
            Effect::Read => Ok(self.read(tool.as_ref(), &args, &call_id).await),
            Effect::Write => Ok(self.write(tool.as_ref(), &args, &call_id, context).await),
        }
    }

    async fn read(&self, tool: &dyn Tool, args: &Value, call_id: &str) -> CallToolResult {
        let ctx = ToolContext {
            run_id: self.run_id(),
            call_id: call_id.to_owned(),
            grant: None,
        };
        let redactor = self.shared.gate.redactor();
        match guarded(tool.call(args, &ctx)).await {
            Ok(out) => {
                let data = out.data.as_ref().map(|d| redactor.redact_value(d));
                result(
                    redactor.redact(&out.content).into_owned(),
                    data.map(structured),
                    false,
                )
            }
            Err(e) => failed(&redact_tool_error(redactor, e)),
        }
    }

    async fn write(
        &self,
        tool: &dyn Tool,
        args: &Value,
        call_id: &str,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let name = tool.spec().name.clone();
        let gate = &self.shared.gate;
        let elicit = approve::can_elicit(&context.peer);
        if !elicit && self.shared.config.fallback.is_none() {
            return not_applied(
                &name,
                None,
                format!(
                    "{name} is a write and needs a human's approval, but this client did not declare the MCP elicitation capability, so it cannot be asked, and the server has no other approval channel; nothing was applied. To enable approvals: {}",
                    self.shared.config.enable_hint
                ),
                json!({"stage": "approval", "error": "no approval channel"}),
            );
        }
        let ctx = ToolContext {
            run_id: self.run_id(),
            call_id: call_id.to_owned(),
            grant: None,
        };
        let planned = match gate.plan(tool, args, &ctx).await {
            Ok(p) => p,
            Err(e) => {
                let e = redact_tool_error(gate.redactor(), e);
                return not_applied(
                    &name,
                    None,
                    format!("the preview of {name} failed, nothing was changed: {e}"),
                    json!({"stage": "preview", "error": e.to_string(), "kind": e.kind()}),
                );
            }
        };
        let request = ApprovalRequest {
            run_id: self.run_id(),
            tool: name.clone(),
            call_id: call_id.to_owned(),
            arguments: args.clone(),
            rollback_on_failure: !planned.plan.undo.is_null(),
            preview: planned.plan.clone(),
            incident: String::new(),
            writes_so_far: self.shared.writes.load(Ordering::SeqCst),
        };
        let by = match self.decide(&request, &planned, elicit, context).await {
            Decision::Approved { by } => by,
            denied @ Decision::Denied { .. } => {
                gate.withdraw(&planned);
                let (by, reason) = match &denied {
                    Decision::Denied { by, reason } => (by.as_str(), reason.as_str()),
                    Decision::Approved { by } => (by.as_str(), ""),
                };
                return not_applied(
                    &name,
                    Some(&planned),
                    format!("denied by {by}: {reason}; nothing was applied"),
                    json!({"stage": "approval", "decision": denied}),
                );
            }
        };
        self.apply(tool, args, &request, &planned, &by, elicit)
            .await
    }

    /// Redeems the approval of `by` for exactly `planned`, then applies, verifies and (when
    /// verification fails) rolls back; one write at a time.
    async fn apply(
        &self,
        tool: &dyn Tool,
        args: &Value,
        request: &ApprovalRequest,
        planned: &Planned,
        by: &str,
        elicited: bool,
    ) -> CallToolResult {
        let name = tool.spec().name.as_str();
        let call_id = request.call_id.as_str();
        let gate = &self.shared.gate;
        let _one_at_a_time = self.shared.applying.lock().await;
        // The limits again, now that no other write can be applied meanwhile: writes approved
        // in parallel each saw the count from before the others were applied.
        if let Some(denied) = self.recheck(request, elicited).await {
            gate.withdraw(planned);
            return not_applied(
                name,
                Some(planned),
                format!(
                    "approved by {by} but refused on a second look: {}; nothing was applied",
                    match &denied {
                        Decision::Denied { reason, .. } => reason.as_str(),
                        Decision::Approved { .. } => "",
                    }
                ),
                json!({"stage": "authorize", "decision": denied}),
            );
        }
        let grant = match gate
            .authorize(tool, args, &planned.action, by, call_id)
            .await
        {
            Ok(g) => g,
            Err(e) => {
                let stale = matches!(e, GateError::Refused(_));
                return not_applied(
                    name,
                    Some(planned),
                    format!("approved by {by} but refused by the gate: {e}"),
                    json!({"stage": "authorize", "error": e.to_string(), "stale": stale}),
                );
            }
        };
        let applied = match gate
            .execute(tool, args, grant, &self.run_id(), call_id, |_| {})
            .await
        {
            Ok(applied) => applied,
            Err(e) => {
                return not_applied(
                    name,
                    Some(planned),
                    format!("{name} failed while applying: {e}"),
                    json!({"stage": "apply", "error": e.to_string(), "kind": e.kind()}),
                );
            }
        };
        self.shared.writes.fetch_add(1, Ordering::SeqCst);
        let mut text = format!(
            "applied {name} (approved by {by}): {}\n{}",
            planned.plan.summary, applied.output.content
        );
        if let Some(v) = &applied.verification {
            let how = if v.passed {
                "verified"
            } else {
                "verification FAILED"
            };
            let _ = write!(text, "\n{how}: {}", v.detail);
        }
        if let Some(r) = &applied.rollback {
            let how = if r.ok {
                "rolled back"
            } else {
                "rollback FAILED"
            };
            let _ = write!(text, "\n{how}: {}", r.detail);
        }
        let failed_check = applied.verification.as_ref().is_some_and(|v| !v.passed);
        let data = json!({
            "applied": true,
            "tool": name,
            "action": planned.action,
            "approved_by": by,
            "summary": planned.plan.summary,
            "target": planned.plan.target,
            "result": applied.output.data,
            "verification": applied.verification,
            "rolled_back": applied.rollback,
        });
        result(text, Some(data), failed_check)
    }

    /// The rules (and, when it decided, the fallback policy) applied again to `request` with the
    /// writes applied so far: a denial, or `None`.
    async fn recheck(&self, request: &ApprovalRequest, elicited: bool) -> Option<Decision> {
        let config = &self.shared.config;
        let mut now = request.clone();
        now.writes_so_far = self.shared.writes.load(Ordering::SeqCst);
        let policies = [
            config.rules.as_ref(),
            config.fallback.as_ref().filter(|_| !elicited),
        ];
        for policy in policies.into_iter().flatten() {
            if let Some(denied) = policy.recheck(&now).await
                && !denied.is_approved()
            {
                return Some(denied);
            }
        }
        None
    }

    /// The decision on a planned write: the rules first, then the client (elicitation) when
    /// `elicit`, else the fallback policy (the caller checked that there is one).
    async fn decide(
        &self,
        request: &ApprovalRequest,
        planned: &Planned,
        elicit: bool,
        context: &RequestContext<RoleServer>,
    ) -> Decision {
        let config = &self.shared.config;
        if let Some(rules) = &config.rules
            && let Some(denied) = rules.recheck(request).await
            && !denied.is_approved()
        {
            return denied;
        }
        if elicit {
            let wait = config.elicitation_timeout.min(planned.expires_in);
            return approve::elicit(
                &context.peer,
                request,
                planned.expires_in,
                wait,
                context.ct.cancelled(),
            )
            .await;
        }
        match &config.fallback {
            None => Decision::deny("mcp", "no approval channel"),
            Some(policy) => match policy.rule(request).await {
                Ruling::Decided(d) => d,
                Ruling::Park => Decision::deny(
                    "mcp",
                    "the approval channel would park this write for a later decision, which an MCP call cannot wait for",
                ),
            },
        }
    }
}

/// Runs a tool future, turning a panic into a tool error.
async fn guarded(
    fut: impl Future<Output = Result<ToolOutput, ToolError>>,
) -> Result<ToolOutput, ToolError> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(_) => Err(ToolError::Failed("the tool panicked".into())),
    }
}

/// Typed data as `structuredContent`, which MCP wants to be an object: an object as it is,
/// anything else (a list of reports) under `"items"`.
fn structured(data: Value) -> Value {
    match data {
        Value::Object(_) => data,
        Value::Null => json!({}),
        other => json!({ "items": other }),
    }
}

fn result(text: String, data: Option<Value>, is_error: bool) -> CallToolResult {
    let mut r = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    r.structured_content = data;
    r
}

/// A tool error: its message as text, its kind as data.
fn failed(e: &ToolError) -> CallToolResult {
    result(
        e.to_string(),
        Some(json!({"error": e.to_string(), "kind": e.kind()})),
        true,
    )
}

/// A write that was not applied, and why.
fn not_applied(
    tool: &str,
    planned: Option<&Planned>,
    text: String,
    detail: Value,
) -> CallToolResult {
    let mut data = json!({
        "applied": false,
        "tool": tool,
        "action": planned.map(|p| p.action.clone()),
        "target": planned.and_then(|p| p.plan.target.clone()),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut data, detail) {
        map.extend(more);
    }
    result(text, Some(data), true)
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("sre-agent", env!("CARGO_PKG_VERSION"))
                    .with_title("sre-agent: Kubernetes SRE tools behind an approval gate"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    /// The versions with an `initialize` handshake, whose sessions let the server ask the client
    /// (elicitation) in the middle of a tool call.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(
            &ProtocolVersion::LATEST_WITH_INITIALIZE,
        ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.shared.listed.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(request, &context)
            .await
            .map(CallToolResponse::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_content_is_always_an_object() {
        assert_eq!(structured(json!({"a": 1})), json!({"a": 1}));
        assert_eq!(structured(json!([1, 2])), json!({"items": [1, 2]}));
        assert_eq!(structured(Value::Null), json!({}));
    }

    #[test]
    fn unknown_writes_are_assumed_destructive() {
        assert_eq!(write_hints("k8s_patch_image"), (true, true));
        assert_eq!(write_hints("k8s_rollback"), (true, false));
        assert_eq!(write_hints("something_new"), (true, false));
    }
}
