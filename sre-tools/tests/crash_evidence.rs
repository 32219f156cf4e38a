//! Crash evidence in rollback and restart approvals, end to end over the simulator: the write
//! tool's own preview carries the failing pod and container, the reason, the last exit code, the
//! restarts, how many pods fail alike, the crashed container's last log lines and the pod's
//! Warning events — read from the cluster, never from a model — and the gate redacts secrets in
//! those log lines before any approver sees them.

#![cfg(feature = "sim")]
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use sre_core::evidence::CrashEvidence;
use sre_core::gate::Gate;
use sre_core::{Redactor, Tool, ToolContext};
use sre_tools::k8s::Limits;
use sre_tools::sim::{Scenario, Simulator};

fn tool(sim: &Simulator, limits: Limits, name: &str) -> Arc<dyn Tool> {
    sim.tools(limits)
        .unwrap()
        .into_iter()
        .find(|t| t.spec().name == name)
        .unwrap()
}

/// The crash evidence of `tool`'s preview for deployment `ns/dep`.
async fn crash_of(sim: &Simulator, name: &str, ns: &str, dep: &str) -> Option<CrashEvidence> {
    let preview = tool(sim, Limits::default(), name)
        .preview(
            &json!({"namespace": ns, "deployment": dep}),
            &ToolContext::default(),
        )
        .await
        .unwrap();
    preview.evidence.and_then(|e| e.crash)
}

