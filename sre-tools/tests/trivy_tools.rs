//! The Trivy tools: operator reports resolved to their deployments (simulator and real API
//! server), scans and recommendations through the simulator's stand-in scanner.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use kube::api::{DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};
use sre_core::{Tool, ToolContext};
use sre_tools::k8s::Scope;
use sre_tools::sim::trivy::CatalogueScanner;
use sre_tools::sim::trivy::CatalogueTags;
use sre_tools::sim::{Scenario, Simulator};
use sre_tools::trivy::Trivy;

fn trivy_for(scenario: &Scenario, client: kube::Client, ns: &[String]) -> Vec<Arc<dyn Tool>> {
    let scanner = CatalogueScanner::new(scenario.images.clone());
    let tags = CatalogueTags::new(scenario.images.keys().cloned());
    Trivy::new(
        Arc::new(scanner),
        Arc::new(tags),
        Some((client, Scope::namespaces(ns.to_vec()))),
    )
    .tools()
}

async fn call(
    tools: &[Arc<dyn Tool>],
    name: &str,
    args: Value,
) -> Result<String, sre_core::ToolError> {
    let t = tools.iter().find(|t| t.spec().name == name).unwrap();
    t.call(&args, &ToolContext::default())
        .await
        .map(|o| o.content)
}

#[tokio::test]
async fn operator_reports_are_resolved_to_their_deployment_in_the_simulator() {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let tools = trivy_for(sim.scenario(), sim.client().unwrap(), &["shop".into()]);
    let out = call(
        &tools,
        "trivy_vulnerability_reports",
        json!({"namespace": "shop"}),
    )
    .await
    .unwrap();
    assert!(out.starts_with("shop/deployment frontend container nginx (nginx:1.25.3-alpine): 2 CRITICAL, 6 HIGH, 11 MEDIUM, 3 LOW, 0 UNKNOWN"), "{out}");
    assert!(
        out.lines().nth(1).unwrap().contains("CRITICAL 9.8"),
        "{out}"
    );
    let none = call(
        &tools,
        "trivy_vulnerability_reports",
        json!({"namespace": "shop", "deployment": "other"}),
    )
    .await
    .unwrap();
    assert!(none.starts_with("no VulnerabilityReports"), "{none}");
    let e = call(
        &tools,
        "trivy_vulnerability_reports",
        json!({"namespace": "prod"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), "refused");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_report_whose_replica_set_is_gone_is_resolved_by_name() {
    let mut s = Scenario::builtin("healthy").unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trivy-operator/vulnerabilityreport-nginx-docs.json");
    let mut report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    report["metadata"]["namespace"] = json!("shop");
    s.objects.push(report);
    let sim = Simulator::start(s.clone()).await.unwrap();
    let tools = trivy_for(&s, sim.client().unwrap(), &["shop".into()]);
    let out = call(
        &tools,
        "trivy_vulnerability_reports",
        json!({"namespace": "shop", "deployment": "nginx"}),
    )
    .await
    .unwrap();
    assert!(
        out.starts_with(
            "shop/deployment nginx container nginx (library/nginx:1.16): 2 CRITICAL, 0 HIGH"
        ),
        "{out}"
    );
    assert!(
        out.contains("CVE-2019-20367 CRITICAL 9.1 libbsd0 0.9.1-2 -> 0.9.1-2+deb10u1"),
        "{out}"
    );
    assert!(
        out.contains("CVE-2018-25009 CRITICAL 9.1 libwebp6 0.6.1-2 (no fix)"),
        "{out}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn scan_and_recommend_are_labelled_simulated() {
    let s = Scenario::builtin("critical-cve").unwrap();
    let sim = Simulator::start(s.clone()).await.unwrap();
    let tools = trivy_for(&s, sim.client().unwrap(), &["shop".into()]);
    let scan = call(
        &tools,
        "trivy_scan_image",
        json!({"image": "nginx:1.25.3-alpine"}),
    )
    .await
    .unwrap();
    assert!(
        scan.starts_with("nginx:1.25.3-alpine [SIMULATED scan"),
        "{scan}"
    );
    assert!(
        scan.contains("22 vulnerabilities (2 CRITICAL, 6 HIGH, 11 MEDIUM, 3 LOW)"),
        "{scan}"
    );
    let rec = call(
        &tools,
        "image_recommend",
        json!({"image": "nginx:1.25.3-alpine"}),
    )
    .await
    .unwrap();
    assert!(rec.contains("RECOMMENDED nginx:1.25.5-alpine"), "{rec}");
    let e = call(&tools, "trivy_scan_image", json!({"image": "nginx:0.0.1"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "not_found");
    sim.shutdown().await;
}

#[tokio::test]
async fn operator_reports_on_the_real_api_server_are_resolved_through_the_replica_set() {
    let Some(b) = support::Backend::real(Scenario::builtin("bad-release").unwrap()).await else {
        return;
    };
    let ns = b.ns("shop");
    let admin = b.admin();
    // Install the CRD and write a report for web's live ReplicaSet, as the operator would.
    let rs = Api::<ReplicaSet>::namespaced(admin.clone(), &ns)
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .max_by_key(|r| r.spec.as_ref().and_then(|s| s.replicas))
        .unwrap();
    let rs_name = rs.metadata.name.clone().unwrap();
    support::install_vulnerability_report_crd(&admin).await;
    let report: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "aquasecurity.github.io/v1alpha1", "kind": "VulnerabilityReport",
        "metadata": {"name": format!("replicaset-{rs_name}-web"), "namespace": ns, "labels": {
            "trivy-operator.resource.kind": "ReplicaSet", "trivy-operator.resource.name": rs_name,
            "trivy-operator.container.name": "web"}},
        "report": {"artifact": {"repository": "acme/shop-web", "tag": "1.4.2"}, "registry": {"server": "ghcr.io"}, "os": {"family": "debian", "name": "12.5"},
            "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.50.0"},
            "summary": {"criticalCount": 1, "highCount": 0, "mediumCount": 0, "lowCount": 0, "unknownCount": 0},
            "updateTimestamp": "2026-11-25T09:00:00Z",
            "vulnerabilities": [{"vulnerabilityID": "CVE-2024-0001", "resource": "openssl", "installedVersion": "3.0.1",
                "fixedVersion": "3.0.2", "severity": "CRITICAL", "score": 9.8, "title": "t", "primaryLink": "x", "links": [],
                "publishedDate": "2024-01-01T00:00:00Z", "lastModifiedDate": "2024-01-01T00:00:00Z"}]}
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(admin, &ns, &sre_tools::trivy::operator::api_resource())
        .create(&PostParams::default(), &report)
        .await
        .unwrap();
    let tools = trivy_for(
        &Scenario::builtin("bad-release").unwrap(),
        b.agent(),
        std::slice::from_ref(&ns),
    );
    let out = call(
        &tools,
        "trivy_vulnerability_reports",
        json!({"namespace": ns, "deployment": "web"}),
    )
    .await
    .unwrap();
    assert!(
        out.starts_with(&format!(
            "{ns}/deployment web container web (acme/shop-web:1.4.2): 1 CRITICAL"
        )),
        "{out}"
    );
    assert!(
        out.contains("CVE-2024-0001 CRITICAL 9.8 openssl 3.0.1 -> 3.0.2"),
        "{out}"
    );
    b.shutdown().await;
}
