//! Image digests in the simulator, through the real kube client: pods report the content they
//! run in `imageID`, a patch can pin an image by digest, a tag can move (a new push) without
//! changing what already runs, an unknown digest cannot be pulled, and the stand-in scanner and
//! tag lister see the same live catalogue (scans by digest, vulnerability-database updates).

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch, PatchParams,
};
use kube::{Api, Client};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use sre_core::ToolContext;
use sre_tools::k8s::Limits;
use sre_tools::sim::scenario::{Health, ImageFinding, ImageProfile, Scenario};
use sre_tools::sim::trivy::{Catalogue, CatalogueScanner, CatalogueTags};
use sre_tools::sim::{Simulator, kubelet};
use sre_tools::trivy::registry::{ImageRef, TagLister};
use sre_tools::trivy::report::{Report, Severity};
use sre_tools::trivy::scanner::{ImageScanner, ScanError};

const OLD: &str = "nginx:1.25.3-alpine";
const FIXED: &str = "nginx:1.25.5-alpine";

fn sha(s: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(s.as_bytes())))
}

/// The (pod name, image, imageID, ready) of every container of the deployment's pods.
async fn containers(
    client: &Client,
    ns: &str,
    app: &str,
) -> BTreeSet<(String, String, String, bool)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    list.items
        .iter()
        .flat_map(|p| {
            let name = p.metadata.name.clone().unwrap();
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default()
                .into_iter()
                .map(move |c| (name.clone(), c.image, c.image_id, c.ready))
        })
        .collect()
}

fn image_ids(c: &BTreeSet<(String, String, String, bool)>) -> BTreeSet<String> {
    c.iter().map(|(_, _, id, _)| id.clone()).collect()
}

async fn set_image(client: &Client, image: &str) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    deployments
        .patch(
            "frontend",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": image}]}}}})),
        )
        .await
        .unwrap();
}

/// `kubectl rollout restart`: a new pod template, so new pods.
async fn rollout_restart(client: &Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    deployments
        .patch(
            "frontend",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-11-25T10:00:00Z"}}}}})),
        )
        .await
        .unwrap();
}

fn ids(report: &Report, severity: Severity) -> BTreeSet<String> {
    report
        .vulnerabilities()
        .filter(|v| v.severity == severity)
        .map(|v| v.vulnerability_id.clone())
        .collect()
}

fn healthy(logs: &str) -> ImageProfile {
    ImageProfile {
        health: Health::Healthy,
        logs: logs.into(),
        ..ImageProfile::default()
    }
}

