//! The simulator's state: objects as JSON (like the API server's storage), a resourceVersion
//! counter, pod logs, and the controller that turns deployments into replica sets and pods whose
//! health comes from the scenario's image catalogue.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::kubelet;
use super::scenario::{Access, ContainerSpec, DeploymentSpec, Health, ImageProfile, Scenario};
use super::trivy::Catalogue;
use crate::trivy::report::Severity;

/// What the simulator knows about a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResourceType {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
}

pub(crate) const TYPES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
    },
    ResourceType {
        group: "aquasecurity.github.io",
        version: "v1alpha1",
        plural: "vulnerabilityreports",
        kind: "VulnerabilityReport",
        namespaced: true,
    },
];

pub(crate) fn resource_type(group: &str, plural: &str) -> Option<&'static ResourceType> {
    TYPES
        .iter()
        .find(|t| t.group == group && t.plural == plural)
}

fn type_of_kind(kind: &str) -> Option<&'static ResourceType> {
    TYPES.iter().find(|t| t.kind == kind)
}

/// Key of a stored object: resource plural, namespace ("" for cluster-scoped), name.
pub(crate) type Key = (&'static str, String, String);

/// A log answer: the text, or the API server's 400 message.
pub(crate) type LogResult = Result<String, String>;

const NODE: &str = "sim-node-1";
const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

pub(crate) struct Store {
    pub(crate) rv: u64,
    pub(crate) objects: BTreeMap<Key, Value>,
    /// (namespace, pod, container) → (current, previous).
    pub(crate) logs: HashMap<(String, String, String), (LogResult, LogResult)>,
    /// The live image catalogue, shared with the simulator's scanner and tag lister.
    pub(crate) catalogue: Catalogue,
    pub(crate) access: Access,
    unschedulable: HashMap<(String, String), String>,
    seq: u64,
    emit_events: bool,
    epoch: SystemTime,
}

fn ts(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn hash10(v: &Value) -> String {
    let digest = Sha256::digest(sre_core::audit::canonical_json(v).as_bytes());
    hex::encode(&digest[..5])
}

/// The (name, image) of every container of a pod spec.
pub(crate) fn container_images(pod_spec: &Value) -> Vec<(String, String)> {
    pod_spec
        .get("containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        str_at(c, "/name").to_owned(),
                        str_at(c, "/image").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Store {
    pub(crate) fn new(scenario: &Scenario, catalogue: Catalogue) -> Self {
        let mut access = scenario.access.clone();
        if access.namespaces.is_empty() {
            access.namespaces = scenario.all_namespaces();
        }
        let mut store = Self {
            rv: 1000,
            objects: BTreeMap::new(),
            logs: HashMap::new(),
            catalogue,
            access,
            unschedulable: HashMap::new(),
            seq: 0,
            emit_events: true,
            epoch: SystemTime::now(),
        };
        for ns in scenario.all_namespaces() {
            store.put(
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]},
                       "status": {"phase": "Active"}}),
            );
        }
        for d in &scenario.deployments {
            store.create_deployment(d);
        }
        if let Some(b) = &scenario.bulk {
            store.emit_events = false;
            for n in 0..b.namespaces {
                for i in 0..b.deployments {
                    let image = if b.unhealthy_every > 0
                        && (n * b.deployments + i) % b.unhealthy_every == 0
                    {
                        b.unhealthy_image.clone()
                    } else {
                        b.image.clone()
                    };
                    store.create_deployment(&DeploymentSpec {
                        namespace: format!("bulk-{n}"),
                        name: format!("svc-{i}"),
                        replicas: b.replicas,
                        containers: vec![ContainerSpec {
                            name: "app".into(),
                            image,
                            resources: None,
                        }],
                        history: Vec::new(),
                        unschedulable: None,
                    });
                }
            }
            store.emit_events = true;
        }
        for o in &scenario.objects {
            let kind = str_at(o, "/kind");
            let plural = type_of_kind(kind).map_or("unknown", |t| t.plural);
            store.put(plural, o.clone());
        }
        store
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn uid(&mut self) -> String {
        let n = self.next();
        let h = hex::encode(Sha256::digest(n.to_le_bytes()));
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let n = self.next();
        let digest = Sha256::digest(n.to_be_bytes());
        digest[..5]
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect()
    }

    fn now(&self) -> String {
        ts(SystemTime::now().max(self.epoch))
    }

    /// Stores an object, setting uid, creationTimestamp and a new resourceVersion.
    pub(crate) fn put(&mut self, plural: &'static str, mut obj: Value) -> Value {
        self.rv += 1;
        let rv = self.rv.to_string();
        let uid = if obj.pointer("/metadata/uid").is_none() {
            Some(self.uid())
        } else {
            None
        };
        let now = self.now();
        let meta = obj
            .as_object_mut()
            .and_then(|o| o.get_mut("metadata"))
            .and_then(Value::as_object_mut);
        if let Some(meta) = meta {
            meta.insert("resourceVersion".into(), Value::String(rv));
            if let Some(uid) = uid {
                meta.insert("uid".into(), Value::String(uid));
            }
            meta.entry("creationTimestamp")
                .or_insert(Value::String(now));
        }
        let ns = str_at(&obj, "/metadata/namespace").to_owned();
        let name = str_at(&obj, "/metadata/name").to_owned();
        self.objects.insert((plural, ns, name), obj.clone());
        obj
    }

    pub(crate) fn get(&self, plural: &'static str, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(plural, ns.to_owned(), name.to_owned()))
    }

    /// What a pod starting now gets for `image`: a tag's current content, or the content a
    /// digest names (pods keep what they got when they started).
    fn profile(&self, image: &str) -> ImageProfile {
        self.catalogue.profile(image)
    }

    fn create_deployment(&mut self, d: &DeploymentSpec) {
        if let Some(msg) = &d.unschedulable {
            self.unschedulable
                .insert((d.namespace.clone(), d.name.clone()), msg.clone());
        }
        let mut dep = d.object(&BTreeMap::new());
        // The last earlier revision was serving when the current one rolled out.
        for (i, images) in d.history.iter().enumerate() {
            dep["spec"]["template"] = d.template(images);
            self.put("deployments", dep.clone());
            self.reconcile(&d.namespace, &d.name, i + 1 < d.history.len());
            dep = self
                .get("deployments", &d.namespace, &d.name)
                .cloned()
                .unwrap_or(dep);
        }
        dep["spec"]["template"] = d.template(&BTreeMap::new());
        self.put("deployments", dep);
        self.reconcile(&d.namespace, &d.name, false);
    }

    fn owned_replica_sets(&self, ns: &str, dep_name: &str) -> Vec<Value> {
        self.objects
            .range(("replicasets", ns.to_owned(), String::new())..)
            .take_while(|((p, n, _), _)| *p == "replicasets" && n == ns)
            .filter(|(_, rs)| {
                rs.pointer("/metadata/ownerReferences/0/name")
                    .and_then(Value::as_str)
                    == Some(dep_name)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn revision(obj: &Value) -> u64 {
        obj.pointer("/metadata/annotations")
            .and_then(|a| a.get(REVISION))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn template_healthy(&self, template: &Value) -> bool {
        template
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .all(|c| self.profile(str_at(c, "/image")).health == Health::Healthy)
            })
    }

    /// The deployment controller and the kubelet in one step: make the ReplicaSets and pods match
    /// the deployment, and compute every status. `history` rolls out instantly (old revisions).
    #[expect(
        clippy::too_many_lines,
        reason = "the deployment controller's one pass: revisions, scaling, pods, status"
    )]
    pub(crate) fn reconcile(&mut self, ns: &str, name: &str, history: bool) {
        let Some(mut dep) = self.get("deployments", ns, name).cloned() else {
            return;
        };
        let desired = dep
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0);
        let template = dep
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        let mut hashed = template.clone();
        if let Some(labels) = hashed
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove(HASH);
        }
        let hash = hash10(&hashed);
        let mut sets = self.owned_replica_sets(ns, name);
        let top_revision = sets.iter().map(Self::revision).max().unwrap_or(0);
        let rs_name = format!("{name}-{hash}");
        let dep_uid = str_at(&dep, "/metadata/uid").to_owned();
        let mut new_rs = if let Some(existing) =
            sets.iter().find(|s| str_at(s, "/metadata/name") == rs_name)
        {
            existing.clone()
        } else {
            let mut t = hashed.clone();
            t["metadata"]["labels"][HASH] = Value::String(hash.clone());
            let mut selector = dep
                .pointer("/spec/selector/matchLabels")
                .cloned()
                .unwrap_or_else(|| json!({}));
            selector[HASH] = Value::String(hash.clone());
            let mut labels = t["metadata"]["labels"].clone();
            labels[HASH] = Value::String(hash.clone());
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                    "annotations": {REVISION: (top_revision + 1).to_string()},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                        "uid": dep_uid, "controller": true, "blockOwnerDeletion": true}],
                    "generation": 1},
                "spec": {"replicas": 0, "selector": {"matchLabels": selector}, "template": t},
                "status": {"replicas": 0, "observedGeneration": 1}
            });
            sets.push(rs.clone());
            rs
        };
        if Self::revision(&new_rs) < top_revision || Self::revision(&new_rs) == 0 {
            new_rs["metadata"]["annotations"][REVISION] =
                Value::String((top_revision + 1).to_string());
        }
        let revision = Self::revision(&new_rs);
        let healthy = self.template_healthy(&template)
            && !self
                .unschedulable
                .contains_key(&(ns.to_owned(), name.to_owned()));
        // The previous ReplicaSet that still has pods keeps serving during a stalled rollout.
        let old_serving = sets
            .iter()
            .filter(|s| str_at(s, "/metadata/name") != rs_name)
            .filter(|s| {
                s.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    > 0
            })
            .max_by_key(|s| {
                s.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            })
            .map(|s| str_at(s, "/metadata/name").to_owned());
        let max_unavailable = desired / 4;
        let surge = (desired + 3) / 4;
        let mut scale: BTreeMap<String, i64> = BTreeMap::new();
        for s in &sets {
            scale.insert(str_at(s, "/metadata/name").to_owned(), 0);
        }
        match (&old_serving, healthy || history) {
            (Some(old), false) => {
                scale.insert(rs_name.clone(), surge.max(1).min(desired.max(1)));
                scale.insert(old.clone(), desired - max_unavailable);
            }
            _ => {
                scale.insert(rs_name.clone(), desired);
            }
        }
        if history {
            scale.insert(rs_name.clone(), 0);
        }
        dep["metadata"]["annotations"][REVISION] = Value::String(revision.to_string());
        let mut events = Vec::new();
        let mut ready_total = 0;
        let mut pods_total = 0;
        let mut new_ready = 0;
        for mut rs in sets {
            let this = str_at(&rs, "/metadata/name").to_owned();
            if this == rs_name {
                rs["metadata"]["annotations"] = new_rs["metadata"]["annotations"].clone();
            }
            let want = scale.get(&this).copied().unwrap_or(0);
            let had = rs
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if want != had && !history {
                let verb = if want > had { "up" } else { "down" };
                events.push((
                    format!("Scaled {verb} replica set {this} to {want}"),
                    "ScalingReplicaSet",
                    "Normal",
                ));
            }
            rs["spec"]["replicas"] = json!(want);
            let rs = self.put("replicasets", rs);
            if want > 0 {
                self.vulnerability_reports(&rs);
            }
            let (pods, ready) = self.sync_pods(&rs, want, ns, name);
            pods_total += pods;
            ready_total += ready;
            if this == rs_name {
                new_ready = ready;
            }
            let mut rs = rs;
            rs["status"] = json!({"replicas": pods, "fullyLabeledReplicas": pods, "readyReplicas": ready,
                                  "availableReplicas": ready, "observedGeneration": 1});
            self.put("replicasets", rs);
        }
        let updated = scale.get(&rs_name).copied().unwrap_or(0);
        let available_ok = ready_total >= desired - max_unavailable;
        let progressed = new_ready >= desired && updated == desired;
        let now = self.now();
        let cond = |t: &str, ok: bool, reason: &str, msg: String| {
            json!({"type": t, "status": if ok { "True" } else { "False" }, "reason": reason, "message": msg,
                   "lastUpdateTime": now, "lastTransitionTime": now})
        };
        let mut status = Map::new();
        status.insert(
            "observedGeneration".into(),
            dep.pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1)),
        );
        status.insert("replicas".into(), json!(pods_total));
        status.insert("updatedReplicas".into(), json!(updated));
        status.insert("readyReplicas".into(), json!(ready_total));
        status.insert("availableReplicas".into(), json!(ready_total));
        if pods_total > ready_total {
            status.insert(
                "unavailableReplicas".into(),
                json!(pods_total - ready_total),
            );
        }
        status.insert(
            "conditions".into(),
            json!([
                if available_ok {
                    cond(
                        "Available",
                        true,
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.".into(),
                    )
                } else {
                    cond(
                        "Available",
                        false,
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.".into(),
                    )
                },
                if progressed {
                    cond(
                        "Progressing",
                        true,
                        "NewReplicaSetAvailable",
                        format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                    )
                } else {
                    cond(
                        "Progressing",
                        false,
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                    )
                }
            ]),
        );
        dep["status"] = Value::Object(status);
        let dep = self.put("deployments", dep);
        for (msg, reason, kind) in events {
            self.event(&dep, reason, kind, &msg, "deployment-controller", 1);
        }
    }

    /// Makes the pods of a ReplicaSet match `want`; returns (pods, ready pods).
    fn sync_pods(&mut self, rs: &Value, want: i64, ns: &str, dep_name: &str) -> (i64, i64) {
        let rs_name = str_at(rs, "/metadata/name").to_owned();
        let existing: Vec<String> = self
            .objects
            .range(("pods", ns.to_owned(), format!("{rs_name}-"))..)
            .take_while(|((p, n, name), _)| {
                *p == "pods" && n == ns && name.starts_with(&format!("{rs_name}-"))
            })
            .filter(|(_, pod)| str_at(pod, "/metadata/ownerReferences/0/name") == rs_name)
            .map(|((_, _, name), _)| name.clone())
            .collect();
        let have = i64::try_from(existing.len()).unwrap_or(i64::MAX);
        for name in existing
            .iter()
            .skip(usize::try_from(want.max(0)).unwrap_or(0))
        {
            self.objects.remove(&("pods", ns.to_owned(), name.clone()));
            self.logs.retain(|(n, p, _), _| !(n == ns && p == name));
        }
        for _ in have..want {
            self.create_pod(rs, ns, dep_name);
        }
        let mut pods = 0;
        let mut ready = 0;
        for ((_, _, _), pod) in self
            .objects
            .range(("pods", ns.to_owned(), format!("{rs_name}-"))..)
            .take_while(|((p, n, name), _)| {
                *p == "pods" && n == ns && name.starts_with(&format!("{rs_name}-"))
            })
        {
            if str_at(pod, "/metadata/ownerReferences/0/name") != rs_name {
                continue;
            }
            pods += 1;
            if pod
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["ready"] == json!(true)))
            {
                ready += 1;
            }
        }
        (pods, ready)
    }

    fn create_pod(&mut self, rs: &Value, ns: &str, dep_name: &str) {
        let rs_name = str_at(rs, "/metadata/name").to_owned();
        let name = format!("{rs_name}-{}", self.suffix());
        let uid = self.uid();
        let now = SystemTime::now().max(self.epoch);
        let template = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        let unschedulable = self
            .unschedulable
            .get(&(ns.to_owned(), dep_name.to_owned()))
            .cloned();
        let containers = container_images(&spec);
        let pod_ref = kubelet::PodRef {
            name: &name,
            namespace: ns,
            uid: &uid,
            node: NODE,
        };
        let view = kubelet::pod_view(
            pod_ref,
            &containers,
            |image| self.profile(image),
            unschedulable.as_deref(),
            now,
        );
        if view.scheduled
            && let Some(s) = spec.as_object_mut()
        {
            s.insert("nodeName".into(), json!(NODE));
        }
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        labels[HASH] = rs
            .pointer(&format!("/metadata/labels/{HASH}"))
            .cloned()
            .unwrap_or(Value::Null);
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "generateName": format!("{rs_name}-"), "namespace": ns, "uid": uid,
                "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                    "uid": str_at(rs, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true}]},
            "spec": spec,
            "status": view.status
        });
        for l in view.logs {
            self.logs.insert(
                (ns.to_owned(), name.clone(), l.container),
                (l.current, l.previous),
            );
        }
        let pod = self.put("pods", pod);
        for e in view.events {
            self.event(&pod, e.reason, e.type_, &e.message, e.source, e.count);
        }
    }

    /// What the Trivy Operator would write for a running ReplicaSet whose images have findings.
    fn vulnerability_reports(&mut self, rs: &Value) {
        if !self.emit_events {
            return;
        }
        let ns = str_at(rs, "/metadata/namespace").to_owned();
        let rs_name = str_at(rs, "/metadata/name").to_owned();
        let containers =
            container_images(rs.pointer("/spec/template/spec").unwrap_or(&Value::Null));
        for (container, image) in containers {
            let Some(profile) = self.catalogue.resolve(&image) else {
                continue;
            };
            let count = |s: Severity| super::trivy::severity_count(&profile, s);
            if Severity::ALL.iter().all(|s| count(*s) == 0) {
                continue;
            }
            let name = format!("replicaset-{rs_name}-{container}");
            if self.get("vulnerabilityreports", &ns, &name).is_some() {
                continue;
            }
            // The explicit findings and up to 5 generated ones per severity.
            let vulns: Vec<Value> = super::trivy::vulnerabilities(&profile, 5)
                .into_iter()
                .map(|v| {
                    let score = v.cvss.get("nvd").and_then(|c| c.v3_score).unwrap_or(0.0);
                    json!({"vulnerabilityID": v.vulnerability_id, "resource": v.pkg_name,
                        "installedVersion": v.installed_version, "fixedVersion": v.fixed_version.unwrap_or_default(),
                        "severity": v.severity, "score": score, "title": v.title.unwrap_or_default(),
                        "primaryLink": v.primary_url.clone().unwrap_or_default(),
                        "links": v.primary_url.into_iter().collect::<Vec<_>>(),
                        "target": image.clone(), "publishedDate": "2026-01-01T00:00:00Z", "lastModifiedDate": "2026-01-01T00:00:00Z"})
                })
                .collect();
            let reference = crate::trivy::registry::ImageRef::parse(&image).ok();
            let repo = reference
                .as_ref()
                .map_or(image.as_str(), |r| r.name.as_str());
            let tag = reference.as_ref().and_then(|r| r.tag.clone());
            let server = match reference.as_ref().map(|r| r.registry.as_str()) {
                Some("docker.io") | None => "index.docker.io",
                Some(other) => other,
            };
            let report = json!({
                "apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "VulnerabilityReport",
                "metadata": {"name": name, "namespace": ns, "labels": {
                    "trivy-operator.resource.kind": "ReplicaSet", "trivy-operator.resource.name": rs_name,
                    "trivy-operator.resource.namespace": ns, "trivy-operator.container.name": container},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                        "uid": str_at(rs, "/metadata/uid"), "controller": true, "blockOwnerDeletion": false}]},
                "report": {"artifact": {"repository": repo, "tag": tag, "digest": profile.digest},
                    "registry": {"server": server}, "os": {"family": "alpine", "name": "3.18"},
                    "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "simulated"},
                    "summary": {"criticalCount": count(Severity::Critical), "highCount": count(Severity::High),
                        "mediumCount": count(Severity::Medium), "lowCount": count(Severity::Low),
                        "unknownCount": count(Severity::Unknown)},
                    "updateTimestamp": self.now(), "vulnerabilities": vulns}
            });
            self.put("vulnerabilityreports", report);
        }
    }

    fn event(
        &mut self,
        about: &Value,
        reason: &str,
        kind: &str,
        message: &str,
        source: &str,
        count: i32,
    ) {
        if !self.emit_events {
            return;
        }
        let ns = str_at(about, "/metadata/namespace").to_owned();
        let name = format!(
            "{}.{:016x}",
            str_at(about, "/metadata/name"),
            self.rv * 1000 + self.seq
        );
        let now = self.now();
        let api_version = str_at(about, "/apiVersion").to_owned();
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {"kind": str_at(about, "/kind"), "namespace": ns, "name": str_at(about, "/metadata/name"),
                "uid": str_at(about, "/metadata/uid"), "apiVersion": api_version,
                "resourceVersion": str_at(about, "/metadata/resourceVersion")},
            "reason": reason, "message": message, "source": {"component": source},
            "firstTimestamp": now, "lastTimestamp": now, "count": count, "type": kind,
            "eventTime": null, "reportingComponent": "", "reportingInstance": ""
        });
        self.put("events", ev);
    }
}
