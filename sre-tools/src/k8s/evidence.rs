//! Crash evidence for a rollback or restart approval: what the deployment's failing pods show,
//! read by the write tool itself from the cluster — pod statuses, the crashed container's log, the
//! pod's Warning events — never from the model's text.
//!
//! The decisions are pure and tested on real objects: [`owned_pods`] keeps the pods the
//! deployment's own ReplicaSets control, [`failing_container`] picks the worst failing container
//! with the analyzers of [`super::analyze`] (no second classifier), and [`with_log_and_events`]
//! adds the last log lines and the Warning events. [`crash_evidence`] does the reading around
//! them and is best-effort: evidence never blocks a plan.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::LogParams;
use kube::core::Selector;
use sre_core::evidence::{CrashEvidence, SHOWN};

use super::Inner;
use super::analyze::{Finding, FindingKind, analyze_facts, triage_facts};
use super::facts::PodFacts;
use super::read::{revisions, sort_events, warning_events};

/// Most log lines kept (the rendering shows the last [`SHOWN`]; the JSON has these).
const LOG_LINES: usize = SHOWN * 4;

/// The crash that led to a rollback or restart of `dep`, read from the cluster: its worst failing
/// container, the last lines of that container's log (the previous instance when it restarted and
/// that log exists, else the current one) and its pod's Warning events, newest first.
///
/// `None` when no pod of the deployment fails, and when the pods or the deployment's ReplicaSets
/// cannot be listed (logged at debug: evidence is best-effort and never blocks a plan). A log or
/// events read that fails leaves only that part empty: a container that never started (an image
/// that cannot be pulled, a missing `ConfigMap`) has no log, and its status is the evidence.
/// The caller has checked the namespace against the tools' scope.
pub(crate) async fn crash_evidence(inner: &Inner, dep: &Deployment) -> Option<CrashEvidence> {
    let ns = dep.metadata.namespace.as_deref().unwrap_or_default();
    let what = format!(
        "deployment {ns}/{}",
        dep.metadata.name.as_deref().unwrap_or_default()
    );
    // A deployment that selects every pod (or whose selector cannot be read) has no pods of
    // its own to show.
    let _selector = match dep
        .spec
        .as_ref()
        .map(|s| Selector::try_from(s.selector.clone()))
    {
        Some(Ok(s)) if !s.selects_all() => s,
        Some(Err(e)) => {
            tracing::debug!(deployment = %what, error = %e, "crash evidence left out: the deployment's selector cannot be read");
            return None;
        }
        _ => {
            tracing::debug!(deployment = %what, "crash evidence left out: the deployment selects no pods");
            return None;
        }
    };
    // The newest revision's pods only: what runs the code a change would replace. (An older
    // revision's crashing pods — the one a rollback returns to, say — are no reason to leave
    // the current one.)
    let sets: Vec<ReplicaSet> = match revisions(inner, dep).await {
        Ok(by_revision) => by_revision.into_values().next_back().into_iter().collect(),
        Err(e) => {
            tracing::debug!(deployment = %what, error = %e, "crash evidence left out: cannot list the replica sets");
            return None;
        }
    };
    crash_of(inner, ns, &what, &sets).await.unwrap_or_else(|e| {
        tracing::debug!(deployment = %what, error = %e, "crash evidence left out");
        None
    })
}

/// For a rollback to `target`, the ReplicaSet of the revision it returns to: the worst failing
/// container of that revision's own pods (while it still has some — a stalled rollout keeps the
/// old pods), as [`crash_evidence`] reads the newest revision's. A revision that fails too is no
/// fix. `Ok(None)` when it has no pods or none fails; `Err` when its pods cannot be listed (the
/// caller must not read that as "none fails").
pub(crate) async fn revision_crash(
    inner: &Inner,
    dep: &Deployment,
    target: &ReplicaSet,
) -> Result<Option<CrashEvidence>, String> {
    if !has_pods(target) {
        return Ok(None);
    }
    let ns = dep.metadata.namespace.as_deref().unwrap_or_default();
    let what = format!(
        "replicaset {ns}/{}",
        target.metadata.name.as_deref().unwrap_or_default()
    );
    crash_of(inner, ns, &what, std::slice::from_ref(target)).await
}

