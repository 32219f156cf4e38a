//! The agent loop end to end with the scripted provider: the happy path, the approval gate,
//! budgets, bad tool calls, provider failures, verification and redaction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sre_core::testing::mocks::{MockPolicy, MockProvider, MockTool};
use sre_core::testing::{EchoTool, ScaleTool, ScriptedProvider, answer, call, tool_turn};
use sre_core::{
    ActionStatus, Agent, AutoApprove, Callback, ChatResponse, Decision, Effect, Event, FnObserver,
    LlmError, Message, Outcome, ReadOnly, Role, Rules, Tool, ToolContext, ToolError, ToolOutput,
    ToolSpec, Usage, spec_for,
};

fn scale_call(id: &str, replicas: u32) -> sre_core::ToolCall {
    call(
        id,
        "scale",
        json!({"namespace": "shop", "deployment": "web", "replicas": replicas}),
    )
}

fn approve_all() -> Rules {
    Rules::new(Callback::new(|_| Decision::approve("alice")))
}

/// The tool messages the model received in its `n`th request (0-based).
fn tool_messages(model: &ScriptedProvider, n: usize) -> Vec<Message> {
    model.requests()[n]
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .cloned()
        .collect()
}

#[tokio::test]
async fn happy_path_read_then_write_then_final() {
    let model = Arc::new(ScriptedProvider::new([
        tool_turn(vec![call(
            "r1",
            "echo",
            json!({"text": "web: 1/1 ready, overloaded"}),
        )]),
        tool_turn(vec![scale_call("w1", 3)]),
        answer("scaled shop/web to 3"),
    ]));
    let scale = ScaleTool::default();
    let echo = EchoTool::default();
    let agent = Agent::builder(Arc::clone(&model))
        .tool(echo.clone())
        .tool(scale.clone())
        .policy(approve_all().namespaces(["shop"]))
        .build()
        .unwrap();
    let report = agent.run("web is slow").await;

    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(report.answer.as_deref(), Some("scaled shop/web to 3"));
    assert_eq!(report.steps, 3);
    assert_eq!(report.tool_calls, 2);
    assert_eq!(report.usage, Usage::new(30, 15));
    assert_eq!(echo.calls(), 1);
    assert_eq!(scale.state().replicas, 3);
    assert_eq!(scale.state().writes, 1);

    let action = &report.actions[0];
    assert_eq!(action.status, ActionStatus::Applied);
    assert_eq!(action.decision, Some(Decision::approve("alice")));
    let preview = action.preview.as_ref().unwrap();
    assert_eq!(preview.fingerprint, "shop/web@v1");
    assert_eq!(preview.diff, "- replicas: 1\n+ replicas: 3");
    assert_eq!(action.verification.as_ref().map(|v| v.passed), Some(true));
    assert!(action.rolled_back.is_none());

    // The model saw the system prompt, the task, and each tool result in turn.
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].messages[0].role, Role::System);
    assert_eq!(requests[0].messages[1].content, "web is slow");
    assert_eq!(requests[0].tools.len(), 2);
    let seen = tool_messages(&model, 2);
    assert_eq!(seen[0].content, "web: 1/1 ready, overloaded");
    assert!(
        seen[1]
            .content
            .starts_with("scaled shop/web from 1 to 3 replicas")
    );
    assert!(seen[1].content.contains("verification: all replicas ready"));
    assert!(!seen[1].is_error);

    // The report is JSON and reads back the same.
    let json = serde_json::to_string(&report).unwrap();
    let back: sre_core::RunReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["outcome"]["status"], "completed");
    assert_eq!(v["actions"][0]["decision"]["decision"], "approved");
}

