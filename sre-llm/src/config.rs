//! Building a provider from a serde config and the environment, honouring the variables the
//! official SDKs honour, with errors that name the missing variable or field. Provider keys may be
//! given by reference (`api_key: "vault:secret/data/sre#groq"`), fetched through a
//! [`Secrets`] registry ([`ProviderConfig::build_with_secrets`]); Azure OpenAI may authenticate
//! with Microsoft Entra ID instead of a key ([`AzureAuth`]).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sre_core::LlmProvider;

use crate::bedrock::{AwsCredentials, Bedrock};
use crate::entra;
use crate::error::{Error, Result};
use crate::http::Secret;
use crate::openai_compat::{Auth, OpenAiCompatible};
use crate::retry::Retry;
use sre_core::secret::{SecretHandle, SecretRef, Secrets};

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

/// How Azure OpenAI authenticates (`azure_auth` in the config).
///
/// Without it the choice is, in this order: the config's `api_key` reference;
/// `AZURE_OPENAI_API_KEY`; a static Entra token in `AZURE_OPENAI_AD_TOKEN`; managed identity when
/// `AZURE_USE_MANAGED_IDENTITY` is `true` (or `1`); workload identity when
/// `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID` and `AZURE_TENANT_ID` are all set (as the AKS
/// workload identity webhook sets them). With none of these, the build fails naming them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzureAuth {
    /// A resource key sent as `api-key`: the config's `api_key` reference, else
    /// `AZURE_OPENAI_API_KEY`.
    #[serde(alias = "key")]
    ApiKey,
    /// Entra ID workload identity ([`entra::WorkloadIdentity`]): `AZURE_FEDERATED_TOKEN_FILE`,
    /// `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, optionally `AZURE_AUTHORITY_HOST`.
    WorkloadIdentity,
    /// Entra ID managed identity ([`entra::ManagedIdentity`]): the App Service endpoint when
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else IMDS; a user-assigned identity when
    /// `AZURE_CLIENT_ID` is set.
    ManagedIdentity,
}

