//! The MCP server (`sre_tools::mcp`) driven by rmcp's own client over the embedded simulator:
//! the tool list and its annotations, read tools, writes approved (or not) through elicitation,
//! the fallback channel for clients without it, `read_only`, protocol errors, a target that
//! changes while the human decides, and the HTTP transport's bearer token.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams,
    ElicitResult, ElicitationAction, ErrorCode, ErrorData, Implementation, JsonObject,
};
use rmcp::service::{RequestContext, RunningService, ServiceError};
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use sre_core::{Callback, Decision, ReadOnly, Rules, Tool};
use sre_tools::k8s::Limits;
use sre_tools::mcp::{McpConfig, McpServer};
use sre_tools::serve::api::ApiToken;
use sre_tools::sim::Simulator;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// What the simulated human answers.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Approve,
    AcceptWithoutApprove,
    Decline,
    Cancel,
    Never,
}

/// An MCP client with a human behind it.
#[derive(Clone)]
struct Human {
    elicitation: bool,
    answer: Answer,
    asked: Arc<Mutex<Vec<String>>>,
    /// Changes shop/web (an annotation) before answering, as another actor would.
    meddle: Option<kube::Client>,
}

impl Human {
    fn new(answer: Answer) -> Self {
        Self {
            elicitation: true,
            answer,
            asked: Arc::default(),
            meddle: None,
        }
    }

    fn without_elicitation() -> Self {
        Self {
            elicitation: false,
            ..Self::new(Answer::Approve)
        }
    }

    fn questions(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl ClientHandler for Human {
    fn get_info(&self) -> ClientConfig {
        let caps = if self.elicitation {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("test-human", "1.0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } = request
        else {
            return Err(ErrorData::invalid_params("only form elicitation", None));
        };
        let schema = serde_json::to_value(&requested_schema).unwrap();
        assert_eq!(schema["required"], json!(["approve"]), "{schema}");
        self.asked.lock().unwrap().push(message);
        if let Some(client) = &self.meddle {
            let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
                kube::Api::namespaced(client.clone(), "shop");
            api.patch(
                "web",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"meddled": "yes"}}})),
            )
            .await
            .unwrap();
        }
        let answer =
            match self.answer {
                Answer::Approve => ElicitResult::new(ElicitationAction::Accept)
                    .with_content(json!({"approve": true})),
                Answer::AcceptWithoutApprove => ElicitResult::new(ElicitationAction::Accept)
                    .with_content(json!({"approve": false})),
                Answer::Decline => ElicitResult::new(ElicitationAction::Decline),
                Answer::Cancel => ElicitResult::new(ElicitationAction::Cancel),
                Answer::Never => std::future::pending().await,
            };
        Ok(answer)
    }
}

fn limits() -> Limits {
    Limits {
        poll_interval: Duration::from_millis(20),
        rollout_timeout: Duration::from_secs(10),
        ..Limits::default()
    }
}

async fn sim() -> Simulator {
    Simulator::start_named("bad-release").await.unwrap()
}

fn server(sim: &Simulator, config: McpConfig) -> McpServer {
    McpServer::new(sim.tools(limits()).unwrap(), config).unwrap()
}

/// `human` connected to `server` over an in-memory pipe.
async fn connect(server: McpServer, human: Human) -> RunningService<RoleClient, Human> {
    let (server_side, client_side) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_side).await {
            let _ = running.waiting().await;
        }
    });
    human.serve(client_side).await.unwrap()
}

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

