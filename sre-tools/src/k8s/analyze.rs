//! Analyzers: pods, replica sets and deployments in, compact findings grouped per workload out.
//! Pure functions over `k8s-openapi` types and pod facts, so they run the same on a live cluster,
//! the simulator and fixture files — and [`triage_cluster`], which lists a cluster page by page
//! and runs them (what `k8s_find_unhealthy` returns).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

use super::facts::{ContainerStatusFacts, OwnerFacts, PodFacts};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Restarts at or above this count are a restart storm.
pub const RESTART_STORM: i32 = 5;
/// A running container still not ready after this many seconds fails its readiness probe.
pub const NOT_READY_GRACE_SECS: i64 = 60;

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A container keeps crashing (`CrashLoopBackOff`).
    CrashLoopBackOff,
    /// The image cannot be pulled (`ImagePullBackOff`, `ErrImagePull`, `InvalidImageName`…).
    ImagePull,
    /// A container was killed for exceeding its memory limit.
    OomKilled,
    /// The container cannot be created from its config (missing `ConfigMap`/`Secret`…).
    CreateContainerConfigError,
    /// The scheduler cannot place the pod.
    Unschedulable,
    /// Many restarts without being in back-off right now.
    RestartStorm,
    /// Running but failing its readiness probe.
    NotReady,
    /// The pod failed (phase `Failed`) for another reason, e.g. eviction.
    PodFailed,
    /// The deployment has fewer available replicas than desired.
    UnavailableReplicas,
    /// The deployment's rollout exceeded its progress deadline.
    ProgressDeadlineExceeded,
}

impl FindingKind {
    /// A short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::ImagePull => "ImagePull",
            Self::OomKilled => "OOMKilled",
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            Self::Unschedulable => "Unschedulable",
            Self::RestartStorm => "RestartStorm",
            Self::NotReady => "NotReady",
            Self::PodFailed => "PodFailed",
            Self::UnavailableReplicas => "UnavailableReplicas",
            Self::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
        }
    }
}

/// One problem, possibly seen on several pods of the same workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The kind.
    pub kind: FindingKind,
    /// The container, for container-level problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Its image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Kubernetes' reason (e.g. `Error`, `ErrImagePull`, `Unschedulable`).
    pub reason: String,
    /// Kubernetes' message, shortened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Last exit code, for crashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Highest restart count among the pods.
    pub restarts: i32,
    /// The container's memory limit, for `OOMKilled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// Affected pods.
    pub pods: Vec<String>,
}

impl Finding {
    /// What the finding says beyond its kind, container and image, as rendered after them:
    /// `: last exit 1 (Error), 7 restarts`, `: exit 137, memory limit 256Mi`, `: ErrImagePull`.
    pub fn detail(&self) -> String {
        let mut out = String::new();
        match self.kind {
            FindingKind::CrashLoopBackOff | FindingKind::RestartStorm => {
                if let Some(code) = self.exit_code {
                    let _ = write!(out, ": last exit {code} ({})", self.reason);
                }
                let _ = write!(out, ", {} restarts", self.restarts);
            }
            FindingKind::OomKilled => {
                let _ = write!(
                    out,
                    ": exit {}, memory limit {}",
                    self.exit_code.unwrap_or(137),
                    self.memory_limit.as_deref().unwrap_or("none")
                );
                if self.restarts > 0 {
                    let _ = write!(out, ", {} restarts", self.restarts);
                }
            }
            _ => {
                if self.reason != self.kind.label() {
                    let _ = write!(out, ": {}", self.reason);
                }
            }
        }
        out
    }

    /// The most specific human text of the finding: Kubernetes' message when there is one (a
    /// crash loop's is the container's own output), else the detail.
    pub fn text(&self) -> String {
        if !self.message.is_empty() && self.kind != FindingKind::CrashLoopBackOff {
            self.message.clone()
        } else {
            self.detail()
                .trim_start_matches([' ', ':'])
                .trim()
                .to_owned()
        }
    }
}

