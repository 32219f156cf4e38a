//! Durable runs: a write that needs a human parks the run as plain data; the run resumes —
//! in another agent, after a JSON round trip — with the decision. The gate re-plans on resume:
//! a changed target asks again, a late or missing decision denies, a tampered parked run cannot
//! apply anything that was not approved.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail loudly"
)]
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sre_core::testing::{EchoTool, ScaleTool, ScriptedProvider, answer, call, tool_turn};
use sre_core::{
    ActionStatus, Agent, Answer, Decision, Message, Outcome, Park, ParkReason, ParkedRun, Role,
    Rules, Stop, agent::RunEnd,
};

fn scale_call(id: &str, deployment: &str, replicas: u32) -> sre_core::ToolCall {
    call(
        id,
        "scale",
        json!({"namespace": "shop", "deployment": deployment, "replicas": replicas}),
    )
}

fn agent(model: Vec<sre_core::ChatResponse>, tool: &ScaleTool, ttl: Duration) -> Agent {
    Agent::builder(ScriptedProvider::new(model))
        .tool(EchoTool::default())
        .tool(tool.clone())
        .policy(Rules::new(Park))
        .approval_ttl(ttl)
        .build()
        .unwrap()
}

fn parked(end: RunEnd) -> ParkedRun {
    match end {
        RunEnd::Parked(p) => {
            // What a store keeps: JSON, read back.
            let text = serde_json::to_string(&p).unwrap();
            serde_json::from_str(&text).unwrap()
        }
        RunEnd::Finished(r) => panic!("expected a parked run, got {:?}", r.outcome),
    }
}

fn finished(end: RunEnd) -> sre_core::RunReport {
    match end {
        RunEnd::Finished(r) => *r,
        RunEnd::Parked(p) => panic!("expected a finished run, it parked: {:?}", p.approval),
    }
}

const HOUR: Duration = Duration::from_secs(3600);

async fn park_one(tool: &ScaleTool) -> ParkedRun {
    let first = agent(
        vec![tool_turn(vec![
            call("r1", "echo", json!({"text": "web is overloaded"})),
            scale_call("w1", "web", 3),
        ])],
        tool,
        HOUR,
    );
    parked(
        first
            .start(vec![Message::user("web is slow")], &Stop::new())
            .await,
    )
}

#[tokio::test]
async fn a_parked_write_applies_in_another_agent_once_approved() {
    let tool = ScaleTool::default();
    let run = park_one(&tool).await;
    assert_eq!(run.reason, ParkReason::Approval);
    let pending = run.approval.clone().unwrap();
    assert!(pending.id.starts_with("apv-"));
    assert_eq!(pending.request.tool, "scale");
    assert!(pending.request.preview.summary.contains("replicas 1 -> 3"));
    assert_eq!(tool.state().writes, 0, "nothing is applied while parked");
    assert_eq!(run.steps, 1);

    let second = agent(vec![answer("scaled web to 3")], &tool, HOUR);
    let report = finished(
        second
            .resume(
                run,
                Some(Answer::now(Decision::approve("alice"))),
                &Stop::new(),
            )
            .await,
    );
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(tool.state().replicas, 3);
    assert_eq!(tool.state().writes, 1);
    assert_eq!(report.steps, 2, "budgets carry over the park");
    let action = &report.actions[0];
    assert_eq!(action.status, ActionStatus::Applied);
    assert_eq!(action.decision, Some(Decision::approve("alice")));
    // The model got both results of its turn, in its order, before its next call.
    let tools: Vec<&Message> = report
        .transcript
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].tool_call_id.as_deref(), Some("r1"));
    assert_eq!(tools[1].tool_call_id.as_deref(), Some("w1"));
    assert!(tools[1].content.contains("scaled shop/web from 1 to 3"));
}

#[tokio::test]
async fn a_rejected_write_changes_nothing_and_the_model_is_told() {
    let tool = ScaleTool::default();
    let run = park_one(&tool).await;
    let model = vec![answer("left as is")];
    let report = finished(
        agent(model, &tool, HOUR)
            .resume(
                run,
                Some(Answer::now(Decision::deny("bob", "not during the sale"))),
                &Stop::new(),
            )
            .await,
    );
    assert_eq!(tool.state().writes, 0);
    assert_eq!(report.actions[0].status, ActionStatus::Denied);
    let last_tool = report
        .transcript
        .iter()
        .rev()
        .find(|m| m.role == Role::Tool)
        .unwrap();
    assert!(last_tool.is_error);
    assert!(last_tool.content.contains("not during the sale"));
}

