//! Several incidents at once, the normal case: the playbook groups identical ones (one diagnosis,
//! one approved rollback per workload), handles every kind in the same run, stays within a step
//! budget that does not grow with the number of incidents, accounts for every incident when a
//! limit stops it, and gives the same result run after run.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use async_trait::async_trait;
use sre_core::{
    ActionStatus, Agent, ApprovalPolicy, ApprovalRequest, Approver, AutoApprove, Decision, Outcome,
    Rules, RunReport,
};
use sre_tools::k8s::Limits;
use sre_tools::playbook::Playbook;
use sre_tools::sim::Simulator;

fn scenario(name: &str) -> String {
    format!("{}/scenarios/{name}.yaml", env!("CARGO_MANIFEST_DIR"))
}

fn limits() -> Limits {
    Limits {
        poll_interval: Duration::from_millis(10),
        rollout_timeout: Duration::from_secs(10),
        ..Limits::default()
    }
}

struct Yes;

#[async_trait]
impl Approver for Yes {
    async fn review(&self, _request: &ApprovalRequest) -> Decision {
        Decision::approve("test:yes")
    }
}

async fn run_with(
    name: &str,
    policy: impl ApprovalPolicy + 'static,
    max_steps: usize,
) -> (Simulator, RunReport) {
    let sim = Simulator::start_named(&scenario(name)).await.unwrap();
    let brain = Playbook::new(sim.scenario().all_namespaces());
    let agent = Agent::builder(brain)
        .tools(sim.tools(limits()).unwrap())
        .policy(policy)
        .max_steps(max_steps)
        .build()
        .unwrap();
    let report = agent.run(&sim.scenario().task.clone()).await;
    (sim, report)
}

