//! Adversarial tests of the MCP server (`sre_tools::mcp`): ways an MCP client could get more
//! writes applied than the operator allowed, or keep another client's approved write from
//! applying. Each test here failed on the code it was written against; see the report of the
//! review for the fix each one asks for.

#![cfg(all(feature = "mcp", feature = "sim"))]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ElicitRequestParams,
    ElicitResult, ElicitationAction, ErrorData, Implementation, JsonObject,
};
use rmcp::service::{RequestContext, RunningService, ServiceError};
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use sre_core::{Callback, Decision, Park, Rules};
use sre_tools::k8s::Limits;
use sre_tools::mcp::{McpConfig, McpServer};
use sre_tools::serve::api::ApiToken;
use sre_tools::sim::Simulator;
use tokio::sync::watch;

/// An MCP client with a human behind it who answers every question the same way, but only once
/// `gate` reaches `at_least` (questions asked and calls finished both count toward it).
#[derive(Clone)]
struct Human {
    elicitation: bool,
    approve: bool,
    asked: Arc<Mutex<Vec<String>>>,
    /// Ticks once per question asked; the test adds its own ticks (calls that returned).
    gate: Arc<watch::Sender<usize>>,
    at_least: usize,
}

impl Human {
    fn new(approve: bool) -> Self {
        Self {
            elicitation: true,
            approve,
            asked: Arc::default(),
            gate: Arc::new(watch::channel(0).0),
            at_least: 0,
        }
    }

    /// Answers only once `at_least` ticks happened on `gate`.
    fn waiting(mut self, gate: &Arc<watch::Sender<usize>>, at_least: usize) -> Self {
        self.gate = Arc::clone(gate);
        self.at_least = at_least;
        self
    }

    fn without_elicitation() -> Self {
        Self {
            elicitation: false,
            ..Self::new(true)
        }
    }

    fn questions(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

impl ClientHandler for Human {
    fn get_info(&self) -> ClientConfig {
        let caps = if self.elicitation {
            ClientCapabilities::builder().enable_elicitation().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(caps, Implementation::new("attacker", "1.0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = request else {
            return Err(ErrorData::invalid_params("only form elicitation", None));
        };
        self.asked.lock().unwrap().push(message);
        self.gate.send_modify(|n| *n += 1);
        let mut rx = self.gate.subscribe();
        let at_least = self.at_least;
        rx.wait_for(|n| *n >= at_least).await.unwrap();
        Ok(if self.approve {
            ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true}))
        } else {
            ElicitResult::new(ElicitationAction::Decline)
        })
    }
}

fn limits() -> Limits {
    Limits {
        poll_interval: Duration::from_millis(20),
        rollout_timeout: Duration::from_secs(10),
        ..Limits::default()
    }
}

/// `healthy`: two deployments in `shop`, `web` and `frontend`, 2 replicas each.
async fn sim() -> Simulator {
    Simulator::start_named("healthy").await.unwrap()
}

fn server(sim: &Simulator, config: McpConfig) -> McpServer {
    McpServer::new(sim.tools(limits()).unwrap(), config).unwrap()
}

/// `human` connected to `server` (one MCP session) over an in-memory pipe.
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

fn applied(result: &CallToolResult) -> bool {
    result
        .structured_content
        .as_ref()
        .is_some_and(|d| d["applied"] == true)
}

fn replicas(sim: &Simulator, name: &str) -> i64 {
    sim.object("deployments", "shop", name).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

fn scale(deployment: &str) -> Value {
    json!({"namespace": "shop", "deployment": deployment, "replicas": 3})
}

/// `sre-agent mcp --max-writes 1` (the rules the command builds for clients with elicitation:
/// the namespaces in scope, at most one applied write per session, a human decides).
fn one_write_per_session() -> McpConfig {
    let rules = Rules::new(Park).namespaces(["shop"]).max_writes_per_run(1);
    McpConfig {
        rules: Some(Arc::new(rules)),
        ..McpConfig::default()
    }
}

/// FINDING (max-writes race): the write limit is checked with `writes_so_far` read *before* the
/// human is asked and never again when the write is applied, and the count only grows after a
/// write was applied and verified. Two writes called at once (models call tools in parallel)
/// both pass the limit of one, both are asked, both are approved — and both are applied.
#[tokio::test]
async fn concurrent_writes_cannot_exceed_max_writes_per_session() {
    let sim = sim().await;
    let ticks = Arc::new(watch::channel(0usize).0);
    // The human keeps both questions open and answers them together; a call that returns
    // without asking (denied by the limit) also releases the other one, so a fixed server that
    // denies the second write up front does not hang this test.
    let human = Human::new(true).waiting(&ticks, 2);
    let client = connect(server(&sim, one_write_per_session()), human.clone()).await;
    let done = |r: Result<CallToolResult, ServiceError>| {
        ticks.send_modify(|n| *n += 2);
        r.unwrap()
    };
    let (web, frontend) = tokio::join!(
        async { done(call(&client, "k8s_scale_deployment", scale("web")).await) },
        async { done(call(&client, "k8s_scale_deployment", scale("frontend")).await) },
    );
    let applied_count = [&web, &frontend].iter().filter(|r| applied(r)).count();
    let changed = [replicas(&sim, "web"), replicas(&sim, "frontend")]
        .iter()
        .filter(|r| **r == 3)
        .count();
    assert_eq!(
        (applied_count, changed),
        (1, 1),
        "--max-writes 1 allows one applied write per session, but {applied_count} were applied \
         ({changed} deployments changed):\nweb: {}\nfrontend: {}",
        text(&web),
        text(&frontend),
    );
    let refused = if applied(&web) { &frontend } else { &web };
    assert!(
        text(refused).contains("limit of 1 write(s)"),
        "{}",
        text(refused)
    );
}

const TOKEN: &str = "mcp-attack-token-0123456789abcdef";

async fn http_client(url: &str, human: Human) -> RunningService<RoleClient, Human> {
    let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.to_owned(),
        )
        .auth_header(TOKEN),
    );
    human.serve(transport).await.unwrap()
}

