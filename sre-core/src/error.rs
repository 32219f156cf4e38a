//! The crate's error type for set-up failures. Failures inside a run are not errors: they are
//! reported to the model as tool errors or end the run with an [`Outcome`](crate::Outcome).

use crate::audit::AuditError;
use crate::redact::PatternError;
use crate::tool::ToolSetError;

/// A set-up failure of sre-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tool could not be registered.
    #[error("cannot register tool: {0}")]
    ToolSet(#[from] ToolSetError),
    /// The audit log could not be opened or is broken.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A redaction pattern is invalid.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// Anything else wrong with the agent's configuration.
    #[error("invalid agent configuration: {0}")]
    Config(String),
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