/// The worst failing container of the pods that `sets` control, with its log and events.
async fn crash_of(
    inner: &Inner,
    ns: &str,
    what: &str,
    sets: &[ReplicaSet],
) -> Result<Option<CrashEvidence>, String> {
    let max = inner.limits.max_pods_listed;
    // Pods of the deployment's own ReplicaSets (by uid, every page): planted pods with its
    // labels can neither hide the crash nor forge one.
    let live: Vec<&ReplicaSet> = sets.iter().filter(|rs| has_pods(rs)).collect();
    let pods = super::security::pods_of(inner, ns, live)
        .await
        .map_err(|e| format!("cannot list the pods of {what}: {e}"))?;
    // Terminating pods are on their way out: what they show is no longer the revision's.
    let pods: Vec<Pod> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    // A pod counts only when it runs its ReplicaSet's template (a pod planted with the set's
    // labels and owner reference, but other containers, forges no crash).
    let facts: Vec<PodFacts> = pods
        .iter()
        .filter(|p| runs_its_template(p, sets))
        .take(max)
        .map(PodFacts::from)
        .collect();
    let Some(crash) = failing_container(&owned_pods(facts, sets), sets, Timestamp::now()) else {
        return Ok(None);
    };
    let (log, events) = futures::join!(
        last_log(inner, ns, &crash),
        warning_events(inner, ns, &crash.pod, inner.limits.max_events)
    );
    let events = events.unwrap_or_else(|e| {
        tracing::debug!(deployment = %what, pod = %crash.pod, error = %e, "crash evidence without events: cannot list them");
        Vec::new()
    });
    Ok(Some(with_log_and_events(crash, &log, events)))
}

/// True when `pod`'s containers (name and image) are those of the template of the ReplicaSet
/// that controls it.
fn runs_its_template(pod: &Pod, sets: &[ReplicaSet]) -> bool {
    let images = |containers: &[k8s_openapi::api::core::v1::Container]| {
        containers
            .iter()
            .map(|c| (c.name.clone(), c.image.clone()))
            .collect::<Vec<_>>()
    };
    let Some(owner) = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)))
    else {
        return false;
    };
    sets.iter()
        .find(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str()))
        .and_then(|rs| rs.spec.as_ref()?.template.as_ref()?.spec.as_ref())
        .zip(pod.spec.as_ref())
        .is_some_and(|(template, spec)| images(&template.containers) == images(&spec.containers))
}

fn has_pods(rs: &ReplicaSet) -> bool {
    rs.status.as_ref().is_some_and(|s| s.replicas > 0)
}

/// The tail of the failing container's log: the previous instance's when it restarted and that
/// log exists and is not empty, else the current one's; empty when neither can be read.
async fn last_log(inner: &Inner, ns: &str, crash: &CrashEvidence) -> String {
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), ns);
    let lines = i64::try_from(LOG_LINES)
        .unwrap_or(i64::MAX)
        .min(inner.limits.log_lines)
        .max(1);
    let params = |previous| LogParams {
        container: Some(crash.container.clone()),
        previous,
        tail_lines: Some(lines),
        limit_bytes: Some(inner.limits.max_log_bytes),
        ..LogParams::default()
    };
    if crash.restarts > 0 {
        match logs_lossy(&api, &crash.pod, &params(true)).await {
            Ok(text) if !text.trim().is_empty() => return text,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(pod = %format!("{ns}/{}", crash.pod), container = %crash.container, error = %e, "crash evidence: no previous log, reading the current one");
            }
        }
    }
    match logs_lossy(&api, &crash.pod, &params(false)).await {
        Ok(text) => text,
        Err(e) => {
            tracing::debug!(pod = %format!("{ns}/{}", crash.pod), container = %crash.container, error = %e, "crash evidence without log lines: cannot read the log");
            String::new()
        }
    }
}

/// A log as text, whatever its bytes: a workload that writes one Latin-1 byte (or a
/// `limitBytes` cut through a multi-byte character) must not hide its whole log from the
/// approver. Invalid sequences become U+FFFD.
async fn logs_lossy(api: &Api<Pod>, pod: &str, params: &LogParams) -> Result<String, String> {
    use futures::AsyncReadExt as _;
    let mut stream = api
        .log_stream(pod, params)
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The pods that one of `replica_sets` controls (their controller reference names it). With the
/// ReplicaSets a deployment owns, this keeps exactly that deployment's pods: a pod that only
/// carries matching labels is not one of them.
pub(crate) fn owned_pods(pods: Vec<PodFacts>, replica_sets: &[ReplicaSet]) -> Vec<PodFacts> {
    let names: BTreeSet<&str> = replica_sets
        .iter()
        .filter_map(|rs| rs.metadata.name.as_deref())
        .collect();
    pods.into_iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .find(|r| r.controller == Some(true))
                .is_some_and(|r| r.kind == "ReplicaSet" && names.contains(r.name.as_str()))
        })
        .collect()
}

