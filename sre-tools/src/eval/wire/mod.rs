//! The scorecard's wire brains: a loopback HTTP server per provider wire format, with a
//! reasonable model — the offline [`Playbook`] — behind it, so that the provider the agent loop
//! uses is the real sre-llm client (request encoding, auth, SigV4 signing, retries, response
//! parsing) talking HTTP, not an in-process [`LlmProvider`].
//!
//! Each server does what the real service does with a request: it checks the path, the auth
//! (Bearer key; Azure's `api-key` header or an Entra bearer token and its `api-version`; SigV4's
//! `Authorization` shape, credential scope, date and signature), decodes the body into the
//! service's own request types, rejects what the service rejects (unknown fields, malformed
//! messages, tool results that answer no earlier call, calls left unanswered — 400 in the
//! service's error shape), turns the transcript into canonical [`Message`]s, asks the model for
//! its next answer, and encodes it (text or tool calls, with usage) as the service does.
//!
//! One thing a wire format cannot carry is the tools' typed data, which the playbook reads
//! instead of their text: [`Sighted`] hands the model the agent's own request alongside the HTTP
//! call, and the server takes from it only the typed data and error flags of the tool results,
//! after checking that what arrived over the wire is that transcript exactly (every role, text,
//! call id, name and argument, and every tool spec). A difference is a wire bug: it is recorded
//! ([`WireStats::violations`]) and answered 400, and the scorecard fails the row.
//!
//! Faults ([`Fault`]) make the server answer from the second model call on with what providers
//! send when they fail: 429 (with `Retry-After`), 500, a 200 whose body is not JSON, or a 200
//! whose JSON is cut short.

mod bedrock;
mod openai;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sre_core::{ChatRequest, ChatResponse, LlmError, LlmProvider, Message, Role, ToolSpec};
use sre_llm::{ProviderConfig, ProviderKind};
use tokio::sync::oneshot;

use crate::playbook::Playbook;

/// The key the OpenAI-compatible servers accept (`Authorization: Bearer`; Azure's `api-key`).
const KEY: &str = "sk-wire-eval-0123456789abcdef";
/// The Entra token Azure's server accepts as `Authorization: Bearer`.
const ENTRA_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.wire-eval-entra.token";
/// The model Groq's preset asks for.
const GROQ_MODEL: &str = sre_llm::config::GROQ_DEFAULT_MODEL;
/// The Azure deployment and `api-version`.
const AZURE_DEPLOYMENT: &str = "sre-gpt-4o";
const AZURE_API_VERSION: &str = "2024-10-21";
/// Bedrock: region, model id (its `:` must be percent-encoded in the path), access key, secret.
const AWS_REGION: &str = "eu-west-1";
const BEDROCK_MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const AWS_ACCESS_KEY_ID: &str = "AKIDWIREEVAL0EXAMPLE";
const AWS_SECRET: &str = "wire/eval/SECRET+key/0123456789abcdefEXAMPLE";

/// A provider wire format, with the sre-llm preset that speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// OpenAI-compatible chat completions, as the Groq preset sends it: `POST
    /// /openai/v1/chat/completions`, `Authorization: Bearer` (the Ollama, vLLM and OpenAI presets
    /// are the same module with another base URL).
    OpenAi,
    /// Azure OpenAI: `POST /openai/deployments/{deployment}/chat/completions?api-version=…` with
    /// an `api-key` header (an Entra `Authorization: Bearer` token is accepted too).
    Azure,
    /// AWS Bedrock Converse: `POST /model/{modelId}/converse`, SigV4-signed.
    Bedrock,
}

impl Format {
    /// Every format.
    pub const ALL: [Self; 3] = [Self::OpenAi, Self::Azure, Self::Bedrock];

    fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Azure => "azure",
            Self::Bedrock => "bedrock",
        }
    }
}

/// How a server fails on purpose, from the second model call of a run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// 429 with `Retry-After: 0` (Bedrock: `ThrottlingException`).
    RateLimited,
    /// 500 (Bedrock: `InternalServerException`).
    ServerError,
    /// 200 with a body that is not JSON (a proxy's HTML page).
    Garbage,
    /// 200 with the real answer cut in the middle.
    Truncated,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Self; 4] = [
        Self::RateLimited,
        Self::ServerError,
        Self::Garbage,
        Self::Truncated,
    ];
}

