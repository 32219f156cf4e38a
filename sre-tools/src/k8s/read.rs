//! The read tools: compact, token-lean views of pods, logs, events and deployments.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, LogParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sre_core::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec, parse_args, spec_for};

use super::Inner;
use super::analyze::{self, TriageBuilder};
use super::facts;
use super::kube_error;
use super::names::{Label, Namespace, Subdomain};

pub(crate) type BoxFut<'a> =
    Pin<Box<dyn Future<Output = Result<ToolOutput, ToolError>> + Send + 'a>>;

/// A read tool made of typed arguments and an async function.
pub(crate) struct FnTool<A> {
    spec: ToolSpec,
    inner: Arc<Inner>,
    run: for<'a> fn(&'a Inner, A) -> BoxFut<'a>,
    _args: PhantomData<fn() -> A>,
}

impl<A: JsonSchema> FnTool<A> {
    pub(crate) fn new(
        inner: &Arc<Inner>,
        name: &str,
        description: &str,
        run: for<'a> fn(&'a Inner, A) -> BoxFut<'a>,
    ) -> Self {
        Self {
            spec: spec_for::<A>(name, description),
            inner: Arc::clone(inner),
            run,
            _args: PhantomData,
        }
    }
}

#[async_trait]
impl<A: DeserializeOwned + Send + 'static> Tool for FnTool<A> {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, args: &Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let args: A = parse_args(&self.spec.name, args)?;
        (self.run)(&self.inner, args).await
    }
}

/// Arguments naming a namespace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamespaceArgs {
    /// Kubernetes namespace.
    namespace: Namespace,
}

/// Arguments with an optional namespace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaybeNamespaceArgs {
    /// Default: all in scope.
    #[serde(default)]
    namespace: Option<Namespace>,
}

/// Arguments naming a pod.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PodArgs {
    /// Kubernetes namespace.
    namespace: Namespace,
    /// Pod name.
    pod: Subdomain,
}

/// Arguments of `k8s_pod_logs`. `previous` and `tail_lines` are explained in the tool's
/// description: their own would only restate their names, and a model is sent neither.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogArgs {
    /// Kubernetes namespace.
    namespace: Namespace,
    /// Pod name.
    pod: Subdomain,
    /// Container name.
    #[serde(default)]
    container: Option<Label>,
    /// Previous.
    #[serde(default)]
    previous: Option<bool>,
    /// Tail lines.
    #[serde(default)]
    #[schemars(range(min = 1, max = 5000))]
    tail_lines: Option<i64>,
}

/// Arguments of `k8s_events`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventArgs {
    /// Kubernetes namespace.
    namespace: Namespace,
    /// Only events about this object.
    #[serde(default)]
    name: Option<Subdomain>,
}

/// Arguments naming a deployment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeploymentArgs {
    /// Kubernetes namespace.
    pub(crate) namespace: Namespace,
    /// Deployment name.
    pub(crate) deployment: Subdomain,
}

/// Arguments of `k8s_rollout_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolloutArgs {
    /// Kubernetes namespace.
    namespace: Namespace,
    /// Deployment name.
    deployment: Subdomain,
    /// Timeout seconds.
    #[serde(default)]
    #[schemars(range(min = 0, max = 600))]
    timeout_seconds: Option<u64>,
}

pub(crate) fn tools(inner: &Arc<Inner>) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(FnTool::<NamespaceArgs>::new(
            inner,
            "k8s_list_pods",
            "A namespace's pods, one line each.",
            |i, a| Box::pin(list_pods(i, a)),
        )),
        Arc::new(FnTool::<MaybeNamespaceArgs>::new(
            inner,
            "k8s_find_unhealthy",
            "Start here: unhealthy workloads and their pods.",
            |i, a| Box::pin(find_unhealthy(i, a)),
        )),
        Arc::new(FnTool::<PodArgs>::new(
            inner,
            "k8s_describe_pod",
            "One pod: owner, node, containers' state, restarts, limits.",
            |i, a| Box::pin(describe_pod(i, a)),
        )),
        Arc::new(FnTool::<LogArgs>::new(
            inner,
            "k8s_pod_logs",
            "A container's last log lines (previous: of the crashed one; at most 500).",
            |i, a| Box::pin(pod_logs(i, a)),
        )),
        Arc::new(FnTool::<EventArgs>::new(
            inner,
            "k8s_events",
            "Recent events, warnings first.",
            |i, a| Box::pin(events(i, a)),
        )),
        Arc::new(FnTool::<DeploymentArgs>::new(
            inner,
            "k8s_get_deployment",
            "A deployment's status, images and revisions.",
            |i, a| Box::pin(get_deployment(i, a)),
        )),
        Arc::new(FnTool::<RolloutArgs>::new(
            inner,
            "k8s_rollout_status",
            "Wait for a deployment's rollout to finish.",
            |i, a| Box::pin(rollout_status(i, a)),
        )),
    ]
}