#[tokio::test]
async fn denial_reaches_the_model_and_nothing_is_called() {
    let model = Arc::new(ScriptedProvider::new([
        tool_turn(vec![scale_call("w1", 3)]),
        answer("I would have scaled shop/web to 3; it was denied."),
    ]));
    let scale = ScaleTool::default();
    let agent = Agent::builder(Arc::clone(&model))
        .tool(scale.clone())
        .policy(Rules::new(Callback::new(|_| {
            Decision::deny("bob", "change freeze")
        })))
        .build()
        .unwrap();
    let report = agent.run("web is slow").await;
    assert_eq!(report.outcome, Outcome::Completed);
    assert!(report.any_denied());
    assert_eq!(report.actions[0].status, ActionStatus::Denied);
    assert_eq!(
        scale.state(),
        ScaleTool::default().state(),
        "nothing changed"
    );
    let seen = tool_messages(&model, 1);
    assert!(seen[0].is_error);
    assert!(
        seen[0]
            .content
            .starts_with("denied by bob: change freeze. Nothing was changed."),
        "{}",
        seen[0].content
    );
    assert_eq!(report.applied().count(), 0);
}

#[tokio::test]
async fn read_only_blocks_every_write_and_is_the_default() {
    for explicit in [true, false] {
        let model = ScriptedProvider::new([
            tool_turn(vec![scale_call("w1", 3), scale_call("w2", 5)]),
            answer("could not change anything"),
        ]);
        let scale = ScaleTool::default();
        let mut builder = Agent::builder(model).tool(scale.clone());
        if explicit {
            builder = builder.policy(ReadOnly);
        }
        let report = builder.build().unwrap().run("scale web").await;
        assert_eq!(report.actions.len(), 2);
        for a in &report.actions {
            assert_eq!(a.status, ActionStatus::Denied);
            assert_eq!(a.decision.as_ref().unwrap().by(), "policy:read-only");
        }
        assert_eq!(scale.state().writes, 0);
    }
}

#[tokio::test]
async fn max_steps_ends_the_run() {
    let model = ScriptedProvider::new((0..10).map(|i| {
        tool_turn(vec![call(
            &format!("c{i}"),
            "echo",
            json!({"text": format!("{i}")}),
        )])
    }));
    let agent = Agent::builder(model)
        .tool(EchoTool::default())
        .max_steps(3)
        .build()
        .unwrap();
    let report = agent.run("loop").await;
    assert_eq!(report.outcome, Outcome::MaxSteps);
    assert_eq!(report.steps, 3);
    assert!(report.answer.is_none());
}

#[tokio::test]
async fn token_budget_ends_the_run_before_more_tools_run() {
    let model = ScriptedProvider::new([
        tool_turn(vec![call("c1", "echo", json!({"text": "a"}))]),
        tool_turn(vec![call("c2", "echo", json!({"text": "b"}))]),
        answer("done"),
    ]);
    let echo = EchoTool::default();
    let agent = Agent::builder(model)
        .tool(echo.clone())
        .max_total_tokens(20)
        .build()
        .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.outcome, Outcome::TokenBudget);
    assert_eq!(report.usage.total(), 30);
    assert_eq!(echo.calls(), 1, "the second turn's call must not run");
}

struct SlowTool {
    spec: ToolSpec,
    delay: Duration,
    started: Arc<AtomicUsize>,
}

impl SlowTool {
    fn new(name: &str, delay: Duration) -> Self {
        Self {
            spec: spec_for::<sre_core::testing::EchoArgs>(name, "slow"),
            delay,
            started: Arc::new(AtomicUsize::new(0)),
        }
    }
}

#[async_trait]
impl Tool for SlowTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn call(&self, _: &Value, _: &ToolContext) -> Result<ToolOutput, ToolError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        Ok(ToolOutput::text("slow result"))
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_ends_the_run() {
    let model = ScriptedProvider::new([
        tool_turn(vec![call("c1", "slow", json!({"text": "a"}))]),
        answer("never reached"),
    ]);
    let agent = Agent::builder(model)
        .tool(SlowTool::new("slow", Duration::from_secs(600)))
        .deadline(Duration::from_secs(30))
        .build()
        .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.outcome, Outcome::Deadline);
    assert_eq!(report.steps, 1);
    // The transcript still answers every call.
    let last = report.transcript.last().unwrap();
    assert_eq!(last.role, Role::Tool);
    assert!(last.is_error);
}

