//! Parity: the same assertions against the simulator and the real API server (when its harness is
//! up; always in `.ci/run`), so the two cannot drift apart. Where they differ, the simulator is
//! fixed, not the test.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use sre_tools::sim::scenario::{Health, ImageProfile, Scenario};
use support::Backend;

fn scenario() -> Scenario {
    let mut s = Scenario::builtin("bad-release").unwrap();
    s.images.insert(
        "ghcr.io/acme/shop-web:1.5.1".into(),
        ImageProfile {
            health: Health::Healthy,
            logs: "shop-web 1.5.1 listening on :8080\n".into(),
            ..ImageProfile::default()
        },
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trivy-operator/vulnerabilityreport-nginx-docs.json");
    let mut report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    report["metadata"]["namespace"] = json!("shop");
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "ownerReferences",
        "generation",
    ] {
        report["metadata"].as_object_mut().unwrap().remove(field);
    }
    // The docs sample leaves out fields the CRD requires, and the 1.20 API server rejects an empty
    // string in a required string field as null; the real server validates custom resources
    // against the CRD schema, so fill them in.
    report["report"]["updateTimestamp"] = json!("2026-11-25T09:00:00Z");
    for v in report["report"]["vulnerabilities"].as_array_mut().unwrap() {
        for (field, default) in [
            ("title", "n/a"),
            ("fixedVersion", "n/a"),
            ("lastModifiedDate", "2026-01-01T00:00:00Z"),
            ("publishedDate", "2025-01-01T00:00:00Z"),
        ] {
            if v.get(field).is_none_or(|x| x.is_null() || x == "") {
                v[field] = json!(default);
            }
        }
    }
    s.objects.push(report);
    s
}

async fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::sim(scenario()).await];
    if let Some(real) = Backend::real(scenario()).await {
        out.push(real);
    }
    out
}

fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

async fn web_pods(client: &Client, ns: &str, selector: &str, fields: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(selector).fields(fields))
        .await
        .unwrap()
        .items
}