#[tokio::test]
async fn image_id_reports_the_digest_of_the_running_content() {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let client = sim.client().unwrap();
    let digest = sim.catalogue().digest(OLD).unwrap();
    // The scenario names no digest: the sha256 of the reference string, as before digests.
    assert_eq!(digest, sha(OLD));
    let running = containers(&client, "shop", "frontend").await;
    assert_eq!(running.len(), 3, "{running:?}");
    for (pod, image, id, ready) in &running {
        assert_eq!(image, OLD, "{pod}: image stays the spec's reference");
        assert_eq!(id, &format!("nginx@{digest}"), "{pod}");
        assert!(ready, "{pod}");
    }

    // A digest given in the scenario is the one reported, with the repository as written.
    let mut s = Scenario::builtin("critical-cve").unwrap();
    let given = format!("sha256:{}", "5a".repeat(32));
    s.images.get_mut(OLD).unwrap().digest = Some(given.clone());
    let sim2 = Simulator::start(s).await.unwrap();
    let running = containers(&sim2.client().unwrap(), "shop", "frontend").await;
    assert_eq!(
        image_ids(&running),
        BTreeSet::from([format!("nginx@{given}")])
    );
    sim2.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn pinning_by_tag_and_digest_runs_that_content_after_the_tag_moved() {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let client = sim.client().unwrap();
    let catalogue = sim.catalogue();
    let scanned = catalogue.digest(FIXED).unwrap();
    // The tag moves to a broken build.
    let broken = ImageProfile {
        health: Health::Crashloop,
        logs: "nginx: [emerg] unknown directive\n".into(),
        ..ImageProfile::default()
    };
    let moved = catalogue.push(FIXED, broken).unwrap();
    assert_ne!(moved, scanned);
    assert_eq!(catalogue.digest(FIXED).as_deref(), Some(moved.as_str()));

    // Pinned to the digest that was scanned: that content runs (healthy), whatever the tag says.
    let pinned = format!("{FIXED}@{scanned}");
    set_image(&client, &pinned).await;
    let running = containers(&client, "shop", "frontend").await;
    assert_eq!(running.len(), 3, "{running:?}");
    for (pod, image, id, ready) in &running {
        assert_eq!(image, &pinned, "{pod}");
        assert_eq!(id, &format!("nginx@{scanned}"), "{pod}");
        assert!(ready, "{pod} runs the healthy content");
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let d = deployments.get("frontend").await.unwrap();
    assert_eq!(d.status.unwrap().updated_replicas, Some(3));

    // `repo@digest` is the same content.
    let by_digest = format!("nginx@{scanned}");
    set_image(&client, &by_digest).await;
    let running = containers(&client, "shop", "frontend").await;
    assert!(
        running.iter().all(|(_, image, _, _)| image == &by_digest),
        "{running:?}"
    );
    assert_eq!(image_ids(&running), BTreeSet::from([by_digest.clone()]));

    // By tag, the new (broken) build runs: it crash-loops and reports its own digest.
    set_image(&client, FIXED).await;
    let running = containers(&client, "shop", "frontend").await;
    let by_tag: Vec<_> = running.iter().filter(|(_, i, _, _)| i == FIXED).collect();
    assert!(!by_tag.is_empty(), "{running:?}");
    for (pod, _, id, ready) in by_tag {
        assert_eq!(id, &format!("nginx@{moved}"), "{pod}");
        assert!(!ready, "{pod} runs the broken build");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_tag_pushed_while_pods_run_changes_nothing_until_a_new_rollout() {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let client = sim.client().unwrap();
    let before = containers(&client, "shop", "frontend").await;
    let old_digest = sim.catalogue().digest(OLD).unwrap();

    let new_digest = sim
        .catalogue()
        .push(OLD, healthy("nginx/1.25.3 rebuilt\n"))
        .unwrap();
    assert_ne!(new_digest, old_digest);
    // The same pods, the same content.
    assert_eq!(containers(&client, "shop", "frontend").await, before);
    assert_eq!(
        image_ids(&before),
        BTreeSet::from([format!("nginx@{old_digest}")])
    );

    // A rollout by the same tag pulls the tag's new content.
    rollout_restart(&client).await;
    let after = containers(&client, "shop", "frontend").await;
    let names = |c: &BTreeSet<(String, String, String, bool)>| -> BTreeSet<String> {
        c.iter().map(|(n, _, _, _)| n.clone()).collect()
    };
    assert!(names(&after).is_disjoint(&names(&before)), "new pods");
    assert_eq!(
        image_ids(&after),
        BTreeSet::from([format!("nginx@{new_digest}")])
    );
    assert!(
        after
            .iter()
            .all(|(_, image, _, ready)| image == OLD && *ready)
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pod = after.iter().next().unwrap().0.clone();
    let log = pods.logs(&pod, &LogParams::default()).await.unwrap();
    assert_eq!(log, "nginx/1.25.3 rebuilt\n");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_digest_cannot_be_pulled() {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let client = sim.client().unwrap();
    let unknown = format!("sha256:{}", "0".repeat(64));
    let image = format!("{FIXED}@{unknown}");
    set_image(&client, &image).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let list = pods
        .list(&ListParams::default().labels("app=frontend"))
        .await
        .unwrap();
    let stuck: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(image.as_str()))
        .collect();
    assert!(!stuck.is_empty());
    for p in &stuck {
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let c = &status.container_statuses.as_ref().unwrap()[0];
        let waiting = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(c.image_id, "", "nothing runs, so no imageID");
    }
    // The old pods keep serving the old content.
    let old = format!("nginx@{}", sim.catalogue().digest(OLD).unwrap());
    assert!(
        containers(&client, "shop", "frontend")
            .await
            .iter()
            .any(|(_, i, id, ready)| i == OLD && id == &old && *ready)
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "shop");
    let name = stuck[0].metadata.name.clone().unwrap();
    let messages: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name.as_str()))
        .filter_map(|e| e.message)
        .collect();
    let resolved = format!("docker.io/library/nginx@{unknown}");
    let expected = format!(
        "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{resolved}\": failed to resolve reference \"{resolved}\": {resolved}: not found"
    );
    assert!(messages.contains(&expected), "{messages:#?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_scanner_by_digest_sees_the_old_content_after_the_tag_moved() {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let old = sim.catalogue().digest(OLD).unwrap();
    let scanner = CatalogueScanner::from(sim.catalogue());
    let tags = CatalogueTags::from(sim.catalogue());
    let reference = ImageRef::parse(OLD).unwrap();
    assert_eq!(tags.digest(&reference).await.unwrap(), Some(old.clone()));

    let report = scanner.scan(OLD).await.unwrap();
    assert_eq!(
        ids(&report, Severity::Critical),
        BTreeSet::from(["CVE-2023-38545".into(), "CVE-2024-45491".into()])
    );
    assert_eq!(report.metadata.repo_digests, [format!("nginx@{old}")]);
    assert_eq!(report.metadata.repo_tags, [OLD]);
    let image_id = report.metadata.image_id.clone().unwrap();
    assert!(
        image_id.starts_with("sha256:") && image_id != old,
        "{image_id}"
    );

    // The tag moves to a clean build.
    let new = sim.catalogue().push(OLD, healthy("clean\n")).unwrap();
    assert_eq!(tags.digest(&reference).await.unwrap(), Some(new.clone()));
    let by_tag = scanner.scan(OLD).await.unwrap();
    assert_eq!(by_tag.vulnerabilities().count(), 0);
    assert_eq!(by_tag.metadata.repo_digests, [format!("nginx@{new}")]);

    // By digest (either form), the content that was scanned before, findings and all.
    for pinned in [
        format!("nginx@{old}"),
        format!("{OLD}@{old}"),
        format!("nginx:anything@{old}"),
    ] {
        let r = scanner.scan(&pinned).await.unwrap();
        assert_eq!(r.artifact_name, pinned);
        assert_eq!(
            r.metadata.repo_digests,
            [format!("nginx@{old}")],
            "{pinned}"
        );
        assert!(r.metadata.repo_tags.is_empty(), "{pinned}");
        assert_eq!(ids(&r, Severity::Critical).len(), 2, "{pinned}");
        assert_eq!(r.vulnerabilities().count(), 22, "{pinned}");
        let pinned_ref = ImageRef::parse(&pinned).unwrap();
        assert_eq!(tags.digest(&pinned_ref).await.unwrap(), Some(old.clone()));
    }
    // The same through the tools `Simulator::tools` wires, which share the catalogue.
    let tools = sim.tools(Limits::default()).unwrap();
    let scan_tool = tools
        .iter()
        .find(|t| t.spec().name == "trivy_scan_image")
        .unwrap();
    let out = scan_tool
        .call(
            &json!({"image": format!("nginx@{old}")}),
            &ToolContext::default(),
        )
        .await
        .unwrap()
        .content;
    assert!(
        out.contains("2 CRITICAL, 6 HIGH, 11 MEDIUM, 3 LOW"),
        "{out}"
    );
    let out = scan_tool
        .call(&json!({"image": OLD}), &ToolContext::default())
        .await
        .unwrap()
        .content;
    assert!(
        out.contains(": 0 vulnerabilities"),
        "the tag's new content is clean: {out}"
    );

    // An unknown digest is not found, with the registry's words.
    let unknown = format!("nginx@sha256:{}", "1".repeat(64));
    match scanner.scan(&unknown).await.unwrap_err() {
        ScanError::ImageNotFound { detail, .. } => {
            assert!(
                detail.starts_with("MANIFEST_UNKNOWN: manifest unknown"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    let e = tags
        .digest(&ImageRef::parse("nginx:9.9").unwrap())
        .await
        .unwrap_err();
    assert!(e.contains("MANIFEST_UNKNOWN"), "{e}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_vulnerability_database_update_shows_in_the_next_scan_of_the_same_content() {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let client = sim.client().unwrap();
    let scanner = CatalogueScanner::from(sim.catalogue());
    let digest = sim.catalogue().digest(FIXED).unwrap();
    let before = scanner.scan(FIXED).await.unwrap();
    assert!(ids(&before, Severity::Critical).is_empty());
    let running = containers(&client, "shop", "frontend").await;

    let new = ImageFinding {
        id: "CVE-2024-6119".into(),
        severity: Severity::Critical,
        package: "libssl3".into(),
        installed: "3.1.4-r6".into(),
        fixed: Some("3.1.7-r0".into()),
        cvss: Some(9.1),
        title: Some("openssl: denial of service in X.509 name checks".into()),
    };
    sim.catalogue()
        .set_findings(&digest, vec![new.clone()])
        .unwrap();
    let after = scanner.scan(&format!("nginx@{digest}")).await.unwrap();
    assert_eq!(
        ids(&after, Severity::Critical),
        BTreeSet::from(["CVE-2024-6119".into()])
    );
    let v = after
        .vulnerabilities()
        .find(|v| v.vulnerability_id == "CVE-2024-6119")
        .unwrap();
    assert_eq!(
        (
            v.pkg_name.as_str(),
            v.installed_version.as_str(),
            v.fixed_version.as_deref(),
            v.primary_url.as_deref()
        ),
        (
            "libssl3",
            "3.1.4-r6",
            Some("3.1.7-r0"),
            Some("https://avd.aquasec.com/nvd/cve-2024-6119")
        )
    );
    assert_eq!(
        after.vulnerabilities().count(),
        before.vulnerabilities().count() + 1
    );
    // Same content: the digest and what runs are unchanged.
    assert_eq!(sim.catalogue().digest(FIXED), Some(digest.clone()));
    assert_eq!(containers(&client, "shop", "frontend").await, running);

    let e = sim
        .catalogue()
        .set_findings(&format!("sha256:{}", "2".repeat(64)), vec![new.clone()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no content with this digest"), "{e}");
    let e = sim
        .catalogue()
        .set_findings("sha256:ABC", vec![new])
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"sha256:ABC\" has 'A' at position 1"), "{e}");
    sim.shutdown().await;
}

#[tokio::test]
async fn operator_reports_name_the_content_and_its_explicit_findings() {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let client = sim.client().unwrap();
    let gvk = GroupVersionKind::gvk("aquasecurity.github.io", "v1alpha1", "VulnerabilityReport");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, "shop", &ApiResource::from_gvk(&gvk));
    let reports = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(reports.len(), 1);
    let report = &reports[0].data["report"];
    assert_eq!(
        report["artifact"],
        json!({"repository": "nginx", "tag": "1.25.3-alpine", "digest": sim.catalogue().digest(OLD)})
    );
    assert_eq!(report["summary"]["criticalCount"], json!(2));
    assert_eq!(report["summary"]["highCount"], json!(6));
    let found: BTreeSet<&str> = report["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["severity"] == "CRITICAL")
        .map(|v| v["vulnerabilityID"].as_str().unwrap())
        .collect();
    assert_eq!(found, BTreeSet::from(["CVE-2023-38545", "CVE-2024-45491"]));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_candidate_upgrade_keeps_one_critical_and_the_fix_clears_them_all() {
    let scanner = CatalogueScanner::new(Scenario::builtin("critical-cve").unwrap().images);
    let current = scanner.scan(OLD).await.unwrap();
    let middle = scanner.scan("nginx:1.25.4-alpine").await.unwrap();
    let fixed = scanner.scan(FIXED).await.unwrap();
    assert_eq!(
        ids(&middle, Severity::Critical),
        BTreeSet::from(["CVE-2024-45491".into()])
    );
    for sev in [Severity::Critical, Severity::High] {
        assert!(ids(&middle, sev).is_subset(&ids(&current, sev)), "{sev}");
        assert!(ids(&fixed, sev).is_empty(), "{sev}");
    }
    assert_eq!(
        ids(&current, Severity::High).len(),
        5,
        "6 entries, 5 unique ids"
    );
    assert_eq!(
        current
            .vulnerabilities()
            .filter(|v| v.severity == Severity::High)
            .count(),
        6
    );
}

#[test]
fn scenario_digests_and_findings_are_validated() {
    let refused = |yaml: &str, expected: &str| {
        let e = Scenario::from_yaml(yaml, "my.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{yaml}\n{e}");
    };
    refused(
        "name: x\nimages:\n  app:1: {digest: sha256:abc}",
        "scenario my.yaml: image app:1: digest \"sha256:abc\" has 3 hex digits; a sha256 digest has 64",
    );
    refused(
        &format!(
            "name: x\nimages:\n  app:1: {{digest: \"sha512:{}\"}}",
            "a".repeat(128)
        ),
        "uses the algorithm \"sha512\"",
    );
    refused(
        &format!(
            "name: x\nimages:\n  app@sha256:{}: {{digest: \"sha256:{}\"}}",
            "a".repeat(64),
            "b".repeat(64)
        ),
        "differs from the digest in the reference",
    );
    refused(
        "name: x\nimages:\n  app:1:\n    findings:\n      - {id: CVE-1, severity: CRIT, package: p, installed: '1'}",
        "unknown severity \"CRIT\": expected CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN",
    );
    refused(
        "name: x\nimages:\n  app:1:\n    findings:\n      - {id: CVE-1, severity: HIGH, package: p, installed: '1', cvss: 11}",
        "image app:1: findings[0]: cvss 11 is not a score from 0 to 10",
    );
    refused(
        "name: x\nimages:\n  app:1:\n    findings:\n      - {id: 'CVE 1', severity: HIGH, package: p, installed: '1'}",
        "image app:1: findings[0]: id contains",
    );
    refused(
        "name: x\nimages:\n  app:1:\n    findings:\n      - {id: CVE-1, severity: HIGH, package: p, installed: '1'}\n      - {id: CVE-1, severity: LOW, package: p, installed: '1'}",
        "findings[1]: CVE-1 in p is listed twice",
    );
    refused(
        "name: x\nimages:\n  app:1:\n    findings:\n      - {id: CVE-1, severity: HIGH, package: p}",
        "missing field `installed`",
    );
    refused(
        "name: x\nimages:\n  App:1: {}",
        "image App:1 is not an image reference",
    );
    let d = format!("sha256:{}", "c".repeat(64));
    refused(
        &format!(
            "name: x\nimages:\n  app:1: {{digest: \"{d}\"}}\n  app:2: {{digest: \"{d}\", logs: other}}"
        ),
        &format!("images app:1 and app:2 have the same digest {d} but different content"),
    );
    // Two tags of one build are fine, and resolve to one content.
    let s = Scenario::from_yaml(
        &format!("name: x\nimages:\n  app:1: {{digest: \"{d}\", logs: same}}\n  app:stable: {{digest: \"{d}\", logs: same}}"),
        "my.yaml",
    )
    .unwrap();
    let c = Catalogue::from_images(&s.images);
    assert_eq!(c.digest("app:1"), Some(d.clone()));
    assert_eq!(c.digest("docker.io/library/app:stable"), Some(d.clone()));
    assert_eq!(c.resolve(&format!("app@{d}")).unwrap().logs, "same");
    // Findings count toward the per-image limit.
    let mut many = String::new();
    for i in 0..10_001 {
        many.push_str("      - {id: CVE-");
        many.push_str(&i.to_string());
        many.push_str(", severity: LOW, package: p, installed: '1'}\n");
    }
    refused(
        &format!("name: x\nimages:\n  app:1:\n    findings:\n{many}"),
        "image app:1 has 10001 vulnerabilities; the simulator allows at most 10000 per image",
    );
}

#[test]
fn pushes_are_checked_and_move_only_their_tag() {
    let c = Catalogue::from_images(&Scenario::builtin("critical-cve").unwrap().images);
    let before = c.references();
    let d1 = c.push("nginx:1.25.5-alpine", healthy("a\n")).unwrap();
    let d2 = c.push("nginx:1.25.5-alpine", healthy("a\n")).unwrap();
    assert_ne!(d1, d2, "every push is a new build");
    assert_eq!(c.references(), before, "no new tag");
    assert_eq!(
        c.digest("nginx:1.25.4-alpine"),
        Some(sha("nginx:1.25.4-alpine"))
    );
    // An explicit digest, and a retag of existing content.
    let d = format!("sha256:{}", "d".repeat(64));
    let p = ImageProfile {
        digest: Some(d.clone()),
        ..healthy("pinned\n")
    };
    assert_eq!(c.push("nginx:canary", p.clone()).unwrap(), d);
    assert_eq!(c.push("nginx:stable", p).unwrap(), d);
    assert_eq!(c.digest("nginx:stable"), Some(d.clone()));
    let e = c
        .push(
            "nginx:other",
            ImageProfile {
                digest: Some(d.clone()),
                ..healthy("different\n")
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "digest {d} already names other content in docker.io/library/nginx"
        )),
        "{e}"
    );
    let e = c.push("nginx", healthy("x")).unwrap_err().to_string();
    assert!(e.contains("name a tag or a digest"), "{e}");
    let e = c.push("Nginx:1", healthy("x")).unwrap_err().to_string();
    assert!(e.contains("is not an image reference"), "{e}");
    // Pushing by digest only: addressable, no tag.
    let only = format!("sha256:{}", "e".repeat(64));
    assert_eq!(
        c.push(&format!("nginx@{only}"), healthy("e\n")).unwrap(),
        only
    );
    assert_eq!(
        c.resolve(&format!("docker.io/library/nginx@{only}"))
            .unwrap()
            .logs,
        "e\n"
    );
    assert!(!c.references().iter().any(|r| r.contains(&only)));
    // The kubelet's view of something the catalogue lacks.
    let missing = c.profile("nginx:9.9");
    assert_eq!(missing.health, Health::Imagepull);
    assert_eq!(missing, kubelet::missing_image("nginx:9.9"));
}

#[tokio::test]
async fn tag_listers_without_digests_answer_none() {
    struct Plain;
    #[async_trait::async_trait]
    impl TagLister for Plain {
        async fn tags(&self, _: &ImageRef) -> Result<Vec<String>, String> {
            Ok(vec!["1".into()])
        }
    }
    assert_eq!(
        Plain.digest(&ImageRef::parse("nginx:1").unwrap()).await,
        Ok(None)
    );
    // The catalogue's tag lister lists the live tags.
    let c = Catalogue::from_images(&Scenario::builtin("critical-cve").unwrap().images);
    let tags = CatalogueTags::from(c.clone());
    let nginx = ImageRef::parse("nginx:1.25.3-alpine").unwrap();
    assert!(
        !tags
            .tags(&nginx)
            .await
            .unwrap()
            .contains(&"1.27.0-alpine".to_owned())
    );
    c.push("nginx:1.27.0-alpine", healthy("x\n")).unwrap();
    assert!(
        tags.tags(&nginx)
            .await
            .unwrap()
            .contains(&"1.27.0-alpine".to_owned())
    );
}
