//! [`KubeStore`]: the [`RunStore`] every replica shares (`--store kubernetes`), as `ConfigMaps` in
//! the agent's own namespace.
//!
//! One `ConfigMap` per incident, named `sre-agent-incident-` and 20 hex digits of the SHA-256 of
//! the incident key, holding the whole [`IncidentRecord`] as JSON under `record.json`. Labels
//! make it listable without reading every record: `app.kubernetes.io/managed-by=sre-agent`,
//! `sre-agent.dev/record=incident`, `sre-agent.dev/state=<state>` and, while the record carries
//! a run waiting (or that waited) for an approval, `sre-agent.dev/approval=<id>`. The annotation
//! `sre-agent.dev/incident` holds the key for people reading the objects.
//!
//! Every transition reads the object and replaces it with the resourceVersion it read
//! (optimistic concurrency): when two replicas race, the API server accepts one write and
//! answers the other 409, which becomes [`StoreError::Conflict`] — nothing is written twice.
//! The agent's Role needs `get`, `list`, `create`, `update` and `delete` on `configmaps` in its
//! own namespace ([`own_namespace`](crate::k8s::rbac::own_namespace)).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use sha2::{Digest as _, Sha256};
use sre_core::{Answer, ParkedRun};

use super::sqlite::transition;
use super::store::{
    ApprovalView, Claimed, DecideError, Incident, IncidentRecord, IncidentState, RunStore,
    StoreError,
};

const NAME_PREFIX: &str = "sre-agent-incident-";
const DATA_KEY: &str = "record.json";
const MAX_RECORD_BYTES: usize = KubeStore::MAX_RECORD_BYTES;

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const RECORD: &str = "sre-agent.dev/record";
const STATE: &str = "sre-agent.dev/state";
const APPROVAL: &str = "sre-agent.dev/approval";
const INCIDENT: &str = "sre-agent.dev/incident";

/// How often `open` prunes closed records past their cooldown.
const PRUNE_EVERY_MS: u64 = 10 * 60 * 1000;
/// How many times a transition re-reads after a conflict it can retry.
const ATTEMPTS: usize = 5;

/// The [`RunStore`] on the Kubernetes API: `ConfigMaps` in the agent's own namespace, shared by
/// every replica.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use sre_tools::serve::{KubeStore, RunStore};
///
/// let client = kube::Client::try_default().await?;
/// let store = KubeStore::new(client, "sre-agent");
/// for approval in store.approvals(sre_core::park::now_unix_ms()).await? {
///     println!("{} {}", approval.id, approval.summary);
/// }
/// # Ok(())
/// # }
/// ```
pub struct KubeStore {
    api: Api<ConfigMap>,
    namespace: String,
    last_prune_ms: AtomicU64,
}

impl fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// What a `ConfigMap` read back holds.
struct Stored {
    record: IncidentRecord,
    resource_version: Option<String>,
}

impl KubeStore {
    /// The prefix of every incident `ConfigMap`'s name.
    pub const NAME_PREFIX: &str = NAME_PREFIX;
    /// The data key holding the record.
    pub const DATA_KEY: &str = DATA_KEY;
    /// The largest record stored, in bytes of JSON: a `ConfigMap` holds at most 1 MiB, metadata
    /// included.
    pub const MAX_RECORD_BYTES: usize = 900 * 1024;

