//! `k8s_find_unhealthy` end to end on the real API server of `../shared/k8s-apiserver`: list +
//! parse + triage of a namespace of 1,000 pods, as the limited user `ai-sre`, timed per call
//! (best and median of N calls) with the process's peak memory over those calls.
//!
//! Seeds a fresh namespace `bench-unhealthy-…` with the admin kubeconfig: 20 Deployments of 50
//! pods (2 containers each, with resources, probes, env and annotations; the controller-manager
//! creates the ReplicaSets and pods, so each pod carries the API server's `managedFields`), binds
//! every pod to the fake node and writes its status through the status subresource as a kubelet
//! would: running and ready, or — one Deployment each — `CrashLoopBackOff` (last exit 1),
//! `ImagePullBackOff` and `OOMKilled` (then `CrashLoopBackOff`, exit 137). It grants `ai-sre` a
//! Role to list pods, replicasets and deployments there, calls the tool N times and deletes the
//! namespace at the end (`--keep` leaves it; `--namespace NS` reuses a kept one).
//!
//! `--page N` sets the list page size (`limit`; `0`: one unpaginated list) through
//! `sre_tools::k8s::analyze::triage_cluster`, the function the tool runs; without it the tool
//! itself is called (500 pods a page). Prints one line per configuration: `calls=… best_ms=…
//! median_ms=… cpu_ms_per_call=… rss_before_mib=… peak_mib=…` — wall time per call (the API
//! server's own work included: it shares the machine), this process's CPU time per call (the
//! client's list decoding and triage), and the peak resident memory (`VmHWM`, reset after
//! seeding through `/proc/self/clear_refs`, so it covers the calls only).
//!
//! ```sh
//! ../shared/k8s-apiserver/k8s-apiserver status || ../shared/k8s-apiserver/k8s-apiserver up
//! eval "$(../shared/k8s-apiserver/k8s-apiserver env)"
//! cargo run --release -p sre-benches --bin harness-find-unhealthy -- --pods 1000 --calls 20
//! cargo run --release -p sre-benches --bin harness-find-unhealthy -- --pods 1000 --page 0 --page 500
//! ```

#![expect(
    clippy::cast_precision_loss,
    reason = "times and sizes printed as decimals"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use sre_core::{Tool, ToolContext};
use sre_tools::k8s::{K8s, Scope};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Pods per Deployment.
const REPLICAS: usize = 50;
/// Bindings and status writes in flight at once while seeding.
const IN_FLIGHT: usize = 16;

/// How a Deployment's pods look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Healthy,
    CrashLoop,
    ImagePull,
    OomKilled,
}

struct Args {
    pods: usize,
    calls: usize,
    pages: Vec<u32>,
    namespace: Option<String>,
    keep: bool,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args {
        pods: 1000,
        calls: 20,
        pages: Vec::new(),
        namespace: None,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--pods" => a.pods = value("--pods")?.parse()?,
            "--calls" => a.calls = value("--calls")?.parse()?,
            "--page" => a.pages.push(value("--page")?.parse()?),
            "--namespace" => a.namespace = Some(value("--namespace")?),
            "--keep" => a.keep = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: [--pods N] [--calls N] [--page N]... [--namespace NS] [--keep]"
                )
                .into());
            }
        }
    }
    if a.pods == 0 || !a.pods.is_multiple_of(REPLICAS) {
        return Err(format!("--pods must be a positive multiple of {REPLICAS}").into());
    }
    a.calls = a.calls.max(1);
    Ok(a)
}

fn env(name: &str) -> Result<String, BoxError> {
    std::env::var(name).map_err(|_| {
        format!(
            "{name} is not set: start the harness and load its environment: \
             ../shared/k8s-apiserver/k8s-apiserver up && eval \"$(../shared/k8s-apiserver/k8s-apiserver env)\""
        )
        .into()
    })
}

async fn client(kubeconfig_env: &str) -> Result<Client, BoxError> {
    let path = env(kubeconfig_env)?;
    let kc = Kubeconfig::read_from(&path)?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The CPU time this process has used (user and system), in milliseconds (`/proc/self/stat`,
/// clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name (the state,
    // field 3, is 0).
    (ticks(11) + ticks(12)) as f64 * 10.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Resets the peak resident memory (`VmHWM`) to the current one.
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset VmHWM ({e}); the peak includes the seeding");
    }
}

fn shape_of(deployment: usize, deployments: usize) -> Shape {
    match deployments - 1 - deployment {
        0 => Shape::OomKilled,
        1 => Shape::ImagePull,
        2 => Shape::CrashLoop,
        _ => Shape::Healthy,
    }
}

