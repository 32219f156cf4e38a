//! # sre-py — Python bindings of sre-agent
//!
//! The private native module `sre_agent._native` that the Python package `sre_agent` (maturin,
//! abi3) wraps. It stays thin: it converts JSON across the boundary and calls the Rust crates; the
//! GIL is released while Rust works, so LangGraph's parallel tool calls run in parallel.
//!
//! ```
//! assert_eq!(sre_py::PYTHON_PACKAGE, "sre_agent");
//! ```

#![allow(
    clippy::unused_self,
    clippy::needless_pass_by_value,
    unreachable_pub,
    reason = "pyo3 signatures"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use serde_json::{Value, json};
use sre_core::text::escape_untrusted_lines;
use sre_core::{
    Agent, ApprovalRequest, Approver, ChatRequest, ChatResponse, Decision, LlmError, LlmProvider,
    Message, ReadOnly, Rules, Tool, ToolContext, ToolError, ToolSet,
};
use sre_tools::k8s::{Limits, Scope};
use sre_tools::sim::Simulator;

/// The import name of the Python package these bindings serve.
pub const PYTHON_PACKAGE: &str = "sre_agent";

create_exception!(
    _native,
    SreError,
    PyException,
    "Base class of every sre-agent error."
);
create_exception!(
    _native,
    ToolError_,
    SreError,
    "A tool call failed (Kubernetes, Trivy, bad arguments…)."
);
create_exception!(
    _native,
    InvalidArguments,
    ToolError_,
    "The arguments do not match the tool's JSON Schema."
);
create_exception!(
    _native,
    Forbidden,
    ToolError_,
    "The API server refused (403), or the namespace is out of scope."
);
create_exception!(
    _native,
    NotFound,
    ToolError_,
    "The object does not exist (404)."
);
create_exception!(
    _native,
    Conflict,
    ToolError_,
    "The target changed since it was approved (409); nothing was applied."
);
create_exception!(
    _native,
    ApprovalDenied,
    SreError,
    "The approval policy denied the write; nothing was applied."
);
create_exception!(
    _native,
    ProviderError,
    SreError,
    "The model provider failed."
);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sre-agent")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic_runtime(&e))
    })
}

#[expect(
    clippy::panic,
    reason = "without a runtime the module cannot work at all"
)]
fn panic_runtime(e: &std::io::Error) -> tokio::runtime::Runtime {
    panic!("sre_agent: cannot start the tokio runtime: {e}")
}

fn tool_err(e: &ToolError) -> PyErr {
    let msg = e.to_string();
    match e {
        ToolError::InvalidArguments { .. } | ToolError::UnknownTool { .. } => {
            InvalidArguments::new_err(msg)
        }
        ToolError::Forbidden(_) | ToolError::Refused(_) => Forbidden::new_err(msg),
        ToolError::NotFound(_) => NotFound::new_err(msg),
        ToolError::Conflict(_) => Conflict::new_err(msg),
        ToolError::Denied(_) => ApprovalDenied::new_err(msg),
        _ => ToolError_::new_err(msg),
    }
}

fn json_err(e: &serde_json::Error) -> PyErr {
    InvalidArguments::new_err(format!("arguments are not JSON: {e}"))
}

/// A set of tools over a cluster (the simulator or a kubeconfig context).
#[pyclass(module = "sre_agent._native", name = "Tools")]
pub struct Tools {
    set: Arc<ToolSet>,
    namespaces: Vec<String>,
    sim: Mutex<Option<Simulator>>,
    url: Option<String>,
    /// The one gate every write from Python goes through.
    gate: sre_core::Gate,
    /// LangGraph interrupt bookkeeping.
    hitl: Arc<Hitl>,
}

/// How long a previewed plan may wait for its approval, by default.
const APPROVAL_TTL: Duration = Duration::from_secs(300);

/// One question put to a human through a LangGraph interrupt.
struct Ask {
    action: String,
    request: Value,
    expires: Instant,
    shown: bool,
}

/// The one write of a graph task that may ask a human, and how it ended (replayed when LangGraph
/// runs the task again on resume).
struct Slot {
    key: String,
    until: Instant,
    done: Option<(bool, String)>,
}

