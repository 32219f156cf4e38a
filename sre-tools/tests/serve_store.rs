//! The [`RunStore`] contract, one conformance suite run against both stores: [`SqliteStore`] on
//! a file in a temporary directory, and [`KubeStore`] on the real API server of
//! `../shared/k8s-apiserver` as the limited user `ai-sre`, holding exactly the own-namespace
//! Role of `sre-agent rbac` (`rbac::own_namespace`) in a fresh namespace per test.
//!
//! Every property is a generic `async fn` over `&dyn RunStore`; the `conformance!` macro runs
//! each one against both. The real tier is skipped (with a message) when the harness is not up,
//! unless `SRE_K8S_REQUIRED=1`.

#![cfg(all(feature = "serve", feature = "sim"))]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed store call must fail the test loudly"
)]

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sre_core::{
    Answer, ApprovalRequest, Decision, ImageChange, Message, ParkReason, ParkedRun,
    PendingApproval, Preview, Risk, Target, ToolCall, Usage,
};
use sre_tools::k8s::rbac;
use sre_tools::serve::{
    ApprovalState, DecideError, Incident, IncidentState, KubeStore, RunStore, SqliteStore,
    StoreError, Trigger,
};

const HOUR: Duration = Duration::from_secs(3600);
const HOUR_MS: u64 = 3_600_000;

