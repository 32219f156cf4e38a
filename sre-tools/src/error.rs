//! The crate's error type.

/// A failure of sre-tools outside a tool call (tool calls report [`sre_core::ToolError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario could not be loaded.
    #[error("scenario {origin}: {message}")]
    Scenario {
        /// The name or path.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The simulator could not start.
    #[error("simulator: {0}")]
    Simulator(String),
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The kube client could not be configured.
    #[error("kubernetes client configuration: {0}")]
    Config(String),
    /// Preflight found that the identity may not run the agent.
    #[error("preflight refused: {0}")]
    Preflight(String),
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
