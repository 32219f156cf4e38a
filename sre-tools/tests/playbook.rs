//! The playbook brain runs every demo scenario's runbook end to end on the simulator, through the
//! real agent loop and approval gate.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use sre_core::{ActionStatus, Agent, AutoApprove, Outcome, ReadOnly, RunReport};
use sre_tools::k8s::Limits;
use sre_tools::playbook::Playbook;
use sre_tools::sim::Simulator;

fn limits() -> Limits {
    Limits {
        poll_interval: Duration::from_millis(10),
        rollout_timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

async fn run(scenario: &str, approve: bool) -> (Simulator, RunReport) {
    let sim = Simulator::start_named(scenario).await.unwrap();
    let brain = Playbook::new(sim.scenario().all_namespaces());
    let mut b = Agent::builder(brain)
        .tools(sim.tools(limits()).unwrap())
        .max_steps(15);
    b = if approve {
        b.policy(AutoApprove)
    } else {
        b.policy(ReadOnly)
    };
    let report = b.build().unwrap().run(&sim.scenario().task.clone()).await;
    (sim, report)
}

fn image(sim: &Simulator, ns: &str, dep: &str) -> String {
    sim.object("deployments", ns, dep).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned()
}

fn tools_called(r: &RunReport) -> Vec<String> {
    r.transcript
        .iter()
        .flat_map(|m| m.tool_calls.iter().map(|c| c.name.clone()))
        .collect()
}

#[tokio::test]
async fn bad_release_is_rolled_back() {
    let (sim, r) = run("bad-release", true).await;
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(
        tools_called(&r),
        [
            "k8s_find_unhealthy",
            "k8s_pod_logs",
            "k8s_events",
            "k8s_get_deployment",
            "k8s_rollback"
        ]
    );
    assert_eq!(r.actions.len(), 1);
    assert_eq!(r.actions[0].status, ActionStatus::Applied);
    assert!(r.actions[0].verification.as_ref().unwrap().passed);
    assert_eq!(image(&sim, "shop", "web"), "ghcr.io/acme/shop-web:1.4.2");
    let answer = r.answer.clone().unwrap();
    assert!(
        answer.contains("DATABASE_URL"),
        "the evidence is in the report: {answer}"
    );
    assert!(
        answer.contains(
            "roll back deployment shop/web to revision 1 (web=ghcr.io/acme/shop-web:1.4.2)"
        ),
        "{answer}"
    );
    assert!(answer.contains("Needs a human: nothing."), "{answer}");
}

#[tokio::test]
async fn a_denied_rollback_changes_nothing_and_says_what_it_would_have_done() {
    let (sim, r) = run("bad-release", false).await;
    assert_eq!(r.outcome, Outcome::Completed);
    assert!(r.any_denied());
    assert_eq!(image(&sim, "shop", "web"), "ghcr.io/acme/shop-web:1.5.0");
    let answer = r.answer.clone().unwrap();
    assert!(
        answer.contains("Stopped: I would have applied: roll back deployment shop/web"),
        "{answer}"
    );
    assert_eq!(
        tools_called(&r)
            .iter()
            .filter(|t| *t == "k8s_rollback")
            .count(),
        1,
        "never retries a denied write"
    );
}

#[tokio::test]
async fn image_typo_is_rolled_back_to_the_image_that_pulled() {
    let (sim, r) = run("image-typo", true).await;
    assert_eq!(
        tools_called(&r),
        [
            "k8s_find_unhealthy",
            "k8s_events",
            "k8s_get_deployment",
            "k8s_rollback"
        ]
    );
    assert_eq!(
        image(&sim, "shop", "checkout"),
        "ghcr.io/acme/checkout:2.3.0"
    );
    let answer = r.answer.clone().unwrap();
    assert!(
        answer.contains("image ghcr.io/acme/checkout:2.3.1O cannot be pulled"),
        "{answer}"
    );
}

#[tokio::test]
async fn critical_cves_are_patched_to_the_recommended_image() {
    let (sim, r) = run("critical-cve", true).await;
    assert_eq!(
        tools_called(&r),
        [
            "k8s_find_unhealthy",
            "trivy_vulnerability_reports",
            "k8s_get_deployment",
            "image_recommend",
            "k8s_patch_image"
        ]
    );
    // Pinned to the digest that was scanned.
    let digest = sim.catalogue().digest("nginx:1.25.5-alpine").unwrap();
    assert_eq!(
        image(&sim, "shop", "frontend"),
        format!("nginx:1.25.5-alpine@{digest}")
    );
    assert!(r.actions[0].verification.as_ref().unwrap().passed);
    let answer = r.answer.clone().unwrap();
    assert!(
        answer.contains(
            "patch shop/frontend container nginx image nginx:1.25.3-alpine -> nginx:1.25.5-alpine"
        ),
        "{answer}"
    );
}

#[tokio::test]
async fn oom_and_unschedulable_are_reported_not_changed() {
    let (sim, r) = run("oom-worker", true).await;
    assert!(r.actions.is_empty());
    let answer = r.answer.clone().unwrap();
    assert!(
        answer.contains("OOMKilled (exit 137) at its memory limit 128Mi"),
        "{answer}"
    );
    assert!(answer.contains("from 128Mi to about 256Mi"), "{answer}");
    assert_eq!(image(&sim, "jobs", "worker"), "ghcr.io/acme/worker:3.1.0");

    let (_sim, r) = run("unschedulable", true).await;
    assert!(r.actions.is_empty());
    let answer = r.answer.clone().unwrap();
    assert!(
        answer
            .contains("the scheduler says: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_healthy_cluster_is_reported_healthy() {
    let (_sim, r) = run("healthy", true).await;
    assert_eq!(tools_called(&r), ["k8s_find_unhealthy"]);
    assert!(r.answer.unwrap().starts_with("Status: healthy: 4 pods"));
}

#[tokio::test]
async fn the_playbook_obeys_budgets() {
    let sim = Simulator::start_named("bad-release").await.unwrap();
    let brain = Playbook::new(["shop"]);
    let agent = Agent::builder(brain)
        .tools(sim.tools(limits()).unwrap())
        .policy(AutoApprove)
        .max_steps(2)
        .build()
        .unwrap();
    let r = agent.run("fix it").await;
    assert_eq!(r.outcome, Outcome::MaxSteps);
    assert_eq!(image(&sim, "shop", "web"), "ghcr.io/acme/shop-web:1.5.0");
}

mod support;

#[tokio::test]
async fn on_the_real_api_server_the_playbook_rolls_back_as_the_limited_user() {
    let Some(b) =
        support::Backend::real(sre_tools::sim::Scenario::builtin("bad-release").unwrap()).await
    else {
        return;
    };
    let ns = b.ns("shop");
    let limits = Limits {
        poll_interval: Duration::from_millis(200),
        rollout_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let k8s = sre_tools::k8s::K8s::with_limits(
        b.agent(),
        sre_tools::k8s::Scope::namespaces([ns.clone()]),
        limits,
    );
    let agent = Agent::builder(Playbook::new([ns.clone()]))
        .tools(k8s.tools())
        .policy(AutoApprove)
        .max_steps(10)
        .build()
        .unwrap();
    let r = agent
        .run("The shop/web rollout is failing. Find out why and fix it.")
        .await;
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(
        tools_called(&r),
        [
            "k8s_find_unhealthy",
            "k8s_pod_logs",
            "k8s_events",
            "k8s_get_deployment",
            "k8s_rollback"
        ]
    );
    let a = &r.actions[0];
    assert_eq!(a.status, ActionStatus::Applied, "{a:#?}");
    assert!(a.verification.as_ref().unwrap().passed, "{a:#?}");
    let answer = r.answer.clone().unwrap();
    assert!(answer.contains("DATABASE_URL"), "{answer}");
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(b.admin(), &ns);
    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("ghcr.io/acme/shop-web:1.4.2")
    );
    b.shutdown().await;
}

/// A tool whose text for the model is rendered differently (here: withheld entirely), with the
/// same typed data: the playbook must not notice.
struct Reworded(std::sync::Arc<dyn sre_core::Tool>);

#[async_trait::async_trait]
impl sre_core::Tool for Reworded {
    fn spec(&self) -> &sre_core::ToolSpec {
        self.0.spec()
    }
    fn effect(&self) -> sre_core::Effect {
        self.0.effect()
    }
    async fn call(
        &self,
        args: &serde_json::Value,
        ctx: &sre_core::ToolContext,
    ) -> Result<sre_core::ToolOutput, sre_core::ToolError> {
        let out = self.0.call(args, ctx).await?;
        // Logs are evidence quoted as they are; everything else is withheld.
        if self.0.spec().name == "k8s_pod_logs" {
            return Ok(out);
        }
        Ok(sre_core::ToolOutput {
            content: format!("[{} output, worded for a model]", self.0.spec().name),
            data: out.data,
        })
    }
    async fn preview(
        &self,
        args: &serde_json::Value,
        ctx: &sre_core::ToolContext,
    ) -> Result<sre_core::Preview, sre_core::ToolError> {
        self.0.preview(args, ctx).await
    }
    async fn fingerprint(
        &self,
        args: &serde_json::Value,
        ctx: &sre_core::ToolContext,
    ) -> Result<String, sre_core::ToolError> {
        self.0.fingerprint(args, ctx).await
    }
    async fn verify(
        &self,
        args: &serde_json::Value,
        output: &sre_core::ToolOutput,
        ctx: &sre_core::ToolContext,
    ) -> Option<sre_core::Verification> {
        self.0.verify(args, output, ctx).await
    }
    async fn rollback(
        &self,
        args: &serde_json::Value,
        output: &sre_core::ToolOutput,
        ctx: &sre_core::ToolContext,
    ) -> Result<sre_core::ToolOutput, sre_core::ToolError> {
        self.0.rollback(args, output, ctx).await
    }
}

#[tokio::test]
async fn the_playbook_reads_typed_data_not_the_text() {
    // Regression: the playbook parsed the prose rendered for the model; making that text leaner
    // would have blinded it. With every text reworded, each scenario ends the same way.
    for (name, _) in sre_tools::sim::scenario::BUILTIN {
        if *name == "large-cluster" {
            continue;
        }
        let (sim, plain) = run(name, true).await;
        let changed_plain: Vec<_> = plain
            .actions
            .iter()
            .map(|a| (a.tool.clone(), a.status))
            .collect();
        sim.shutdown().await;

        let sim = Simulator::start_named(name).await.unwrap();
        let tools = sim
            .tools(limits())
            .unwrap()
            .into_iter()
            .map(|t| std::sync::Arc::new(Reworded(t)) as std::sync::Arc<dyn sre_core::Tool>);
        let report = Agent::builder(Playbook::new(sim.scenario().all_namespaces()))
            .tools(tools)
            .policy(AutoApprove)
            .max_steps(15)
            .build()
            .unwrap()
            .run(&sim.scenario().task.clone())
            .await;
        let changed: Vec<_> = report
            .actions
            .iter()
            .map(|a| (a.tool.clone(), a.status))
            .collect();
        assert_eq!(changed, changed_plain, "{name}: {:?}", report.answer);
        assert_eq!(
            tools_called(&report),
            tools_called(&plain),
            "{name}: the same runbook"
        );
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn the_playbook_path_costs_under_6000_input_tokens_per_incident() {
    // Issue 17: what a model following the playbook's path is sent (every request whole: tool
    // specs, system prompt, transcript), metered by the scorecard on the OpenAI-compatible body.
    let options = sre_tools::eval::Options::default();
    for scenario in ["bad-release", "critical-cve"] {
        let row = sre_tools::eval::run_case(scenario, sre_tools::eval::Brain::Playbook, &options)
            .await
            .unwrap();
        assert_eq!(row.verdict, sre_tools::eval::Verdict::Resolved, "{row:?}");
        assert_eq!(row.executed, 0, "{row:?}");
        assert_eq!(row.steps, 4, "{scenario}: {row:?}");
        assert!(
            row.input_tokens < 6_000,
            "{scenario}: {} input tokens",
            row.input_tokens
        );
    }
}