fn now() -> u64 {
    sre_core::park::now_unix_ms()
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

// ---------------------------------------------------------------------------------------------
// Realistic records

fn incident(key: &str) -> Incident {
    Incident {
        key: key.to_owned(),
        trigger: Trigger::Watcher,
        namespace: "shop".into(),
        workload: "web".into(),
        summary: format!("deployment shop/web: pod web-7d9f-abcde in CrashLoopBackOff ({key})"),
    }
}

fn run_id(key: &str) -> String {
    format!("run-{}", key.replace('/', "-"))
}

/// The approval an image patch of shop/web waits for, expiring at `expires_at_ms`.
fn pending(key: &str, expires_at_ms: u64) -> PendingApproval {
    let run_id = run_id(key);
    let mut preview = Preview::new(
        "deployment shop/web: container web image nginx:1.25.3 -> nginx:1.25.5",
        "deployment shop/web (server-side dry run):\n\
         - spec.template.spec.containers[web].image: nginx:1.25.3\n\
         + spec.template.spec.containers[web].image: nginx:1.25.5\n",
        "deployments.apps/shop/web@resourceVersion=1021",
        Risk::Medium,
    );
    preview.target = Some(Target {
        kind: "deployments.apps".into(),
        namespace: "shop".into(),
        name: "web".into(),
        resource_version: "1021".into(),
    });
    preview.images = Some(vec![ImageChange {
        container: "web".into(),
        before: Some("nginx:1.25.3".into()),
        after: "nginx:1.25.5".into(),
    }]);
    preview.payload = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25.5"}]}}}});
    preview.undo = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.25.3"}]);
    let request = ApprovalRequest {
        run_id: run_id.clone(),
        tool: "k8s_patch_image".into(),
        call_id: "call-2".into(),
        arguments: json!({"namespace": "shop", "deployment": "web", "container": "web", "image": "nginx:1.25.5"}),
        preview,
        incident: incident(key).summary,
        writes_so_far: 0,
        rollback_on_failure: true,
    };
    let action = request.action_fingerprint();
    let requested = now();
    PendingApproval {
        id: PendingApproval::id_for(&run_id, "call-2", &action),
        request,
        action,
        requested_at: rfc3339(requested),
        expires_at: rfc3339(expires_at_ms),
        expires_at_ms,
    }
}

/// A run parked for `approval` (or, without one, parked by a shutdown).
fn parked_run(key: &str, approval: Option<PendingApproval>) -> ParkedRun {
    let lookup = ToolCall::new(
        "call-1",
        "k8s_get_deployment",
        json!({"namespace": "shop", "name": "web"}),
    );
    let patch = ToolCall::new(
        "call-2",
        "k8s_patch_image",
        json!({"namespace": "shop", "deployment": "web", "container": "web", "image": "nginx:1.25.5"}),
    );
    let reason = if approval.is_some() {
        ParkReason::Approval
    } else {
        ParkReason::Shutdown
    };
    ParkedRun {
        run_id: run_id(key),
        task: incident(key).summary,
        provider: "offline/playbook".into(),
        started_at: rfc3339(now()),
        reason,
        parked_at: rfc3339(now()),
        steps: 2,
        tool_calls: 1,
        usage: Usage::new(1851, 214),
        writes_applied: 0,
        active_ms: 41,
        transcript: vec![
            Message::system("You are an SRE agent."),
            Message::user(incident(key).summary),
            Message::assistant_tool_calls("", vec![lookup.clone()]),
            Message::tool_result(
                &lookup,
                "deployment shop/web: 3 desired, 0 ready, revision 2, resourceVersion 1021",
            ),
        ],
        actions: Vec::new(),
        seen: BTreeMap::from([("k8s_get_deployment".to_owned(), 1)]),
        turn: approval.as_ref().map(|_| sre_core::ParkedTurn {
            calls: vec![patch],
            results: vec![None],
            writes: vec![0],
        }),
        approval,
    }
}

fn answer(decision: Decision, at_ms: u64) -> Answer {
    Answer {
        decision,
        decided_at_ms: at_ms,
    }
}

async fn open(store: &dyn RunStore, key: &str, owner: &str) {
    assert!(
        store
            .open(&incident(key), owner, now(), HOUR)
            .await
            .unwrap(),
        "open {key}"
    );
}

/// Opens `key` for `owner` and parks it waiting for an approval that expires in an hour.
async fn park_for_approval(store: &dyn RunStore, key: &str, owner: &str) -> PendingApproval {
    open(store, key, owner).await;
    let p = pending(key, now() + HOUR_MS);
    store
        .park(key, owner, &parked_run(key, Some(p.clone())))
        .await
        .unwrap();
    p
}

async fn park_for_shutdown(store: &dyn RunStore, key: &str, owner: &str) {
    open(store, key, owner).await;
    store
        .park(key, owner, &parked_run(key, None))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The properties

/// open → a duplicate open is refused → close → reopen refused within the cooldown, allowed
/// after it (and at once with a zero cooldown).
async fn open_close_and_cooldown(store: &dyn RunStore) {
    let key = "shop/deployment/web/crashloop";
    let inc = incident(key);
    assert!(store.open(&inc, "replica-a", now(), HOUR).await.unwrap());
    assert!(
        !store.open(&inc, "replica-b", now(), HOUR).await.unwrap(),
        "a running incident is not opened twice"
    );
    let r = store.get(key).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.owner.as_str(), &r.incident),
        (IncidentState::Running, "replica-a", &inc)
    );
    assert!(r.run.is_none() && r.answer.is_none() && r.outcome.is_none());

    // Only the owner closes a running record.
    let err = store.close(key, "replica-b", "stolen").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref k) if k == key),
        "{err}"
    );
    store
        .close(key, "replica-a", "rolled back; verified")
        .await
        .unwrap();
    let r = store.get(key).await.unwrap().unwrap();
    assert_eq!(r.state, IncidentState::Closed);
    assert_eq!(r.outcome.as_deref(), Some("rolled back; verified"));
    assert!(matches!(
        store.close(key, "replica-a", "again").await,
        Err(StoreError::Conflict(_))
    ));

    assert!(
        !store.open(&inc, "replica-b", now(), HOUR).await.unwrap(),
        "closed within the cooldown: not handled twice"
    );
    assert_eq!(
        store.get(key).await.unwrap().unwrap().state,
        IncidentState::Closed
    );
    assert!(
        store
            .open(&inc, "replica-b", now() + 2 * HOUR_MS, HOUR)
            .await
            .unwrap(),
        "past the cooldown the incident opens again"
    );
    let r = store.get(key).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.owner.as_str()),
        (IncidentState::Running, "replica-b")
    );
    assert!(r.outcome.is_none(), "a reopened record starts afresh");

    store.close(key, "replica-b", "done").await.unwrap();
    assert!(
        store
            .open(&inc, "replica-c", now(), Duration::ZERO)
            .await
            .unwrap(),
        "no cooldown: reopens at once"
    );

    assert!(matches!(
        store.park("no/such/key", "replica-a", &parked_run("no/such/key", None)).await,
        Err(StoreError::NotFound(ref k)) if k == "no/such/key"
    ));
    assert!(store.get("no/such/key").await.unwrap().is_none());
}

