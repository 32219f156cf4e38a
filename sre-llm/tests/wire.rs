//! Wire tests against a loopback HTTP server (wiremock): each provider's outbound request is
//! asserted (method, path, query, auth headers, body shape with tools and tool results) and
//! recorded response bodies from `tests/fixtures` (see PROVENANCE.md) are replayed.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use sre_core::testing::EchoTool;
use sre_core::{
    Agent, ChatRequest, LlmError, LlmProvider, Message, Outcome, Role, StopReason, ToolCall,
    ToolSpec,
};
use sre_llm::{
    Auth, AwsCredentials, Bedrock, Fallback, OpenAiCompatible, ProviderConfig, ProviderKind, Retry,
    Secret,
};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn fixture(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "weather".into(),
        description: "Current weather in a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}),
    }
}

fn first_turn() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::system("be brief"),
            Message::user("weather in Paris?"),
        ],
        tools: vec![weather_tool()],
        ..ChatRequest::default()
    }
}

fn second_turn(call: &ToolCall) -> ChatRequest {
    let mut r = first_turn();
    r.messages
        .push(Message::assistant_tool_calls("", vec![call.clone()]));
    // Typed tool data is for code: no provider may send it to a model.
    let mut result = Message::tool_result(call, "sunny, 21C");
    result.data = Some(serde_json::json!({"typed": "tool-data-marker"}));
    r.messages.push(result);
    r
}

/// Records request bodies and answers with a fixed response.
#[derive(Clone)]
struct Recorder {
    bodies: Arc<Mutex<Vec<Value>>>,
    response: ResponseTemplate,
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.bodies
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&request.body).unwrap());
        self.response.clone()
    }
}

fn recorder(body: Value) -> (Recorder, Arc<Mutex<Vec<Value>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    (
        Recorder {
            bodies: Arc::clone(&bodies),
            response: ResponseTemplate::new(200).set_body_json(body),
        },
        bodies,
    )
}

fn assert_no_forbidden_fields(body: &Value) {
    assert!(
        !body.to_string().contains("tool-data-marker"),
        "typed tool data was sent to the model: {body}"
    );
    assert!(
        body.get("n").is_none() && body.get("logprobs").is_none(),
        "{body}"
    );
    for m in body["messages"].as_array().unwrap() {
        assert!(m.get("name").is_none(), "Groq rejects messages[].name: {m}");
    }
}

#[tokio::test]
async fn groq_tool_call_turn_tool_result_turn_and_final_answer() {
    let server = MockServer::start().await;
    let (rec, bodies) = recorder(fixture("groq-chat-toolcall-response.json"));
    Mock::given(method("POST"))
        .and(path("/openai/v1/chat/completions"))
        .and(header("authorization", "Bearer gsk_test"))
        .and(header("content-type", "application/json"))
        .respond_with(rec)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let env = |k: &str| match k {
        "GROQ_API_KEY" => Some("gsk_test".to_owned()),
        "GROQ_BASE_URL" => Some(format!("{}/openai/v1", server.uri())),
        _ => None,
    };
    let groq = ProviderConfig::new(ProviderKind::Groq)
        .build_with(&env)
        .unwrap();
    assert_eq!(groq.name(), "groq/llama-3.3-70b-versatile");
    let r = groq.chat(&first_turn()).await.unwrap();
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    let call = r.message.tool_calls[0].clone();
    assert_eq!(
        (call.id.as_str(), call.name.as_str(), &call.arguments),
        ("ax9fskhev", "weather", &json!({}))
    );
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (218, 15));
    let body = bodies.lock().unwrap()[0].clone();
    assert_eq!(body["model"], "llama-3.3-70b-versatile");
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "function": {"name": "weather", "description": "Current weather in a city", "parameters": weather_tool().parameters}})
    );
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_no_forbidden_fields(&body);

    // The tool-result turn: arguments go back as a JSON string, the result as role "tool".
    let (rec, bodies) = recorder(fixture("azure-openai-chat-completion-response.json"));
    Mock::given(method("POST"))
        .and(path("/openai/v1/chat/completions"))
        .respond_with(rec)
        .mount(&server)
        .await;
    let r = groq.chat(&second_turn(&call)).await.unwrap();
    assert_eq!(r.stop_reason, StopReason::EndTurn);
    assert_eq!(r.message.content, "The capital of France is **Paris**.");
    let body = bodies.lock().unwrap()[0].clone();
    assert_eq!(
        body["messages"][2],
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "ax9fskhev", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]})
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "content": "sunny, 21C", "tool_call_id": "ax9fskhev"})
    );
    assert_no_forbidden_fields(&body);
}