/// The findings of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadFindings {
    /// Namespace.
    pub namespace: String,
    /// `Deployment`, `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`, or `Pod` for bare pods.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Pods of the workload that were looked at.
    pub pods_total: usize,
    /// Pods with at least one finding.
    pub pods_unhealthy: usize,
    /// The findings, most severe first.
    pub findings: Vec<Finding>,
}

/// The result of a triage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triage {
    /// Pods looked at.
    pub pods_scanned: usize,
    /// Deployments looked at.
    pub deployments_scanned: usize,
    /// Unhealthy workloads, most severe first.
    pub workloads: Vec<WorkloadFindings>,
}

fn short(msg: &str, max: usize) -> String {
    let msg = msg.trim().replace('\n', " ");
    if msg.len() <= max {
        return msg;
    }
    let mut cut = max;
    while !msg.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &msg[..cut])
}

const MESSAGE_MAX: usize = 240;

/// The workload that owns a pod: Pod → ReplicaSet → Deployment, Job, StatefulSet, DaemonSet.
pub fn owner_of<S: std::hash::BuildHasher>(
    pod: &PodFacts,
    replica_sets: &HashMap<(String, String), &ReplicaSet, S>,
) -> (String, String) {
    let m = &pod.metadata;
    resolve_owner(
        &m.namespace,
        &m.name,
        controller_ref(&m.owner_references),
        m.pod_template_hash.as_deref(),
        replica_sets,
    )
}

/// The owner reference that decides a pod's workload: its controller, else its first.
fn controller_ref(refs: &[OwnerFacts]) -> Option<&OwnerFacts> {
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or(refs.first())
}

/// [`owner_of`] from the parts of a pod it reads.
fn resolve_owner<S: std::hash::BuildHasher>(
    namespace: &str,
    name: &str,
    owner: Option<&OwnerFacts>,
    pod_template_hash: Option<&str>,
    replica_sets: &HashMap<(String, String), &ReplicaSet, S>,
) -> (String, String) {
    let Some(owner) = owner else {
        return ("Pod".into(), name.to_owned());
    };
    if owner.kind != "ReplicaSet" {
        return (owner.kind.clone(), owner.name.clone());
    }
    if let Some(rs) = replica_sets.get(&(namespace.to_owned(), owner.name.clone())) {
        if let Some(dep) = rs
            .metadata
            .owner_references
            .as_ref()
            .and_then(|refs| refs.iter().find(|r| r.kind == "Deployment"))
        {
            return ("Deployment".into(), dep.name.clone());
        }
        return ("ReplicaSet".into(), owner.name.clone());
    }
    // Without the ReplicaSet: a Deployment's ReplicaSet is named <deployment>-<pod-template-hash>.
    if let Some(hash) = pod_template_hash
        && let Some(dep) = owner
            .name
            .strip_suffix(hash)
            .and_then(|d| d.strip_suffix('-'))
    {
        return ("Deployment".into(), dep.to_owned());
    }
    ("ReplicaSet".into(), owner.name.clone())
}

fn memory_limit(pod: &PodFacts, container: &str) -> Option<String> {
    pod.spec
        .containers
        .iter()
        .chain(&pod.spec.init_containers)
        .find(|c| c.name == container)?
        .memory_limit
        .clone()
}