#[tokio::test(start_paused = true)]
async fn reads_run_concurrently() {
    let a = SlowTool::new("slow_a", Duration::from_secs(10));
    let b = SlowTool::new("slow_b", Duration::from_secs(10));
    let model = ScriptedProvider::new([
        tool_turn(vec![
            call("c1", "slow_a", json!({"text": "a"})),
            call("c2", "slow_b", json!({"text": "b"})),
        ]),
        answer("done"),
    ]);
    let agent = Agent::builder(model)
        .tool(a)
        .tool(b)
        .deadline(Duration::from_secs(15))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let report = agent.run("t").await;
    assert_eq!(
        report.outcome,
        Outcome::Completed,
        "two 10s reads fit in 15s only concurrently"
    );
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn a_step_runs_at_most_max_calls_per_step_and_refuses_the_rest() {
    let n = sre_core::agent::MAX_CALLS_PER_STEP + 36;
    let calls = (0..n)
        .map(|i| {
            call(
                &format!("c{i}"),
                "echo",
                json!({"text": format!("read {i}")}),
            )
        })
        .collect();
    let model = Arc::new(ScriptedProvider::new([tool_turn(calls), answer("done")]));
    let echo = EchoTool::default();
    let agent = Agent::builder(Arc::clone(&model))
        .tool(echo.clone())
        .build()
        .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(echo.calls(), sre_core::agent::MAX_CALLS_PER_STEP);
    // Every call still gets its result, in order; the ones over the limit are errors that say so.
    let seen = tool_messages(&model, 1);
    assert_eq!(seen.len(), n);
    assert!(
        seen[..sre_core::agent::MAX_CALLS_PER_STEP]
            .iter()
            .all(|m| !m.is_error)
    );
    for m in &seen[sre_core::agent::MAX_CALLS_PER_STEP..] {
        assert!(
            m.is_error && m.content.starts_with("too many tool calls in one step"),
            "{m:?}"
        );
    }
}

#[tokio::test]
async fn unknown_tool_goes_back_to_the_model() {
    let model = Arc::new(ScriptedProvider::new([
        tool_turn(vec![call(
            "c1",
            "k8s_delete_namespace",
            json!({"namespace": "prod"}),
        )]),
        answer("no such tool; stopping"),
    ]));
    let agent = Agent::builder(Arc::clone(&model))
        .tool(EchoTool::default())
        .build()
        .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.outcome, Outcome::Completed);
    let seen = tool_messages(&model, 1);
    assert!(seen[0].is_error);
    assert_eq!(
        seen[0].content,
        "unknown tool \"k8s_delete_namespace\"; available tools: echo"
    );
}

#[tokio::test]
async fn invalid_arguments_go_back_to_the_model_and_nothing_is_called() {
    let cases = [
        (
            json!({"namespace": "shop", "deployment": "web", "replicas": "three"}),
            "/replicas",
        ),
        (
            json!({"namespace": "shop", "replicas": 3}),
            "\"deployment\" is a required property",
        ),
        (
            json!({"namespace": "shop", "deployment": "web", "replicas": 3, "force": true}),
            "'force' was unexpected",
        ),
    ];
    for (args, expected) in cases {
        let model = Arc::new(ScriptedProvider::new([
            tool_turn(vec![call("c1", "scale", args.clone())]),
            answer("fixed my mistake"),
        ]));
        let scale = ScaleTool::default();
        let agent = Agent::builder(Arc::clone(&model))
            .tool(scale.clone())
            .policy(AutoApprove)
            .build()
            .unwrap();
        let report = agent.run("t").await;
        assert_eq!(report.outcome, Outcome::Completed);
        assert!(
            report.actions.is_empty(),
            "no preview, no approval for {args}"
        );
        assert_eq!(scale.state().writes, 0);
        let seen = tool_messages(&model, 1);
        assert!(seen[0].is_error);
        assert!(
            seen[0]
                .content
                .starts_with("invalid arguments for tool scale: "),
            "{}",
            seen[0].content
        );
        assert!(
            seen[0].content.contains(expected),
            "{} lacks {expected}",
            seen[0].content
        );
    }
}