#[tokio::test]
async fn azure_deployment_url_with_api_version_and_api_key_header() {
    let server = MockServer::start().await;
    let (rec, bodies) = recorder(fixture("openai-chat-toolcall-response.json"));
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt-4o/chat/completions"))
        .and(query_param("api-version", "2024-12-01-preview"))
        .and(header("api-key", "azure-key"))
        .respond_with(rec)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let (rec2, _) = recorder(fixture("openai-chat-toolcall-response-2.json"));
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt-4o/chat/completions"))
        .respond_with(rec2)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let (rec3, _) = recorder(fixture("azure-openai-chat-completion-response.json"));
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt-4o/chat/completions"))
        .respond_with(rec3)
        .mount(&server)
        .await;
    let env = |k: &str| match k {
        "AZURE_OPENAI_API_KEY" => Some("azure-key".to_owned()),
        "AZURE_OPENAI_ENDPOINT" => Some(server.uri()),
        "OPENAI_API_VERSION" => Some("2024-12-01-preview".to_owned()),
        _ => None,
    };
    let mut cfg = ProviderConfig::new(ProviderKind::Azure);
    cfg.deployment = Some("gpt-4o".into());
    let azure = cfg.build_with(&env).unwrap();
    let r = azure.chat(&first_turn()).await.unwrap();
    assert_eq!(r.message.tool_calls[0].name, "get_user_country");
    assert!(bodies.lock().unwrap()[0].get("tools").is_some());
    let r = azure
        .chat(&second_turn(&r.message.tool_calls[0]))
        .await
        .unwrap();
    assert_eq!(
        r.message.tool_calls[0].arguments,
        json!({"city": "Mexico City", "country": "Mexico"})
    );
    let r = azure.chat(&first_turn()).await.unwrap();
    assert_eq!(r.message.content, "The capital of France is **Paris**.");
}

#[tokio::test]
async fn azure_v1_path_bearer_token_and_content_filter() {
    let server = MockServer::start().await;
    let mut filtered = fixture("azure-openai-chat-completion-response.json");
    filtered["choices"][0]["finish_reason"] = json!("content_filter");
    filtered["choices"][0]["content_filter_results"]["violence"] =
        json!({"filtered": true, "severity": "high"});
    Mock::given(method("POST"))
        .and(path("/openai/v1/chat/completions"))
        .and(header("authorization", "Bearer entra-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(filtered))
        .mount(&server)
        .await;
    let azure = OpenAiCompatible::new(
        "azure",
        &format!("{}/openai/v1", server.uri()),
        "gpt-4o",
        Auth::Bearer(Secret::new("entra-token")),
    );
    let e = azure.chat(&first_turn()).await.unwrap_err();
    assert_eq!(
        e,
        LlmError::ContentFilter {
            provider: "azure".into(),
            message: "filtered: violence (high)".into()
        }
    );
    // A prompt blocked by the filter comes as a 400 with code content_filter.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"code": "content_filter", "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy."}})))
        .mount(&server)
        .await;
    let azure = OpenAiCompatible::new(
        "azure",
        &format!("{}/openai/v1", server.uri()),
        "gpt-4o",
        Auth::ApiKeyHeader(Secret::new("k")),
    );
    let e = azure.chat(&first_turn()).await.unwrap_err();
    assert!(matches!(e, LlmError::ContentFilter { .. }), "{e}");
    assert!(e.to_string().contains("content management policy"), "{e}");
}

fn aws() -> AwsCredentials {
    AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: Some(Secret::new("session-token-xyz")),
    }
}

#[tokio::test]
async fn bedrock_converse_tool_use_tool_result_and_final() {
    let server = MockServer::start().await;
    let model = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";
    let (rec, bodies) = recorder(fixture("bedrock-converse-tooluse-response.json"));
    Mock::given(method("POST"))
        .and(path(
            "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse",
        ))
        .and(header("x-amz-security-token", "session-token-xyz"))
        .respond_with(rec)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let (rec2, bodies2) = recorder(fixture("bedrock-converse-final-response.json"));
    Mock::given(method("POST"))
        .respond_with(rec2)
        .mount(&server)
        .await;
    let bedrock = Bedrock::new("us-east-1", model, aws(), Some(&server.uri()));
    assert!(
        bedrock
            .url()
            .ends_with("/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse")
    );
    let r = bedrock.chat(&first_turn()).await.unwrap();
    let req = &server.received_requests().await.unwrap()[0];
    let auth = req
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{auth}"
    );
    assert!(
        auth.contains("/us-east-1/bedrock/aws4_request, SignedHeaders="),
        "{auth}"
    );
    assert!(
        auth.contains("x-amz-date") && auth.contains("x-amz-security-token"),
        "{auth}"
    );
    let sig = auth.rsplit("Signature=").next().unwrap();
    assert_eq!(sig.len(), 64);
    assert!(req.headers.get("x-amz-date").is_some());
    let body = bodies.lock().unwrap()[0].clone();
    assert_eq!(body["system"], json!([{"text": "be brief"}]));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"text": "weather in Paris?"}]}])
    );
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        weather_tool().parameters
    );
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    let call = r.message.tool_calls[0].clone();
    assert_eq!(
        (call.id.as_str(), call.name.as_str()),
        ("functions.get_temperature:0", "get_temperature")
    );
    assert_eq!(call.arguments, json!({"city": "London"}));
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (92, 75));

    // Two results of one turn go back in one user message.
    let call2 = ToolCall::new("t2", "weather", json!({"city": "Rome"}));
    let mut two_results = first_turn();
    two_results.messages.push(Message::assistant_tool_calls(
        "",
        vec![call.clone(), call2.clone()],
    ));
    let mut with_data = Message::tool_result(&call, "30C");
    with_data.data = Some(json!({"typed": "tool-data-marker"}));
    two_results.messages.push(with_data);
    two_results
        .messages
        .push(Message::tool_error(&call2, "no such city"));
    let r = bedrock.chat(&two_results).await.unwrap();
    assert_eq!(
        r.message.content,
        " <think> The temperature in London is 30\u{b0}C."
    );
    let body = bodies2.lock().unwrap()[0].clone();
    assert!(
        !body.to_string().contains("tool-data-marker"),
        "typed tool data was sent to Bedrock: {body}"
    );
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs[1]["content"][0]["toolUse"],
        json!({"toolUseId": "functions.get_temperature:0", "name": "get_temperature", "input": {"city": "London"}})
    );
    assert_eq!(
        msgs[2],
        json!({"role": "user", "content": [
            {"toolResult": {"toolUseId": "functions.get_temperature:0", "content": [{"text": "30C"}], "status": "success"}},
            {"toolResult": {"toolUseId": "t2", "content": [{"text": "no such city"}], "status": "error"}}
        ]})
    );
}