    /// A store in `namespace` (the agent's own), talking through `client`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            last_prune_ms: AtomicU64::new(0),
        }
    }

    /// The name of the `ConfigMap` holding incident `key`: [`Self::NAME_PREFIX`] and 20 hex digits of
    /// the key's SHA-256.
    pub fn object_name(key: &str) -> String {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        format!("{NAME_PREFIX}{}", &digest[..20])
    }

    /// The label selector of every incident `ConfigMap`, plus `extra` (`key=value`, comma-joined).
    fn selector(extra: &str) -> String {
        let base = format!("{MANAGED_BY}=sre-agent,{RECORD}=incident");
        if extra.is_empty() {
            base
        } else {
            format!("{base},{extra}")
        }
    }

    fn error(&self, verb: &str, name: &str, e: &kube::Error) -> StoreError {
        let ns = &self.namespace;
        let what = if name.is_empty() {
            format!("configmaps in namespace {ns}")
        } else {
            format!("configmap {ns}/{name}")
        };
        match e {
            kube::Error::Api(s) if s.code == 403 => StoreError::Backend(format!(
                "kubernetes: forbidden to {verb} {what}: the agent's Role in its own namespace {ns} needs \
                 get, list, create, update and delete on configmaps (see `sre-agent rbac`): {}",
                s.message
            )),
            kube::Error::Api(s) => StoreError::Backend(format!(
                "kubernetes: cannot {verb} {what}: API error {} {}: {}",
                s.code, s.reason, s.message
            )),
            other => StoreError::Backend(format!(
                "kubernetes: cannot {verb} {what}: cannot reach the Kubernetes API: {other}"
            )),
        }
    }

    /// The `ConfigMap` for `record`, carrying `resource_version` when it replaces one.
    fn to_object(
        record: &IncidentRecord,
        resource_version: Option<String>,
    ) -> Result<ConfigMap, StoreError> {
        let key = &record.incident.key;
        let json = transition::encode(record)?;
        if json.len() > MAX_RECORD_BYTES {
            return Err(StoreError::Backend(format!(
                "kubernetes: the record of incident {key:?} is {} KiB, over the {} KiB a ConfigMap can hold \
                 (a ConfigMap is limited to 1 MiB); use --store sqlite:PATH for runs this long",
                json.len().div_ceil(1024),
                MAX_RECORD_BYTES / 1024
            )));
        }
        let mut labels = BTreeMap::from([
            (MANAGED_BY.to_owned(), "sre-agent".to_owned()),
            (RECORD.to_owned(), "incident".to_owned()),
            (STATE.to_owned(), state_label(record.state).to_owned()),
        ]);
        if let Some(id) = transition::approval_id(record) {
            if !valid_label_value(id) {
                return Err(StoreError::Backend(format!(
                    "kubernetes: approval id {id:?} of incident {key:?} cannot be a label value"
                )));
            }
            labels.insert(APPROVAL.to_owned(), id.to_owned());
        }
        Ok(ConfigMap {
            metadata: ObjectMeta {
                name: Some(Self::object_name(key)),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(INCIDENT.to_owned(), key.clone())])),
                resource_version,
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(DATA_KEY.to_owned(), json)])),
            ..ConfigMap::default()
        })
    }

    /// The record a `ConfigMap` holds. `key` is the incident it should hold, when known.
    fn from_object(cm: &ConfigMap, key: Option<&str>) -> Result<Stored, StoreError> {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        let key = key
            .map(str::to_owned)
            .or_else(|| {
                cm.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(INCIDENT))
                    .cloned()
            })
            .unwrap_or_else(|| format!("(configmap {name})"));
        let json = cm
            .data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                message: format!("configmap {name} has no {DATA_KEY}"),
            })?;
        let record = transition::parse(&key, json)?;
        if Self::object_name(&record.incident.key) != name {
            return Err(StoreError::Corrupt {
                key,
                message: format!("it is stored in configmap {name}, not under its own name"),
            });
        }
        Ok(Stored {
            record,
            resource_version: cm.metadata.resource_version.clone(),
        })
    }

    async fn read(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let name = Self::object_name(key);
        let cm = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| self.error("get", &name, &e))?;
        cm.map(|cm| Self::from_object(&cm, Some(key))).transpose()
    }

    async fn list(&self, extra: &str) -> Result<Vec<ConfigMap>, StoreError> {
        let lp = ListParams::default().labels(&Self::selector(extra));
        let mut items = self
            .api
            .list(&lp)
            .await
            .map_err(|e| self.error("list", "", &e))?
            .items;
        items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(items)
    }

    /// Replaces the record with the version read; `Ok(false)` on a 409 (someone else wrote
    /// first) or a 404 (it was deleted meanwhile).
    async fn replace(&self, stored: &Stored) -> Result<bool, StoreError> {
        let cm = Self::to_object(&stored.record, stored.resource_version.clone())?;
        let name = Self::object_name(&stored.record.incident.key);
        match self.api.replace(&name, &PostParams::default(), &cm).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(false),
            Err(e) => Err(self.error("update", &name, &e)),
        }
    }

    /// Deletes the object if it is still at the version read; false when it changed or is gone.
    async fn delete_at(
        &self,
        name: &str,
        resource_version: Option<String>,
    ) -> Result<bool, StoreError> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version,
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(name, &dp).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(false),
            Err(e) => Err(self.error("delete", name, &e)),
        }
    }

    /// Reads `key`, applies `change`, replaces it at the version read.
    async fn update(
        &self,
        key: &str,
        change: impl FnOnce(&mut IncidentRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stored = self
            .read(key)
            .await?
            .ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
        change(&mut stored.record)?;
        if self.replace(&stored).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(key.to_owned()))
        }
    }

    /// Deletes closed records past `cooldown`, at most once every ten minutes. Best effort: a
    /// failure is logged, and the next `open` tries again.
    async fn prune(&self, now_ms: u64, cooldown: Duration) {
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < PRUNE_EVERY_MS
            || self
                .last_prune_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let closed = match self.list(&format!("{STATE}=closed")).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune closed incidents");
                return;
            }
        };
        for cm in closed {
            let Ok(stored) = Self::from_object(&cm, None) else {
                continue;
            };
            let r = &stored.record;
            if transition::reopenable(r.state, r.updated_ms, now_ms, cooldown) {
                let name = Self::object_name(&r.incident.key);
                if let Err(e) = self.delete_at(&name, stored.resource_version.clone()).await {
                    tracing::warn!(error = %e, "cannot prune a closed incident");
                    return;
                }
            }
        }
    }
}