async fn call(
    client: &RunningService<RoleClient, Human>,
    name: &'static str,
    arguments: Value,
) -> Result<CallToolResult, ServiceError> {
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args(arguments)))
        .await
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn web_image(sim: &Simulator) -> String {
    sim.object("deployments", "shop", "web").unwrap()["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

const BAD: &str = "ghcr.io/acme/shop-web:1.5.0";
const GOOD: &str = "ghcr.io/acme/shop-web:1.4.2";

fn rollback() -> Value {
    json!({"namespace": "shop", "deployment": "web"})
}

#[tokio::test]
async fn tools_are_listed_from_the_agents_specs_with_annotations() {
    let sim = sim().await;
    let client = connect(
        server(&sim, McpConfig::default()),
        Human::new(Answer::Decline),
    )
    .await;
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "sre-agent");
    assert!(info.capabilities.tools.is_some());
    let listed = client.list_all_tools().await.unwrap();
    let tools = sim.tools(limits()).unwrap();
    assert_eq!(listed.len(), tools.len());
    for tool in &tools {
        let spec = tool.spec();
        let l = listed.iter().find(|t| t.name == spec.name).unwrap();
        assert_eq!(Value::Object((*l.input_schema).clone()), spec.parameters);
        let a = l.annotations.as_ref().unwrap();
        match tool.effect() {
            sre_core::Effect::Read => assert_eq!(a.read_only_hint, Some(true), "{}", spec.name),
            sre_core::Effect::Write => {
                assert_eq!(a.read_only_hint, Some(false), "{}", spec.name);
                assert_eq!(a.destructive_hint, Some(true), "{}", spec.name);
                assert!(a.idempotent_hint.is_some(), "{}", spec.name);
            }
        }
    }
    let hint = |name: &str| {
        listed
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.annotations.clone())
            .unwrap()
    };
    assert_eq!(hint("k8s_rollback").idempotent_hint, Some(false));
    assert_eq!(hint("k8s_patch_image").idempotent_hint, Some(true));
    assert_eq!(hint("k8s_find_unhealthy").read_only_hint, Some(true));
    client.cancel().await.unwrap();

    let read_only = McpConfig {
        read_only: true,
        ..McpConfig::default()
    };
    let client = connect(server(&sim, read_only), Human::new(Answer::Approve)).await;
    let listed = client.list_all_tools().await.unwrap();
    let reads = tools
        .iter()
        .filter(|t| t.effect() == sre_core::Effect::Read)
        .count();
    assert_eq!(listed.len(), reads);
    assert!(
        listed
            .iter()
            .all(|t| t.annotations.as_ref().unwrap().read_only_hint == Some(true)),
        "{listed:?}"
    );
    assert!(!listed.iter().any(|t| t.name == "k8s_rollback"));
}

#[tokio::test]
async fn read_tools_run_directly_with_text_and_structured_content() {
    let sim = sim().await;
    let human = Human::new(Answer::Decline);
    let client = connect(server(&sim, McpConfig::default()), human.clone()).await;
    let result = call(&client, "k8s_find_unhealthy", json!({}))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    assert!(text(&result).contains("web"), "{}", text(&result));
    let data = result.structured_content.unwrap();
    let workloads = data["workloads"].as_array().unwrap();
    assert!(
        workloads
            .iter()
            .any(|w| w["namespace"] == "shop" && w["name"].as_str().unwrap().starts_with("web")),
        "{data}"
    );
    let logs = call(&client, "k8s_events", json!({"namespace": "shop"}))
        .await
        .unwrap();
    assert_eq!(logs.is_error, Some(false), "{}", text(&logs));
    assert!(human.questions().is_empty(), "a read asks nobody");
}

#[tokio::test]
async fn a_write_accepted_through_elicitation_is_applied_and_verified() {
    let sim = sim().await;
    let human = Human::new(Answer::Approve);
    let client = connect(server(&sim, McpConfig::default()), human.clone()).await;
    assert_eq!(web_image(&sim), BAD);
    let result = call(&client, "k8s_rollback", rollback()).await.unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    let data = result.structured_content.clone().unwrap();
    assert_eq!(data["applied"], true, "{data}");
    assert_eq!(data["verification"]["passed"], true, "{data}");
    assert_eq!(data["approved_by"], "elicitation:test-human", "{data}");
    assert_eq!(web_image(&sim), GOOD);
    let questions = human.questions();
    assert_eq!(questions.len(), 1);
    let q = &questions[0];
    assert!(q.contains("approval needed"), "{q}");
    assert!(
        q.contains("deployments.apps/shop/web@resourceVersion="),
        "the target: {q}"
    );
    assert!(q.contains("diff:"), "the dry-run diff: {q}");
    assert!(q.contains(GOOD), "{q}");
    assert!(q.contains("expires:"), "the expiry: {q}");
}

