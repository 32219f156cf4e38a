//! The Trivy loop closed, end to end on the simulator through the real agent loop and gate: the
//! approval of a CVE patch shows the CRITICAL ids and the candidate's own scan, the patch is
//! pinned to the digest that was scanned, and after the rollout the digest the pods *run* is
//! re-scanned — a tag that moved, or a finding the approval said was cleared, fails the
//! verification and the patch is rolled back.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sre_core::{ActionStatus, Agent, ApprovalPolicy, ApprovalRequest, Decision, RunReport, Tool};
use sre_tools::k8s::{Limits, Scope};
use sre_tools::playbook::Playbook;
use sre_tools::sim::Simulator;
use sre_tools::sim::scenario::{ImageFinding, ImageProfile};
use sre_tools::sim::trivy::{Catalogue, CatalogueScanner, CatalogueTags};
use sre_tools::trivy::registry::{ImageRef, TagLister};
use sre_tools::trivy::report::Severity;

const CRITICALS: [&str; 2] = ["CVE-2024-45491", "CVE-2023-38545"];

fn limits() -> Limits {
    Limits {
        poll_interval: Duration::from_millis(10),
        rollout_timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// A registry that lists tags but gives no digests (as some do without a manifest HEAD).
struct NoDigests(CatalogueTags);

#[async_trait]
impl TagLister for NoDigests {
    async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, String> {
        self.0.tags(image).await
    }
}

/// Approves every write, after running `during` (what happens in the world while a human
/// reads the prompt), and keeps the requests it saw.
struct Approve<F> {
    seen: Mutex<Vec<ApprovalRequest>>,
    during: F,
}

#[async_trait]
impl<F: Fn() + Send + Sync> ApprovalPolicy for Approve<F> {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        self.seen.lock().unwrap().push(request.clone());
        (self.during)();
        Decision::approve("test")
    }
}

fn tools(sim: &Simulator, digests: bool) -> Vec<Arc<dyn Tool>> {
    let cat = sim.catalogue();
    let tags: Arc<dyn TagLister> = if digests {
        Arc::new(CatalogueTags::from(cat.clone()))
    } else {
        Arc::new(NoDigests(CatalogueTags::from(cat.clone())))
    };
    sre_tools::toolset(
        sim.client().unwrap(),
        Scope::namespaces(sim.scenario().all_namespaces()),
        limits(),
        Arc::new(CatalogueScanner::from(cat)),
        tags,
    )
}

async fn run(
    digests: bool,
    during: impl Fn(&Catalogue) + Send + Sync + 'static,
) -> (Simulator, RunReport, Vec<ApprovalRequest>) {
    let sim = Simulator::start_named("critical-cve").await.unwrap();
    let cat = sim.catalogue();
    let policy = Arc::new(Approve {
        seen: Mutex::new(Vec::new()),
        during: move || during(&cat),
    });
    let report = Agent::builder(Playbook::new(sim.scenario().all_namespaces()))
        .tools(tools(&sim, digests))
        .policy_arc(policy.clone())
        .max_steps(15)
        .build()
        .unwrap()
        .run(&sim.scenario().task.clone())
        .await;
    let seen = policy.seen.lock().unwrap().clone();
    (sim, report, seen)
}

fn image(sim: &Simulator) -> String {
    sim.object("deployments", "shop", "frontend").unwrap()["spec"]["template"]["spec"]["containers"]
        [0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn critical(id: &str) -> ImageFinding {
    ImageFinding {
        id: id.into(),
        severity: Severity::Critical,
        package: "libexpat".into(),
        installed: "2.6.2-r0".into(),
        fixed: Some("2.6.3-r0".into()),
        cvss: Some(9.8),
        title: None,
    }
}

#[tokio::test]
async fn the_approval_names_the_critical_ids_and_the_candidates_own_scan() {
    let (sim, r, seen) = run(true, |_| {}).await;
    assert_eq!(seen.len(), 1, "one write was asked for");
    let req = &seen[0];
    let ev = req
        .preview
        .evidence
        .as_ref()
        .and_then(|e| e.vulnerabilities.as_ref())
        .expect("a CVE patch carries its scans");
    assert_eq!(ev.current.counts.critical, 2);
    assert_eq!(ev.candidate.counts.critical + ev.candidate.counts.high, 0);
    for id in CRITICALS {
        assert!(ev.clears.iter().any(|c| c == id), "{id} in {:?}", ev.clears);
    }
    assert!(ev.remains.is_empty() && ev.introduces.is_empty());
    // The prompt a human reads says the same.
    let prompt = req.render();
    for id in CRITICALS {
        assert!(prompt.contains(id), "{prompt}");
    }
    assert!(prompt.contains("2 CRITICAL, 5 HIGH"), "{prompt}");
    assert!(
        prompt.contains("candidate: nginx:1.25.5-alpine"),
        "{prompt}"
    );
    assert!(prompt.contains("simulated catalogue"), "{prompt}");
    // Pinned: the patch runs the content that was scanned.
    let digest = sim.catalogue().digest("nginx:1.25.5-alpine").unwrap();
    let after = &req.preview.images.as_ref().unwrap()[0].after;
    assert_eq!(*after, format!("nginx:1.25.5-alpine@{digest}"));
    assert_eq!(ev.candidate.digest.as_deref(), Some(digest.as_str()));
    // And the verification re-scanned what runs.
    let a = &r.actions[0];
    assert_eq!(a.status, ActionStatus::Applied);
    let v = a.verification.as_ref().unwrap();
    assert!(v.passed, "{v:?}");
    let sec = v.security.as_ref().expect("a security re-scan");
    assert!(sec.passed);
    assert!(sec.running.ends_with(&digest), "{}", sec.running);
    assert_eq!((sec.before.critical, sec.after.critical), (2, 0));
    for id in CRITICALS {
        assert!(sec.gone.iter().any(|g| g == id));
    }
    assert!(sec.remaining.is_empty());
    assert!(
        v.detail.contains("security re-scan of what runs"),
        "{}",
        v.detail
    );
    assert_eq!(image(&sim), format!("nginx:1.25.5-alpine@{digest}"));
    // The JSON report carries before and after per action.
    let json = serde_json::to_value(&r).unwrap();
    let action = &json["actions"][0];
    assert_eq!(
        action["preview"]["evidence"]["vulnerabilities"]["current"]["counts"]["critical"],
        2
    );
    assert_eq!(action["verification"]["security"]["after"]["critical"], 0);
}

#[tokio::test]
async fn a_tag_that_moves_during_the_approval_does_not_change_what_runs_when_pinned() {
    let (sim, r, seen) = run(true, |cat| {
        let worse = ImageProfile {
            findings: vec![critical("CVE-2099-0001")],
            digest: None,
            ..cat.profile("nginx:1.25.5-alpine")
        };
        cat.push("nginx:1.25.5-alpine", worse).unwrap();
    })
    .await;
    let pinned = seen[0].preview.images.as_ref().unwrap()[0].after.clone();
    assert!(pinned.contains("@sha256:"), "{pinned}");
    let v = r.actions[0].verification.as_ref().unwrap();
    assert!(v.passed, "the scanned content runs: {v:?}");
    let sec = v.security.as_ref().unwrap();
    assert!(sec.unexpected.is_empty(), "{sec:?}");
    assert_eq!(image(&sim), pinned);
}

#[tokio::test]
async fn a_tag_that_moves_to_worse_content_fails_the_security_check_and_rolls_back() {
    let (sim, r, seen) = run(false, |cat| {
        let worse = ImageProfile {
            findings: vec![critical("CVE-2099-0001")],
            digest: None,
            ..cat.profile("nginx:1.25.5-alpine")
        };
        cat.push("nginx:1.25.5-alpine", worse).unwrap();
    })
    .await;
    let req = &seen[0];
    assert_eq!(
        req.preview.images.as_ref().unwrap()[0].after,
        "nginx:1.25.5-alpine",
        "no digest from the registry: patched by tag"
    );
    assert!(
        req.preview.summary.contains("no digest"),
        "{}",
        req.preview.summary
    );
    let a = &r.actions[0];
    let v = a.verification.as_ref().unwrap();
    assert!(!v.passed, "{v:?}");
    let sec = v.security.as_ref().unwrap();
    assert_eq!(sec.unexpected, ["CVE-2099-0001"]);
    assert!(!sec.passed);
    assert!(
        v.detail
            .contains("NEW since the approved scan: CVE-2099-0001"),
        "{}",
        v.detail
    );
    assert!(
        a.rolled_back.as_ref().is_some_and(|b| b.ok),
        "{:?}",
        a.rolled_back
    );
    assert_eq!(image(&sim), "nginx:1.25.3-alpine");
}

#[tokio::test]
async fn a_patch_that_still_has_a_critical_it_was_approved_to_clear_fails_and_rolls_back() {
    // A vulnerability-database update while the approval waits: the candidate's own content
    // turns out to have one of the CRITICALs the approval said it clears.
    let (sim, r, seen) = run(true, |cat| {
        let digest = cat.digest("nginx:1.25.5-alpine").unwrap();
        cat.set_findings(&digest, vec![critical("CVE-2024-45491")])
            .unwrap();
    })
    .await;
    let ev = seen[0]
        .preview
        .evidence
        .clone()
        .unwrap()
        .vulnerabilities
        .unwrap();
    assert!(ev.clears.iter().any(|c| c == "CVE-2024-45491"));
    let a = &r.actions[0];
    let v = a.verification.as_ref().unwrap();
    assert!(!v.passed, "{v:?}");
    let sec = v.security.as_ref().unwrap();
    assert_eq!(sec.not_cleared, ["CVE-2024-45491"]);
    assert_eq!(sec.remaining, ["CVE-2024-45491"]);
    assert!(
        a.rolled_back.as_ref().is_some_and(|b| b.ok),
        "{:?}",
        a.rolled_back
    );
    assert_eq!(image(&sim), "nginx:1.25.3-alpine");
}
