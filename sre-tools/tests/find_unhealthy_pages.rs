//! `k8s_find_unhealthy` reads its lists page by page: against a loopback API server that serves
//! pages with continue tokens (every request asserted: path, `limit`, `continue`), that expires a
//! token (410 `Expired`, the API server's own Status), that repeats a token or sends a broken
//! pod; and against the real API server of `../shared/k8s-apiserver` (when its harness is up),
//! where 25 pods read 10 a page give every unhealthy pod exactly once.

#![cfg(feature = "sim")]
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sre_core::{Tool, ToolContext, ToolError};
use sre_tools::k8s::analyze::{FindingKind, Triage, triage_cluster};
use sre_tools::k8s::{K8s, Limits, Scope};

const TOKEN: &str = "s3cr3t-bearer-token-for-the-loopback";
const RS: &str = "web-7d9f8b6c5d";

/// The API server's Status for an expired continue token (Kubernetes 1.20, `Expired`, 410).
fn expired_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1",
        "metadata": {"continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDcxMSwic3RhcnQiOiJ3ZWItNFx1MDAwMCJ9"},
        "status": "Failure",
        "message": "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        "reason": "Expired", "code": 410})
}

fn fixture(path: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/k8s")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Pod `i` of deployment `web` in `shop`: real pod objects (k3s and kind fixtures) renamed.
fn pod(i: usize, shape: &str) -> Value {
    let mut p = match shape {
        "crash" => fixture("podlist-crashloop-k3s.json")["items"][0].clone(),
        "pull" => fixture("podlist-errimagepull.json")["items"][0].clone(),
        _ => fixture("pod-running-healthy.json"),
    };
    p["metadata"]["name"] = json!(format!("{RS}-{i:05}"));
    p["metadata"]["namespace"] = json!("shop");
    p["metadata"]["labels"] = json!({"app": "web", "pod-template-hash": "7d9f8b6c5d"});
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": RS, "uid": "0b7c3c9e-5d1f-4f39-9a53-c1d2e3f4a5b6", "controller": true,
        "blockOwnerDeletion": true}]);
    p
}

/// Seven pods: three crash-looping, one failing to pull its image, three healthy.
fn pods() -> Vec<Value> {
    ["ok", "crash", "ok", "pull", "crash", "ok", "crash"]
        .iter()
        .enumerate()
        .map(|(i, shape)| pod(i, shape))
        .collect()
}

fn replica_sets() -> Vec<Value> {
    vec![
        json!({"metadata": {"name": RS, "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": "5a1e", "controller": true}]},
            "spec": {"replicas": 7, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 7}}),
        json!({"metadata": {"name": "api-5c8d7f9b6", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                "uid": "6b2f", "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "api"}}},
            "status": {"replicas": 0}}),
    ]
}

fn deployments() -> Vec<Value> {
    let mut web = fixture("deployment-available.json");
    web["metadata"]["name"] = json!("web");
    web["metadata"]["namespace"] = json!("shop");
    web["spec"]["replicas"] = json!(7);
    web["status"]["availableReplicas"] = json!(3);
    web["status"]["readyReplicas"] = json!(3);
    web["status"]["unavailableReplicas"] = json!(4);
    vec![web]
}

/// What the loopback server does with continue tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Serves the pages.
    Pages,
    /// Answers 410 `Expired` the first time a continue token of the pods is used.
    ExpireOnce,
    /// Answers 410 `Expired` to every continue token of the pods.
    ExpireAlways,
    /// Sends the same continue token on every page.
    RepeatToken,
    /// Answers 403 to the ReplicaSets' list, as RBAC does.
    ForbidReplicaSets,
}

struct Server {
    /// Items per page, per collection (`pods`, `replicasets`, `deployments`).
    page: BTreeMap<&'static str, usize>,
    pods: Vec<Value>,
    mode: Mode,
    expired: Mutex<bool>,
    /// `path?query` of every request.
    log: Mutex<Vec<String>>,
}