fn deployment_json(ns: &str, i: usize, shape: Shape) -> Value {
    let name = format!("svc-{i:02}");
    let image = match shape {
        Shape::ImagePull => format!("registry.example.com/shop/{name}:9.9.9-typo"),
        _ => format!("registry.example.com/shop/{name}:1.4.2"),
    };
    json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name, "team": "shop"}},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name, "team": "shop", "version": "1.4.2"},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": "9090",
                        "kubectl.kubernetes.io/restartedAt": "2026-01-05T10:00:00Z",
                        "checksum/config": "3f1b0c9e5d2a7b4c8e6f0a1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f3"
                    }
                },
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
                            "env": [
                                {"name": "LOG_LEVEL", "value": "info"},
                                {"name": "DB_HOST", "value": "postgres.shop.svc.cluster.local"},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                            ],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
                        },
                        {
                            "name": "envoy",
                            "image": "envoyproxy/envoy:v1.29.1",
                            "ports": [{"containerPort": 15001}],
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
                        }
                    ]
                }
            }
        }
    })
}

fn running(name: &str, image: &str, ready: bool) -> Value {
    json!({"name": name, "image": image, "imageID": format!("{image}@sha256:{}", "ab12".repeat(16)),
        "containerID": "containerd://0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "ready": ready, "started": true, "restartCount": 0,
        "state": {"running": {"startedAt": "2026-01-05T10:00:05Z"}}, "lastState": {}})
}

/// The status a kubelet would report for a pod of this shape.
fn status_json(shape: Shape, app_image: &str) -> Value {
    let envoy = running("envoy", "envoyproxy/envoy:v1.29.1", true);
    let app = match shape {
        Shape::Healthy => running("app", app_image, true),
        Shape::CrashLoop => {
            json!({"name": "app", "image": app_image, "imageID": "", "ready": false,
            "started": false, "restartCount": 7,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 5m0s restarting failed container=app pod=…"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": "2026-01-05T10:20:00Z", "finishedAt": "2026-01-05T10:20:02Z"}}})
        }
        Shape::ImagePull => {
            json!({"name": "app", "image": app_image, "imageID": "", "ready": false,
            "started": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": format!("Back-off pulling image \"{app_image}\"")}},
            "lastState": {}})
        }
        Shape::OomKilled => {
            json!({"name": "app", "image": app_image, "imageID": "", "ready": false,
            "started": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 1m20s restarting failed container=app pod=…"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                "startedAt": "2026-01-05T10:20:00Z", "finishedAt": "2026-01-05T10:20:31Z"}}})
        }
    };
    let ready = if shape == Shape::Healthy {
        "True"
    } else {
        "False"
    };
    let condition = |t: &str, s: &str| {
        json!({"type": t, "status": s, "lastProbeTime": null,
            "lastTransitionTime": "2026-01-05T10:00:01Z"})
    };
    let mut ready_cond = condition("Ready", ready);
    let mut containers_ready = condition("ContainersReady", ready);
    if shape != Shape::Healthy {
        for c in [&mut ready_cond, &mut containers_ready] {
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!("containers with unready status: [app]");
        }
    }
    json!({"status": {
        "phase": "Running",
        "conditions": [condition("Initialized", "True"), ready_cond, containers_ready,
            condition("PodScheduled", "True")],
        "hostIP": "10.0.0.11", "podIP": "10.244.1.17", "podIPs": [{"ip": "10.244.1.17"}],
        "startTime": "2026-01-05T10:00:00Z", "qosClass": "Burstable",
        "containerStatuses": [app, envoy]
    }})
}

/// Creates the namespace, and a Role and RoleBinding letting `ai-sre` list what the tool lists.
async fn namespace_for_ai_sre(admin: &Client, ns: &str) -> Result<(), BoxError> {
    let namespace: Namespace = serde_json::from_value(
        json!({"metadata": {"name": ns, "labels": {"sre-agent-bench": "true"}}}),
    )?;
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "sre-agent-find-unhealthy", "namespace": ns},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": ["apps"], "resources": ["replicasets", "deployments"], "verbs": ["list"]}
        ]
    }))?;
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "sre-agent-find-unhealthy", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sre-agent-find-unhealthy"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ai-sre"}]
    }))?;
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