/// FINDING (max-writes per session, sessions are free): over HTTP every `initialize` makes a new
/// session with a fresh write count, so `--approve auto --max-writes 1` approves one write per
/// *connection*, without limit: the client reconnects and the count starts from zero again.
#[tokio::test]
async fn a_new_http_session_does_not_reset_the_write_limit() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = sim().await;
    // `--approve auto --max-writes 1`: clients without elicitation get writes approved
    // automatically within the limits.
    let auto = Rules::new(Callback::new(|_| Decision::approve("policy:auto")))
        .namespaces(["shop"])
        .max_writes_per_run(1);
    let config = McpConfig {
        fallback: Some(Arc::new(auto)),
        ..one_write_per_session()
    };
    let server = server(&sim, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sre_tools::mcp::http::serve(
        listener,
        server,
        ApiToken::from_string(TOKEN).unwrap(),
        async {
            let _ = stopped.await;
        },
    ));

    let first = http_client(&url, Human::without_elicitation()).await;
    let result = call(&first, "k8s_scale_deployment", scale("web"))
        .await
        .unwrap();
    assert!(applied(&result), "{}", text(&result));
    // The limit holds within the session…
    let result = call(&first, "k8s_scale_deployment", scale("frontend"))
        .await
        .unwrap();
    assert!(!applied(&result), "{}", text(&result));
    assert!(
        text(&result).contains("limit of 1 write(s)"),
        "{}",
        text(&result)
    );
    first.cancel().await.unwrap();

    // …but the same client, reconnecting with the same token, starts from zero.
    let second = http_client(&url, Human::without_elicitation()).await;
    let result = call(&second, "k8s_scale_deployment", scale("frontend"))
        .await
        .unwrap();
    let shown = text(&result);
    second.cancel().await.unwrap();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(
        !applied(&result),
        "a second session got a second automatic write past --max-writes 1: {shown}"
    );
    assert_eq!(replicas(&sim, "frontend"), 2, "{shown}");
}

/// FINDING (cross-call withdraw): the gate keeps plans by action fingerprint only, shared by
/// every session, and a denial withdraws by fingerprint. Two clients asking for the same change
/// get the same fingerprint, so client B declining its own question withdraws the plan client A's
/// human is approving: A's approval then applies nothing ("no planned write").
#[tokio::test]
async fn a_decline_in_another_session_does_not_cancel_an_approved_write() {
    let sim = sim().await;
    let server = server(&sim, McpConfig::default());
    let ticks = Arc::new(watch::channel(0usize).0);
    // A's human answers once A was asked (1 tick) and B's call returned (2 more ticks).
    let alice = Human::new(true).waiting(&ticks, 3);
    let a = connect(server.new_session(), alice.clone()).await;
    let mallory = Human::new(false);
    let b = connect(server.new_session(), mallory.clone()).await;
    let a_call = call(&a, "k8s_scale_deployment", scale("web"));
    let b_call = async {
        // Wait until A's question is open, then ask for the same change and decline it.
        ticks.subscribe().wait_for(|n| *n >= 1).await.unwrap();
        let r = call(&b, "k8s_scale_deployment", scale("web")).await;
        ticks.send_modify(|n| *n += 2);
        r.unwrap()
    };
    let (a_result, b_result) = tokio::join!(a_call, b_call);
    let a_result = a_result.unwrap();
    assert!(!applied(&b_result), "{}", text(&b_result));
    assert_eq!(alice.questions(), 1);
    assert_eq!(mallory.questions(), 1);
    assert!(
        applied(&a_result),
        "A's human approved exactly this change, but B's decline withdrew it: {}",
        text(&a_result)
    );
    assert_eq!(replicas(&sim, "web"), 3);
}
