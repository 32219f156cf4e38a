//! Leader election on a `coordination.k8s.io/v1` Lease, with kube's own primitives (get,
//! create, and replace at the resourceVersion read), the way client-go's `leaderelection` does
//! it.
//!
//! The Lease records `holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime` and
//! `leaseTransitions`. A replica takes a Lease that has no holder at once; one held by another
//! replica only once the record has not changed for the record's duration, as measured by *this*
//! replica's monotonic clock since it first saw that version of the record. Nobody's wall clock
//! is trusted, so clock skew between hosts cannot make two leaders. The leader renews every
//! `renew_every`; one that has not renewed within [`LeaseConfig::renew_deadline`] (4/5 of the
//! duration, counted from the start of its last successful renewal) stops leading before any
//! other replica can judge the lease expired. On shutdown the leader [steps
//! down](Elector::step_down), clearing the holder so another replica takes over at once.
//!
//! The agent's Role needs `get`, `create` and `update` on `leases` (`coordination.k8s.io`) in
//! its own namespace ([`own_namespace`](crate::k8s::rbac::own_namespace)).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use sre_core::Stop;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Health;

/// Where the Lease is and who this replica is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The agent's own namespace, where the Lease lives.
    pub namespace: String,
    /// This replica's identity (e.g. its pod name); unique among the replicas.
    pub identity: String,
    /// How long a lease lasts without renewal before another replica may take it (whole
    /// seconds on the wire, rounded up; at least one second).
    pub duration: Duration,
    /// How often the leader renews and followers try; at most half of `duration`.
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// The Lease `sre-agent-leader` in `namespace` for `identity`, with client-go's defaults:
    /// 15 s duration, renewed every 2 s.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            name: "sre-agent-leader".to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
        }
    }

    /// How long after the start of its last successful renewal a leader stops leading: 4/5 of
    /// the duration, so it has stopped before another replica can take the lease.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 4 / 5
    }

    /// `leaseDurationSeconds`: the duration in whole seconds, rounded up.
    fn duration_seconds(&self) -> i32 {
        let whole = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(whole).unwrap_or(i32::MAX)
    }

    fn validate(&self) -> Result<(), LeaseError> {
        let bad = |m: String| Err(LeaseError::Config(m));
        if self.identity.trim().is_empty() {
            return bad(
                "the identity is empty; give each replica a unique one (its pod name)".into(),
            );
        }
        if self.name.is_empty() || self.namespace.is_empty() {
            return bad(format!(
                "the lease needs a name and a namespace (got {:?} in {:?})",
                self.name, self.namespace
            ));
        }
        if self.duration < Duration::from_secs(1) {
            return bad(format!(
                "the lease duration {:?} is under the one second a Lease can express",
                self.duration
            ));
        }
        if self.renew_every.is_zero() || self.renew_every * 2 > self.duration {
            return bad(format!(
                "renew_every {:?} must be more than zero and at most half the lease duration {:?}, \
                 so a leader can retry a failed renewal before its lease lapses",
                self.renew_every, self.duration
            ));
        }
        Ok(())
    }
}

/// A leader-election failure. Messages name the Lease and what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The configuration cannot work.
    #[error("leader election: {0}")]
    Config(String),
    /// RBAC forbids a verb the election needs.
    #[error(
        "leader election: forbidden to {verb} lease {namespace}/{name}: the agent's Role in namespace {namespace} \
         needs get, create and update on leases (coordination.k8s.io) (see `sre-agent rbac`): {message}"
    )]
    Forbidden {
        /// The verb refused (`get`, `create`, `update`).
        verb: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// The API server refused the request for another reason.
    #[error("leader election: cannot {verb} lease {namespace}/{name}: API error {code}: {message}")]
    Api {
        /// The verb.
        verb: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The HTTP status.
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// The API server could not be reached.
    #[error(
        "leader election: cannot {verb} lease {namespace}/{name}: cannot reach the Kubernetes API: {message}"
    )]
    Unreachable {
        /// The verb.
        verb: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What failed.
        message: String,
    },
}