/// The questions LangGraph interrupts asked about planned writes, and which write of a graph
/// task may ask. The plans themselves wait in the [`sre_core::Gate`].
#[derive(Default)]
struct Hitl {
    asks: Mutex<HashMap<String, Vec<Ask>>>,
    /// Per graph task (thread and checkpoint namespace): the one write that may ask a human.
    owners: Mutex<HashMap<String, Slot>>,
}

fn build_set(tools: Vec<Arc<dyn Tool>>) -> PyResult<ToolSet> {
    let mut set = ToolSet::new();
    for t in tools {
        set.add(t).map_err(|e| SreError::new_err(e.to_string()))?;
    }
    Ok(set)
}

#[pymethods]
impl Tools {
    /// The tools over a fresh simulator of `scenario` (a built-in name or a file).
    #[staticmethod]
    fn simulator(py: Python<'_>, scenario: String) -> PyResult<Self> {
        let (sim, tools) = py
            .detach(|| {
                runtime().block_on(async {
                    let sim = Simulator::start_named(&scenario).await?;
                    let limits = Limits {
                        poll_interval: Duration::from_millis(20),
                        rollout_timeout: Duration::from_secs(10),
                        ..Limits::default()
                    };
                    let tools = sim.tools(limits)?;
                    Ok::<_, sre_tools::Error>((sim, tools))
                })
            })
            .map_err(|e| SreError::new_err(e.to_string()))?;
        let url = Some(sim.url());
        let namespaces = sim.scenario().all_namespaces();
        Ok(Self {
            set: Arc::new(build_set(tools)?),
            namespaces,
            sim: Mutex::new(Some(sim)),
            url,
            gate: sre_core::Gate::new(sre_core::Redactor::default(), APPROVAL_TTL),
            hitl: Arc::default(),
        })
    }

    /// The tools over the current kube context (`KUBECONFIG`, `~/.kube/config`, in-cluster), with
    /// `trivy` on `PATH`: every namespace the identity may reach (the API server's own RBAC answers
    /// 403 elsewhere), or only `namespaces` when given.
    #[staticmethod]
    #[pyo3(signature = (namespaces = None))]
    fn kubeconfig(py: Python<'_>, namespaces: Option<Vec<String>>) -> PyResult<Self> {
        let (tools, namespaces) = py
            .detach(|| {
                runtime().block_on(async {
                    let client = kube::Client::try_default().await.map_err(|e| {
                        format!("no Kubernetes cluster is configured ({e}): set KUBECONFIG or use SreToolkit(simulator=\"bad-release\")")
                    })?;
                    // No namespaces given: every namespace the identity's RBAC allows (the API
                    // server answers 403 where it does not); the context's namespace is the
                    // offline brain's focus. Given namespaces narrow the tools' own scope.
                    let (scope, ns) = match namespaces {
                        Some(ns) => (Scope::namespaces(ns.clone()), ns),
                        None => (Scope::all(), vec![client.default_namespace().to_owned()]),
                    };
                    let tools = sre_tools::toolset(
                        client,
                        scope,
                        Limits::default(),
                        Arc::new(sre_tools::trivy::scanner::TrivyCli::default()),
                        Arc::new(sre_tools::trivy::registry::RegistryClient::new()),
                    );
                    Ok::<_, String>((tools, ns))
                })
            })
            .map_err(SreError::new_err)?;
        Ok(Self {
            set: Arc::new(build_set(tools)?),
            namespaces,
            sim: Mutex::new(None),
            url: None,
            gate: sre_core::Gate::new(sre_core::Redactor::default(), APPROVAL_TTL),
            hitl: Arc::default(),
        })
    }

    /// How long a previewed plan, and a question asked about it, stay valid (seconds; default
    /// 300). An approval that comes later denies.
    #[getter]
    fn approval_ttl(&self) -> f64 {
        self.gate.ttl().as_secs_f64()
    }