#[tokio::test]
async fn bedrock_errors_come_from_x_amzn_error_type() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header(
                    "x-amzn-ErrorType",
                    "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                )
                .set_body_json(fixture("bedrock-error-400-invalid-model.json")),
        )
        .mount(&server)
        .await;
    let e = Bedrock::new("us-east-1", "nope", aws(), Some(&server.uri()))
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        LlmError::BadRequest {
            provider: "bedrock".into(),
            status: 400,
            message: "ValidationException: The provided model identifier is invalid.".into()
        }
    );
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-amzn-ErrorType", "UnrecognizedClientException")
                .set_body_json(
                    json!({"message": "The security token included in the request is invalid."}),
                ),
        )
        .mount(&server)
        .await;
    let e = Bedrock::new("us-east-1", "m", aws(), Some(&server.uri()))
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "auth");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-amzn-ErrorType", "ThrottlingException")
                .set_body_json(json!({"message": "Too many requests"})),
        )
        .mount(&server)
        .await;
    let e = Bedrock::new("us-east-1", "m", aws(), Some(&server.uri()))
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "rate_limited");
}

fn compat(server: &MockServer) -> OpenAiCompatible {
    OpenAiCompatible::new(
        "groq",
        &format!("{}/openai/v1", server.uri()),
        "llama-3.3-70b-versatile",
        Auth::Bearer(Secret::new("k")),
    )
}

#[tokio::test]
async fn auth_errors_are_clear_and_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}})))
        .expect(1)
        .mount(&server)
        .await;
    let p = Retry::new(compat(&server));
    let e = p.chat(&first_turn()).await.unwrap_err();
    assert_eq!(
        e,
        LlmError::Auth {
            provider: "groq".into(),
            message: "Invalid API Key".into()
        }
    );
    assert!(!format!("{p:?}").contains("\"k\""), "the key never prints");
}

#[tokio::test]
async fn bad_request_quotes_the_provider() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(fixture("groq-error-400-tool-use-failed.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = Retry::new(compat(&server))
        .chat(&first_turn())
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("groq rejected the request (status 400): Tool call validation failed"),
        "{msg}"
    );
}

#[tokio::test]
async fn rate_limited_then_success_waits_the_advertised_time() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after-ms", "300")
                .set_body_json(fixture("openai-compatible-error-429-rate-limited.json")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("azure-openai-chat-completion-response.json")),
        )
        .mount(&server)
        .await;
    let start = std::time::Instant::now();
    let r = Retry::new(compat(&server))
        .chat(&first_turn())
        .await
        .unwrap();
    assert_eq!(r.message.content, "The capital of France is **Paris**.");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "waited {:?}",
        start.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_honours_retry_after_on_a_virtual_clock() {
    use sre_core::testing::{ScriptedProvider, answer};
    let limited = || LlmError::RateLimited {
        provider: "groq".into(),
        retry_after: Some(Duration::from_secs(7)),
    };
    let inner = ScriptedProvider::with_results([Err(limited()), Err(limited()), Ok(answer("ok"))]);
    let start = tokio::time::Instant::now();
    let r = Retry::new(inner).chat(&first_turn()).await.unwrap();
    assert_eq!(r.message.content, "ok");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(14),
        "exactly the advertised 7 s, twice"
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_exhausted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream connect error"))
        .expect(3)
        .mount(&server)
        .await;
    let mut p = Retry::new(compat(&server)).max_retries(2);
    p.min_delay = Duration::from_millis(1);
    p.max_delay = Duration::from_millis(5);
    let e = p.chat(&first_turn()).await.unwrap_err();
    assert_eq!(
        e,
        LlmError::Server {
            provider: "groq".into(),
            status: 503,
            message: "upstream connect error".into()
        }
    );
}

