//! The OpenAI chat-completions wire format, written once: OpenAI, Groq, Ollama, vLLM and Azure
//! OpenAI are configurations of [`OpenAiCompatible`].
//!
//! Never sent: `messages[].name`, `n`, `logprobs` (Groq rejects them).
//!
//! Tool calls are read tolerantly: `arguments` sent as a JSON object (as Ollama does) are taken as
//! they are; a string that is not JSON, or a value that is neither a string nor an object, is
//! passed on as it is, so that the agent's schema check turns it into a tool error the model can
//! correct; a call without an id gets a generated one (`call_<index>_<n>`).
//!
//! Response bodies are read up to [`DEFAULT_MAX_RESPONSE_BYTES`] unless
//! [`OpenAiCompatible::max_response_bytes`] says otherwise, and the key never appears in an error,
//! even when the provider quotes it back.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sre_core::{
    ChatRequest, ChatResponse, LlmError, LlmProvider, Message, Role, StopReason, ToolCall,
    ToolChoice, Usage,
};

use sre_core::secret::{SecretError, SecretHandle};

use crate::http::{self, DEFAULT_MAX_RESPONSE_BYTES, Secret};
use crate::tool_call::{self, CallIds};

/// How the key is sent, and where it comes from.
///
/// The `…Ref` forms take a [`SecretHandle`]: the key is fetched for each request (cached by the
/// handle), and when the provider answers 401 and the handle is
/// [refreshable](SecretHandle::refreshable) (a rotated key in Vault, an Entra token), it is
/// invalidated, fetched again and the request retried once with the new value. The forms with a
/// fixed [`Secret`] are [`SecretHandle::fixed`] handles: a 401 is the answer.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <key>` (OpenAI, Groq, vLLM, Azure with an Entra token).
    Bearer(Secret),
    /// `api-key: <key>` (Azure OpenAI keys).
    ApiKeyHeader(Secret),
    /// `Authorization: Bearer <value>`, the value from a handle (a key by reference, or an Entra
    /// token from [`entra::token_handle`](crate::entra::token_handle)).
    BearerRef(SecretHandle),
    /// `api-key: <value>`, the value from a handle.
    ApiKeyHeaderRef(SecretHandle),
    /// No key (a local Ollama or vLLM).
    None,
}

impl Auth {
    /// The handle the key comes from (a fixed one for [`Auth::Bearer`] and
    /// [`Auth::ApiKeyHeader`], labelled `label`), and the header it goes in.
    fn resolve(self, label: &str) -> Option<Credential> {
        let (header, handle) = match self {
            Self::Bearer(key) => (Header::Bearer, SecretHandle::fixed(label, key)),
            Self::ApiKeyHeader(key) => (Header::ApiKey, SecretHandle::fixed(label, key)),
            Self::BearerRef(handle) => (Header::Bearer, handle),
            Self::ApiKeyHeaderRef(handle) => (Header::ApiKey, handle),
            Self::None => return None,
        };
        Some(Credential { header, handle })
    }
}

#[derive(Debug, Clone, Copy)]
enum Header {
    Bearer,
    ApiKey,
}

/// Where the key comes from and how it is sent.
#[derive(Debug, Clone)]
struct Credential {
    header: Header,
    handle: SecretHandle,
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    name: String,
    url: String,
    model: String,
    credential: Option<Credential>,
    timeout: Option<Duration>,
    max_response_bytes: u64,
    http: reqwest::Client,
}

impl OpenAiCompatible {
    /// A provider posting to `{base_url}/chat/completions`. `name` labels it in reports and errors.
    pub fn new(name: &str, base_url: &str, model: &str, auth: Auth) -> Self {
        Self::with_url(
            name,
            &format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model,
            auth,
        )
    }

    /// A provider posting to the full `url` (Azure's deployment URL with `api-version`).
    pub fn with_url(name: &str, url: &str, model: &str, auth: Auth) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            model: model.to_owned(),
            credential: auth.resolve(&format!("{name} key")),
            timeout: Some(Duration::from_secs(120)),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            http: http::client(Some(Duration::from_secs(120))),
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

