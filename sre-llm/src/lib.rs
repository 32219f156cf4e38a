//! # sre-llm — LLM providers for sre-agent
//!
//! [`sre_core::LlmProvider`] implementations over reqwest:
//! - [`OpenAiCompatible`]: one chat-completions wire module; Groq, OpenAI, Ollama, vLLM and Azure
//!   OpenAI are configurations of it ([`ProviderConfig`]);
//! - [`Bedrock`]: AWS Bedrock's Converse API, signed with SigV4 (aws-sigv4);
//! - wrappers, each an `LlmProvider` around another: [`Retry`] (backoff with jitter, honouring
//!   `Retry-After` up to a cap), [`Timeout`], [`Fallback`], [`Metered`] (usage and cost).
//!
//! Keys are [`Secret`]s: never in `Debug`, logs or errors — a provider that quotes the key back in
//! an error body has it replaced by `[REDACTED]`. Response bodies are read up to a cap
//! ([`DEFAULT_MAX_RESPONSE_BYTES`], configurable per provider).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sre_llm::{ProviderConfig, ProviderKind};
//! // Reads GROQ_API_KEY (and GROQ_BASE_URL) from the environment.
//! let groq = ProviderConfig::new(ProviderKind::Groq).build()?;
//! let agent = sre_core::Agent::builder_arc(groq).build()?;
//! println!("{}", agent.run("Is the shop namespace healthy?").await.outcome.is_completed());
//! # Ok(()) }
//! ```

pub mod aws;
pub mod bedrock;
pub mod config;
pub mod cost;
pub mod entra;
mod error;
pub mod fallback;
mod http;
pub mod openai_compat;
pub mod retry;
pub mod secrets;
pub mod timeout;
mod tool_call;

pub use bedrock::{AwsCredentials, Bedrock};
pub use config::{AzureAuth, ProviderConfig, ProviderKind};
pub use cost::{Metered, Price, PriceTable};
pub use error::{Error, Result};
pub use fallback::Fallback;
pub use http::{DEFAULT_MAX_RESPONSE_BYTES, Secret};
pub use openai_compat::{Auth, OpenAiCompatible};
pub use retry::Retry;
pub use sre_core::LlmProvider;
pub use timeout::Timeout;
