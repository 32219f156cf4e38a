//! The chat-completions side of the OpenAI-compatible services (Groq's `/openai/v1` and Azure
//! OpenAI's deployments URL): what they accept, what they reject, and how they answer. One module
//! for both, as in sre-llm: Azure differs in its URL, its auth headers and its error shape, and adds
//! content-filter results to its answers.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sre_core::{ChatResponse, Message, ToolCall, ToolSpec};

use super::{
    AZURE_API_VERSION, AZURE_DEPLOYMENT, Decoded, ENTRA_TOKEN, Format, GROQ_MODEL, Incoming, KEY,
    Reject, call_id, valid_tool_name,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletionRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    tools: Vec<WireTool>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
}

#[derive(Deserialize)]
#[serde(tag = "role", rename_all = "lowercase", deny_unknown_fields)]
enum WireMessage {
    System {
        content: Content,
    },
    User {
        content: Content,
    },
    Assistant {
        #[serde(default)]
        content: Option<Content>,
        #[serde(default)]
        tool_calls: Option<Vec<WireToolCall>>,
    },
    Tool {
        content: Content,
        tool_call_id: String,
    },
}

/// A message's content: a string, or text parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<TextPart>),
}

impl Content {
    fn text(self) -> String {
        match self {
            Self::Text(t) => t,
            Self::Parts(parts) => parts
                .into_iter()
                .map(|p| {
                    let PartKind::Text = p.kind;
                    p.text
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextPart {
    #[serde(rename = "type")]
    kind: PartKind,
    text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum PartKind {
    Text,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: FunctionKind,
    function: WireFunctionCall,
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum FunctionKind {
    Function,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFunctionCall {
    name: String,
    /// A string holding JSON, as the format specifies (an object here is rejected).
    arguments: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTool {
    #[serde(rename = "type")]
    kind: FunctionKind,
    function: WireFunction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice; 1],
    usage: WireUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_filter_results: Option<Value>,
}

#[derive(Serialize)]
struct Choice {
    index: u32,
    message: AnswerMessage,
    finish_reason: &'static str,
    logprobs: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_filter_results: Option<Value>,
}

#[derive(Serialize)]
struct AnswerMessage {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<AnswerToolCall>,
}

#[derive(Serialize)]
struct AnswerToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: FunctionKind,
    function: AnswerFunction,
}

#[derive(Serialize)]
struct AnswerFunction {
    name: String,
    arguments: String,
}

#[derive(Serialize)]
#[expect(clippy::struct_field_names, reason = "the service's field names")]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

fn not_found(kind: &'static str, message: String) -> Reject {
    Reject {
        status: StatusCode::NOT_FOUND,
        kind,
        message,
    }
}

fn unauthorized(format: Format) -> Reject {
    Reject {
        status: StatusCode::UNAUTHORIZED,
        kind: "invalid_api_key",
        message: match format {
            Format::Azure => {
                "Access denied due to invalid subscription key or wrong API endpoint. \
                              Make sure to provide a valid key for an active subscription and use \
                              a correct regional API endpoint for your resource."
                    .into()
            }
            _ => "Invalid API Key".into(),
        },
    }
}

/// Checks the URL and the auth of `r` as the service does.
fn admit(format: Format, r: &Incoming<'_>) -> Result<(), Reject> {
    let path = r.uri.path();
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
    let unknown = || {
        not_found(
            "unknown_url",
            format!(
                "Unknown request URL: {} {path}. Please check the URL for typos.",
                r.method
            ),
        )
    };
    if r.method != axum::http::Method::POST {
        return Err(unknown());
    }
    if format == Format::OpenAi {
        if path != "/openai/v1/chat/completions" {
            return Err(unknown());
        }
        if header("authorization") != Some(format!("Bearer {KEY}").as_str()) {
            return Err(unauthorized(format));
        }
    } else {
        let deployment = path
            .strip_prefix("/openai/deployments/")
            .and_then(|rest| rest.strip_suffix("/chat/completions"))
            .ok_or_else(|| not_found("404", "Resource not found".into()))?;
        if deployment != AZURE_DEPLOYMENT {
            return Err(not_found(
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the \
                 deployment within the last 5 minutes, please wait a moment and try again."
                    .into(),
            ));
        }
        let version = r
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("api-version="));
        match version {
            None => return Err(not_found("404", "Resource not found".into())),
            Some(v) if v != AZURE_API_VERSION => {
                return Err(Reject::bad("BadRequest", "API version not supported"));
            }
            Some(_) => {}
        }
        let key = header("api-key") == Some(KEY);
        let entra = header("authorization") == Some(format!("Bearer {ENTRA_TOKEN}").as_str());
        if !(key || entra) {
            return Err(unauthorized(format));
        }
    }
    if !header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Err(Reject::bad(
            "invalid_request_error",
            "Invalid content type: the body must be application/json",
        ));
    }
    Ok(())
}

/// Decodes and checks a chat-completions request.
pub(super) fn decode(format: Format, r: &Incoming<'_>) -> Result<Decoded, Reject> {
    admit(format, r)?;
    let bad = |m: String| Reject::bad("invalid_request_error", m);
    let req: CompletionRequest = serde_json::from_slice(r.body).map_err(|e| {
        bad(format!(
            "We could not parse the JSON body of your request: {e}"
        ))
    })?;
    if format == Format::OpenAi && req.model != GROQ_MODEL {
        return Err(not_found(
            "model_not_found",
            format!(
                "The model `{}` does not exist or you do not have access to it.",
                req.model
            ),
        ));
    }
    if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t))
        || req.top_p.is_some_and(|t| !(0.0..=1.0).contains(&t))
    {
        return Err(bad(
            "temperature must be in [0, 2] and top_p in [0, 1]".into()
        ));
    }
    if req.max_tokens == Some(0) || req.max_completion_tokens == Some(0) {
        return Err(bad("max_tokens must be at least 1".into()));
    }
    if req.parallel_tool_calls.is_some() && req.tools.is_empty() {
        return Err(bad(
            "parallel_tool_calls is only allowed when 'tools' are specified".into(),
        ));
    }
    let tools = tools(req.tools).map_err(bad)?;
    if let Some(choice) = &req.tool_choice {
        check_tool_choice(choice, &tools).map_err(bad)?;
    }
    let messages = messages(req.messages).map_err(bad)?;
    Ok(Decoded { messages, tools })
}

fn tools(wire: Vec<WireTool>) -> Result<Vec<ToolSpec>, String> {
    let mut names = BTreeSet::new();
    wire.into_iter()
        .enumerate()
        .map(|(i, t)| {
            let FunctionKind::Function = t.kind;
            let f = t.function;
            if !valid_tool_name(&f.name) {
                return Err(format!(
                    "Invalid 'tools[{i}].function.name': string does not match pattern. \
                     Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
                ));
            }
            if !names.insert(f.name.clone()) {
                return Err(format!("Duplicate function name in tools: '{}'", f.name));
            }
            let parameters = f.parameters.unwrap_or_else(|| json!({}));
            if !parameters.is_object() {
                return Err(format!(
                    "Invalid 'tools[{i}].function.parameters': expected an object."
                ));
            }
            if f.strict == Some(true) && parameters.get("additionalProperties") != Some(&json!(false))
            {
                return Err(format!(
                    "Invalid schema for function '{}': with strict, 'additionalProperties' must be false.",
                    f.name
                ));
            }
            Ok(ToolSpec {
                name: f.name,
                description: f.description.unwrap_or_default(),
                parameters,
            })
        })
        .collect()
}

fn check_tool_choice(choice: &Value, tools: &[ToolSpec]) -> Result<(), String> {
    if tools.is_empty() {
        return Err("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.".into());
    }
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(()),
        Value::Object(_) => {
            let name = choice.pointer("/function/name").and_then(Value::as_str);
            if choice.get("type").and_then(Value::as_str) != Some("function") {
                return Err("Invalid value for 'tool_choice.type': expected 'function'.".into());
            }
            match name {
                Some(n) if tools.iter().any(|t| t.name == n) => Ok(()),
                _ => Err("Invalid 'tool_choice': the function is not among 'tools'.".into()),
            }
        }
        _ => Err(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a function."
                .into(),
        ),
    }
}

/// The canonical transcript, after the checks the service makes on the order of calls and
/// results.
fn messages(wire: Vec<WireMessage>) -> Result<Vec<Message>, String> {
    if wire.is_empty() {
        return Err(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.".into(),
        );
    }
    let mut out = Vec::with_capacity(wire.len());
    // The calls of the last assistant turn that no tool message answered yet, with their names.
    let mut pending: Vec<(String, String)> = Vec::new();
    // True while the messages follow an assistant turn with calls (its results).
    let mut in_results = false;
    for (i, m) in wire.into_iter().enumerate() {
        let is_tool = matches!(m, WireMessage::Tool { .. });
        if !is_tool && !pending.is_empty() {
            return Err(unanswered(&pending));
        }
        if !is_tool {
            in_results = false;
        }
        match m {
            WireMessage::System { content } => out.push(Message::system(content.text())),
            WireMessage::User { content } => out.push(Message::user(content.text())),
            WireMessage::Assistant {
                content,
                tool_calls,
            } => {
                let calls = tool_calls.unwrap_or_default();
                if content.is_none() && calls.is_empty() {
                    return Err(format!(
                        "Invalid value for 'messages[{i}].content': expected a string, got null."
                    ));
                }
                let mut ids = BTreeSet::new();
                let mut canonical = Vec::with_capacity(calls.len());
                for (j, c) in calls.into_iter().enumerate() {
                    let FunctionKind::Function = c.kind;
                    if c.id.is_empty() || !ids.insert(c.id.clone()) {
                        return Err(format!(
                            "Invalid 'messages[{i}].tool_calls[{j}].id': empty or duplicate id."
                        ));
                    }
                    if !valid_tool_name(&c.function.name) {
                        return Err(format!(
                            "Invalid 'messages[{i}].tool_calls[{j}].function.name': string does not match pattern."
                        ));
                    }
                    let args = &c.function.arguments;
                    let arguments = if args.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(args).unwrap_or(Value::String(args.clone()))
                    };
                    pending.push((c.id.clone(), c.function.name.clone()));
                    canonical.push(ToolCall::new(c.id, c.function.name, arguments));
                }
                in_results = !canonical.is_empty();
                let text = content.map(Content::text).unwrap_or_default();
                out.push(if canonical.is_empty() {
                    Message::assistant(text)
                } else {
                    Message::assistant_tool_calls(text, canonical)
                });
            }
            WireMessage::Tool {
                content,
                tool_call_id,
            } => {
                if !in_results {
                    return Err(format!(
                        "Invalid parameter: messages with role 'tool' must be a response to a \
                         preceeding message with 'tool_calls' (messages[{i}])."
                    ));
                }
                let Some(at) = pending.iter().position(|(id, _)| *id == tool_call_id) else {
                    return Err(format!(
                        "Invalid parameter: 'tool_call_id' of '{tool_call_id}' not found in \
                         'tool_calls' of previous message (messages[{i}])."
                    ));
                };
                let (id, name) = pending.remove(at);
                out.push(Message::tool_result(
                    &ToolCall::new(id, name, Value::Null),
                    content.text(),
                ));
            }
        }
    }
    if !pending.is_empty() {
        return Err(unanswered(&pending));
    }
    Ok(out)
}

fn unanswered(pending: &[(String, String)]) -> String {
    let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
    format!(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to \
         each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
        ids.join(", ")
    )
}

/// The service's answer for `answer`, in model turn `turn`.
pub(super) fn encode(
    format: Format,
    answer: &ChatResponse,
    turn: usize,
    input_tokens: u64,
) -> Vec<u8> {
    let calls: Vec<AnswerToolCall> = answer
        .message
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| AnswerToolCall {
            id: call_id("call", turn, i),
            kind: FunctionKind::Function,
            function: AnswerFunction {
                name: c.name.clone(),
                arguments: c.arguments.to_string(),
            },
        })
        .collect();
    let text = &answer.message.content;
    let out_bytes = text.len()
        + calls
            .iter()
            .map(|c| c.function.name.len() + c.function.arguments.len())
            .sum::<usize>();
    let output_tokens = super::super::tokens_of(u64::try_from(out_bytes).unwrap_or(u64::MAX));
    let azure = format == Format::Azure;
    let filters = || {
        json!({
            "hate": {"filtered": false, "severity": "safe"},
            "self_harm": {"filtered": false, "severity": "safe"},
            "sexual": {"filtered": false, "severity": "safe"},
            "violence": {"filtered": false, "severity": "safe"}
        })
    };
    let body = Completion {
        id: format!("chatcmpl-wire{turn:04}"),
        object: "chat.completion",
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: if azure {
            "gpt-4o-2024-08-06"
        } else {
            GROQ_MODEL
        },
        choices: [Choice {
            index: 0,
            finish_reason: if calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            },
            message: AnswerMessage {
                role: "assistant",
                content: (!text.is_empty() || calls.is_empty()).then(|| text.clone()),
                tool_calls: calls,
            },
            logprobs: None,
            content_filter_results: azure.then(filters),
        }],
        usage: WireUsage {
            prompt_tokens: input_tokens,
            completion_tokens: output_tokens,
            total_tokens: input_tokens + output_tokens,
        },
        prompt_filter_results: azure
            .then(|| json!([{"prompt_index": 0, "content_filter_results": filters()}])),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The service's error answer.
pub(super) fn error(format: Format, r: &Reject) -> Response {
    let body = match format {
        // Azure: `{"error": {"code", "message"}}`.
        Format::Azure => ErrorBody {
            error: ErrorDetail {
                message: &r.message,
                kind: None,
                param: None,
                code: Some(r.kind),
            },
        },
        _ => ErrorBody {
            error: ErrorDetail {
                message: &r.message,
                kind: Some(if r.status.is_server_error() {
                    "server_error"
                } else {
                    "invalid_request_error"
                }),
                param: None,
                code: Some(r.kind),
            },
        },
    };
    (
        r.status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}