    /// The URL it posts to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The model.
    pub fn model(&self) -> &str {
        &self.model
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall,
}

#[derive(Serialize)]
struct WireFunctionCall {
    name: String,
    arguments: String,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    content_filter_results: Option<Value>,
}

#[derive(Deserialize)]
struct WireResponseMessage {
    #[serde(default)]
    content: Option<String>,
    /// Read as plain JSON: each call is checked by [`tool_calls`], tolerantly.
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

fn to_wire(m: &Message) -> WireMessage<'_> {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let tool_calls = m
        .tool_calls
        .iter()
        .map(|c| WireToolCall {
            id: c.id.clone(),
            kind: "function",
            function: WireFunctionCall {
                name: c.name.clone(),
                arguments: match &c.arguments {
                    Value::String(raw) => raw.clone(),
                    other => other.to_string(),
                },
            },
        })
        .collect::<Vec<_>>();
    let content = if m.role == Role::Assistant && m.content.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(m.content.as_str())
    };
    WireMessage {
        role,
        content,
        tool_calls,
        tool_call_id: m.tool_call_id.as_deref(),
    }
}

/// The request body for `request` (exposed for the wire tests).
pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let body = WireRequest {
        model,
        messages: request.messages.iter().map(to_wire).collect(),
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                kind: "function",
                function: WireFunction {
                    name: &t.name,
                    description: &t.description,
                    parameters: &t.parameters,
                },
            })
            .collect(),
        tool_choice: if request.tools.is_empty() {
            None
        } else {
            Some(match &request.tool_choice {
                ToolChoice::Auto => Value::from("auto"),
                ToolChoice::None => Value::from("none"),
                ToolChoice::Required => Value::from("required"),
                ToolChoice::Tool(name) => {
                    serde_json::json!({"type": "function", "function": {"name": name}})
                }
            })
        },
        max_tokens: request.max_output_tokens,
        temperature: request.temperature,
    };
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// Parses a response body.
///
/// # Errors
/// A malformed body, or an answer the content filter stopped.
pub fn parse_response(provider: &str, body: &[u8]) -> Result<ChatResponse, LlmError> {
    let malformed = |message: String| LlmError::MalformedResponse {
        provider: provider.to_owned(),
        message,
    };
    let wire: WireResponse = serde_json::from_slice(body).map_err(|e| malformed(format!("{e}")))?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| malformed("no choices in the response".into()))?;
    let finish = choice.finish_reason.as_deref().unwrap_or("stop");
    if finish == "content_filter" {
        let filtered = choice
            .content_filter_results
            .as_ref()
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v.get("filtered") == Some(&Value::Bool(true)))
                    .map(|(k, v)| {
                        format!(
                            "{k} ({})",
                            v.get("severity").and_then(Value::as_str).unwrap_or("?")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        return Err(LlmError::ContentFilter {
            provider: provider.to_owned(),
            message: if filtered.is_empty() {
                "the answer was filtered".into()
            } else {
                format!("filtered: {filtered}")
            },
        });
    }
    let tool_calls = tool_calls(provider, choice.message.tool_calls.unwrap_or_default())?;
    let usage = wire
        .usage
        .map(|u| Usage::new(u.prompt_tokens, u.completion_tokens))
        .unwrap_or_default();
    let stop_reason = match finish {
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "stop" if !tool_calls.is_empty() => StopReason::ToolUse,
        "stop" => StopReason::EndTurn,
        _ => StopReason::Other,
    };
    let content = choice.message.content.unwrap_or_default();
    Ok(ChatResponse {
        message: if tool_calls.is_empty() {
            Message::assistant(content)
        } else {
            Message::assistant_tool_calls(content, tool_calls)
        },
        stop_reason,
        usage,
    })
}

/// The calls of one answer, read tolerantly (see the module docs). Only a call without a function
/// name is malformed: there is no tool to answer for.
fn tool_calls(provider: &str, calls: Vec<Value>) -> Result<Vec<ToolCall>, LlmError> {
    let mut ids = CallIds::default();
    calls
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let mut function = c.get_mut("function").map(Value::take);
            let name = function
                .as_ref()
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| LlmError::MalformedResponse {
                    provider: provider.to_owned(),
                    message: format!("tool call {i} has no function name"),
                })?
                .to_owned();
            let arguments = tool_call::arguments(
                function
                    .as_mut()
                    .and_then(|f| f.get_mut("arguments"))
                    .map(Value::take),
            );
            Ok(ToolCall::new(ids.id(i, c.get("id")), name, arguments))
        })
        .collect()
}