#[tokio::test]
async fn timeouts_and_malformed_bodies() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_json(json!({})),
        )
        .mount(&server)
        .await;
    let e = compat(&server)
        .timeout(Duration::from_millis(200))
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e}");
    let e = sre_llm::Timeout::new(compat(&server), Duration::from_millis(100))
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "timeout", "{e}");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .mount(&server)
        .await;
    let e = compat(&server).chat(&first_turn()).await.unwrap_err();
    assert!(matches!(e, LlmError::MalformedResponse { .. }), "{e}");
}

#[tokio::test]
async fn invalid_json_arguments_become_a_tool_error_the_model_sees() {
    let server = MockServer::start().await;
    let mut bad = fixture("groq-chat-toolcall-response.json");
    bad["choices"][0]["message"]["tool_calls"][0]["function"] =
        json!({"name": "echo", "arguments": "{\"text\": \"unterminated"});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bad))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let (rec, bodies) = recorder(fixture("azure-openai-chat-completion-response.json"));
    Mock::given(method("POST"))
        .respond_with(rec)
        .mount(&server)
        .await;
    let report = Agent::builder(compat(&server))
        .tool(EchoTool::default())
        .build()
        .unwrap()
        .run("echo something")
        .await;
    assert_eq!(report.outcome, Outcome::Completed);
    let sent = bodies.lock().unwrap()[0].clone();
    let tool_msg = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    let content = tool_msg["content"].as_str().unwrap();
    assert!(
        content.starts_with("invalid arguments for tool echo:"),
        "{content}"
    );
    assert!(content.contains("is not of type \"object\""), "{content}");
    // The malformed string went back to the model as it was written.
    let assistant = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap()
        .clone();
    assert_eq!(
        assistant["tool_calls"][0]["function"]["arguments"],
        "{\"text\": \"unterminated"
    );
}

#[tokio::test]
async fn fallback_to_the_secondary_when_the_primary_is_exhausted() {
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .mount(&down)
        .await;
    let up = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("azure-openai-chat-completion-response.json")),
        )
        .mount(&up)
        .await;
    let p = Fallback::new(Retry::new(compat(&down)).max_retries(0), compat(&up));
    let r = p.chat(&first_turn()).await.unwrap();
    assert_eq!(r.message.content, "The capital of France is **Paris**.");
    // An auth failure of the primary is not papered over.
    let denied = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "bad key"}})),
        )
        .mount(&denied)
        .await;
    let e = Fallback::new(compat(&denied), compat(&up))
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "auth");
}

#[tokio::test]
async fn a_full_agent_run_through_each_provider() {
    let groq_call = fixture("groq-chat-toolcall-response.json");
    let mut call_echo = groq_call.clone();
    call_echo["choices"][0]["message"]["tool_calls"][0]["function"] =
        json!({"name": "echo", "arguments": "{\"text\": \"pong\"}"});
    let final_answer = fixture("azure-openai-chat-completion-response.json");
    let mut bedrock_call = fixture("bedrock-converse-tooluse-response.json");
    bedrock_call["output"]["message"]["content"][1]["toolUse"] =
        json!({"toolUseId": "t1", "name": "echo", "input": {"text": "pong"}});
    let bedrock_final = fixture("bedrock-converse-final-response.json");

    for kind in ["groq", "azure", "bedrock"] {
        let server = MockServer::start().await;
        let (first, second) = if kind == "bedrock" {
            (bedrock_call.clone(), bedrock_final.clone())
        } else {
            (call_echo.clone(), final_answer.clone())
        };
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(first))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        let (rec, bodies) = recorder(second);
        Mock::given(method("POST"))
            .respond_with(rec)
            .mount(&server)
            .await;
        let provider: Arc<dyn LlmProvider> = match kind {
            "groq" => Arc::new(compat(&server)),
            "azure" => Arc::new(OpenAiCompatible::with_url(
                "azure",
                &format!(
                    "{}/openai/deployments/d/chat/completions?api-version=2024-10-21",
                    server.uri()
                ),
                "d",
                Auth::ApiKeyHeader(Secret::new("k")),
            )),
            _ => Arc::new(
                Bedrock::new("eu-west-1", "m", aws(), Some(&server.uri()))
                    .fixed_clock(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000)),
            ),
        };
        let echo = EchoTool::default();
        let report = Agent::builder_arc(provider)
            .tool(echo.clone())
            .build()
            .unwrap()
            .run("ping")
            .await;
        assert_eq!(report.outcome, Outcome::Completed, "{kind}: {report:#?}");
        assert_eq!(echo.calls(), 1, "{kind}");
        assert!(
            report
                .answer
                .unwrap()
                .contains(if kind == "bedrock" { "30" } else { "Paris" }),
            "{kind}"
        );
        let sent = bodies.lock().unwrap()[0].to_string();
        assert!(
            sent.contains("pong"),
            "{kind}: the tool result went back: {sent}"
        );
        assert_eq!(
            report
                .transcript
                .iter()
                .filter(|m| m.role == Role::Tool)
                .count(),
            1
        );
    }
}