fn container_findings(
    pod: &PodFacts,
    cs: &ContainerStatusFacts,
    now: Timestamp,
    out: &mut Vec<Finding>,
) {
    let finding = |kind, reason: &str, message: &str| Finding {
        kind,
        container: Some(cs.name.clone()),
        image: Some(cs.image.clone()),
        reason: reason.to_owned(),
        message: short(message, MESSAGE_MAX),
        exit_code: None,
        restarts: cs.restart_count,
        memory_limit: None,
        pods: Vec::new(),
    };
    let waiting = cs.state.waiting.as_ref();
    let terminated = cs.state.terminated.as_ref();
    let last_terminated = cs.last_state.terminated.as_ref();
    let mut flagged = false;
    if let Some(w) = waiting {
        let reason = w.reason.as_deref().unwrap_or_default();
        let message = w.message.as_deref().unwrap_or_default();
        match reason {
            "CrashLoopBackOff" => {
                let mut f = finding(FindingKind::CrashLoopBackOff, reason, message);
                if let Some(t) = last_terminated {
                    f.exit_code = Some(t.exit_code);
                    f.reason = t.reason.clone().unwrap_or_else(|| "Error".into());
                    if t.reason.as_deref() == Some("OOMKilled") {
                        f.memory_limit = memory_limit(pod, &cs.name);
                    }
                }
                out.push(f);
                flagged = true;
            }
            "ImagePullBackOff"
            | "ErrImagePull"
            | "InvalidImageName"
            | "ErrImageNeverPull"
            | "RegistryUnavailable" => {
                out.push(finding(FindingKind::ImagePull, reason, message));
                flagged = true;
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                out.push(finding(
                    FindingKind::CreateContainerConfigError,
                    reason,
                    message,
                ));
                flagged = true;
            }
            _ => {}
        }
    }
    let oom = [terminated, last_terminated]
        .into_iter()
        .flatten()
        .find(|t| t.reason.as_deref() == Some("OOMKilled"));
    if let Some(t) = oom {
        let mut f = finding(
            FindingKind::OomKilled,
            "OOMKilled",
            t.message.as_deref().unwrap_or_default(),
        );
        f.exit_code = Some(t.exit_code);
        f.memory_limit = memory_limit(pod, &cs.name);
        out.push(f);
        flagged = true;
    }
    if !flagged && cs.restart_count >= RESTART_STORM {
        let mut f = finding(
            FindingKind::RestartStorm,
            last_terminated
                .and_then(|t| t.reason.as_deref())
                .unwrap_or("Restarted"),
            "",
        );
        f.exit_code = last_terminated.map(|t| t.exit_code);
        out.push(f);
        flagged = true;
    }
    if !flagged
        && !cs.ready
        && let Some(running) = cs.state.running.as_ref()
    {
        let since = running
            .started_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map_or(i64::MAX, |t| now.as_second() - t.as_second());
        if since >= NOT_READY_GRACE_SECS {
            out.push(finding(
                FindingKind::NotReady,
                "ReadinessProbeFailing",
                &format!("running {}s but not ready", since.min(999_999)),
            ));
        }
    }
}

/// The findings of one pod (not yet grouped).
pub fn analyze_pod(pod: &Pod, now: Timestamp) -> Vec<Finding> {
    analyze_facts(&PodFacts::from(pod), now)
}

/// The findings of one pod's facts (not yet grouped).
pub fn analyze_facts(pod: &PodFacts, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let status = &pod.status;
    for cs in status
        .init_container_statuses
        .iter()
        .chain(&status.container_statuses)
    {
        container_findings(pod, cs, now, &mut out);
    }
    let phase = status.phase.as_deref().unwrap_or_default();
    if phase == "Pending"
        && let Some(c) = status.conditions.iter().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
    {
        out.push(Finding {
            kind: FindingKind::Unschedulable,
            container: None,
            image: None,
            reason: "Unschedulable".into(),
            message: short(c.message.as_deref().unwrap_or_default(), MESSAGE_MAX),
            exit_code: None,
            restarts: 0,
            memory_limit: None,
            pods: Vec::new(),
        });
    }
    if phase == "Failed" && out.is_empty() {
        out.push(Finding {
            kind: FindingKind::PodFailed,
            container: None,
            image: None,
            reason: status.reason.clone().unwrap_or_else(|| "Failed".into()),
            message: short(status.message.as_deref().unwrap_or_default(), MESSAGE_MAX),
            exit_code: None,
            restarts: 0,
            memory_limit: None,
            pods: Vec::new(),
        });
    }
    for f in &mut out {
        f.pods.push(pod.metadata.name.clone());
    }
    out
}