/// The pods of `ns` that run `image`, by name.
async fn pods_running(sim: &Simulator, ns: &str, image: &str) -> Vec<String> {
    let api: kube::Api<Pod> = kube::Api::namespaced(sim.client().unwrap(), ns);
    api.list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .any(|c| c.image.as_deref() == Some(image))
            })
        })
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// The catalogue's log of `image`, line by line.
fn catalogue_log(sim: &Simulator, image: &str) -> Vec<String> {
    sim.scenario().images[image]
        .logs
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_bad_release_crash(sim: &Simulator, crash: &CrashEvidence, failing: &[String]) {
    let image = "ghcr.io/acme/shop-web:1.5.0";
    assert!(
        failing.contains(&crash.pod),
        "{} is not a 1.5.0 pod ({failing:?})",
        crash.pod
    );
    assert_eq!(crash.container, "web");
    assert_eq!(crash.image, image);
    assert_eq!(crash.reason, "CrashLoopBackOff (Error)");
    assert_eq!(crash.exit_code, Some(1));
    assert_eq!(crash.restarts, 7);
    assert_eq!(crash.failing_pods as usize, failing.len());
    assert_eq!(crash.last_log_lines, catalogue_log(sim, image));
    // The pod's Warning events only: the kubelet's back-off (7 restarts, 28 back-offs), not its
    // Normal Pulled/Started events, not another pod's.
    assert_eq!(crash.events.len(), 1, "{:?}", crash.events);
    let backoff = &crash.events[0];
    assert!(
        backoff.starts_with(&format!(
            "BackOff: Back-off restarting failed container web in pod {}_shop(",
            crash.pod
        )) && backoff.ends_with(" (×28)"),
        "{backoff}"
    );
}

#[tokio::test]
async fn a_rollback_approval_shows_the_crash_of_the_bad_release() {
    let sim = Simulator::start_named("bad-release").await.unwrap();
    let failing = pods_running(&sim, "shop", "ghcr.io/acme/shop-web:1.5.0").await;
    assert!(!failing.is_empty());
    let crash = crash_of(&sim, "k8s_rollback", "shop", "web")
        .await
        .expect("the rollback's preview carries crash evidence");
    assert_bad_release_crash(&sim, &crash, &failing);
    let text = sre_core::evidence::Evidence {
        vulnerabilities: None,
        crash: Some(crash),
        target_crash: None,
        target_scan: None,
        unchecked: Vec::new(),
    }
    .render();
    assert!(text.contains("(Error), exit code 1, 7 restarts"), "{text}");
    assert!(
        text.contains("log:     panic: config: required variable DATABASE_URL is not set"),
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_restart_approval_shows_the_same_crash() {
    let sim = Simulator::start_named("bad-release").await.unwrap();
    let failing = pods_running(&sim, "shop", "ghcr.io/acme/shop-web:1.5.0").await;
    let crash = crash_of(&sim, "k8s_restart_deployment", "shop", "web")
        .await
        .expect("the restart's preview carries crash evidence");
    assert_bad_release_crash(&sim, &crash, &failing);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_oom_killed_worker_shows_exit_code_137_in_its_restart_approval() {
    let sim = Simulator::start_named("oom-worker").await.unwrap();
    let image = "ghcr.io/acme/worker:3.1.0";
    let failing = pods_running(&sim, "jobs", image).await;
    let crash = crash_of(&sim, "k8s_restart_deployment", "jobs", "worker")
        .await
        .expect("the restart's preview carries crash evidence");
    assert!(failing.contains(&crash.pod), "{crash:?}");
    assert_eq!(crash.container, "worker");
    assert_eq!(crash.reason, "CrashLoopBackOff (OOMKilled)");
    assert_eq!(crash.exit_code, Some(137));
    assert_eq!(crash.restarts, 6);
    assert_eq!(crash.failing_pods, 1);
    assert_eq!(crash.last_log_lines, catalogue_log(&sim, image));
    assert_eq!(crash.events.len(), 1, "{:?}", crash.events);
    assert!(crash.events[0].ends_with(" (×24)"), "{:?}", crash.events);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_shows_its_pull_errors_and_no_log() {
    let sim = Simulator::start_named("image-typo").await.unwrap();
    let image = "ghcr.io/acme/checkout:2.3.1O";
    let failing = pods_running(&sim, "shop", image).await;
    let crash = crash_of(&sim, "k8s_rollback", "shop", "checkout")
        .await
        .expect("the rollback's preview carries crash evidence");
    assert!(failing.contains(&crash.pod), "{crash:?}");
    assert_eq!(crash.failing_pods as usize, failing.len());
    assert_eq!(crash.image, image);
    assert_eq!(crash.reason, "ImagePullBackOff");
    assert_eq!((crash.exit_code, crash.restarts), (None, 0));
    // The container never started: no log, and that is no reason to drop the evidence.
    assert!(
        crash.last_log_lines.is_empty(),
        "{:?}",
        crash.last_log_lines
    );
    assert!(
        crash
            .events
            .contains(&"Failed: Error: ImagePullBackOff (×6)".to_owned()),
        "{:?}",
        crash.events
    );
    assert!(
        crash.events.iter().any(|e| e.starts_with(&format!(
            "Failed: Failed to pull image \"{image}\": rpc error: code = NotFound"
        ))),
        "{:?}",
        crash.events
    );
    assert!(
        crash.events.iter().all(|e| !e.starts_with("Pulling:")),
        "{:?}",
        crash.events
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_healthy_deployment_has_no_crash_evidence() {
    let sim = Simulator::start_named("healthy").await.unwrap();
    for dep in ["web", "frontend"] {
        assert_eq!(
            crash_of(&sim, "k8s_restart_deployment", "shop", dep).await,
            None,
            "{dep}"
        );
    }
    sim.shutdown().await;
}

/// A release whose crash log prints a database password.
const LEAKY: &str = r"
name: leaky-release
description: shop/web 1.6.0 crash-loops and logs its database password on the way down.
task: The shop/web rollout is failing. Find out why and fix it.
images:
  ghcr.io/acme/shop-web:1.4.2:
    health: healthy
    logs: |
      2026-11-25T09:00:02Z INFO  listening on :8080
  ghcr.io/acme/shop-web:1.6.0:
    health: crashloop
    exitCode: 3
    restarts: 4
    logs: |
      2026-11-25T10:12:40Z INFO  starting shop-web 1.6.0
      2026-11-25T10:12:41Z ERROR db login failed: postgres://shop@db.shop:5432/shop password=hunter2
deployments:
  - namespace: shop
    name: web
    replicas: 1
    history:
      - web: ghcr.io/acme/shop-web:1.4.2
    containers:
      - name: web
        image: ghcr.io/acme/shop-web:1.6.0
";

#[tokio::test]
async fn a_password_in_the_crash_log_is_redacted_in_the_gates_plan() {
    let scenario = Scenario::from_yaml(LEAKY, "leaky-release.yaml").unwrap();
    let sim = Simulator::start(scenario).await.unwrap();
    let gate = Gate::new(Redactor::default(), Duration::from_secs(300));
    let args = json!({"namespace": "shop", "deployment": "web"});
    for name in ["k8s_rollback", "k8s_restart_deployment"] {
        let rollback = tool(&sim, Limits::default(), name);
        let planned = gate
            .plan(rollback.as_ref(), &args, &ToolContext::default())
            .await
            .unwrap();
        let evidence = planned.plan.evidence.clone().expect("crash evidence");
        let crash = evidence.crash.clone().expect("crash evidence");
        assert_eq!(crash.exit_code, Some(3));
        assert_eq!(
            crash.last_log_lines.last().map(String::as_str),
            Some(
                "2026-11-25T10:12:41Z ERROR db login failed: postgres://shop@db.shop:5432/shop password=[REDACTED]"
            ),
            "{name}: {:?}",
            crash.last_log_lines
        );
        for shown in [
            serde_json::to_string(&planned.plan).unwrap(),
            format!("{planned:?}"),
            evidence.render(),
        ] {
            assert!(
                !shown.contains("hunter2"),
                "{name} leaks the password: {shown}"
            );
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn the_log_is_cut_to_its_last_lines() {
    let mut scenario = Scenario::from_yaml(LEAKY, "leaky-release.yaml").unwrap();
    let long: Vec<String> = (1..=40).map(|i| format!("line {i}")).collect();
    scenario
        .images
        .get_mut("ghcr.io/acme/shop-web:1.6.0")
        .unwrap()
        .logs = long.join("\n") + "\n";
    let sim = Simulator::start(scenario).await.unwrap();
    let args = json!({"namespace": "shop", "deployment": "web"});
    let lines = |limits: Limits| {
        let t = tool(&sim, limits, "k8s_rollback");
        let args = args.clone();
        async move {
            t.preview(&args, &ToolContext::default())
                .await
                .unwrap()
                .evidence
                .and_then(|e| e.crash)
                .unwrap()
                .last_log_lines
        }
    };
    // At most 20 lines (four times what a prompt shows), the last ones.
    let kept = lines(Limits::default()).await;
    let expected: Vec<String> = (21..=40).map(|i| format!("line {i}")).collect();
    assert_eq!(kept, expected);
    // Fewer when the tools' log limit is lower.
    let kept = lines(Limits {
        log_lines: 3,
        ..Limits::default()
    })
    .await;
    assert_eq!(kept, ["line 38", "line 39", "line 40"]);
    sim.shutdown().await;
}