    #[setter]
    fn set_approval_ttl(&self, seconds: f64) -> PyResult<()> {
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
            return Err(SreError::new_err(format!(
                "approval_ttl must be between 0 and 86400 seconds, got {seconds}"
            )));
        }
        self.gate.set_ttl(Duration::from_secs_f64(seconds));
        Ok(())
    }

    /// The simulator's URL, if this is a simulator.
    #[getter]
    fn url(&self) -> Option<String> {
        self.url.clone()
    }

    /// `[{"name", "description", "parameters", "mutating"}]`.
    fn specs(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let specs: Vec<Value> = self
            .set
            .specs()
            .into_iter()
            .map(|s| {
                let mutating = self.set.get(&s.name).is_some_and(|t| t.effect() == sre_core::Effect::Write);
                json!({"name": s.name, "description": s.description, "parameters": s.parameters, "mutating": mutating})
            })
            .collect();
        to_py(py, &Value::Array(specs))
    }

    /// Runs a read tool (arguments as JSON), validated against its schema. Returns `(content,
    /// data)`: the redacted text for the model and the tool's typed data as a dict (or `None`),
    /// redacted too.
    fn call(&self, py: Python<'_>, name: String, args: String) -> PyResult<(String, Py<PyAny>)> {
        let args: Value = serde_json::from_str(&args).map_err(|e| json_err(&e))?;
        let fut = read(
            Arc::clone(&self.set),
            self.gate.redactor().clone(),
            name,
            args,
        );
        let (content, data) = py.detach(|| runtime().block_on(fut))?;
        Ok((content, to_py(py, &data)?))
    }

    /// [`Tools::call`] as an awaitable on the Rust runtime: no thread per call.
    fn call_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        args: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args: Value = serde_json::from_str(&args).map_err(|e| json_err(&e))?;
        let fut = read(
            Arc::clone(&self.set),
            self.gate.redactor().clone(),
            name,
            args,
        );
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let (content, data) = fut.await?;
            Python::attach(|py| Ok((content, to_py(py, &data)?)))
        })
    }

    /// The side-effect-free plan of a write (a server-side dry run) as a dict `{"summary", "diff",
    /// "fingerprint", "target_fingerprint", "risk", "target", "images", "warning", "evidence",
    /// "evidence_text", "expires_at"}`. `fingerprint` is the action fingerprint: [`Tools::apply`]
    /// applies this plan, and only while it is unexpired. `evidence` is why the write is proposed
    /// (the scans or the crash, as a dict; `None` when the tool gave none) and `evidence_text` its
    /// few lines for a human. What a human sees is redacted and escaped.
    fn preview(&self, py: Python<'_>, name: String, args: String) -> PyResult<Py<PyAny>> {
        let args: Value = serde_json::from_str(&args).map_err(|e| json_err(&e))?;
        let fut = plan(Arc::clone(&self.set), self.gate.clone(), name, args);
        let shown = py.detach(|| runtime().block_on(fut))?;
        to_py(py, &shown)
    }

    /// [`Tools::preview`] as an awaitable.
    fn preview_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        args: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args: Value = serde_json::from_str(&args).map_err(|e| json_err(&e))?;
        let fut = plan(Arc::clone(&self.set), self.gate.clone(), name, args);
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let shown = fut.await?;
            Python::attach(|py| to_py(py, &shown))
        })
    }

    /// Applies a previewed, approved plan through the gate: `fingerprint` is the action
    /// fingerprint [`Tools::preview`] returned for the same tool and arguments. The plan must be
    /// unexpired and its target unchanged (else `Conflict`); it is applied once, verified, and
    /// rolled back from its own undo if verification fails. Returns `{"result", "data",
    /// "verification", "rolled_back"}`.
    fn apply(
        &self,
        py: Python<'_>,
        name: String,
        args: String,
        fingerprint: String,
        approved_by: String,
    ) -> PyResult<Py<PyAny>> {
        let args: Value = serde_json::from_str(&args).map_err(|e| json_err(&e))?;
        let fut = apply(
            Arc::clone(&self.set),
            self.gate.clone(),
            name,
            args,
            fingerprint,
            approved_by,
        );
        let applied = py.detach(|| runtime().block_on(fut))?;
        to_py(py, &applied)
    }

    /// [`Tools::apply`] as an awaitable.
    fn apply_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        args: String,
        fingerprint: String,
        approved_by: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args: Value = serde_json::from_str(&args).map_err(|e| json_err(&e))?;
        let fut = apply(
            Arc::clone(&self.set),
            self.gate.clone(),
            name,
            args,
            fingerprint,
            approved_by,
        );
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let applied = fut.await?;
            Python::attach(|py| to_py(py, &applied))
        })
    }

    /// Claims, for the call `key`, the one slot of graph task `slot` (its thread and checkpoint
    /// namespace) in which a write may ask a human. LangGraph numbers the interrupts of a task in
    /// call order and hands each resume value to whichever call asks next, so two writes asking in
    /// one task could have one human answer applied to the other: only one write per task asks.
    /// Returns `"claimed"`, `"busy"` (another write holds the slot: deny this one), or
    /// `"done:ok:<result>"` / `"done:err:<message>"` when this call already ended and the task is
    /// being run again (replay the outcome; never apply twice).
    fn hitl_claim(&self, slot: String, key: String) -> PyResult<String> {
        let mut owners = lock(&self.hitl.owners)?;
        let now = Instant::now();
        owners.retain(|_, s| s.until > now);
        let until = now + self.gate.ttl();
        match owners.get_mut(&slot) {
            Some(s) if s.key != key => Ok("busy".into()),
            Some(s) => Ok(match &s.done {
                Some((true, text)) => format!("done:ok:{text}"),
                Some((false, text)) => format!("done:err:{text}"),
                None => {
                    s.until = until;
                    "claimed".into()
                }
            }),
            None => {
                owners.insert(
                    slot,
                    Slot {
                        key,
                        until,
                        done: None,
                    },
                );
                Ok("claimed".into())
            }
        }
    }

    /// Records how the write `key` holding slot `slot` ended, for replays of the task.
    fn hitl_finish(&self, slot: String, key: String, ok: bool, text: String) -> PyResult<()> {
        let mut owners = lock(&self.hitl.owners)?;
        if let Some(s) = owners.get_mut(&slot).filter(|s| s.key == key) {
            s.done = Some((ok, text));
            s.until = Instant::now() + self.gate.ttl();
        }
        Ok(())
    }

    /// Records a question about the plan with action fingerprint `action` that a LangGraph
    /// interrupt is about to ask under `key`; returns the request to pass to `interrupt`.
    fn hitl_ask(&self, key: String, action: String, request: String) -> PyResult<String> {
        let mut request: Value = serde_json::from_str(&request).map_err(|e| json_err(&e))?;
        let ttl = self.gate.ttl();
        let expires_at = humantime::format_rfc3339_millis(SystemTime::now() + ttl);
        if let Some(first) = request
            .pointer_mut("/action_requests/0")
            .and_then(Value::as_object_mut)
        {
            first.insert("fingerprint".into(), json!(action));
            first.insert("expires_at".into(), json!(expires_at.to_string()));
        }
        let mut asks = lock(&self.hitl.asks)?;
        asks.entry(key).or_default().push(Ask {
            action,
            request: request.clone(),
            expires: Instant::now() + ttl,
            shown: false,
        });
        Ok(request.to_string())
    }

    /// The requests asked so far under `key`, in order (JSON list).
    fn hitl_asks(&self, key: String) -> PyResult<String> {
        let asks = lock(&self.hitl.asks)?;
        let list: Vec<&Value> = asks
            .get(&key)
            .into_iter()
            .flatten()
            .map(|a| &a.request)
            .collect();
        Ok(json!(list).to_string())
    }

    /// Marks question `index` under `key` as shown to a human (its interrupt paused the graph).
    fn hitl_shown(&self, key: String, index: usize) -> PyResult<()> {
        if let Some(a) = lock(&self.hitl.asks)?
            .get_mut(&key)
            .and_then(|v| v.get_mut(index))
        {
            a.shown = true;
        }
        Ok(())
    }

    /// Judges the answer to question `index` under `key` against the freshly previewed plan
    /// `fresh`: `"apply"` (the human approved exactly this plan, in time), `"next"` (a later
    /// question supersedes it, it was never shown in this process, or the target changed — ask
    /// again) or `"deny: <reason>"`.
    fn hitl_resolve(
        &self,
        key: String,
        index: usize,
        answer: String,
        fresh: String,
    ) -> PyResult<String> {
        let answer: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        let mut asks = lock(&self.hitl.asks)?;
        let Some(list) = asks.get(&key) else {
            return Ok("next".into());
        };
        let Some(ask) = list.get(index) else {
            return Ok("next".into());
        };
        if index + 1 < list.len() || !ask.shown {
            return Ok("next".into());
        }
        let decision = answer
            .pointer("/decisions/0")
            .cloned()
            .unwrap_or_else(|| json!({"type": "reject", "message": "no usable decision"}));
        let echoed = decision
            .get("fingerprint")
            .or_else(|| decision.pointer("/args/fingerprint"))
            .and_then(Value::as_str);
        let verdict = if echoed.is_some_and(|f| f != ask.action) {
            // The answer names another action than the one this question asked about.
            "deny: the decision names another action's fingerprint; nothing was applied".to_owned()
        } else if decision["type"] != "approve" {
            format!(
                "deny: {}",
                decision["message"].as_str().unwrap_or("rejected")
            )
        } else if Instant::now() >= ask.expires {
            "deny: the approval expired before it was given; nothing was applied".to_owned()
        } else if ask.action != fresh {
            // The target changed while the human decided: ask again with the new plan.
            return Ok("next".into());
        } else {
            "apply".to_owned()
        };
        asks.remove(&key);
        Ok(verdict)
    }

    /// Stops the simulator (if any); the tools fail afterwards.
    fn close(&self, py: Python<'_>) {
        let sim = self.sim.lock().ok().and_then(|mut s| s.take());
        if let Some(sim) = sim {
            py.detach(|| runtime().block_on(sim.shutdown()));
        }
    }

    /// A deployment's container images `[[container, image]]` (simulator only; for tests
    /// and "after" views).
    fn deployment_images(
        &self,
        py: Python<'_>,
        namespace: String,
        deployment: String,
    ) -> PyResult<Py<PyAny>> {
        let guard = self
            .sim
            .lock()
            .map_err(|_| SreError::new_err("simulator lock poisoned"))?;
        let sim = guard
            .as_ref()
            .ok_or_else(|| SreError::new_err("not a simulator"))?;
        let dep = sim
            .object("deployments", &namespace, &deployment)
            .ok_or_else(|| {
                NotFound::new_err(format!("deployment {namespace}/{deployment} not found"))
            })?;
        let images: Vec<(String, String)> = dep
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_owned(),
                            c["image"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        to_py(py, &json!(images))
    }
}