/// The findings of one deployment's own status.
pub fn analyze_deployment(dep: &Deployment) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(status) = dep.status.as_ref() else {
        return out;
    };
    let desired = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = status.available_replicas.unwrap_or(0);
    let conditions = status.conditions.iter().flatten();
    let mut deadline = false;
    for c in conditions {
        if c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        {
            deadline = true;
            out.push(Finding {
                kind: FindingKind::ProgressDeadlineExceeded,
                container: None,
                image: None,
                reason: "ProgressDeadlineExceeded".into(),
                message: short(c.message.as_deref().unwrap_or_default(), MESSAGE_MAX),
                exit_code: None,
                restarts: 0,
                memory_limit: None,
                pods: Vec::new(),
            });
        }
    }
    // A surge pod of a rollout in progress is not a problem while the desired count is available.
    let unavailable = desired - available;
    if unavailable > 0 || (deadline && status.unavailable_replicas.unwrap_or(0) > 0) {
        out.push(Finding {
            kind: FindingKind::UnavailableReplicas,
            container: None,
            image: None,
            reason: if deadline {
                "ProgressDeadlineExceeded".into()
            } else {
                "MinimumReplicasUnavailable".into()
            },
            message: format!(
                "{available}/{desired} available, {} unavailable",
                unavailable.max(status.unavailable_replicas.unwrap_or(0))
            ),
            exit_code: None,
            restarts: 0,
            memory_limit: None,
            pods: Vec::new(),
        });
    }
    out
}

fn severity(kind: FindingKind) -> u8 {
    match kind {
        FindingKind::CrashLoopBackOff
        | FindingKind::OomKilled
        | FindingKind::ImagePull
        | FindingKind::CreateContainerConfigError
        | FindingKind::ProgressDeadlineExceeded => 0,
        FindingKind::Unschedulable | FindingKind::PodFailed => 1,
        FindingKind::RestartStorm | FindingKind::NotReady => 2,
        FindingKind::UnavailableReplicas => 3,
    }
}

/// Adds a finding to a workload's list, merging it with the same problem on another pod.
fn merge(into: &mut Vec<Finding>, f: Finding) {
    if let Some(existing) = into.iter_mut().find(|e| {
        e.kind == f.kind && e.container == f.container && e.reason == f.reason && e.image == f.image
    }) {
        existing.restarts = existing.restarts.max(f.restarts);
        for p in f.pods {
            if !existing.pods.contains(&p) {
                existing.pods.push(p);
            }
        }
        if existing.exit_code.is_none() {
            existing.exit_code = f.exit_code;
        }
    } else {
        into.push(f);
    }
}

/// (namespace, kind, name) of a workload.
type WorkloadKey = (String, String, String);

/// Triage of pods, replica sets (for owner resolution) and deployments, as of `now`.
pub fn triage(
    pods: &[Pod],
    replica_sets: &[ReplicaSet],
    deployments: &[Deployment],
    now: Timestamp,
) -> Triage {
    let facts: Vec<PodFacts> = pods.iter().map(PodFacts::from).collect();
    triage_facts(&facts, replica_sets, deployments, now)
}

/// [`triage`] over pod facts (e.g. from [`parse_pod_list`]): a [`TriageBuilder`] fed `pods`.
pub fn triage_facts(
    pods: &[PodFacts],
    replica_sets: &[ReplicaSet],
    deployments: &[Deployment],
    now: Timestamp,
) -> Triage {
    let mut builder = TriageBuilder::new(now);
    for pod in pods {
        builder.add(pod);
    }
    builder.finish(replica_sets, deployments)
}

