//! `sre-agent serve`: the always-on agent in the cluster (feature `serve`).
//!
//! Triggers — a watcher over pods and deployments ([`watch`]), Alertmanager's webhook
//! ([`alertmanager`]) and a sweep of Trivy Operator reports ([`watch::trivy_sweep`]) — become
//! incidents in a bounded, debounced, de-duplicating [`Queue`]. The leader ([`lease`]) runs them
//! as agent runs; a run whose write needs a human parks in a [`RunStore`] ([`SqliteStore`],
//! [`KubeStore`]) and resumes, on any replica, when a decision comes through the approvals
//! [`api`]. Operations: [`Health`], [`metrics`], [`audit_sink`].

pub mod alertmanager;
pub mod api;
pub mod audit_sink;
pub mod channel;
pub mod client;
mod kube_store;
pub mod lease;
pub mod metrics;
mod queue;
pub mod secret;
pub mod service;
pub mod slack;
mod sqlite;
pub mod store;
pub mod teams;
pub mod watch;

use std::sync::atomic::{AtomicBool, Ordering};

pub use kube_store::KubeStore;
pub use queue::{Offer, Queue};
pub use service::{AgentFactory, CostFn, Service, ServiceConfig, Triggers};
pub use sqlite::SqliteStore;
pub use store::{
    ApprovalState, ApprovalView, Claimed, DecideError, Incident, IncidentRecord, IncidentState,
    RunStore, StoreError, Trigger,
};

/// What `/healthz` and `/readyz` report: ready means watching and, where leader election is on,
/// holding the lease (a follower is live but not ready).
#[derive(Debug, Default)]
pub struct Health {
    watching: AtomicBool,
    leader: AtomicBool,
    elect: bool,
}

impl Health {
    /// Health for a service that elects a leader (`elect`) or is always the leader.
    pub fn new(elect: bool) -> Self {
        Self {
            watching: AtomicBool::new(false),
            leader: AtomicBool::new(!elect),
            elect,
        }
    }

    /// The watchers are (or are no longer) running.
    pub fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::SeqCst);
    }

    /// This replica holds (or lost) the lease.
    pub fn set_leader(&self, on: bool) {
        self.leader.store(on, Ordering::SeqCst);
    }

    /// True while this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// True when leader election is on.
    pub fn elects(&self) -> bool {
        self.elect
    }

    /// Ready: watching, and leading where leader election is on.
    pub fn ready(&self) -> bool {
        self.watching.load(Ordering::SeqCst) && self.is_leader()
    }
}