fn state_label(state: IncidentState) -> &'static str {
    match state {
        IncidentState::Running => "running",
        IncidentState::Parked => "parked",
        IncidentState::Closed => "closed",
    }
}

/// A Kubernetes label value: at most 63 characters, alphanumerics, `-`, `_` and `.`, starting
/// and ending with an alphanumeric.
fn valid_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

#[async_trait]
impl RunStore for KubeStore {
    async fn open(
        &self,
        incident: &Incident,
        owner: &str,
        now_ms: u64,
        cooldown: Duration,
    ) -> Result<bool, StoreError> {
        self.prune(now_ms, cooldown).await;
        let key = &incident.key;
        let name = Self::object_name(key);
        let fresh = transition::fresh(incident, owner, now_ms);
        for _ in 0..ATTEMPTS {
            let cm = Self::to_object(&fresh, None)?;
            match self.api.create(&PostParams::default(), &cm).await {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(self.error("create", &name, &e)),
            }
            // It exists: a closed record past its cooldown gives way, anything else holds.
            let Some(old) = self.read(key).await? else {
                continue; // deleted meanwhile: create again
            };
            let r = &old.record;
            if !transition::reopenable(r.state, r.updated_ms, now_ms, cooldown) {
                return Ok(false);
            }
            let stored = Stored {
                record: fresh.clone(),
                resource_version: old.resource_version,
            };
            if self.replace(&stored).await? {
                return Ok(true);
            }
            // Changed meanwhile (another replica reopened it, or it was pruned): look again.
        }
        Err(StoreError::Conflict(key.clone()))
    }

    async fn park(&self, key: &str, owner: &str, run: &ParkedRun) -> Result<(), StoreError> {
        let now = sre_core::park::now_unix_ms();
        self.update(key, |r| transition::park(r, owner, run.clone(), now))
            .await
    }

    async fn close(&self, key: &str, owner: &str, outcome: &str) -> Result<(), StoreError> {
        let now = sre_core::park::now_unix_ms();
        self.update(key, |r| transition::close(r, owner, outcome, now))
            .await
    }

