//! # sre-tools — the tools of sre-agent
//!
//! This crate will hold the [`sre_core::Tool`] implementations: Kubernetes detection and safe
//! remediation over kube-rs (`k8s`), Trivy scanning, Trivy Operator reports and image
//! recommendation (`trivy`), the embedded Kubernetes API simulator (`sim`, feature `sim`) and the
//! offline playbook brain (`playbook`). They are being built under their own issues; today it only
//! re-exports the contract it implements.
//!
//! ```
//! use sre_tools::Tool;
//! fn takes_any_tool(_t: &dyn Tool) {}
//! ```

pub use sre_core::Tool;