/// park → `approvals()` lists it pending with the plan; only the owner parks a running record.
async fn park_lists_pending_approvals(store: &dyn RunStore) {
    let key = "shop/deployment/web/crashloop";
    open(store, key, "replica-a").await;
    let p = pending(key, now() + HOUR_MS);
    let run = parked_run(key, Some(p.clone()));
    let err = store.park(key, "replica-b", &run).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "only the owner parks: {err}"
    );
    store.park(key, "replica-a", &run).await.unwrap();
    assert!(
        matches!(
            store.park(key, "replica-a", &run).await,
            Err(StoreError::Conflict(_))
        ),
        "a parked record is not parked again"
    );
    let r = store.get(key).await.unwrap().unwrap();
    assert_eq!(r.state, IncidentState::Parked);
    assert_eq!(r.run.as_ref(), Some(&run), "the run round-trips exactly");

    // Neither a running record nor a shutdown-parked run has an approval to list.
    open(store, "shop/deployment/api/oom", "replica-a").await;
    park_for_shutdown(store, "shop/deployment/db/crashloop", "replica-a").await;

    let views = store.approvals(now()).await.unwrap();
    assert_eq!(views.len(), 1, "{views:#?}");
    let v = &views[0];
    assert_eq!(v.id, p.id);
    assert!(v.id.starts_with("apv-"));
    assert_eq!(v.state, ApprovalState::Pending);
    assert_eq!(v.run_id, run.run_id);
    assert_eq!(v.incident, key);
    assert_eq!(v.trigger, Trigger::Watcher);
    assert_eq!(v.tool, "k8s_patch_image");
    assert_eq!(v.arguments["image"], "nginx:1.25.5");
    assert_eq!(
        v.summary,
        "deployment shop/web: container web image nginx:1.25.3 -> nginx:1.25.5"
    );
    assert!(
        v.diff
            .contains("+ spec.template.spec.containers[web].image: nginx:1.25.5")
    );
    assert_eq!(v.risk, Risk::Medium);
    assert_eq!(
        v.target.as_ref().map(ToString::to_string).as_deref(),
        Some("deployments.apps/shop/web@resourceVersion=1021")
    );
    assert_eq!(v.images.as_ref().map(Vec::len), Some(1));
    assert_eq!(v.action, p.action);
    assert_eq!(v.expires_at, p.expires_at);
    assert_eq!(v.requested_at, p.requested_at);
    assert!(v.decided_by.is_none() && v.decided_at_ms.is_none());

    let later = store.approvals(p.expires_at_ms + 1).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(
        later[0].state,
        ApprovalState::Expired,
        "undecided past its expiry"
    );
}

/// decide once: the second decision is refused as already decided and changes nothing.
async fn decide_once(store: &dyn RunStore) {
    let key = "shop/deployment/web/crashloop";
    let p = park_for_approval(store, key, "replica-a").await;
    let t = now();
    let v = store
        .decide(
            &p.id,
            Some(&p.action),
            &answer(Decision::approve("alice"), t),
        )
        .await
        .unwrap();
    assert_eq!(v.state, ApprovalState::Approved);
    assert_eq!(v.decided_by.as_deref(), Some("alice"));
    assert_eq!(v.decided_at_ms, Some(t));
    let stored = store.get(key).await.unwrap().unwrap();
    assert_eq!(stored.answer, Some(answer(Decision::approve("alice"), t)));
    assert_eq!(
        stored.state,
        IncidentState::Parked,
        "deciding does not resume"
    );

    match store
        .decide(
            &p.id,
            None,
            &answer(Decision::deny("bob", "not now"), t + 1),
        )
        .await
    {
        Err(DecideError::AlreadyDecided(view)) => {
            assert_eq!(view.state, ApprovalState::Approved);
            assert_eq!(view.decided_by.as_deref(), Some("alice"));
        }
        other => panic!("second decision: {other:?}"),
    }
    assert_eq!(
        store.get(key).await.unwrap().unwrap(),
        stored,
        "nothing changed"
    );
    let views = store.approvals(now()).await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].state, ApprovalState::Approved);

    // A rejection carries its reason.
    let p2 = park_for_approval(store, "shop/deployment/api/crashloop", "replica-a").await;
    let v = store
        .decide(
            &p2.id,
            None,
            &answer(Decision::deny("bob", "change freeze"), now()),
        )
        .await
        .unwrap();
    assert_eq!(v.state, ApprovalState::Rejected);
    assert_eq!(v.reason.as_deref(), Some("change freeze"));

    assert!(matches!(
        store.decide("apv-000000000000000000000000", None, &answer(Decision::approve("alice"), now())).await,
        Err(DecideError::NotFound(ref id)) if id == "apv-000000000000000000000000"
    ));
    assert!(matches!(
        store
            .decide(
                "apv-0,sre-agent.dev/state=parked",
                None,
                &answer(Decision::approve("alice"), now())
            )
            .await,
        Err(DecideError::NotFound(_))
    ));
}