/// Runs a read tool; the content and the typed data, both redacted (they reach a model and Python).
async fn read(
    set: Arc<ToolSet>,
    redactor: sre_core::Redactor,
    name: String,
    args: Value,
) -> PyResult<(String, Value)> {
    let result = async {
        let tool = set.validate(&name, &args)?;
        if tool.effect() == sre_core::Effect::Write {
            return Err(ToolError::Denied(format!(
                "{name} is a write: preview it, get it approved, then apply it"
            )));
        }
        tool.call(&args, &ToolContext::default()).await
    }
    .await;
    match result {
        Ok(o) => Ok((
            redactor.redact(&o.content).into_owned(),
            o.data.map_or(Value::Null, |d| redactor.redact_value(&d)),
        )),
        Err(e) => Err(tool_err(&sre_core::gate::redact_tool_error(&redactor, e))),
    }
}

/// Plans a write through the gate; what a human sees, redacted and escaped.
async fn plan(
    set: Arc<ToolSet>,
    gate: sre_core::Gate,
    name: String,
    args: Value,
) -> PyResult<Value> {
    let planned = async {
        let tool = set.validate(&name, &args)?;
        if tool.effect() != sre_core::Effect::Write {
            return Err(ToolError::InvalidArguments {
                tool: name.clone(),
                message: "a read tool has no preview".into(),
            });
        }
        gate.plan(tool.as_ref(), &args, &ToolContext::default())
            .await
    }
    .await
    .map_err(|e| tool_err(&e))?;
    let plan = &planned.plan;
    let show = |s: &str| escape_untrusted_lines(s).into_owned();
    let expires_at = humantime::format_rfc3339_millis(SystemTime::now() + planned.expires_in);
    Ok(json!({
        "summary": show(&plan.summary),
        "diff": show(&plan.diff),
        "fingerprint": planned.action,
        "target_fingerprint": plan.fingerprint,
        "risk": plan.risk,
        "target": plan.target,
        "images": plan.images,
        "warning": plan.warning.as_deref().map(show),
        "evidence": plan.evidence,
        "evidence_text": evidence_text(plan.evidence.as_deref()),
        "expires_at": expires_at.to_string(),
    }))
}