#[test]
fn missing_configuration_is_named() {
    let none = |_: &str| None;
    let e = ProviderConfig::new(ProviderKind::Groq)
        .build_with(&none)
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("GROQ_API_KEY is not set"), "{e}");
    let e = ProviderConfig::new(ProviderKind::Bedrock)
        .build_with(&none)
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("AWS_REGION is not set"), "{e}");
    let keys = |k: &str| {
        (k.starts_with("AWS_") && k != "AWS_REGION" && k != "AWS_DEFAULT_REGION")
            .then(|| "x".to_owned())
    };
    let e = ProviderConfig::new(ProviderKind::Bedrock)
        .build_with(&keys)
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("AWS_REGION is not set"), "{e}");
    let e = ProviderConfig::new(ProviderKind::Ollama)
        .build_with(&none)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "provider config: field `model` is required for provider ollama"
    );
    let e = ProviderConfig::new(ProviderKind::Azure)
        .build_with(&none)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("AZURE_OPENAI_ENDPOINT is not set"),
        "{e}"
    );
    let cfg: ProviderConfig =
        serde_json::from_value(json!({"provider": "ollama", "model": "llama3.1"})).unwrap();
    let p = cfg
        .build_with(&|k| (k == "OLLAMA_HOST").then(|| "0.0.0.0:11434".to_owned()))
        .unwrap();
    assert_eq!(p.name(), "ollama/llama3.1");
    assert!(serde_json::from_value::<ProviderConfig>(json!({"provider": "gemini"})).is_err());
}

#[tokio::test]
async fn usage_and_cost_are_accounted_with_an_overridable_price_table() {
    use sre_llm::{Metered, Price, PriceTable};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("groq-chat-toolcall-response.json")),
        )
        .mount(&server)
        .await;
    let metered = Metered::new(
        compat(&server),
        "llama-3.3-70b-versatile",
        PriceTable::default(),
    );
    metered.chat(&first_turn()).await.unwrap();
    metered.chat(&first_turn()).await.unwrap();
    assert_eq!(
        (metered.usage().input_tokens, metered.usage().output_tokens),
        (436, 30)
    );
    let cost = metered.cost_usd().unwrap();
    assert!(
        (cost - (436.0 * 0.59 + 30.0 * 0.79) / 1e6).abs() < 1e-12,
        "{cost}"
    );
    let mut mine = PriceTable::default();
    mine.0.insert(
        "llama-3.3-70b-versatile".into(),
        Price {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
        },
    );
    assert!(
        (mine
            .cost("groq/llama-3.3-70b-versatile", metered.usage())
            .unwrap()
            - 496.0 / 1e6)
            .abs()
            < 1e-12
    );
    assert_eq!(
        PriceTable::default().cost("some-unknown-model", metered.usage()),
        None
    );
}

// ---- Response size cap -------------------------------------------------------------------------

/// A loopback server that answers one request with a chunked (no `Content-Length`) 200 body of
/// up to `total` bytes, and returns how many body bytes it managed to write before the client
/// hung up.
async fn endless_chunked_server(total: usize) -> (String, tokio::task::JoinHandle<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 64 * 1024];
        let _ = sock.read(&mut request).await.unwrap();
        sock.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
        let mut chunk = b"10000\r\n".to_vec();
        chunk.resize(chunk.len() + 0x10000, b' ');
        chunk.extend_from_slice(b"\r\n");
        let mut sent = 0;
        while sent < total {
            if sock.write_all(&chunk).await.is_err() {
                return sent;
            }
            sent += 0x10000;
        }
        let _ = sock.write_all(b"0\r\n\r\n").await;
        sent
    });
    (format!("http://{addr}"), server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_growing_past_the_cap_stops_reading_and_fails() {
    const TOTAL: usize = 64 * 1024 * 1024;
    let (base, server) = endless_chunked_server(TOTAL).await;
    let p = OpenAiCompatible::new("vllm", &base, "m", Auth::None).max_response_bytes(1024 * 1024);
    let start = std::time::Instant::now();
    let e = p.chat(&first_turn()).await.unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(
        e.to_string(),
        "malformed response from vllm: response body exceeds the limit of 1048576 bytes and was \
         not read further; raise it with `max_response_bytes` in the provider config or \
         `.max_response_bytes(n)` on the provider"
    );
    assert_eq!(e.kind(), "malformed_response");
    let sent = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops once the client hangs up")
        .unwrap();
    assert!(
        sent < TOTAL / 2,
        "the client stopped reading: the server wrote {sent} of {TOTAL} bytes"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn a_content_length_over_the_cap_is_rejected_before_the_body_is_read() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b' '; 64 * 1024 + 1]))
        .expect(1)
        .mount(&server)
        .await;
    let e = compat(&server)
        .max_response_bytes(64 * 1024)
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert!(matches!(e, LlmError::MalformedResponse { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "malformed response from groq: response body of 65537 bytes (Content-Length) exceeds the \
         limit of 65536 bytes and was not read further; raise it with `max_response_bytes` in the \
         provider config or `.max_response_bytes(n)` on the provider"
    );
    // Exactly at the cap is fine.
    let body = serde_json::to_vec(&fixture("azure-openai-chat-completion-response.json")).unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(body.clone()))
        .mount(&server)
        .await;
    let r = compat(&server)
        .max_response_bytes(body.len() as u64)
        .chat(&first_turn())
        .await
        .unwrap();
    assert_eq!(r.message.content, "The capital of France is **Paris**.");
}

