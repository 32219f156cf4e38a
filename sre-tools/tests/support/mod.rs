//! Test backends: the simulator, or the real API server of `../shared/k8s-apiserver` seeded with
//! the same scenario, with this harness playing the scheduler's binding and the kubelet (pod
//! status, logs, events) that the control plane there lacks.
//!
//! The real tier runs when `SRE_K8S_ADMIN_KUBECONFIG` and `SRE_K8S_AGENT_KUBECONFIG` point at a
//! running harness (`eval "$(../shared/k8s-apiserver/k8s-apiserver env)"`). Otherwise it is skipped
//! with a message — unless `SRE_K8S_REQUIRED=1` (set by `.ci/run`), which makes a missing harness a
//! failure.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a broken harness must fail the test loudly"
)]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use sre_tools::sim::Simulator;
use sre_tools::sim::kubelet::{PodRef, pod_view};
use sre_tools::sim::scenario::Scenario;
use sre_tools::sim::trivy::{Catalogue, CatalogueScanner};
use sre_tools::trivy::registry::ImageRef;
use sre_tools::trivy::report::{Severity, Vulnerability};
use sre_tools::trivy::scanner::ImageScanner;
use tokio::task::JoinHandle;

/// A cluster to test against.
pub(crate) enum Backend {
    /// The embedded simulator.
    Sim(Simulator),
    /// The real API server, seeded by this harness.
    Real(Real),
}