#[tokio::test]
async fn a_changed_target_voids_the_approval_and_asks_again() {
    let tool = ScaleTool::default();
    let run = park_one(&tool).await;
    let old = run.approval.clone().unwrap();
    tool.bump(); // someone else changed the deployment meanwhile
    let again = parked(
        agent(vec![], &tool, HOUR)
            .resume(
                run,
                Some(Answer::now(Decision::approve("alice"))),
                &Stop::new(),
            )
            .await,
    );
    assert_eq!(tool.state().writes, 0, "the old approval must not apply");
    let new = again.approval.clone().unwrap();
    assert_ne!(new.id, old.id);
    assert_ne!(new.action, old.action);
    // The new question, approved, applies.
    let report = finished(
        agent(vec![answer("done")], &tool, HOUR)
            .resume(
                again,
                Some(Answer::now(Decision::approve("alice"))),
                &Stop::new(),
            )
            .await,
    );
    assert_eq!(tool.state().replicas, 3);
    assert_eq!(report.actions.len(), 1);
    assert_eq!(report.actions[0].status, ActionStatus::Applied);
}

#[tokio::test]
async fn a_tampered_parked_run_cannot_apply_what_was_not_approved() {
    let tool = ScaleTool::default();
    let mut run = park_one(&tool).await;
    // Someone with write access to the store swaps the arguments of the approved call.
    let turn = run.turn.as_mut().unwrap();
    turn.calls[1].arguments = json!({"namespace": "shop", "deployment": "web", "replicas": 0});
    let end = agent(vec![], &tool, HOUR)
        .resume(
            run,
            Some(Answer::now(Decision::approve("alice"))),
            &Stop::new(),
        )
        .await;
    assert_eq!(tool.state().writes, 0);
    assert_eq!(tool.state().replicas, 1);
    // It is asked again, as the plan it really is.
    let again = parked(end);
    assert!(
        again
            .approval
            .unwrap()
            .request
            .preview
            .summary
            .contains("replicas 1 -> 0")
    );
}

#[tokio::test]
async fn a_decision_after_the_expiry_or_none_at_all_denies() {
    for late in [true, false] {
        let tool = ScaleTool::default();
        let first = agent(
            vec![tool_turn(vec![scale_call("w1", "web", 3)])],
            &tool,
            Duration::from_millis(1),
        );
        let run = parked(
            first
                .start(vec![Message::user("scale")], &Stop::new())
                .await,
        );
        let expires = run.approval.as_ref().unwrap().expires_at_ms;
        let answer_given = late.then(|| Answer {
            decision: Decision::approve("alice"),
            decided_at_ms: expires + 1,
        });
        let report = finished(
            agent(vec![answer("could not scale")], &tool, HOUR)
                .resume(run, answer_given, &Stop::new())
                .await,
        );
        assert_eq!(tool.state().writes, 0, "late={late}");
        let action = &report.actions[0];
        assert_eq!(action.status, ActionStatus::Denied);
        assert_eq!(action.decision.as_ref().unwrap().by(), "gate:expired");
        assert!(action.result.contains("expired"), "{}", action.result);
    }
}

#[tokio::test]
async fn two_writes_in_one_turn_park_one_after_the_other() {
    let tool = ScaleTool::default();
    let first = agent(
        vec![tool_turn(vec![
            scale_call("w1", "web", 3),
            scale_call("w2", "api", 2),
        ])],
        &tool,
        HOUR,
    );
    let run = parked(
        first
            .start(vec![Message::user("scale both")], &Stop::new())
            .await,
    );
    assert_eq!(run.turn.as_ref().unwrap().writes, vec![0, 1]);
    let run = parked(
        agent(vec![], &tool, HOUR)
            .resume(
                run,
                Some(Answer::now(Decision::approve("alice"))),
                &Stop::new(),
            )
            .await,
    );
    assert_eq!(tool.state().writes, 1);
    assert_eq!(run.turn.as_ref().unwrap().writes, vec![1]);
    assert!(
        run.approval
            .as_ref()
            .unwrap()
            .request
            .preview
            .summary
            .contains("shop/api")
    );
    let report = finished(
        agent(vec![answer("both scaled")], &tool, HOUR)
            .resume(
                run,
                Some(Answer::now(Decision::approve("alice"))),
                &Stop::new(),
            )
            .await,
    );
    assert_eq!(tool.state().writes, 2);
    let ids: Vec<_> = report
        .transcript
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.tool_call_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["w1", "w2"]);
}

