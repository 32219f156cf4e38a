//! Construction errors. Errors of a call are [`sre_core::LlmError`]s.

/// A provider could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required environment variable is missing or empty.
    #[error("{variable} is not set: {hint}")]
    MissingVariable {
        /// The variable.
        variable: String,
        /// What it is for and where to get it.
        hint: String,
    },
    /// A required configuration field is missing.
    #[error("provider config: field `{field}` is required for provider {provider}")]
    MissingField {
        /// The field.
        field: String,
        /// The provider.
        provider: String,
    },
    /// A value is invalid.
    #[error("provider config: {0}")]
    Invalid(String),
}

impl From<Error> for sre_core::LlmError {
    fn from(e: Error) -> Self {
        Self::Config(e.to_string())
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