/// The Lease record as last seen, and when (on this replica's monotonic clock) it was first seen.
#[derive(Debug)]
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

/// One replica's side of the election.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use sre_tools::serve::Health;
/// use sre_tools::serve::lease::{Elector, LeaseConfig};
///
/// let client = kube::Client::try_default().await?;
/// let elector = Elector::new(client, LeaseConfig::new("sre-agent", "sre-agent-7d9f-abcde"))?;
/// let health = Arc::new(Health::new(true));
/// let (leading, mut is_leader) = tokio::sync::watch::channel(false);
/// let stop = sre_core::Stop::new();
/// tokio::spawn(elector.run(health, leading, stop.clone()));
/// is_leader.wait_for(|l| *l).await?;
/// println!("leading");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Mutex<Option<Observed>>,
}

impl Elector {
    /// An elector for `config`, talking through `client`.
    ///
    /// # Errors
    /// [`LeaseError::Config`] when the configuration cannot work (empty identity, a duration
    /// under a second, `renew_every` over half the duration).
    pub fn new(client: kube::Client, config: LeaseConfig) -> Result<Self, LeaseError> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn error(&self, verb: &'static str, e: &kube::Error) -> LeaseError {
        let namespace = self.config.namespace.clone();
        let name = self.config.name.clone();
        match e {
            kube::Error::Api(s) if s.code == 403 => LeaseError::Forbidden {
                verb,
                namespace,
                name,
                message: s.message.clone(),
            },
            kube::Error::Api(s) => LeaseError::Api {
                verb,
                namespace,
                name,
                code: s.code,
                message: s.message.clone(),
            },
            other => LeaseError::Unreachable {
                verb,
                namespace,
                name,
                message: other.to_string(),
            },
        }
    }

    /// Records `spec` as seen now, unless it is the version already seen; returns when the
    /// version seen now was first seen.
    fn observe(&self, spec: &LeaseSpec, now: Instant) -> Instant {
        let mut guard = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        match &*guard {
            Some(o) if o.spec == *spec => o.at,
            _ => {
                *guard = Some(Observed {
                    spec: spec.clone(),
                    at: now,
                });
                now
            }
        }
    }