async fn serve_list(
    State(s): State<Arc<Server>>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    s.log.lock().unwrap().push(
        uri.path_and_query()
            .map_or_else(String::new, |p| p.as_str().to_owned()),
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (StatusCode::UNAUTHORIZED, "no bearer token").into_response();
    }
    let (collection, kind, items) = match uri.path() {
        "/api/v1/namespaces/shop/pods" => ("pods", "PodList", s.pods.clone()),
        "/apis/apps/v1/namespaces/shop/replicasets" => {
            ("replicasets", "ReplicaSetList", replica_sets())
        }
        "/apis/apps/v1/namespaces/shop/deployments" => {
            ("deployments", "DeploymentList", deployments())
        }
        other => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": format!("the server could not find the requested resource ({other})"),
                    "reason": "NotFound", "details": {}, "code": 404})),
            )
                .into_response();
        }
    };
    if s.mode == Mode::ForbidReplicaSets && collection == "replicasets" {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": "replicasets.apps is forbidden: User \"ai-sre\" cannot list resource \"replicasets\" in API group \"apps\" in the namespace \"shop\"",
                "reason": "Forbidden", "details": {"group": "apps", "kind": "replicasets"}, "code": 403})),
        )
            .into_response();
    }
    let token = q.get("continue");
    if token.is_some() && collection == "pods" {
        let expire = match s.mode {
            Mode::ExpireAlways => true,
            Mode::ExpireOnce => !std::mem::replace(&mut *s.expired.lock().unwrap(), true),
            _ => false,
        };
        if expire {
            return (StatusCode::GONE, axum::Json(expired_status())).into_response();
        }
    }
    let size = s.page[collection];
    let start: usize = token.map_or(0, |t| t.strip_prefix("from-").unwrap().parse().unwrap());
    let end = (start + size).min(items.len());
    let mut metadata = json!({"resourceVersion": "4711"});
    if s.mode == Mode::RepeatToken && collection == "pods" {
        metadata["continue"] = json!(format!("from-{size}"));
    } else if end < items.len() {
        metadata["continue"] = json!(format!("from-{end}"));
        metadata["remainingItemCount"] = json!(items.len() - end);
    } else if collection == "replicasets" {
        // Some servers send an empty token on the last page rather than none.
        metadata["continue"] = json!("");
    }
    axum::Json(
        json!({"kind": kind, "apiVersion": if collection == "pods" { "v1" } else { "apps/v1" },
        "metadata": metadata, "items": &items[start..end]}),
    )
    .into_response()
}

