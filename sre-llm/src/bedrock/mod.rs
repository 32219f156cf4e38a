//! AWS Bedrock's Converse API: `POST /model/{modelId}/converse` with `toolConfig`, `toolUse` /
//! `toolResult` content blocks (the results of one turn go back in one user message), `stopReason`,
//! usage, and errors from `x-amzn-ErrorType`; signed with SigV4.
//!
//! A `toolUse` block is read tolerantly, like the OpenAI-compatible calls: one without a
//! `toolUseId` gets a generated id (`call_<index>_<n>`); an `input` that is not an object (a JSON
//! string is parsed first) is passed on as it is, so the agent answers with a tool error the model
//! can correct instead of the run failing. Response bodies are capped
//! ([`Bedrock::max_response_bytes`]) and the secret key and session token never appear in an
//! error.
//!
//! Credentials come from an [`AwsCredentialsProvider`]: fixed keys ([`Bedrock::new`]) or the
//! standard AWS chain ([`Bedrock::with_credentials_provider`] with
//! [`credential_chain`](crate::aws::credential_chain): environment, shared profile, web identity,
//! container endpoint, `IMDSv2`), fetched for each request from its cache. When Bedrock refuses
//! chain credentials as expired or unknown (403 `ExpiredTokenException` or
//! `UnrecognizedClientException`, or a 401), they are invalidated, fetched once more and the
//! request is sent once more.
//!
//! Prompt caching ([`Bedrock::prompt_cache`], for the models that support it: Anthropic Claude
//! and Amazon Nova) marks the request's stable prefix with Converse `cachePoint` blocks: after the
//! tool specs, after the system prompt, and after the last message, so that the next call of the
//! same run (the same tools, prompt and transcript, one turn longer) reads them from the cache.

pub mod sigv4;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use sre_core::{
    ChatRequest, ChatResponse, LlmError, LlmProvider, Message, Role, StopReason, ToolCall,
    ToolChoice, Usage,
};

use crate::aws::{AwsCredentialsError, AwsCredentialsProvider};
use crate::http::{self, DEFAULT_MAX_RESPONSE_BYTES};
use crate::tool_call::{self, CallIds};
pub use sigv4::AwsCredentials;

/// Characters kept as they are in the model id path segment (unreserved, RFC 3986).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A Bedrock Converse provider.
#[derive(Debug, Clone)]
pub struct Bedrock {
    endpoint: String,
    region: String,
    model: String,
    credentials: AwsCredentialsProvider,
    timeout: Option<Duration>,
    max_response_bytes: u64,
    http: reqwest::Client,
    clock: Option<SystemTime>,
    prompt_cache: bool,
}

impl Bedrock {
    /// A provider for `model` in `region` signing with fixed `credentials`, at
    /// `https://bedrock-runtime.{region}.amazonaws.com` unless `endpoint` is given (a VPC endpoint
    /// or gateway).
    pub fn new(
        region: &str,
        model: &str,
        credentials: AwsCredentials,
        endpoint: Option<&str>,
    ) -> Self {
        Self::with_credentials_provider(
            region,
            model,
            AwsCredentialsProvider::fixed(credentials),
            endpoint,
        )
    }

    /// A provider signing each request with credentials from `credentials` (e.g.
    /// [`credential_chain`](crate::aws::credential_chain)), fetched again before they expire and
    /// when Bedrock refuses them as expired.
    pub fn with_credentials_provider(
        region: &str,
        model: &str,
        credentials: AwsCredentialsProvider,
        endpoint: Option<&str>,
    ) -> Self {
        Self {
            endpoint: endpoint.map_or_else(
                || format!("https://bedrock-runtime.{region}.amazonaws.com"),
                |e| e.trim_end_matches('/').to_owned(),
            ),
            region: region.to_owned(),
            model: model.to_owned(),
            credentials,
            timeout: Some(Duration::from_secs(120)),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            http: http::client(Some(Duration::from_secs(120))),
            clock: None,
            prompt_cache: false,
        }
    }