/// A triage fed pod by pod, e.g. a paginated list's pages as they arrive: each pod is analysed
/// when added and only what grouping needs is kept — its namespace, name, owner reference,
/// `pod-template-hash` and findings, a few hundred bytes for a healthy pod — so the pages and
/// their facts can be dropped as they are read. The result is [`triage_facts`]'s for the same
/// pods in the same order (which is this, over a slice).
///
/// ```
/// use sre_tools::k8s::analyze::TriageBuilder;
/// use sre_tools::k8s::facts::pod_page_from_json;
/// let mut triage = TriageBuilder::new(k8s_openapi::jiff::Timestamp::now());
/// for page in [
///     &br#"{"metadata":{"continue":"p2"},"items":[{"metadata":{"name":"web-1","namespace":"shop"}}]}"#[..],
///     br#"{"metadata":{},"items":[{"metadata":{"name":"web-2","namespace":"shop"},"status":{"containerStatuses":
///         [{"name":"web","image":"web:1","state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}]}"#,
/// ] {
///     for pod in &pod_page_from_json(page).unwrap().items {
///         triage.add(pod);
///     }
/// }
/// let t = triage.finish(&[], &[]);
/// assert_eq!((t.pods_scanned, t.workloads.len()), (2, 1));
/// assert_eq!(t.workloads[0].findings[0].pods, ["web-2"]);
/// ```
#[derive(Debug, Clone)]
pub struct TriageBuilder {
    now: Timestamp,
    pods_scanned: usize,
    pods: Vec<PodVerdict>,
}

/// What [`TriageBuilder`] keeps of a pod.
#[derive(Debug, Clone)]
struct PodVerdict {
    namespace: String,
    name: String,
    owner: Option<OwnerFacts>,
    pod_template_hash: Option<String>,
    findings: Vec<Finding>,
}

impl TriageBuilder {
    /// An empty triage as of `now` (what "running for a minute" is measured against).
    pub fn new(now: Timestamp) -> Self {
        Self {
            now,
            pods_scanned: 0,
            pods: Vec::new(),
        }
    }

    /// Analyses one pod. A terminating pod is counted as scanned but is not a finding nor part
    /// of its workload's count: it is on its way out (e.g. the old pods of a rollout).
    pub fn add(&mut self, pod: &PodFacts) {
        self.pods_scanned += 1;
        let m = &pod.metadata;
        if m.deletion_timestamp.is_some() {
            return;
        }
        self.pods.push(PodVerdict {
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            owner: controller_ref(&m.owner_references).cloned(),
            pod_template_hash: m.pod_template_hash.clone(),
            findings: analyze_facts(pod, self.now),
        });
    }

    /// Pods added so far.
    pub fn pods_scanned(&self) -> usize {
        self.pods_scanned
    }

    /// Adds every pod of `other` after those of `self` (e.g. the next namespace's).
    pub fn append(&mut self, other: Self) {
        self.pods_scanned += other.pods_scanned;
        self.pods.extend(other.pods);
    }