    async fn release(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        let mut released = Vec::new();
        for cm in self.list(&format!("{STATE}=running")).await? {
            let stored = match Self::from_object(&cm, None) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(namespace = %self.namespace, error = %e, "skipping a corrupt running incident");
                    continue;
                }
            };
            let r = &stored.record;
            if r.state != IncidentState::Running || r.owner == owner {
                continue;
            }
            let name = Self::object_name(&r.incident.key);
            if self
                .delete_at(&name, stored.resource_version.clone())
                .await?
            {
                released.push(r.incident.key.clone());
            }
        }
        released.sort();
        Ok(released)
    }

    async fn approvals(&self, now_ms: u64) -> Result<Vec<ApprovalView>, StoreError> {
        let mut views = Vec::new();
        for cm in self.list(&format!("{STATE}=parked")).await? {
            let stored = Self::from_object(&cm, None)?;
            if stored.record.state == IncidentState::Parked {
                views.extend(ApprovalView::of(&stored.record, now_ms));
            }
        }
        transition::sort_views(&mut views);
        Ok(views)
    }

    async fn decide(
        &self,
        id: &str,
        action: Option<&str>,
        answer: &Answer,
    ) -> Result<ApprovalView, DecideError> {
        if !valid_label_value(id) {
            return Err(DecideError::NotFound(id.to_owned()));
        }
        let found = self.list(&format!("{APPROVAL}={id}")).await?;
        let cm = match found.as_slice() {
            [] => return Err(DecideError::NotFound(id.to_owned())),
            [one] => one,
            many => {
                return Err(StoreError::Backend(format!(
                    "kubernetes: approval {id:?} is on {} incident configmaps in namespace {}; it must be on one",
                    many.len(),
                    self.namespace
                ))
                .into());
            }
        };
        let mut stored = Self::from_object(cm, None)?;
        let key = stored.record.incident.key.clone();
        let now = sre_core::park::now_unix_ms();
        for _ in 0..ATTEMPTS {
            let view = transition::decide(&mut stored.record, id, action, answer, now)?;
            if self.replace(&stored).await? {
                return Ok(view);
            }
            // Another replica wrote first: read again; if it decided, that is the answer.
            stored = self
                .read(&key)
                .await?
                .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        }
        Err(StoreError::Conflict(key).into())
    }

    async fn claim(&self, owner: &str, now_ms: u64) -> Result<Option<Claimed>, StoreError> {
        let mut candidates = Vec::new();
        let mut corrupt = None;
        for cm in self.list(&format!("{STATE}=parked")).await? {
            match Self::from_object(&cm, None) {
                Ok(s) => candidates.push(s),
                Err(e) => {
                    tracing::error!(namespace = %self.namespace, error = %e, "skipping a corrupt parked run");
                    corrupt.get_or_insert(e);
                }
            }
        }
        candidates.sort_by(|a, b| {
            (a.record.updated_ms, &a.record.incident.key)
                .cmp(&(b.record.updated_ms, &b.record.incident.key))
        });
        for mut stored in candidates {
            let Some(claimed) = transition::claim(&mut stored.record, owner, now_ms) else {
                continue;
            };
            if self.replace(&stored).await? {
                return Ok(Some(claimed));
            }
            // Another replica claimed (or changed) it first: try the next one.
        }
        corrupt.map_or(Ok(None), Err)
    }

    async fn get(&self, key: &str) -> Result<Option<IncidentRecord>, StoreError> {
        Ok(self.read(key).await?.map(|s| s.record))
    }
}

// Public types are Send + Sync: `serve` shares them across tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KubeStore>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_stable_valid_and_distinct() {
        let a = KubeStore::object_name("shop/deployment/web/crashloop");
        let b = KubeStore::object_name("shop/deployment/web/oom");
        assert_eq!(a, KubeStore::object_name("shop/deployment/web/crashloop"));
        assert_ne!(a, b);
        assert_eq!(a.len(), NAME_PREFIX.len() + 20);
        assert!(a.starts_with(NAME_PREFIX));
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
    }

    #[test]
    fn label_values_are_checked() {
        assert!(valid_label_value("apv-0123456789abcdef01234567"));
        assert!(!valid_label_value(""));
        assert!(!valid_label_value("-apv"));
        assert!(!valid_label_value("apv,state=running"));
        assert!(!valid_label_value(&"a".repeat(64)));
    }
}