    /// The HTTP request timeout (default 120 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self.http = http::client(Some(timeout));
        self
    }

    /// The largest response body accepted, in bytes (default [`DEFAULT_MAX_RESPONSE_BYTES`],
    /// 8 MiB). A larger answer fails with [`LlmError::MalformedResponse`] naming the limit, and is
    /// not read past it.
    #[must_use]
    pub fn max_response_bytes(mut self, limit: u64) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Marks the stable prefix of every request with `cachePoint` blocks ([`add_cache_points`]),
    /// so that Bedrock's prompt cache serves it on the next call of a run (Amazon Nova models
    /// cache no tool specs: theirs get no cache point). Off by default: only
    /// some models accept cache points (Anthropic Claude, Amazon Nova), and a prefix shorter than
    /// the model's minimum (e.g. 1,024 tokens) is not cached. Cached input tokens are counted in
    /// [`Usage::input_tokens`], so token budgets see every token the model read.
    #[must_use]
    pub fn prompt_cache(mut self, on: bool) -> Self {
        self.prompt_cache = on;
        self
    }

    /// Signs with this time instead of the clock (tests).
    #[must_use]
    pub fn fixed_clock(mut self, time: SystemTime) -> Self {
        self.clock = Some(time);
        self
    }

    /// The Converse URL, with the model id percent-encoded.
    pub fn url(&self) -> String {
        format!(
            "{}/model/{}/converse",
            self.endpoint,
            utf8_percent_encode(&self.model, PATH)
        )
    }
}

/// What an empty text goes as: Converse refuses a blank text block ("The text field in the
/// `ContentBlock` object at messages.N.content.M is blank"), and a tool that printed nothing (an
/// empty log) would otherwise make every later request of the run fail the same way.
const EMPTY_TEXT: &str = "(empty)";

/// Blank as a service may judge it: whitespace and control characters only (Java's
/// `isWhitespace` counts U+001C–U+001F, which Rust's `trim` keeps).
fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c.is_control())
}

/// A text content block; a blank text becomes [`EMPTY_TEXT`].
fn text_block(text: &str) -> Value {
    if is_blank(text) {
        json!({ "text": EMPTY_TEXT })
    } else {
        json!({ "text": text })
    }
}

/// The Converse request body for `request`. Blank system prompts are left out and other blank
/// texts sent as `(empty)`, because Converse refuses blank text blocks.
pub fn request_body(request: &ChatRequest) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &request.messages {
        match m.role {
            Role::System if is_blank(&m.content) => {}
            Role::System => system.push(json!({"text": m.content})),
            Role::User => {
                messages.push(json!({"role": "user", "content": [text_block(&m.content)]}));
            }
            Role::Assistant => {
                let mut content = Vec::new();
                if !is_blank(&m.content) || m.tool_calls.is_empty() {
                    content.push(text_block(&m.content));
                }
                for c in &m.tool_calls {
                    let input = if c.arguments.is_object() {
                        c.arguments.clone()
                    } else {
                        json!({})
                    };
                    content.push(
                        json!({"toolUse": {"toolUseId": c.id, "name": c.name, "input": input}}),
                    );
                }
                messages.push(json!({"role": "assistant", "content": content}));
            }
            Role::Tool => {
                let block = json!({"toolResult": {
                    "toolUseId": m.tool_call_id.clone().unwrap_or_default(),
                    "content": [text_block(&m.content)],
                    "status": if m.is_error { "error" } else { "success" }
                }});
                // The results of one turn go back together, in one user message.
                let last_is_results = messages.last().is_some_and(|l| {
                    l["role"] == "user"
                        && l["content"]
                            .as_array()
                            .is_some_and(|c| c.iter().all(|b| b.get("toolResult").is_some()))
                });
                if last_is_results {
                    if let Some(c) = messages
                        .last_mut()
                        .and_then(|l| l["content"].as_array_mut())
                    {
                        c.push(block);
                    }
                } else {
                    messages.push(json!({"role": "user", "content": [block]}));
                }
            }
        }
    }
    let mut body = json!({"messages": messages});
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"toolSpec": {"name": t.name, "description": t.description, "inputSchema": {"json": t.parameters}}}))
            .collect();
        body["toolConfig"] = json!({"tools": tools});
        match &request.tool_choice {
            ToolChoice::Auto | ToolChoice::None => {}
            ToolChoice::Required => body["toolConfig"]["toolChoice"] = json!({"any": {}}),
            ToolChoice::Tool(name) => {
                body["toolConfig"]["toolChoice"] = json!({"tool": {"name": name}});
            }
        }
    }
    let mut inference = serde_json::Map::new();
    if let Some(m) = request.max_output_tokens {
        inference.insert("maxTokens".into(), json!(m));
    }
    if let Some(t) = request.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if !inference.is_empty() {
        body["inferenceConfig"] = Value::Object(inference);
    }
    body
}

