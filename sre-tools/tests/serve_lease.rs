//! Leader election on a real `coordination.k8s.io/v1` Lease (the API server of
//! `../shared/k8s-apiserver`), as the limited user `ai-sre` holding exactly the own-namespace
//! Role of `sre-agent rbac` in a fresh namespace per test.
//!
//! Skipped (with a message) when the harness is not up, unless `SRE_K8S_REQUIRED=1`. Waits are
//! bounded polls with generous timeouts, never sleeps standing in for a signal.

#![cfg(all(feature = "serve", feature = "sim"))]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a failed election call must fail the test loudly"
)]

#[path = "support/mod.rs"]
mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sre_core::Stop;
use sre_tools::k8s::rbac;
use sre_tools::serve::Health;
use sre_tools::serve::lease::{Elector, LeaseConfig, LeaseError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const LEASE: &str = "sre-agent-leader";
/// Generous: every wait here normally ends within a few seconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// A Role's rules: (API group, resources, verbs).
type Rules = Vec<(String, Vec<String>, Vec<String>)>;

/// A fresh namespace where `ai-sre` holds `rules` (by default exactly the own-namespace Role).
struct Env {
    admin: Client,
    agent: Client,
    ns: String,
}

impl Env {
    async fn new(rules: Option<Rules>) -> Option<Self> {
        let (admin, agent) = support::real_clients().await?;
        let ns = format!("sre-lease-{}", support::unique());
        let obj: Namespace = serde_json::from_value(
            json!({"metadata": {"name": ns, "labels": {"sre-agent-test": "true"}}}),
        )
        .unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
        let env = Self { admin, agent, ns };
        if let Some(rules) = rules {
            env.grant(&rules).await;
        }
        Some(env)
    }

    async fn with_own_namespace_role() -> Option<Self> {
        Self::new(Some(rbac::own_namespace_rules())).await
    }

    async fn grant(&self, rules: &[(String, Vec<String>, Vec<String>)]) {
        let rules: Vec<Value> = rules
            .iter()
            .map(|(g, r, v)| json!({"apiGroups": [g], "resources": r, "verbs": v}))
            .collect();
        let role: Role = serde_json::from_value(
            json!({"metadata": {"name": rbac::SERVE_ROLE, "namespace": self.ns}, "rules": rules}),
        )
        .unwrap();
        Api::<Role>::namespaced(self.admin.clone(), &self.ns)
            .create(&PostParams::default(), &role)
            .await
            .unwrap();
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": rbac::SERVE_ROLE, "namespace": self.ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": rbac::SERVE_ROLE},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "ai-sre"}]
        }))
        .unwrap();
        Api::<RoleBinding>::namespaced(self.admin.clone(), &self.ns)
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
        self.wait_for_get(true).await;
    }

    /// Waits until the authorizer lets `ai-sre` get leases here (`allowed`) or not.
    async fn wait_for_get(&self, allowed: bool) {
        let api: Api<SelfSubjectAccessReview> = Api::all(self.agent.clone());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(self.ns.clone()),
                    verb: Some("get".into()),
                    group: Some("coordination.k8s.io".into()),
                    resource: Some("leases".into()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        wait_until("the authorizer to apply the RoleBinding", || async {
            let answer = api.create(&PostParams::default(), &review).await.unwrap();
            answer.status.is_some_and(|s| s.allowed) == allowed
        })
        .await;
    }

    fn config(&self, identity: &str) -> LeaseConfig {
        LeaseConfig {
            name: LEASE.into(),
            namespace: self.ns.clone(),
            identity: identity.into(),
            duration: Duration::from_secs(2),
            renew_every: Duration::from_millis(250),
        }
    }

    fn elector(&self, identity: &str) -> Elector {
        Elector::new(self.agent.clone(), self.config(identity)).unwrap()
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    async fn spec(&self) -> LeaseSpec {
        self.leases().get(LEASE).await.unwrap().spec.unwrap()
    }

    async fn holder(&self) -> Option<String> {
        self.spec().await.holder_identity.filter(|h| !h.is_empty())
    }

    async fn teardown(self) {
        let _ = Api::<Namespace>::all(self.admin)
            .delete(&self.ns, &DeleteParams::default())
            .await;
    }
}

/// Polls `check` every 100 ms until it holds; fails after [`PATIENCE`].
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One replica running [`Elector::run`].
struct Replica {
    health: Arc<Health>,
    leading: watch::Receiver<bool>,
    stop: Stop,
    task: JoinHandle<()>,
}

impl Replica {
    fn start(elector: Elector) -> Self {
        let health = Arc::new(Health::new(true));
        let (tx, leading) = watch::channel(false);
        let stop = Stop::new();
        let task = tokio::spawn(elector.run(Arc::clone(&health), tx, stop.clone()));
        Self {
            health,
            leading,
            stop,
            task,
        }
    }

    async fn wait_leading(&mut self, want: bool) {
        tokio::time::timeout(PATIENCE, self.leading.wait_for(|l| *l == want))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for leading == {want}"))
            .unwrap();
        assert_eq!(self.health.is_leader(), want);
    }
}

fn forged(holder: &str, renew: Timestamp, duration_seconds: i32, transitions: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(duration_seconds),
            acquire_time: Some(MicroTime(renew)),
            renew_time: Some(MicroTime(renew)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_exactly_one_leads() {
    let Some(env) = Env::with_own_namespace_role().await else {
        return;
    };
    let (a, b) = (env.elector("replica-a"), env.elector("replica-b"));
    for round in 0..5 {
        let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            ra ^ rb,
            "round {round}: exactly one leads (a: {ra}, b: {rb})"
        );
        let leader = if ra { "replica-a" } else { "replica-b" };
        assert_eq!(env.holder().await.as_deref(), Some(leader));
    }
    let spec = env.spec().await;
    assert_eq!(spec.lease_duration_seconds, Some(2));
    assert_eq!(spec.lease_transitions, Some(0), "nobody took over");
    assert!(spec.acquire_time.is_some() && spec.renew_time >= spec.acquire_time);
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_steps_down_is_replaced_at_once() {
    let Some(env) = Env::with_own_namespace_role().await else {
        return;
    };
    let (a, b) = (env.elector("replica-a"), env.elector("replica-b"));
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    let acquired = env.spec().await.acquire_time;
    a.step_down().await.unwrap();
    assert_eq!(env.holder().await, None, "the holder is cleared");
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "the next round takes a released lease, without waiting for the duration"
    );
    let spec = env.spec().await;
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_ne!(
        spec.acquire_time, acquired,
        "a new holder has a new acquireTime"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap());
    // Stepping down when not the holder leaves the lease alone.
    a.step_down().await.unwrap();
    assert_eq!(env.holder().await.as_deref(), Some("replica-b"));
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_steps_down_and_the_other_takes_over() {
    let Some(env) = Env::with_own_namespace_role().await else {
        return;
    };
    let mut a = Replica::start(env.elector("replica-a"));
    a.wait_leading(true).await;
    let mut b = Replica::start(env.elector("replica-b"));
    assert!(!*b.leading.borrow() && !b.health.is_leader());
    a.stop.stop();
    a.task.await.unwrap();
    assert!(!*a.leading.borrow() && !a.health.is_leader());
    b.wait_leading(true).await;
    assert_eq!(env.holder().await.as_deref(), Some("replica-b"));
    b.stop.stop();
    b.task.await.unwrap();
    assert_eq!(env.holder().await, None, "released on stop");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_stops_renewing_is_replaced_after_the_duration() {
    let Some(env) = Env::with_own_namespace_role().await else {
        return;
    };
    let mut a = Replica::start(env.elector("replica-a"));
    a.wait_leading(true).await;
    let mut b = Replica::start(env.elector("replica-b"));
    // B runs its rounds against a lease A keeps renewing: it never takes it.
    let start = tokio::time::Instant::now();
    let mut renewals = std::collections::BTreeSet::new();
    while renewals.len() < 4 {
        assert!(start.elapsed() < PATIENCE, "replica-a stopped renewing");
        renewals.insert(format!("{:?}", env.spec().await.renew_time));
        assert!(
            !*b.leading.borrow(),
            "replica-b must not lead while replica-a renews"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(*a.leading.borrow());
    // A dies without a word: its task is dropped mid-term, nothing steps down.
    a.task.abort();
    let _ = a.task.await;
    assert_eq!(env.holder().await.as_deref(), Some("replica-a"));
    b.wait_leading(true).await;
    let spec = env.spec().await;
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    b.stop.stop();
    b.task.await.unwrap();
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_holder_that_keeps_renewing_is_respected() {
    let Some(env) = Env::with_own_namespace_role().await else {
        return;
    };
    let leases = env.leases();
    leases
        .create(
            &PostParams::default(),
            &forged("someone-else", Timestamp::now(), 2, 7),
        )
        .await
        .unwrap();
    let a = env.elector("replica-a");
    // While the foreign holder renews, every round for three durations says no.
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        let mut lease = leases.get(LEASE).await.unwrap();
        lease.spec.as_mut().unwrap().renew_time = Some(MicroTime(Timestamp::now()));
        leases
            .replace(LEASE, &PostParams::default(), &lease)
            .await
            .unwrap();
        assert!(
            !a.try_acquire_or_renew().await.unwrap(),
            "a renewed foreign lease is not taken"
        );
        assert_eq!(env.holder().await.as_deref(), Some("someone-else"));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // It stops renewing: taken once the record has not changed for its duration.
    wait_until("replica-a to take the lapsed lease", || async {
        a.try_acquire_or_renew().await.unwrap()
    })
    .await;
    let spec = env.spec().await;
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-a"));
    assert_eq!(spec.lease_transitions, Some(8));
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hosts_clock_is_not_trusted() {
    let Some(env) = Env::with_own_namespace_role().await else {
        return;
    };
    // A holder whose clock runs an hour ahead wrote a renewTime in the future: the lease still
    // lapses after its duration as this replica measures it.
    let ahead = Timestamp::now()
        .checked_add(SignedDuration::from_hours(1))
        .unwrap();
    env.leases()
        .create(&PostParams::default(), &forged("fast-clock", ahead, 2, 0))
        .await
        .unwrap();
    let a = env.elector("replica-a");
    assert!(
        !a.try_acquire_or_renew().await.unwrap(),
        "first seen: respected"
    );
    wait_until("replica-a to take the lease", || async {
        a.try_acquire_or_renew().await.unwrap()
    })
    .await;
    // And a holder whose clock runs an hour behind: its renewal looks an hour old, but this
    // replica has just seen it written, so it is respected.
    let behind = Timestamp::now()
        .checked_sub(SignedDuration::from_hours(1))
        .unwrap();
    let mut lease = env.leases().get(LEASE).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("slow-clock".into());
    spec.renew_time = Some(MicroTime(behind));
    env.leases()
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .unwrap();
    let b = env.elector("replica-b");
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "an old renewTime, just written, is a live lease"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap());
    assert_eq!(env.holder().await.as_deref(), Some("slow-clock"));
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_reports_it_lost_leadership() {
    let Some(env) = Env::with_own_namespace_role().await else {
        return;
    };
    let mut a = Replica::start(env.elector("replica-a"));
    a.wait_leading(true).await;
    // Its Role is taken away: every renewal is refused, and within the duration it says so.
    Api::<RoleBinding>::namespaced(env.admin.clone(), &env.ns)
        .delete(rbac::SERVE_ROLE, &DeleteParams::default())
        .await
        .unwrap();
    env.wait_for_get(false).await;
    a.wait_leading(false).await;
    assert!(!a.health.ready());
    a.stop.stop();
    a.task.await.unwrap();
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_reports_it_lost_leadership() {
    let Some(env) = Env::with_own_namespace_role().await else {
        return;
    };
    let mut a = Replica::start(env.elector("replica-a"));
    a.wait_leading(true).await;
    let mut lease = env.leases().get(LEASE).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("usurper".into());
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    env.leases()
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .unwrap();
    a.wait_leading(false).await;
    a.stop.stop();
    a.task.await.unwrap();
    assert_eq!(
        env.holder().await.as_deref(),
        Some("usurper"),
        "stepping down leaves another holder's lease alone"
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_rbac_is_a_clear_error() {
    let Some(env) = Env::new(None).await else {
        return;
    };
    let a = env.elector("replica-a");
    let e = a.try_acquire_or_renew().await.unwrap_err();
    assert!(
        matches!(e, LeaseError::Forbidden { verb: "get", .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("forbidden to get lease {}/{LEASE}", env.ns)),
        "{msg}"
    );
    assert!(
        msg.contains("coordination.k8s.io") && msg.contains("leases"),
        "{msg}"
    );
    // With only get, the first missing verb is create.
    env.grant(&[(
        "coordination.k8s.io".into(),
        vec!["leases".into()],
        vec!["get".into()],
    )])
    .await;
    let e = a.try_acquire_or_renew().await.unwrap_err();
    assert!(
        matches!(e, LeaseError::Forbidden { verb: "create", .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&format!("in namespace {}", env.ns)),
        "{e}"
    );
    env.teardown().await;
}
