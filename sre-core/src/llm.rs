//! The [`LlmProvider`] contract: one async method from [`ChatRequest`] to [`ChatResponse`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::message::{ChatRequest, ChatResponse};

/// A typed failure of a model call. Messages are safe to show: they never carry a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The key or token was refused (HTTP 401/403). Not retried.
    #[error("authentication failed for {provider}: {message}")]
    Auth {
        /// Provider name.
        provider: String,
        /// The provider's own message.
        message: String,
    },
    /// Too many requests (HTTP 429).
    #[error("rate limited by {provider}{}", retry_after.map(|d| format!(" (retry after {}ms)", d.as_millis())).unwrap_or_default())]
    RateLimited {
        /// Provider name.
        provider: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Rate limited, and the provider asked for a longer wait than the caller allows: nothing
    /// waited. Retryable, so a fallback provider can answer at once.
    #[error(
        "rate limited by {provider}: it asked to wait {}s, more than the cap of {}s, so the call was not retried (raise the cap, e.g. Retry::max_wait, to wait)",
        asked.as_secs(),
        cap.as_secs()
    )]
    RateLimitTooLong {
        /// Provider name.
        provider: String,
        /// How long the provider asked us to wait.
        asked: Duration,
        /// The longest wait allowed.
        cap: Duration,
    },
    /// No answer in time.
    #[error("request to {provider} timed out after {}ms", elapsed.as_millis())]
    Timeout {
        /// Provider name.
        provider: String,
        /// How long we waited.
        elapsed: Duration,
    },
    /// The request was rejected (HTTP 400 and similar): the provider's message is quoted.
    #[error("{provider} rejected the request (status {status}): {message}")]
    BadRequest {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's own message.
        message: String,
    },
    /// The provider failed on its side (HTTP 5xx).
    #[error("{provider} failed (status {status}): {message}")]
    Server {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's own message.
        message: String,
    },
    /// The provider's content filter blocked the prompt or the answer.
    #[error("{provider} content filter blocked the request: {message}")]
    ContentFilter {
        /// Provider name.
        provider: String,
        /// What was filtered.
        message: String,
    },
    /// The connection failed before an answer.
    #[error("could not reach {provider}: {message}")]
    Connect {
        /// Provider name.
        provider: String,
        /// What failed.
        message: String,
    },
    /// The answer could not be understood.
    #[error("malformed response from {provider}: {message}")]
    MalformedResponse {
        /// Provider name.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// The provider is not configured (missing variable or field).
    #[error("provider configuration error: {0}")]
    Config(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl LlmError {
    /// True for failures worth retrying: rate limits, timeouts, 5xx and connection errors.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::RateLimitTooLong { .. }
                | Self::Timeout { .. }
                | Self::Server { .. }
                | Self::Connect { .. }
        )
    }

    /// A short, stable name of the kind, for reports and the Python exception mapping.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::RateLimited { .. } | Self::RateLimitTooLong { .. } => "rate_limited",
            Self::Timeout { .. } => "timeout",
            Self::BadRequest { .. } => "bad_request",
            Self::Server { .. } => "server",
            Self::ContentFilter { .. } => "content_filter",
            Self::Connect { .. } => "connect",
            Self::MalformedResponse { .. } => "malformed_response",
            Self::Config(_) => "config",
            Self::Other(_) => "other",
        }
    }
}

/// A chat model that can call tools: a remote service, a local server, or a deterministic planner.
///
/// Implementations map [`ChatRequest`] to their wire format and back. Wrappers (retry, timeout,
/// fallback, accounting) implement this trait around another provider.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// Sends one request and returns the model's answer.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Provider name and model for reports, e.g. `groq/llama-3.3-70b-versatile`.
    fn name(&self) -> String;
}

macro_rules! forward_provider {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<P: LlmProvider + ?Sized> LlmProvider for $ty {
            async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
                (**self).chat(request).await
            }
            fn name(&self) -> String {
                (**self).name()
            }
        }
    )*};
}

forward_provider!(&P, Box<P>, Arc<P>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds() {
        let p = || "groq".to_owned();
        assert!(
            LlmError::RateLimited {
                provider: p(),
                retry_after: None
            }
            .is_retryable()
        );
        assert!(
            LlmError::Server {
                provider: p(),
                status: 503,
                message: "x".into()
            }
            .is_retryable()
        );
        assert!(
            !LlmError::Auth {
                provider: p(),
                message: "bad key".into()
            }
            .is_retryable()
        );
        assert!(
            !LlmError::BadRequest {
                provider: p(),
                status: 400,
                message: "x".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn rate_limit_message_names_the_wait() {
        let e = LlmError::RateLimited {
            provider: "groq".into(),
            retry_after: Some(Duration::from_millis(1500)),
        };
        assert_eq!(e.to_string(), "rate limited by groq (retry after 1500ms)");
        assert_eq!(e.kind(), "rate_limited");
    }
}