fn age(ts: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    let Some(t) = ts else { return "?".into() };
    let secs = Timestamp::now().as_second() - t.0.as_second();
    match secs {
        s if s < 120 => format!("{}s", s.max(0)),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn pod_line(p: &Pod) -> String {
    let name = p.metadata.name.as_deref().unwrap_or_default();
    let status = p.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    let cs = status.and_then(|s| s.container_statuses.as_ref());
    let total = p.spec.as_ref().map_or(0, |s| s.containers.len());
    let ready = cs.map_or(0, |c| c.iter().filter(|c| c.ready).count());
    let restarts: i32 = cs.map_or(0, |c| c.iter().map(|c| c.restart_count).sum());
    let waiting: Vec<&str> = cs
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .collect();
    let state = waiting.first().copied().unwrap_or(phase);
    let images: Vec<&str> = p
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.as_deref())
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{name} {state} {ready}/{total} ready, {restarts} restarts, {} {}",
        age(p.metadata.creation_timestamp.as_ref()),
        images.join(",")
    )
}

async fn list_pods(inner: &Inner, a: NamespaceArgs) -> Result<ToolOutput, ToolError> {
    inner.scope.check(&a.namespace)?;
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &a.namespace);
    let pods = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_error(&format!("pods in {}", a.namespace), &e))?;
    let mut out = format!("{} pods in {}:\n", pods.items.len(), a.namespace);
    for p in pods.items.iter().take(inner.limits.max_pods_listed) {
        out.push_str(&pod_line(p));
        out.push('\n');
    }
    if pods.items.len() > inner.limits.max_pods_listed {
        let _ = writeln!(
            out,
            "… +{} more",
            pods.items.len() - inner.limits.max_pods_listed
        );
    }
    Ok(ToolOutput::text(out.trim_end()))
}

/// How many times a list whose continue token expired (410) is started over before giving up.
const LIST_RESTARTS: u32 = 2;

/// Lists pods, replica sets and deployments of the namespaces (all namespaces when empty), page
/// by page, and triages them ([`analyze::triage_cluster`]).
pub(crate) async fn triage_namespaces(
    client: &kube::Client,
    namespaces: &[String],
    page_size: u32,
) -> Result<analyze::Triage, ToolError> {
    let now = Timestamp::now();
    let fetch = |ns: Option<&str>| {
        let where_ = ns.map_or_else(|| "all namespaces".to_owned(), |n| format!("namespace {n}"));
        let pods_url = <Pod as kube::Resource>::url_path(&(), ns);
        let sets_url = <ReplicaSet as kube::Resource>::url_path(&(), ns);
        let deps_url = <Deployment as kube::Resource>::url_path(&(), ns);
        let (pods_what, sets_what, deps_what) = (
            format!("pods in {where_}"),
            format!("replicasets in {where_}"),
            format!("deployments in {where_}"),
        );
        async move {
            let pods = list_pages(
                client,
                &pods_url,
                &pods_what,
                page_size,
                || TriageBuilder::new(now),
                |json, triage: &mut TriageBuilder| {
                    let page = facts::pod_page_from_json(json).map_err(|e| e.to_string())?;
                    for pod in &page.items {
                        triage.add(pod);
                    }
                    Ok((page.items.len(), page.continue_token))
                },
            );
            let sets = list_pages(
                client,
                &sets_url,
                &sets_what,
                page_size,
                Vec::new,
                |json, out: &mut Vec<ReplicaSet>| {
                    let page: WirePage<WireReplicaSet> =
                        serde_json::from_slice(json).map_err(|e| e.to_string())?;
                    let n = page.items.len();
                    out.extend(page.items.into_iter().map(WireReplicaSet::into_replica_set));
                    Ok((n, page.metadata.continue_token()))
                },
            );
            let deps = list_pages(
                client,
                &deps_url,
                &deps_what,
                page_size,
                Vec::new,
                |json, out: &mut Vec<Deployment>| {
                    let page: WirePage<WireDeployment> =
                        serde_json::from_slice(json).map_err(|e| e.to_string())?;
                    let n = page.items.len();
                    out.extend(page.items.into_iter().map(WireDeployment::into_deployment));
                    Ok((n, page.metadata.continue_token()))
                },
            );
            let (p, r, d) = futures::join!(pods, sets, deps);
            Ok::<_, ToolError>((p?, r?, d?))
        }
    };
    if namespaces.is_empty() {
        let (triage, sets, deps) = fetch(None).await?;
        return Ok(triage.finish(&sets, &deps));
    }
    let results = futures::future::join_all(namespaces.iter().map(|ns| fetch(Some(ns)))).await;
    let mut triage = TriageBuilder::new(now);
    let mut sets = Vec::new();
    let mut deps = Vec::new();
    for r in results {
        let (t, s, d) = r?;
        triage.append(t);
        sets.extend(s);
        deps.extend(d);
    }
    Ok(triage.finish(&sets, &deps))
}