    /// Groups the pods per workload — Pod → ReplicaSet (from `replica_sets`) → Deployment —
    /// adds the deployments' own findings and orders the result, most severe first.
    pub fn finish(self, replica_sets: &[ReplicaSet], deployments: &[Deployment]) -> Triage {
        let rs_index: HashMap<(String, String), &ReplicaSet> = replica_sets
            .iter()
            .map(|rs| {
                (
                    (
                        rs.metadata.namespace.clone().unwrap_or_default(),
                        rs.metadata.name.clone().unwrap_or_default(),
                    ),
                    rs,
                )
            })
            .collect();
        // (namespace, kind, name) → (pods total, unhealthy pods, findings)
        let mut groups: BTreeMap<WorkloadKey, (usize, usize, Vec<Finding>)> = BTreeMap::new();
        for pod in self.pods {
            let (kind, name) = resolve_owner(
                &pod.namespace,
                &pod.name,
                pod.owner.as_ref(),
                pod.pod_template_hash.as_deref(),
                &rs_index,
            );
            let entry = groups.entry((pod.namespace, kind, name)).or_default();
            entry.0 += 1;
            if !pod.findings.is_empty() {
                entry.1 += 1;
            }
            for f in pod.findings {
                merge(&mut entry.2, f);
            }
        }
        for dep in deployments {
            let ns = dep.metadata.namespace.clone().unwrap_or_default();
            let name = dep.metadata.name.clone().unwrap_or_default();
            let findings = analyze_deployment(dep);
            if findings.is_empty() {
                continue;
            }
            let entry = groups.entry((ns, "Deployment".into(), name)).or_default();
            for f in findings {
                merge(&mut entry.2, f);
            }
        }
        let mut workloads: Vec<WorkloadFindings> = groups
            .into_iter()
            .filter(|(_, (_, _, f))| !f.is_empty())
            .map(
                |((namespace, kind, name), (pods_total, pods_unhealthy, mut findings))| {
                    findings.sort_by_key(|f| (severity(f.kind), f.kind));
                    WorkloadFindings {
                        namespace,
                        kind,
                        name,
                        pods_total,
                        pods_unhealthy,
                        findings,
                    }
                },
            )
            .collect();
        workloads.sort_by(|a, b| {
            let sa = a.findings.first().map_or(u8::MAX, |f| severity(f.kind));
            let sb = b.findings.first().map_or(u8::MAX, |f| severity(f.kind));
            sa.cmp(&sb)
                .then_with(|| a.namespace.cmp(&b.namespace))
                .then_with(|| a.name.cmp(&b.name))
        });
        Triage {
            pods_scanned: self.pods_scanned,
            deployments_scanned: deployments.len(),
            workloads,
        }
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TriageBuilder>();
};

const MAX_PODS_LISTED: usize = 3;

impl Triage {
    /// The compact text a model and a human read: a line per workload and a line per finding.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.workloads.is_empty() {
            let _ = write!(
                out,
                "healthy: {} pods and {} deployments checked, no problems found",
                self.pods_scanned, self.deployments_scanned
            );
            return out;
        }
        let _ = writeln!(
            out,
            "{} unhealthy workload(s) ({} pods, {} deployments checked):",
            self.workloads.len(),
            self.pods_scanned,
            self.deployments_scanned
        );
        for w in &self.workloads {
            let _ = writeln!(
                out,
                "{}/{} {}: {}/{} pods unhealthy",
                w.namespace,
                w.kind.to_lowercase(),
                w.name,
                w.pods_unhealthy,
                w.pods_total
            );
            for f in &w.findings {
                out.push_str("  - ");
                render_finding(f, &mut out);
                out.push('\n');
            }
        }
        out.truncate(out.trim_end().len());
        out
    }
}

fn render_finding(f: &Finding, out: &mut String) {
    out.push_str(f.kind.label());
    if let Some(c) = &f.container {
        let _ = write!(out, " container {c}");
    }
    if let Some(i) = &f.image {
        let _ = write!(out, " ({i})");
    }
    out.push_str(&f.detail());
    if !f.message.is_empty() && f.kind != FindingKind::CrashLoopBackOff {
        let _ = write!(out, " — {}", f.message);
    }
    if !f.pods.is_empty() {
        let shown: Vec<&str> = f
            .pods
            .iter()
            .take(MAX_PODS_LISTED)
            .map(String::as_str)
            .collect();
        let _ = write!(out, "; pods {}", shown.join(", "));
        if f.pods.len() > MAX_PODS_LISTED {
            let _ = write!(out, " +{} more", f.pods.len() - MAX_PODS_LISTED);
        }
    }
}

/// Parses a `PodList` (or any list of pods, e.g. `kubectl get pods -o json`) from JSON into the
/// facts triage reads ([`facts::pod_list_from_json`](super::facts::pod_list_from_json)): only
/// those fields are decoded; `managedFields`, annotations and the rest of each pod are skipped
/// without being decoded or allocated, and a list over 1 MiB is decoded on every core.
///
/// # Errors
/// When the JSON is not an object with an `items` array of pods; the message names what was
/// wrong, the JSON path (`items[12].status.containerStatuses[0].restartCount`), line and column.
pub fn parse_pod_list(json: &[u8]) -> Result<Vec<PodFacts>, serde_json::Error> {
    super::facts::pod_list_from_json(json)
}

/// Parses a pod list ([`parse_pod_list`]) and triages it as of now.
///
/// # Errors
/// When the JSON is not a list of pods.
pub fn triage_pod_list_json(json: &[u8]) -> Result<Triage, serde_json::Error> {
    let pods = parse_pod_list(json)?;
    Ok(triage_facts(&pods, &[], &[], Timestamp::now()))
}