/// A provider's configuration; what is not set comes from the environment.
///
/// The key of Groq, OpenAI, vLLM and Azure OpenAI comes from `api_key` when it is set: a secret
/// reference (`env:GROQ_API_KEY`, `file:/var/run/secrets/sre/groq`, `vault:secret/data/sre#groq`,
/// `aws-sm:prod/sre-agent#groq`), fetched on first use, cached, refreshed when it expires and
/// fetched again when the provider answers 401 (the request is then retried once). Without it the
/// provider's usual variable is read when the provider is built (`GROQ_API_KEY`,
/// `OPENAI_API_KEY`, `AZURE_OPENAI_API_KEY`). Azure's other options are in [`AzureAuth`].
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
    /// The provider key by reference (`env:…`, `file:…`, `vault:…#key`, `aws-sm:…#key`) instead
    /// of the provider's environment variable. Never the key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// How Azure OpenAI authenticates; see [`AzureAuth`] for the order used without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_auth: Option<AzureAuth>,
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
            api_key: None,
            azure_auth: None,
        }
    }

    /// Builds the provider (with retries) reading the process environment.
    ///
    /// # Errors
    /// A missing variable or field, named.
    pub fn build(&self) -> Result<Arc<dyn LlmProvider>> {
        self.build_with(&|k| std::env::var(k).ok())
    }

    /// Builds the provider reading variables through `env`. An `api_key` reference can only be
    /// `env:NAME` here (read through `env`); other schemes need
    /// [`build_with_secrets`](Self::build_with_secrets).
    ///
    /// # Errors
    /// A missing variable or field, named.
    pub fn build_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn LlmProvider>> {
        self.build_with_secrets(&Secrets::new(), env)
    }

    /// Builds the provider reading variables through `env` and fetching the `api_key` reference
    /// through `secrets` (its scheme must be registered there, except `env:`, which is read
    /// through `env` at build time when no `env` source is registered).
    ///
    /// # Errors
    /// A missing variable or field, named; an `api_key` reference that does not parse or whose
    /// scheme has no source ([`Error::Secret`]).
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per provider, each reading its own variables"
    )]
    pub fn build_with_secrets(
        &self,
        secrets: &Secrets,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn LlmProvider>> {
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
        // The key: the `api_key` reference when set, else `variable` read now.
        let key = |variable: &str, hint: &str| -> Result<Auth> {
            Ok(Auth::BearerRef(match &self.api_key {
                Some(reference) => self.key_reference(reference, secrets, env)?,
                None => SecretHandle::fixed(
                    variable,
                    Secret::new(need(
                        variable,
                        &format!(
                            "{hint} (or set the config's api_key to a secret reference, e.g. \
                             vault:secret/data/sre#key)"
                        ),
                    )?),
                ),
            }))
        };
        let optional_key = |variable: Option<&str>| -> Result<Auth> {
            if let Some(reference) = &self.api_key {
                return Ok(Auth::BearerRef(
                    self.key_reference(reference, secrets, env)?,
                ));
            }
            Ok(variable.and_then(var).map_or(Auth::None, |k| {
                Auth::BearerRef(SecretHandle::fixed(
                    variable.unwrap_or_default(),
                    Secret::new(k),
                ))
            }))
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
                let auth = key(
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
                compat(OpenAiCompatible::new("groq", &base, &model, auth))
            }
            ProviderKind::Openai => {
                let auth = key(
                    "OPENAI_API_KEY",
                    "export your OpenAI (or gateway) key as OPENAI_API_KEY",
                )?;
                let base = self
                    .endpoint
                    .clone()
                    .or_else(|| var("OPENAI_BASE_URL"))
                    .unwrap_or_else(|| "https://api.openai.com/v1".into());
                let model = self.model.clone().unwrap_or_else(|| "gpt-4o-mini".into());
                compat(OpenAiCompatible::new("openai", &base, &model, auth))
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
                    optional_key(None)?,
                ))
            }
            ProviderKind::Vllm => {
                let base = field(&self.endpoint, "endpoint")?;
                let model = field(&self.model, "model")?;
                let auth = optional_key(Some("OPENAI_API_KEY"))?;
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
                let auth = self.azure_auth(secrets, env)?;
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
                // Static keys when either is set (both are then required); without them, the
                // standard AWS chain, resolved at the first call (crate::aws).
                let keys =
                    var("AWS_ACCESS_KEY_ID").is_some() || var("AWS_SECRET_ACCESS_KEY").is_some();
                let credentials = if keys {
                    Some(AwsCredentials {
                        access_key_id: need(
                            "AWS_ACCESS_KEY_ID",
                            "export AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                        )?,
                        secret_access_key: Secret::new(need(
                            "AWS_SECRET_ACCESS_KEY",
                            "export AWS_SECRET_ACCESS_KEY with AWS_ACCESS_KEY_ID",
                        )?),
                        session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
                    })
                } else {
                    None
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
                let b = match credentials {
                    Some(c) => Bedrock::new(&region, &model, c, endpoint.as_deref()),
                    None => Bedrock::with_credentials_provider(
                        &region,
                        &model,
                        crate::aws::credential_chain(Some(&region), env),
                        endpoint.as_deref(),
                    ),
                }
                .timeout(timeout)
                .max_response_bytes(limit);
                Arc::new(wrap(b, retries, self.max_retry_wait_secs))
            }
        })
    }
}

/// The hint of the error when Azure OpenAI has no way to authenticate: every option, by name.
const AZURE_AUTH_HINT: &str = "Azure OpenAI needs a key or an Entra ID identity: export \
    AZURE_OPENAI_API_KEY (or set the config's api_key to a secret reference), or \
    AZURE_OPENAI_AD_TOKEN with an Entra token; or use workload identity \
    (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID, as the AKS workload \
    identity webhook sets them; azure_auth: workload-identity) or managed identity \
    (azure_auth: managed-identity, or AZURE_USE_MANAGED_IDENTITY=true)";

impl ProviderConfig {
    fn provider_name(&self) -> String {
        format!("{:?}", self.provider).to_lowercase()
    }