/// The real API server with this harness's kubelet running.
pub(crate) struct Real {
    pub(crate) admin: Client,
    pub(crate) agent: Client,
    pub(crate) suffix: String,
    /// The scenario as seeded: its text names the namespaces as they are here
    /// ([`renamed_text`]).
    pub(crate) scenario: Scenario,
    /// The images this harness's kubelet runs, and the tools' stand-in for Trivy and the
    /// registry: one catalogue, so a pinned digest is what runs.
    pub(crate) catalogue: Catalogue,
    kubelet: JoinHandle<()>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// True when the real tier must run (CI).
pub(crate) fn required() -> bool {
    env("SRE_K8S_REQUIRED").is_some_and(|v| v == "1")
}

async fn client_from(path: &str) -> Client {
    let kc = Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("kubeconfig {path}: {e}"));
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The admin and agent clients of the real harness, or `None` (with a message) when it is not up.
pub(crate) async fn real_clients() -> Option<(Client, Client)> {
    let (Some(admin), Some(agent)) = (
        env("SRE_K8S_ADMIN_KUBECONFIG"),
        env("SRE_K8S_AGENT_KUBECONFIG"),
    ) else {
        assert!(
            !required(),
            "SRE_K8S_REQUIRED=1 but SRE_K8S_ADMIN_KUBECONFIG / SRE_K8S_AGENT_KUBECONFIG are not set"
        );
        eprintln!(
            "SKIPPED: the real API server tier needs the harness: run ../shared/k8s-apiserver/k8s-apiserver up, then eval \"$(../shared/k8s-apiserver/k8s-apiserver env)\""
        );
        return None;
    };
    let admin = client_from(&admin).await;
    if let Err(e) = admin.apiserver_version().await {
        assert!(
            !required(),
            "SRE_K8S_REQUIRED=1 but the API server is not reachable: {e}"
        );
        eprintln!(
            "SKIPPED: the real API server is not reachable ({e}); start it with ../shared/k8s-apiserver/k8s-apiserver up"
        );
        return None;
    }
    Some((admin, client_from(&agent).await))
}

pub(crate) fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 100_000_000;
    format!(
        "{t:x}{}{}",
        std::process::id() % 1000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Backend {
    pub(crate) async fn sim(scenario: Scenario) -> Self {
        Self::Sim(Simulator::start(scenario).await.unwrap())
    }

    /// The real backend seeded with `scenario`, or `None` when the harness is not up.
    pub(crate) async fn real(scenario: Scenario) -> Option<Self> {
        let (admin, agent) = real_clients().await?;
        let real = Real::seed(admin, agent, scenario).await;
        Some(Self::Real(real))
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Sim(_) => "simulator",
            Self::Real(_) => "real API server",
        }
    }

    /// The namespace the scenario's `ns` became.
    pub(crate) fn ns(&self, ns: &str) -> String {
        match self {
            Self::Sim(_) => ns.to_owned(),
            Self::Real(r) => format!("{ns}-{}", r.suffix),
        }
    }

    /// The client the agent uses (least privilege).
    pub(crate) fn agent(&self) -> Client {
        match self {
            Self::Sim(s) => s.client().unwrap(),
            Self::Real(r) => r.agent.clone(),
        }
    }

    /// A client that may read everything (for assertions).
    pub(crate) fn admin(&self) -> Client {
        match self {
            Self::Sim(s) => s.client().unwrap(),
            Self::Real(r) => r.admin.clone(),
        }
    }

    /// The user name the API server reports in 403 messages.
    pub(crate) fn user(&self) -> String {
        match self {
            Self::Sim(s) => s.scenario().access.user.clone(),
            Self::Real(_) => "ai-sre".into(),
        }
    }

    pub(crate) async fn shutdown(self) {
        match self {
            Self::Sim(s) => s.shutdown().await,
            Self::Real(r) => r.teardown().await,
        }
    }
}

/// Both backends for a scenario: the simulator always, the real server when it is up.
pub(crate) async fn backends(scenario: &str) -> Vec<Backend> {
    let s = Scenario::builtin(scenario).unwrap();
    let mut out = vec![Backend::sim(s.clone()).await];
    if let Some(real) = Backend::real(s).await {
        out.push(real);
    }
    out
}

/// `text` with every mention of one of `namespaces` renamed as the harness seeds it: a word
/// that is the namespace (`namespace shop`) or starts with it and a slash (`shop/web`), with the
/// quotes and punctuation around it kept. Other words are left alone (`db.shop:5432`,
/// `ghcr.io/acme/shop-web:1.5.0`).
pub(crate) fn rename_in(text: &str, namespaces: &[String], suffix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive(char::is_whitespace) {
        let (word, space) = piece.split_at(piece.trim_end().len());
        let start = word.len() - word.trim_start_matches(['"', '\'', '(']).len();
        let end = word
            .trim_end_matches(['.', ',', ';', ':', '"', '\'', ')'])
            .len()
            .max(start);
        let core = &word[start..end];
        let renamed = namespaces.iter().find_map(|ns| {
            if core == ns {
                Some(format!("{ns}-{suffix}"))
            } else {
                core.strip_prefix(&format!("{ns}/"))
                    .map(|rest| format!("{ns}-{suffix}/{rest}"))
            }
        });
        out.push_str(&word[..start]);
        out.push_str(renamed.as_deref().unwrap_or(core));
        out.push_str(&word[end..]);
        out.push_str(space);
    }
    out
}

/// The scenario with the free text an agent reads — image logs and messages, the titles of
/// findings, and the `message`, `title` and `description` strings of extra objects — naming
/// its namespaces as seeded here, so that text aimed at `payments/api` (an injected
/// instruction) aims at the same workload on this server. Namespace fields are mapped where
/// objects are created.
pub(crate) fn renamed_text(scenario: &Scenario, suffix: &str) -> Scenario {
    fn walk(v: &mut Value, namespaces: &[String], suffix: &str) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    match v {
                        Value::String(s)
                            if matches!(k.as_str(), "message" | "title" | "description") =>
                        {
                            *s = rename_in(s, namespaces, suffix);
                        }
                        _ => walk(v, namespaces, suffix),
                    }
                }
            }
            Value::Array(items) => {
                for v in items {
                    walk(v, namespaces, suffix);
                }
            }
            _ => {}
        }
    }
    let namespaces = scenario.all_namespaces();
    let mut s = scenario.clone();
    for p in s.images.values_mut() {
        p.logs = rename_in(&p.logs, &namespaces, suffix);
        if let Some(m) = &mut p.message {
            *m = rename_in(m, &namespaces, suffix);
        }
        for f in &mut p.findings {
            if let Some(t) = &mut f.title {
                *t = rename_in(t, &namespaces, suffix);
            }
        }
    }
    for o in &mut s.objects {
        walk(o, &namespaces, suffix);
    }
    s
}

