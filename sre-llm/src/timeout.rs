//! [`Timeout`]: a deadline for each request of another provider.

use std::time::Duration;

use async_trait::async_trait;
use sre_core::{ChatRequest, ChatResponse, LlmError, LlmProvider};

/// A provider whose every request must finish within `timeout`.
#[derive(Debug, Clone)]
pub struct Timeout<P> {
    inner: P,
    timeout: Duration,
}

impl<P> Timeout<P> {
    /// Wraps `inner`.
    pub fn new(inner: P, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

#[async_trait]
impl<P: LlmProvider> LlmProvider for Timeout<P> {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        tokio::time::timeout(self.timeout, self.inner.chat(request))
            .await
            .unwrap_or_else(|_| {
                Err(LlmError::Timeout {
                    provider: self.inner.name(),
                    elapsed: self.timeout,
                })
            })
    }

    fn name(&self) -> String {
        self.inner.name()
    }
}
