//! # sre-tools — the tools of sre-agent
//!
//! [`sre_core::Tool`] implementations: Kubernetes detection and safe remediation over kube-rs
//! ([`k8s`]), Trivy scans, Operator reports and image recommendation ([`trivy`]), the offline
//! playbook brain ([`playbook`]), and the embedded Kubernetes API simulator (`sim`, feature
//! `sim`). [`toolset`] builds every tool over one cluster, the way the CLI, `serve`, Python and
//! the simulator do.
//!
//! ```
//! use sre_tools::k8s::analyze::{FindingKind, triage};
//! let pods: Vec<k8s_openapi::api::core::v1::Pod> = Vec::new();
//! let t = triage(&pods, &[], &[], k8s_openapi::jiff::Timestamp::now());
//! assert!(t.workloads.is_empty());
//! ```

pub mod data;
mod error;
#[cfg(feature = "sim")]
pub mod eval;
pub mod k8s;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod playbook;
mod serde_util;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(feature = "sim")]
pub mod sim;
pub mod trivy;

pub use error::{Error, Result};

use std::sync::Arc;

/// Every tool over one cluster, scoped to `scope`: the Kubernetes tools (image patches scan with
/// `scanner` and pin to the digest `tags` resolves — see [`k8s::K8s::with_security`]) and the
/// Trivy tools over the same scanner and registry.
pub fn toolset(
    client: kube::Client,
    scope: k8s::Scope,
    limits: k8s::Limits,
    scanner: Arc<dyn trivy::scanner::ImageScanner>,
    tags: Arc<dyn trivy::registry::TagLister>,
) -> Vec<Arc<dyn sre_core::Tool>> {
    let mut tools = k8s::K8s::with_limits(client.clone(), scope.clone(), limits)
        .with_security(Arc::clone(&scanner), Arc::clone(&tags))
        .tools();
    tools.extend(trivy::Trivy::new(scanner, tags, Some((client, scope))).tools());
    tools
}