fn image(sim: &Simulator, ns: &str, dep: &str) -> String {
    sim.object("deployments", ns, dep).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn calls_of(r: &RunReport, tool: &str) -> usize {
    r.transcript
        .iter()
        .flat_map(|m| &m.tool_calls)
        .filter(|c| c.name == tool)
        .count()
}

/// The 20 deployments of `release-wave.yaml`: (namespace, name).
fn wave() -> Vec<(String, String)> {
    let svcs = [
        "auth",
        "billing",
        "cart",
        "catalog",
        "checkout",
        "email",
        "gateway",
        "inventory",
        "ledger",
        "orders",
        "payments",
        "pricing",
        "profile",
        "quotes",
        "ratings",
        "search",
        "shipping",
        "stock",
        "tax",
        "wishlist",
    ];
    let nss = ["front", "core", "data", "edge"];
    svcs.iter()
        .enumerate()
        .map(|(i, s)| (nss[i % 4].to_owned(), (*s).to_owned()))
        .collect()
}

#[tokio::test]
async fn twenty_identical_crash_loops_get_one_diagnosis_and_twenty_approved_rollbacks() {
    let (sim, r) = run_with("release-wave", AutoApprove, 8).await;
    assert_eq!(r.outcome, Outcome::Completed, "{:?}", r.answer);
    // Triage, the reads (one diagnosis, every deployment), the writes, the answer: the step count
    // does not grow with the number of incidents.
    assert_eq!(r.steps, 4, "{:?}", r.answer);
    assert_eq!(calls_of(&r, "k8s_pod_logs"), 1, "diagnosed once");
    assert_eq!(calls_of(&r, "k8s_events"), 1, "diagnosed once");
    assert_eq!(calls_of(&r, "k8s_get_deployment"), 20);
    assert_eq!(calls_of(&r, "k8s_rollback"), 20);
    assert_eq!(r.actions.len(), 20);
    for a in &r.actions {
        assert_eq!(a.status, ActionStatus::Applied, "{a:?}");
        assert!(a.verification.as_ref().unwrap().passed, "{a:?}");
    }
    for (ns, dep) in wave() {
        assert_eq!(
            image(&sim, &ns, &dep),
            "ghcr.io/acme/svc:1.9.3",
            "{ns}/{dep}"
        );
    }
    let answer = r.answer.unwrap();
    assert!(
        answer.contains("20 workloads failing the same way")
            && answer.contains("and 10 more")
            && answer.contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{answer}"
    );
    assert!(answer.contains("Needs a human: nothing."), "{answer}");
}

#[tokio::test]
async fn a_write_limit_applies_what_it_allows_and_hands_every_other_incident_to_a_human() {
    let policy = Rules::new(Yes).max_writes_per_run(3);
    let (sim, r) = run_with("release-wave", policy, 8).await;
    assert_eq!(r.outcome, Outcome::Completed, "{:?}", r.answer);
    let applied: Vec<_> = r
        .actions
        .iter()
        .filter(|a| a.status == ActionStatus::Applied)
        .collect();
    assert_eq!(applied.len(), 3);
    assert_eq!(
        calls_of(&r, "k8s_rollback"),
        20,
        "each asked once, never retried"
    );
    let answer = r.answer.clone().unwrap();
    let mut rolled_back = 0;
    for (ns, dep) in wave() {
        if image(&sim, &ns, &dep) == "ghcr.io/acme/svc:1.9.3" {
            rolled_back += 1;
        } else {
            // Every incident not fixed is named for a human, with why.
            assert!(
                answer.contains(&format!("roll back deployment {ns}/{dep} to revision 1")),
                "{ns}/{dep} missing from: {answer}"
            );
        }
    }
    assert_eq!(rolled_back, 3);
    assert!(
        answer.contains("the limit of 3 write(s) per run is reached"),
        "{answer}"
    );
    assert!(!answer.contains("Needs a human: nothing."), "{answer}");
}

#[tokio::test]
async fn mixed_incidents_are_each_fixed_or_handed_to_a_human_in_one_run() {
    let (sim, r) = run_with("five-incidents", AutoApprove, 8).await;
    assert_eq!(r.outcome, Outcome::Completed, "{:?}", r.answer);
    assert_eq!(r.steps, 4, "{:?}", r.answer);
    // payments/api and payments/ledger are one incident: one look at the logs, for it and the
    // OOM-killed worker.
    assert_eq!(calls_of(&r, "k8s_pod_logs"), 2);
    assert_eq!(calls_of(&r, "k8s_rollback"), 3);
    assert_eq!(
        image(&sim, "payments", "api"),
        "ghcr.io/acme/payments:1.8.4"
    );
    assert_eq!(
        image(&sim, "payments", "ledger"),
        "ghcr.io/acme/payments:1.8.4"
    );
    assert_eq!(
        image(&sim, "shop", "checkout"),
        "ghcr.io/acme/checkout:2.3.0"
    );
    // A limit and a GPU are capacity decisions: reported, not changed.
    assert_eq!(image(&sim, "jobs", "worker"), "ghcr.io/acme/worker:3.1.0");
    let answer = r.answer.unwrap();
    for expected in [
        "2 workloads failing the same way (payments/api, payments/ledger",
        "TLS bundle /etc/ssl/payments/ca.pem not found",
        "image ghcr.io/acme/checkout:2.3.1O cannot be pulled",
        "raise the memory limit of jobs/worker",
        "make room for ml/trainer",
    ] {
        assert!(
            answer.contains(expected),
            "{expected:?} missing from: {answer}"
        );
    }
}

#[tokio::test]
async fn two_unrelated_incidents_are_both_diagnosed_and_fixed() {
    let (sim, r) = run_with("two-incidents", AutoApprove, 8).await;
    assert_eq!(r.outcome, Outcome::Completed, "{:?}", r.answer);
    assert_eq!(calls_of(&r, "k8s_rollback"), 2);
    assert_eq!(image(&sim, "shop", "web"), "ghcr.io/acme/shop-web:1.4.2");
    assert_eq!(
        image(&sim, "shop", "checkout"),
        "ghcr.io/acme/checkout:2.3.0"
    );
    let answer = r.answer.unwrap();
    assert!(answer.contains("DATABASE_URL"), "{answer}");
    assert!(answer.contains("cannot be pulled"), "{answer}");
    assert!(
        !answer.contains("workloads failing the same way"),
        "{answer}"
    );
}

/// What a run did, without what differs between two runs of the same thing (ids, times).
fn shape(
    r: &RunReport,
) -> (
    Outcome,
    usize,
    Vec<(String, String)>,
    Vec<ActionStatus>,
    String,
) {
    let calls = r
        .transcript
        .iter()
        .flat_map(|m| &m.tool_calls)
        .map(|c| (c.name.clone(), c.arguments.to_string()))
        .collect();
    let answer = r.answer.clone().unwrap_or_default();
    // Action lines quote each write's result, which names its new ReplicaSet revision: stable in
    // a fresh simulator.
    (
        r.outcome.clone(),
        r.steps,
        calls,
        r.actions.iter().map(|a| a.status).collect(),
        answer,
    )
}

#[tokio::test]
async fn five_runs_of_the_same_incidents_give_the_same_result() {
    let (_sim, first) = run_with("five-incidents", AutoApprove, 8).await;
    let first = shape(&first);
    for _ in 0..4 {
        let (_sim, again) = run_with("five-incidents", AutoApprove, 8).await;
        assert_eq!(shape(&again), first);
    }
}