    /// One round of the election: creates the Lease when there is none, renews it when this
    /// replica holds it, takes it when it has no holder or its holder let it lapse. True when
    /// this replica holds the lease afterwards.
    ///
    /// # Errors
    /// [`LeaseError`] naming the verb that failed (403: the Role lacks it).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaseError> {
        let me = self.config.identity.as_str();
        let now = Instant::now();
        let stamp = MicroTime(Timestamp::now());
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error("get", &e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    labels: Some(
                        [(
                            "app.kubernetes.io/managed-by".to_owned(),
                            "sre-agent".to_owned(),
                        )]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.to_owned()),
                    lease_duration_seconds: Some(self.config.duration_seconds()),
                    acquire_time: Some(stamp.clone()),
                    renew_time: Some(stamp),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created.spec.unwrap_or_default(), now);
                    Ok(true)
                }
                // Another replica created it first; the next round reads it.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.error("create", &e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let seen_at = self.observe(&spec, now);
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let mine = holder == Some(me);
        if holder.is_some() && !mine {
            let lasts = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map_or(self.config.duration, Duration::from_secs);
            if now.saturating_duration_since(seen_at) < lasts {
                return Ok(false);
            }
        }
        let renewed = LeaseSpec {
            holder_identity: Some(me.to_owned()),
            lease_duration_seconds: Some(self.config.duration_seconds()),
            acquire_time: if mine {
                spec.acquire_time.clone().or_else(|| Some(stamp.clone()))
            } else {
                Some(stamp.clone())
            },
            renew_time: Some(stamp),
            lease_transitions: if mine {
                spec.lease_transitions
            } else {
                Some(spec.lease_transitions.unwrap_or(0).saturating_add(1))
            },
            ..spec
        };
        lease.spec = Some(renewed);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated.spec.unwrap_or_default(), now);
                Ok(true)
            }
            // Another replica wrote the Lease between our read and our write: it won.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.error("update", &e)),
        }
    }

    /// Gives the lease up, when this replica holds it: clears the holder (and sets a one-second
    /// duration, as client-go does) so another replica takes over at once.
    ///
    /// # Errors
    /// [`LeaseError`] naming the verb that failed; a Lease another replica changed meanwhile
    /// is left alone (not an error).
    pub async fn step_down(&self) -> Result<(), LeaseError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error("get", &e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let stamp = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(stamp.clone()),
            renew_time: Some(stamp),
            ..spec
        });
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated.spec.unwrap_or_default(), Instant::now());
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self.error("update", &e)),
        }
    }

    /// Takes part in the election until `stop`: tries every `renew_every`; whenever leadership
    /// changes, sets [`Health::set_leader`] and sends the new state on `leading`. A leader that
    /// cannot renew within the [renew deadline](LeaseConfig::renew_deadline) reports that it
    /// lost leadership. When stopped it stops leading, then steps down.
    pub async fn run(self, health: Arc<Health>, leading: watch::Sender<bool>, stop: Stop) {
        let deadline = self.config.renew_deadline();
        let mut leader = false;
        let mut renewed_at = Instant::now();
        let lapse = |renewed_at: Instant| renewed_at + deadline;
        loop {
            let started = Instant::now();
            let budget = if leader {
                lapse(renewed_at).saturating_duration_since(started)
            } else {
                self.config.duration
            };
            let attempt = tokio::select! {
                biased;
                () = stop.stopped() => break,
                r = tokio::time::timeout(budget, self.try_acquire_or_renew()) => r,
            };
            let now_leading = match attempt {
                Ok(Ok(held)) => {
                    if held {
                        renewed_at = started;
                    }
                    held
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "leader election round failed");
                    leader && Instant::now() < lapse(renewed_at)
                }
                Err(_) => {
                    tracing::warn!(lease = %self.config.name, timeout = ?budget, "leader election round timed out");
                    leader && Instant::now() < lapse(renewed_at)
                }
            };
            if now_leading != leader {
                leader = now_leading;
                if leader {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                } else {
                    tracing::warn!(lease = %self.config.name, identity = %self.config.identity, "lost leadership");
                }
                health.set_leader(leader);
                leading.send_replace(leader);
            }
            let pause = if leader {
                self.config
                    .renew_every
                    .min(lapse(renewed_at).saturating_duration_since(Instant::now()))
            } else {
                self.config.renew_every
            };
            tokio::select! {
                biased;
                () = stop.stopped() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        if leader {
            health.set_leader(false);
            leading.send_replace(false);
        }
        // Even when not leading: a round cut short by the stop may have taken the lease.
        match tokio::time::timeout(self.config.duration, self.step_down()).await {
            Ok(Ok(())) => {
                tracing::info!(lease = %self.config.name, identity = %self.config.identity, "stepped down");
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.config.name, error = %e, "cannot step down; the lease lapses after its duration");
            }
            Err(_) => {
                tracing::warn!(lease = %self.config.name, "stepping down timed out; the lease lapses after its duration");
            }
        }
    }
}

// Public types are Send + Sync: `serve` shares them across tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Elector>();
    assert_send_sync::<LeaseConfig>();
    assert_send_sync::<LeaseError>();
};

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig::new("sre-agent", "replica-a")
    }

    #[test]
    fn durations_round_up_to_whole_seconds() {
        let mut c = config();
        assert_eq!(c.duration_seconds(), 15);
        c.duration = Duration::from_millis(2500);
        assert_eq!(c.duration_seconds(), 3);
        assert_eq!(c.renew_deadline(), Duration::from_secs(2));
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.identity = " ".into();
        assert!(c.validate().unwrap_err().to_string().contains("identity"));
        let mut c = config();
        c.renew_every = Duration::from_secs(10);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("at most half")
        );
        let mut c = config();
        c.duration = Duration::from_millis(500);
        assert!(c.validate().unwrap_err().to_string().contains("one second"));
    }
}
