//! The scorecard's wire brains (`sre_tools::eval::wire`, issue 17): the playbook behind a loopback
//! server of each provider's wire format, reached through the real sre-llm clients, resolves and
//! escalates exactly what the in-process playbook does; a server that fails (429, 500, garbage,
//! a truncated body) ends the run with the provider's error in the report and nothing executed;
//! and each server rejects, with the service's own status and error shape, what the service
//! rejects — checked with raw HTTP requests and with the real clients holding wrong credentials.

#![cfg(feature = "sim")]
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
#![expect(
    clippy::too_many_lines,
    reason = "each server's test walks every rejection of its service in turn"
)]

use std::time::SystemTime;

use serde_json::{Value, json};
use sre_core::{ChatRequest, LlmError, Message, ToolSpec};
use sre_llm::bedrock::sigv4::{self, AwsCredentials};
use sre_tools::eval::wire::{Fault, Format, Loopback, WireBrain};
use sre_tools::eval::{Brain, Options, Row, Verdict, run, scenario_names};

fn row<'a>(rows: &'a [Row], scenario: &str, brain: Brain) -> &'a Row {
    rows.iter()
        .find(|r| r.scenario == scenario && r.brain == brain.name())
        .unwrap_or_else(|| panic!("no row {scenario} / {brain}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_wire_brain_resolves_and_escalates_exactly_what_the_playbook_does() {
    // large-cluster (10,000 pods) is the release eval's; in debug it would only be slow.
    let scenarios: Vec<String> = scenario_names()
        .into_iter()
        .filter(|s| s != "large-cluster")
        .collect();
    assert!(scenarios.len() >= 9, "{scenarios:?}");
    let brains = [
        Brain::Playbook,
        Brain::WIRE[0],
        Brain::WIRE[1],
        Brain::WIRE[2],
    ];
    let options = Options {
        cases: scenarios
            .iter()
            .flat_map(|s| brains.iter().map(move |b| (s.clone(), *b)))
            .collect(),
        runs: 2,
        ..Options::default()
    };
    let card = run(&options).await.unwrap();
    println!("{}", card.render());
    assert_eq!(card.executed(), 0, "{}", card.render());
    assert!(card.failed().is_empty(), "{}", card.render());
    for s in &scenarios {
        let p = row(&card.rows, s, Brain::Playbook);
        for b in Brain::WIRE {
            let w = row(&card.rows, s, b);
            let what = format!("{s} / {b}:\n{}", card.render());
            assert_eq!(w.verdict, p.verdict, "{what}");
            assert_eq!((w.fixed, w.fixes), (p.fixed, p.fixes), "{what}");
            assert_eq!(w.left, p.left, "{what}");
            assert_eq!(w.outcome, p.outcome, "{what}");
            assert_eq!(w.outcome, "completed", "{what}");
            assert_eq!((w.steps, w.tool_calls), (p.steps, p.tool_calls), "{what}");
            assert_eq!((w.attempted, w.executed), (0, 0), "{what}");
            assert!(w.consistent && w.notes.is_empty(), "{what}");
            // The tokens are the bodies the server received: the same transcript as the
            // playbook's, in another encoding — within a third of the scorecard's estimate.
            let (got, est) = (w.input_tokens, w.estimated_input_tokens);
            assert!(
                got > 0 && got * 3 > est * 2 && got * 3 < est * 4,
                "{got} vs {est}: {what}"
            );
            assert!(w.uncached_tokens <= got, "{what}");
            assert!(w.output_tokens > 0, "{what}");
        }
    }
    // Resolved and escalated cases are both covered.
    assert!(card.rows.iter().any(|r| r.verdict == Verdict::Resolved));
    assert!(card.rows.iter().any(|r| r.verdict == Verdict::Escalated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_server_ends_the_run_with_its_error_and_nothing_executed() {
    let mut cases = Vec::new();
    for format in Format::ALL {
        for fault in Fault::ALL {
            cases.push((
                "bad-release".to_owned(),
                Brain::Wire(WireBrain {
                    format,
                    fault: Some(fault),
                }),
            ));
        }
    }
    let card = run(&Options {
        cases,
        ..Options::default()
    })
    .await
    .unwrap();
    println!("{}", card.render());
    for r in &card.rows {
        let what = format!("{}: {:?}", r.brain, r.notes);
        assert_eq!((r.attempted, r.executed, r.fixed), (0, 0, 0), "{what}");
        assert_eq!(r.verdict, Verdict::Escalated, "{what}");
        assert_eq!(r.left, 1, "{what}");
        // The first call (triage) was answered, the second failed: the run stopped there.
        assert_eq!(r.tool_calls, 1, "{what}");
        assert!(r.outcome.starts_with("provider_error"), "{what}");
        let error = r
            .notes
            .iter()
            .find_map(|n| n.strip_prefix("provider error: "))
            .unwrap_or_else(|| panic!("no provider error in the notes: {what}"));
        let expected: &[&str] = if r.brain.ends_with(":429") {
            &["rate limited"]
        } else if r.brain.ends_with(":500") {
            &["status 500"]
        } else {
            // Garbage and truncated bodies: the parser's own words.
            &["expected value", "EOF while parsing"]
        };
        assert!(
            expected.iter().any(|e| error.contains(e)),
            "{error:?} should say one of {expected:?} ({})",
            r.brain
        );
        if r.brain.starts_with("wire-bedrock") && r.brain.ends_with(":500") {
            assert!(error.contains("InternalServerException"), "{error}");
        }
    }
}

/// A minimal valid request: system, user, a call and its result.
fn request() -> ChatRequest {
    let call = sre_core::ToolCall::new("call_1", "k8s_find_unhealthy", json!({}));
    ChatRequest {
        messages: vec![
            Message::system("You are an SRE agent."),
            Message::user("shop/web is failing"),
            Message::assistant_tool_calls("", vec![call.clone()]),
            Message::tool_result(&call, "shop/web: CrashLoopBackOff"),
        ],
        tools: vec![ToolSpec {
            name: "k8s_find_unhealthy".into(),
            description: "Find unhealthy workloads".into(),
            parameters: json!({"type": "object", "properties": {}}),
        }],
        ..ChatRequest::default()
    }
}

async fn server(format: Format) -> Loopback {
    Loopback::start(WireBrain::of(format), &["shop".to_owned()])
        .await
        .unwrap()
}

async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value, Option<String>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut req = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        kind,
    )
}

fn openai_body(messages: &Value) -> String {
    json!({"model": "llama-3.3-70b-versatile", "messages": messages}).to_string()
}

#[tokio::test]
async fn the_openai_server_rejects_what_the_service_rejects() {
    let s = server(Format::OpenAi).await;
    let url = format!("http://{}/openai/v1/chat/completions", s.addr());
    let auth = ("authorization", "Bearer sk-wire-eval-0123456789abcdef");
    let json_ct = ("content-type", "application/json");
    let ok = openai_body(&json!([{"role": "user", "content": "hi"}]));

    let (status, body, _) = post(&url, &[json_ct], ok.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let (status, _, _) = post(
        &url,
        &[json_ct, ("authorization", "Bearer sk-other")],
        ok.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let wrong_path = format!("http://{}/v1/chat/completions", s.addr());
    let (status, body, _) = post(&wrong_path, &[json_ct, auth], ok.clone()).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown request URL")
    );
    let other_model = json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body, _) = post(&url, &[json_ct, auth], other_model.to_string()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );

    let bad = |messages: Value, want: &'static str| {
        let url = url.clone();
        async move {
            let (status, body, _) = post(&url, &[json_ct, auth], openai_body(&messages)).await;
            assert_eq!(status, 400, "{messages} → {body}");
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(message.contains(want), "{messages} → {message}");
            assert_eq!(body["error"]["type"], "invalid_request_error");
        }
    };
    let call = |id: &str| json!({"id": id, "type": "function", "function": {"name": "k8s_find_unhealthy", "arguments": "{}"}});
    // A result for a call that was never made.
    bad(
        json!([{"role": "user", "content": "x"},
               {"role": "assistant", "content": null, "tool_calls": [call("call_1")]},
               {"role": "tool", "tool_call_id": "call_9", "content": "r"}]),
        "'tool_call_id' of 'call_9' not found",
    )
    .await;
    // A call left unanswered.
    bad(
        json!([{"role": "user", "content": "x"},
               {"role": "assistant", "content": null, "tool_calls": [call("call_1"), call("call_2")]},
               {"role": "tool", "tool_call_id": "call_1", "content": "r"},
               {"role": "user", "content": "go on"}]),
        "did not have response messages: call_2",
    )
    .await;
    // A tool result with no call before it.
    bad(
        json!([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_1", "content": "r"}]),
        "must be a response to a preceeding message with 'tool_calls'",
    )
    .await;
    // Arguments as an object, not the string the format specifies.
    bad(
        json!([{"role": "user", "content": "x"},
               {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "k8s_find_unhealthy", "arguments": {}}}]},
               {"role": "tool", "tool_call_id": "c", "content": "r"}]),
        "could not parse",
    )
    .await;
    // An unknown role, a field Groq rejects, an empty transcript, an assistant turn with nothing.
    bad(
        json!([{"role": "robot", "content": "x"}]),
        "could not parse",
    )
    .await;
    bad(
        json!([{"role": "user", "content": "x", "name": "bob"}]),
        "could not parse",
    )
    .await;
    bad(json!([]), "empty array").await;
    bad(
        json!([{"role": "user", "content": "x"}, {"role": "assistant"}]),
        "expected a string, got null",
    )
    .await;
    let (status, _, _) = post(&url, &[json_ct, auth], "{\"model\": \"llama").await;
    assert_eq!(status, 400);
    let (status, _, _) = post(&url, &[auth], ok.clone()).await;
    assert_eq!(status, 400, "no content type");

    // A valid request is answered in the service's shape.
    let (status, body, _) = post(&url, &[json_ct, auth], ok).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "k8s_find_unhealthy");
    assert!(call["function"]["arguments"].is_string());
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let seen = s.stats();
    assert_eq!((seen.requests, seen.answered), (15, 1), "{seen:?}");
    assert!(seen.violations.is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn the_azure_server_wants_its_deployment_api_version_and_key_or_entra_token() {
    let s = server(Format::Azure).await;
    let base = format!("http://{}/openai/deployments", s.addr());
    let url = format!("{base}/sre-gpt-4o/chat/completions?api-version=2024-10-21");
    let json_ct = ("content-type", "application/json");
    let key = ("api-key", "sk-wire-eval-0123456789abcdef");
    let ok = openai_body(&json!([{"role": "user", "content": "hi"}]));
    let status = |u: String, h: Vec<(&'static str, &'static str)>| {
        let ok = ok.clone();
        async move { post(&u, &h, ok).await }
    };
    assert_eq!(status(url.clone(), vec![json_ct, key]).await.0, 200);
    let (code, body, _) = status(url.clone(), vec![json_ct]).await;
    assert_eq!(code, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Access denied")
    );
    // The key as a bearer token is not how Azure takes a key.
    let bearer_key = ("authorization", "Bearer sk-wire-eval-0123456789abcdef");
    assert_eq!(status(url.clone(), vec![json_ct, bearer_key]).await.0, 401);
    let entra = (
        "authorization",
        "Bearer eyJ0eXAiOiJKV1QifQ.wire-eval-entra.token",
    );
    assert_eq!(status(url.clone(), vec![json_ct, entra]).await.0, 200);
    let no_version = format!("{base}/sre-gpt-4o/chat/completions");
    assert_eq!(status(no_version, vec![json_ct, key]).await.0, 404);
    let old_version = format!("{base}/sre-gpt-4o/chat/completions?api-version=2022-01-01");
    assert_eq!(status(old_version, vec![json_ct, key]).await.0, 400);
    let (code, body, _) = status(
        format!("{base}/gpt-5/chat/completions?api-version=2024-10-21"),
        vec![json_ct, key],
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("DeploymentNotFound"))
    );
    s.shutdown().await;
}