#[tokio::test]
async fn a_stop_parks_at_the_next_safe_point_and_resume_goes_on() {
    let tool = ScaleTool::default();
    let stop = Stop::new();
    stop.stop();
    let model = Arc::new(ScriptedProvider::new([answer("all good")]));
    let first = Agent::builder_arc(model.clone())
        .tool(tool.clone())
        .build()
        .unwrap();
    let run = parked(first.start(vec![Message::user("check")], &stop).await);
    assert_eq!(run.reason, ParkReason::Shutdown);
    assert!(run.approval.is_none());
    assert_eq!(run.steps, 0);
    assert_eq!(model.calls(), 0);
    let report = finished(first.resume(run, None, &Stop::new()).await);
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(report.answer.as_deref(), Some("all good"));
}

#[tokio::test]
async fn run_reports_a_parked_outcome_and_applies_nothing() {
    let tool = ScaleTool::default();
    let report = agent(
        vec![tool_turn(vec![scale_call("w1", "web", 3)])],
        &tool,
        HOUR,
    )
    .run("scale")
    .await;
    assert!(matches!(
        report.outcome,
        Outcome::Parked { approval: Some(_) }
    ));
    assert_eq!(tool.state().writes, 0);
}

#[tokio::test]
async fn park_without_a_durable_run_denies_when_asked_directly() {
    use sre_core::ApprovalPolicy;
    let tool = ScaleTool::default();
    // A Park approver asked for an answer now (not a ruling) denies.
    let rules = Rules::new(Park);
    let run = park_one(&tool).await;
    let request = run.approval.unwrap().request;
    let decision = rules.decide(&request).await;
    assert!(!decision.is_approved());
}

#[tokio::test]
async fn rules_in_force_at_resume_still_bind_an_approved_write() {
    let tool = ScaleTool::default();
    let run = park_one(&tool).await;
    // The operator tightened the rules (an emergency brake) and restarted while it waited.
    let stricter = Agent::builder(ScriptedProvider::new([answer("not scaled")]))
        .tool(EchoTool::default())
        .tool(tool.clone())
        .policy(Rules::new(Park).max_writes_per_run(0))
        .approval_ttl(HOUR)
        .build()
        .unwrap();
    let report = finished(
        stricter
            .resume(
                run,
                Some(Answer::now(Decision::approve("alice"))),
                &Stop::new(),
            )
            .await,
    );
    assert_eq!(tool.state().writes, 0);
    let action = &report.actions[0];
    assert_eq!(action.status, ActionStatus::Denied);
    assert_eq!(action.decision.as_ref().unwrap().by(), "policy:rules");

    // And a read-only agent never applies a parked approval.
    let run = park_one(&tool).await;
    let read_only = Agent::builder(ScriptedProvider::new([answer("read-only")]))
        .tool(tool.clone())
        .build()
        .unwrap();
    let report = finished(
        read_only
            .resume(
                run,
                Some(Answer::now(Decision::approve("alice"))),
                &Stop::new(),
            )
            .await,
    );
    assert_eq!(tool.state().writes, 0);
    assert_eq!(report.actions[0].status, ActionStatus::Denied);
}

#[tokio::test]
async fn arguments_nested_too_deep_are_dropped_before_they_are_kept_anywhere() {
    let tool = ScaleTool::default();
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let model = vec![
        tool_turn(vec![call("w1", "scale", json!({"namespace": deep}))]),
        answer("gave up"),
    ];
    let report = agent(model, &tool, HOUR).run("scale").await;
    // The run (and so any store or audit line) round-trips through a JSON reader.
    let text = serde_json::to_string(&report).unwrap();
    let back: sre_core::RunReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back.outcome, Outcome::Completed);
    let rejected = report
        .transcript
        .iter()
        .find(|m| m.role == Role::Tool)
        .unwrap();
    assert!(rejected.is_error);
    assert!(
        rejected.content.contains("nested deeper than 32 levels"),
        "{}",
        rejected.content
    );
    assert_eq!(tool.state().writes, 0);
}
