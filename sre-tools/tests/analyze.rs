//! Analyzer tests over real Kubernetes objects (`tests/fixtures/k8s`, see PROVENANCE.md):
//! one per finding kind, owner resolution, grouping, the compact rendering and its token cost.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sre_tools::k8s::analyze::{FindingKind, Triage, analyze_deployment, analyze_pod, triage};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/k8s")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    if std::path::Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml"))
    {
        serde_yaml::from_str(&text).unwrap()
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

fn object<T: DeserializeOwned>(name: &str) -> T {
    serde_json::from_value(fixture(name)).unwrap()
}

fn items<T: DeserializeOwned>(name: &str) -> Vec<T> {
    serde_json::from_value(fixture(name)["items"].clone()).unwrap()
}

fn now() -> Timestamp {
    "2026-11-25T00:00:00Z".parse().unwrap()
}

/// A rough token estimate (≈4 bytes per token for English and JSON).
fn tokens(s: &str) -> usize {
    s.len().div_ceil(4)
}

#[test]
fn crashloop_from_a_real_cluster_is_grouped_under_its_deployment() {
    let pods: Vec<Pod> = items("podlist-crashloop-k3s.json");
    let deps: Vec<Deployment> = items("deploymentlist-crashloop-k3s.json");
    let t = triage(&pods, &[], &deps, now());
    assert_eq!(t.workloads.len(), 1, "{t:#?}");
    let w = &t.workloads[0];
    assert_eq!(
        (w.namespace.as_str(), w.kind.as_str(), w.name.as_str()),
        ("test-crash", "Deployment", "crash-loop-app")
    );
    assert_eq!((w.pods_total, w.pods_unhealthy), (2, 2));
    let crash = &w.findings[0];
    assert_eq!(crash.kind, FindingKind::CrashLoopBackOff);
    assert_eq!(crash.exit_code, Some(1));
    assert_eq!(crash.reason, "Error");
    assert_eq!(crash.container.as_deref(), Some("failing-app"));
    assert_eq!(crash.pods.len(), 2, "both pods merged into one finding");
    assert!(
        w.findings
            .iter()
            .any(|f| f.kind == FindingKind::UnavailableReplicas)
    );
    let text = t.render();
    assert!(
        text.contains("test-crash/deployment crash-loop-app: 2/2 pods unhealthy"),
        "{text}"
    );
    assert!(
        text.contains("CrashLoopBackOff container failing-app"),
        "{text}"
    );
    assert!(text.contains("last exit 1 (Error)"), "{text}");
}

#[test]
fn crashloop_pod_yaml() {
    let pod: Pod = object("pod-crashloop.yaml");
    let f = analyze_pod(&pod, now());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, FindingKind::CrashLoopBackOff);
    assert_eq!(f[0].exit_code, Some(1));
    assert_eq!(f[0].restarts, 3);
    assert_eq!(f[0].pods, vec!["my-pod".to_owned()]);
}

#[test]
fn image_pull_back_off_and_err_image_pull() {
    let pod: Pod = object("pod-imagepullbackoff.yaml");
    let f = analyze_pod(&pod, now());
    assert_eq!(f[0].kind, FindingKind::ImagePull);
    assert_eq!(f[0].reason, "ImagePullBackOff");
    assert!(
        f[0].message.contains("Back-off pulling image"),
        "{}",
        f[0].message
    );

    let pods: Vec<Pod> = items("podlist-errimagepull.json");
    let t = triage(&pods, &[], &[], now());
    let w = &t.workloads[0];
    assert_eq!(
        (w.kind.as_str(), w.name.as_str()),
        ("Deployment", "no-image-deployment")
    );
    assert_eq!(w.findings[0].kind, FindingKind::ImagePull);
    assert_eq!(w.findings[0].reason, "ErrImagePull");
    assert_eq!(
        w.findings[0].image.as_deref(),
        Some("noimage.com/no-such-image")
    );
}

#[test]
fn oom_killed_job_pod_with_its_memory_limit() {
    let pods: Vec<Pod> = items("podlist-oomkilled-job.json");
    let t = triage(&pods, &[], &[], now());
    let w = &t.workloads[0];
    assert_eq!((w.kind.as_str(), w.name.as_str()), ("Job", "oom-kill-job3"));
    assert_eq!(
        w.findings.len(),
        1,
        "OOMKilled, not also PodFailed: {:#?}",
        w.findings
    );
    let f = &w.findings[0];
    assert_eq!(f.kind, FindingKind::OomKilled);
    assert_eq!(f.exit_code, Some(137));
    assert_eq!(f.memory_limit.as_deref(), Some("100Mi"));
    assert!(
        t.render().contains("OOMKilled container memory-eater"),
        "{}",
        t.render()
    );
    assert!(t.render().contains("memory limit 100Mi"));
}

#[test]
fn unschedulable_pending_pod_with_the_scheduler_message() {
    let pods: Vec<Pod> = items("podlist-pending-insufficient-resources.json");
    let t = triage(&pods, &[], &[], now());
    let f = &t.workloads[0].findings[0];
    assert_eq!(f.kind, FindingKind::Unschedulable);
    assert!(
        f.message.contains("Insufficient nvidia.com/gpu"),
        "{}",
        f.message
    );
    assert_eq!(t.workloads[0].name, "pending-pod-resources");
}

#[test]
fn progress_deadline_exceeded_deployment() {
    let dep: Deployment = object("deployment-progress-deadline-exceeded.yaml");
    let f = analyze_deployment(&dep);
    let kinds: Vec<_> = f.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FindingKind::ProgressDeadlineExceeded,
            FindingKind::UnavailableReplicas
        ]
    );
    assert!(f[0].message.contains("has timed out progressing"));
}