impl Real {
    async fn seed(admin: Client, agent: Client, scenario: Scenario) -> Self {
        let suffix = unique();
        let scenario = renamed_text(&scenario, &suffix);
        let catalogue = Catalogue::from_images(&scenario.images);
        let map = |ns: &str| format!("{ns}-{suffix}");
        let namespaces = scenario.all_namespaces();
        let ns_api: Api<Namespace> = Api::all(admin.clone());
        for ns in &namespaces {
            let obj: Namespace = serde_json::from_value(
                json!({"metadata": {"name": map(ns), "labels": {"sre-agent-test": "true"}}}),
            )
            .unwrap();
            ns_api.create(&PostParams::default(), &obj).await.unwrap();
        }
        // The Role of the scenario's access rules (by default deploy/rbac.yaml's), bound to ai-sre.
        for ns in &namespaces {
            let ns = map(ns);
            let rules: Vec<Value> = scenario
                .access
                .rules
                .iter()
                .map(|r| json!({"apiGroups": r.api_groups, "resources": r.resources, "verbs": r.verbs}))
                .collect();
            let role: Role = serde_json::from_value(
                json!({"metadata": {"name": "sre-agent", "namespace": ns}, "rules": rules}),
            )
            .unwrap();
            Api::<Role>::namespaced(admin.clone(), &ns)
                .create(&PostParams::default(), &role)
                .await
                .unwrap();
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": "sre-agent", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sre-agent"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ai-sre"}]
            }))
            .unwrap();
            Api::<RoleBinding>::namespaced(admin.clone(), &ns)
                .create(&PostParams::default(), &binding)
                .await
                .unwrap();
        }
        // Always: this harness plays the Trivy Operator too, and scenarios' objects may be reports.
        install_vulnerability_report_crd(&admin).await;
        let kubelet = tokio::spawn(kubelet_loop(
            admin.clone(),
            scenario.clone(),
            catalogue.clone(),
            suffix.clone(),
        ));
        for d in &scenario.deployments {
            let ns = map(&d.namespace);
            let api: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
            let revisions: Vec<BTreeMap<String, String>> =
                d.history.iter().cloned().chain([BTreeMap::new()]).collect();
            for (i, images) in revisions.iter().enumerate() {
                if i == 0 {
                    let mut obj = d.object(images);
                    obj["metadata"]["namespace"] = json!(ns);
                    obj["spec"]["progressDeadlineSeconds"] = json!(8);
                    let dep: Deployment = serde_json::from_value(obj).unwrap();
                    api.create(&PostParams::default(), &dep).await.unwrap();
                } else {
                    let patch = json!({"spec": {"template": d.template(images)}});
                    api.patch(&d.name, &PatchParams::default(), &Patch::Strategic(patch))
                        .await
                        .unwrap();
                }
                wait_settled(&api, &d.name, i + 1 == revisions.len()).await;
            }
        }
        for o in &scenario.objects {
            let mut o = o.clone();
            let ns = map(o["metadata"]["namespace"].as_str().unwrap_or("default"));
            o["metadata"]["namespace"] = json!(ns);
            // An event's namespace must be its object's (the API server validates it).
            if let Some(inv) = o.get_mut("involvedObject").and_then(Value::as_object_mut)
                && let Some(n) = inv.get("namespace").and_then(Value::as_str)
            {
                let mapped = map(n);
                inv.insert("namespace".into(), json!(mapped));
            }
            let api_version = o["apiVersion"].as_str().unwrap().to_owned();
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let gvk = GroupVersionKind::gvk(group, version, o["kind"].as_str().unwrap());
            let ar = ApiResource::from_gvk(&gvk);
            let obj: DynamicObject = serde_json::from_value(o).unwrap();
            Api::<DynamicObject>::namespaced_with(admin.clone(), &ns, &ar)
                .create(&PostParams::default(), &obj)
                .await
                .unwrap();
        }
        Self {
            admin,
            agent,
            suffix,
            scenario,
            catalogue,
            kubelet,
        }
    }

    /// This seeded scenario as a cluster for the scorecard ([`sre_tools::eval::run_case_on`]):
    /// the agent's tools as `ai-sre`, the ground truth read as admin.
    pub(crate) fn cluster(&self, limits: sre_tools::k8s::Limits) -> sre_tools::eval::Cluster {
        sre_tools::eval::Cluster {
            agent: self.agent.clone(),
            admin: self.admin.clone(),
            namespaces: self
                .scenario
                .all_namespaces()
                .into_iter()
                .map(|ns| {
                    let mapped = format!("{ns}-{}", self.suffix);
                    (ns, mapped)
                })
                .collect(),
            catalogue: self.catalogue.clone(),
            limits,
        }
    }

    async fn teardown(self) {
        self.kubelet.abort();
        let ns_api: Api<Namespace> = Api::all(self.admin.clone());
        for ns in self.scenario.all_namespaces() {
            let _ = ns_api
                .delete(&format!("{ns}-{}", self.suffix), &DeleteParams::default())
                .await;
        }
    }
}