/// A wire brain: a format, and the fault its server injects, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireBrain {
    /// The wire format.
    pub format: Format,
    /// The fault, or `None` for a server that answers every request.
    pub fault: Option<Fault>,
}

impl WireBrain {
    /// The faultless wire brains, one per format.
    pub const ALL: [Self; 3] = [
        Self::of(Format::OpenAi),
        Self::of(Format::Azure),
        Self::of(Format::Bedrock),
    ];

    /// The faultless brain of `format`.
    pub const fn of(format: Format) -> Self {
        Self {
            format,
            fault: None,
        }
    }

    /// Every wire brain, faults included.
    pub fn every() -> Vec<Self> {
        let mut all = Vec::new();
        for format in Format::ALL {
            all.push(Self::of(format));
            for fault in Fault::ALL {
                all.push(Self {
                    format,
                    fault: Some(fault),
                });
            }
        }
        all
    }

    /// The brain's name: `wire-<format>`, with `:429`, `:500`, `:garbage` or `:truncated` for a
    /// fault.
    pub fn name(self) -> &'static str {
        use Fault::{Garbage, RateLimited, ServerError, Truncated};
        use Format::{Azure, Bedrock, OpenAi};
        match (self.format, self.fault) {
            (OpenAi, None) => "wire-openai",
            (OpenAi, Some(RateLimited)) => "wire-openai:429",
            (OpenAi, Some(ServerError)) => "wire-openai:500",
            (OpenAi, Some(Garbage)) => "wire-openai:garbage",
            (OpenAi, Some(Truncated)) => "wire-openai:truncated",
            (Azure, None) => "wire-azure",
            (Azure, Some(RateLimited)) => "wire-azure:429",
            (Azure, Some(ServerError)) => "wire-azure:500",
            (Azure, Some(Garbage)) => "wire-azure:garbage",
            (Azure, Some(Truncated)) => "wire-azure:truncated",
            (Bedrock, None) => "wire-bedrock",
            (Bedrock, Some(RateLimited)) => "wire-bedrock:429",
            (Bedrock, Some(ServerError)) => "wire-bedrock:500",
            (Bedrock, Some(Garbage)) => "wire-bedrock:garbage",
            (Bedrock, Some(Truncated)) => "wire-bedrock:truncated",
        }
    }
}

impl fmt::Display for WireBrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a server saw over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireStats {
    /// HTTP requests received (retries included).
    pub requests: usize,
    /// Model calls answered (200 with the model's answer).
    pub answered: usize,
    /// Bytes of the request bodies the model answered, as received.
    pub bytes: u64,
    /// Requests rejected as the service would (status and message), in order.
    pub rejected: Vec<(u16, String)>,
    /// Differences between the wire and the agent's own request: wire bugs. Must be empty.
    pub violations: Vec<String>,
}

/// The agent's request, as handed to the model beside the HTTP call (see the module docs).
type Sight = Arc<Mutex<Option<ChatRequest>>>;

struct Shared {
    format: Format,
    fault: Option<Fault>,
    model: Playbook,
    sight: Sight,
    stats: Mutex<WireStats>,
}

/// A loopback server speaking one wire format, with the playbook behind it.
pub struct Loopback {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for Loopback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loopback")
            .field("addr", &self.addr)
            .field("format", &self.shared.format)
            .field("fault", &self.shared.fault)
            .finish_non_exhaustive()
    }
}