#[tokio::test]
async fn declined_cancelled_unanswered_or_unconfirmed_changes_nothing() {
    let sim = sim().await;
    let config = McpConfig {
        elicitation_timeout: Duration::from_millis(300),
        ..McpConfig::default()
    };
    for (answer, expected) in [
        (Answer::Decline, "declined"),
        (Answer::Cancel, "cancelled"),
        (Answer::Never, "no answer within 300ms"),
        (Answer::AcceptWithoutApprove, "without \"approve\": true"),
    ] {
        let human = Human::new(answer);
        let client = connect(server(&sim, config.clone()), human.clone()).await;
        let result = call(&client, "k8s_rollback", rollback()).await.unwrap();
        let shown = text(&result);
        assert_eq!(result.is_error, Some(true), "{answer:?}: {shown}");
        assert!(shown.contains(expected), "{answer:?}: {shown}");
        assert!(shown.contains("nothing was applied"), "{answer:?}: {shown}");
        assert_eq!(result.structured_content.unwrap()["applied"], false);
        assert_eq!(human.questions().len(), 1, "{answer:?}");
        assert_eq!(web_image(&sim), BAD, "{answer:?} must change nothing");
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn a_client_without_elicitation_gets_a_clear_error_or_the_configured_channel() {
    let sim = sim().await;
    let no_channel = McpConfig {
        enable_hint: "restart with --approve auto".into(),
        ..McpConfig::default()
    };
    let client = connect(server(&sim, no_channel), Human::without_elicitation()).await;
    let result = call(&client, "k8s_rollback", rollback()).await.unwrap();
    let shown = text(&result);
    assert_eq!(result.is_error, Some(true), "{shown}");
    assert!(
        shown.contains("did not declare the MCP elicitation capability"),
        "{shown}"
    );
    assert!(shown.contains("restart with --approve auto"), "{shown}");
    assert_eq!(web_image(&sim), BAD);
    client.cancel().await.unwrap();

    let deny = McpConfig {
        fallback: Some(Arc::new(ReadOnly)),
        ..McpConfig::default()
    };
    let client = connect(server(&sim, deny), Human::without_elicitation()).await;
    let result = call(&client, "k8s_rollback", rollback()).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("denied by policy:read-only"),
        "{}",
        text(&result)
    );
    assert_eq!(web_image(&sim), BAD);
    client.cancel().await.unwrap();

    let auto = Rules::new(Callback::new(|_| Decision::approve("policy:auto")))
        .namespaces(["shop"])
        .same_repository_only();
    let auto = McpConfig {
        fallback: Some(Arc::new(auto)),
        ..McpConfig::default()
    };
    let client = connect(server(&sim, auto), Human::without_elicitation()).await;
    let result = call(&client, "k8s_rollback", rollback()).await.unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    assert_eq!(
        result.structured_content.unwrap()["approved_by"],
        "policy:auto"
    );
    assert_eq!(web_image(&sim), GOOD);
}

#[tokio::test]
async fn the_clients_own_claims_bypass_nothing() {
    let sim = sim().await;
    let client = connect(
        server(&sim, McpConfig::default()),
        Human::without_elicitation(),
    )
    .await;
    // A "confirmed" argument is outside the closed schema.
    let mut forged = rollback();
    forged["confirmed"] = json!(true);
    let result = call(&client, "k8s_rollback", forged).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(text(&result).contains("confirmed"), "{}", text(&result));
    // Approval claimed in the request's _meta is not an approval.
    let mut params = CallToolRequestParams::new("k8s_rollback").with_arguments(args(rollback()));
    params.meta =
        Some(serde_json::from_value(json!({"approved": true, "confirmed": true})).unwrap());
    let result = client.call_tool(params).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(text(&result).contains("elicitation"), "{}", text(&result));
    assert_eq!(web_image(&sim), BAD);
}

#[tokio::test]
async fn read_only_refuses_a_forged_write_call() {
    let sim = sim().await;
    let human = Human::new(Answer::Approve);
    let read_only = McpConfig {
        read_only: true,
        ..McpConfig::default()
    };
    let client = connect(server(&sim, read_only), human.clone()).await;
    let err = call(&client, "k8s_rollback", rollback()).await.unwrap_err();
    let ServiceError::McpError(e) = err else {
        panic!("expected an MCP error, got {err:?}");
    };
    assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
    assert!(e.message.contains("read-only"), "{}", e.message);
    assert!(human.questions().is_empty(), "nobody is asked");
    assert_eq!(web_image(&sim), BAD);
    // Reads still work.
    let result = call(&client, "k8s_find_unhealthy", json!({}))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false));
}

#[tokio::test]
async fn unknown_tools_and_arguments_outside_the_schema_are_mcp_errors() {
    let sim = sim().await;
    let human = Human::new(Answer::Approve);
    let client = connect(server(&sim, McpConfig::default()), human.clone()).await;
    let err = call(&client, "k8s_delete_everything", json!({}))
        .await
        .unwrap_err();
    let ServiceError::McpError(e) = err else {
        panic!("expected an MCP error, got {err:?}");
    };
    assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
    assert!(e.message.contains("unknown tool"), "{}", e.message);
    // Outside the schema: a tool error naming the field, so a model can correct it.
    for (bad, needle) in [
        (json!({"namespace": 7, "deployment": "web"}), "/namespace"),
        (
            json!({"namespace": "shop"}),
            "\"deployment\" is a required property",
        ),
    ] {
        let result = call(&client, "k8s_rollback", bad.clone()).await.unwrap();
        assert_eq!(result.is_error, Some(true), "{bad}");
        assert!(text(&result).contains(needle), "{bad}: {}", text(&result));
    }
    assert!(
        human.questions().is_empty(),
        "nothing invalid is asked about"
    );
    assert_eq!(web_image(&sim), BAD);
}