/// A loopback API server (pods `page_pods` a page, ReplicaSets one a page) and a client for it.
async fn server(pods: Vec<Value>, page_pods: usize, mode: Mode) -> (Arc<Server>, Client) {
    let state = Arc::new(Server {
        page: BTreeMap::from([("pods", page_pods), ("replicasets", 1), ("deployments", 10)]),
        pods,
        mode,
        expired: Mutex::new(false),
        log: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(serve_list)
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut config = kube::Config::new(url.parse().unwrap());
    config.auth_info.token = Some(TOKEN.to_owned().into());
    (state, Client::try_from(config).unwrap())
}

fn tool(client: &Client) -> Arc<dyn Tool> {
    K8s::new(client.clone(), Scope::namespaces(["shop"]))
        .read_tools()
        .into_iter()
        .find(|t| t.spec().name == "k8s_find_unhealthy")
        .unwrap()
}

async fn find_unhealthy(client: &Client) -> Result<(String, Triage), ToolError> {
    let out = tool(client)
        .call(&json!({"namespace": "shop"}), &ToolContext::default())
        .await?;
    Ok((
        out.content,
        serde_json::from_value(out.data.unwrap()).unwrap(),
    ))
}

fn requests(s: &Server, collection: &str) -> Vec<String> {
    s.log
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains(&format!("/{collection}?")))
        // kube's request builder starts the query with `&` (`/pods?&limit=500`); servers ignore
        // the empty pair.
        .map(|r| {
            r.split_once('?')
                .unwrap()
                .1
                .trim_start_matches('&')
                .to_owned()
        })
        .collect()
}

fn pods_of(t: &Triage, kind: FindingKind) -> Vec<String> {
    let mut pods: Vec<String> = t
        .workloads
        .iter()
        .flat_map(|w| &w.findings)
        .filter(|f| f.kind == kind)
        .flat_map(|f| f.pods.clone())
        .collect();
    pods.sort();
    pods
}

fn names(indexes: &[usize]) -> Vec<String> {
    indexes.iter().map(|i| format!("{RS}-{i:05}")).collect()
}

fn assert_secret_free(e: &ToolError) {
    assert!(
        !e.to_string().contains(TOKEN) && !format!("{e:?}").contains(TOKEN),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_tool_follows_continue_tokens_and_sees_every_pod_once() {
    let (paged, client) = server(pods(), 3, Mode::Pages).await;
    let (text, t) = find_unhealthy(&client).await.unwrap();
    // Every request asks for 500 a page and follows the token it was given.
    assert_eq!(
        requests(&paged, "pods"),
        [
            "limit=500",
            "limit=500&continue=from-3",
            "limit=500&continue=from-6"
        ]
    );
    assert_eq!(
        requests(&paged, "replicasets"),
        ["limit=500", "limit=500&continue=from-1"]
    );
    assert_eq!(requests(&paged, "deployments"), ["limit=500"]);
    assert_eq!((t.pods_scanned, t.deployments_scanned), (7, 1));
    assert_eq!(
        pods_of(&t, FindingKind::CrashLoopBackOff),
        names(&[1, 4, 6])
    );
    assert_eq!(pods_of(&t, FindingKind::ImagePull), names(&[3]));
    // Owners resolved through the ReplicaSet of the second page: one workload, Deployment web.
    assert_eq!(t.workloads.len(), 1, "{text}");
    let w = &t.workloads[0];
    assert_eq!(
        (
            w.kind.as_str(),
            w.name.as_str(),
            w.pods_total,
            w.pods_unhealthy
        ),
        ("Deployment", "web", 7, 4)
    );
    assert!(
        w.findings
            .iter()
            .any(|f| f.kind == FindingKind::UnavailableReplicas),
        "{text}"
    );
    // The same cluster served as one page gives the same text and data.
    let (single, client) = server(pods(), 100, Mode::Pages).await;
    assert_eq!(find_unhealthy(&client).await.unwrap(), (text, t));
    assert_eq!(requests(&single, "pods"), ["limit=500"]);
}

#[tokio::test]
async fn page_size_zero_is_one_unpaginated_list_and_gives_the_same_triage() {
    let (s, client) = server(pods(), 100, Mode::Pages).await;
    let whole = triage_cluster(&client, &["shop".into()], 0).await.unwrap();
    assert_eq!(requests(&s, "pods"), [""]);
    let (s, client) = server(pods(), 2, Mode::Pages).await;
    let paged = triage_cluster(&client, &["shop".into()], 2).await.unwrap();
    assert_eq!(
        requests(&s, "pods"),
        [
            "limit=2",
            "limit=2&continue=from-2",
            "limit=2&continue=from-4",
            "limit=2&continue=from-6"
        ]
    );
    assert_eq!(paged, whole);
    assert_eq!(whole.pods_scanned, 7);
}

#[tokio::test]
async fn the_tool_lists_in_pages_of_the_configured_size() {
    let (s, client) = server(pods(), 3, Mode::Pages).await;
    let limits = Limits {
        list_page_size: 3,
        ..Limits::default()
    };
    let tool = K8s::with_limits(client.clone(), Scope::namespaces(["shop"]), limits)
        .read_tools()
        .into_iter()
        .find(|t| t.spec().name == "k8s_find_unhealthy")
        .unwrap();
    let out = tool
        .call(&json!({"namespace": "shop"}), &ToolContext::default())
        .await
        .unwrap();
    let t: Triage = serde_json::from_value(out.data.unwrap()).unwrap();
    assert_eq!(
        requests(&s, "pods"),
        [
            "limit=3",
            "limit=3&continue=from-3",
            "limit=3&continue=from-6"
        ]
    );
    assert_eq!(t.pods_scanned, 7);
}

#[tokio::test]
async fn an_expired_continue_token_starts_the_list_over_and_counts_each_pod_once() {
    let (s, client) = server(pods(), 3, Mode::ExpireOnce).await;
    let (_, t) = find_unhealthy(&client).await.unwrap();
    // The pods' second page expired: the list started over from the first page.
    assert_eq!(
        requests(&s, "pods"),
        [
            "limit=500",
            "limit=500&continue=from-3",
            "limit=500",
            "limit=500&continue=from-3",
            "limit=500&continue=from-6"
        ]
    );
    assert_eq!(
        t.pods_scanned, 7,
        "the first attempt's pages are not counted"
    );
    assert_eq!(
        pods_of(&t, FindingKind::CrashLoopBackOff),
        names(&[1, 4, 6])
    );
    assert_eq!(t.workloads[0].pods_total, 7);
}

#[tokio::test]
async fn a_list_that_keeps_expiring_is_a_clear_error() {
    let (s, client) = server(pods(), 3, Mode::ExpireAlways).await;
    let e = find_unhealthy(&client).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("pods in namespace shop: the list expired 3 times while it was read page by page (410 Expired: The provided continue parameter is too old"),
        "{msg}"
    );
    assert!(msg.contains("try again"), "{msg}");
    assert_eq!(
        requests(&s, "pods"),
        [
            "limit=500",
            "limit=500&continue=from-3",
            "limit=500",
            "limit=500&continue=from-3",
            "limit=500",
            "limit=500&continue=from-3"
        ]
    );
    assert_secret_free(&e);
}

#[tokio::test]
async fn a_repeated_continue_token_stops_the_list() {
    let (s, client) = server(pods(), 3, Mode::RepeatToken).await;
    let e = find_unhealthy(&client).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "pods in namespace shop: the API server sent the same continue token for page 3 as for page 2; stopping instead of listing forever"
    );
    assert_eq!(requests(&s, "pods").len(), 2);
}

#[tokio::test]
async fn a_broken_pod_is_named_with_its_page_path_and_name() {
    let mut pods = pods();
    pods[4]["status"]["containerStatuses"][0]["restartCount"] = json!("seven");
    let (_, client) = server(pods, 3, Mode::Pages).await;
    let e = find_unhealthy(&client).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "pods in namespace shop: cannot read page 2 of the list (items 3 onward): expected an integer, found a string at items[1].status.containerStatuses[0].restartCount (line 1, column "
        ),
        "{msg}"
    );
    assert!(msg.ends_with(&format!("), in pod \"{RS}-00004\"")), "{msg}");
    assert_secret_free(&e);
}