impl Loopback {
    /// Starts the server of `brain` on an ephemeral port of 127.0.0.1, with a playbook over
    /// `namespaces` behind it.
    ///
    /// # Errors
    /// No port to bind.
    pub async fn start(brain: WireBrain, namespaces: &[String]) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("wire server: cannot bind 127.0.0.1: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("wire server: {e}"))?;
        let shared = Arc::new(Shared {
            format: brain.format,
            fault: brain.fault,
            model: Playbook::new(namespaces.iter().cloned()),
            sight: Arc::new(Mutex::new(None)),
            stats: Mutex::new(WireStats::default()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "wire server failed");
            }
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sre-llm provider configuration that talks to this server: the preset of the format,
    /// its endpoint pointed here, 2 retries, 10 s timeout. Read with [`Loopback::env`].
    pub fn config(&self) -> ProviderConfig {
        let base = format!("http://{}", self.addr);
        let mut c = match self.shared.format {
            Format::OpenAi => {
                let mut c = ProviderConfig::new(ProviderKind::Groq);
                c.endpoint = Some(format!("{base}/openai/v1"));
                c
            }
            Format::Azure => {
                let mut c = ProviderConfig::new(ProviderKind::Azure);
                c.endpoint = Some(base);
                c.deployment = Some(AZURE_DEPLOYMENT.into());
                c.api_version = Some(AZURE_API_VERSION.into());
                c
            }
            Format::Bedrock => {
                let mut c = ProviderConfig::new(ProviderKind::Bedrock);
                c.endpoint = Some(base);
                c.region = Some(AWS_REGION.into());
                c.model = Some(BEDROCK_MODEL.into());
                c
            }
        };
        c.max_retries = Some(2);
        c.max_retry_wait_secs = Some(1);
        c.timeout_secs = Some(10);
        c
    }

    /// The environment the provider is built with: the credentials this server accepts.
    pub fn env(&self) -> fn(&str) -> Option<String> {
        match self.shared.format {
            Format::OpenAi => |k| (k == "GROQ_API_KEY").then(|| KEY.to_owned()),
            Format::Azure => |k| (k == "AZURE_OPENAI_API_KEY").then(|| KEY.to_owned()),
            Format::Bedrock => |k| match k {
                "AWS_ACCESS_KEY_ID" => Some(AWS_ACCESS_KEY_ID.to_owned()),
                "AWS_SECRET_ACCESS_KEY" => Some(AWS_SECRET.to_owned()),
                _ => None,
            },
        }
    }

    /// The real sre-llm provider for this server ([`Loopback::config`] built with
    /// [`Loopback::env`]), wrapped in [`Sighted`].
    ///
    /// # Errors
    /// The provider does not build.
    pub fn provider(&self) -> Result<Arc<dyn LlmProvider>, String> {
        let env = self.env();
        let client = self
            .config()
            .build_with(&env)
            .map_err(|e| format!("building the {} client: {e}", self.shared.format.name()))?;
        Ok(Arc::new(Sighted {
            inner: client,
            sight: Arc::clone(&self.shared.sight),
        }))
    }

    /// What the server saw so far.
    pub fn stats(&self) -> WireStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Stops the server, waits for it, and returns what it saw.
    pub async fn finish(self) -> WireStats {
        let stats = self.stats();
        self.shutdown().await;
        stats
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Hands the model the agent's request beside the HTTP call (see the module docs), then calls
/// the real client.
pub struct Sighted {
    inner: Arc<dyn LlmProvider>,
    sight: Sight,
}

#[async_trait]
impl LlmProvider for Sighted {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if let Ok(mut s) = self.sight.lock() {
            *s = Some(request.clone());
        }
        self.inner.chat(request).await
    }

    fn name(&self) -> String {
        self.inner.name()
    }
}

/// A request as the service decoded it: canonical messages, tools and the model's id.
struct Decoded {
    messages: Vec<Message>,
    tools: Vec<ToolSpec>,
}

/// A rejection, in the service's own terms (encoded by the format).
struct Reject {
    status: StatusCode,
    /// OpenAI `error.type` / `error.code`; Bedrock `x-amzn-ErrorType`.
    kind: &'static str,
    message: String,
}

impl Reject {
    fn bad(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: message.into(),
        }
    }
}

/// One received HTTP request.
struct Incoming<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let number = {
        let Ok(mut s) = shared.stats.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        s.requests += 1;
        s.requests
    };
    let incoming = Incoming {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let decoded = match shared.format {
        Format::OpenAi | Format::Azure => openai::decode(shared.format, &incoming),
        Format::Bedrock => bedrock::decode(&incoming),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(r) => return reject(&shared, &r),
    };
    // The fault, from the second model call on: the request was valid, the service failed.
    if let Some(fault) = shared.fault
        && number > 1
        && fault != Fault::Truncated
    {
        return fail(shared.format, fault);
    }
    let request = match sighted(&shared, decoded) {
        Ok(r) => r,
        Err(violation) => {
            if let Ok(mut s) = shared.stats.lock() {
                s.violations.push(violation.clone());
            }
            return reject(
                &shared,
                &Reject::bad("invalid_request_error", format!("wire check: {violation}")),
            );
        }
    };
    let answer = match shared.model.chat(&request).await {
        Ok(a) => a,
        Err(e) => {
            return reject(
                &shared,
                &Reject {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    kind: "server_error",
                    message: format!("the model failed: {e}"),
                },
            );
        }
    };
    let turn = request
        .messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .count();
    let input_tokens = super::tokens_of(u64::try_from(body.len()).unwrap_or(u64::MAX));
    let encoded = match shared.format {
        Format::OpenAi | Format::Azure => {
            openai::encode(shared.format, &answer, turn, input_tokens)
        }
        Format::Bedrock => bedrock::encode(&answer, turn, input_tokens),
    };
    if let Ok(mut s) = shared.stats.lock() {
        s.answered += 1;
        s.bytes += u64::try_from(body.len()).unwrap_or(u64::MAX);
    }
    let mut bytes = encoded;
    if shared.fault == Some(Fault::Truncated) && number > 1 {
        bytes.truncate(bytes.len() / 2);
    }
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

fn reject(shared: &Shared, r: &Reject) -> Response {
    if let Ok(mut s) = shared.stats.lock() {
        s.rejected.push((r.status.as_u16(), r.message.clone()));
    }
    match shared.format {
        Format::OpenAi | Format::Azure => openai::error(shared.format, r),
        Format::Bedrock => bedrock::error(r),
    }
}

fn fail(format: Format, fault: Fault) -> Response {
    let r = match fault {
        Fault::RateLimited => Reject {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_exceeded",
            message: "Rate limit reached: too many requests. Please try again in 0s.".into(),
        },
        Fault::ServerError => Reject {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: "The server had an error while processing your request.".into(),
        },
        Fault::Garbage | Fault::Truncated => {
            return (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                "<html><head><title>502 Bad Gateway</title></head><body>upstream reset</body></html>",
            )
                .into_response();
        }
    };
    let mut response = match format {
        Format::OpenAi | Format::Azure => openai::error(format, &r),
        Format::Bedrock => bedrock::error(&r),
    };
    if fault == Fault::RateLimited {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("0"),
        );
    }
    response
}

/// The request the model answers: the decoded transcript, checked against the agent's own
/// request and given its tools' typed data. With no request beside the call (a client other
/// than [`Sighted`]), the decoded transcript as it is.
fn sighted(shared: &Shared, decoded: Decoded) -> Result<ChatRequest, String> {
    let sent = shared.sight.lock().ok().and_then(|s| s.clone());
    let Decoded {
        mut messages,
        tools,
    } = decoded;
    let Some(sent) = sent else {
        return Ok(ChatRequest {
            messages,
            tools,
            ..ChatRequest::default()
        });
    };
    if messages.len() != sent.messages.len() {
        return Err(format!(
            "{} messages arrived, the agent sent {}",
            messages.len(),
            sent.messages.len()
        ));
    }
    for (i, (got, want)) in messages.iter_mut().zip(&sent.messages).enumerate() {
        let same_calls = got.tool_calls.len() == want.tool_calls.len()
            && got
                .tool_calls
                .iter()
                .zip(&want.tool_calls)
                .all(|(g, w)| g.id == w.id && g.name == w.name && g.arguments == w.arguments);
        if got.role != want.role
            || got.content != want.content
            || got.tool_call_id != want.tool_call_id
            || !same_calls
        {
            return Err(format!(
                "message {i} ({:?}) arrived other than the agent sent it",
                want.role
            ));
        }
        if shared.format == Format::Bedrock
            && got.role == Role::Tool
            && got.is_error != want.is_error
        {
            return Err(format!(
                "message {i}: the tool result's status is not the agent's"
            ));
        }
        got.is_error = want.is_error;
        got.data.clone_from(&want.data);
        got.tool_name.clone_from(&want.tool_name);
    }
    if tools != sent.tools {
        return Err("the tool specs arrived other than the agent sent them".into());
    }
    Ok(ChatRequest {
        messages,
        tools,
        tool_choice: sent.tool_choice,
        max_output_tokens: sent.max_output_tokens,
        temperature: sent.temperature,
    })
}

/// True for a tool name the services accept: `^[a-zA-Z0-9_-]{1,64}$`.
fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The ids a server gives the calls of its answer in turn `turn`.
fn call_id(prefix: &str, turn: usize, index: usize) -> String {
    format!("{prefix}_{turn:02}{index:03}")
}
