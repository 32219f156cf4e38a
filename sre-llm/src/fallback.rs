//! [`Fallback`]: the secondary provider answers when the primary fails with a retryable error
//! (after its own retries are exhausted). Auth errors and bad requests are not papered over.

use async_trait::async_trait;
use sre_core::{ChatRequest, ChatResponse, LlmError, LlmProvider};

/// Primary, then secondary.
#[derive(Debug, Clone)]
pub struct Fallback<A, B> {
    primary: A,
    secondary: B,
}

impl<A, B> Fallback<A, B> {
    /// `primary`, falling back to `secondary`.
    pub fn new(primary: A, secondary: B) -> Self {
        Self { primary, secondary }
    }
}

#[async_trait]
impl<A: LlmProvider, B: LlmProvider> LlmProvider for Fallback<A, B> {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        match self.primary.chat(request).await {
            Err(e) if e.is_retryable() => {
                tracing::warn!(primary = %self.primary.name(), secondary = %self.secondary.name(), error = %e, "falling back");
                self.secondary.chat(request).await
            }
            other => other,
        }
    }

    fn name(&self) -> String {
        format!(
            "{} (fallback {})",
            self.primary.name(),
            self.secondary.name()
        )
    }
}
