//! # sre-tools — the tools of sre-agent
//!
//! [`sre_core::Tool`] implementations: Kubernetes detection and safe remediation over kube-rs
//! ([`k8s`]), and the embedded Kubernetes API simulator (`sim`, feature `sim`). Trivy and the
//! playbook brain follow under their own issues.
//!
//! ```
//! use sre_tools::k8s::analyze::{FindingKind, triage};
//! let pods: Vec<k8s_openapi::api::core::v1::Pod> = Vec::new();
//! let t = triage(&pods, &[], &[], k8s_openapi::jiff::Timestamp::now());
//! assert!(t.workloads.is_empty());
//! ```

pub mod data;
mod error;
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
