//! [`Retry`]: retries 429, 5xx, connection errors and timeouts with exponential backoff and jitter
//! (backon), waiting exactly what the provider advertised when it did (`Retry-After`,
//! `retry-after-ms`, Groq's reset headers). Auth errors and bad requests are never retried.
//!
//! Waiting is bounded twice: a provider that asks for longer than [`Retry::max_wait`] (30 s by
//! default) gets no sleep at all — the rate-limited error comes back at once, so a
//! [`Fallback`](crate::Fallback) or the caller can act on it — and no call spends more than
//! [`Retry::max_total_wait`] (60 s by default) asleep across its retries.

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
    /// Longest backoff between tries when the provider did not say how long to wait.
    pub max_delay: Duration,
    /// Longest single wait: an advertised wait longer than this fails the call at once, without
    /// sleeping (default 30 s).
    pub max_wait: Duration,
    /// Most time one call spends waiting across all its retries; a retry whose wait would pass it
    /// is not made and the last error comes back at once (default 60 s).
    pub max_total_wait: Duration,
}

impl<P> Retry<P> {
    /// Up to 3 retries, 500 ms doubling to 20 s, with jitter; advertised waits honoured up to
    /// 30 s each and 60 s in all.
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            max_retries: 3,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_wait: Duration::from_secs(30),
            max_total_wait: Duration::from_secs(60),
        }
    }

    /// Sets the number of retries.
    #[must_use]
    pub fn max_retries(mut self, n: usize) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the longest single wait (see [`Retry::max_wait`](Self#structfield.max_wait)).
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Sets the most time spent waiting across the retries of one call (see
    /// [`Retry::max_total_wait`](Self#structfield.max_total_wait)).
    #[must_use]
    pub fn max_total_wait(mut self, wait: Duration) -> Self {
        self.max_total_wait = wait;
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
        let mut waited = Duration::ZERO;
        loop {
            match self.inner.chat(request).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retryable() => {
                    let Some(next) = backoff.next() else {
                        return Err(e);
                    };
                    let wait = match &e {
                        LlmError::RateLimited {
                            retry_after: Some(asked),
                            ..
                        } => {
                            if *asked > self.max_wait {
                                tracing::warn!(
                                    provider = %self.inner.name(),
                                    "not retrying: the provider asked to wait {} s, more than the cap of {} s (Retry::max_wait)",
                                    asked.as_secs_f64(),
                                    self.max_wait.as_secs_f64(),
                                );
                                return Err(LlmError::RateLimitTooLong {
                                    provider: self.inner.name(),
                                    asked: *asked,
                                    cap: self.max_wait,
                                });
                            }
                            *asked
                        }
                        _ => next.min(self.max_wait),
                    };
                    if waited.saturating_add(wait) > self.max_total_wait {
                        tracing::warn!(
                            provider = %self.inner.name(),
                            error = %e,
                            "not retrying: waiting {} s more would pass the {} s total (Retry::max_total_wait)",
                            wait.as_secs_f64(),
                            self.max_total_wait.as_secs_f64(),
                        );
                        return Err(e);
                    }
                    tracing::warn!(provider = %self.inner.name(), error = %e, wait_ms = wait.as_millis(), "retrying");
                    tokio::time::sleep(wait).await;
                    waited = waited.saturating_add(wait);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn name(&self) -> String {
        self.inner.name()
    }
}