/// The evidence's lines for a human ([`Evidence::render`](sre_core::evidence::Evidence::render):
/// escaped, lists cut), or `None` when there is none.
fn evidence_text(evidence: Option<&sre_core::evidence::Evidence>) -> Option<String> {
    evidence
        .filter(|e| !e.is_empty())
        .map(sre_core::evidence::Evidence::render)
}

/// Applies a planned, approved write through the gate.
async fn apply(
    set: Arc<ToolSet>,
    gate: sre_core::Gate,
    name: String,
    args: Value,
    fingerprint: String,
    approved_by: String,
) -> PyResult<Value> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call_id = format!("python-{}", CALLS.fetch_add(1, Ordering::Relaxed));
    let applied = async {
        let tool = set.validate(&name, &args)?;
        gate.apply(
            tool.as_ref(),
            &args,
            &fingerprint,
            &approved_by,
            "python",
            &call_id,
        )
        .await
    }
    .await
    .map_err(|e| tool_err(&e))?;
    Ok(json!({
        "result": applied.output.content,
        "data": applied.output.data,
        "verification": applied.verification,
        "rolled_back": applied.rollback,
    }))
}

/// A JSON value as the Python object `json.loads` would make (dict, list, str, int, float, bool,
/// None): typed Rust data reaches Python as dicts, never as JSON text to re-parse.
fn to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    use pyo3::types::{PyDict, PyList};
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => pyo3::types::PyBool::new(py, *b)
            .to_owned()
            .into_any()
            .unbind(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_pyobject(py)?.into_any().unbind(),
            (None, Some(u), _) => u.into_pyobject(py)?.into_any().unbind(),
            (_, _, Some(f)) => f.into_pyobject(py)?.into_any().unbind(),
            _ => py.None(),
        },
        Value::String(s) => pyo3::types::PyString::new(py, s).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for v in items {
                list.append(to_py(py, v)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> PyResult<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| SreError::new_err("internal lock poisoned"))
}