/// Waits until a deployment's rollout has settled: complete, or (for the last revision of a
/// scenario that rolls out a bad release) stuck with the new ReplicaSet's pods created.
async fn wait_settled(api: &Api<Deployment>, name: &str, last: bool) {
    let start = tokio::time::Instant::now();
    loop {
        let d = api.get(name).await.unwrap();
        let spec_replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = d.status.clone().unwrap_or_default();
        let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        let complete = observed
            && st.updated_replicas.unwrap_or(0) == spec_replicas
            && st.available_replicas.unwrap_or(0) == spec_replicas
            && st.replicas.unwrap_or(0) == spec_replicas;
        let stuck = observed
            && st
                .conditions
                .iter()
                .flatten()
                .any(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        if complete || (last && stuck) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "deployment {name} did not settle: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn install_vulnerability_report_crd(admin: &Client) {
    // Relative to this file: the examples' tests include this module too.
    let crd: CustomResourceDefinition = serde_yaml::from_str(include_str!(
        "../fixtures/trivy-operator/vulnerabilityreports-crd.yaml"
    ))
    .unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let name = crd.metadata.name.clone().unwrap();
    match api.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("installing the VulnerabilityReport CRD: {e}"),
    }
    for _ in 0..100 {
        let c = api.get(&name).await.unwrap();
        if c.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the VulnerabilityReport CRD was not established");
}

/// Schedules and runs one pod as the scheduler and kubelet would; false to try again later.
#[expect(
    clippy::too_many_arguments,
    reason = "the harness's state for one pod, passed down from its loop"
)]
async fn play_kubelet(
    admin: &Client,
    scenario: &Scenario,
    catalogue: &Catalogue,
    ns0: &str,
    ns: &str,
    node: &str,
    log_dir: &std::path::Path,
    pod: &Pod,
) -> bool {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let app = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app"))
        .cloned()
        .unwrap_or_default();
    let unschedulable = scenario
        .deployments
        .iter()
        .find(|d| d.namespace == ns0 && d.name == app)
        .and_then(|d| d.unschedulable.clone());
    let spec = pod.spec.clone().unwrap_or_default();
    if unschedulable.is_none() && spec.node_name.is_none() {
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
        let body = binding;
        if pods
            .create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &body)
            .await
            .is_err()
        {
            return false;
        }
    }
    let containers: Vec<(String, String)> = spec
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect();
    let view = pod_view(
        PodRef {
            name: &name,
            namespace: ns,
            uid: &uid,
            node,
        },
        &containers,
        |image| catalogue.profile(image),
        unschedulable.as_deref(),
        SystemTime::now(),
    );
    let patched = pods
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": view.status})),
        )
        .await;
    if patched.is_err() {
        return false;
    }
    for l in &view.logs {
        let dir = log_dir.join(ns).join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        if let Ok(text) = &l.current {
            std::fs::write(dir.join(format!("{}.log", l.container)), text).unwrap();
        }
        if let Ok(text) = &l.previous {
            std::fs::write(dir.join(format!("{}.previous.log", l.container)), text).unwrap();
        }
    }
    let events: Api<Event> = Api::namespaced(admin.clone(), ns);
    for (i, e) in view.events.iter().enumerate() {
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let ev: Event = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}.{i:x}"), "namespace": ns},
            "involvedObject": {"kind": "Pod", "namespace": ns, "name": name, "uid": uid, "apiVersion": "v1"},
            "reason": e.reason, "message": e.message, "type": e.type_, "count": e.count,
            "source": {"component": e.source}, "firstTimestamp": now, "lastTimestamp": now
        }))
        .unwrap();
        let _ = events.create(&PostParams::default(), &ev).await;
    }
    true
}

