//! Regression tests for the adversarial review (issue 11): hostile names that turned a dry run into
//! a write, approvals that applied something else (a rollback to a foreign registry, a ReplicaSet
//! edited while the human read the prompt), a dry run that came back changed, and a scale to zero
//! reported as healthy. Each runs on the simulator and, in CI, on the real API server.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sre_core::testing::{ScriptedProvider, answer, call, tool_turn};
use sre_core::{
    ActionStatus, Agent, ApprovalRequest, Approver, AutoApprove, Decision, Event, FnObserver,
    ReadOnly, Rules, Tool, ToolContext, ToolSet,
};
use sre_tools::k8s::{K8s, Limits, Scope};
use sre_tools::sim::scenario::{Rule, Scenario};
use support::{Backend, backends};

fn k8s(b: &Backend) -> K8s {
    let limits = Limits {
        poll_interval: Duration::from_millis(200),
        rollout_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    K8s::with_limits(b.agent(), Scope::namespaces([b.ns("shop")]), limits)
}

fn tool(k: &K8s, name: &str) -> Arc<dyn Tool> {
    k.tools()
        .into_iter()
        .find(|t| t.spec().name == name)
        .unwrap()
}

async fn deployment(b: &Backend, name: &str) -> Deployment {
    Api::<Deployment>::namespaced(b.admin(), &b.ns("shop"))
        .get(name)
        .await
        .unwrap()
}

fn image_of(d: &Deployment) -> String {
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

fn rv_of(d: &Deployment) -> String {
    d.metadata.resource_version.clone().unwrap()
}

const HOSTILE_NAMES: [&str; 6] = [
    "web#",
    "web#frag",
    "web?dryRun=None",
    "web/../web",
    "web%23",
    "web\u{1b}[2K",
];

#[tokio::test]
async fn a_hash_in_a_deployment_name_never_turns_the_preview_into_a_write() {
    for b in backends("bad-release").await {
        let k = k8s(&b);
        let ns = b.ns("shop");
        let before = deployment(&b, "web").await;
        let mut set = ToolSet::new();
        for t in k.tools() {
            set.add(t).unwrap();
        }
        for name in HOSTILE_NAMES {
            for (tool_name, args) in [
                (
                    "k8s_patch_image",
                    json!({"namespace": ns, "deployment": name, "container": "web", "image": "ghcr.io/acme/shop-web:1.4.2"}),
                ),
                ("k8s_rollback", json!({"namespace": ns, "deployment": name})),
                (
                    "k8s_restart_deployment",
                    json!({"namespace": ns, "deployment": name}),
                ),
                (
                    "k8s_scale_deployment",
                    json!({"namespace": ns, "deployment": name, "replicas": 0}),
                ),
                (
                    "k8s_get_deployment",
                    json!({"namespace": ns, "deployment": name}),
                ),
                (
                    "k8s_pod_logs",
                    json!({"namespace": ns, "pod": name, "container": "web"}),
                ),
            ] {
                // The schema check a model's call goes through first…
                let e = set.validate(tool_name, &args).err().unwrap();
                assert_eq!(e.kind(), "invalid_arguments", "{tool_name} {name:?}: {e}");
                // …and the tool itself, for callers that skip the schema.
                let t = tool(&k, tool_name);
                let e = if t.effect() == sre_core::Effect::Write {
                    t.preview(&args, &ToolContext::default()).await.unwrap_err()
                } else {
                    t.call(&args, &ToolContext::default()).await.unwrap_err()
                };
                assert_eq!(e.kind(), "invalid_arguments", "{tool_name} {name:?}: {e}");
                assert!(!e.to_string().contains('\u{1b}'), "{e}");
            }
        }
        // A hostile namespace or container is refused the same way.
        let e = tool(&k, "k8s_patch_image")
            .preview(
                &json!({"namespace": format!("{ns}#"), "deployment": "web", "container": "web", "image": "x:1"}),
                &ToolContext::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "invalid_arguments", "{e}");
        let e = tool(&k, "k8s_pod_logs")
            .call(
                &json!({"namespace": ns, "pod": "web-1", "container": "web&previous=true"}),
                &ToolContext::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "invalid_arguments", "{e}");

        // Through the agent under a read-only policy: the model's hostile call changes nothing.
        let model = ScriptedProvider::new([
            tool_turn(vec![call(
                "1",
                "k8s_patch_image",
                json!({"namespace": ns, "deployment": "web#", "container": "web", "image": "ghcr.io/acme/shop-web:1.4.2"}),
            )]),
            answer("done"),
        ]);
        let agent = Agent::builder(model)
            .tools(k.tools())
            .policy(ReadOnly)
            .build()
            .unwrap();
        let report = agent.run("patch it").await;
        assert!(report.actions.is_empty(), "{:?}", report.actions);

        let after = deployment(&b, "web").await;
        assert_eq!(
            rv_of(&after),
            rv_of(&before),
            "{}: nothing written",
            b.name()
        );
        assert_eq!(
            image_of(&after),
            "ghcr.io/acme/shop-web:1.5.0",
            "{}",
            b.name()
        );
        b.shutdown().await;
    }
}

fn rollback_run(ns: &str) -> ScriptedProvider {
    ScriptedProvider::new([
        tool_turn(vec![call(
            "1",
            "k8s_rollback",
            json!({"namespace": ns, "deployment": "web"}),
        )]),
        answer("done"),
    ])
}

#[tokio::test]
async fn a_rollback_is_held_to_the_registry_allow_list() {
    for b in backends("bad-release").await {
        let k = k8s(&b);
        let ns = b.ns("shop");
        // The previous revision runs ghcr.io/acme/shop-web:1.4.2, outside an allow-list of Docker Hub.
        let agent = Agent::builder(rollback_run(&ns))
            .tools(k.tools())
            .policy(Rules::new(AutoApproveAll).registries(["docker.io"]))
            .build()
            .unwrap();
        let report = agent.run("roll back").await;
        let action = &report.actions[0];
        assert_eq!(
            action.status,
            ActionStatus::Denied,
            "{}: {action:?}",
            b.name()
        );
        assert!(
            matches!(&action.decision, Some(Decision::Denied { reason, .. }) if reason.contains("ghcr.io/acme/shop-web:1.4.2") && reason.contains("not from an allowed registry")),
            "{:?}",
            action.decision
        );
        assert_eq!(
            image_of(&deployment(&b, "web").await),
            "ghcr.io/acme/shop-web:1.5.0"
        );
        // The plan names the images it will run, so an allow-list that covers them approves it.
        let agent = Agent::builder(rollback_run(&ns))
            .tools(k.tools())
            .policy(Rules::new(AutoApproveAll).registries(["ghcr.io/acme"]))
            .build()
            .unwrap();
        let report = agent.run("roll back").await;
        assert_eq!(
            report.actions[0].status,
            ActionStatus::Applied,
            "{}: {:?}",
            b.name(),
            report.actions[0]
        );
        assert_eq!(
            image_of(&deployment(&b, "web").await),
            "ghcr.io/acme/shop-web:1.4.2"
        );
        b.shutdown().await;
    }
}

/// Approves everything, as `policy:auto` does, but as an [`Approver`] behind [`Rules`].
struct AutoApproveAll;

#[async_trait]
impl Approver for AutoApproveAll {
    async fn review(&self, _request: &ApprovalRequest) -> Decision {
        Decision::approve("test:auto")
    }
}

/// While "the human reads the prompt", another actor edits the ReplicaSet the rollback copies.
struct EditsTheReplicaSetWhileReading {
    admin: kube::Client,
    ns: String,
}

#[async_trait]
impl Approver for EditsTheReplicaSetWhileReading {
    async fn review(&self, _request: &ApprovalRequest) -> Decision {
        let api: Api<ReplicaSet> = Api::namespaced(self.admin.clone(), &self.ns);
        let sets = api.list(&ListParams::default()).await.unwrap();
        let old = sets
            .items
            .iter()
            .find(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.spec.as_ref())
                    .is_some_and(|s| {
                        s.containers[0].image.as_deref() == Some("ghcr.io/acme/shop-web:1.4.2")
                    })
            })
            .unwrap();
        let name = old.metadata.name.clone().unwrap();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "ghcr.io/evil/miner:6.6.6"}]}}}});
        api.patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .unwrap();
        Decision::approve("test:slow-human")
    }
}