/// Lists the pods, ReplicaSets and Deployments of `namespaces` (every namespace when empty; each
/// namespace separately, never cluster-wide then) and triages them as of now: what
/// `k8s_find_unhealthy` returns, as data. Lists are read in pages of `page_size` objects
/// (`limit`, following `metadata.continue`; `0` asks for one unpaginated list — the tool uses
/// 500): each pod page is decoded into facts ([`facts::pod_page_from_json`](super::facts::pod_page_from_json)),
/// triaged ([`TriageBuilder`]) and dropped before the next is asked for, so memory follows the
/// page size and the workloads, not the cluster. A list whose continue token expires while it is
/// read (410 Gone: the API server compacted it) is started over, at most twice. Needs `list` on
/// pods, replicasets and deployments.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> Result<(), sre_core::ToolError> {
/// let t = sre_tools::k8s::analyze::triage_cluster(&client, &["shop".into()], 500).await?;
/// println!("{}", t.render());
/// # Ok(()) }
/// ```
///
/// # Errors
/// A [`ToolError`](sre_core::ToolError) naming the list (`pods in namespace shop`): forbidden
/// (403) or not found (404) with the API server's message; a page that is not a list of such
/// objects, naming the page and the item (`page 3 (items 1000 onward): … at
/// items[12].status.containerStatuses[0].restartCount …, in pod "web-7"`); a list that expired
/// three times; a server that sends the same continue token twice.
pub async fn triage_cluster(
    client: &kube::Client,
    namespaces: &[String],
    page_size: u32,
) -> Result<Triage, sre_core::ToolError> {
    super::read::triage_namespaces(client, namespaces, page_size).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTS: [&str; 4] = [
        include_str!("../../tests/fixtures/k8s/podlist-crashloop-k3s.json"),
        include_str!("../../tests/fixtures/k8s/podlist-errimagepull.json"),
        include_str!("../../tests/fixtures/k8s/podlist-oomkilled-job.json"),
        include_str!("../../tests/fixtures/k8s/podlist-pending-insufficient-resources.json"),
    ];

    #[test]
    fn a_triage_fed_page_by_page_and_namespace_by_namespace_is_the_whole_lists() {
        let mut pods: Vec<PodFacts> = LISTS
            .iter()
            .flat_map(|l| parse_pod_list(l.as_bytes()).unwrap())
            .collect();
        // A terminating copy of the crash-looping pod: scanned, never a finding.
        let mut leaving = pods[0].clone();
        leaving.metadata.name.push_str("-old");
        leaving.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        pods.insert(1, leaving);
        let sets: Vec<ReplicaSet> = vec![
            serde_json::from_value(serde_json::json!({"metadata": {
                "name": "crash-loop-app-67586446fc", "namespace": pods[0].metadata.namespace,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                    "name": "crash-loop-app", "uid": "1", "controller": true}]}}))
            .unwrap(),
        ];
        let now = Timestamp::now();
        let whole = triage_facts(&pods, &sets, &[], now);
        assert_eq!(whole.pods_scanned, pods.len());
        assert!(whole.workloads.iter().all(|w| {
            w.findings
                .iter()
                .all(|f| !f.pods.iter().any(|p| p.ends_with("-old")))
        }));
        // Pages of one pod, split in two "namespaces" appended in order.
        let (a, b) = pods.split_at(3);
        let mut first = TriageBuilder::new(now);
        for p in a {
            first.add(p);
        }
        let mut second = TriageBuilder::new(now);
        for p in b {
            second.add(p);
        }
        assert_eq!(second.pods_scanned(), b.len());
        first.append(second);
        let paged = first.finish(&sets, &[]);
        assert_eq!(paged, whole);
        assert_eq!(paged.render(), whole.render());
        let crash = paged
            .workloads
            .iter()
            .find(|w| w.name == "crash-loop-app")
            .unwrap();
        assert_eq!((crash.kind.as_str(), crash.pods_total), ("Deployment", 2));
    }
}
