//! The facts of a pod that the analyzers read, and nothing else. They deserialize straight from
//! the API server's JSON (unknown fields skipped without allocating) or convert from a
//! `k8s_openapi` [`Pod`], so one set of analyzers serves typed clients and bulk JSON alike.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};
use serde::{Deserialize, Deserializer, Serialize};

use crate::serde_util::nullable;

/// A pod, as far as triage needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodFacts {
    /// Metadata.
    pub metadata: MetaFacts,
    /// Spec.
    pub spec: SpecFacts,
    /// Status.
    pub status: StatusFacts,
}

/// Pod metadata facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetaFacts {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Namespace.
    #[serde(deserialize_with = "nullable")]
    pub namespace: String,
    /// The `pod-template-hash` label, the only label triage reads.
    #[serde(rename = "labels", deserialize_with = "template_hash")]
    pub pod_template_hash: Option<String>,
    /// Owners.
    #[serde(deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerFacts>,
    /// Set when the pod is being deleted (terminating).
    pub deletion_timestamp: Option<String>,
}

/// An owner reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerFacts {
    /// Kind.
    #[serde(deserialize_with = "nullable")]
    pub kind: String,
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// True for the managing controller.
    pub controller: Option<bool>,
}

/// Pod spec facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SpecFacts {
    /// Containers.
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<ContainerFacts>,
    /// Init containers.
    #[serde(deserialize_with = "nullable")]
    pub init_containers: Vec<ContainerFacts>,
}

/// A container of the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerFacts {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Its memory limit, e.g. `128Mi`.
    #[serde(rename = "resources", deserialize_with = "memory_limit")]
    pub memory_limit: Option<String>,
}

/// Pod status facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StatusFacts {
    /// Phase.
    pub phase: Option<String>,
    /// Reason (e.g. `Evicted`).
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// Conditions.
    #[serde(deserialize_with = "nullable")]
    pub conditions: Vec<ConditionFacts>,
    /// Container statuses.
    #[serde(deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatusFacts>,
    /// Init container statuses.
    #[serde(deserialize_with = "nullable")]
    pub init_container_statuses: Vec<ContainerStatusFacts>,
}

/// A pod condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConditionFacts {
    /// Type.
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// A container status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatusFacts {
    /// Name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Image.
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    /// Ready.
    pub ready: bool,
    /// Restarts.
    pub restart_count: i32,
    /// Current state.
    #[serde(deserialize_with = "nullable")]
    pub state: StateFacts,
    /// Last state.
    #[serde(deserialize_with = "nullable")]
    pub last_state: StateFacts,
}

/// A container state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StateFacts {
    /// Waiting.
    pub waiting: Option<WaitingFacts>,
    /// Running.
    pub running: Option<RunningFacts>,
    /// Terminated.
    pub terminated: Option<TerminatedFacts>,
}

/// A waiting state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WaitingFacts {
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

/// A running state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RunningFacts {
    /// Start time, RFC 3339.
    pub started_at: Option<String>,
}

/// A terminated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TerminatedFacts {
    /// Exit code.
    pub exit_code: i32,
    /// Reason.
    pub reason: Option<String>,
    /// Message.
    pub message: Option<String>,
}

fn template_hash<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Labels {
        #[serde(rename = "pod-template-hash")]
        hash: Option<String>,
    }
    Ok(Option::<Labels>::deserialize(d)?.and_then(|l| l.hash))
}

fn memory_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Limits {
        memory: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    struct Resources {
        limits: Option<Limits>,
    }
    Ok(Option::<Resources>::deserialize(d)?
        .and_then(|r| r.limits)
        .and_then(|l| l.memory)
        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned)))
}

fn state(s: Option<&ContainerState>) -> StateFacts {
    let Some(s) = s else {
        return StateFacts::default();
    };
    StateFacts {
        waiting: s.waiting.as_ref().map(|w| WaitingFacts {
            reason: w.reason.clone(),
            message: w.message.clone(),
        }),
        running: s.running.as_ref().map(|r| RunningFacts {
            started_at: r.started_at.as_ref().map(|t| t.0.to_string()),
        }),
        terminated: s.terminated.as_ref().map(|t| TerminatedFacts {
            exit_code: t.exit_code,
            reason: t.reason.clone(),
            message: t.message.clone(),
        }),
    }
}

fn container_status(cs: &ContainerStatus) -> ContainerStatusFacts {
    ContainerStatusFacts {
        name: cs.name.clone(),
        image: cs.image.clone(),
        ready: cs.ready,
        restart_count: cs.restart_count,
        state: state(cs.state.as_ref()),
        last_state: state(cs.last_state.as_ref()),
    }
}

impl From<&Pod> for PodFacts {
    fn from(pod: &Pod) -> Self {
        let m = &pod.metadata;
        let labels: Option<&BTreeMap<String, String>> = m.labels.as_ref();
        let containers = |cs: &[k8s_openapi::api::core::v1::Container]| {
            cs.iter()
                .map(|c| ContainerFacts {
                    name: c.name.clone(),
                    memory_limit: c
                        .resources
                        .as_ref()
                        .and_then(|r| r.limits.as_ref())
                        .and_then(|l| l.get("memory"))
                        .map(|q| q.0.clone()),
                })
                .collect()
        };
        let spec = pod.spec.as_ref();
        let status = pod.status.clone().unwrap_or_default();
        Self {
            metadata: MetaFacts {
                name: m.name.clone().unwrap_or_default(),
                namespace: m.namespace.clone().unwrap_or_default(),
                pod_template_hash: labels.and_then(|l| l.get("pod-template-hash")).cloned(),
                owner_references: m
                    .owner_references
                    .iter()
                    .flatten()
                    .map(|o| OwnerFacts {
                        kind: o.kind.clone(),
                        name: o.name.clone(),
                        controller: o.controller,
                    })
                    .collect(),
                deletion_timestamp: m.deletion_timestamp.as_ref().map(|t| t.0.to_string()),
            },
            spec: SpecFacts {
                containers: spec.map(|s| containers(&s.containers)).unwrap_or_default(),
                init_containers: spec
                    .and_then(|s| s.init_containers.as_deref())
                    .map(containers)
                    .unwrap_or_default(),
            },
            status: StatusFacts {
                phase: status.phase,
                reason: status.reason,
                message: status.message,
                conditions: status
                    .conditions
                    .iter()
                    .flatten()
                    .map(|c| ConditionFacts {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                    })
                    .collect(),
                container_statuses: status
                    .container_statuses
                    .iter()
                    .flatten()
                    .map(container_status)
                    .collect(),
                init_container_statuses: status
                    .init_container_statuses
                    .iter()
                    .flatten()
                    .map(container_status)
                    .collect(),
            },
        }
    }
}