#[test]
fn a_rollout_in_progress_with_minimum_availability_is_not_a_problem() {
    // 1 desired, 1 available, plus 1 unavailable surge pod of the new ReplicaSet.
    let dep: Deployment = object("deployment-progressing.yaml");
    assert!(analyze_deployment(&dep).is_empty());
    // The same deployment without its available replica is.
    let mut v = fixture("deployment-progressing.yaml");
    v["status"]["availableReplicas"] = 0.into();
    let f = analyze_deployment(&serde_json::from_value(v).unwrap());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, FindingKind::UnavailableReplicas);
    assert_eq!(f[0].message, "0/1 available, 1 unavailable");
}

#[test]
fn healthy_objects_have_no_findings() {
    let pod: Pod = object("pod-running-healthy.json");
    assert!(analyze_pod(&pod, now()).is_empty());
    let pods: Vec<Pod> = items("list-two-running-pods.json");
    let dep: Deployment = object("deployment-available.json");
    let t = triage(&pods, &[], &[dep], now());
    assert!(t.workloads.is_empty(), "{t:#?}");
    assert_eq!(
        t.render(),
        "healthy: 2 pods and 1 deployments checked, no problems found"
    );
}

fn with_status(mut pod: Value, status: Value) -> Pod {
    pod["status"] = status;
    serde_json::from_value(pod).unwrap()
}

#[test]
fn create_container_config_error_restart_storm_and_failing_readiness() {
    let base = fixture("pod-running-healthy.json");
    let cs = |state: Value, ready: bool, restarts: i32, last: Value| {
        serde_json::json!({"phase": "Running", "containerStatuses": [{
            "name": "nginx", "image": "nginx:alpine", "imageID": "", "ready": ready,
            "restartCount": restarts, "state": state, "lastState": last}]})
    };
    let config = with_status(
        base.clone(),
        cs(
            serde_json::json!({"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"db\" not found"}}),
            false,
            0,
            serde_json::json!({}),
        ),
    );
    let f = analyze_pod(&config, now());
    assert_eq!(f[0].kind, FindingKind::CreateContainerConfigError);
    assert_eq!(f[0].message, "secret \"db\" not found");

    let storm = with_status(
        base.clone(),
        cs(
            serde_json::json!({"running": {"startedAt": "2026-11-24T23:59:50Z"}}),
            true,
            12,
            serde_json::json!({"terminated": {"exitCode": 2, "reason": "Error"}}),
        ),
    );
    let f = analyze_pod(&storm, now());
    assert_eq!(f[0].kind, FindingKind::RestartStorm);
    assert_eq!((f[0].restarts, f[0].exit_code), (12, Some(2)));

    let unready = with_status(
        base.clone(),
        cs(
            serde_json::json!({"running": {"startedAt": "2026-11-24T23:50:00Z"}}),
            false,
            0,
            serde_json::json!({}),
        ),
    );
    let f = analyze_pod(&unready, now());
    assert_eq!(f[0].kind, FindingKind::NotReady);
    assert_eq!(f[0].message, "running 600s but not ready");

    // Just started: not yet a readiness failure.
    let starting = with_status(
        base,
        cs(
            serde_json::json!({"running": {"startedAt": "2026-11-24T23:59:30Z"}}),
            false,
            0,
            serde_json::json!({}),
        ),
    );
    assert!(analyze_pod(&starting, now()).is_empty());
}

#[test]
fn owner_resolution_prefers_the_replica_set_owner() {
    let pods: Vec<Pod> = items("podlist-crashloop-k3s.json");
    // A ReplicaSet owned by a Deployment whose name is not the ReplicaSet's prefix.
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "crash-loop-app-67586446fc", "namespace": "test-crash",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "renamed", "uid": "u", "controller": true}]}
    }))
    .unwrap();
    let t = triage(&pods, &[rs], &[], now());
    assert_eq!(t.workloads[0].name, "renamed");
}

#[test]
fn token_cost_of_the_triage_output_is_small() {
    let cases = [
        (
            "podlist-crashloop-k3s.json",
            "deploymentlist-crashloop-k3s.json",
        ),
        ("podlist-errimagepull.json", ""),
        ("podlist-oomkilled-job.json", ""),
        ("podlist-pending-insufficient-resources.json", ""),
    ];
    let mut lines = Vec::new();
    for (pods_file, deps_file) in cases {
        let pods: Vec<Pod> = items(pods_file);
        let deps: Vec<Deployment> = if deps_file.is_empty() {
            Vec::new()
        } else {
            items(deps_file)
        };
        let raw = fixture(pods_file).to_string();
        let t: Triage = triage(&pods, &[], &deps, now());
        let text = t.render();
        let (raw_t, out_t) = (tokens(&raw), tokens(&text));
        lines.push(format!(
            "{pods_file}: raw {raw_t} tokens -> triage {out_t} tokens"
        ));
        assert!(out_t <= 120, "{pods_file}: {out_t} tokens:\n{text}");
        assert!(
            out_t * 8 < raw_t,
            "{pods_file}: not lean enough ({out_t} vs raw {raw_t})"
        );
    }
    println!("{}", lines.join("\n"));
    let pods: Vec<Pod> = items("podlist-errimagepull.json");
    println!("{}", triage(&pods, &[], &[], now()).render());
}

#[test]
fn terminating_pods_are_not_findings() {
    let mut pods: Vec<Pod> = items("podlist-crashloop-k3s.json");
    for p in &mut pods {
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-25T00:00:00Z".parse().unwrap(),
        ));
    }
    let t = triage(&pods, &[], &[], now());
    assert!(t.workloads.is_empty(), "{t:#?}");
    assert_eq!(t.pods_scanned, 2);
}
