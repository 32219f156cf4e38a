//! Provider-neutral chat types: every [`LlmProvider`](crate::LlmProvider) maps to and from these.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who said a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The task, from a person or a caller.
    User,
    /// The model: text and/or tool calls.
    Assistant,
    /// The result of one tool call, answering [`ToolCall::id`].
    Tool,
}

/// One tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call; the result must quote it.
    pub id: String,
    /// The tool's name, as in its [`ToolSpec`].
    pub name: String,
    /// The arguments as parsed JSON (providers that send a JSON string parse it first).
    pub arguments: Value,
}

impl ToolCall {
    /// A tool call.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments,
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// The text (may be empty for an assistant turn that only calls tools).
    #[serde(default)]
    pub content: String,
    /// Tool calls of an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For [`Role::Tool`]: the id of the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For [`Role::Tool`]: the name of the tool that produced it (Bedrock and Python need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// For [`Role::Tool`]: true when the content is an error message rather than a result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
    /// For [`Role::Tool`]: the tool's typed data ([`ToolOutput::data`](crate::ToolOutput)),
    /// redacted, for code that reads the transcript (the offline brain). Providers never send it
    /// to a model: they map only the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Message {
    fn plain(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            tool_name: None,
            is_error: false,
            data: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::plain(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::plain(Role::User, content)
    }

    /// An assistant message with text only.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::plain(Role::Assistant, content)
    }

    /// An assistant message that calls tools.
    pub fn assistant_tool_calls(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::plain(Role::Assistant, content)
        }
    }

    /// A successful tool result answering `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call.id.clone()),
            tool_name: Some(call.name.clone()),
            ..Self::plain(Role::Tool, content)
        }
    }

    /// A tool error answering `call`: the model reads it and may correct itself.
    pub fn tool_error(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            is_error: true,
            ..Self::tool_result(call, content)
        }
    }
}

/// What a model is told about one tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name, matching `^[a-zA-Z0-9_-]{1,64}$`.
    pub name: String,
    /// What the tool does and when to use it.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// Whether and how the model should call tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "name")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// One request to a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far, system message first.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Tool choice.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Upper bound on output tokens for this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A final answer.
    EndTurn,
    /// The model wants tool results.
    ToolUse,
    /// The output token limit was hit.
    MaxTokens,
    /// A provider's content filter stopped the output.
    ContentFilter,
    /// Anything else the provider reported.
    Other,
}

/// Token counts of one or more model calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// A usage record.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
        }
    }

    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens = self.input_tokens.saturating_add(rhs.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(rhs.output_tokens);
    }
}

/// One answer from a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The assistant message (text and/or tool calls).
    pub message: Message,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Tokens used by this call.
    pub usage: Usage,
}

impl ChatResponse {
    /// A final text answer.
    pub fn text(content: impl Into<String>, usage: Usage) -> Self {
        Self {
            message: Message::assistant(content),
            stop_reason: StopReason::EndTurn,
            usage,
        }
    }

    /// A turn that calls tools.
    pub fn tool_calls(tool_calls: Vec<ToolCall>, usage: Usage) -> Self {
        Self {
            message: Message::assistant_tool_calls("", tool_calls),
            stop_reason: StopReason::ToolUse,
            usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_round_trip_through_json() {
        let call = ToolCall::new("c1", "k8s_list_pods", json!({"namespace": "shop"}));
        let messages = vec![
            Message::system("be careful"),
            Message::user("fix shop"),
            Message::assistant_tool_calls("", vec![call.clone()]),
            Message::tool_result(&call, "3 pods"),
            Message::tool_error(&call, "boom"),
        ];
        let text = serde_json::to_string(&messages).unwrap();
        let back: Vec<Message> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, messages);
        assert!(back[4].is_error);
        assert_eq!(back[3].tool_call_id.as_deref(), Some("c1"));
    }

    #[test]
    fn usage_adds_and_saturates() {
        let mut u = Usage::new(10, 5);
        u += Usage::new(1, 2);
        assert_eq!(u, Usage::new(11, 7));
        assert_eq!(u.total(), 18);
        u += Usage::new(u64::MAX, 0);
        assert_eq!(u.input_tokens, u64::MAX);
    }

    #[test]
    fn tool_choice_serializes_tagged() {
        let v = serde_json::to_value(ToolChoice::Tool("x".into())).unwrap();
        assert_eq!(v, json!({"type": "tool", "name": "x"}));
    }
}
