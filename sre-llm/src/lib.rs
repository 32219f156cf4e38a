//! # sre-llm — LLM providers for sre-agent
//!
//! This crate will hold the [`sre_core::LlmProvider`] implementations over reqwest: one
//! OpenAI-compatible chat-completions wire module with presets for Groq, OpenAI, Ollama and vLLM;
//! Azure OpenAI; AWS Bedrock Converse with SigV4 signing; and the retry, timeout, fallback and cost
//! accounting wrappers. It is being built under the "sre-llm" issue; today it only re-exports the
//! contract it implements.
//!
//! ```
//! use sre_llm::LlmProvider;
//! fn takes_any_provider(_p: &dyn LlmProvider) {}
//! ```

pub use sre_core::LlmProvider;