/// A Converse `cachePoint` block: the content before it is cached.
fn cache_point() -> Value {
    json!({"cachePoint": {"type": "default"}})
}

/// Adds `cachePoint` blocks to a Converse request body: at the end of the tool specs, of the
/// system prompt and of the last message's content (three of the four a request may carry). The
/// prefix up to each point is what the next request of the run shares.
pub fn add_cache_points(body: &mut Value) {
    if let Some(tools) = body
        .pointer_mut("/toolConfig/tools")
        .and_then(Value::as_array_mut)
        .filter(|t| !t.is_empty())
    {
        tools.push(cache_point());
    }
    if let Some(system) = body
        .get_mut("system")
        .and_then(Value::as_array_mut)
        .filter(|s| !s.is_empty())
    {
        system.push(cache_point());
    }
    if let Some(content) = body
        .get_mut("messages")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.last_mut())
        .and_then(|m| m.get_mut("content"))
        .and_then(Value::as_array_mut)
        .filter(|c| !c.is_empty())
    {
        content.push(cache_point());
    }
}

/// Whether `model` accepts a cache point in its tool specs: Amazon Nova caches only the system
/// prompt and the messages (its inference profiles too: `us.amazon.nova-…`).
fn caches_tools(model: &str) -> bool {
    !model
        .split('.')
        .zip(model.split('.').skip(1))
        .any(|(vendor, name)| vendor == "amazon" && name.starts_with("nova"))
}

/// Removes the cache point [`add_cache_points`] put after the tool specs.
fn drop_tools_cache_point(body: &mut Value) {
    if let Some(tools) = body
        .pointer_mut("/toolConfig/tools")
        .and_then(Value::as_array_mut)
        && tools.last().is_some_and(|t| t.get("cachePoint").is_some())
    {
        tools.pop();
    }
}

