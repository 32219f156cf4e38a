//! Kubernetes: detection (analyzers with owner resolution) and safe remediation tools over kube-rs.
//!
//! Tool names are a contract shared with the Python package and the playbook brain:
//! reads `k8s_list_pods`, `k8s_find_unhealthy`, `k8s_describe_pod`, `k8s_pod_logs`, `k8s_events`,
//! `k8s_get_deployment`, `k8s_rollout_status`; writes `k8s_patch_image`, `k8s_rollback`,
//! `k8s_restart_deployment`, `k8s_scale_deployment`. There is no delete tool.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sre_tools::k8s::{K8s, Scope};
//! let client = kube::Client::try_default().await?;
//! let k8s = K8s::new(client, Scope::namespaces(["shop"]));
//! let tools = k8s.tools(); // Vec<Arc<dyn sre_core::Tool>>, ready for Agent::builder(..).tools(..)
//! # let _ = tools; Ok(()) }
//! ```

pub mod analyze;
mod evidence;
pub mod facts;
pub mod names;
pub mod rbac;
mod read;
mod security;
mod write;

use std::sync::Arc;
use std::time::Duration;

use sre_core::{Tool, ToolError};

pub use rbac::{Permission, PreflightReport, preflight};

/// The namespaces the tools may touch. Anything else is refused by the tools themselves,
/// whatever the approval policy says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    namespaces: Option<Vec<String>>,
}

impl Scope {
    /// Only these namespaces.
    pub fn namespaces<I: IntoIterator<Item = S>, S: Into<String>>(namespaces: I) -> Self {
        let mut ns: Vec<String> = namespaces.into_iter().map(Into::into).collect();
        ns.sort();
        ns.dedup();
        Self {
            namespaces: Some(ns),
        }
    }

    /// Every namespace (explicit opt-in; needs cluster-wide read permissions).
    pub fn all() -> Self {
        Self { namespaces: None }
    }

    /// The configured namespaces (`None`: all).
    pub fn list(&self) -> Option<&[String]> {
        self.namespaces.as_deref()
    }

    /// Refuses a namespace outside the scope.
    ///
    /// # Errors
    /// [`ToolError::Refused`] naming the namespace and the scope.
    pub fn check(&self, namespace: &str) -> Result<(), ToolError> {
        match &self.namespaces {
            None => Ok(()),
            Some(ns) if ns.iter().any(|n| n == namespace) => Ok(()),
            Some(ns) => Err(ToolError::Refused(format!(
                "namespace {namespace:?} is outside this agent's scope ({})",
                ns.join(", ")
            ))),
        }
    }
}

/// Limits of the Kubernetes tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Default log lines.
    pub log_lines: i64,
    /// Most log lines a call may ask for.
    pub max_log_lines: i64,
    /// Most log bytes returned.
    pub max_log_bytes: i64,
    /// Most pods listed by `k8s_list_pods`.
    pub max_pods_listed: usize,
    /// Most events returned.
    pub max_events: usize,
    /// How long `k8s_rollout_status` waits by default, and the verification after a write.
    pub rollout_timeout: Duration,
    /// How often rollout status is polled.
    pub poll_interval: Duration,
    /// Most replicas `k8s_scale_deployment` may set.
    pub max_replicas: i32,
    /// Objects per page when `k8s_find_unhealthy` lists pods, ReplicaSets and Deployments (the
    /// list's `limit`): each page is decoded into what triage reads and dropped before the next,
    /// so memory stays flat as a namespace grows (a page of 500 realistic pods is about 3.5 MB of
    /// JSON). `0` asks for one unpaginated list: faster on small clusters, memory grows with them.
    pub list_page_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            log_lines: 50,
            max_log_lines: 500,
            max_log_bytes: 16 * 1024,
            max_pods_listed: 100,
            max_events: 20,
            rollout_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(2),
            max_replicas: 50,
            list_page_size: 500,
        }
    }
}

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "sre-agent";

pub(crate) struct Inner {
    pub(crate) client: kube::Client,
    pub(crate) scope: Scope,
    pub(crate) limits: Limits,
    /// The scanner and registry an image patch uses for its evidence, its digest pin and the
    /// re-scan of what runs after it; `None`: image patches carry no vulnerability evidence.
    pub(crate) security: Option<Security>,
}

/// What an image patch scans with ([`K8s::with_security`]).
#[derive(Clone)]
pub(crate) struct Security {
    pub(crate) scanner: Arc<dyn crate::trivy::scanner::ImageScanner>,
    pub(crate) tags: Arc<dyn crate::trivy::registry::TagLister>,
}

/// A Kubernetes connection with a scope: makes the tools.
#[derive(Clone)]
pub struct K8s {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for K8s {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8s")
            .field("scope", &self.inner.scope)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl K8s {
    /// Tools over `client`, limited to `scope`, with default limits.
    pub fn new(client: kube::Client, scope: Scope) -> Self {
        Self::with_limits(client, scope, Limits::default())
    }

    /// Tools with explicit limits.
    pub fn with_limits(client: kube::Client, scope: Scope, limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                scope,
                limits,
                security: None,
            }),
        }
    }

    /// These tools, with image patches that scan: the preview pins the new image to the digest
    /// the registry serves for it and shows the current and the candidate image's scans (the
    /// CRITICAL/HIGH ids it clears, keeps and adds); after the rollout, the verification scans
    /// the digest the pods run and fails — rolling back — when it is worse than approved.
    #[must_use]
    pub fn with_security(
        self,
        scanner: Arc<dyn crate::trivy::scanner::ImageScanner>,
        tags: Arc<dyn crate::trivy::registry::TagLister>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                scope: self.inner.scope.clone(),
                limits: self.inner.limits.clone(),
                security: Some(Security { scanner, tags }),
            }),
        }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    /// The read tools.
    pub fn read_tools(&self) -> Vec<Arc<dyn Tool>> {
        read::tools(&self.inner)
    }

    /// The write tools (each gated by the agent's approval policy).
    pub fn write_tools(&self) -> Vec<Arc<dyn Tool>> {
        write::tools(&self.inner)
    }

    /// Every Kubernetes tool.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let mut t = self.read_tools();
        t.extend(self.write_tools());
        t
    }
}

/// Maps a kube error to a tool error that names `what` (e.g. `pod shop/web-1`): 403 forbidden,
/// 404 not found, 409 conflict, with the API server's message.
pub fn kube_error(what: &str, e: &kube::Error) -> ToolError {
    match e {
        kube::Error::Api(s) => {
            let msg = format!("{what}: {}", s.message);
            match s.code {
                403 => ToolError::Forbidden(msg),
                404 => ToolError::NotFound(msg),
                409 => ToolError::Conflict(msg),
                400 | 422 => ToolError::Failed(format!(
                    "{what}: rejected by the API server ({}): {}",
                    s.code, s.message
                )),
                code => ToolError::Failed(format!(
                    "{what}: API error {code} {}: {}",
                    s.reason, s.message
                )),
            }
        }
        other => ToolError::Failed(format!("{what}: cannot reach the Kubernetes API: {other}")),
    }
}