#[tokio::test]
async fn a_forbidden_list_keeps_the_api_servers_message() {
    let (s, client) = server(pods(), 3, Mode::ForbidReplicaSets).await;
    let e = find_unhealthy(&client).await.unwrap_err();
    assert!(matches!(e, ToolError::Forbidden(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "forbidden: replicasets in namespace shop: replicasets.apps is forbidden: User \"ai-sre\" cannot list resource \"replicasets\" in API group \"apps\" in the namespace \"shop\""
    );
    assert_eq!(requests(&s, "replicasets"), ["limit=500"]);
    assert_secret_free(&e);
}

// ---------------------------------------------------------------------------------------------
// The real API server, as the limited user ai-sre
// ---------------------------------------------------------------------------------------------

/// A fresh namespace where ai-sre may list pods, replicasets and deployments: all that
/// `k8s_find_unhealthy` needs, nothing more.
async fn namespace_for_ai_sre(admin: &Client) -> String {
    let ns = format!("pages-{}", support::unique());
    let obj: Namespace = serde_json::from_value(
        json!({"metadata": {"name": ns, "labels": {"sre-agent-test": "true"}}}),
    )
    .unwrap();
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "sre-agent-find-unhealthy", "namespace": ns},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": ["apps"], "resources": ["replicasets", "deployments"], "verbs": ["list"]}
        ]
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "sre-agent-find-unhealthy", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sre-agent-find-unhealthy"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ai-sre"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    ns
}

/// Deletes the namespace, force-deleting its pods: bound to the fake node, they would wait
/// forever for a kubelet to confirm they stopped.
async fn drop_namespace(admin: &Client, ns: &str) {
    let _ = Api::<Namespace>::all(admin.clone())
        .delete(ns, &DeleteParams::default())
        .await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    for _ in 0..100 {
        let _ = pods.delete_collection(&now, &ListParams::default()).await;
        match pods.list(&ListParams::default().limit(1)).await {
            Ok(list) if !list.items.is_empty() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => return,
        }
    }
}