    /// A handle for the `api_key` reference. `env:NAME` is read through `env` now when `secrets`
    /// has no `env` source (so [`build_with`](Self::build_with) needs no registry).
    fn key_reference(
        &self,
        reference: &str,
        secrets: &Secrets,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SecretHandle> {
        let bad = |source| Error::Secret {
            field: "api_key".to_owned(),
            provider: self.provider_name(),
            source,
        };
        let parsed = SecretRef::parse(reference).map_err(bad)?;
        if parsed.scheme() == "env" && !secrets.schemes().any(|s| s == "env") {
            if parsed.key().is_some() {
                return Err(bad(sre_core::secret::SecretError::BadReference {
                    reference: parsed.to_string(),
                    reason: "an env: reference names a variable and takes no #key".to_owned(),
                }));
            }
            let name = parsed.path();
            let value = env(name).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                Error::MissingVariable {
                    variable: name.to_owned(),
                    hint: format!("the config's api_key refers to {parsed}"),
                }
            })?;
            return Ok(SecretHandle::fixed(name, Secret::new(value)));
        }
        secrets.handle(reference).map_err(bad)
    }

    /// How Azure OpenAI authenticates: [`AzureAuth`] when set, else the order its docs give.
    fn azure_auth(&self, secrets: &Secrets, env: &dyn Fn(&str) -> Option<String>) -> Result<Auth> {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let key = || -> Result<Option<Auth>> {
            if let Some(reference) = &self.api_key {
                return Ok(Some(Auth::ApiKeyHeaderRef(
                    self.key_reference(reference, secrets, env)?,
                )));
            }
            Ok(var("AZURE_OPENAI_API_KEY").map(|k| {
                Auth::ApiKeyHeaderRef(SecretHandle::fixed("AZURE_OPENAI_API_KEY", Secret::new(k)))
            }))
        };
        let managed =
            || Auth::BearerRef(entra::token_handle(entra::ManagedIdentity::from_env(env)));
        let workload = || -> Result<Auth> {
            for variable in [
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_CLIENT_ID",
                "AZURE_TENANT_ID",
            ] {
                if var(variable).is_none() {
                    return Err(Error::MissingVariable {
                        variable: variable.to_owned(),
                        hint: "workload identity needs AZURE_FEDERATED_TOKEN_FILE, \
                               AZURE_CLIENT_ID and AZURE_TENANT_ID (the AKS workload identity \
                               webhook sets them on pods whose service account has the \
                               azure.workload.identity/client-id annotation and the \
                               azure.workload.identity/use: \"true\" label)"
                            .to_owned(),
                    });
                }
            }
            let identity = entra::WorkloadIdentity::from_env(env).ok_or_else(|| {
                Error::Invalid("workload identity variables are incomplete".to_owned())
            })?;
            Ok(Auth::BearerRef(entra::token_handle(identity)))
        };
        match self.azure_auth {
            Some(AzureAuth::ApiKey) => key()?.ok_or_else(|| Error::MissingVariable {
                variable: "AZURE_OPENAI_API_KEY".to_owned(),
                hint: "azure_auth is api-key: export the resource key as AZURE_OPENAI_API_KEY or \
                       set the config's api_key to a secret reference"
                    .to_owned(),
            }),
            Some(AzureAuth::WorkloadIdentity) => workload(),
            Some(AzureAuth::ManagedIdentity) => Ok(managed()),
            None => {
                if let Some(auth) = key()? {
                    return Ok(auth);
                }
                if let Some(token) = var("AZURE_OPENAI_AD_TOKEN") {
                    return Ok(Auth::BearerRef(SecretHandle::fixed(
                        "AZURE_OPENAI_AD_TOKEN",
                        Secret::new(token),
                    )));
                }
                if flag(env, "AZURE_USE_MANAGED_IDENTITY")? {
                    return Ok(managed());
                }
                if [
                    "AZURE_FEDERATED_TOKEN_FILE",
                    "AZURE_CLIENT_ID",
                    "AZURE_TENANT_ID",
                ]
                .iter()
                .all(|k| var(k).is_some())
                {
                    return workload();
                }
                Err(Error::MissingVariable {
                    variable: "AZURE_OPENAI_API_KEY".to_owned(),
                    hint: AZURE_AUTH_HINT.to_owned(),
                })
            }
        }
    }
}

/// A yes/no variable: `true`/`1`/`yes` or `false`/`0`/`no` (any case); unset is no.
fn flag(env: &dyn Fn(&str) -> Option<String>, variable: &str) -> Result<bool> {
    let Some(value) = env(variable) else {
        return Ok(false);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(Error::Invalid(format!(
            "{variable} must be true or false, not {:?}",
            value.chars().take(40).collect::<String>()
        ))),
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