/// Reads the list at `url` (a collection path such as `/api/v1/namespaces/shop/pods`) page by
/// page, `page_size` objects a page (`0`: one unpaginated list), following `metadata.continue`:
/// `decode` folds each page's bytes into the accumulator and says how many items it held and
/// the next continue token; the bytes are dropped before the next page is asked for. A 410 on
/// a continued page (the token expired: the API server compacted the list's snapshot) starts
/// the list over with a fresh accumulator — every page of a list is one consistent snapshot, and
/// a triage mixing two would count moved pods twice — at most [`LIST_RESTARTS`] times. `what`
/// names the list in errors (`pods in namespace shop`).
async fn list_pages<S>(
    client: &kube::Client,
    url: &str,
    what: &str,
    page_size: u32,
    init: impl Fn() -> S,
    mut decode: impl FnMut(&[u8], &mut S) -> Result<(usize, Option<String>), String>,
) -> Result<S, ToolError> {
    let request = kube::core::Request::new(url);
    let mut restarts = 0;
    'list: loop {
        let mut acc = init();
        let mut token: Option<String> = None;
        let mut page = 1_usize;
        let mut seen = 0_usize;
        loop {
            let lp = ListParams {
                limit: (page_size > 0).then_some(page_size),
                continue_token: token.clone(),
                ..ListParams::default()
            };
            let mut req = request
                .list(&lp)
                .map_err(|e| ToolError::Failed(format!("{what}: {e}")))?;
            req.extensions_mut().insert("list");
            let text = match client.request_text(req).await {
                Ok(text) => text,
                Err(kube::Error::Api(s)) if s.code == 410 && token.is_some() => {
                    if restarts == LIST_RESTARTS {
                        return Err(ToolError::Failed(format!(
                            "{what}: the list expired {} times while it was read page by page \
                             ({} {}: {}); the objects change faster than they can be listed, \
                             try again",
                            restarts + 1,
                            s.code,
                            s.reason,
                            s.message
                        )));
                    }
                    restarts += 1;
                    tracing::info!(
                        list = what,
                        page,
                        "the list's continue token expired (410); listing again from the first page"
                    );
                    continue 'list;
                }
                Err(e) => return Err(kube_error(what, &e)),
            };
            let (n, next) = decode(text.as_bytes(), &mut acc).map_err(|e| {
                ToolError::Failed(format!(
                    "{what}: cannot read page {page} of the list (items {seen} onward): {e}"
                ))
            })?;
            drop(text);
            seen += n;
            match next.filter(|t| !t.is_empty()) {
                None => return Ok(acc),
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(ToolError::Failed(format!(
                        "{what}: the API server sent the same continue token for page {} as for \
                         page {page}; stopping instead of listing forever",
                        page + 1
                    )));
                }
                Some(next) => token = Some(next),
            }
            page += 1;
        }
    }
}

/// A page of a typed list, as far as triage reads it.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct WirePage<T> {
    #[serde(default)]
    metadata: WireListMeta,
    #[serde(deserialize_with = "crate::serde_util::nullable")]
    items: Vec<T>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireListMeta {
    #[serde(rename = "continue")]
    continue_: Option<String>,
}

