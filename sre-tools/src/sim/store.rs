//! The simulator's state: every object once as its JSON bytes with the fields lists filter on
//! ([`super::objects`]), a resourceVersion counter, a short history of changes for watches, pod
//! logs, and the controller that turns deployments into replica sets and pods whose health comes
//! from the scenario's image catalogue.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::kubelet;
use super::objects::{Change, ChangeKind, Stored};
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

/// The type a stored plural names (`None` for objects of a kind the simulator does not serve).
pub(crate) fn type_of_plural(plural: &str) -> Option<&'static ResourceType> {
    TYPES.iter().find(|t| t.plural == plural)
}

/// Key of a stored object: resource plural, namespace ("" for cluster-scoped), name.
pub(crate) type Key = (&'static str, String, String);

/// A log answer: the text, or the API server's 400 message.
pub(crate) type LogResult = Result<String, String>;

const NODE: &str = "sim-node-1";
const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

/// How many changes the store keeps for watches (the API server's watch cache keeps a window
/// too; a watch from before it gets `410 Gone`).
pub(crate) const HISTORY: usize = 2048;

pub(crate) struct Store {
    pub(crate) rv: u64,
    objects: BTreeMap<Key, Arc<Stored>>,
    /// The latest changes, oldest first, once the scenario is seeded.
    history: VecDeque<Change>,
    /// Every change after this resourceVersion is in `history`.
    history_after: u64,
    recording: bool,
    /// Wakes watches: the resourceVersion of the latest change.
    signal: tokio::sync::watch::Sender<u64>,
    /// Set when the simulator stops: watches end.
    pub(crate) closed: bool,
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
            history: VecDeque::new(),
            history_after: 0,
            recording: false,
            signal: tokio::sync::watch::Sender::new(1000),
            closed: false,
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
        // The seeded state is where watches start: a watch from before it gets 410 Gone.
        store.history_after = store.rv;
        store.recording = true;
        store.signal.send_replace(store.rv);
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

    /// Stores an object, setting uid, creationTimestamp and a new resourceVersion; returns it
    /// as stored.
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
        let stored = match Stored::encode(type_of_plural(plural), plural, &obj, self.rv) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                // A `Value` always serializes; nothing to store if it somehow did not.
                tracing::error!(error = %e, "simulator cannot encode {plural} {ns}/{name}");
                return obj;
            }
        };
        if !self.recording {
            self.objects.insert((plural, ns, name), stored);
            return obj;
        }
        let previous = self
            .objects
            .insert((plural, ns.clone(), name.clone()), Arc::clone(&stored));
        let kind = if previous.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.record(Change {
            kind,
            plural,
            namespace: ns,
            name,
            object: stored,
            previous,
        });
        obj
    }

    /// Removes an object, as a delete does: a new resourceVersion, and a `DELETED` change with
    /// the object as it was, at that resourceVersion.
    pub(crate) fn remove(&mut self, plural: &'static str, ns: &str, name: &str) {
        let Some(old) = self
            .objects
            .remove(&(plural, ns.to_owned(), name.to_owned()))
        else {
            return;
        };
        self.rv += 1;
        if !self.recording {
            return;
        }
        let t = type_of_plural(plural);
        let mut last = old.decode(t);
        if let Some(meta) = last.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        let object = match Stored::encode(t, plural, &last, self.rv) {
            Ok(s) => Arc::new(s),
            Err(_) => Arc::clone(&old),
        };
        self.record(Change {
            kind: ChangeKind::Deleted,
            plural,
            namespace: ns.to_owned(),
            name: name.to_owned(),
            object,
            previous: Some(old),
        });
    }

    fn record(&mut self, change: Change) {
        if !self.recording {
            return;
        }
        self.history.push_back(change);
        while self.history.len() > HISTORY {
            if let Some(dropped) = self.history.pop_front() {
                self.history_after = dropped.object.rv;
            }
        }
        self.signal.send_replace(self.rv);
    }

    /// The changes after resourceVersion `rv`, oldest first, or `Err` with the oldest
    /// resourceVersion a watch can still start from when `rv` is older than the history.
    pub(crate) fn changes_after(&self, rv: u64) -> Result<impl Iterator<Item = &Change>, u64> {
        if rv < self.history_after {
            return Err(self.history_after);
        }
        let from = self.history.partition_point(|c| c.object.rv <= rv);
        Ok(self.history.range(from..))
    }

    /// A receiver that wakes on every change and when the simulator stops.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signal.subscribe()
    }

    /// Stops every watch (the simulator is shutting down).
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.signal.send_modify(|_| {});
    }

    /// The stored object.
    pub(crate) fn stored(
        &self,
        plural: &'static str,
        ns: &str,
        name: &str,
    ) -> Option<&Arc<Stored>> {
        self.objects.get(&(plural, ns.to_owned(), name.to_owned()))
    }

    /// The stored object, decoded.
    pub(crate) fn get(&self, plural: &'static str, ns: &str, name: &str) -> Option<Value> {
        self.stored(plural, ns, name)
            .map(|s| s.decode(type_of_plural(plural)))
    }

    /// The objects of `plural` in key order (namespace, then name), from `from` (a namespace and
    /// name, inclusive) on, within namespace `ns` when given.
    pub(crate) fn range<'a>(
        &'a self,
        plural: &'static str,
        ns: Option<&'a str>,
        from: (&str, &str),
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Stored>)> + 'a {
        self.objects
            .range((plural, from.0.to_owned(), from.1.to_owned())..)
            .take_while(move |((p, n, _), _)| *p == plural && ns.is_none_or(|ns| n == ns))
    }

    /// The bytes of JSON stored for every object.
    pub(crate) fn stored_bytes(&self) -> usize {
        self.objects.values().map(|o| o.len()).sum()
    }

    /// Every stored key.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.objects.keys()
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
                .unwrap_or(dep);
        }
        dep["spec"]["template"] = d.template(&BTreeMap::new());
        self.put("deployments", dep);
        self.reconcile(&d.namespace, &d.name, false);
    }

    fn owned_replica_sets(&self, ns: &str, dep_name: &str) -> Vec<Value> {
        let t = type_of_plural("replicasets");
        self.range("replicasets", Some(ns), (ns, ""))
            .filter(|(_, rs)| rs.owner() == dep_name)
            .map(|(_, rs)| rs.decode(t))
            .collect()
    }

    /// The names of the pods of ReplicaSet `rs_name` in `ns`, and whether each is ready.
    fn pods_of(&self, ns: &str, rs_name: &str) -> Vec<(String, bool)> {
        let prefix = format!("{rs_name}-");
        self.range("pods", Some(ns), (ns, &prefix))
            .take_while(|((_, _, name), _)| name.starts_with(&prefix))
            .filter(|(_, pod)| pod.owner() == rs_name)
            .map(|((_, _, name), pod)| (name.clone(), pod.ready))
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
        let Some(mut dep) = self.get("deployments", ns, name) else {
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
        let existing = self.pods_of(ns, &rs_name);
        let have = i64::try_from(existing.len()).unwrap_or(i64::MAX);
        for (name, _) in existing
            .iter()
            .skip(usize::try_from(want.max(0)).unwrap_or(0))
        {
            self.remove("pods", ns, name);
            self.logs.retain(|(n, p, _), _| !(n == ns && p == name));
        }
        for _ in have..want {
            self.create_pod(rs, ns, dep_name);
        }
        let pods = self.pods_of(ns, &rs_name);
        let ready = pods.iter().filter(|(_, ready)| *ready).count();
        (
            i64::try_from(pods.len()).unwrap_or(i64::MAX),
            i64::try_from(ready).unwrap_or(i64::MAX),
        )
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
            if self.stored("vulnerabilityreports", &ns, &name).is_some() {
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