/// Eight approvers at once: exactly one decision is recorded, the others see it.
async fn concurrent_deciders_one_wins(store: &dyn RunStore) {
    let key = "shop/deployment/web/crashloop";
    let p = park_for_approval(store, key, "replica-a").await;
    let t = now();
    let answers: Vec<Answer> = (0..8)
        .map(|i| answer(Decision::approve(format!("approver-{i}")), t))
        .collect();
    let results = join_all(
        answers
            .iter()
            .map(|a| store.decide(&p.id, Some(&p.action), a)),
    )
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:#?}");
    let winner = winners[0].decided_by.clone().unwrap();
    for r in &results {
        match r {
            Ok(_) => {}
            Err(DecideError::AlreadyDecided(v)) => {
                assert_eq!(v.decided_by.as_deref(), Some(winner.as_str()));
            }
            Err(e) => panic!("a losing decider must see AlreadyDecided, got {e}"),
        }
    }
    let stored = store.get(key).await.unwrap().unwrap();
    assert_eq!(
        stored.answer.map(|a| a.decision),
        Some(Decision::approve(winner))
    );
}

/// A decision after the expiry is refused and changes nothing; one naming another action is
/// refused too; the right one then goes through.
async fn expired_and_other_action_are_refused(store: &dyn RunStore) {
    let key = "shop/deployment/web/crashloop";
    let p = park_for_approval(store, key, "replica-a").await;
    let before = store.get(key).await.unwrap().unwrap();

    let late = p.expires_at_ms + 1;
    match store
        .decide(
            &p.id,
            Some(&p.action),
            &answer(Decision::approve("alice"), late),
        )
        .await
    {
        Err(DecideError::Expired(view)) => {
            assert_eq!(view.id, p.id);
            assert_eq!(view.state, ApprovalState::Expired);
            assert_eq!(view.expires_at, p.expires_at);
        }
        other => panic!("late decision: {other:?}"),
    }
    assert_eq!(
        store.get(key).await.unwrap().unwrap(),
        before,
        "nothing changed"
    );

    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    match store
        .decide(
            &p.id,
            Some(other),
            &answer(Decision::approve("alice"), now()),
        )
        .await
    {
        Err(DecideError::OtherAction { id, action, named }) => {
            assert_eq!(
                (id.as_str(), action.as_str(), named.as_str()),
                (p.id.as_str(), p.action.as_str(), other)
            );
        }
        r => panic!("decision on another action: {r:?}"),
    }
    assert_eq!(
        store.get(key).await.unwrap().unwrap(),
        before,
        "nothing changed"
    );

    let v = store
        .decide(
            &p.id,
            Some(&p.action),
            &answer(Decision::approve("alice"), now()),
        )
        .await
        .unwrap();
    assert_eq!(v.state, ApprovalState::Approved);
}