impl WireListMeta {
    fn continue_token(self) -> Option<String> {
        self.continue_.filter(|t| !t.is_empty())
    }
}

/// Object metadata, as far as triage reads it.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(deserialize_with = "crate::serde_util::nullable")]
    owner_references: Vec<facts::OwnerFacts>,
}

impl WireMeta {
    fn into_meta(self) -> ObjectMeta {
        let owners: Vec<OwnerReference> = self
            .owner_references
            .into_iter()
            .map(|o| OwnerReference {
                kind: o.kind,
                name: o.name,
                controller: o.controller,
                ..OwnerReference::default()
            })
            .collect();
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            owner_references: (!owners.is_empty()).then_some(owners),
            ..ObjectMeta::default()
        }
    }
}

/// A ReplicaSet as triage reads it: its name and owners (Pod → ReplicaSet → Deployment).
#[derive(Deserialize)]
struct WireReplicaSet {
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    metadata: WireMeta,
}

impl WireReplicaSet {
    fn into_replica_set(self) -> ReplicaSet {
        ReplicaSet {
            metadata: self.metadata.into_meta(),
            ..ReplicaSet::default()
        }
    }
}

/// A Deployment as triage reads it ([`analyze::analyze_deployment`]): its name, desired
/// replicas and status.
#[derive(Deserialize)]
struct WireDeployment {
    #[serde(default, deserialize_with = "crate::serde_util::nullable")]
    metadata: WireMeta,
    #[serde(default)]
    spec: Option<WireDeploymentSpec>,
    #[serde(default)]
    status: Option<DeploymentStatus>,
}

#[derive(Deserialize)]
struct WireDeploymentSpec {
    #[serde(default)]
    replicas: Option<i32>,
}

impl WireDeployment {
    fn into_deployment(self) -> Deployment {
        Deployment {
            metadata: self.metadata.into_meta(),
            spec: self.spec.map(|s| DeploymentSpec {
                replicas: s.replicas,
                ..DeploymentSpec::default()
            }),
            status: self.status,
        }
    }
}

async fn find_unhealthy(inner: &Inner, a: MaybeNamespaceArgs) -> Result<ToolOutput, ToolError> {
    let namespaces: Vec<String> = match (&a.namespace, inner.scope.list()) {
        (Some(ns), _) => {
            inner.scope.check(ns)?;
            vec![ns.to_string()]
        }
        (None, Some(scope)) => scope.to_vec(),
        (None, None) => Vec::new(),
    };
    let t = triage_namespaces(&inner.client, &namespaces, inner.limits.list_page_size).await?;
    ToolOutput::with_data(t.render(), &t)
}

fn container_state(s: Option<&k8s_openapi::api::core::v1::ContainerState>) -> String {
    let Some(s) = s else { return "unknown".into() };
    if let Some(w) = &s.waiting {
        return format!("waiting {}", w.reason.as_deref().unwrap_or_default());
    }
    if let Some(r) = &s.running {
        return format!(
            "running since {}",
            r.started_at
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default()
        );
    }
    if let Some(t) = &s.terminated {
        return format!(
            "terminated {} (exit {})",
            t.reason.as_deref().unwrap_or_default(),
            t.exit_code
        );
    }
    "unknown".into()
}

pub(crate) async fn warning_events(
    inner: &Inner,
    ns: &str,
    name: &str,
    max: usize,
) -> Result<Vec<Event>, ToolError> {
    let api: Api<Event> = Api::namespaced(inner.client.clone(), ns);
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let mut items = api
        .list(&lp)
        .await
        .map_err(|e| kube_error(&format!("events in {ns}"), &e))?
        .items;
    sort_events(&mut items);
    items.truncate(max);
    Ok(items)
}

fn event_time(e: &Event) -> i64 {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        })
        .unwrap_or(0)
}

pub(crate) fn sort_events(items: &mut [Event]) {
    items.sort_by_key(|e| (e.type_.as_deref() != Some("Warning"), -event_time(e)));
}