#[tokio::test]
async fn an_error_body_over_the_cap_is_cut_and_keeps_its_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded ".repeat(10_000)))
        .mount(&server)
        .await;
    let e = compat(&server)
        .max_response_bytes(1024)
        .chat(&first_turn())
        .await
        .unwrap_err();
    let LlmError::Server {
        status, message, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*status, 503);
    assert!(message.starts_with("overloaded overloaded"), "{message}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn the_default_cap_is_8_mib_and_the_config_can_change_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b' '; 8 * 1024 * 1024 + 1]))
        .mount(&server)
        .await;
    let env = |k: &str| match k {
        "GROQ_API_KEY" => Some("gsk_test".to_owned()),
        "GROQ_BASE_URL" => Some(server.uri()),
        _ => None,
    };
    let e = ProviderConfig::new(ProviderKind::Groq)
        .build_with(&env)
        .unwrap()
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(sre_llm::DEFAULT_MAX_RESPONSE_BYTES, 8 * 1024 * 1024);
    assert!(
        e.to_string().contains("exceeds the limit of 8388608 bytes"),
        "{e}"
    );
    let mut cfg = ProviderConfig::new(ProviderKind::Groq);
    cfg.max_response_bytes = Some(16 * 1024 * 1024);
    let e = cfg
        .build_with(&env)
        .unwrap()
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("EOF while parsing"),
        "read whole: {e}"
    );
    let cfg: ProviderConfig = serde_json::from_value(
        json!({"provider": "bedrock", "model": "m", "max_response_bytes": 1000, "max_retry_wait_secs": 5}),
    )
    .unwrap();
    assert_eq!(
        (cfg.max_response_bytes, cfg.max_retry_wait_secs),
        (Some(1000), Some(5))
    );
}

#[tokio::test]
async fn a_bedrock_body_over_the_cap_fails_naming_the_cap() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b' '; 4097]))
        .mount(&server)
        .await;
    let e = Bedrock::new("us-east-1", "m", aws(), Some(&server.uri()))
        .max_response_bytes(4096)
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "malformed response from bedrock: response body of 4097 bytes (Content-Length) \
             exceeds the limit of 4096 bytes"
        ),
        "{e}"
    );
}

// ---- Secrets in error bodies ------------------------------------------------------------------

#[tokio::test]
async fn a_401_quoting_the_api_key_never_puts_the_key_in_the_error() {
    let key = "gsk_live_5UP3R53CR3T";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Invalid API Key: {key}"), "code": "invalid_api_key"}})))
        .mount(&server)
        .await;
    let p = Retry::new(OpenAiCompatible::new(
        "groq",
        &server.uri(),
        "m",
        Auth::Bearer(Secret::new(key)),
    ));
    let e = p.chat(&first_turn()).await.unwrap_err();
    assert_eq!(
        e,
        LlmError::Auth {
            provider: "groq".into(),
            message: "Invalid API Key: [REDACTED]".into()
        }
    );
    // Azure's api-key header, and a body that is not JSON.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_string(format!(
            "<html>access denied for api-key={key} ({key})</html>"
        )))
        .mount(&server)
        .await;
    let e = OpenAiCompatible::new(
        "azure",
        &server.uri(),
        "d",
        Auth::ApiKeyHeader(Secret::new(key)),
    )
    .chat(&first_turn())
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains(key), "{msg}");
    assert_eq!(
        msg,
        "authentication failed for azure: <html>access denied for api-key=[REDACTED] ([REDACTED])</html>"
    );
}