#[tokio::test]
async fn repeated_identical_calls_are_refused_then_stopped() {
    let same = || tool_turn(vec![call("c", "echo", json!({"text": "x"}))]);
    let model = Arc::new(ScriptedProvider::new([
        same(),
        same(),
        same(),
        answer("never"),
    ]));
    let echo = EchoTool::default();
    let agent = Agent::builder(Arc::clone(&model))
        .tool(echo.clone())
        .build()
        .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.outcome, Outcome::RepeatedCalls);
    assert_eq!(echo.calls(), 1, "a repeat is never run");
    let seen = tool_messages(&model, 2);
    assert!(seen[1].is_error && seen[1].content.starts_with("repeated call: echo"));
    assert_eq!(report.steps, 3);
}

#[tokio::test]
async fn the_same_read_after_an_applied_write_is_not_a_repeat() {
    let status = || call("s", "echo", json!({"text": "rollout status"}));
    let model = ScriptedProvider::new([
        tool_turn(vec![status()]),
        tool_turn(vec![scale_call("w1", 2)]),
        tool_turn(vec![status()]),
        answer("done"),
    ]);
    let echo = EchoTool::default();
    let agent = Agent::builder(model)
        .tool(echo.clone())
        .tool(ScaleTool::default())
        .policy(AutoApprove)
        .build()
        .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(echo.calls(), 2);
}

#[tokio::test]
async fn provider_error_mid_run_ends_with_a_typed_outcome_and_partial_report() {
    let model = ScriptedProvider::with_results([
        Ok(tool_turn(vec![scale_call("w1", 2)])),
        Err(LlmError::RateLimited {
            provider: "groq".into(),
            retry_after: None,
        }),
    ]);
    let agent = Agent::builder(model)
        .tool(ScaleTool::default())
        .policy(AutoApprove)
        .build()
        .unwrap();
    let report = agent.run("t").await;
    assert_eq!(
        report.outcome,
        Outcome::ProviderError {
            kind: "rate_limited".into(),
            message: "rate limited by groq".into()
        }
    );
    assert_eq!(
        report.actions.len(),
        1,
        "the write done before the failure is reported"
    );
    assert_eq!(report.actions[0].status, ActionStatus::Applied);
}

#[tokio::test]
async fn a_target_changed_after_approval_is_refused() {
    let scale = ScaleTool::default();
    let other_actor = scale.clone();
    let model = Arc::new(ScriptedProvider::new([
        tool_turn(vec![scale_call("w1", 3)]),
        answer("the target moved; stopping"),
    ]));
    let agent = Agent::builder(Arc::clone(&model))
        .tool(scale.clone())
        .policy(Rules::new(Callback::new(move |_| {
            // Someone changes the deployment while the human is deciding.
            other_actor.bump();
            Decision::approve("alice")
        })))
        .build()
        .unwrap();
    let report = agent.run("t").await;
    let action = &report.actions[0];
    assert_eq!(action.status, ActionStatus::Refused);
    assert!(
        action
            .result
            .contains("the target changed since it was approved"),
        "{}",
        action.result
    );
    assert!(
        action
            .result
            .contains("approved shop/web@v1, now shop/web@v2"),
        "{}",
        action.result
    );
    assert_eq!(scale.state().replicas, 1);
    assert_eq!(scale.state().writes, 0);
    assert!(tool_messages(&model, 1)[0].is_error);
}

#[tokio::test]
async fn an_expired_approval_is_refused() {
    let scale = ScaleTool::default();
    let agent = Agent::builder(ScriptedProvider::new([
        tool_turn(vec![scale_call("w1", 3)]),
        answer("expired"),
    ]))
    .tool(scale.clone())
    .policy(AutoApprove)
    .approval_ttl(Duration::ZERO)
    .build()
    .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.actions[0].status, ActionStatus::Refused);
    assert!(
        report.actions[0].result.contains("expired"),
        "{}",
        report.actions[0].result
    );
    assert_eq!(scale.state().writes, 0);
}