fn event_line(e: &Event) -> String {
    let obj = &e.involved_object;
    format!(
        "{} {} {}/{}{}: {}",
        e.type_.as_deref().unwrap_or("Normal"),
        e.reason.as_deref().unwrap_or_default(),
        obj.kind.as_deref().unwrap_or_default().to_lowercase(),
        obj.name.as_deref().unwrap_or_default(),
        e.count
            .filter(|c| *c > 1)
            .map(|c| format!(" (x{c})"))
            .unwrap_or_default(),
        e.message.as_deref().unwrap_or_default().trim()
    )
}

async fn describe_pod(inner: &Inner, a: PodArgs) -> Result<ToolOutput, ToolError> {
    inner.scope.check(&a.namespace)?;
    let what = format!("pod {}/{}", a.namespace, a.pod);
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &a.namespace);
    let pod = api.get(&a.pod).await.map_err(|e| kube_error(&what, &e))?;
    let status = pod.status.clone().unwrap_or_default();
    let mut out = String::new();
    let owner = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map_or_else(|| "none".into(), |o| format!("{}/{}", o.kind, o.name));
    let _ = writeln!(
        out,
        "{what}: phase {}, node {}, owner {owner}, age {}",
        status.phase.as_deref().unwrap_or("Unknown"),
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("<unscheduled>"),
        age(pod.metadata.creation_timestamp.as_ref())
    );
    for c in status
        .conditions
        .iter()
        .flatten()
        .filter(|c| c.status != "True")
    {
        let _ = writeln!(
            out,
            "condition {}=False {}: {}",
            c.type_,
            c.reason.as_deref().unwrap_or_default(),
            c.message.as_deref().unwrap_or_default()
        );
    }
    let statuses = status.container_statuses.clone().unwrap_or_default();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let cs = statuses.iter().find(|s| s.name == c.name);
        let limits = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .map_or_else(
                || "none".into(),
                |l| {
                    l.iter()
                        .map(|(k, v)| format!("{k}={}", v.0))
                        .collect::<Vec<_>>()
                        .join(",")
                },
            );
        let _ = write!(
            out,
            "container {} image {}: {}, ready {}, {} restarts, limits {limits}",
            c.name,
            c.image.as_deref().unwrap_or_default(),
            container_state(cs.and_then(|s| s.state.as_ref())),
            cs.is_some_and(|s| s.ready),
            cs.map_or(0, |s| s.restart_count),
        );
        if let Some(t) = cs
            .and_then(|s| s.last_state.as_ref())
            .and_then(|l| l.terminated.as_ref())
        {
            let _ = write!(
                out,
                "; last terminated {} exit {}",
                t.reason.as_deref().unwrap_or_default(),
                t.exit_code
            );
        }
        if let Some(w) = cs
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            && let Some(m) = &w.message
        {
            let _ = write!(out, "; {}", m.trim());
        }
        out.push('\n');
    }
    let events = warning_events(inner, &a.namespace, &a.pod, 5).await?;
    for e in events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
    {
        let _ = writeln!(out, "event {}", event_line(e));
    }
    Ok(ToolOutput::text(out.trim_end()))
}

async fn pod_logs(inner: &Inner, a: LogArgs) -> Result<ToolOutput, ToolError> {
    inner.scope.check(&a.namespace)?;
    let lines = a
        .tail_lines
        .unwrap_or(inner.limits.log_lines)
        .clamp(1, inner.limits.max_log_lines);
    let previous = a.previous.unwrap_or(false);
    let what = format!(
        "logs of pod {}/{}{}{}",
        a.namespace,
        a.pod,
        a.container
            .as_deref()
            .map(|c| format!(" container {c}"))
            .unwrap_or_default(),
        if previous { " (previous)" } else { "" }
    );
    let api: Api<Pod> = Api::namespaced(inner.client.clone(), &a.namespace);
    let lp = LogParams {
        container: a.container.as_ref().map(ToString::to_string),
        previous,
        tail_lines: Some(lines),
        limit_bytes: Some(inner.limits.max_log_bytes),
        ..LogParams::default()
    };
    let text = api
        .logs(&a.pod, &lp)
        .await
        .map_err(|e| kube_error(&what, &e))?;
    let count = text.lines().count();
    if count == 0 {
        return Ok(ToolOutput::text(format!("{what}: empty")));
    }
    Ok(ToolOutput::text(format!(
        "{what}, last {count} lines:\n{}",
        text.trim_end()
    )))
}