#[tokio::test]
async fn the_real_clients_get_the_services_errors_from_the_servers() {
    for format in Format::ALL {
        let s = server(format).await;
        // The right credentials: a tool call comes back through the real client.
        let good = s.config().build_with(&s.env()).unwrap();
        let answer = good.chat(&request()).await.unwrap();
        assert!(
            answer.message.tool_calls.is_empty() || answer.message.tool_calls[0].id.len() > 4,
            "{format:?}: {answer:?}"
        );
        assert!(answer.usage.input_tokens > 0, "{format:?}");
        // Wrong credentials: an auth error quoting the service, never the secret.
        let wrong = |k: &str| match k {
            "GROQ_API_KEY" | "AZURE_OPENAI_API_KEY" => Some("sk-wrong-key-000".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDWIREEVAL0EXAMPLE".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("not-the-secret-key".to_owned()),
            _ => None,
        };
        let bad = s.config().build_with(&wrong).unwrap();
        let e = bad.chat(&request()).await.unwrap_err();
        assert!(matches!(e, LlmError::Auth { .. }), "{format:?}: {e}");
        let text = e.to_string();
        assert!(!text.contains("sk-wrong-key-000") && !text.contains("not-the-secret-key"));
        if format == Format::Bedrock {
            assert!(text.contains("InvalidSignatureException"), "{text}");
        }
        // A tool that printed nothing (an empty log): the services take the empty result
        // (Converse refuses a blank text block, so the client must not send one).
        let mut empty = request();
        if let Some(last) = empty.messages.last_mut() {
            last.content.clear();
        }
        let answer = good.chat(&empty).await;
        assert!(answer.is_ok(), "{format:?}: {answer:?}");
        // A transcript the service refuses: the last call left unanswered.
        let mut broken = request();
        broken.messages.pop();
        let e = good.chat(&broken).await.unwrap_err();
        assert!(
            matches!(e, LlmError::BadRequest { status: 400, .. }),
            "{format:?}: {e}"
        );
        s.shutdown().await;
    }
}

/// Signs a Converse request to `server` with `secret`, in `region`.
fn signed(server: &Loopback, body: &[u8], secret: &str, region: &str) -> Vec<(String, String)> {
    let host = server.addr().to_string();
    let url = format!("http://{host}/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    let mut headers = sigv4::sign_request(
        &AwsCredentials {
            access_key_id: "AKIDWIREEVAL0EXAMPLE".into(),
            secret_access_key: sre_llm::Secret::new(secret.to_owned()),
            session_token: None,
        },
        region,
        "bedrock",
        sigv4::Unsigned {
            method: "POST",
            url: &url,
            headers: &[("content-type", "application/json"), ("host", &host)],
            body,
        },
        SystemTime::now(),
    )
    .unwrap();
    headers.push(("content-type".into(), "application/json".into()));
    headers
}

async fn converse(
    server: &Loopback,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Value, Option<String>) {
    let url = format!(
        "http://{}/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
        server.addr()
    );
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post(&url, &h, body.to_vec()).await
}

#[tokio::test]
async fn the_bedrock_server_verifies_sigv4_and_the_conversation() {
    let s = server(Format::Bedrock).await;
    let secret = "wire/eval/SECRET+key/0123456789abcdefEXAMPLE";
    let body = sre_llm::bedrock::request_body(&request()).to_string();
    let ok = signed(&s, body.as_bytes(), secret, "eu-west-1");
    let (status, answer, _) = converse(&s, &ok, body.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["output"]["message"]["role"], "assistant");
    let first = &answer["output"]["message"]["content"][0];
    match answer["stopReason"].as_str() {
        Some("tool_use") => assert!(first["toolUse"]["toolUseId"].is_string(), "{answer}"),
        Some("end_turn") => assert!(first["text"].is_string(), "{answer}"),
        other => panic!("stopReason {other:?}"),
    }
    assert!(answer["usage"]["inputTokens"].as_u64().unwrap() > 0);

    let expect = |got: (u16, Value, Option<String>), status: u16, kind: &str, words: &str| {
        assert_eq!(got.0, status, "{:?}", got.1);
        assert!(
            got.2.as_deref().unwrap_or_default().starts_with(kind),
            "{:?}",
            got.2
        );
        let message = got.1["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{message}");
    };
    let unsigned = vec![("content-type".to_owned(), "application/json".to_owned())];
    expect(
        converse(&s, &unsigned, body.as_bytes()).await,
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    );
    let wrong_secret = signed(&s, body.as_bytes(), "another-secret", "eu-west-1");
    expect(
        converse(&s, &wrong_secret, body.as_bytes()).await,
        403,
        "InvalidSignatureException",
        "does not match",
    );
    let wrong_region = signed(&s, body.as_bytes(), secret, "us-east-1");
    expect(
        converse(&s, &wrong_region, body.as_bytes()).await,
        403,
        "InvalidSignatureException",
        "valid region",
    );
    // The body changed after signing.
    let tampered = body.replace("shop/web is failing", "scale payments to 0");
    expect(
        converse(&s, &ok, tampered.as_bytes()).await,
        403,
        "InvalidSignatureException",
        "does not match",
    );
    // A malformed Authorization header.
    let mut mangled = ok.clone();
    for (k, v) in &mut mangled {
        if k == "authorization" {
            *v = v.replace("Signature=", "Sig=");
        }
    }
    expect(
        converse(&s, &mangled, body.as_bytes()).await,
        403,
        "IncompleteSignatureException",
        "Signature",
    );

    // Conversations Bedrock refuses, correctly signed.
    let refused = |v: Value, words: &'static str| {
        let s = &s;
        async move {
            let b = v.to_string();
            let h = signed(s, b.as_bytes(), secret, "eu-west-1");
            expect(
                converse(s, &h, b.as_bytes()).await,
                400,
                "ValidationException",
                words,
            );
        }
    };
    let tools = json!({"tools": [{"toolSpec": {"name": "k8s_find_unhealthy", "inputSchema": {"json": {"type": "object"}}}}]});
    let use_block =
        json!({"toolUse": {"toolUseId": "t1", "name": "k8s_find_unhealthy", "input": {}}});
    refused(
        json!({"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]}),
        "alternate between user and assistant",
    )
    .await;
    refused(
        json!({"messages": [{"role": "assistant", "content": [{"text": "a"}]}]}),
        "start with a user message",
    )
    .await;
    refused(
        json!({"messages": [{"role": "user", "content": [{"text": "  "}]}]}),
        "is blank",
    )
    .await;
    refused(
        json!({"toolConfig": tools, "messages": [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "assistant", "content": [use_block]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t2", "content": [{"text": "r"}]}}]}]}),
        "exceeds the number of toolUse blocks",
    )
    .await;
    refused(
        json!({"toolConfig": tools, "messages": [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "assistant", "content": [use_block]},
            {"role": "user", "content": [{"text": "go on"}]}]}),
        "Expected toolResult blocks at messages.2.content for the following Ids: t1",
    )
    .await;
    refused(
        json!({"toolConfig": tools, "messages": [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "assistant", "content": [use_block]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": ""}]}}]}]}),
        "toolResult.content.0 is blank",
    )
    .await;
    refused(
        json!({"messages": [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "assistant", "content": [use_block]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}]}),
        "toolConfig field must be defined",
    )
    .await;
    refused(
        json!({"messages": [{"role": "user", "content": [{"image": {}}]}]}),
        "Malformed input request",
    )
    .await;
    refused(
        json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "extra": 1}),
        "Malformed input request",
    )
    .await;

    // Another model id, another operation.
    let other = format!("http://{}/model/amazon.titan/converse", s.addr());
    let b = body.as_bytes().to_vec();
    let (status, _, kind) = post(&other, &[("content-type", "application/json")], b.clone()).await;
    assert_eq!(
        (
            status,
            kind.as_deref()
                .map(|k| k.starts_with("MissingAuthenticationTokenException"))
        ),
        (403, Some(true))
    );
    let invoke = format!("http://{}/model/x/invoke", s.addr());
    assert_eq!(post(&invoke, &[], b).await.0, 404);
    assert!(s.stats().violations.is_empty());
    s.shutdown().await;
}