#[tokio::test]
async fn failed_verification_rolls_back_and_the_report_says_so() {
    let scale = ScaleTool::default().failing_verification();
    let model = Arc::new(ScriptedProvider::new([
        tool_turn(vec![scale_call("w1", 3)]),
        answer("rolled back"),
    ]));
    let agent = Agent::builder(Arc::clone(&model))
        .tool(scale.clone())
        .policy(AutoApprove)
        .build()
        .unwrap();
    let report = agent.run("t").await;
    let action = &report.actions[0];
    assert_eq!(action.status, ActionStatus::Applied);
    assert_eq!(action.verification.as_ref().map(|v| v.passed), Some(false));
    let rb = action.rolled_back.as_ref().unwrap();
    assert!(rb.ok);
    assert_eq!(rb.detail, "restored 1 replicas");
    assert_eq!(scale.state().replicas, 1);
    assert_eq!(report.applied().count(), 0);
    let seen = tool_messages(&model, 1);
    assert!(seen[0].is_error);
    assert!(
        seen[0].content.contains("automatic rollback done"),
        "{}",
        seen[0].content
    );
}

#[tokio::test]
async fn rules_limit_writes_per_run() {
    let scale = ScaleTool::default();
    let agent = Agent::builder(ScriptedProvider::new([
        tool_turn(vec![scale_call("w1", 2)]),
        tool_turn(vec![scale_call("w2", 4)]),
        answer("one write only"),
    ]))
    .tool(scale.clone())
    .policy(approve_all().max_writes_per_run(1))
    .build()
    .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.actions[0].status, ActionStatus::Applied);
    assert_eq!(report.actions[1].status, ActionStatus::Denied);
    assert_eq!(scale.state().replicas, 2);
}

struct LeakyTool(ToolSpec);

#[async_trait]
impl Tool for LeakyTool {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    async fn call(&self, _: &Value, _: &ToolContext) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::text(
            "env: DB_PASSWORD=hunter2 AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nlog: connecting to postgres://app:s3cret@db:5432",
        ))
    }
}

#[tokio::test]
async fn tool_results_are_redacted_before_the_model_and_observers_see_them() {
    let model = Arc::new(ScriptedProvider::new([
        tool_turn(vec![call("c1", "leaky", json!({"text": "x"}))]),
        answer("done"),
    ]));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let agent = Agent::builder(Arc::clone(&model))
        .tool(LeakyTool(spec_for::<sre_core::testing::EchoArgs>(
            "leaky", "leaks",
        )))
        .observer(FnObserver(move |e: &Event| {
            sink.lock().unwrap().push(serde_json::to_string(e).unwrap());
        }))
        .build()
        .unwrap();
    let report = agent.run("t").await;
    let seen = &tool_messages(&model, 1)[0].content;
    let all_events = events.lock().unwrap().join("\n");
    let report_json = serde_json::to_string(&report).unwrap();
    for secret in ["hunter2", "AKIAIOSFODNN7EXAMPLE", "s3cret"] {
        assert!(!seen.contains(secret), "model saw {secret}: {seen}");
        assert!(!all_events.contains(secret), "an event carried {secret}");
        assert!(!report_json.contains(secret), "the report carried {secret}");
    }
    assert!(seen.contains("postgres://app:[REDACTED]@db:5432"), "{seen}");
}

#[tokio::test]
async fn long_tool_output_is_cut() {
    let long = "x".repeat(10_000);
    let model = Arc::new(ScriptedProvider::new([
        tool_turn(vec![call("c1", "echo", json!({"text": long}))]),
        answer("done"),
    ]));
    let agent = Agent::builder(Arc::clone(&model))
        .tool(EchoTool::default())
        .max_tool_output_bytes(100)
        .build()
        .unwrap();
    agent.run("t").await;
    let seen = &tool_messages(&model, 1)[0].content;
    assert!(seen.starts_with(&"x".repeat(100)));
    assert!(seen.ends_with("[truncated 9900 bytes]"), "{seen}");
}

