//! The simulator's byte store through its HTTP face: lists built from the stored bytes reflect
//! every write, selectors filter on the stored index, pages follow `limit`/`continue`, watches
//! see changes (and selector transitions), resourceVersions only grow, and a write that fails
//! leaves the stored bytes exactly as they were.

#![cfg(feature = "sim")]
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]
#![expect(clippy::panic, reason = "a watch that ends early fails the test")]

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use sre_tools::sim::Simulator;

/// Guards against a hang only: every wait below ends long before on a working simulator.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn raw(
    sim: &Simulator,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> (u16, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("{}{path}", sim.url());
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some((content_type, body)) = body {
        req = req
            .header("content-type", content_type)
            .body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.bytes().await.unwrap().to_vec())
}

async fn get_json(sim: &Simulator, path: &str) -> Value {
    let (code, body) = raw(sim, "GET", path, None).await;
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/shop/deployments";
const PODS: &str = "/api/v1/namespaces/shop/pods";

#[tokio::test]
async fn get_and_list_answer_with_the_stored_bytes_in_the_api_servers_shape() {
    let sim = Simulator::start_named("healthy").await.unwrap();
    let (code, body) = raw(&sim, "GET", &format!("{DEPLOYMENTS}/web"), None).await;
    assert_eq!(code, 200);
    assert!(
        body.starts_with(br#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"#),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let dep: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(dep, sim.object("deployments", "shop", "web").unwrap());

    let (code, body) = raw(&sim, "GET", DEPLOYMENTS, None).await;
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with(
            r#"{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":""#
        ),
        "{text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(names(&list), ["frontend", "web"]);
    let item = &list["items"][1];
    assert!(
        item.get("kind").is_none() && item.get("apiVersion").is_none(),
        "{item}"
    );
    let mut whole = item.clone();
    whole["kind"] = json!("Deployment");
    whole["apiVersion"] = json!("apps/v1");
    assert_eq!(
        whole, dep,
        "a list item is the object without kind and apiVersion"
    );
    assert!(rv(&list) >= rv(&dep));

    let (code, body) = raw(&sim, "GET", &format!("{DEPLOYMENTS}/nope"), None).await;
    assert_eq!(code, 404);
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["message"], "deployments.apps \"nope\" not found");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_list_after_a_patch_reflects_the_patch_and_resource_versions_grow() {
    let sim = Simulator::start_named("healthy").await.unwrap();
    let before = get_json(&sim, DEPLOYMENTS).await;
    let web_before = get_json(&sim, &format!("{DEPLOYMENTS}/web")).await;
    let pods_before = get_json(&sim, &format!("{PODS}?labelSelector=app%3Dweb")).await;
    assert_eq!(names(&pods_before).len(), 2);

    let deployments: Api<Deployment> = Api::namespaced(sim.client().unwrap(), "shop");
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "ghcr.io/acme/shop-web:1.4.3"}]}}}});
    let answer = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let answer_rv: u64 = answer.metadata.resource_version.unwrap().parse().unwrap();
    assert!(answer_rv > rv(&web_before));

    let after = get_json(&sim, DEPLOYMENTS).await;
    assert!(rv(&after) > rv(&before), "the list's resourceVersion grows");
    let web = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["metadata"]["name"] == "web")
        .unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/acme/shop-web:1.4.3"
    );
    assert_eq!(web["metadata"]["generation"], 2);
    // The controller rolled it out after the patch: its status is newer than the answer.
    assert!(rv(web) > answer_rv);
    assert!(rv(&after) >= rv(web));
    // The GET and the list agree byte for byte on the object.
    let got = get_json(&sim, &format!("{DEPLOYMENTS}/web")).await;
    let mut item = web.clone();
    item["kind"] = json!("Deployment");
    item["apiVersion"] = json!("apps/v1");
    assert_eq!(got, item);

    // The new revision's pods replaced the old ones (the image is not in the catalogue, so
    // they cannot pull it and the old ReplicaSet keeps serving during the stalled rollout).
    let pods = get_json(&sim, &format!("{PODS}?labelSelector=app%3Dweb")).await;
    let images: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap())
        .collect();
    assert!(
        images.contains(&"ghcr.io/acme/shop-web:1.4.3"),
        "{images:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn selectors_filter_on_the_stored_labels_and_fields() {
    let sim = Simulator::start_named("healthy").await.unwrap();
    let all = names(&get_json(&sim, PODS).await);
    assert_eq!(all.len(), 4);
    let sel = |q: &str| format!("{PODS}?{q}");
    let web = names(&get_json(&sim, &sel("labelSelector=app%3Dweb")).await);
    assert_eq!(web.len(), 2);
    assert!(web.iter().all(|n| n.starts_with("web-")), "{web:?}");
    let both = names(&get_json(&sim, &sel("labelSelector=app+in+%28web%2Cfrontend%29")).await);
    assert_eq!(both, all);
    assert!(names(&get_json(&sim, &sel("labelSelector=%21app")).await).is_empty());
    let not_web = names(&get_json(&sim, &sel("labelSelector=app%21%3Dweb")).await);
    assert_eq!(not_web.len(), 2);
    assert!(not_web.iter().all(|n| n.starts_with("frontend-")));
    let running = names(&get_json(&sim, &sel("fieldSelector=status.phase%3DRunning")).await);
    assert_eq!(running, all);
    let one = names(
        &get_json(
            &sim,
            &sel(&format!("fieldSelector=metadata.name%3D{}", all[0])),
        )
        .await,
    );
    assert_eq!(one, [all[0].clone()]);
    let placed = names(&get_json(&sim, &sel("fieldSelector=spec.nodeName%3Dsim-node-1")).await);
    assert_eq!(placed, all);

    // What the API server refuses, with its messages.
    for (query, message) in [
        (
            "fieldSelector=spec.containers%3Dx",
            "field label not supported: spec.containers",
        ),
        (
            "fieldSelector=nonsense",
            "invalid selector: 'nonsense'; can't understand 'nonsense'",
        ),
        (
            "labelSelector=app+in+web",
            "unable to parse requirement: \"app in web\": expected a set in parentheses",
        ),
    ] {
        let (code, body) = raw(&sim, "GET", &sel(query), None).await;
        assert_eq!(code, 400, "{query}");
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["reason"], "BadRequest");
        assert_eq!(status["message"], message, "{query}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn pages_follow_limit_and_continue_to_the_whole_list() {
    let sim = Simulator::start_named("large-cluster").await.unwrap();
    let path = "/api/v1/namespaces/bulk-3/pods";
    let whole = get_json(&sim, path).await;
    let all = names(&whole);
    assert_eq!(all.len(), 1000);
    assert!(whole["metadata"].get("continue").is_none());

    let first = get_json(&sim, &format!("{path}?limit=300")).await;
    assert_eq!(names(&first), all[..300]);
    assert_eq!(first["metadata"]["remainingItemCount"], 700);
    assert_eq!(rv(&first), rv(&whole));
    let mut seen = names(&first);
    let mut token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    let mut pages = 1;
    while !token.is_empty() {
        let page = get_json(&sim, &format!("{path}?limit=300&continue={token}")).await;
        assert_eq!(
            rv(&page),
            rv(&first),
            "every page carries the first page's resourceVersion"
        );
        seen.extend(names(&page));
        pages += 1;
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, all);

    // The kube client's own paging gets the same pods.
    let pods: Api<Pod> = Api::namespaced(sim.client().unwrap(), "bulk-3");
    let mut lp = ListParams::default().limit(400);
    let mut listed = Vec::new();
    loop {
        let page = pods.list(&lp).await.unwrap();
        listed.extend(page.items.into_iter().map(|p| p.metadata.name.unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(listed, all);

    // With a selector the API server does not count what is left.
    let some = get_json(&sim, &format!("{path}?limit=5&labelSelector=app%3Dsvc-0")).await;
    assert_eq!(names(&some).len(), 5);
    assert!(some["metadata"].get("remainingItemCount").is_none());
    assert!(some["metadata"]["continue"].is_string());

    for (query, message) in [
        (
            "limit=5&continue=%21%21",
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 0",
        ),
        ("limit=x", "limit: Invalid value: \"x\": must be an integer"),
    ] {
        let (code, body) = raw(&sim, "GET", &format!("{path}?{query}"), None).await;
        assert_eq!(code, 400, "{query}");
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["message"], message);
    }
    sim.shutdown().await;
}

/// The next event of a watch.
async fn next_event<K>(
    events: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    tokio::time::timeout(HANG_GUARD, events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_or_else(|| panic!("the watch ended"))
}

#[tokio::test]
async fn a_watch_sees_the_change_and_selector_transitions() {
    let sim = Simulator::start_named("healthy").await.unwrap();
    let client = sim.client().unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let pods: Api<Pod> = Api::namespaced(client, "shop");
    let list = deployments.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.unwrap();
    let old_pods = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let old_hash = old_pods.items[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();

    let mut dep_events = deployments
        .watch(&WatchParams::default().fields("metadata.name=web"), &from)
        .await
        .unwrap()
        .boxed();
    let mut old_events = pods
        .watch(
            &WatchParams::default().labels(&format!("pod-template-hash={old_hash}")),
            &from,
        )
        .await
        .unwrap()
        .boxed();

    // Scale web to 1: the controller removes one of its pods.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    let WatchEvent::Modified(d) = next_event(&mut dep_events).await else {
        panic!("expected MODIFIED");
    };
    assert_eq!(d.spec.unwrap().replicas, Some(1));
    let patched_rv: u64 = d.metadata.resource_version.unwrap().parse().unwrap();
    assert!(patched_rv > from.parse().unwrap());
    let WatchEvent::Deleted(gone) = next_event(&mut old_events).await else {
        panic!("expected DELETED");
    };
    assert!(
        old_pods
            .items
            .iter()
            .any(|p| p.metadata.name == gone.metadata.name)
    );
    assert!(
        sim.object("pods", "shop", gone.metadata.name.as_deref().unwrap())
            .is_none()
    );
    let gone_rv: u64 = gone.metadata.resource_version.unwrap().parse().unwrap();
    assert!(gone_rv > patched_rv, "a delete has its own resourceVersion");

    // The deployment's status catches up: a later MODIFIED with a newer resourceVersion.
    let WatchEvent::Modified(d) = next_event(&mut dep_events).await else {
        panic!("expected MODIFIED");
    };
    assert!(d.metadata.resource_version.unwrap().parse::<u64>().unwrap() > patched_rv);
    assert_eq!(d.status.unwrap().replicas, Some(1));

    // A watch from the start sees every selected object first.
    let mut initial = pods
        .watch(&WatchParams::default().labels("app=frontend"), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = Vec::new();
    for _ in 0..2 {
        let WatchEvent::Added(p) = next_event(&mut initial).await else {
            panic!("expected ADDED");
        };
        added.push(p.metadata.name.unwrap());
    }
    added.sort();
    let mut frontend: Vec<String> = pods
        .list(&ListParams::default().labels("app=frontend"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    frontend.sort();
    assert_eq!(added, frontend);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_watch_from_before_the_history_is_told_410_expired() {
    let sim = Simulator::start_named("healthy").await.unwrap();
    let pods: Api<Pod> = Api::namespaced(sim.client().unwrap(), "shop");
    let mut events = pods
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    let WatchEvent::Error(e) = next_event(&mut events).await else {
        panic!("expected ERROR");
    };
    assert_eq!(e.code, 410);
    assert_eq!(e.reason, "Expired");
    assert!(
        e.message.starts_with("too old resource version: 1 ("),
        "{}",
        e.message
    );
    assert!(
        events.next().await.is_none(),
        "the watch ends after the error"
    );

    // An open watch does not keep the simulator from stopping.
    let _open = pods
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    tokio::time::timeout(HANG_GUARD, sim.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_write_that_fails_leaves_the_stored_bytes_unchanged() {
    let sim = Simulator::start_named("healthy").await.unwrap();
    let path = format!("{DEPLOYMENTS}/web");
    let (_, before) = raw(&sim, "GET", &path, None).await;
    let list_before = get_json(&sim, DEPLOYMENTS).await;
    for (content_type, body, code, message) in [
        (
            "application/merge-patch+json",
            "{not json",
            400,
            "error decoding patch: key must be a string at line 1 column 2",
        ),
        (
            "application/json-patch+json",
            r#"{"op": "replace"}"#,
            400,
            "error decoding patch: invalid type: map, expected a sequence",
        ),
        (
            "application/json-patch+json",
            r#"[{"op": "test", "path": "/spec/replicas", "value": 9}]"#,
            422,
            "Deployment.apps \"web\" is invalid: the JSON patch could not be applied: operation '/0' failed at path '/spec/replicas': value did not match",
        ),
        (
            "application/merge-patch+json",
            r#"{"spec": {"replicas": -1}}"#,
            422,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "application/merge-patch+json",
            r#"{"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 5}}"#,
            409,
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
        ),
        (
            "text/plain",
            "{}",
            415,
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got \"text/plain\")",
        ),
    ] {
        let (got, answer) = raw(&sim, "PATCH", &path, Some((content_type, body))).await;
        assert_eq!(got, code, "{body}: {}", String::from_utf8_lossy(&answer));
        let status: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(status["kind"], "Status");
        assert!(
            status["message"].as_str().unwrap().starts_with(message),
            "{body}: {}",
            status["message"]
        );
        let (_, now) = raw(&sim, "GET", &path, None).await;
        assert_eq!(now, before, "{body} changed the stored object");
    }
    assert_eq!(get_json(&sim, DEPLOYMENTS).await, list_before);

    // A dry run answers with the change and stores nothing.
    let dry = format!("{path}?dryRun=All");
    let (code, answer) = raw(
        &sim,
        "PATCH",
        &dry,
        Some((
            "application/merge-patch+json",
            r#"{"spec": {"replicas": 3}}"#,
        )),
    )
    .await;
    assert_eq!(code, 200);
    assert!(answer.starts_with(br#"{"kind":"Deployment","apiVersion":"apps/v1","#));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["spec"]["replicas"], 3);
    let (_, now) = raw(&sim, "GET", &path, None).await;
    assert_eq!(now, before);
    sim.shutdown().await;
}
