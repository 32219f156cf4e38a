//! [`Retry`]: retries 429, 5xx, connection errors and timeouts with exponential backoff and jitter
//! (backon), waiting exactly what the provider advertised when it did (`Retry-After`,
//! `retry-after-ms`, Groq's reset headers). Auth errors and bad requests are never retried.

use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use sre_core::{ChatRequest, ChatResponse, LlmError, LlmProvider};

/// A provider that retries another.
#[derive(Debug, Clone)]
pub struct Retry<P> {
    inner: P,
    /// Retries after the first try.
    pub max_retries: usize,
    /// First backoff.
    pub min_delay: Duration,
    /// Longest backoff (and longest advertised wait honoured).
    pub max_delay: Duration,
}

impl<P> Retry<P> {
    /// Up to 3 retries, 500 ms doubling to 20 s, with jitter.
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            max_retries: 3,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }

    /// Sets the number of retries.
    #[must_use]
    pub fn max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }
}

#[async_trait]
impl<P: LlmProvider> LlmProvider for Retry<P> {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .with_max_times(self.max_retries)
            .build();
        loop {
            match self.inner.chat(request).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retryable() => {
                    let Some(next) = backoff.next() else {
                        return Err(e);
                    };
                    let advertised = match &e {
                        LlmError::RateLimited {
                            retry_after: Some(d),
                            ..
                        } => Some((*d).min(self.max_delay)),
                        _ => None,
                    };
                    let wait = advertised.unwrap_or(next);
                    tracing::warn!(provider = %self.inner.name(), error = %e, wait_ms = wait.as_millis(), "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn name(&self) -> String {
        self.inner.name()
    }
}