#[tokio::test]
async fn a_panicking_tool_becomes_a_tool_error() {
    let mut tool = MockTool::new();
    tool.expect_spec()
        .return_const(spec_for::<sre_core::testing::EchoArgs>("boom", "panics"));
    tool.expect_effect().return_const(Effect::Read);
    tool.expect_call().returning(|_, _| panic!("bug in tool"));
    let model = Arc::new(ScriptedProvider::new([
        tool_turn(vec![call("c1", "boom", json!({"text": "x"}))]),
        answer("the tool is broken"),
    ]));
    let agent = Agent::builder(Arc::clone(&model))
        .tool(tool)
        .build()
        .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(
        tool_messages(&model, 1)[0].content,
        "tool boom failed: the tool panicked"
    );
}

#[tokio::test]
async fn a_failed_preview_asks_nobody_and_changes_nothing() {
    let mut tool = MockTool::new();
    tool.expect_spec()
        .return_const(spec_for::<sre_core::testing::EchoArgs>("patch", "write"));
    tool.expect_effect().return_const(Effect::Write);
    tool.expect_preview()
        .returning(|_, _| Err(ToolError::Forbidden("cannot patch deployments".into())));
    tool.expect_call().never();
    let mut policy = MockPolicy::new();
    policy.expect_decide().never();
    let agent = Agent::builder(ScriptedProvider::new([
        tool_turn(vec![call("c1", "patch", json!({"text": "x"}))]),
        answer("forbidden"),
    ]))
    .tool(tool)
    .policy(policy)
    .build()
    .unwrap();
    let report = agent.run("t").await;
    assert_eq!(report.actions[0].status, ActionStatus::Failed);
    assert!(
        report.actions[0]
            .result
            .contains("forbidden: cannot patch deployments")
    );
}

#[tokio::test]
async fn the_policy_receives_the_preview_and_the_incident() {
    let mut policy = MockPolicy::new();
    policy
        .expect_decide()
        .withf(|r| {
            r.tool == "scale"
                && r.preview.fingerprint == "shop/web@v1"
                && r.incident == "web is slow"
                && r.namespace() == Some("shop")
                && r.writes_so_far == 0
                && r.rollback_on_failure
        })
        .times(1)
        .returning(|_| Decision::approve("mock"));
    let mut provider = MockProvider::new();
    let mut turn = 0;
    provider.expect_name().return_const("mock/model".to_owned());
    provider.expect_chat().times(2).returning(move |_| {
        turn += 1;
        Ok(if turn == 1 {
            tool_turn(vec![scale_call("w1", 2)])
        } else {
            ChatResponse::text("done", Usage::default())
        })
    });
    let report = Agent::builder(provider)
        .tool(ScaleTool::default())
        .policy(policy)
        .build()
        .unwrap()
        .run("web is slow")
        .await;
    assert_eq!(report.provider, "mock/model");
    assert_eq!(report.actions[0].status, ActionStatus::Applied);
}

#[tokio::test]
async fn events_follow_the_run_in_order() {
    let names = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&names);
    let agent = Agent::builder(ScriptedProvider::new([
        tool_turn(vec![scale_call("w1", 2)]),
        answer("done"),
    ]))
    .tool(ScaleTool::default())
    .policy(AutoApprove)
    .observer(FnObserver(move |e: &Event| {
        let v = serde_json::to_value(e).unwrap();
        sink.lock()
            .unwrap()
            .push(v["type"].as_str().unwrap().to_owned());
    }))
    .build()
    .unwrap();
    agent.run("t").await;
    assert_eq!(
        *names.lock().unwrap(),
        [
            "run_started",
            "step_started",
            "model_responded",
            "approval_requested",
            "approval_decided",
            "tool_started",
            "tool_finished",
            "verified",
            "step_started",
            "model_responded",
            "run_finished"
        ]
    );
}