/// A model driven from Python: `chat(request_json) -> response_json`.
struct PyModel {
    chat: Py<PyAny>,
    error: Mutex<Option<PyErr>>,
}

#[async_trait]
impl LlmProvider for PyModel {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        // A model gets the content only: typed tool data stays with the code.
        let mut request = request.clone();
        for m in &mut request.messages {
            m.data = None;
        }
        let body = serde_json::to_string(&request).map_err(|e| LlmError::Other(e.to_string()))?;
        let answer = Python::attach(|py| -> PyResult<String> {
            self.chat.call1(py, (body,))?.extract::<String>(py)
        });
        match answer {
            Ok(text) => serde_json::from_str(&text).map_err(|e| LlmError::MalformedResponse {
                provider: "python".into(),
                message: e.to_string(),
            }),
            Err(e) => {
                let msg = e.to_string();
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert(e);
                }
                Err(LlmError::Other(msg))
            }
        }
    }

    fn name(&self) -> String {
        "langchain".into()
    }
}

/// An approver from Python: `approve(request_json) -> {"type": "approve"} | {"type": "reject", "message"}`.
/// The request carries `description` (what the terminal prompt shows, evidence included) and a
/// `preview` with the plan as [`Tools::preview`] shows it, with `evidence` (why the write is
/// proposed, typed; already redacted by the gate) and `evidence_text` (its lines).
struct PyApprover {
    approve: Py<PyAny>,
}

