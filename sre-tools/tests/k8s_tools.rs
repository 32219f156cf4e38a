//! The Kubernetes tools as the limited agent identity (the Role of `deploy/rbac.yaml`), on the
//! simulator and — the integration tier — on the real API server: triage of pods whose status the
//! harness set as a kubelet would, logs, events, dry-run preview, a patch the real controller rolls
//! out, a conflict on a stale fingerprint, 403 outside the Role, preflight, and an agent run.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};
use sre_core::testing::{ScriptedProvider, answer, call, tool_turn};
use sre_core::{ActionStatus, Agent, AutoApprove, Outcome, Preview, Tool, ToolContext, ToolError};
use sre_tools::k8s::{K8s, Limits, Scope, preflight, rbac};
use support::{Backend, backends};

fn k8s(b: &Backend, extra_ns: &[&str]) -> K8s {
    let mut ns = vec![b.ns("shop")];
    ns.extend(extra_ns.iter().map(|s| (*s).to_owned()));
    let limits = Limits {
        poll_interval: Duration::from_millis(200),
        rollout_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    K8s::with_limits(b.agent(), Scope::namespaces(ns), limits)
}

fn tool(k: &K8s, name: &str) -> Arc<dyn Tool> {
    k.tools()
        .into_iter()
        .find(|t| t.spec().name == name)
        .unwrap()
}

async fn run(k: &K8s, name: &str, args: Value) -> Result<String, ToolError> {
    tool(k, name)
        .call(&args, &ToolContext::default())
        .await
        .map(|o| o.content)
}

fn granted(name: &str, args: &Value, preview: &Preview) -> ToolContext {
    sre_core::testing::grant(name, args, preview)
}

async fn web_image(b: &Backend) -> String {
    let api: Api<Deployment> = Api::namespaced(b.admin(), &b.ns("shop"));
    let d = api.get("web").await.unwrap();
    d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test]
async fn triage_logs_and_events_as_the_limited_identity() {
    for b in backends("bad-release").await {
        let k = k8s(&b, &[]);
        let ns = b.ns("shop");
        let out = run(&k, "k8s_find_unhealthy", json!({})).await.unwrap();
        assert!(
            out.contains(&format!("{ns}/deployment web: 1/3 pods unhealthy")),
            "{}: {out}",
            b.name()
        );
        assert!(out.contains("CrashLoopBackOff container web (ghcr.io/acme/shop-web:1.5.0): last exit 1 (Error), 7 restarts"), "{}: {out}", b.name());
        let pods = run(&k, "k8s_list_pods", json!({"namespace": ns}))
            .await
            .unwrap();
        let crashing = pods
            .lines()
            .find(|l| l.contains("CrashLoopBackOff"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        let logs = run(
            &k,
            "k8s_pod_logs",
            json!({"namespace": ns, "pod": crashing, "previous": true}),
        )
        .await
        .unwrap();
        assert!(
            logs.ends_with("panic: config: required variable DATABASE_URL is not set"),
            "{}: {logs}",
            b.name()
        );
        let events = run(&k, "k8s_events", json!({"namespace": ns, "name": crashing}))
            .await
            .unwrap();
        assert!(
            events
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("Warning BackOff pod/"),
            "{}: {events}",
            b.name()
        );
        let describe = run(
            &k,
            "k8s_describe_pod",
            json!({"namespace": ns, "pod": crashing}),
        )
        .await
        .unwrap();
        assert!(
            describe.contains("waiting CrashLoopBackOff"),
            "{}: {describe}",
            b.name()
        );
        let dep = run(
            &k,
            "k8s_get_deployment",
            json!({"namespace": ns, "deployment": "web"}),
        )
        .await
        .unwrap();
        assert!(
            dep.contains("1: web=ghcr.io/acme/shop-web:1.4.2 (2 pods, 2 ready)"),
            "{}: {dep}",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn preview_patch_and_stale_fingerprint() {
    for b in backends("bad-release").await {
        let k = k8s(&b, &[]);
        let ns = b.ns("shop");
        let t = tool(&k, "k8s_patch_image");
        let args = json!({"namespace": ns, "deployment": "web", "container": "web", "image": "ghcr.io/acme/shop-web:1.4.2"});
        let preview = t.preview(&args, &ToolContext::default()).await.unwrap();
        assert!(
            preview.diff.contains("- spec.template.spec.containers[web].image: ghcr.io/acme/shop-web:1.5.0\n+ spec.template.spec.containers[web].image: ghcr.io/acme/shop-web:1.4.2"),
            "{}: {}",
            b.name(),
            preview.diff
        );
        assert_eq!(
            web_image(&b).await,
            "ghcr.io/acme/shop-web:1.5.0",
            "{}: dry run only",
            b.name()
        );
        let ctx = granted("k8s_patch_image", &args, &preview);
        let out = t.call(&args, &ctx).await.unwrap();
        assert!(out.content.starts_with("applied:"), "{}", out.content);
        assert_eq!(
            web_image(&b).await,
            "ghcr.io/acme/shop-web:1.4.2",
            "{}",
            b.name()
        );
        let v = t.verify(&args, &out, &ctx).await.unwrap();
        assert!(v.passed, "{}: {}", b.name(), v.detail);
        // The plan approved before the patch is stale now.
        let e = t
            .call(&args, &granted("k8s_patch_image", &args, &preview))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "conflict", "{}: {e}", b.name());
        assert_eq!(
            web_image(&b).await,
            "ghcr.io/acme/shop-web:1.4.2",
            "{}: nothing applied",
            b.name()
        );
        // The same for a rollback (a JSON patch) approved on a stale resourceVersion.
        let rb = tool(&k, "k8s_rollback");
        let rb_args = json!({"namespace": ns, "deployment": "web"});
        let mut stale = rb.preview(&rb_args, &ToolContext::default()).await.unwrap();
        stale.target.as_mut().unwrap().resource_version = "1".into();
        let e = rb
            .call(&rb_args, &granted("k8s_rollback", &rb_args, &stale))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "conflict", "{}: {e}", b.name());
        assert_eq!(
            web_image(&b).await,
            "ghcr.io/acme/shop-web:1.4.2",
            "{}: nothing applied",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn outside_the_role_is_forbidden() {
    for b in backends("bad-release").await {
        let k = k8s(&b, &["kube-system"]);
        let e = run(&k, "k8s_list_pods", json!({"namespace": "kube-system"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "forbidden", "{}: {e}", b.name());
        assert!(
            e.to_string().contains(
                "cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
            ),
            "{}: {e}",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn preflight_reports_nothing_missing_for_the_least_privilege_role() {
    for b in backends("bad-release").await {
        let ns = vec![b.ns("shop")];
        let report = preflight(&b.agent(), &ns, rbac::TOOL_NAMES).await.unwrap();
        assert!(
            report.missing.is_empty(),
            "{}: {:?}",
            b.name(),
            report.missing
        );
        assert!(
            report.dangerous.is_empty(),
            "{}: {:?}",
            b.name(),
            report.dangerous
        );
        assert!(report.ok());
        assert!(report.enforce(false).is_ok());
        // In a namespace outside its Role, everything is missing.
        let report = preflight(&b.agent(), &["default".to_owned()], &["k8s_pod_logs"])
            .await
            .unwrap();
        assert_eq!(
            report.missing,
            vec!["k8s_pod_logs: get core/pods/log in default".to_owned()],
            "{}",
            b.name()
        );
        b.shutdown().await;
    }
}

#[tokio::test]
async fn preflight_refuses_an_over_privileged_identity() {
    // The real admin is cluster-admin; the simulator plays one with a cluster-wide rule.
    let mut s = sre_tools::sim::Scenario::builtin("healthy").unwrap();
    s.access.cluster_rules.push(sre_tools::sim::scenario::Rule {
        api_groups: vec!["*".into()],
        resources: vec!["*".into()],
        verbs: vec!["*".into()],
    });
    let sim = Backend::sim(s).await;
    let mut clients = vec![(sim.name(), sim.agent())];
    if let Some((admin, _)) = support::real_clients().await {
        clients.push(("real API server", admin));
    }
    for (name, client) in clients {
        let report = preflight(&client, &["shop".to_owned()], &["k8s_patch_image"])
            .await
            .unwrap();
        assert!(report.missing.is_empty(), "{name}");
        assert!(
            report
                .dangerous
                .iter()
                .any(|d| d.starts_with("is cluster-admin")),
            "{name}: {:?}",
            report.dangerous
        );
        assert!(
            report
                .dangerous
                .iter()
                .any(|d| d.starts_with("can delete deployments")),
            "{name}"
        );
        let e = report.enforce(false).unwrap_err().to_string();
        assert!(
            e.starts_with("preflight refused: the agent's identity is over-privileged"),
            "{e}"
        );
        assert!(report.enforce(true).is_ok());
        assert!(
            report
                .render()
                .contains("WARNING dangerous: is cluster-admin"),
            "{}",
            report.render()
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn an_agent_rolls_back_the_bad_release() {
    for b in backends("bad-release").await {
        let k = k8s(&b, &[]);
        let ns = b.ns("shop");
        let model = ScriptedProvider::new([
            tool_turn(vec![call("1", "k8s_find_unhealthy", json!({}))]),
            tool_turn(vec![call(
                "2",
                "k8s_rollback",
                json!({"namespace": ns, "deployment": "web"}),
            )]),
            answer("rolled back"),
        ]);
        let agent = Agent::builder(model)
            .tools(k.tools())
            .policy(AutoApprove)
            .build()
            .unwrap();
        let report = agent.run("fix web").await;
        assert_eq!(report.outcome, Outcome::Completed, "{}", b.name());
        let a = &report.actions[0];
        assert_eq!(a.status, ActionStatus::Applied, "{}: {a:#?}", b.name());
        assert!(
            a.verification.as_ref().unwrap().passed,
            "{}: {a:#?}",
            b.name()
        );
        assert_eq!(
            web_image(&b).await,
            "ghcr.io/acme/shop-web:1.4.2",
            "{}",
            b.name()
        );
        let after = run(&k, "k8s_find_unhealthy", json!({})).await.unwrap();
        assert!(after.starts_with("healthy:"), "{}: {after}", b.name());
        b.shutdown().await;
    }
}