/// The worst failing container among the pods of one workload, as the analyzers see it as of
/// `now` (`replica_sets` resolve the pods' owner): the most severe container-level finding
/// (crash loop, image pull, `OOMKilled`, config error, restart storm, readiness), on the pod
/// where that container restarted most (the first such pod on a tie), with how many pods fail
/// alike. Log lines and events are left empty for [`with_log_and_events`]. `None` when no
/// container fails (a healthy deployment, or only pod-level problems such as an unschedulable
/// pod, which have no container to show).
pub(crate) fn failing_container(
    pods: &[PodFacts],
    replica_sets: &[ReplicaSet],
    now: Timestamp,
) -> Option<CrashEvidence> {
    let triage = triage_facts(pods, replica_sets, &[], now);
    let worst = triage
        .workloads
        .iter()
        .flat_map(|w| &w.findings)
        .find(|f| f.container.is_some())?;
    // The same finding on each affected pod, for that pod's own restarts and exit code.
    let (pod, mine) = worst
        .pods
        .iter()
        .filter_map(|name| {
            let pod = pods.iter().find(|p| &p.metadata.name == name)?;
            let mine = analyze_facts(pod, now)
                .into_iter()
                .find(|f| same_problem(f, worst))?;
            Some((name, mine))
        })
        .reduce(|best, next| {
            if next.1.restarts > best.1.restarts {
                next
            } else {
                best
            }
        })?;
    Some(CrashEvidence {
        pod: pod.clone(),
        container: worst.container.clone().unwrap_or_default(),
        image: worst.image.clone().unwrap_or_default(),
        reason: reason(worst),
        exit_code: mine.exit_code,
        restarts: mine.restarts,
        failing_pods: u32::try_from(worst.pods.len()).unwrap_or(u32::MAX),
        last_log_lines: Vec::new(),
        events: Vec::new(),
    })
}

/// Whether two findings are the same problem (what triage merges across pods).
fn same_problem(a: &Finding, b: &Finding) -> bool {
    a.kind == b.kind && a.container == b.container && a.reason == b.reason && a.image == b.image
}

/// `CrashLoopBackOff (Error)`, `CrashLoopBackOff (OOMKilled)`, `OOMKilled`, `ImagePullBackOff`,
/// `CreateContainerConfigError`…: Kubernetes' reason, with the last termination's reason beside
/// a crash loop's.
fn reason(f: &Finding) -> String {
    let label = f.kind.label();
    match f.kind {
        FindingKind::CrashLoopBackOff | FindingKind::RestartStorm if f.reason != label => {
            format!("{label} ({})", f.reason)
        }
        FindingKind::CrashLoopBackOff | FindingKind::RestartStorm => label.to_owned(),
        _ => f.reason.clone(),
    }
}

/// `crash` with the last [`LOG_LINES`] lines of `log` (trailing blank lines dropped) and at most
/// [`SHOWN`] Warning events about its pod, newest first, each `reason: message (×count)`.
pub(crate) fn with_log_and_events(
    mut crash: CrashEvidence,
    log: &str,
    mut events: Vec<Event>,
) -> CrashEvidence {
    let mut lines: Vec<&str> = log.lines().collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let skip = lines.len().saturating_sub(LOG_LINES);
    crash.last_log_lines = lines[skip..].iter().map(|l| (*l).to_owned()).collect();
    sort_events(&mut events);
    crash.events = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| {
            let obj = &e.involved_object;
            obj.name.as_deref() == Some(crash.pod.as_str())
                && obj.kind.as_deref().is_none_or(|k| k == "Pod")
        })
        .take(SHOWN)
        .map(event_line)
        .collect();
    crash
}