#[tokio::test]
async fn a_replicaset_edited_during_the_approval_is_not_applied() {
    // The simulator has one identity: let it patch ReplicaSets too, as the "other actor" must.
    let mut scenario = Scenario::builtin("bad-release").unwrap();
    scenario.access.rules.push(Rule {
        api_groups: vec!["apps".into()],
        resources: vec!["replicasets".into()],
        verbs: vec!["patch".into()],
    });
    let mut all = vec![Backend::sim(scenario).await];
    all.extend(Backend::real(Scenario::builtin("bad-release").unwrap()).await);
    for b in all {
        let k = k8s(&b);
        let ns = b.ns("shop");
        let agent = Agent::builder(rollback_run(&ns))
            .tools(k.tools())
            .policy(Rules::new(EditsTheReplicaSetWhileReading {
                admin: b.admin(),
                ns: ns.clone(),
            }))
            .build()
            .unwrap();
        let report = agent.run("roll back").await;
        let action = &report.actions[0];
        assert_eq!(
            action.status,
            ActionStatus::Refused,
            "{}: {action:?}",
            b.name()
        );
        assert!(
            action.result.contains("changed since it was approved")
                && action.result.contains("replicasets.apps"),
            "{}",
            action.result
        );
        assert_eq!(
            image_of(&deployment(&b, "web").await),
            "ghcr.io/acme/shop-web:1.5.0",
            "{}: neither the approved nor the edited template was applied",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn scaling_to_zero_is_never_reported_healthy() {
    for b in backends("healthy").await {
        let k = k8s(&b);
        let ns = b.ns("shop");
        let shown = Arc::new(std::sync::Mutex::new(String::new()));
        let seen = Arc::clone(&shown);
        let model = ScriptedProvider::new([
            tool_turn(vec![call(
                "1",
                "k8s_scale_deployment",
                json!({"namespace": ns, "deployment": "web", "replicas": 0}),
            )]),
            answer("done"),
        ]);
        let agent = Agent::builder(model)
            .tools(k.tools())
            .policy(AutoApprove)
            .observer(FnObserver(move |e: &Event| {
                if let Event::ApprovalRequested { request, .. } = e {
                    seen.lock().unwrap().push_str(&request.render());
                }
            }))
            .build()
            .unwrap();
        let report = agent.run("scale it down").await;
        let prompt = shown.lock().unwrap().clone();
        assert!(
            prompt.starts_with("WARNING: this scales deployment") && prompt.contains("ZERO"),
            "{prompt}"
        );
        assert!(prompt.contains("(risk: HIGH)"), "{prompt}");
        let action = &report.actions[0];
        assert_eq!(action.status, ActionStatus::Applied, "{action:?}");
        let v = action.verification.as_ref().unwrap();
        assert!(
            v.detail.contains("scaled to zero") && v.detail.contains("not healthy"),
            "{}",
            v.detail
        );
        assert!(!v.detail.contains("rollout complete"), "{}", v.detail);
        b.shutdown().await;
    }
}

/// An API server that ignores `dryRun`: every PATCH bumps the resourceVersion.
async fn server_that_writes_on_dry_run() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::Method;
    let dep = |rv: &str| -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": rv, "uid": "u1"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}
        })
    };
    let app = axum::Router::new().fallback(move |method: Method| async move {
        let body = if method == Method::PATCH {
            dep("6")
        } else {
            dep("5")
        };
        axum::Json(body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

#[tokio::test]
async fn a_dry_run_that_comes_back_changed_aborts_the_action() {
    let (url, task) = server_that_writes_on_dry_run().await;
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let k = K8s::new(client, Scope::namespaces(["shop"]));
    let e = tool(&k, "k8s_scale_deployment")
        .preview(
            &json!({"namespace": "shop", "deployment": "web", "replicas": 3}),
            &ToolContext::default(),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("dry run came back with resourceVersion 6, not 5"),
        "{e}"
    );
    task.abort();
}

#[tokio::test]
async fn a_planted_replicaset_is_never_the_rollback_source() {
    // Regression: a ReplicaSet naming the deployment as owner (without its uid) and claiming an
    // old revision was copied by the rollback, with a foreign init container and a privileged
    // container the registry allow-list never saw.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scenarios/planted-replicaset.yaml"
    );
    let b = Backend::sim(Scenario::load(path).unwrap()).await;
    let k = k8s(&b);
    let preview = tool(&k, "k8s_rollback")
        .preview(
            &json!({"namespace": "shop", "deployment": "web"}),
            &ToolContext::default(),
        )
        .await
        .unwrap();
    assert!(
        !preview.summary.contains("web-zzzzzzzz"),
        "{}",
        preview.summary
    );
    assert!(!preview.diff.contains("evil"), "{}", preview.diff);
    assert!(!preview.diff.contains("privileged"), "{}", preview.diff);
    assert_eq!(
        preview.images.unwrap(),
        vec![sre_core::ImageChange {
            container: "web".into(),
            before: Some("ghcr.io/acme/shop-web:1.5.0".into()),
            after: "ghcr.io/acme/shop-web:1.4.2".into(),
        }]
    );
    b.shutdown().await;
}

/// Waits until the controllers are done with the deployment: its generation observed, and its
/// resourceVersion unchanged over five reads in a row (on the real API server the controller
/// and this harness's kubelet keep writing its status for a while; a plan made meanwhile is
/// rightly refused as stale).
async fn settle(b: &Backend, name: &str) {
    let api = Api::<Deployment>::namespaced(b.admin(), &b.ns("shop"));
    let mut last = String::new();
    let mut same = 0;
    for _ in 0..600 {
        let d = api.get(name).await.unwrap();
        let generation = d.metadata.generation.unwrap_or(0);
        let observed = d
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0);
        let version = d.metadata.resource_version.clone().unwrap_or_default();
        if observed >= generation && version == last {
            same += 1;
            if same >= 5 {
                return;
            }
        } else {
            same = 0;
        }
        last = version;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deployment {name} did not settle");
}

#[tokio::test]
async fn a_rollback_to_a_revision_with_a_foreign_init_container_is_held_to_the_rules() {
    // Regression: the plan listed only `containers`, so an init container's image skipped the
    // allow-list, and a rollback that changed more than images was routine (medium risk).
    for b in backends("healthy").await {
        let k = k8s(&b);
        let ns = b.ns("shop");
        let api = Api::<Deployment>::namespaced(b.admin(), &ns);
        let evil = json!({"spec": {"template": {"spec": {"initContainers": [
            {"name": "setup", "image": "evil.example/miner:1"}]}}}});
        api.patch("web", &PatchParams::default(), &Patch::Strategic(evil))
            .await
            .unwrap();
        settle(&b, "web").await;
        let clean: json_patch::Patch = serde_json::from_value(json!([
            {"op": "remove", "path": "/spec/template/spec/initContainers"}
        ]))
        .unwrap();
        api.patch("web", &PatchParams::default(), &Patch::Json::<()>(clean))
            .await
            .unwrap();
        settle(&b, "web").await;

        let preview = tool(&k, "k8s_rollback")
            .preview(
                &json!({"namespace": ns, "deployment": "web"}),
                &ToolContext::default(),
            )
            .await
            .unwrap();
        assert_eq!(preview.risk, sre_core::Risk::High, "{}", b.name());
        assert!(
            preview
                .warning
                .as_deref()
                .is_some_and(|w| w.contains("initContainers")),
            "{:?}",
            preview.warning
        );
        assert!(
            preview
                .images
                .as_ref()
                .unwrap()
                .iter()
                .any(|c| c.after == "evil.example/miner:1"),
            "{:?}",
            preview.images
        );
        for rules in [
            Rules::new(AutoApproveAll).same_repository_only(),
            Rules::new(AutoApproveAll).registries(["ghcr.io/acme"]),
        ] {
            let agent = Agent::builder(rollback_run(&ns))
                .tools(k.tools())
                .policy(rules)
                .build()
                .unwrap();
            let report = agent.run("roll back").await;
            assert_eq!(
                report.actions[0].status,
                ActionStatus::Denied,
                "{}: {:?}",
                b.name(),
                report.actions[0]
            );
        }
        let d = deployment(&b, "web").await;
        assert!(
            d.spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .init_containers
                .is_none(),
            "{}: nothing applied",
            b.name()
        );
        b.shutdown().await;
    }
}