async fn seed(admin: &Client, ns: &str, pods: usize) -> Result<(), BoxError> {
    let started = Instant::now();
    namespace_for_ai_sre(admin, ns).await?;
    let deployments = pods / REPLICAS;
    let deps: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let mut images = BTreeMap::new();
    for i in 0..deployments {
        let shape = shape_of(i, deployments);
        let d: Deployment = serde_json::from_value(deployment_json(ns, i, shape))?;
        let image = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers[0].image.clone())
            .unwrap_or_default();
        images.insert(format!("svc-{i:02}"), (shape, image));
        deps.create(&PostParams::default(), &d).await?;
    }
    // The controller-manager creates the ReplicaSets and pods.
    let api: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let list = loop {
        let list = api.list(&ListParams::default()).await?;
        if list.items.len() >= pods {
            break list;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "only {} of {pods} pods were created in 5 minutes",
                list.items.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "{} pods created in {:.1} s; binding them and writing their status",
        list.items.len(),
        started.elapsed().as_secs_f64()
    );
    let node = std::env::var("SRE_K8S_NODE_NAME").unwrap_or_else(|_| "fake-node".into());
    let mut tasks = tokio::task::JoinSet::new();
    for pod in list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let app = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .cloned()
            .unwrap_or_default();
        let (shape, image) = images.get(&app).cloned().ok_or("a pod of no deployment")?;
        let api = api.clone();
        let node = node.clone();
        if tasks.len() >= IN_FLIGHT
            && let Some(done) = tasks.join_next().await
        {
            done??;
        }
        tasks.spawn(async move {
            let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
            let _: Value = api
                .create_subresource("binding", &name, &PostParams::default(), &binding)
                .await?;
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(status_json(shape, &image)),
            )
            .await?;
            Ok::<_, BoxError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    eprintln!(
        "seeded namespace {ns}: {pods} pods in {deployments} deployments in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Deletes the namespace and force-deletes its pods (bound to the fake node, they would wait for
/// a kubelet forever).
async fn teardown(admin: &Client, ns: &str) -> Result<(), BoxError> {
    Api::<Namespace>::all(admin.clone())
        .delete(ns, &DeleteParams::default())
        .await?;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    for _ in 0..60 {
        let _ = pods.delete_collection(&now, &ListParams::default()).await?;
        if pods
            .list(&ListParams::default().limit(1))
            .await?
            .items
            .is_empty()
        {
            eprintln!("deleted namespace {ns}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("the pods of namespace {ns} are still there after 30 s").into())
}

fn unique() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 100_000_000);
    format!("{t:x}{}", std::process::id() % 1000)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What one call returns: the rendered text's first line and the data.
async fn call(
    tool: &dyn Tool,
    agent: &Client,
    ns: &str,
    page: Option<u32>,
) -> Result<(String, Value), BoxError> {
    match page {
        None => {
            let out = tool
                .call(&json!({"namespace": ns}), &ToolContext::default())
                .await?;
            Ok((
                out.content.lines().next().unwrap_or_default().to_owned(),
                out.data.unwrap_or(Value::Null),
            ))
        }
        Some(page) => {
            let t = sre_tools::k8s::analyze::triage_cluster(agent, &[ns.to_owned()], page).await?;
            let text = t.render();
            Ok((
                text.lines().next().unwrap_or_default().to_owned(),
                serde_json::to_value(&t)?,
            ))
        }
    }
}

async fn measure(
    tool: &dyn Tool,
    agent: &Client,
    ns: &str,
    page: Option<u32>,
    calls: usize,
) -> Result<Value, BoxError> {
    // One call to warm up the connection, then the timed ones.
    let (_, data) = call(tool, agent, ns, page).await?;
    reset_peak();
    let before = status_kib("VmRSS:");
    let mut times = Vec::with_capacity(calls);
    let mut first = String::new();
    let cpu = cpu_ms();
    for _ in 0..calls {
        let start = Instant::now();
        let (line, _) = call(tool, agent, ns, page).await?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        first = line;
    }
    let what = page.map_or_else(
        || "tool k8s_find_unhealthy".to_owned(),
        |p| format!("triage_cluster page={p}"),
    );
    let cpu = (cpu_ms() - cpu) / calls as f64;
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{what}: calls={calls} best_ms={best:.1} median_ms={:.1} cpu_ms_per_call={cpu:.1} rss_before_mib={:.1} peak_mib={:.1} | {first}",
        median(times),
        mib(before),
        mib(status_kib("VmHWM:")),
    );
    Ok(data)
}

async fn run() -> Result<(), BoxError> {
    let a = args()?;
    let admin = client("SRE_K8S_ADMIN_KUBECONFIG").await?;
    let agent = client("SRE_K8S_AGENT_KUBECONFIG").await?;
    let ns = if let Some(ns) = &a.namespace {
        ns.clone()
    } else {
        let ns = format!("bench-unhealthy-{}", unique());
        seed(&admin, &ns, a.pods).await?;
        ns
    };
    let result = async {
        let k8s = K8s::new(agent.clone(), Scope::namespaces([ns.as_str()]));
        let tool = k8s
            .read_tools()
            .into_iter()
            .find(|t| t.spec().name == "k8s_find_unhealthy")
            .ok_or("no k8s_find_unhealthy tool")?;
        let mut runs: Vec<Option<u32>> = a.pages.iter().copied().map(Some).collect();
        if runs.is_empty() {
            runs.push(None);
        }
        let mut reference: Option<Value> = None;
        for page in runs {
            let data = measure(tool.as_ref(), &agent, &ns, page, a.calls).await?;
            match &reference {
                None => reference = Some(data),
                Some(r) if *r == data => {}
                Some(_) => return Err("two page sizes gave different triages".into()),
            }
        }
        Ok::<_, BoxError>(())
    }
    .await;
    if a.keep {
        eprintln!("kept namespace {ns} (reuse it with --namespace {ns})");
    } else {
        teardown(&admin, &ns).await?;
    }
    result
}

fn main() -> Result<(), BoxError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}
