//! Every Kubernetes tool against the simulator, through the real kube client.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use serde_json::{Value, json};
use sre_core::testing::{ScriptedProvider, answer, call, tool_turn};
use sre_core::{ActionStatus, Agent, AutoApprove, Outcome, Preview, Tool, ToolContext, ToolError};
use sre_tools::k8s::{K8s, Limits, Scope};
use sre_tools::sim::{Scenario, Simulator};

async fn setup(scenario: &str) -> (Simulator, K8s) {
    let sim = Simulator::start_named(scenario).await.unwrap();
    let ns = sim.scenario().all_namespaces();
    let limits = Limits {
        poll_interval: Duration::from_millis(20),
        rollout_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let k8s = K8s::with_limits(sim.client().unwrap(), Scope::namespaces(ns), limits);
    (sim, k8s)
}

fn tool(k8s: &K8s, name: &str) -> std::sync::Arc<dyn Tool> {
    k8s.tools()
        .into_iter()
        .find(|t| t.spec().name == name)
        .unwrap()
}

async fn run(k8s: &K8s, name: &str, args: Value) -> Result<String, ToolError> {
    tool(k8s, name)
        .call(&args, &ToolContext::default())
        .await
        .map(|o| o.content)
}

fn granted(name: &str, args: &Value, preview: &Preview) -> ToolContext {
    sre_core::testing::grant(name, args, preview)
}

fn image_of(sim: &Simulator, ns: &str, dep: &str) -> String {
    sim.object("deployments", ns, dep).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn find_unhealthy_reports_the_crash_loop_under_its_deployment() {
    let (sim, k8s) = setup("bad-release").await;
    let out = run(&k8s, "k8s_find_unhealthy", json!({})).await.unwrap();
    assert!(out.contains("shop/deployment web"), "{out}");
    assert!(out.contains("CrashLoopBackOff container web (ghcr.io/acme/shop-web:1.5.0): last exit 1 (Error), 7 restarts"), "{out}");
    assert!(out.contains("ProgressDeadlineExceeded"), "{out}");
    let out = run(&k8s, "k8s_find_unhealthy", json!({"namespace": "shop"}))
        .await
        .unwrap();
    assert!(out.contains("CrashLoopBackOff"));
    sim.shutdown().await;
}

#[tokio::test]
async fn every_scenario_is_found_for_what_it_is() {
    for (scenario, expected) in [
        (
            "image-typo",
            "ImagePull container checkout (ghcr.io/acme/checkout:2.3.1O): ImagePullBackOff",
        ),
        (
            "oom-worker",
            "OOMKilled container worker (ghcr.io/acme/worker:3.1.0): exit 137, memory limit 128Mi",
        ),
        (
            "unschedulable",
            "Unschedulable — 0/3 nodes are available: 3 Insufficient nvidia.com/gpu",
        ),
        (
            "healthy",
            "healthy: 4 pods and 2 deployments checked, no problems found",
        ),
        ("critical-cve", "healthy: 3 pods and 1 deployments checked"),
    ] {
        let (sim, k8s) = setup(scenario).await;
        let out = run(&k8s, "k8s_find_unhealthy", json!({})).await.unwrap();
        assert!(out.contains(expected), "{scenario}: {out}");
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn list_describe_logs_and_events() {
    let (sim, k8s) = setup("bad-release").await;
    let pods = run(&k8s, "k8s_list_pods", json!({"namespace": "shop"}))
        .await
        .unwrap();
    assert!(pods.starts_with("3 pods in shop:"), "{pods}");
    assert!(
        pods.contains("CrashLoopBackOff 0/1 ready, 7 restarts"),
        "{pods}"
    );
    let crashing = pods
        .lines()
        .find(|l| l.contains("CrashLoopBackOff"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let d = run(
        &k8s,
        "k8s_describe_pod",
        json!({"namespace": "shop", "pod": crashing}),
    )
    .await
    .unwrap();
    assert!(
        d.contains("container web image ghcr.io/acme/shop-web:1.5.0: waiting CrashLoopBackOff"),
        "{d}"
    );
    assert!(d.contains("last terminated Error exit 1"), "{d}");
    assert!(d.contains("limits cpu=500m,memory=256Mi"), "{d}");
    assert!(d.contains("event Warning BackOff"), "{d}");

    let logs = run(
        &k8s,
        "k8s_pod_logs",
        json!({"namespace": "shop", "pod": crashing, "previous": true, "tail_lines": 2}),
    )
    .await
    .unwrap();
    assert!(logs.contains("(previous), last 2 lines:"), "{logs}");
    assert!(
        logs.ends_with("panic: config: required variable DATABASE_URL is not set"),
        "{logs}"
    );

    let events = run(
        &k8s,
        "k8s_events",
        json!({"namespace": "shop", "name": crashing}),
    )
    .await
    .unwrap();
    let first = events.lines().nth(1).unwrap();
    assert!(
        first.starts_with("Warning BackOff pod/"),
        "warnings first: {events}"
    );

    let dep = run(
        &k8s,
        "k8s_get_deployment",
        json!({"namespace": "shop", "deployment": "web"}),
    )
    .await
    .unwrap();
    assert!(dep.contains("revision 2"), "{dep}");
    assert!(
        dep.contains("  2 (current): web=ghcr.io/acme/shop-web:1.5.0 (1 pods, 0 ready)"),
        "{dep}"
    );
    assert!(
        dep.contains("  1: web=ghcr.io/acme/shop-web:1.4.2 (2 pods, 2 ready)"),
        "{dep}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_name_what_failed() {
    let (sim, k8s) = setup("bad-release").await;
    let e = run(
        &k8s,
        "k8s_describe_pod",
        json!({"namespace": "shop", "pod": "nope"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "not found: pod shop/nope: pods \"nope\" not found"
    );
    let e = run(&k8s, "k8s_list_pods", json!({"namespace": "kube-system"}))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "refused: namespace \"kube-system\" is outside this agent's scope (shop)"
    );
    let pods = run(&k8s, "k8s_list_pods", json!({"namespace": "shop"}))
        .await
        .unwrap();
    let healthy = pods
        .lines()
        .find(|l| l.contains("Running"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let e = run(
        &k8s,
        "k8s_pod_logs",
        json!({"namespace": "shop", "pod": healthy, "previous": true}),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("previous terminated container \"web\""),
        "{e}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn forbidden_by_rbac_is_a_clear_403() {
    let mut scenario = Scenario::builtin("bad-release").unwrap();
    scenario
        .access
        .rules
        .retain(|r| !r.resources.contains(&"pods/log".to_owned()));
    let sim = Simulator::start(scenario).await.unwrap();
    let k8s = K8s::new(sim.client().unwrap(), Scope::namespaces(["shop"]));
    let e = run(
        &k8s,
        "k8s_pod_logs",
        json!({"namespace": "shop", "pod": "web-x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), "forbidden");
    assert!(
        e.to_string().contains(
            "cannot get resource \"pods/log\" in API group \"\" in the namespace \"shop\""
        ),
        "{e}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn patch_image_previews_with_a_dry_run_then_applies_with_a_precondition() {
    let (sim, k8s) = setup("critical-cve").await;
    let t = tool(&k8s, "k8s_patch_image");
    let args = json!({"namespace": "shop", "deployment": "frontend", "container": "nginx", "image": "nginx:1.25.5-alpine"});
    let rv_before =
        sim.object("deployments", "shop", "frontend").unwrap()["metadata"]["resourceVersion"]
            .clone();
    let preview = t.preview(&args, &ToolContext::default()).await.unwrap();
    assert_eq!(
        preview.summary,
        "deployment shop/frontend: container nginx image nginx:1.25.3-alpine -> nginx:1.25.5-alpine"
    );
    assert!(preview.diff.contains("- spec.template.spec.containers[nginx].image: nginx:1.25.3-alpine\n+ spec.template.spec.containers[nginx].image: nginx:1.25.5-alpine"), "{}", preview.diff);
    assert_eq!(
        preview.fingerprint,
        format!(
            "deployments.apps/shop/frontend@resourceVersion={}",
            rv_before.as_str().unwrap()
        )
    );
    // The dry run changed nothing.
    assert_eq!(image_of(&sim, "shop", "frontend"), "nginx:1.25.3-alpine");
    assert_eq!(
        sim.object("deployments", "shop", "frontend").unwrap()["metadata"]["resourceVersion"],
        rv_before
    );

    // Without a grant the tool refuses by itself.
    let e = t.call(&args, &ToolContext::default()).await.unwrap_err();
    assert_eq!(e.kind(), "denied");

    let ctx = granted("k8s_patch_image", &args, &preview);
    let out = t.call(&args, &ctx).await.unwrap();
    assert!(out.content.starts_with("applied: deployment shop/frontend: container nginx image nginx:1.25.3-alpine -> nginx:1.25.5-alpine"), "{}", out.content);
    assert_eq!(image_of(&sim, "shop", "frontend"), "nginx:1.25.5-alpine");
    let dep = sim.object("deployments", "shop", "frontend").unwrap();
    assert_eq!(dep["metadata"]["managedFields"][0]["manager"], "sre-agent");
    let v = t.verify(&args, &out, &ctx).await.unwrap();
    assert!(v.passed, "{}", v.detail);
    assert!(
        v.detail
            .contains("rollout complete: 3/3 updated, 3/3 available"),
        "{}",
        v.detail
    );

    // The same approval again: the target moved on, so the precondition fails.
    let stale = granted("k8s_patch_image", &args, &preview);
    let e = t.call(&args, &stale).await.unwrap_err();
    assert_eq!(e.kind(), "conflict");
    assert!(
        e.to_string().contains("changed since it was approved"),
        "{e}"
    );
    // An approval of one action does not cover another on the same target.
    let args2 = json!({"namespace": "shop", "deployment": "frontend", "container": "nginx", "image": "nginx:1.26.2-alpine"});
    let e = t.call(&args2, &stale).await.unwrap_err();
    assert_eq!(e.kind(), "denied", "{e}");
    assert_eq!(image_of(&sim, "shop", "frontend"), "nginx:1.25.5-alpine");
    sim.shutdown().await;
}

#[tokio::test]
async fn patch_image_argument_errors() {
    let (sim, k8s) = setup("critical-cve").await;
    let t = tool(&k8s, "k8s_patch_image");
    let e = t.preview(&json!({"namespace": "shop", "deployment": "frontend", "container": "web", "image": "x:1"}), &ToolContext::default()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("has no container \"web\"; its containers are: nginx"),
        "{e}"
    );
    let e = t.preview(&json!({"namespace": "shop", "deployment": "frontend", "container": "nginx", "image": "nginx:1.25.3-alpine"}), &ToolContext::default()).await.unwrap_err();
    assert!(
        e.to_string().contains("already runs nginx:1.25.3-alpine"),
        "{e}"
    );
    let e = t.preview(&json!({"namespace": "prod", "deployment": "frontend", "container": "nginx", "image": "x:1"}), &ToolContext::default()).await.unwrap_err();
    assert_eq!(e.kind(), "refused");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_bad_image_fails_verification_and_is_rolled_back() {
    let (sim, k8s) = setup("critical-cve").await;
    let t = tool(&k8s, "k8s_patch_image");
    let args = json!({"namespace": "shop", "deployment": "frontend", "container": "nginx", "image": "nginx:9.9.9-typo"});
    let preview = t.preview(&args, &ToolContext::default()).await.unwrap();
    let ctx = granted("k8s_patch_image", &args, &preview);
    let out = t.call(&args, &ctx).await.unwrap();
    let v = t.verify(&args, &out, &ctx).await.unwrap();
    assert!(!v.passed);
    assert!(v.detail.contains("rollout failed"), "{}", v.detail);
    let undone = t.rollback(&args, &out, &ctx).await.unwrap();
    assert!(undone.content.starts_with("restored deployment shop/frontend to nginx:1.25.3-alpine; deployment shop/frontend: rollout complete"), "{}", undone.content);
    assert_eq!(image_of(&sim, "shop", "frontend"), "nginx:1.25.3-alpine");
    sim.shutdown().await;
}

#[tokio::test]
async fn rollback_restores_the_previous_revision() {
    let (sim, k8s) = setup("bad-release").await;
    let t = tool(&k8s, "k8s_rollback");
    let args = json!({"namespace": "shop", "deployment": "web"});
    let preview = t.preview(&args, &ToolContext::default()).await.unwrap();
    assert!(
        preview.summary.starts_with(
            "deployment shop/web: roll back from revision 2 (web=ghcr.io/acme/shop-web:1.5.0) to revision 1 (ReplicaSet web-"
        ) && preview.summary.ends_with(": web=ghcr.io/acme/shop-web:1.4.2)"),
        "{}",
        preview.summary
    );
    assert_eq!(
        preview.risk,
        sre_core::Risk::Medium,
        "only the image changes"
    );
    assert!(preview.warning.is_none());
    assert!(
        preview.fingerprint.contains(";replicasets.apps/shop/web-"),
        "{}",
        preview.fingerprint
    );
    assert!(
        preview
            .diff
            .contains("+ spec.template.spec.containers[web].image: ghcr.io/acme/shop-web:1.4.2"),
        "{}",
        preview.diff
    );
    assert_eq!(image_of(&sim, "shop", "web"), "ghcr.io/acme/shop-web:1.5.0");
    let ctx = granted("k8s_rollback", &args, &preview);
    let out = t.call(&args, &ctx).await.unwrap();
    assert_eq!(image_of(&sim, "shop", "web"), "ghcr.io/acme/shop-web:1.4.2");
    let v = t.verify(&args, &out, &ctx).await.unwrap();
    assert!(v.passed, "{}", v.detail);
    let after = run(&k8s, "k8s_find_unhealthy", json!({})).await.unwrap();
    assert!(after.starts_with("healthy:"), "{after}");
    let dep = run(
        &k8s,
        "k8s_get_deployment",
        json!({"namespace": "shop", "deployment": "web"}),
    )
    .await
    .unwrap();
    assert!(
        dep.contains("  3 (current): web=ghcr.io/acme/shop-web:1.4.2 (2 pods, 2 ready)"),
        "rollback reuses the old ReplicaSet as revision 3: {dep}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn scale_and_restart() {
    let (sim, k8s) = setup("healthy").await;
    let scale = tool(&k8s, "k8s_scale_deployment");
    let args = json!({"namespace": "shop", "deployment": "web", "replicas": 4});
    let p = scale.preview(&args, &ToolContext::default()).await.unwrap();
    assert_eq!(p.summary, "deployment shop/web: replicas 2 -> 4");
    assert!(
        p.diff.contains("- spec.replicas: 2\n+ spec.replicas: 4"),
        "{}",
        p.diff
    );
    let ctx = granted("k8s_scale_deployment", &args, &p);
    let out = scale.call(&args, &ctx).await.unwrap();
    assert!(scale.verify(&args, &out, &ctx).await.unwrap().passed);
    assert_eq!(
        sim.object("deployments", "shop", "web").unwrap()["status"]["availableReplicas"],
        4
    );
    let zero = scale
        .preview(
            &json!({"namespace": "shop", "deployment": "web", "replicas": 0}),
            &ToolContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(zero.risk, sre_core::Risk::High);
    let e = scale
        .preview(
            &json!({"namespace": "shop", "deployment": "web", "replicas": 999}),
            &ToolContext::default(),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("outside the allowed range 0..=50"),
        "{e}"
    );

    let restart = tool(&k8s, "k8s_restart_deployment");
    let args = json!({"namespace": "shop", "deployment": "frontend"});
    let p = restart
        .preview(&args, &ToolContext::default())
        .await
        .unwrap();
    assert!(
        p.diff
            .contains("+ spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt: "),
        "{}",
        p.diff
    );
    let ctx = granted("k8s_restart_deployment", &args, &p);
    let out = restart.call(&args, &ctx).await.unwrap();
    assert!(restart.verify(&args, &out, &ctx).await.unwrap().passed);
    assert!(
        restart
            .rollback(&args, &out, &ctx)
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot be undone")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_agent_rolls_back_the_bad_release_end_to_end() {
    let (sim, k8s) = setup("bad-release").await;
    let model = ScriptedProvider::new([
        tool_turn(vec![call("1", "k8s_find_unhealthy", json!({}))]),
        tool_turn(vec![call(
            "2",
            "k8s_get_deployment",
            json!({"namespace": "shop", "deployment": "web"}),
        )]),
        tool_turn(vec![call(
            "3",
            "k8s_rollback",
            json!({"namespace": "shop", "deployment": "web"}),
        )]),
        answer("Rolled shop/web back to 1.4.2; the 1.5.0 release needs DATABASE_URL."),
    ]);
    let agent = Agent::builder(model)
        .tools(k8s.tools())
        .policy(AutoApprove)
        .build()
        .unwrap();
    let report = agent.run("shop/web rollout is failing").await;
    assert_eq!(report.outcome, Outcome::Completed);
    let action = &report.actions[0];
    assert_eq!(action.status, ActionStatus::Applied, "{action:#?}");
    assert!(action.verification.as_ref().unwrap().passed);
    assert_eq!(image_of(&sim, "shop", "web"), "ghcr.io/acme/shop-web:1.4.2");
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_frees_the_port_and_ends_the_server() {
    let sim = Simulator::start_named("healthy").await.unwrap();
    let addr = sim.addr();
    let client = sim.client().unwrap();
    assert!(client.apiserver_version().await.is_ok());
    sim.shutdown().await;
    // The port can be bound again, and the old address no longer answers.
    let again = tokio::net::TcpListener::bind(addr).await;
    assert!(again.is_ok(), "port {addr} still in use: {again:?}");
    drop(again);
    assert!(client.apiserver_version().await.is_err());
}

#[tokio::test]
async fn start_up_takes_milliseconds() {
    let start = std::time::Instant::now();
    let sim = Simulator::start_named("bad-release").await.unwrap();
    // Generous: this guards against start-up doing network or disk work, not a benchmark.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    sim.shutdown().await;
}