#[tokio::test]
async fn a_bedrock_error_quoting_the_secret_key_or_session_token_never_shows_them() {
    let c = aws();
    let secret = c.secret_access_key.expose().to_owned();
    let token = c.session_token.as_ref().unwrap().expose().to_owned();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-amzn-ErrorType", "InvalidSignatureException")
                .set_body_json(json!({"message": format!(
                    "signature mismatch for secret {secret} with token {token}")})),
        )
        .mount(&server)
        .await;
    let e = Bedrock::new("us-east-1", "m", c, Some(&server.uri()))
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "authentication failed for bedrock: InvalidSignatureException: signature mismatch for \
         secret [REDACTED] with token [REDACTED]"
    );
}

// ---- Tolerant tool calls ----------------------------------------------------------------------

#[tokio::test]
async fn object_arguments_and_a_missing_id_no_longer_abort_the_run() {
    let server = MockServer::start().await;
    let mut odd = fixture("groq-chat-toolcall-response.json");
    // What Ollama and some OpenAI-compatible servers send: arguments as an object, no id; and a
    // call whose arguments are neither a JSON string nor an object.
    odd["choices"][0]["message"]["tool_calls"] = json!([
        {"type": "function", "function": {"name": "echo", "arguments": {"text": "pong"}}},
        {"id": "", "type": "function", "function": {"name": "echo", "arguments": 42}}
    ]);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(odd))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let (rec, bodies) = recorder(fixture("azure-openai-chat-completion-response.json"));
    Mock::given(method("POST"))
        .respond_with(rec)
        .mount(&server)
        .await;

    let r = OpenAiCompatible::new("ollama", &server.uri(), "llama3.1", Auth::None);
    let echo = EchoTool::default();
    let report = Agent::builder(r)
        .tool(echo.clone())
        .build()
        .unwrap()
        .run("echo pong")
        .await;
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(echo.calls(), 1, "the object-argument call ran");

    let sent = bodies.lock().unwrap()[0].clone();
    let messages = sent["messages"].as_array().unwrap();
    let assistant = messages.iter().find(|m| m["role"] == "assistant").unwrap();
    let calls = assistant["tool_calls"].as_array().unwrap();
    let (id0, id1) = (
        calls[0]["id"].as_str().unwrap(),
        calls[1]["id"].as_str().unwrap(),
    );
    assert!(
        id0.starts_with("call_0_") && id1.starts_with("call_1_"),
        "{id0} {id1}"
    );
    assert_ne!(id0, id1);
    // Back on the wire in the specified form: arguments as a JSON string.
    assert_eq!(calls[0]["function"]["arguments"], "{\"text\":\"pong\"}");
    assert_eq!(calls[1]["function"]["arguments"], "42");
    let result_for = |id: &str| {
        messages
            .iter()
            .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(result_for(id0), "pong");
    let error = result_for(id1);
    assert!(
        error.starts_with("invalid arguments for tool echo:")
            && error.contains("42 is not of type \"object\""),
        "{error}"
    );
}

#[tokio::test]
async fn a_tool_call_without_a_function_name_is_still_malformed() {
    let server = MockServer::start().await;
    let mut bad = fixture("groq-chat-toolcall-response.json");
    bad["choices"][0]["message"]["tool_calls"] =
        json!([{"id": "x", "function": {"arguments": "{}"}}]);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bad))
        .mount(&server)
        .await;
    let e = compat(&server).chat(&first_turn()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed response from groq: tool call 0 has no function name"
    );
}

#[tokio::test]
async fn a_bedrock_tool_use_without_id_or_with_a_non_object_input_becomes_a_tool_error() {
    let server = MockServer::start().await;
    let mut odd = fixture("bedrock-converse-tooluse-response.json");
    odd["output"]["message"]["content"] = json!([
        {"toolUse": {"name": "echo", "input": {"text": "pong"}}},
        {"toolUse": {"toolUseId": "t2", "name": "echo", "input": "not json"}}
    ]);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(odd))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let (rec, bodies) = recorder(fixture("bedrock-converse-final-response.json"));
    Mock::given(method("POST"))
        .respond_with(rec)
        .mount(&server)
        .await;
    let echo = EchoTool::default();
    let report = Agent::builder(Bedrock::new("us-east-1", "m", aws(), Some(&server.uri())))
        .tool(echo.clone())
        .build()
        .unwrap()
        .run("echo pong")
        .await;
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(echo.calls(), 1);
    let sent = bodies.lock().unwrap()[0].clone();
    let messages = sent["messages"].as_array().unwrap();
    let uses = &messages[1]["content"];
    let id0 = uses[0]["toolUse"]["toolUseId"].as_str().unwrap();
    assert!(id0.starts_with("call_0_"), "{id0}");
    assert_eq!(uses[1]["toolUse"]["toolUseId"], "t2");
    let results = messages[2]["content"].as_array().unwrap();
    assert_eq!(results[0]["toolResult"]["toolUseId"], id0);
    assert_eq!(results[0]["toolResult"]["status"], "success");
    assert_eq!(results[0]["toolResult"]["content"][0]["text"], "pong");
    assert_eq!(results[1]["toolResult"]["toolUseId"], "t2");
    assert_eq!(results[1]["toolResult"]["status"], "error");
    let error = results[1]["toolResult"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        error.starts_with("invalid arguments for tool echo:"),
        "{error}"
    );
}