/// claim takes only ready records: decided, expired undecided, or parked by a shutdown.
async fn claim_takes_only_ready_records(store: &dyn RunStore) {
    open(store, "shop/deployment/api/oom", "replica-a").await;
    let decided = park_for_approval(store, "shop/deployment/web/crashloop", "replica-a").await;
    assert!(
        store.claim("replica-b", now()).await.unwrap().is_none(),
        "running and undecided records are not ready"
    );

    let at = now();
    store
        .decide(&decided.id, None, &answer(Decision::approve("alice"), at))
        .await
        .unwrap();
    let claimed = store
        .claim("replica-b", now())
        .await
        .unwrap()
        .expect("decided: ready");
    assert_eq!(claimed.incident.key, "shop/deployment/web/crashloop");
    assert_eq!(
        claimed.run.approval.as_ref().map(|a| &a.id),
        Some(&decided.id)
    );
    assert_eq!(claimed.answer, Some(answer(Decision::approve("alice"), at)));
    let record = store
        .get("shop/deployment/web/crashloop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.state, record.owner.as_str()),
        (IncidentState::Running, "replica-b")
    );
    assert!(
        store.claim("replica-c", now()).await.unwrap().is_none(),
        "claimed once"
    );
    assert!(
        store.approvals(now()).await.unwrap().is_empty(),
        "a claimed run no longer waits"
    );
    // A late decision on a claimed run is still refused as decided.
    assert!(matches!(
        store
            .decide(
                &decided.id,
                None,
                &answer(Decision::deny("bob", "no"), now())
            )
            .await,
        Err(DecideError::AlreadyDecided(_))
    ));

    // Expired undecided: ready once the expiry has passed, with no answer.
    let expiring = park_for_approval(store, "shop/deployment/cart/crashloop", "replica-a").await;
    assert!(store.claim("replica-b", now()).await.unwrap().is_none());
    let claimed = store
        .claim("replica-b", expiring.expires_at_ms + 1)
        .await
        .unwrap()
        .expect("expired: ready");
    assert_eq!(claimed.incident.key, "shop/deployment/cart/crashloop");
    assert!(claimed.answer.is_none());

    // Parked by a shutdown: ready at once.
    park_for_shutdown(store, "shop/deployment/db/crashloop", "replica-a").await;
    let claimed = store
        .claim("replica-b", now())
        .await
        .unwrap()
        .expect("shutdown-parked: ready");
    assert_eq!(claimed.incident.key, "shop/deployment/db/crashloop");
    assert_eq!(claimed.run.reason, ParkReason::Shutdown);
    assert!(claimed.run.approval.is_none() && claimed.answer.is_none());
    assert!(store.claim("replica-b", now()).await.unwrap().is_none());

    // The claimer owns it now: it parks or closes it, the old owner cannot.
    assert!(matches!(
        store
            .close("shop/deployment/db/crashloop", "replica-a", "x")
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .close(
            "shop/deployment/db/crashloop",
            "replica-b",
            "resumed and finished",
        )
        .await
        .unwrap();
}

/// Eight replicas claim at once: exactly one gets the run.
async fn concurrent_claimers_one_wins(store: &dyn RunStore) {
    let key = "shop/deployment/web/crashloop";
    park_for_shutdown(store, key, "replica-old").await;
    let owners: Vec<String> = (0..8).map(|i| format!("replica-{i}")).collect();
    let t = now();
    let results = join_all(owners.iter().map(|o| store.claim(o, t))).await;
    let won: Vec<(usize, _)> = results
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.unwrap().map(|c| (i, c)))
        .collect();
    assert_eq!(won.len(), 1, "exactly one claimer wins");
    let (i, claimed) = &won[0];
    assert_eq!(claimed.incident.key, key);
    let r = store.get(key).await.unwrap().unwrap();
    assert_eq!((r.state, &r.owner), (IncidentState::Running, &owners[*i]));
}

/// release(owner) drops the running records of other replicas, and nothing else.
async fn release_drops_only_others_running(store: &dyn RunStore) {
    open(store, "shop/deployment/a/crashloop", "replica-old").await;
    open(store, "shop/deployment/b/crashloop", "replica-new").await;
    open(store, "shop/deployment/c/crashloop", "replica-gone").await;
    let p = park_for_approval(store, "shop/deployment/d/crashloop", "replica-old").await;
    open(store, "shop/deployment/e/crashloop", "replica-old").await;
    store
        .close("shop/deployment/e/crashloop", "replica-old", "done")
        .await
        .unwrap();

    let released = store.release("replica-new").await.unwrap();
    assert_eq!(
        released,
        ["shop/deployment/a/crashloop", "shop/deployment/c/crashloop"]
    );
    assert!(
        store
            .get("shop/deployment/a/crashloop")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get("shop/deployment/c/crashloop")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .get("shop/deployment/b/crashloop")
            .await
            .unwrap()
            .unwrap()
            .state,
        IncidentState::Running
    );
    assert_eq!(
        store
            .get("shop/deployment/d/crashloop")
            .await
            .unwrap()
            .unwrap()
            .state,
        IncidentState::Parked,
        "parked runs survive: they resume"
    );
    assert_eq!(store.approvals(now()).await.unwrap()[0].id, p.id);
    assert_eq!(
        store
            .get("shop/deployment/e/crashloop")
            .await
            .unwrap()
            .unwrap()
            .state,
        IncidentState::Closed,
        "closed records keep their cooldown"
    );
    assert!(store.release("replica-new").await.unwrap().is_empty());
    // A released incident opens again.
    open(store, "shop/deployment/a/crashloop", "replica-new").await;
}

/// A record that cannot be read back is reported, naming its key, never skipped silently.
async fn corrupt_record_is_reported(store: &dyn RunStore, key: &str) {
    let is_corrupt = |e: &StoreError| matches!(e, StoreError::Corrupt { key: k, .. } if k == key);
    let e = store.get(key).await.unwrap_err();
    assert!(is_corrupt(&e), "get: {e}");
    assert!(e.to_string().contains(key), "{e}");
    let e = store.approvals(now()).await.unwrap_err();
    assert!(is_corrupt(&e), "approvals: {e}");
    let e = store.claim("replica-a", now()).await.unwrap_err();
    assert!(is_corrupt(&e), "claim with nothing else ready: {e}");
    // A corrupt record does not block the others: a ready run is still claimed.
    park_for_shutdown(store, "shop/deployment/ok/crashloop", "replica-a").await;
    let c = store.claim("replica-b", now()).await.unwrap().unwrap();
    assert_eq!(c.incident.key, "shop/deployment/ok/crashloop");
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let file = super::TempDb::new(stringify!($name));
                    let store = sre_tools::serve::SqliteStore::open(&file.path).unwrap();
                    super::$name(&store).await;
                }
            )*
        }
        mod kubernetes {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(env) = super::KubeEnv::new(true).await else { return };
                    super::$name(&env.store).await;
                    env.teardown().await;
                }
            )*
        }
    };
}

