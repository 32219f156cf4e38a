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
    /// A secret reference in the config (`api_key`) does not parse, or no source serves its
    /// scheme (register one in the [`Secrets`](sre_core::secret::Secrets) given to
    /// [`ProviderConfig::build_with_secrets`](crate::ProviderConfig::build_with_secrets)).
    #[error("provider config: field `{field}` for provider {provider}: {source}")]
    Secret {
        /// The field holding the reference.
        field: String,
        /// The provider.
        provider: String,
        /// What is wrong with the reference (never a value).
        #[source]
        source: sre_core::secret::SecretError,
    },
}

impl From<Error> for sre_core::LlmError {
    fn from(e: Error) -> Self {
        Self::Config(e.to_string())
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