async fn events(inner: &Inner, a: EventArgs) -> Result<ToolOutput, ToolError> {
    inner.scope.check(&a.namespace)?;
    let api: Api<Event> = Api::namespaced(inner.client.clone(), &a.namespace);
    let mut lp = ListParams::default();
    if let Some(name) = &a.name {
        lp = lp.fields(&format!("involvedObject.name={name}"));
    }
    let mut items = api
        .list(&lp)
        .await
        .map_err(|e| kube_error(&format!("events in {}", a.namespace), &e))?
        .items;
    let total = items.len();
    sort_events(&mut items);
    items.truncate(inner.limits.max_events);
    let warnings = items
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .count();
    let mut out = format!(
        "{total} events in {}{} ({warnings} warnings shown first):\n",
        a.namespace,
        a.name
            .as_deref()
            .map(|n| format!(" about {n}"))
            .unwrap_or_default()
    );
    for e in &items {
        out.push_str(&event_line(e));
        out.push('\n');
    }
    if total > items.len() {
        let _ = writeln!(out, "… +{} older events", total - items.len());
    }
    Ok(ToolOutput::text(out.trim_end()))
}

/// The ReplicaSets a deployment owns, by revision.
pub(crate) async fn revisions(
    inner: &Inner,
    dep: &Deployment,
) -> Result<BTreeMap<u64, ReplicaSet>, ToolError> {
    let ns = dep.metadata.namespace.clone().unwrap_or_default();
    let name = dep.metadata.name.clone().unwrap_or_default();
    let uid = dep.metadata.uid.clone();
    let api: Api<ReplicaSet> = Api::namespaced(inner.client.clone(), &ns);
    let lp = ListParams::default().labels(&selector_of(dep));
    let sets = api
        .list(&lp)
        .await
        .map_err(|e| kube_error(&format!("replicasets of deployment {ns}/{name}"), &e))?;
    let mut out: BTreeMap<u64, ReplicaSet> = BTreeMap::new();
    for rs in sets.items {
        // Only ReplicaSets this very deployment controls (a matching name is not enough: anyone
        // who can create a ReplicaSet could plant one).
        let owned = rs.metadata.owner_references.iter().flatten().any(|o| {
            o.kind == "Deployment"
                && o.controller == Some(true)
                && uid.as_deref().is_some_and(|u| o.uid == u)
        });
        let Some(rev) = revision_of(&rs.metadata).filter(|_| owned) else {
            continue;
        };
        if let Some(other) = out.get(&rev) {
            return Err(ToolError::Refused(format!(
                "deployment {ns}/{name} has two ReplicaSets with revision {rev} ({} and {}); refusing to guess which one a rollback would copy",
                other.metadata.name.as_deref().unwrap_or("?"),
                rs.metadata.name.as_deref().unwrap_or("?")
            )));
        }
        out.insert(rev, rs);
    }
    Ok(out)
}

/// The deployment's `matchLabels` as a label selector (`a=b,c=d`).
pub(crate) fn selector_of(dep: &Deployment) -> String {
    dep.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub(crate) fn revision_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<u64> {
    meta.annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")?
        .parse()
        .ok()
}

/// Every container's image of a pod template — regular, init and ephemeral containers — as
/// `(name, image)`. What a policy must check before a template is applied.
pub(crate) fn all_images_of(
    template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> Vec<(String, String)> {
    let Some(spec) = template.and_then(|t| t.spec.as_ref()) else {
        return Vec::new();
    };
    let regular = spec
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()));
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()));
    regular.chain(init).chain(ephemeral).collect()
}