#[async_trait]
impl Approver for PyApprover {
    async fn review(&self, request: &ApprovalRequest) -> Decision {
        // What a human sees is escaped; the action fingerprint names exactly what is approved.
        let p = &request.preview;
        let show = |s: &str| escape_untrusted_lines(s).into_owned();
        let shown = json!({
            "run_id": request.run_id,
            "tool": request.tool,
            // The request as the terminal prompt shows it, evidence included (escaped).
            "description": request.render(),
            "call_id": request.call_id,
            "arguments": request.arguments,
            "incident": show(&request.incident),
            "writes_so_far": request.writes_so_far,
            "rollback_on_failure": request.rollback_on_failure,
            "preview": {
                "summary": show(&p.summary),
                "diff": show(&p.diff),
                "warning": p.warning.as_deref().map(show),
                "fingerprint": request.action_fingerprint(),
                "target_fingerprint": p.fingerprint,
                "risk": p.risk,
                "target": p.target,
                "images": p.images,
                "evidence": p.evidence,
                "evidence_text": evidence_text(p.evidence.as_deref()),
            },
        });
        let body = shown.to_string();
        let answer = Python::attach(|py| -> PyResult<String> {
            self.approve.call1(py, (body,))?.extract::<String>(py)
        });
        match answer
            .ok()
            .and_then(|a| serde_json::from_str::<Value>(&a).ok())
        {
            Some(v) if v["type"] == "approve" => Decision::approve("python:approver"),
            Some(v) => Decision::deny(
                "python:approver",
                v["message"].as_str().unwrap_or("rejected"),
            ),
            None => Decision::deny(
                "python:approver",
                "the approver failed or answered nothing usable",
            ),
        }
    }
}

/// Runs the Rust agent loop with a Python-driven model; returns the `RunReport` as JSON.
/// `messages` is a JSON list of `{"role", "content", …}`. A model exception is re-raised.
#[pyfunction]
#[pyo3(signature = (tools, chat, messages, max_steps = 10, system_prompt = None, approve = None))]
fn run_agent(
    py: Python<'_>,
    tools: &Tools,
    chat: Py<PyAny>,
    messages: String,
    max_steps: usize,
    system_prompt: Option<String>,
    approve: Option<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let messages: Vec<Message> = serde_json::from_str(&messages).map_err(|e| json_err(&e))?;
    let model = Arc::new(PyModel {
        chat,
        error: Mutex::new(None),
    });
    let mut builder =
        Agent::builder_arc(Arc::clone(&model) as Arc<dyn LlmProvider>).max_steps(max_steps.max(1));
    for name in tools.set.specs().into_iter().map(|s| s.name) {
        if let Some(t) = tools.set.get(&name) {
            builder = builder.tools([Arc::clone(t)]);
        }
    }
    if let Some(p) = system_prompt {
        builder = builder.system_prompt(p);
    }
    builder = match approve {
        Some(a) => builder.policy(Rules::new(PyApprover { approve: a }).max_writes_per_run(10)),
        None => builder.policy(ReadOnly),
    };
    let agent = builder
        .build()
        .map_err(|e| SreError::new_err(e.to_string()))?;
    let report = py.detach(|| runtime().block_on(agent.run_messages(messages)));
    if let Some(err) = model.error.lock().ok().and_then(|mut e| e.take()) {
        return Err(err);
    }
    serde_json::to_value(&report)
        .map_err(|e| SreError::new_err(e.to_string()))
        .and_then(|v| to_py(py, &v))
}

