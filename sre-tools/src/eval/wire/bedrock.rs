//! The Converse side of AWS Bedrock: `POST /model/{modelId}/converse`, SigV4-verified, with the
//! checks Bedrock makes on a conversation (user first, roles alternating, no blank text, every
//! `toolUse` of a turn answered by a `toolResult` in the next, `toolConfig` present whenever tool
//! blocks are) and its error shape (`x-amzn-ErrorType` and `{"message"}`).
//!
//! The signature is verified the way the service does it: the request as received (method, path,
//! `host`, the other signed headers, body) is signed again with the secret key behind the access
//! key id, at the `x-amz-date` it carries, and the two `Authorization` values must be equal — after
//! the header's shape, credential scope (date, region, service `bedrock`, `aws4_request`) and
//! clock skew (5 minutes) were checked. The signing is aws-sigv4's, through sre-llm's `sigv4`
//! module, whose own tests hold it to known vectors.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sre_core::{ChatResponse, Message, ToolCall, ToolSpec};
use sre_llm::bedrock::sigv4::{self, AwsCredentials};

use super::{
    AWS_ACCESS_KEY_ID, AWS_REGION, AWS_SECRET, BEDROCK_MODEL, Decoded, Incoming, Reject, call_id,
    valid_tool_name,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConverseRequest {
    messages: Vec<WireMessage>,
    #[serde(default)]
    system: Vec<SystemBlock>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
}

#[derive(Deserialize, Serialize)]
struct WireMessage {
    role: WireRole,
    content: Vec<Block>,
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum WireRole {
    User,
    Assistant,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
enum Block {
    Text(String),
    ToolUse(ToolUse),
    ToolResult(ToolResult),
    CachePoint(CachePoint),
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[expect(clippy::struct_field_names, reason = "Bedrock's field names")]
struct ToolUse {
    tool_use_id: String,
    name: String,
    input: Value,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolResult {
    tool_use_id: String,
    content: Vec<ResultBlock>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
enum ResultBlock {
    Text(String),
    Json(Value),
}

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Success,
    Error,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CachePoint {
    #[serde(rename = "type")]
    kind: CacheKind,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum CacheKind {
    Default,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum SystemBlock {
    Text(String),
    CachePoint(CachePoint),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolConfig {
    tools: Vec<ToolEntry>,
    #[serde(default)]
    tool_choice: Option<ToolChoice>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum ToolEntry {
    ToolSpec(WireToolSpec),
    CachePoint(CachePoint),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireToolSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    input_schema: InputSchema,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSchema {
    json: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum ToolChoice {
    Auto(Empty),
    Any(Empty),
    Tool(NamedTool),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedTool {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InferenceConfig {
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse {
    output: Output,
    stop_reason: &'static str,
    usage: WireUsage,
    metrics: Metrics,
}

#[derive(Serialize)]
struct Output {
    message: WireMessage,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[expect(clippy::struct_field_names, reason = "Bedrock's field names")]
struct WireUsage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    latency_ms: u64,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
}

fn forbidden(kind: &'static str, message: impl Into<String>) -> Reject {
    Reject {
        status: StatusCode::FORBIDDEN,
        kind,
        message: message.into(),
    }
}

/// The parts of a SigV4 `Authorization` header.
struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        let (k, v) = part.split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let scope: Vec<&str> = credential?.split('/').collect();
    let [access_key, date, region, service, terminator] = scope.as_slice() else {
        return None;
    };
    let signature = signature?;
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    Some(Authorization {
        access_key,
        date,
        region,
        service,
        terminator,
        signed_headers: signed?.split(';').collect(),
        signature,
    })
}

/// `20261202T071500Z` as a time.
fn amz_date(v: &str) -> Option<SystemTime> {
    let b = v.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        v.get(0..4)?,
        v.get(4..6)?,
        v.get(6..8)?,
        v.get(9..11)?,
        v.get(11..13)?,
        v.get(13..15)?
    );
    humantime::parse_rfc3339(&rfc).ok()
}

/// Verifies the SigV4 signature of `r` (see the module docs).
fn verify(r: &Incoming<'_>) -> Result<(), Reject> {
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(value) = header("authorization") else {
        return Err(forbidden(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = parse_authorization(value).ok_or_else(|| {
        forbidden(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' \
             parameters, in the form AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…",
        )
    })?;
    if auth.access_key != AWS_ACCESS_KEY_ID {
        return Err(forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let Some(date) = header("x-amz-date") else {
        return Err(forbidden(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let when = amz_date(date).ok_or_else(|| {
        forbidden(
            "IncompleteSignatureException",
            "X-Amz-Date must be in the ISO-8601 basic format",
        )
    })?;
    if date.get(0..8) != Some(auth.date) {
        return Err(forbidden(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
        ));
    }
    if auth.region != AWS_REGION {
        return Err(forbidden(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            ),
        ));
    }
    if auth.service != "bedrock" {
        return Err(forbidden(
            "InvalidSignatureException",
            "Credential should be scoped to correct service: 'bedrock'.",
        ));
    }
    if auth.terminator != "aws4_request" {
        return Err(forbidden(
            "InvalidSignatureException",
            "Credential should be scoped with a valid terminator: 'aws4_request'.",
        ));
    }
    let skew = SystemTime::now()
        .duration_since(when)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > Duration::from_secs(300) {
        return Err(forbidden(
            "InvalidSignatureException",
            format!("Signature expired: {date} is now earlier or later than 5 minutes from now."),
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(forbidden(
                "InvalidSignatureException",
                format!("'{required}' must be a signed header."),
            ));
        }
    }
    resign(r, &auth, value, when)
}

/// Signs the request as received again, at `when`, and compares the `Authorization` values.
fn resign(
    r: &Incoming<'_>,
    auth: &Authorization<'_>,
    value: &str,
    when: SystemTime,
) -> Result<(), Reject> {
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
    let mut headers = Vec::new();
    for name in &auth.signed_headers {
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let v = header(name).ok_or_else(|| {
            forbidden(
                "InvalidSignatureException",
                format!("the signed header '{name}' is missing from the request"),
            )
        })?;
        headers.push((*name, v));
    }
    let host = header("host").unwrap_or_default();
    let path = r.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{host}{path}");
    let credentials = AwsCredentials {
        access_key_id: AWS_ACCESS_KEY_ID.to_owned(),
        secret_access_key: sre_llm::Secret::new(AWS_SECRET.to_owned()),
        session_token: None,
    };
    let expected = sigv4::sign_request(
        &credentials,
        AWS_REGION,
        "bedrock",
        sigv4::Unsigned {
            method: r.method.as_str(),
            url: &url,
            headers: &headers,
            body: r.body,
        },
        when,
    )
    .map_err(|e| forbidden("InvalidSignatureException", e))?;
    let ours = expected
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str());
    let theirs = format!("Signature={}", auth.signature);
    if ours != Some(value) || !value.ends_with(&theirs) {
        return Err(forbidden(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

/// Decodes and checks a Converse request.
pub(super) fn decode(r: &Incoming<'_>) -> Result<Decoded, Reject> {
    let unknown = || Reject {
        status: StatusCode::NOT_FOUND,
        kind: "UnknownOperationException",
        message: format!("Unknown operation: {} {}", r.method, r.uri.path()),
    };
    if r.method != axum::http::Method::POST {
        return Err(unknown());
    }
    let model = r
        .uri
        .path()
        .strip_prefix("/model/")
        .and_then(|rest| rest.strip_suffix("/converse"))
        .filter(|m| !m.contains('/'))
        .ok_or_else(unknown)?;
    verify(r)?;
    let model = percent_decode_str(model).decode_utf8_lossy();
    if model != BEDROCK_MODEL {
        return Err(Reject::bad(
            "ValidationException",
            "The provided model identifier is invalid.",
        ));
    }
    if !r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return Err(Reject::bad(
            "ValidationException",
            "The request body must be application/json",
        ));
    }
    let req: ConverseRequest = serde_json::from_slice(r.body).map_err(|e| {
        Reject::bad(
            "ValidationException",
            format!("Malformed input request: {e}, please reformat your input and try again."),
        )
    })?;
    convert(req).map_err(|m| Reject::bad("ValidationException", m))
}

fn convert(req: ConverseRequest) -> Result<Decoded, String> {
    if let Some(c) = &req.inference_config {
        if c.max_tokens == Some(0) {
            return Err("The maximum tokens you requested must be at least 1.".into());
        }
        if c.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t))
            || c.top_p.is_some_and(|t| !(0.0..=1.0).contains(&t))
        {
            return Err("temperature and topP must be between 0 and 1.".into());
        }
        if c.stop_sequences.as_ref().is_some_and(|s| s.len() > 4) {
            return Err("stopSequences can hold at most 4 sequences.".into());
        }
    }
    let tools = match &req.tool_config {
        Some(config) => tools(config)?,
        None => Vec::new(),
    };
    let mut messages = Vec::new();
    for (i, block) in req.system.into_iter().enumerate() {
        match block {
            SystemBlock::Text(t) if t.trim().is_empty() => {
                return Err(format!(
                    "The text field in the SystemContentBlock object at system.{i} is blank. Add text to the text field, and try again."
                ));
            }
            SystemBlock::Text(t) => messages.push(Message::system(t)),
            SystemBlock::CachePoint(CachePoint {
                kind: CacheKind::Default,
            }) => {}
        }
    }
    conversation(req.messages, req.tool_config.is_some(), &mut messages)?;
    Ok(Decoded { messages, tools })
}

fn tools(config: &ToolConfig) -> Result<Vec<ToolSpec>, String> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, entry) in config.tools.iter().enumerate() {
        let ToolEntry::ToolSpec(spec) = entry else {
            continue;
        };
        if !valid_tool_name(&spec.name) || !names.insert(spec.name.clone()) {
            return Err(format!(
                "The value at toolConfig.tools.{i}.toolSpec.name failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+ and be unique"
            ));
        }
        if !spec.input_schema.json.is_object() {
            return Err(format!(
                "The format of the value at toolConfig.tools.{i}.toolSpec.inputSchema.json is invalid. Provide a json object for the field and try again."
            ));
        }
        out.push(ToolSpec {
            name: spec.name.clone(),
            description: spec.description.clone().unwrap_or_default(),
            parameters: spec.input_schema.json.clone(),
        });
    }
    if out.is_empty() {
        return Err("The toolConfig field must hold at least one toolSpec.".into());
    }
    match &config.tool_choice {
        None | Some(ToolChoice::Auto(Empty {}) | ToolChoice::Any(Empty {})) => {}
        Some(ToolChoice::Tool(NamedTool { name })) => {
            if !names.contains(name) {
                return Err(format!(
                    "The tool {name} in toolConfig.toolChoice is not among toolConfig.tools."
                ));
            }
        }
    }
    Ok(out)
}

/// Checks the conversation as Bedrock does and appends it, as canonical messages, to `out`.
#[expect(
    clippy::too_many_lines,
    reason = "one pass over the conversation, one arm per block kind, each with Bedrock's message"
)]
fn conversation(
    wire: Vec<WireMessage>,
    has_tool_config: bool,
    out: &mut Vec<Message>,
) -> Result<(), String> {
    if wire.first().map(|m| m.role) != Some(WireRole::User) {
        return Err("A conversation must start with a user message. Try again with a conversation that starts with a user message.".into());
    }
    // The `toolUse` ids of the previous assistant turn (with their names) still to be answered.
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut previous: Option<WireRole> = None;
    for (i, m) in wire.into_iter().enumerate() {
        if previous == Some(m.role) {
            return Err("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".into());
        }
        previous = Some(m.role);
        if m.content.is_empty() {
            return Err(format!(
                "The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."
            ));
        }
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut results = Vec::new();
        for (j, block) in m.content.into_iter().enumerate() {
            match block {
                Block::Text(t) if t.trim().is_empty() => {
                    return Err(format!(
                        "The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again."
                    ));
                }
                Block::Text(t) => text.push_str(&t),
                Block::CachePoint(CachePoint {
                    kind: CacheKind::Default,
                }) => {}
                Block::ToolUse(u) => {
                    if m.role != WireRole::Assistant {
                        return Err(format!(
                            "messages.{i}.content.{j}: toolUse blocks are only allowed in assistant messages."
                        ));
                    }
                    if !u.input.is_object() {
                        return Err(format!(
                            "The format of the value at messages.{i}.content.{j}.toolUse.input is invalid. Provide a json object for the field and try again."
                        ));
                    }
                    if u.tool_use_id.is_empty() || !valid_tool_name(&u.name) {
                        return Err(format!(
                            "messages.{i}.content.{j}.toolUse: invalid toolUseId or name."
                        ));
                    }
                    calls.push(ToolCall::new(u.tool_use_id, u.name, u.input));
                }
                Block::ToolResult(r) => {
                    if m.role != WireRole::User {
                        return Err(format!(
                            "messages.{i}.content.{j}: toolResult blocks are only allowed in user messages."
                        ));
                    }
                    let Some(at) = pending.iter().position(|(id, _)| *id == r.tool_use_id) else {
                        return Err(format!(
                            "The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of previous turn, or toolUseId {} answers none of them.",
                            r.tool_use_id
                        ));
                    };
                    let (id, name) = pending.remove(at);
                    let mut content = String::new();
                    for (k, c) in r.content.into_iter().enumerate() {
                        match c {
                            ResultBlock::Text(t) if t.trim().is_empty() => {
                                return Err(format!(
                                    "The text field in the ToolResultContentBlock object at messages.{i}.content.{j}.toolResult.content.{k} is blank. Add text to the text field, and try again."
                                ));
                            }
                            ResultBlock::Text(t) => content.push_str(&t),
                            ResultBlock::Json(v) => content.push_str(&v.to_string()),
                        }
                    }
                    let mut message =
                        Message::tool_result(&ToolCall::new(id, name, Value::Null), content);
                    message.is_error = r.status == Some(Status::Error);
                    results.push(message);
                }
            }
        }
        if !pending.is_empty() {
            let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
            return Err(format!(
                "Expected toolResult blocks at messages.{i}.content for the following Ids: {}",
                ids.join(", ")
            ));
        }
        if (!calls.is_empty() || !results.is_empty()) && !has_tool_config {
            return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into());
        }
        pending = calls
            .iter()
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect();
        match m.role {
            WireRole::Assistant if calls.is_empty() => out.push(Message::assistant(text)),
            WireRole::Assistant => out.push(Message::assistant_tool_calls(text, calls)),
            WireRole::User => {
                out.extend(results);
                if !text.is_empty() {
                    out.push(Message::user(text));
                }
            }
        }
    }
    if !pending.is_empty() {
        let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
        return Err(format!(
            "The conversation ends with toolUse blocks that no toolResult answers: Ids {}. Add a user message with their toolResult blocks and try again.",
            ids.join(", ")
        ));
    }
    Ok(())
}

/// Bedrock's answer for `answer`, in model turn `turn`.
pub(super) fn encode(answer: &ChatResponse, turn: usize, input_tokens: u64) -> Vec<u8> {
    let mut content = Vec::new();
    let text = &answer.message.content;
    if !text.is_empty() {
        content.push(Block::Text(text.clone()));
    }
    let mut out_bytes = text.len();
    for (i, c) in answer.message.tool_calls.iter().enumerate() {
        out_bytes += c.name.len() + c.arguments.to_string().len();
        content.push(Block::ToolUse(ToolUse {
            tool_use_id: call_id("tooluse", turn, i),
            name: c.name.clone(),
            input: c.arguments.clone(),
        }));
    }
    let output_tokens = super::super::tokens_of(u64::try_from(out_bytes).unwrap_or(u64::MAX));
    let body = ConverseResponse {
        stop_reason: if answer.message.tool_calls.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        },
        output: Output {
            message: WireMessage {
                role: WireRole::Assistant,
                content,
            },
        },
        usage: WireUsage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
        },
        metrics: Metrics { latency_ms: 1 },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Bedrock's error answer: `x-amzn-ErrorType` and `{"message"}`.
pub(super) fn error(r: &Reject) -> Response {
    let kind = if r.kind.ends_with("Exception") {
        r.kind
    } else {
        match r.status.as_u16() {
            429 => "ThrottlingException",
            403 => "AccessDeniedException",
            s if s >= 500 => "InternalServerException",
            _ => "ValidationException",
        }
    };
    let mut response = (
        r.status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&ErrorBody {
            message: &r.message,
        })
        .unwrap_or_default(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_are_read_only_in_their_exact_shape() {
        let sig = "a".repeat(64);
        let good = format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20261202/eu-west-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature={sig}"
        );
        let a = parse_authorization(&good).unwrap();
        assert_eq!(
            (a.access_key, a.date, a.region, a.service, a.terminator),
            ("AKID", "20261202", "eu-west-1", "bedrock", "aws4_request")
        );
        assert_eq!(a.signed_headers, ["content-type", "host", "x-amz-date"]);
        for bad in [
            good.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
            good.replace("/aws4_request", ""),
            good.replace(&sig, &"A".repeat(64)),
            good.replace(&sig, &"a".repeat(63)),
            good.replace("SignedHeaders", "Headers"),
            format!("{good}, Extra=1"),
        ] {
            assert!(parse_authorization(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn amz_dates_are_the_iso_basic_format_only() {
        let t = amz_date("20261202T071500Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339(t).to_string(),
            "2026-12-02T07:15:00Z"
        );
        for bad in [
            "2026-12-02T07:15:00Z",
            "20261202T071500",
            "20261302T071500Z",
            "",
        ] {
            assert!(amz_date(bad).is_none(), "{bad}");
        }
    }
}