#[test]
fn builder_rejects_duplicate_tools_and_zero_steps() {
    let err = Agent::builder(ScriptedProvider::new([]))
        .tool(EchoTool::default())
        .tool(EchoTool::default())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot register tool: duplicate tool name \"echo\""
    );
    let err = Agent::builder(ScriptedProvider::new([]))
        .max_steps(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_steps"));
}

/// A small seeded generator (`SplitMix64`): reproducible random runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Property: over random runs — random turns of reads, writes (some malformed, some repeated)
/// and answers, a policy that approves or denies at random and sometimes changes the target
/// while it decides — no write is ever applied without an approval of that very call on a
/// target that had not changed since it was previewed. The tool's own count of applied writes
/// is the ground truth, not the report.
#[tokio::test]
async fn no_sequence_of_model_turns_and_decisions_applies_a_write_without_a_grant() {
    let (mut total_applied, mut total_refused, mut total_denied) = (0, 0, 0);
    for seed in 0..200u64 {
        let mut rng = Rng(seed);
        let mut turns = Vec::new();
        for t in 0..=rng.below(6) {
            let mut calls = Vec::new();
            for c in 0..=rng.below(4) {
                let id = format!("s{seed}-t{t}-c{c}");
                calls.push(match rng.below(5) {
                    0 => call(&id, "echo", json!({"text": "read"})),
                    1 => call(
                        &id,
                        "scale",
                        json!({"namespace": "shop", "deployment": "web", "replicas": "x"}),
                    ),
                    2 => call(
                        &id,
                        "scale",
                        json!({"namespace": "shop", "deployment": "web", "replicas": 3}),
                    ),
                    _ => scale_call(&id, u32::try_from(rng.below(5)).unwrap_or(0)),
                });
            }
            turns.push(tool_turn(calls));
        }
        turns.push(answer("done"));
        let scale = ScaleTool::default();
        let racer = scale.clone();
        let decisions = Arc::new(Mutex::new(Rng(seed ^ 0xdead_beef)));
        let approved = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&approved);
        let policy = Callback::new(move |req| {
            let mut r = decisions.lock().unwrap();
            if r.below(4) == 0 {
                // Another actor changes the target while the approver looks at it.
                racer.bump();
            }
            if r.below(3) == 0 {
                Decision::deny("alice", "no")
            } else {
                seen.lock().unwrap().push(req.call_id.clone());
                Decision::approve("alice")
            }
        });
        let agent = Agent::builder(ScriptedProvider::new(turns))
            .tool(EchoTool::default())
            .tool(scale.clone())
            .policy(Rules::new(policy).max_writes_per_run(usize::MAX))
            .max_steps(10)
            .build()
            .unwrap();
        let report = agent.run("t").await;
        let applied: Vec<_> = report
            .actions
            .iter()
            .filter(|a| a.status == ActionStatus::Applied)
            .collect();
        let approved = approved.lock().unwrap().clone();
        // Every applied write was approved, for that very call.
        for a in &applied {
            assert!(
                approved.contains(&a.call_id),
                "seed {seed}: {} applied without an approval",
                a.call_id
            );
            assert_eq!(a.decision, Some(Decision::approve("alice")), "seed {seed}");
        }
        // The tool saw exactly the applied writes (and the rollbacks of failed verifications,
        // which this tool never needs): nothing else reached it.
        assert_eq!(
            scale.state().writes,
            applied.len(),
            "seed {seed}: {report:#?}"
        );
        total_applied += applied.len();
        total_refused += report
            .actions
            .iter()
            .filter(|a| a.status == ActionStatus::Refused)
            .count();
        total_denied += report
            .actions
            .iter()
            .filter(|a| a.status == ActionStatus::Denied)
            .count();
    }
    // The runs reached every outcome: the property is not vacuous.
    assert!(
        total_applied > 20 && total_refused > 5 && total_denied > 20,
        "applied {total_applied}, refused {total_refused}, denied {total_denied}"
    );
}