fn waiting_reason(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

#[tokio::test]
async fn list_with_label_and_field_selectors() {
    for b in backends().await {
        let ns = b.ns("shop");
        let agent = b.agent();
        let all = web_pods(&agent, &ns, "app=web", "").await;
        assert_eq!(
            all.len(),
            3,
            "{}: two 1.4.2 pods and one crash-looping 1.5.0 pod",
            b.name()
        );
        assert_eq!(
            all.iter()
                .filter(|p| waiting_reason(p).as_deref() == Some("CrashLoopBackOff"))
                .count(),
            1,
            "{}",
            b.name()
        );
        assert_eq!(
            web_pods(&agent, &ns, "app=web", "status.phase=Running")
                .await
                .len(),
            3,
            "{}",
            b.name()
        );
        assert_eq!(
            web_pods(&agent, &ns, "app=web", "status.phase=Pending")
                .await
                .len(),
            0,
            "{}",
            b.name()
        );
        assert_eq!(
            web_pods(&agent, &ns, "app in (web, api),tier!=db", "")
                .await
                .len(),
            3,
            "{}",
            b.name()
        );
        assert_eq!(
            web_pods(&agent, &ns, "app=nope", "").await.len(),
            0,
            "{}",
            b.name()
        );
        let one = all[0].metadata.name.clone().unwrap();
        assert_eq!(
            web_pods(&agent, &ns, "", &format!("metadata.name={one}"))
                .await
                .len(),
            1,
            "{}",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn get_and_404() {
    for b in backends().await {
        let ns = b.ns("shop");
        let api: Api<Deployment> = Api::namespaced(b.agent(), &ns);
        let d = api.get("web").await.unwrap();
        assert_eq!(
            d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
            "2",
            "{}",
            b.name()
        );
        let (code, reason, message) = api_error(api.get("nope").await.unwrap_err());
        assert_eq!(
            (code, reason.as_str(), message.as_str()),
            (404, "NotFound", "deployments.apps \"nope\" not found"),
            "{}",
            b.name()
        );
        let rs: Api<ReplicaSet> = Api::namespaced(b.agent(), &ns);
        assert_eq!(
            rs.list(&ListParams::default()).await.unwrap().items.len(),
            2,
            "{}",
            b.name()
        );
        b.shutdown().await;
    }
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test]
async fn dry_run_changes_nothing_and_a_stale_resource_version_is_a_409() {
    for b in backends().await {
        let ns = b.ns("shop");
        let api: Api<Deployment> = Api::namespaced(b.agent(), &ns);
        let before = api.get("web").await.unwrap();
        let rv = before.metadata.resource_version.clone().unwrap();
        let patch = json!({"metadata": {"resourceVersion": rv}, "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "ghcr.io/acme/shop-web:1.5.1"}]}}}});
        let params = PatchParams {
            dry_run: true,
            field_manager: Some("sre-agent".into()),
            ..PatchParams::default()
        };
        let dry = api
            .patch("web", &params, &Patch::Strategic(patch.clone()))
            .await
            .unwrap();
        assert_eq!(image(&dry), "ghcr.io/acme/shop-web:1.5.1", "{}", b.name());
        let after = api.get("web").await.unwrap();
        assert_eq!(
            image(&after),
            "ghcr.io/acme/shop-web:1.5.0",
            "{}: the dry run must not change anything",
            b.name()
        );
        assert_eq!(
            after.metadata.resource_version,
            before.metadata.resource_version,
            "{}",
            b.name()
        );

        let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 3}});
        let (code, reason, message) = api_error(
            api.patch("web", &PatchParams::default(), &Patch::Strategic(stale))
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (409, "Conflict"), "{}", b.name());
        assert_eq!(
            message,
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
            "{}",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn forbidden_verbs_and_resources_are_403_with_the_real_message() {
    for b in backends().await {
        let ns = b.ns("shop");
        let user = b.user();
        let api: Api<Deployment> = Api::namespaced(b.agent(), &ns);
        let (code, reason, message) = api_error(
            api.delete("web", &DeleteParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{}", b.name());
        assert_eq!(
            message,
            format!(
                "deployments.apps \"web\" is forbidden: User \"{user}\" cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"{ns}\""
            ),
            "{}",
            b.name()
        );
        let secrets: Api<Secret> = Api::namespaced(b.agent(), &ns);
        let (code, _, message) = api_error(secrets.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(code, 403, "{}", b.name());
        assert_eq!(
            message,
            format!(
                "secrets is forbidden: User \"{user}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
            ),
            "{}",
            b.name()
        );
        let other: Api<Pod> = Api::namespaced(b.agent(), "kube-system");
        let (code, _, message) = api_error(other.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(code, 403, "{}", b.name());
        assert!(
            message.ends_with(
                "cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
            ),
            "{}: {message}",
            b.name()
        );
        let all: Api<Pod> = Api::all(b.agent());
        let (code, _, message) = api_error(all.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(code, 403, "{}", b.name());
        assert!(
            message
                .ends_with("cannot list resource \"pods\" in API group \"\" at the cluster scope"),
            "{}: {message}",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn self_subject_access_reviews() {
    for b in backends().await {
        let ns = b.ns("shop");
        let api: Api<SelfSubjectAccessReview> = Api::all(b.agent());
        let ask =
            |verb: &str, group: &str, resource: &str, sub: Option<&str>| SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(ns.clone()),
                        verb: Some(verb.into()),
                        group: Some(group.into()),
                        resource: Some(resource.into()),
                        subresource: sub.map(str::to_owned),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
        for (verb, group, resource, sub, expected) in [
            ("patch", "apps", "deployments", None, true),
            ("delete", "apps", "deployments", None, false),
            ("get", "", "pods", Some("log"), true),
            ("get", "", "secrets", None, false),
            ("*", "*", "*", None, false),
        ] {
            let r = api
                .create(&PostParams::default(), &ask(verb, group, resource, sub))
                .await
                .unwrap();
            assert_eq!(
                r.status.unwrap().allowed,
                expected,
                "{}: {verb} {group}/{resource}",
                b.name()
            );
        }
        b.shutdown().await;
    }
}

#[tokio::test]
async fn logs_and_events() {
    for b in backends().await {
        let ns = b.ns("shop");
        let agent = b.agent();
        let pods = web_pods(&agent, &ns, "app=web", "").await;
        let crashing = pods
            .iter()
            .find(|p| waiting_reason(p).as_deref() == Some("CrashLoopBackOff"))
            .unwrap();
        let name = crashing.metadata.name.clone().unwrap();
        let api: Api<Pod> = Api::namespaced(agent.clone(), &ns);
        let lp = LogParams {
            previous: true,
            tail_lines: Some(1),
            ..LogParams::default()
        };
        let text = api.logs(&name, &lp).await.unwrap();
        assert_eq!(
            text,
            "panic: config: required variable DATABASE_URL is not set\n",
            "{}",
            b.name()
        );
        let lp = LogParams {
            previous: true,
            limit_bytes: Some(10),
            ..LogParams::default()
        };
        assert_eq!(
            api.logs(&name, &lp).await.unwrap().len(),
            10,
            "{}",
            b.name()
        );
        let healthy = pods.iter().find(|p| waiting_reason(p).is_none()).unwrap();
        let lp = LogParams {
            previous: true,
            ..LogParams::default()
        };
        assert!(
            api.logs(healthy.metadata.name.as_deref().unwrap(), &lp)
                .await
                .is_err(),
            "{}: no previous container",
            b.name()
        );

        let events: Api<Event> = Api::namespaced(agent, &ns);
        let list = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .unwrap();
        assert!(
            list.items
                .iter()
                .any(|e| e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some("BackOff")),
            "{}: {:?}",
            b.name(),
            list.items
                .iter()
                .map(|e| e.reason.clone())
                .collect::<Vec<_>>()
        );
        assert!(
            list.items
                .iter()
                .all(|e| e.involved_object.name.as_deref() == Some(name.as_str())),
            "{}",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn vulnerability_reports_are_listed() {
    for b in backends().await {
        let ns = b.ns("shop");
        let gvk =
            GroupVersionKind::gvk("aquasecurity.github.io", "v1alpha1", "VulnerabilityReport");
        let ar = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = Api::namespaced_with(b.agent(), &ns, &ar);
        let list = api
            .list(&ListParams::default().labels("trivy-operator.resource.kind=ReplicaSet"))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1, "{}", b.name());
        let r = &list.items[0];
        assert_eq!(
            r.metadata.name.as_deref(),
            Some("replicaset-nginx-6d4cf56db6-nginx"),
            "{}",
            b.name()
        );
        assert_eq!(
            r.data["report"]["summary"]["criticalCount"],
            2,
            "{}",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn patching_the_image_rolls_the_deployment_out() {
    for b in backends().await {
        let ns = b.ns("shop");
        let api: Api<Deployment> = Api::namespaced(b.agent(), &ns);
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "ghcr.io/acme/shop-web:1.5.1"}]}}}});
        let params = PatchParams {
            field_manager: Some("sre-agent".into()),
            ..PatchParams::default()
        };
        let patched = api
            .patch("web", &params, &Patch::Strategic(patch))
            .await
            .unwrap();
        assert_eq!(
            image(&patched),
            "ghcr.io/acme/shop-web:1.5.1",
            "{}",
            b.name()
        );
        let managers: Vec<String> = patched
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert!(
            managers.contains(&"sre-agent".to_owned()),
            "{}: {managers:?}",
            b.name()
        );
        let start = tokio::time::Instant::now();
        loop {
            let d = api.get("web").await.unwrap();
            let st = d.status.clone().unwrap_or_default();
            if st.updated_replicas == Some(2)
                && st.available_replicas == Some(2)
                && st.replicas == Some(2)
            {
                assert_eq!(
                    d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
                    "3",
                    "{}",
                    b.name()
                );
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{}: rollout did not complete: {st:?}",
                b.name()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rs: Api<ReplicaSet> = Api::namespaced(b.agent(), &ns);
        let sets = rs
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items;
        assert_eq!(sets.len(), 3, "{}: a new ReplicaSet for 1.5.1", b.name());
        let live: Vec<_> = sets
            .iter()
            .filter(|s| s.spec.as_ref().and_then(|s| s.replicas) > Some(0))
            .collect();
        assert_eq!(
            live.len(),
            1,
            "{}: only the new ReplicaSet keeps pods",
            b.name()
        );
        b.shutdown().await;
    }
}
