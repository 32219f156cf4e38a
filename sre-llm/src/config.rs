//! Building a provider from a serde config and the environment, honouring the variables the
//! official SDKs honour, with errors that name the missing variable or field.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sre_core::LlmProvider;

use crate::bedrock::{AwsCredentials, Bedrock};
use crate::error::{Error, Result};
use crate::http::Secret;
use crate::openai_compat::{Auth, OpenAiCompatible};
use crate::retry::Retry;

/// The default Groq model.
pub const GROQ_DEFAULT_MODEL: &str = "llama-3.3-70b-versatile";

/// Which provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Groq.
    Groq,
    /// Azure OpenAI.
    Azure,
    /// AWS Bedrock.
    Bedrock,
    /// OpenAI (or a compatible gateway via `OPENAI_BASE_URL`).
    Openai,
    /// Ollama.
    Ollama,
    /// vLLM's OpenAI-compatible server.
    Vllm,
}

/// A provider's configuration; what is not set comes from the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Which provider.
    pub provider: ProviderKind,
    /// Model (Bedrock model id, Azure deployment for the v1 path).
    #[serde(default)]
    pub model: Option<String>,
    /// Base URL or endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// AWS region.
    #[serde(default)]
    pub region: Option<String>,
    /// Azure deployment.
    #[serde(default)]
    pub deployment: Option<String>,
    /// Azure `api-version`; without one the `/openai/v1` path is used.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Per-request timeout in seconds (default 120).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Retries on 429/5xx/connection errors (default 3).
    #[serde(default)]
    pub max_retries: Option<usize>,
    /// Longest wait a rate-limited answer may ask for, in seconds (default 30); when the provider
    /// asks for longer the call fails at once instead of sleeping ([`Retry::max_wait`]).
    #[serde(default)]
    pub max_retry_wait_secs: Option<u64>,
    /// Largest response body accepted, in bytes (default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`](crate::DEFAULT_MAX_RESPONSE_BYTES), 8 MiB); a larger answer
    /// fails without being read whole.
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
}

impl ProviderConfig {
    /// A config for `provider` with everything else from the environment.
    pub fn new(provider: ProviderKind) -> Self {
        Self {
            provider,
            model: None,
            endpoint: None,
            region: None,
            deployment: None,
            api_version: None,
            timeout_secs: None,
            max_retries: None,
            max_retry_wait_secs: None,
            max_response_bytes: None,
        }
    }

    /// Builds the provider (with retries) reading the process environment.
    ///
    /// # Errors
    /// A missing variable or field, named.
    pub fn build(&self) -> Result<Arc<dyn LlmProvider>> {
        self.build_with(&|k| std::env::var(k).ok())
    }