conformance!(
    open_close_and_cooldown,
    park_lists_pending_approvals,
    decide_once,
    concurrent_deciders_one_wins,
    expired_and_other_action_are_refused,
    claim_takes_only_ready_records,
    concurrent_claimers_one_wins,
    release_drops_only_others_running,
);

// ---------------------------------------------------------------------------------------------
// SQLite

/// A database path in the temporary directory, removed (with its WAL files) on drop.
struct TempDb {
    path: PathBuf,
}

impl TempDb {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("sre-serve-store-{name}-{}.db", support::unique()));
        Self { path }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_records_survive_a_restart() {
    let file = TempDb::new("restart");
    let p;
    let t = now();
    {
        let store = SqliteStore::open(&file.path).unwrap();
        p = park_for_approval(&store, "shop/deployment/web/crashloop", "replica-a").await;
        park_for_shutdown(&store, "shop/deployment/db/crashloop", "replica-a").await;
        store
            .decide(&p.id, None, &answer(Decision::approve("alice"), t))
            .await
            .unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the run store is private to its user");
    }
    let store = SqliteStore::open(&file.path).unwrap();
    let views = store.approvals(now()).await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].state, ApprovalState::Approved);
    assert_eq!(views[0].decided_by.as_deref(), Some("alice"));
    let mut keys = Vec::new();
    while let Some(c) = store.claim("replica-b", now()).await.unwrap() {
        keys.push(c.incident.key);
    }
    keys.sort();
    assert_eq!(
        keys,
        [
            "shop/deployment/db/crashloop",
            "shop/deployment/web/crashloop"
        ]
    );
}