#[tokio::test]
async fn malformed_requests_get_protocol_errors_and_the_server_lives_on() {
    let sim = sim().await;
    let server = server(&sim, McpConfig::default());
    let (server_side, client_side) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_side).await {
            let _ = running.waiting().await;
        }
    });
    let (read, mut write) = tokio::io::split(client_side);
    let mut lines = BufReader::new(read).lines();
    let mut send = async |v: String| {
        write.write_all(format!("{v}\n").as_bytes()).await.unwrap();
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
        .to_string(),
    )
    .await;
    let init: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string()).await;
    // Not JSON at all: ignored (there is no id to answer).
    send("{this is not json".to_owned()).await;
    // JSON, but not a valid tools/call: an error, no crash.
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": 7}})
            .to_string(),
    )
    .await;
    let answer: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert!(answer.get("error").is_some(), "{answer}");
    // Arguments that are not an object.
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "k8s_rollback", "arguments": "shop/web"}})
        .to_string(),
    )
    .await;
    let answer: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert!(answer.get("error").is_some(), "{answer}");
    // Still serving.
    send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}).to_string()).await;
    let answer: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(answer["id"], 4, "{answer}");
    assert!(
        answer["result"]["tools"].as_array().unwrap().len() > 5,
        "{answer}"
    );
    assert_eq!(web_image(&sim), BAD);
}

#[tokio::test]
async fn a_target_that_changes_while_the_human_decides_is_refused() {
    let sim = sim().await;
    let mut human = Human::new(Answer::Approve);
    human.meddle = Some(sim.client().unwrap());
    let client = connect(server(&sim, McpConfig::default()), human.clone()).await;
    let result = call(&client, "k8s_rollback", rollback()).await.unwrap();
    let shown = text(&result);
    assert_eq!(result.is_error, Some(true), "{shown}");
    assert!(shown.contains("changed"), "{shown}");
    let data = result.structured_content.unwrap();
    assert_eq!(data["applied"], false, "{data}");
    assert_eq!(data["stale"], true, "{data}");
    assert_eq!(human.questions().len(), 1);
    let web = sim.object("deployments", "shop", "web").unwrap();
    assert_eq!(web["metadata"]["annotations"]["meddled"], "yes");
    assert_eq!(web_image(&sim), BAD, "the stale approval applied nothing");
}

#[tokio::test]
async fn rules_deny_before_anyone_is_asked() {
    let sim = sim().await;
    let human = Human::new(Answer::Approve);
    let rules = Rules::new(Callback::new(|_| Decision::approve("nobody"))).namespaces(["billing"]);
    let config = McpConfig {
        rules: Some(Arc::new(rules)),
        ..McpConfig::default()
    };
    let client = connect(server(&sim, config), human.clone()).await;
    let result = call(&client, "k8s_rollback", rollback()).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("not in the allow-list"),
        "{}",
        text(&result)
    );
    assert!(
        human.questions().is_empty(),
        "the rules denied before asking"
    );
    assert_eq!(web_image(&sim), BAD);
}

const TOKEN: &str = "mcp-test-token-0123456789abcdef";

#[tokio::test]
async fn http_rejects_a_missing_or_wrong_token_and_serves_the_right_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = sim().await;
    let server = server(&sim, McpConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sre_tools::mcp::http::serve(
        listener,
        server,
        ApiToken::from_string(TOKEN).unwrap(),
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}/mcp");
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let post = |auth: Option<&str>| {
        let mut r = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(a) = auth {
            r = r.header("authorization", a.to_owned());
        }
        r.send()
    };
    let missing = post(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(
        missing
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        missing.json::<Value>().await.unwrap()["code"],
        "unauthorized"
    );
    let malformed = post(Some("Basic abc")).await.unwrap();
    assert_eq!(malformed.status(), 401);
    let wrong = post(Some("Bearer mcp-test-token-0123456789abcdeX"))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let body = wrong.text().await.unwrap();
    assert!(!body.contains(TOKEN), "{body}");
    // Any path is behind the token too.
    let other = http
        .get(format!("http://{addr}/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);

    // The right token: rmcp's own HTTP client initializes, lists and calls.
    let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.clone(),
        )
        .auth_header(TOKEN),
    );
    let human = Human::new(Answer::Approve);
    let client = human.clone().serve(transport).await.unwrap();
    let listed = client.list_all_tools().await.unwrap();
    assert!(listed.iter().any(|t| t.name == "k8s_find_unhealthy"));
    let result = call(&client, "k8s_find_unhealthy", json!({}))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    // A write over HTTP is asked about in the same session, and applied.
    let result = call(&client, "k8s_rollback", rollback()).await.unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    assert_eq!(human.questions().len(), 1);
    assert_eq!(web_image(&sim), GOOD);
    client.cancel().await.unwrap();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