// ---- Capped retry waits -----------------------------------------------------------------------

fn limited(secs: u64) -> LlmError {
    LlmError::RateLimited {
        provider: "groq".into(),
        retry_after: Some(Duration::from_secs(secs)),
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_cap_fails_at_once_without_sleeping() {
    use sre_core::testing::{ScriptedProvider, answer};
    let inner = ScriptedProvider::with_results([Err(limited(999_999)), Ok(answer("ok"))]);
    let start = tokio::time::Instant::now();
    let e = Retry::new(&inner).chat(&first_turn()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "rate limited by scripted/test: it asked to wait 999999s, more than the cap of 30s, so the call was not retried (raise the cap, e.g. Retry::max_wait, to wait)"
    );
    assert_eq!(e.kind(), "rate_limited");
    assert!(e.is_retryable(), "a fallback may answer");
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleep at all");
    assert_eq!(inner.calls(), 1);
    // Within the cap it is still honoured exactly.
    let inner = ScriptedProvider::with_results([Err(limited(30)), Ok(answer("ok"))]);
    let start = tokio::time::Instant::now();
    Retry::new(&inner).chat(&first_turn()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    // And the cap is configurable.
    let inner = ScriptedProvider::with_results([Err(limited(999)), Ok(answer("ok"))]);
    let start = tokio::time::Instant::now();
    Retry::new(&inner)
        .max_wait(Duration::from_secs(1000))
        .max_total_wait(Duration::from_secs(1000))
        .chat(&first_turn())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(999));
}

#[tokio::test(start_paused = true)]
async fn the_total_retry_wait_is_capped() {
    use sre_core::testing::{ScriptedProvider, answer};
    let inner = ScriptedProvider::with_results([
        Err(limited(25)),
        Err(limited(25)),
        Err(limited(25)),
        Ok(answer("ok")),
    ]);
    let start = tokio::time::Instant::now();
    let e = Retry::new(&inner)
        .max_retries(5)
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(e, limited(25));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(50),
        "two waits of 25 s; a third would pass the 60 s total"
    );
    assert_eq!(inner.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_longer_than_the_cap_falls_back_at_once() {
    use sre_core::testing::{ScriptedProvider, answer};
    let primary = ScriptedProvider::with_results([Err(limited(999_999))]);
    let secondary = ScriptedProvider::new([answer("from the secondary")]);
    let start = tokio::time::Instant::now();
    let r = Fallback::new(Retry::new(&primary), &secondary)
        .chat(&first_turn())
        .await
        .unwrap();
    assert_eq!(r.message.content, "from the secondary");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn a_retry_after_past_what_a_duration_holds_ends_the_retries_without_a_panic() {
    // A second 429 asking for 1e30 s after a first one that was waited out: the sum of the
    // waits must not overflow, even with no cap on one wait (max_wait = Duration::MAX).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0.01"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1e30"))
        .mount(&server)
        .await;
    let e = Retry::new(compat(&server))
        .max_wait(Duration::MAX)
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LlmError::RateLimited {
                retry_after: Some(Duration::MAX),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_429_asking_for_999999_seconds_returns_at_once_over_the_wire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "999999")
                .set_body_json(fixture("openai-compatible-error-429-rate-limited.json")),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("azure-openai-chat-completion-response.json")),
        )
        .mount(&server)
        .await;
    let start = std::time::Instant::now();
    let e = Retry::new(compat(&server))
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        e,
        LlmError::RateLimitTooLong {
            provider: "groq/llama-3.3-70b-versatile".into(),
            asked: Duration::from_secs(999_999),
            cap: Duration::from_secs(30),
        }
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    // The config's cap: 0 s means never sleep on an advertised wait.
    let env = |k: &str| match k {
        "GROQ_API_KEY" => Some("gsk_test".to_owned()),
        "GROQ_BASE_URL" => Some(server.uri()),
        _ => None,
    };
    let server_reset = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .expect(1)
        .mount(&server_reset)
        .await;
    let mut cfg = ProviderConfig::new(ProviderKind::Groq);
    cfg.endpoint = Some(server_reset.uri());
    cfg.max_retry_wait_secs = Some(0);
    let e = cfg
        .build_with(&env)
        .unwrap()
        .chat(&first_turn())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "rate_limited");
}

#[tokio::test]
async fn groq_reset_headers_are_still_honoured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-ratelimit-reset-requests", "120ms")
                .insert_header("x-ratelimit-reset-tokens", "0.35s"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("azure-openai-chat-completion-response.json")),
        )
        .mount(&server)
        .await;
    let start = std::time::Instant::now();
    Retry::new(compat(&server))
        .chat(&first_turn())
        .await
        .unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