    /// Builds the provider reading variables through `env`.
    ///
    /// # Errors
    /// A missing variable or field, named.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per provider, each reading its own variables"
    )]
    pub fn build_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn LlmProvider>> {
        let timeout = Duration::from_secs(self.timeout_secs.unwrap_or(120));
        let retries = self.max_retries.unwrap_or(3);
        let limit = self
            .max_response_bytes
            .unwrap_or(crate::http::DEFAULT_MAX_RESPONSE_BYTES);
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let need = |k: &str, hint: &str| {
            var(k).ok_or_else(|| Error::MissingVariable {
                variable: k.to_owned(),
                hint: hint.to_owned(),
            })
        };
        let field = |v: &Option<String>, name: &str| {
            v.clone().ok_or_else(|| Error::MissingField {
                field: name.to_owned(),
                provider: format!("{:?}", self.provider).to_lowercase(),
            })
        };
        let compat = |p: OpenAiCompatible| -> Arc<dyn LlmProvider> {
            Arc::new(wrap(
                p.timeout(timeout).max_response_bytes(limit),
                retries,
                self.max_retry_wait_secs,
            ))
        };
        Ok(match self.provider {
            ProviderKind::Groq => {
                let key = need(
                    "GROQ_API_KEY",
                    "create a key in the Groq console and export GROQ_API_KEY",
                )?;
                let base = self
                    .endpoint
                    .clone()
                    .or_else(|| var("GROQ_BASE_URL"))
                    .unwrap_or_else(|| "https://api.groq.com/openai/v1".into());
                let model = self
                    .model
                    .clone()
                    .unwrap_or_else(|| GROQ_DEFAULT_MODEL.into());
                compat(OpenAiCompatible::new(
                    "groq",
                    &base,
                    &model,
                    Auth::Bearer(Secret::new(key)),
                ))
            }
            ProviderKind::Openai => {
                let key = need(
                    "OPENAI_API_KEY",
                    "export your OpenAI (or gateway) key as OPENAI_API_KEY",
                )?;
                let base = self
                    .endpoint
                    .clone()
                    .or_else(|| var("OPENAI_BASE_URL"))
                    .unwrap_or_else(|| "https://api.openai.com/v1".into());
                let model = self.model.clone().unwrap_or_else(|| "gpt-4o-mini".into());
                compat(OpenAiCompatible::new(
                    "openai",
                    &base,
                    &model,
                    Auth::Bearer(Secret::new(key)),
                ))
            }
            ProviderKind::Ollama => {
                let host = self
                    .endpoint
                    .clone()
                    .or_else(|| var("OLLAMA_HOST"))
                    .unwrap_or_else(|| "127.0.0.1:11434".into());
                let host = if host.contains("://") {
                    host
                } else {
                    format!("http://{host}")
                };
                let model = field(&self.model, "model")?;
                compat(OpenAiCompatible::new(
                    "ollama",
                    &format!("{}/v1", host.trim_end_matches('/')),
                    &model,
                    Auth::None,
                ))
            }
            ProviderKind::Vllm => {
                let base = field(&self.endpoint, "endpoint")?;
                let model = field(&self.model, "model")?;
                let auth =
                    var("OPENAI_API_KEY").map_or(Auth::None, |k| Auth::Bearer(Secret::new(k)));
                compat(OpenAiCompatible::new("vllm", &base, &model, auth))
            }
            ProviderKind::Azure => {
                let endpoint = self
                    .endpoint
                    .clone()
                    .or_else(|| var("AZURE_OPENAI_ENDPOINT"))
                    .ok_or_else(|| Error::MissingVariable {
                        variable: "AZURE_OPENAI_ENDPOINT".into(),
                        hint: "export your resource's endpoint, e.g. https://my-resource.openai.azure.com".into(),
                    })?;
                let auth = match var("AZURE_OPENAI_API_KEY") {
                    Some(k) => Auth::ApiKeyHeader(Secret::new(k)),
                    None => Auth::Bearer(Secret::new(need(
                        "AZURE_OPENAI_API_KEY",
                        "export the resource key (or AZURE_OPENAI_AD_TOKEN with an Entra ID token)",
                    )
                    .or_else(|_| need("AZURE_OPENAI_AD_TOKEN", "export AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN"))?)),
                };
                let deployment = self
                    .deployment
                    .clone()
                    .or_else(|| self.model.clone())
                    .ok_or_else(|| Error::MissingField {
                        field: "deployment".into(),
                        provider: "azure".into(),
                    })?;
                let api_version = self
                    .api_version
                    .clone()
                    .or_else(|| var("OPENAI_API_VERSION"));
                let endpoint = endpoint.trim_end_matches('/');
                let p = match api_version {
                    Some(v) => OpenAiCompatible::with_url(
                        "azure",
                        &format!(
                            "{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={v}"
                        ),
                        &deployment,
                        auth,
                    ),
                    None => OpenAiCompatible::new(
                        "azure",
                        &format!("{endpoint}/openai/v1"),
                        &deployment,
                        auth,
                    ),
                };
                compat(p)
            }
            ProviderKind::Bedrock => {
                let credentials = AwsCredentials {
                    access_key_id: need(
                        "AWS_ACCESS_KEY_ID",
                        "export AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                    )?,
                    secret_access_key: Secret::new(need(
                        "AWS_SECRET_ACCESS_KEY",
                        "export AWS_SECRET_ACCESS_KEY with AWS_ACCESS_KEY_ID",
                    )?),
                    session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
                };
                let region = self
                    .region
                    .clone()
                    .or_else(|| var("AWS_REGION"))
                    .or_else(|| var("AWS_DEFAULT_REGION"))
                    .ok_or_else(|| Error::MissingVariable {
                        variable: "AWS_REGION".into(),
                        hint: "set AWS_REGION (or AWS_DEFAULT_REGION, or the config's region)"
                            .into(),
                    })?;
                let model = field(&self.model, "model")?;
                let endpoint = self
                    .endpoint
                    .clone()
                    .or_else(|| var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"))
                    .or_else(|| var("AWS_ENDPOINT_URL"));
                let b = Bedrock::new(&region, &model, credentials, endpoint.as_deref())
                    .timeout(timeout)
                    .max_response_bytes(limit);
                Arc::new(wrap(b, retries, self.max_retry_wait_secs))
            }
        })
    }
}

/// `p` with the configured retries and, when set, the longest wait honoured.
fn wrap<P>(p: P, retries: usize, max_wait_secs: Option<u64>) -> Retry<P> {
    let r = Retry::new(p).max_retries(retries);
    match max_wait_secs {
        Some(s) => r.max_wait(Duration::from_secs(s)),
        None => r,
    }
}