/// Parses a Converse response body.
///
/// # Errors
/// A malformed body, or a response stopped by a guardrail or content filter.
pub fn parse_response(provider: &str, body: &[u8]) -> Result<ChatResponse, LlmError> {
    let malformed = |message: String| LlmError::MalformedResponse {
        provider: provider.to_owned(),
        message,
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let content = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no output.message.content".into()))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut ids = CallIds::default();
    for block in content {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(u) = block.get("toolUse") {
            let name = u
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| malformed("toolUse without name".into()))?;
            calls.push(ToolCall::new(
                ids.id(calls.len(), u.get("toolUseId")),
                name,
                tool_call::arguments(u.get("input").cloned()),
            ));
        }
    }
    let stop = v
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    if matches!(stop, "guardrail_intervened" | "content_filtered") {
        return Err(LlmError::ContentFilter {
            provider: provider.to_owned(),
            message: format!("stopReason {stop}"),
        });
    }
    let tokens = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    // With prompt caching, `inputTokens` leaves out what was read from or written to the cache.
    let usage = Usage::new(
        tokens("/usage/inputTokens")
            .saturating_add(tokens("/usage/cacheReadInputTokens"))
            .saturating_add(tokens("/usage/cacheWriteInputTokens")),
        v.pointer("/usage/outputTokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    );
    let stop_reason = match stop {
        "tool_use" => StopReason::ToolUse,
        "end_turn" | "stop_sequence" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        _ => StopReason::Other,
    };
    Ok(ChatResponse {
        message: if calls.is_empty() {
            Message::assistant(text)
        } else {
            Message::assistant_tool_calls(text, calls)
        },
        stop_reason,
        usage,
    })
}

/// Reads a Converse answer as the provider does: a 2xx body through [`parse_response`], any
/// other status into the typed error (by `x-amzn-ErrorType`), with every one of `secrets`
/// scrubbed from what either quotes. Public for the fuzz targets in `benches/fuzz`.
///
/// # Errors
/// The mapped error of a non-2xx answer, or [`LlmError::MalformedResponse`] for a 2xx body that
/// is not a Converse response.
#[doc(hidden)]
pub fn parse_answer(
    provider: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> Result<ChatResponse, LlmError> {
    if !(200..300).contains(&status) {
        return Err(bedrock_error(provider, status, headers, body, secrets));
    }
    parse_response(provider, body).map_err(|e| http::scrub_error(e, secrets))
}

/// Maps a Bedrock error answer using `x-amzn-ErrorType`; `secrets` are scrubbed from the quoted
/// message.
fn bedrock_error(
    provider: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> LlmError {
    let kind = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned())
        .unwrap_or_default();
    let message = http::provider_message(body, secrets);
    let p = provider.to_owned();
    // The error type is quoted too: a proxy can put anything in the header.
    let quoted = if kind.is_empty() {
        message.clone()
    } else {
        format!("{}: {message}", http::scrub(&kind, secrets))
    };
    match kind.as_str() {
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "ExpiredTokenException"
        | "InvalidSignatureException" => LlmError::Auth {
            provider: p,
            message: quoted,
        },
        "ThrottlingException" | "ServiceQuotaExceededException" => LlmError::RateLimited {
            provider: p,
            retry_after: http::retry_after(headers),
        },
        "ModelTimeoutException" => LlmError::Timeout {
            provider: p,
            elapsed: Duration::ZERO,
        },
        "InternalServerException" | "ServiceUnavailableException" | "ModelNotReadyException" => {
            LlmError::Server {
                provider: p,
                status,
                message: quoted,
            }
        }
        _ => match http::status_error(provider, status, headers, body, secrets) {
            LlmError::BadRequest {
                provider, status, ..
            } => LlmError::BadRequest {
                provider,
                status,
                message: quoted,
            },
            other => other,
        },
    }
}

/// The secrets an error must never quote: the secret key and the session token.
fn secrets_of(c: &AwsCredentials) -> Vec<&str> {
    std::iter::once(c.secret_access_key.expose())
        .chain(c.session_token.as_ref().map(http::Secret::expose))
        .collect()
}

/// Whether Bedrock refused the credentials themselves (expired, revoked or unknown), so fresh
/// ones may succeed: 401, or 403 with `ExpiredTokenException` / `UnrecognizedClientException`.
fn credentials_refused(r: &http::Received) -> bool {
    let kind = r
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v))
        .unwrap_or_default();
    r.status == 401
        || (r.status == 403
            && matches!(
                kind,
                "ExpiredTokenException" | "ExpiredToken" | "UnrecognizedClientException"
            ))
}

/// The call error for credentials that could not be had: nothing configured is a configuration
/// error; an unreachable source is a connection error (retryable); a refusal is an auth error.
fn credentials_error(e: &AwsCredentialsError) -> LlmError {
    let provider = "bedrock".to_owned();
    match e {
        AwsCredentialsError::NotFound { .. } => LlmError::Config(format!("bedrock: {e}")),
        _ if e.is_transient() => LlmError::Connect {
            provider,
            message: e.to_string(),
        },
        _ => LlmError::Auth {
            provider,
            message: e.to_string(),
        },
    }
}

impl Bedrock {
    /// Signs and sends one Converse request with `credentials`.
    async fn send(
        &self,
        body: &[u8],
        credentials: &AwsCredentials,
    ) -> Result<http::Received, LlmError> {
        let url = self.url();
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_owned();
        let headers = [
            ("content-type", "application/json"),
            ("host", host.as_str()),
        ];
        let signed = sigv4::sign_request(
            credentials,
            &self.region,
            "bedrock",
            sigv4::Unsigned {
                method: "POST",
                url: &url,
                headers: &headers,
                body,
            },
            self.clock.unwrap_or_else(SystemTime::now),
        )
        .map_err(LlmError::Other)?;
        let mut req = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in signed {
            req = req.header(k, v);
        }
        http::receive("bedrock", req, self.timeout, self.max_response_bytes).await
    }

    /// [`send`](Self::send), with the credentials' secrets scrubbed from a transport error.
    async fn send_scrubbed(
        &self,
        body: &[u8],
        credentials: &AwsCredentials,
    ) -> Result<http::Received, LlmError> {
        self.send(body, credentials)
            .await
            .map_err(|e| http::scrub_error(e, &secrets_of(credentials)))
    }

    /// Fresh credentials from the provider, as a call error when there are none.
    async fn credentials(&self) -> Result<AwsCredentials, LlmError> {
        self.credentials
            .credentials()
            .await
            .map_err(|e| credentials_error(&e))
    }
}

#[async_trait]
impl LlmProvider for Bedrock {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let name = "bedrock";
        let mut body = request_body(request);
        if self.prompt_cache {
            add_cache_points(&mut body);
            if !caches_tools(&self.model) {
                drop_tools_cache_point(&mut body);
            }
        }
        let body = serde_json::to_vec(&body).map_err(|e| LlmError::Other(e.to_string()))?;
        let credentials = self.credentials().await?;
        let r = self.send_scrubbed(&body, &credentials).await?;
        let (r, credentials) = if credentials_refused(&r) && self.credentials.is_refreshable() {
            tracing::debug!(
                status = r.status,
                "bedrock refused the AWS credentials; fetching them again and retrying once"
            );
            self.credentials.invalidate();
            let fresh = self.credentials().await?;
            (self.send_scrubbed(&body, &fresh).await?, fresh)
        } else {
            (r, credentials)
        };
        let secrets = secrets_of(&credentials);
        parse_answer(name, r.status, &r.headers, &r.body, &secrets)
    }

    fn name(&self) -> String {
        format!("bedrock/{}", self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sre_core::ToolSpec;

    fn request() -> ChatRequest {
        let call = ToolCall::new("c1", "k8s_find_unhealthy", json!({}));
        ChatRequest {
            messages: vec![
                Message::system("be careful"),
                Message::user("shop/web is failing"),
                Message::assistant_tool_calls("", vec![call.clone()]),
                Message::tool_result(&call, "1 unhealthy workload"),
            ],
            tools: vec![ToolSpec {
                name: "k8s_find_unhealthy".into(),
                description: "Start here.".into(),
                parameters: json!({"type": "object", "properties": {}}),
            }],
            ..ChatRequest::default()
        }
    }

    #[test]
    fn cache_points_close_the_tools_the_system_prompt_and_the_transcript() {
        let plain = request_body(&request());
        let mut cached = plain.clone();
        add_cache_points(&mut cached);
        let point = json!({"cachePoint": {"type": "default"}});
        let tools = cached["toolConfig"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[1], point);
        assert_eq!(cached["system"], json!([{"text": "be careful"}, point]));
        let last = cached["messages"].as_array().unwrap().last().unwrap();
        assert_eq!(last["role"], "user");
        let content = last["content"].as_array().unwrap();
        assert_eq!(content.len(), 2);
        assert!(content[0].get("toolResult").is_some());
        assert_eq!(content[1], point);
        // Nothing else changes, and only three points (a request may carry four).
        let mut stripped = cached.clone();
        stripped["toolConfig"]["tools"]
            .as_array_mut()
            .unwrap()
            .pop();
        stripped["system"].as_array_mut().unwrap().pop();
        let n = stripped["messages"].as_array().unwrap().len();
        stripped["messages"][n - 1]["content"]
            .as_array_mut()
            .unwrap()
            .pop();
        assert_eq!(stripped, plain);
        assert_eq!(cached.to_string().matches("cachePoint").count(), 3);
    }

    #[test]
    fn nova_models_get_no_cache_point_in_their_tools() {
        for model in [
            "amazon.nova-pro-v1:0",
            "us.amazon.nova-lite-v1:0",
            "eu.amazon.nova-micro-v1:0",
        ] {
            assert!(!caches_tools(model), "{model}");
        }
        for model in [
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "amazon.titan-text-express-v1",
        ] {
            assert!(caches_tools(model), "{model}");
        }
        let mut body = request_body(&request());
        add_cache_points(&mut body);
        drop_tools_cache_point(&mut body);
        assert_eq!(body["toolConfig"]["tools"].as_array().unwrap().len(), 1);
        assert_eq!(body.to_string().matches("cachePoint").count(), 2);
        // Only a cache point is removed.
        drop_tools_cache_point(&mut body);
        assert_eq!(body["toolConfig"]["tools"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_request_without_tools_or_system_gets_no_empty_cache_points() {
        let mut body = request_body(&ChatRequest {
            messages: vec![Message::user("hi")],
            ..ChatRequest::default()
        });
        add_cache_points(&mut body);
        assert!(body.get("toolConfig").is_none());
        assert!(body.get("system").is_none());
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"text": "hi"}, {"cachePoint": {"type": "default"}}])
        );
        let mut empty = json!({"messages": []});
        add_cache_points(&mut empty);
        assert_eq!(empty, json!({"messages": []}));
    }

    #[test]
    fn no_text_block_is_blank() {
        // Converse refuses a blank text block with a 400, and the transcript keeps it, so one
        // tool that printed nothing (an empty container log) failed every later request.
        let call = ToolCall::new("c1", "k8s_pod_logs", json!({}));
        let body = request_body(&ChatRequest {
            messages: vec![
                Message::system(" "),
                Message::user(""),
                Message::assistant_tool_calls("", vec![call.clone()]),
                Message::tool_result(&call, ""),
                Message::assistant("\n\u{1c}"),
            ],
            ..ChatRequest::default()
        });
        assert!(body.get("system").is_none(), "{body}");
        let mut texts = 0;
        let mut blocks: Vec<&Value> = Vec::new();
        for m in body["messages"].as_array().unwrap() {
            let content = m["content"].as_array().unwrap();
            assert!(!content.is_empty(), "{m}");
            for b in content {
                blocks.push(b);
                if let Some(r) = b.get("toolResult") {
                    blocks.extend(r["content"].as_array().unwrap());
                }
            }
        }
        for b in blocks {
            if let Some(t) = b.get("text") {
                texts += 1;
                assert!(!is_blank(t.as_str().unwrap()), "{b}");
            }
        }
        assert_eq!(texts, 3, "{body}");
        // The assistant's turn of calls alone has no text block.
        assert_eq!(body["messages"][1]["content"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn cached_input_tokens_count_as_input() {
        let body = json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "done"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 120, "outputTokens": 7, "totalTokens": 1667,
                      "cacheReadInputTokens": 1200, "cacheWriteInputTokens": 340}
        });
        let r = parse_response("bedrock", body.to_string().as_bytes()).unwrap();
        assert_eq!(r.usage.input_tokens, 1660);
        assert_eq!(r.usage.output_tokens, 7);
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    #[test]
    fn error_type_header_never_quotes_a_credential() {
        // Found by the fuzz target `bedrock_response`: the `x-amzn-ErrorType` header was quoted
        // in the error as it came, so a proxy echoing the secret key there leaked it.
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            reqwest::header::HeaderValue::from_static("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"),
        );
        let e = parse_answer("bedrock", 408, &headers, b"{}", &[secret]).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("[REDACTED]"), "{text}");
    }
}