/// Reads a chat-completions answer as the provider does: a 2xx body through [`parse_response`],
/// any other status into the typed error that quotes the provider's message, with every one of
/// `secrets` scrubbed from either. Public for the fuzz targets in `benches/fuzz`.
///
/// # Errors
/// The mapped error of a non-2xx answer, or [`LlmError::MalformedResponse`] for a 2xx body that
/// is not a chat completion.
#[doc(hidden)]
pub fn parse_answer(
    provider: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> Result<ChatResponse, LlmError> {
    if !(200..300).contains(&status) {
        return Err(http::status_error(provider, status, headers, body, secrets));
    }
    // A malformed body is quoted by serde's message, which may hold a value the server echoed.
    parse_response(provider, body).map_err(|e| http::scrub_error(e, secrets))
}

/// A provider's failure to get its key, as a call error: refused → [`LlmError::Auth`],
/// unavailable now → [`LlmError::Connect`] (retryable), anything else → [`LlmError::Config`].
/// The message names the reference, never a value.
pub(crate) fn key_error(provider: &str, e: &SecretError) -> LlmError {
    let message = format!("could not get the credential: {e}");
    match e {
        SecretError::Denied { .. } => LlmError::Auth {
            provider: provider.to_owned(),
            message,
        },
        SecretError::Unavailable { .. } => LlmError::Connect {
            provider: provider.to_owned(),
            message,
        },
        _ => LlmError::Config(format!("{provider}: {message}")),
    }
}

impl OpenAiCompatible {
    /// One request with `key`; `Err((error, true))` when the provider answered 401.
    async fn attempt(
        &self,
        body: &Value,
        key: Option<&Secret>,
    ) -> Result<ChatResponse, (LlmError, bool)> {
        let mut req = self.http.post(&self.url).json(body);
        if let (Some(credential), Some(key)) = (&self.credential, key) {
            req = match credential.header {
                Header::Bearer => req.bearer_auth(key.expose()),
                Header::ApiKey => req.header("api-key", key.expose()),
            };
        }
        let secrets: Vec<&str> = key.map(Secret::expose).into_iter().collect();
        let received = http::receive(&self.name, req, self.timeout, self.max_response_bytes)
            .await
            .map_err(|e| (e, false))?;
        parse_answer(
            &self.name,
            received.status,
            &received.headers,
            &received.body,
            &secrets,
        )
        .map_err(|e| (e, received.status == 401))
    }
}

#[async_trait]
impl LlmProvider for OpenAiCompatible {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = request_body(&self.model, request);
        let Some(credential) = &self.credential else {
            return self.attempt(&body, None).await.map_err(|(e, _)| e);
        };
        let handle = &credential.handle;
        let key = handle.get().await.map_err(|e| key_error(&self.name, &e))?;
        let (error, unauthorized) = match self.attempt(&body, Some(&key)).await {
            Ok(response) => return Ok(response),
            Err(failure) => failure,
        };
        if !(unauthorized && handle.refreshable()) {
            return Err(http::scrub_error(error, &[key.expose()]));
        }
        // The key was refused: it may have been rotated (or the token revoked). Fetch it again
        // and retry once; a second 401 is the answer.
        handle.invalidate_if(&key);
        let fresh = match handle.get().await {
            Ok(fresh) => fresh,
            Err(e) => return Err(key_error(&self.name, &e)),
        };
        if fresh == key {
            tracing::debug!(provider = %self.name, reference = %handle.reference(), "key refused (401) and unchanged at its source; not retrying");
            return Err(http::scrub_error(error, &[key.expose()]));
        }
        tracing::info!(provider = %self.name, reference = %handle.reference(), "key refused (401); fetched it again, retrying once");
        self.attempt(&body, Some(&fresh))
            .await
            .map_err(|(e, _)| http::scrub_error(e, &[key.expose(), fresh.expose()]))
    }

    fn name(&self) -> String {
        format!("{}/{}", self.name, self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_answer_never_quotes_the_api_key() {
        // Found by the fuzz target `openai_response`: a 200 body with the key where a number
        // belongs was quoted whole by serde's message in the malformed-response error.
        let key = "gsk_Zq8vT3mXw9LkP2rN7yBc4HdJfGs6Ua1Ee5Ri0Oo3Mm8Nn2Bb7Vv4Cc9Xx";
        let body = format!(
            r#"{{"choices":[{{"message":{{"role":"assistant","content":"hi"}}}}],"usage":{{"prompt_tokens":"{key}"}}}}"#
        );
        let headers = reqwest::header::HeaderMap::new();
        let e = parse_answer("groq", 200, &headers, body.as_bytes(), &[key]).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, LlmError::MalformedResponse { .. }), "{text}");
        assert!(!text.contains(key), "{text}");
        assert!(text.contains("[REDACTED]"), "{text}");
    }
}