/// Two stores on one file behave like two processes: BEGIN IMMEDIATE keeps every transition
/// atomic across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_connections_on_one_file_never_both_win() {
    let file = TempDb::new("two");
    let a = SqliteStore::open(&file.path).unwrap();
    let b = SqliteStore::open(&file.path).unwrap();
    let inc = incident("shop/deployment/web/crashloop");
    let opened = join_all((0..8).map(|i| {
        let store = if i % 2 == 0 { &a } else { &b };
        let inc = &inc;
        async move { store.open(inc, &format!("replica-{i}"), now(), HOUR).await }
    }))
    .await;
    assert_eq!(
        opened.into_iter().filter(|r| *r.as_ref().unwrap()).count(),
        1,
        "one open wins"
    );
    let owner = b.get(&inc.key).await.unwrap().unwrap().owner;
    let run = parked_run(&inc.key, None);
    a.park(&inc.key, &owner, &run).await.unwrap();
    let claims = join_all((0..8).map(|i| {
        let store = if i % 2 == 0 { &a } else { &b };
        async move { store.claim(&format!("claimer-{i}"), now()).await }
    }))
    .await;
    assert_eq!(
        claims
            .into_iter()
            .filter(|r| r.as_ref().unwrap().is_some())
            .count(),
        1,
        "one claim wins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_corrupt_row_is_reported() {
    let file = TempDb::new("corrupt");
    let store = SqliteStore::open(&file.path).unwrap();
    let key = "shop/deployment/broken/crashloop";
    {
        let conn = rusqlite::Connection::open(&file.path).unwrap();
        conn.execute(
            "INSERT INTO incidents (key, state, owner, updated_ms, approval_id, record)
             VALUES (?1, 'parked', 'replica-a', 1, NULL, '{\"incident\": {\"key\": ')",
            [key],
        )
        .unwrap();
    }
    corrupt_record_is_reported(&store, key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_files_it_does_not_know() {
    let newer = TempDb::new("newer");
    SqliteStore::open(&newer.path).unwrap();
    rusqlite::Connection::open(&newer.path)
        .unwrap()
        .pragma_update(None, "user_version", 7)
        .unwrap();
    let e = SqliteStore::open(&newer.path).unwrap_err().to_string();
    assert!(e.contains("schema version 7"), "{e}");
    assert!(
        e.contains(&newer.path.display().to_string()),
        "names the file: {e}"
    );

    let foreign = TempDb::new("foreign");
    rusqlite::Connection::open(&foreign.path)
        .unwrap()
        .execute_batch("CREATE TABLE customers (id INTEGER)")
        .unwrap();
    let e = SqliteStore::open(&foreign.path).unwrap_err().to_string();
    assert!(e.contains("not an sre-agent run store"), "{e}");

    let text = TempDb::new("text");
    std::fs::write(&text.path, "this is not a database, just some text that is long enough to hold a header of one hundred bytes at least......").unwrap();
    let e = SqliteStore::open(&text.path).unwrap_err().to_string();
    assert!(e.contains(&text.path.display().to_string()), "{e}");

    let missing_dir = std::env::temp_dir()
        .join(format!("sre-serve-store-nodir-{}", support::unique()))
        .join("runs.db");
    let e = SqliteStore::open(&missing_dir).unwrap_err().to_string();
    assert!(e.contains("cannot create"), "{e}");
}

#[tokio::test]
async fn sqlite_in_memory_store_works() {
    let store = SqliteStore::in_memory().unwrap();
    let p = park_for_approval(&store, "shop/deployment/web/crashloop", "replica-a").await;
    assert_eq!(store.approvals(now()).await.unwrap()[0].id, p.id);
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// A fresh namespace where `ai-sre` holds exactly the own-namespace Role (or nothing).
struct KubeEnv {
    admin: Client,
    ns: String,
    store: KubeStore,
}

impl KubeEnv {
    async fn new(with_role: bool) -> Option<Self> {
        let (admin, agent) = support::real_clients().await?;
        let ns = format!("sre-store-{}", support::unique());
        let obj: Namespace = serde_json::from_value(
            json!({"metadata": {"name": ns, "labels": {"sre-agent-test": "true"}}}),
        )
        .unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
        if with_role {
            grant_own_namespace_role(&admin, &agent, &ns).await;
        }
        Some(Self {
            store: KubeStore::new(agent, &ns),
            admin,
            ns,
        })
    }

    fn configmaps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    async fn teardown(self) {
        let _ = Api::<Namespace>::all(self.admin)
            .delete(&self.ns, &DeleteParams::default())
            .await;
    }
}

/// Binds `rbac::own_namespace_rules()` to `ai-sre` in `ns`, and waits until the authorizer
/// says so.
async fn grant_own_namespace_role(admin: &Client, agent: &Client, ns: &str) {
    let rules: Vec<Value> = rbac::own_namespace_rules()
        .into_iter()
        .map(|(g, r, v)| json!({"apiGroups": [g], "resources": r, "verbs": v}))
        .collect();
    let role: Role = serde_json::from_value(
        json!({"metadata": {"name": rbac::SERVE_ROLE, "namespace": ns}, "rules": rules}),
    )
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": rbac::SERVE_ROLE, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": rbac::SERVE_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ai-sre"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    wait_allowed(agent, ns, "", "configmaps", "delete").await;
    wait_allowed(agent, ns, "coordination.k8s.io", "leases", "update").await;
}

async fn wait_allowed(agent: &Client, ns: &str, group: &str, resource: &str, verb: &str) {
    let api: Api<SelfSubjectAccessReview> = Api::all(agent.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.to_owned()),
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    for _ in 0..100 {
        let answer = api.create(&PostParams::default(), &review).await.unwrap();
        if answer.status.is_some_and(|s| s.allowed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ai-sre was never allowed to {verb} {resource} in {ns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_store_objects_are_named_and_labelled() {
    let Some(env) = KubeEnv::new(true).await else {
        return;
    };
    let key = "shop/deployment/web/crashloop";
    let p = park_for_approval(&env.store, key, "replica-a").await;
    let name = KubeStore::object_name(key);
    assert!(
        name.starts_with("sre-agent-incident-") && name.len() == 39,
        "{name}"
    );
    let cm = env.configmaps().get(&name).await.unwrap();
    let labels = cm.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "sre-agent");
    assert_eq!(labels["sre-agent.dev/record"], "incident");
    assert_eq!(labels["sre-agent.dev/state"], "parked");
    assert_eq!(labels["sre-agent.dev/approval"], p.id);
    assert_eq!(
        cm.metadata.annotations.unwrap()["sre-agent.dev/incident"],
        key
    );
    let stored: Value = serde_json::from_str(&cm.data.unwrap()[KubeStore::DATA_KEY]).unwrap();
    assert_eq!(stored["incident"]["key"], key);
    assert_eq!(stored["state"], "parked");

    // A stale write (an old resourceVersion) is refused by the API server, as the store relies on.
    let mut stale = env.configmaps().get(&name).await.unwrap();
    stale.metadata.resource_version = Some("1".into());
    let e = env
        .configmaps()
        .replace(&name, &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 409), "{e}");

    env.store.close(key, "replica-a", "done").await.unwrap();
    let cm = env.configmaps().get(&name).await.unwrap();
    assert_eq!(cm.metadata.labels.unwrap()["sre-agent.dev/state"], "closed");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_store_refuses_records_a_configmap_cannot_hold() {
    let Some(env) = KubeEnv::new(true).await else {
        return;
    };
    let key = "shop/deployment/web/crashloop";
    open(&env.store, key, "replica-a").await;
    let mut run = parked_run(key, Some(pending(key, now() + HOUR_MS)));
    run.transcript
        .push(Message::user("x".repeat(KubeStore::MAX_RECORD_BYTES)));
    let e = env.store.park(key, "replica-a", &run).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("KiB") && msg.contains(key), "{msg}");
    assert_eq!(
        env.store.get(key).await.unwrap().unwrap().state,
        IncidentState::Running,
        "nothing was written"
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_store_corrupt_configmap_is_reported() {
    let Some(env) = KubeEnv::new(true).await else {
        return;
    };
    let key = "shop/deployment/broken/crashloop";
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": KubeStore::object_name(key),
            "labels": {
                "app.kubernetes.io/managed-by": "sre-agent",
                "sre-agent.dev/record": "incident",
                "sre-agent.dev/state": "parked"
            },
            "annotations": {"sre-agent.dev/incident": key}
        },
        "data": {"record.json": "{\"incident\": {\"key\": "}
    }))
    .unwrap();
    env.configmaps()
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    corrupt_record_is_reported(&env.store, key).await;
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_store_without_rbac_says_forbidden() {
    let Some(env) = KubeEnv::new(false).await else {
        return;
    };
    let e = env
        .store
        .open(
            &incident("shop/deployment/web/crashloop"),
            "replica-a",
            now(),
            HOUR,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("forbidden") && e.contains("create") && e.contains("configmap"),
        "{e}"
    );
    assert!(e.contains(&env.ns), "names the namespace: {e}");
    let e = env.store.approvals(now()).await.unwrap_err().to_string();
    assert!(e.contains("forbidden") && e.contains("list"), "{e}");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_store_two_replicas_share_records() {
    // Two KubeStore values on one namespace are two replicas: what one parks, the other claims.
    let Some(env) = KubeEnv::new(true).await else {
        return;
    };
    let (_, agent) = support::real_clients().await.unwrap();
    let other = KubeStore::new(agent, &env.ns);
    let p = park_for_approval(&env.store, "shop/deployment/web/crashloop", "replica-a").await;
    other
        .decide(
            &p.id,
            Some(&p.action),
            &answer(Decision::approve("alice"), now()),
        )
        .await
        .unwrap();
    let c = other.claim("replica-b", now()).await.unwrap().unwrap();
    assert_eq!(c.run.approval.unwrap().id, p.id);
    assert!(env.store.claim("replica-a", now()).await.unwrap().is_none());
    env.teardown().await;
}