/// Runs the Rust agent with a provider by name (`offline` — the playbook brain —, `groq`,
/// `azure`, `bedrock`, `openai`, `ollama`; keys from the environment) on `task`. Writes go to the
/// `approve` callable (JSON request → JSON decision) or are denied. Returns the `RunReport` as JSON.
#[pyfunction]
#[pyo3(signature = (tools, task, provider = "offline".to_owned(), model = None, max_steps = 20, approve = None, auto_approve = false, namespaces = None, registries = None, max_writes = 3, max_risk = None))]
#[expect(
    clippy::too_many_arguments,
    reason = "the Python keyword arguments of sre_agent.run"
)]
fn run_task(
    py: Python<'_>,
    tools: &Tools,
    task: String,
    provider: String,
    model: Option<String>,
    max_steps: usize,
    approve: Option<Py<PyAny>>,
    auto_approve: bool,
    namespaces: Option<Vec<String>>,
    registries: Option<Vec<String>>,
    max_writes: usize,
    max_risk: Option<String>,
) -> PyResult<Py<PyAny>> {
    use sre_llm::{ProviderConfig, ProviderKind};
    let max_risk = match max_risk.as_deref() {
        None => None,
        Some("low") => Some(sre_core::Risk::Low),
        Some("medium") => Some(sre_core::Risk::Medium),
        Some("high") => Some(sre_core::Risk::High),
        Some(other) => {
            return Err(SreError::new_err(format!(
                "max_risk must be \"low\", \"medium\" or \"high\", got {other:?}"
            )));
        }
    };
    let brain: Arc<dyn LlmProvider> = if provider == "offline" {
        let namespaces: Vec<String> = tools.namespaces.clone();
        Arc::new(sre_tools::playbook::Playbook::new(namespaces))
    } else {
        let kind: ProviderKind = serde_json::from_value(json!(provider))
            .map_err(|_| SreError::new_err(format!("unknown provider {provider:?}: use offline, groq, azure, bedrock, openai, ollama or vllm")))?;
        let mut config = ProviderConfig::new(kind);
        config.model = model;
        config
            .build()
            .map_err(|e| ProviderError::new_err(e.to_string()))?
    };
    let mut builder = Agent::builder_arc(brain).max_steps(max_steps.max(1));
    for spec in tools.set.specs() {
        if let Some(t) = tools.set.get(&spec.name) {
            builder = builder.tools([Arc::clone(t)]);
        }
    }
    // Deny by default; an approver (or explicit auto approval) sits behind the rules.
    let unattended = auto_approve && approve.is_none();
    let approver: Option<Arc<dyn Approver>> = match (approve, auto_approve) {
        (Some(a), _) => Some(Arc::new(PyApprover { approve: a })),
        (None, true) => Some(Arc::new(sre_core::Callback::new(|_| {
            Decision::approve("policy:auto")
        }))),
        (None, false) => None,
    };
    builder = match approver {
        Some(a) => {
            let mut rules = Rules::new(a).max_writes_per_run(max_writes);
            if let Some(ns) = namespaces {
                rules = rules.namespaces(ns);
            }
            // Unattended approval has the CLI's safe defaults: nothing above medium risk (no scale
            // to zero), and no new image source unless registries are named.
            match (max_risk, unattended) {
                (Some(r), _) => rules = rules.max_risk(r),
                (None, true) => rules = rules.max_risk(sre_core::Risk::Medium),
                (None, false) => {}
            }
            match (registries, unattended) {
                (Some(r), _) => rules = rules.registries(r),
                (None, true) => rules = rules.same_repository_only(),
                (None, false) => {}
            }
            // And only the changes the evidence supports: text injected into what the model
            // reads cannot get a healthy workload changed.
            if unattended {
                rules = rules.evidence_required();
            }
            builder.policy(rules)
        }
        None => builder.policy(ReadOnly),
    };
    let agent = builder
        .build()
        .map_err(|e| SreError::new_err(e.to_string()))?;
    let report = py.detach(|| runtime().block_on(agent.run(&task)));
    serde_json::to_value(&report)
        .map_err(|e| SreError::new_err(e.to_string()))
        .and_then(|v| to_py(py, &v))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Awaitables (`*_async`) run on the same runtime as everything else.
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(runtime());
    m.add_class::<Tools>()?;
    m.add_function(wrap_pyfunction!(run_agent, m)?)?;
    m.add_function(wrap_pyfunction!(run_task, m)?)?;
    m.add("SreError", py.get_type::<SreError>())?;
    m.add("ToolError", py.get_type::<ToolError_>())?;
    m.add("InvalidArguments", py.get_type::<InvalidArguments>())?;
    m.add("Forbidden", py.get_type::<Forbidden>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("ApprovalDenied", py.get_type::<ApprovalDenied>())?;
    m.add("ProviderError", py.get_type::<ProviderError>())?;
    Ok(())
}
