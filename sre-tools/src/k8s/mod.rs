//! Kubernetes: detection (analyzers with owner resolution) and safe remediation tools over kube-rs.

pub mod analyze;