/// The regular containers' images of a pod template, as `(name, image)`, in order.
pub(crate) fn images_of(
    template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> Vec<(String, String)> {
    template
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn images_text(images: &[(String, String)]) -> String {
    images
        .iter()
        .map(|(c, i)| format!("{c}={i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn get_deployment(inner: &Inner, a: DeploymentArgs) -> Result<ToolOutput, ToolError> {
    inner.scope.check(&a.namespace)?;
    let what = format!("deployment {}/{}", a.namespace, a.deployment);
    let api: Api<Deployment> = Api::namespaced(inner.client.clone(), &a.namespace);
    let dep = api
        .get(&a.deployment)
        .await
        .map_err(|e| kube_error(&what, &e))?;
    let spec = dep.spec.clone().unwrap_or_default();
    let st = dep.status.clone().unwrap_or_default();
    let current = revision_of(&dep.metadata);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{what}: {} desired, {} updated, {} ready, {} available, revision {}, resourceVersion {}",
        spec.replicas.unwrap_or(1),
        st.updated_replicas.unwrap_or(0),
        st.ready_replicas.unwrap_or(0),
        st.available_replicas.unwrap_or(0),
        current.map_or_else(|| "?".into(), |r| r.to_string()),
        dep.metadata.resource_version.as_deref().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "images: {}",
        images_text(&all_images_of(Some(&spec.template)))
    );
    for c in st.conditions.iter().flatten() {
        let _ = writeln!(
            out,
            "condition {}={} {}: {}",
            c.type_,
            c.status,
            c.reason.as_deref().unwrap_or_default(),
            c.message.as_deref().unwrap_or_default()
        );
    }
    let revs = revisions(inner, &dep).await?;
    let to_data = |images: Vec<(String, String)>| -> Vec<crate::data::ContainerImage> {
        images
            .into_iter()
            .map(|(container, image)| crate::data::ContainerImage { container, image })
            .collect()
    };
    let data = crate::data::DeploymentData {
        namespace: a.namespace.to_string(),
        name: a.deployment.to_string(),
        images: to_data(all_images_of(Some(&spec.template))),
        revisions: revs
            .iter()
            .rev()
            .map(|(rev, rs)| crate::data::RevisionData {
                number: *rev,
                current: Some(*rev) == current,
                images: to_data(all_images_of(
                    rs.spec.as_ref().and_then(|s| s.template.as_ref()),
                )),
            })
            .collect(),
    };
    out.push_str("revisions (newest first):\n");
    for (rev, rs) in revs.iter().rev().take(5) {
        let _ = writeln!(
            out,
            "  {rev}{}: {} ({} pods, {} ready)",
            if Some(*rev) == current {
                " (current)"
            } else {
                ""
            },
            images_text(&all_images_of(
                rs.spec.as_ref().and_then(|s| s.template.as_ref())
            )),
            rs.status.as_ref().map_or(0, |s| s.replicas),
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
        );
    }
    ToolOutput::with_data(out.trim_end(), &data)
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rollout {
    Complete,
    Failed,
    InProgress,
}

pub(crate) fn rollout_state(dep: &Deployment) -> (Rollout, String) {
    let desired = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = dep.status.clone().unwrap_or_default();
    let generation = dep.metadata.generation.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let counts = format!("{updated}/{desired} updated, {available}/{desired} available");
    if let Some(c) = st.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) && observed >= generation
    {
        return (
            Rollout::Failed,
            format!(
                "rollout failed: {} ({counts})",
                c.message.as_deref().unwrap_or("progress deadline exceeded")
            ),
        );
    }
    if observed >= generation && updated == desired && available == desired && total == desired {
        return (Rollout::Complete, format!("rollout complete: {counts}"));
    }
    (
        Rollout::InProgress,
        format!("rollout in progress: {counts}, {total} pods in all"),
    )
}

/// Polls a deployment until its rollout completes or fails, or `timeout` passes.
pub(crate) async fn wait_rollout(
    inner: &Inner,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<(Rollout, String), ToolError> {
    let what = format!("deployment {ns}/{name}");
    let api: Api<Deployment> = Api::namespaced(inner.client.clone(), ns);
    let start = tokio::time::Instant::now();
    loop {
        let dep = api.get(name).await.map_err(|e| kube_error(&what, &e))?;
        let (state, text) = rollout_state(&dep);
        if state != Rollout::InProgress {
            return Ok((state, format!("{what}: {text}")));
        }
        if start.elapsed() >= timeout {
            return Ok((
                state,
                format!("{what}: not complete after {}s: {text}", timeout.as_secs()),
            ));
        }
        tokio::time::sleep(
            inner.limits.poll_interval.min(
                timeout
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_millis(10)),
            ),
        )
        .await;
    }
}

async fn rollout_status(inner: &Inner, a: RolloutArgs) -> Result<ToolOutput, ToolError> {
    inner.scope.check(&a.namespace)?;
    let timeout = a.timeout_seconds.map_or(inner.limits.rollout_timeout, |s| {
        Duration::from_secs(s.min(600))
    });
    let (_, text) = wait_rollout(inner, &a.namespace, &a.deployment, timeout).await?;
    Ok(ToolOutput::text(text))
}