/// Writes what the Trivy Operator would for a ReplicaSet whose images have findings: a
/// `VulnerabilityReport` per container, owned by the ReplicaSet, from the scan of the catalogue
/// the tools scan too (as the simulator does). False to try again later.
async fn play_trivy_operator(
    admin: &Client,
    catalogue: &Catalogue,
    ns: &str,
    rs: &ReplicaSet,
) -> bool {
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let containers = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|p| p.containers.clone())
        .unwrap_or_default();
    let scanner = CatalogueScanner::from(catalogue.clone());
    let api = Api::<DynamicObject>::namespaced_with(
        admin.clone(),
        ns,
        &sre_tools::trivy::operator::api_resource(),
    );
    for c in containers {
        let image = c.image.unwrap_or_default();
        // An image the catalogue does not have cannot be pulled, so it is never scanned.
        let Ok(report) = scanner.scan(&image).await else {
            continue;
        };
        let vulns: Vec<&Vulnerability> = report
            .results
            .iter()
            .flat_map(|r| &r.vulnerabilities)
            .collect();
        if vulns.is_empty() {
            continue;
        }
        let count = |s: Severity| vulns.iter().filter(|v| v.severity == s).count();
        let items: Vec<Value> = vulns
            .iter()
            .map(|v| {
                // The CRD requires these strings, and the 1.20 API server takes "" for null.
                let or_na = |s: Option<&String>| {
                    s.filter(|s| !s.is_empty())
                        .cloned()
                        .unwrap_or_else(|| "n/a".into())
                };
                json!({"vulnerabilityID": v.vulnerability_id, "resource": v.pkg_name,
                    "installedVersion": v.installed_version, "fixedVersion": or_na(v.fixed_version.as_ref()),
                    "severity": v.severity, "score": v.score().unwrap_or(0.0),
                    "title": or_na(v.title.as_ref()), "primaryLink": or_na(v.primary_url.as_ref()),
                    "links": v.primary_url.iter().collect::<Vec<_>>(), "target": image,
                    "publishedDate": "2026-01-01T00:00:00Z", "lastModifiedDate": "2026-01-01T00:00:00Z"})
            })
            .collect();
        let reference = ImageRef::parse(&image).ok();
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "VulnerabilityReport",
            "metadata": {"name": format!("replicaset-{rs_name}-{}", c.name), "namespace": ns, "labels": {
                "trivy-operator.resource.kind": "ReplicaSet", "trivy-operator.resource.name": rs_name,
                "trivy-operator.resource.namespace": ns, "trivy-operator.container.name": c.name},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                    "uid": uid, "controller": true, "blockOwnerDeletion": false}]},
            "report": {
                "artifact": {"repository": reference.as_ref().map_or(image.as_str(), |r| r.name.as_str()),
                    "tag": reference.as_ref().and_then(|r| r.tag.clone()).unwrap_or_else(|| "latest".into())},
                "registry": {"server": reference.as_ref().map_or("index.docker.io", |r| r.registry.as_str())},
                "os": {"family": "alpine", "name": "3.18"},
                "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "simulated"},
                "summary": {"criticalCount": count(Severity::Critical), "highCount": count(Severity::High),
                    "mediumCount": count(Severity::Medium), "lowCount": count(Severity::Low),
                    "unknownCount": count(Severity::Unknown)},
                "updateTimestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                "vulnerabilities": items}
        }))
        .unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("writing the VulnerabilityReport of {ns}/{rs_name}: {e}"),
        }
    }
    true
}

/// Plays the scheduler (binding) and the kubelet (status, logs, events) for the scenario's pods,
/// and the Trivy Operator for its ReplicaSets.
async fn kubelet_loop(admin: Client, scenario: Scenario, catalogue: Catalogue, suffix: String) {
    let node = env("SRE_K8S_NODE_NAME").unwrap_or_else(|| "fake-node".into());
    let log_dir = PathBuf::from(env("SRE_K8S_LOG_DIR").expect("SRE_K8S_LOG_DIR"));
    let mut done: HashSet<String> = HashSet::new();
    loop {
        for ns0 in scenario.all_namespaces() {
            let ns = format!("{ns0}-{suffix}");
            if let Ok(list) = Api::<ReplicaSet>::namespaced(admin.clone(), &ns)
                .list(&ListParams::default())
                .await
            {
                for rs in list.items {
                    let uid = rs.metadata.uid.clone().unwrap_or_default();
                    if !done.contains(&uid)
                        && play_trivy_operator(&admin, &catalogue, &ns, &rs).await
                    {
                        done.insert(uid);
                    }
                }
            }
            let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
            let Ok(list) = pods.list(&ListParams::default()).await else {
                continue;
            };
            for pod in list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if pod.metadata.deletion_timestamp.is_some() {
                    let _ = pods
                        .delete(
                            &name,
                            &DeleteParams {
                                grace_period_seconds: Some(0),
                                ..DeleteParams::default()
                            },
                        )
                        .await;
                    continue;
                }
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if done.contains(&uid) {
                    continue;
                }
                if play_kubelet(
                    &admin, &scenario, &catalogue, &ns0, &ns, &node, &log_dir, &pod,
                )
                .await
                {
                    done.insert(uid);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