/// Creates deployment `web` with `replicas` pods and waits for the controller to make them;
/// returns their names, sorted (the API server's list order).
async fn web_pods(admin: &Client, ns: &str, replicas: usize) -> Vec<String> {
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                    "resources": {"limits": {"memory": "128Mi"}}}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &dep)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let start = tokio::time::Instant::now();
    loop {
        let list = pods.list(&ListParams::default()).await.unwrap();
        if list.items.len() >= replicas {
            let mut names: Vec<String> = list
                .items
                .into_iter()
                .map(|p| p.metadata.name.unwrap())
                .collect();
            names.sort();
            return names;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {replicas} pods were created",
            list.items.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Plays scheduler and kubelet: binds the pod to the fake node, then writes `container` (its
/// one container's status) through the status subresource.
async fn report(admin: &Client, ns: &str, pod: &str, container: Value) {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let node = std::env::var("SRE_K8S_NODE_NAME").unwrap_or_else(|_| "fake-node".into());
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let _: Value = pods
        .create_subresource("binding", pod, &PostParams::default(), &binding)
        .await
        .unwrap();
    pods.patch_status(
        pod,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "containerStatuses": [container]}})),
    )
    .await
    .unwrap();
}

fn container(shape: &str) -> Value {
    match shape {
        "crash" => json!({"name": "web", "image": "nginx:1.25", "imageID": "", "ready": false,
            "restartCount": 6,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 2m40s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}}),
        "pull" => json!({"name": "web", "image": "nginx:1.25", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"nginx:1.25\""}}}),
        _ => json!({"name": "web", "image": "nginx:1.25",
            "imageID": "docker.io/library/nginx@sha256:0f04e4f646a3f14bf31d8bc8d885b6c951fdcf42589d06845f64d18aec6a3c4d",
            "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_pods_read_ten_a_page_give_every_unhealthy_pod_once() {
    let Some((admin, agent)) = support::real_clients().await else {
        return;
    };
    let ns = namespace_for_ai_sre(&admin).await;
    let names = web_pods(&admin, &ns, 25).await;
    // Unhealthy pods on every page of ten, the first and last pods among them.
    let crash = [0, 3, 9, 10, 17, 24];
    let pull = [5, 20];
    for (i, name) in names.iter().enumerate() {
        let shape = if crash.contains(&i) {
            "crash"
        } else if pull.contains(&i) {
            "pull"
        } else {
            "ok"
        };
        report(&admin, &ns, name, container(shape)).await;
    }
    let pick = |idx: &[usize]| -> Vec<String> { idx.iter().map(|&i| names[i].clone()).collect() };
    // The API server pages: ten pods and a continue token.
    let first = Api::<Pod>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default().limit(10))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 10);
    assert!(first.metadata.continue_.is_some_and(|t| !t.is_empty()));

    let paged = triage_cluster(&agent, std::slice::from_ref(&ns), 10)
        .await
        .unwrap();
    assert_eq!(paged.pods_scanned, 25, "{}", paged.render());
    assert_eq!(pods_of(&paged, FindingKind::CrashLoopBackOff), pick(&crash));
    assert_eq!(pods_of(&paged, FindingKind::ImagePull), pick(&pull));
    let web = paged
        .workloads
        .iter()
        .find(|w| w.name == "web")
        .unwrap_or_else(|| panic!("{}", paged.render()));
    assert_eq!(
        (web.kind.as_str(), web.pods_total, web.pods_unhealthy),
        ("Deployment", 25, 8)
    );
    // One unpaginated list, and the tool itself (500 a page), see the same pods.
    let whole = triage_cluster(&agent, std::slice::from_ref(&ns), 0)
        .await
        .unwrap();
    let k8s = K8s::new(agent.clone(), Scope::namespaces([ns.as_str()]));
    let tool = k8s
        .read_tools()
        .into_iter()
        .find(|t| t.spec().name == "k8s_find_unhealthy")
        .unwrap();
    let out = tool
        .call(&json!({"namespace": ns}), &ToolContext::default())
        .await
        .unwrap();
    let by_tool: Triage = serde_json::from_value(out.data.unwrap()).unwrap();
    for t in [&whole, &by_tool] {
        assert_eq!(t.pods_scanned, 25);
        for kind in [FindingKind::CrashLoopBackOff, FindingKind::ImagePull] {
            assert_eq!(pods_of(t, kind), pods_of(&paged, kind));
        }
    }
    drop_namespace(&admin, &ns).await;
}
