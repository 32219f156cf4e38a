//! # sre-py — Python bindings of sre-agent
//!
//! This crate will hold the pyo3 module `sre_agent._native` that the Python package `sre_agent`
//! (maturin, abi3) wraps: clusters (kubeconfig or the simulator), the tools with their JSON
//! schemas, approval callbacks, providers by name and the agent, plus the LangChain adapters
//! `SreToolkit` and `create_sre_agent`. It is being built under the "sre-py" issue; the bindings
//! stay thin, so all logic lives in `sre-core`, `sre-llm` and `sre-tools`.
//!
//! ```
//! assert!(!sre_py::PYTHON_PACKAGE.is_empty());
//! ```

/// The import name of the Python package these bindings serve.
pub const PYTHON_PACKAGE: &str = "sre_agent";