/// `BackOff: Back-off restarting failed container web in pod … (×28)`.
fn event_line(e: &Event) -> String {
    let mut line = format!(
        "{}: {}",
        e.reason.as_deref().unwrap_or("Warning"),
        e.message.as_deref().unwrap_or_default().trim()
    );
    if let Some(n) = e.count.filter(|n| *n > 1) {
        let _ = write!(line, " (×{n})");
    }
    line
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use serde_json::Value;

    use super::*;

    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/k8s")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml"))
        {
            serde_yaml::from_str(&text).unwrap()
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    fn pods(name: &str) -> Vec<PodFacts> {
        let items: Vec<Pod> = serde_json::from_value(fixture(name)["items"].clone()).unwrap();
        items.iter().map(PodFacts::from).collect()
    }

    fn events(name: &str) -> Vec<Event> {
        serde_json::from_value(fixture(name)["items"].clone()).unwrap()
    }

    /// The ReplicaSet `name` as its deployment `owner` controls it (the fixtures' pods name their
    /// ReplicaSet, but the support bundles hold none).
    fn replica_set(name: &str, owner: &str) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: owner.into(),
                    uid: "4d5b0a0e-0000-0000-0000-000000000000".into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            ..ReplicaSet::default()
        }
    }

    fn now() -> Timestamp {
        "2025-08-10T02:10:00Z".parse().unwrap()
    }

    #[test]
    fn a_crash_loop_names_the_pod_exit_code_restarts_and_its_own_warnings() {
        let sets = [replica_set("crash-loop-app-67586446fc", "crash-loop-app")];
        let pods = owned_pods(pods("podlist-crashloop-k3s.json"), &sets);
        assert_eq!(pods.len(), 2);
        let crash = failing_container(&pods, &sets, now()).unwrap();
        let log = "starting\ncannot open /config/app.yaml: no such file\n\n";
        let crash = with_log_and_events(crash, log, events("eventlist-crashloop-k3s.json"));
        assert_eq!(crash.pod, "crash-loop-app-67586446fc-2w49s");
        assert_eq!(crash.container, "failing-app");
        assert_eq!(crash.image, "docker.io/library/busybox:latest");
        assert_eq!(crash.reason, "CrashLoopBackOff (Error)");
        assert_eq!(crash.exit_code, Some(1));
        assert_eq!(crash.restarts, 22);
        assert_eq!(crash.failing_pods, 2);
        assert_eq!(
            crash.last_log_lines,
            ["starting", "cannot open /config/app.yaml: no such file"]
        );
        // Only the Warning about this pod (not the other pod's, not the Normal `Pulling`).
        assert_eq!(crash.events.len(), 1, "{:?}", crash.events);
        assert!(
            crash.events[0].starts_with(
                "BackOff: Back-off restarting failed container failing-app in pod crash-loop-app-67586446fc-2w49s_test-crash("
            ) && crash.events[0].ends_with(" (×312)"),
            "{:?}",
            crash.events
        );
        let text = sre_core::evidence::Evidence {
            vulnerabilities: None,
            crash: Some(crash),
            target_crash: None,
            target_scan: None,
            unchecked: Vec::new(),
        }
        .render();
        assert!(
            text.contains("CrashLoopBackOff (Error), exit code 1, 22 restarts; 2 failing pod(s)"),
            "{text}"
        );
    }

    #[test]
    fn the_pod_that_restarted_most_is_shown_and_only_pods_failing_alike_are_counted() {
        let sets = [replica_set("crash-loop-app-67586446fc", "crash-loop-app")];
        let mut pods = pods("podlist-crashloop-k3s.json");
        pods[1].status.container_statuses[0].restart_count = 40;
        let crash = failing_container(&pods, &sets, now()).unwrap();
        assert_eq!(crash.pod, "crash-loop-app-67586446fc-6fgz5");
        assert_eq!(crash.restarts, 40);
        assert_eq!(crash.failing_pods, 2);
        // The first pod now ends in OOMKilled: another problem, not counted with the second.
        let t = pods[0].status.container_statuses[0]
            .last_state
            .terminated
            .as_mut()
            .unwrap();
        t.reason = Some("OOMKilled".into());
        t.exit_code = 137;
        let crash = failing_container(&pods, &sets, now()).unwrap();
        assert_eq!(crash.failing_pods, 1);
        assert_eq!(crash.pod, "crash-loop-app-67586446fc-2w49s");
        assert_eq!(crash.reason, "CrashLoopBackOff (OOMKilled)");
        assert_eq!(crash.exit_code, Some(137));
    }

    #[test]
    fn an_oom_killed_container_shows_exit_code_137_and_its_current_log() {
        let pods = pods("podlist-oomkilled-job.json");
        let crash = failing_container(&pods, &[], now()).unwrap();
        assert_eq!(crash.pod, "oom-kill-job3-gbb89");
        assert_eq!(crash.container, "memory-eater");
        assert_eq!(crash.reason, "OOMKilled");
        assert_eq!(crash.exit_code, Some(137));
        assert_eq!(crash.restarts, 0);
        assert_eq!(crash.failing_pods, 1);
        // The pod's events are all Normal; the Job's BackoffLimitExceeded is about the Job.
        let crash = with_log_and_events(crash, "", events("eventlist-imagepull-and-oom.json"));
        assert!(crash.events.is_empty(), "{:?}", crash.events);
        assert!(crash.last_log_lines.is_empty());
    }

    #[test]
    fn an_image_that_cannot_be_pulled_has_no_exit_code_and_its_pull_warnings() {
        let sets = [replica_set(
            "no-image-deployment-849c4c4958",
            "no-image-deployment",
        )];
        let pods = owned_pods(pods("podlist-errimagepull.json"), &sets);
        let crash = failing_container(&pods, &sets, now()).unwrap();
        assert_eq!(crash.pod, "no-image-deployment-849c4c4958-rxqmt");
        assert_eq!(crash.container, "demo-deployment-container");
        assert_eq!(crash.image, "noimage.com/no-such-image");
        assert_eq!(crash.reason, "ErrImagePull");
        assert_eq!(crash.exit_code, None);
        assert_eq!(crash.restarts, 0);
        let crash = with_log_and_events(crash, "", events("eventlist-imagepull-and-oom.json"));
        // Newest first: ImagePullBackOff (05:36:25) before the two ErrImagePull ones (05:36:12).
        assert_eq!(crash.events.len(), 3, "{:?}", crash.events);
        assert_eq!(crash.events[0], "Failed: Error: ImagePullBackOff (×5)");
        assert!(
            crash.events[1..]
                .iter()
                .any(|e| e == "Failed: Error: ErrImagePull (×4)"),
            "{:?}",
            crash.events
        );
        assert!(
            crash.events[1..].iter().any(|e| e.starts_with(
                "Failed: Failed to pull image \"noimage.com/no-such-image\": rpc error:"
            )),
            "{:?}",
            crash.events
        );
    }

    #[test]
    fn a_single_crash_looping_pod_from_yaml() {
        let pod: Pod = serde_json::from_value(fixture("pod-crashloop.yaml")).unwrap();
        let crash = failing_container(&[PodFacts::from(&pod)], &[], now()).unwrap();
        assert_eq!(
            (crash.pod.as_str(), crash.container.as_str()),
            ("my-pod", "main")
        );
        assert_eq!(crash.reason, "CrashLoopBackOff (Error)");
        assert_eq!((crash.exit_code, crash.restarts), (Some(1), 3));
    }

    #[test]
    fn a_healthy_deployment_has_no_crash_evidence() {
        let pod: Pod = serde_json::from_value(fixture("pod-running-healthy.json")).unwrap();
        assert_eq!(failing_container(&[PodFacts::from(&pod)], &[], now()), None);
        assert_eq!(failing_container(&[], &[], now()), None);
        // An unschedulable pod has no container to show.
        let pending = pods("podlist-pending-insufficient-resources.json");
        assert_eq!(failing_container(&pending, &[], now()), None);
    }

    #[test]
    fn pods_that_only_carry_the_labels_are_not_the_deployments() {
        let pods = pods("podlist-crashloop-k3s.json");
        assert!(owned_pods(pods.clone(), &[]).is_empty());
        let other = [replica_set("crash-loop-app-other", "crash-loop-app")];
        assert!(owned_pods(pods, &other).is_empty());
    }

    #[test]
    fn the_log_keeps_its_last_lines_and_events_at_most_shown() {
        let crash = failing_container(&pods("podlist-crashloop-k3s.json"), &[], now()).unwrap();
        let log = (1..=30).fold(String::new(), |mut log, i| {
            let _ = write!(log, "line {i}\r\n");
            log
        });
        let backoff = events("eventlist-crashloop-k3s.json").remove(1);
        let many: Vec<Event> = (0..8)
            .map(|i| {
                let mut e = backoff.clone();
                e.message = Some(format!("warning {i}"));
                e.count = Some(1);
                e
            })
            .collect();
        let crash = with_log_and_events(crash, &log, many);
        assert_eq!(crash.last_log_lines.len(), LOG_LINES);
        assert_eq!(crash.last_log_lines[0], "line 11");
        assert_eq!(crash.last_log_lines[LOG_LINES - 1], "line 30");
        assert_eq!(crash.events.len(), SHOWN);
        assert_eq!(crash.events[0], "BackOff: warning 0");
    }
}
