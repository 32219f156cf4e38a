//! AWS credentials for Bedrock and Secrets Manager: the standard credential chain, cached and
//! refreshed before expiry, behind one [`AwsCredentialsProvider`].
//!
//! [`credential_chain`] tries, in the order of the AWS SDKs, and stops at the first source that is
//! configured:
//!
//! 1. **environment** — `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. **shared profile** — `AWS_PROFILE` (else `default`) in `AWS_SHARED_CREDENTIALS_FILE` and
//!    `AWS_CONFIG_FILE` (else `~/.aws/credentials` and `~/.aws/config`), read by aws-config: static
//!    keys, `role_arn` with `source_profile` (STS `AssumeRole`), `web_identity_token_file`;
//! 3. **web identity** (EKS IRSA) — `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (and
//!    `AWS_ROLE_SESSION_NAME`): STS `AssumeRoleWithWebIdentity` with the token read from the file at
//!    every fetch (the kubelet rotates it), through aws-sdk-sts;
//! 4. **container endpoint** — ECS (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, on
//!    `169.254.170.2`) or EKS Pod Identity (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN` sent as
//!    `Authorization`); a full URI must be `https`, or `http` to a loopback address or to the
//!    ECS / EKS agent addresses (`169.254.170.2`, `169.254.170.23`, `fd00:ec2::23`);
//! 5. **`IMDSv2`** — the EC2 instance role, through aws-config (session token first, then the
//!    role name, then its credentials), unless `AWS_EC2_METADATA_DISABLED=true`.
//!
//! A source that is not configured is skipped; one that is configured but fails (STS refuses the
//! token, the agent answers 403) ends the search with an error that names it. When no source has
//! credentials, the error lists every source tried and why it was skipped.
//!
//! Endpoints are overridden the standard way: STS with `AWS_ENDPOINT_URL_STS` or
//! `AWS_ENDPOINT_URL` (ignored with `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), the instance
//! metadata service with `AWS_EC2_METADATA_SERVICE_ENDPOINT` (or
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`), the container endpoint by its full URI.
//!
//! The chain reads its configuration through a function given when it is built (a snapshot of
//! [`CHAIN_VARIABLES`]), so a caller decides where variables come from and tests never touch the
//! process environment. aws-config's own providers read the process environment only, so the
//! environment, web identity and container sources are driven here with aws-config's and
//! aws-sdk-sts's building blocks; what aws-config still reads for itself is noted above (a
//! profile's `role_arn` assumes the role through STS at the endpoint the process environment
//! names). AWS SSO and `credential_process` profiles are not supported (aws-config is built
//! without those features).
//!
//! [`AwsCredentialsProvider`] caches what the chain returns and fetches again
//! [`REFRESH_BEFORE_EXPIRY`] before it expires (one fetch at a time; callers wait for it). When a
//! refresh fails while the cached credentials are still valid, they keep being used.
//! [`AwsCredentialsProvider::invalidate`] forgets them at once — Bedrock does so when it answers
//! `ExpiredTokenException`, `UnrecognizedClientException` or 401, then retries once. It implements
//! aws-credential-types' [`ProvideCredentials`], so it can be handed to anything that takes a
//! [`SharedCredentialsProvider`].
//!
//! Its HTTP calls (STS, the container endpoint, `IMDSv2`) go through the crate's reqwest client
//! (rustls with ring): no second TLS stack. Link-local and loopback destinations bypass proxies.
//! The secret key, the session token and the web identity or container authorization token never
//! appear in an error, a log line or `Debug`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sre_llm::aws::credential_chain;
//! let aws = credential_chain(Some("eu-west-1"), &|name| std::env::var(name).ok());
//! let credentials = aws.credentials().await?; // fetched once, then cached until near expiry
//! println!("signing as {}", credentials.access_key_id);
//! let bedrock = sre_llm::Bedrock::with_credentials_provider(
//!     "eu-west-1",
//!     "anthropic.claude-3-5-sonnet-20240620-v1:0",
//!     aws.clone(),
//!     None,
//! );
//! # let _ = bedrock; Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::imds;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde::Deserialize;

use crate::bedrock::AwsCredentials;
use crate::http::{self, Secret};

// Public types are Send + Sync: providers are shared across tasks and threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AwsCredentialsProvider>();
    assert_send_sync::<AwsCredentialsError>();
};

/// How long before their expiry cached credentials are fetched again: 5 minutes.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The variables [`credential_chain`] reads (once, when it is built).
pub const CHAIN_VARIABLES: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "HOME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
];

/// The ECS agent's credentials host, for `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const ECS_HOST: &str = "http://169.254.170.2";

/// The largest answer read from the container endpoint or through the SDK HTTP client.
const MAX_CREDENTIALS_RESPONSE: u64 = 1024 * 1024;

/// Why no credentials could be had. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AwsCredentialsError {
    /// No source in the chain is configured: each one tried and why it was skipped.
    #[error("no AWS credentials found; tried: {}", tried.join("; "))]
    NotFound {
        /// `source (why it was skipped)`, in chain order.
        tried: Vec<String>,
    },
    /// A configured source failed.
    #[error("AWS credentials from {origin} failed: {message}")]
    Failed {
        /// The source: `environment`, `shared profile`, `web identity`, `container endpoint`,
        /// `IMDSv2`.
        origin: String,
        /// What failed, with the service's own code and message.
        message: String,
        /// Whether trying again later may succeed (the service was unreachable, timed out,
        /// throttled or failed with a 5xx), as opposed to a refusal or a configuration error.
        transient: bool,
    },
}

impl AwsCredentialsError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Failed {
                transient: true,
                ..
            }
        )
    }
}

impl From<AwsCredentialsError> for CredentialsError {
    fn from(e: AwsCredentialsError) -> Self {
        match e {
            AwsCredentialsError::NotFound { .. } => Self::not_loaded(e),
            AwsCredentialsError::Failed { .. } => Self::provider_error(e),
        }
    }
}

/// A cached, refreshable source of AWS credentials: the chain ([`credential_chain`]) or fixed
/// keys ([`AwsCredentialsProvider::fixed`]). Clones share one cache.
#[derive(Clone)]
pub struct AwsCredentialsProvider {
    inner: Arc<Inner>,
    refresh_before: Duration,
}

struct Inner {
    source: Source,
    cached: Mutex<Option<Credentials>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

enum Source {
    Fixed(Credentials),
    Chain(Box<Chain>),
}

impl fmt::Debug for AwsCredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.inner.source {
            Source::Fixed(_) => "fixed",
            Source::Chain(_) => {
                "chain (environment, shared profile, web identity, container endpoint, IMDSv2)"
            }
        };
        f.debug_struct("AwsCredentialsProvider")
            .field("source", &source)
            .field("refresh_before", &self.refresh_before)
            .finish_non_exhaustive()
    }
}

/// The standard AWS credential chain (see the [module documentation](self)), cached.
///
/// `region` is the region STS is called in (default: `AWS_REGION`, else `AWS_DEFAULT_REGION`);
/// configuration is read through `env` — pass `&|name| std::env::var(name).ok()` for the process
/// environment. Builds without I/O and never fails: a source that is misconfigured fails when
/// credentials are first asked for, naming what was wrong.
pub fn credential_chain(
    region: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> AwsCredentialsProvider {
    let vars = Vars::read(env);
    let region = region
        .map(str::to_owned)
        .filter(|r| !r.trim().is_empty())
        .or_else(|| vars.get("AWS_REGION"))
        .or_else(|| vars.get("AWS_DEFAULT_REGION"));
    AwsCredentialsProvider::new(Source::Chain(Box::new(Chain::new(
        region.as_deref(),
        &vars,
    ))))
}

impl AwsCredentialsProvider {
    fn new(source: Source) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                cached: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
            refresh_before: REFRESH_BEFORE_EXPIRY,
        }
    }

    /// Fixed credentials (static keys, or temporary ones the caller refreshes itself).
    pub fn fixed(credentials: AwsCredentials) -> Self {
        Self::new(Source::Fixed(Credentials::new(
            credentials.access_key_id,
            credentials.secret_access_key.expose(),
            credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            None,
            "sre-agent-fixed",
        )))
    }

    /// Fetch again this long before expiry (default [`REFRESH_BEFORE_EXPIRY`]). The setting
    /// belongs to this handle; the cache is still shared with its clones.
    #[must_use]
    pub fn refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before = margin;
        self
    }

    /// Whether fetching again can give other credentials (the chain), as opposed to fixed keys.
    pub fn is_refreshable(&self) -> bool {
        matches!(self.inner.source, Source::Chain(_))
    }

    /// Current credentials: the cached ones while they are valid for longer than the refresh
    /// margin, else freshly fetched.
    ///
    /// # Errors
    /// No source configured (every source tried, named), or the configured one failed.
    pub async fn credentials(&self) -> Result<AwsCredentials, AwsCredentialsError> {
        self.resolve().await.map(|c| AwsCredentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: Secret::new(c.secret_access_key()),
            session_token: c.session_token().map(Secret::new),
        })
    }

    /// Forgets the cached credentials, so the next call fetches again — for when a service
    /// refused them (expired or revoked).
    pub fn invalidate(&self) {
        *self
            .inner
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// This provider as aws-credential-types' shared provider (the same cache).
    pub fn shared(&self) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(self.clone())
    }

    fn cached(&self, margin: Duration) -> Option<Credentials> {
        let cached = self
            .inner
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cached.as_ref().and_then(|c| match c.expiry() {
            None => Some(c.clone()),
            Some(expiry) => (expiry > SystemTime::now() + margin).then(|| c.clone()),
        })
    }

    async fn resolve(&self) -> Result<Credentials, AwsCredentialsError> {
        let margin = self.refresh_before;
        if let Some(c) = self.cached(margin) {
            return Ok(c);
        }
        let _one_at_a_time = self.inner.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(c) = self.cached(margin) {
            return Ok(c);
        }
        let fetched = match &self.inner.source {
            Source::Fixed(c) => Ok(c.clone()),
            Source::Chain(chain) => chain.load().await,
        };
        match fetched {
            Ok(c) => {
                *self
                    .inner
                    .cached
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
                Ok(c)
            }
            Err(e) => match self.cached(Duration::ZERO) {
                Some(still_valid) => {
                    tracing::warn!(error = %e, "refreshing AWS credentials failed; using the cached ones until they expire");
                    Ok(still_valid)
                }
                None => Err(e),
            },
        }
    }
}

impl ProvideCredentials for AwsCredentialsProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.resolve().await.map_err(Into::into) })
    }
}

impl From<AwsCredentialsProvider> for SharedCredentialsProvider {
    fn from(p: AwsCredentialsProvider) -> Self {
        Self::new(p)
    }
}

// ---- configuration snapshot -------------------------------------------------------------------

/// The chain's variables, read once; blank values count as unset.
#[derive(Default)]
struct Vars(HashMap<&'static str, String>);

impl Vars {
    fn read(env: &dyn Fn(&str) -> Option<String>) -> Self {
        Self(
            CHAIN_VARIABLES
                .iter()
                .filter_map(|&k| env(k).filter(|v| !v.trim().is_empty()).map(|v| (k, v)))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn is_true(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

// ---- the chain --------------------------------------------------------------------------------

/// Why a source gave no credentials.
#[derive(Debug, Clone)]
enum Miss {
    /// Not configured: try the next source.
    Skipped(String),
    /// Configured, and failed: stop.
    Failed { message: String, transient: bool },
}

impl Miss {
    fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            transient: false,
        }
    }
}

/// The sources, in chain order.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Environment,
    Profile,
    WebIdentity,
    Container,
    Imds,
}

impl Origin {
    const ORDER: [Self; 5] = [
        Self::Environment,
        Self::Profile,
        Self::WebIdentity,
        Self::Container,
        Self::Imds,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::Profile => "shared profile",
            Self::WebIdentity => "web identity",
            Self::Container => "container endpoint",
            Self::Imds => "IMDSv2",
        }
    }
}

struct Chain {
    environment: Result<Credentials, Miss>,
    profile: Result<ProfileLink, Miss>,
    web_identity: Result<WebIdentityLink, Miss>,
    container: Result<ContainerLink, Miss>,
    imds: Result<ImdsCredentialsProvider, Miss>,
}

impl Chain {
    fn new(region: Option<&str>, vars: &Vars) -> Self {
        let http = SdkHttpClient::default();
        let mut config = ProviderConfig::empty()
            .with_http_client(http.clone())
            .with_sleep_impl(TokioSleep::new());
        if let Some(r) = region {
            config = config.with_region(Some(aws_config::Region::new(r.to_owned())));
        }
        Self {
            environment: environment(vars),
            profile: ProfileLink::new(vars, &config),
            web_identity: WebIdentityLink::new(region, vars, http),
            container: ContainerLink::new(vars),
            imds: imds_provider(vars, &config),
        }
    }

    /// One source's answer.
    async fn try_source(&self, origin: Origin) -> Result<Credentials, Miss> {
        match origin {
            Origin::Environment => self.environment.clone(),
            Origin::Profile => match &self.profile {
                Ok(link) => link.load().await,
                Err(miss) => Err(miss.clone()),
            },
            Origin::WebIdentity => match &self.web_identity {
                Ok(link) => link.load().await,
                Err(miss) => Err(miss.clone()),
            },
            Origin::Container => match &self.container {
                Ok(link) => link.load().await,
                Err(miss) => Err(miss.clone()),
            },
            Origin::Imds => match &self.imds {
                Ok(provider) => from_aws_config(provider.provide_credentials().await),
                Err(miss) => Err(miss.clone()),
            },
        }
    }

    async fn load(&self) -> Result<Credentials, AwsCredentialsError> {
        let mut tried = Vec::new();
        for origin in Origin::ORDER {
            let name = origin.name();
            match self.try_source(origin).await {
                Ok(c) => {
                    tracing::debug!(source = name, "AWS credentials loaded");
                    return Ok(c);
                }
                Err(Miss::Skipped(why)) => tried.push(format!("{name} ({why})")),
                Err(Miss::Failed { message, transient }) => {
                    return Err(AwsCredentialsError::Failed {
                        origin: name.to_owned(),
                        message,
                        transient,
                    });
                }
            }
        }
        Err(AwsCredentialsError::NotFound { tried })
    }
}

/// An error and its causes, `: `-separated, each cause left out when the text before already
/// says it.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        next = cause.source();
    }
    text
}

/// An aws-config provider's answer: not loaded is a skip, a timeout is transient, anything else
/// a failure (with its whole cause chain).
fn from_aws_config(r: Result<Credentials, CredentialsError>) -> Result<Credentials, Miss> {
    r.map_err(|e| {
        let message = causes(&e);
        match e {
            CredentialsError::CredentialsNotLoaded(_) => Miss::Skipped(message),
            CredentialsError::ProviderTimedOut(_) => Miss::Failed {
                message,
                transient: true,
            },
            _ => Miss::failed(message),
        }
    })
}

// ---- 1. environment ---------------------------------------------------------------------------

fn environment(vars: &Vars) -> Result<Credentials, Miss> {
    match (
        vars.get("AWS_ACCESS_KEY_ID"),
        vars.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            id,
            secret,
            vars.get("AWS_SESSION_TOKEN"),
            None,
            "Environment",
        )),
        (None, None) => Err(Miss::Skipped("AWS_ACCESS_KEY_ID not set".into())),
        (Some(_), None) => Err(Miss::failed(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both, or neither",
        )),
        (None, Some(_)) => Err(Miss::failed(
            "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; set both, or neither",
        )),
    }
}

// ---- 2. shared profile ------------------------------------------------------------------------

struct ProfileLink {
    name: String,
    credentials: Option<PathBuf>,
    config_file: Option<PathBuf>,
    provider_config: ProviderConfig,
    /// Built at the first fetch that finds a file, with the files that exist (aws-config requires
    /// every file it is given), then kept: it caches the parsed profile and any role it assumes.
    provider: std::sync::OnceLock<ProfileFileCredentialsProvider>,
}

impl ProfileLink {
    fn new(vars: &Vars, config: &ProviderConfig) -> Result<Self, Miss> {
        let home = vars.get("HOME").map(PathBuf::from);
        let file = |var: &str, default: &str| {
            vars.get(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let config_file = file("AWS_CONFIG_FILE", "config");
        if credentials.is_none() && config_file.is_none() {
            return Err(Miss::Skipped(
                "HOME, AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE not set".into(),
            ));
        }
        Ok(Self {
            name: vars.get("AWS_PROFILE").unwrap_or_else(|| "default".into()),
            credentials,
            config_file,
            provider_config: config.clone(),
            provider: std::sync::OnceLock::new(),
        })
    }

    /// The profile provider over the files that exist, or why there is none.
    fn provider(&self) -> Result<&ProfileFileCredentialsProvider, Miss> {
        if let Some(p) = self.provider.get() {
            return Ok(p);
        }
        let files = [
            (EnvConfigFileKind::Credentials, &self.credentials),
            (EnvConfigFileKind::Config, &self.config_file),
        ];
        let existing: Vec<_> = files
            .iter()
            .filter_map(|(kind, f)| f.as_ref().filter(|f| f.is_file()).map(|f| (*kind, f)))
            .collect();
        if existing.is_empty() {
            let names: Vec<String> = files
                .iter()
                .filter_map(|(_, f)| f.as_ref().map(|f| f.display().to_string()))
                .collect();
            return Err(Miss::Skipped(format!("no {}", names.join(" or "))));
        }
        let mut builder = EnvConfigFiles::builder();
        for (kind, file) in existing {
            builder = builder.with_file(kind, file);
        }
        Ok(self.provider.get_or_init(|| {
            ProfileFileCredentialsProvider::builder()
                .configure(&self.provider_config)
                .profile_files(builder.build())
                .profile_name(&self.name)
                .build()
        }))
    }

    async fn load(&self) -> Result<Credentials, Miss> {
        let provider = self.provider()?;
        from_aws_config(provider.provide_credentials().await).map_err(|miss| match miss {
            Miss::Skipped(why) => Miss::Skipped(format!("profile `{}`: {why}", self.name)),
            Miss::Failed { message, transient } => Miss::Failed {
                message: format!("profile `{}`: {message}", self.name),
                transient,
            },
        })
    }
}

// ---- 3. web identity --------------------------------------------------------------------------

struct WebIdentityLink {
    token_file: PathBuf,
    role_arn: String,
    session_name: String,
    endpoint: String,
    sts: aws_sdk_sts::Client,
}

impl WebIdentityLink {
    fn new(region: Option<&str>, vars: &Vars, http: SdkHttpClient) -> Result<Self, Miss> {
        let token_file = vars
            .get("AWS_WEB_IDENTITY_TOKEN_FILE")
            .ok_or_else(|| Miss::Skipped("AWS_WEB_IDENTITY_TOKEN_FILE not set".into()))?;
        let role_arn = vars.get("AWS_ROLE_ARN").ok_or_else(|| {
            Miss::failed(format!(
                "AWS_WEB_IDENTITY_TOKEN_FILE is set ({token_file}) but AWS_ROLE_ARN is not: set \
                 the role to assume (on EKS, annotate the service account with \
                 eks.amazonaws.com/role-arn)"
            ))
        })?;
        let region = region.ok_or_else(|| {
            Miss::failed(
                "no region to call STS in: set AWS_REGION (or the provider config's region)",
            )
        })?;
        let configured = (!vars.is_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))
            .then(|| {
                vars.get("AWS_ENDPOINT_URL_STS")
                    .or_else(|| vars.get("AWS_ENDPOINT_URL"))
            })
            .flatten()
            .map(|e| e.trim().trim_end_matches('/').to_owned());
        let session_name = vars.get("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            format!("sre-agent-{secs}")
        });
        let mut sts = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new(region.to_owned()))
            .http_client(http)
            .sleep_impl(TokioSleep::new());
        sts.set_endpoint_url(configured.clone());
        Ok(Self {
            token_file: PathBuf::from(token_file),
            role_arn,
            session_name,
            endpoint: configured.unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com")),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
        })
    }

    fn describe(&self) -> String {
        format!(
            "STS AssumeRoleWithWebIdentity at {} for role {} (token file {})",
            self.endpoint,
            self.role_arn,
            self.token_file.display()
        )
    }

    async fn load(&self) -> Result<Credentials, Miss> {
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            Miss::failed(format!(
                "cannot read the web identity token file {}: {e}",
                self.token_file.display()
            ))
        })?;
        let token = Secret::new(token.trim());
        if token.is_blank() {
            return Err(Miss::failed(format!(
                "the web identity token file {} is empty",
                self.token_file.display()
            )));
        }
        let answer = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(token.expose())
            .send()
            .await;
        let scrub = |m: String| http::scrub(&m, &[token.expose()]);
        let out = answer.map_err(|e| {
            let (what, transient) = sdk_error(&e);
            Miss::Failed {
                message: scrub(format!("{}: {what}", self.describe())),
                transient,
            }
        })?;
        let c = out.credentials().ok_or_else(|| {
            Miss::failed(format!(
                "{}: the answer has no Credentials",
                self.describe()
            ))
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).map_err(|e| {
            Miss::failed(format!("{}: unreadable Expiration: {e}", self.describe()))
        })?;
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expiry),
            "WebIdentityToken",
        ))
    }
}

/// What an SDK call's failure says (the service's code and message when it answered), and
/// whether it is worth trying again.
fn sdk_error<E>(e: &SdkError<E>) -> (String, bool)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("error");
            let message = se.err().message().unwrap_or("(no message)");
            let transient = status >= 500
                || matches!(
                    code,
                    "Throttling" | "ThrottlingException" | "IDPCommunicationError"
                );
            let verb = if status >= 500 {
                "failed with"
            } else {
                "refused with"
            };
            (
                format!("{verb} {code} (HTTP {status}): {message}"),
                transient,
            )
        }
        SdkError::TimeoutError(_) => ("timed out".to_owned(), true),
        SdkError::DispatchFailure(_) => (format!("unreachable: {}", causes(e)), true),
        SdkError::ResponseError(_) => (format!("unreadable answer: {}", causes(e)), true),
        _ => (causes(e), false),
    }
}

// ---- 4. container endpoint (ECS, EKS Pod Identity) -------------------------------------------

enum AuthToken {
    File(PathBuf),
    Value(Secret),
}

struct ContainerLink {
    uri: String,
    token: Option<AuthToken>,
    http: reqwest::Client,
}

impl ContainerLink {
    fn new(vars: &Vars) -> Result<Self, Miss> {
        let uri = if let Some(relative) = vars.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            let relative = relative.trim();
            if relative.starts_with('/') {
                format!("{ECS_HOST}{relative}")
            } else {
                format!("{ECS_HOST}/{relative}")
            }
        } else if let Some(full) = vars.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            let full = full.trim().to_owned();
            allowed_full_uri(&full).map_err(|why| {
                Miss::failed(format!(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI {full} is not allowed: {why}"
                ))
            })?;
            full
        } else {
            return Err(Miss::Skipped(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI and _RELATIVE_URI not set".into(),
            ));
        };
        let token = vars
            .get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            .map(|f| AuthToken::File(PathBuf::from(f)))
            .or_else(|| {
                vars.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
                    .map(|t| AuthToken::Value(Secret::new(t)))
            });
        Ok(Self {
            uri,
            token,
            http: reqwest_client(
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(5)),
                true,
            ),
        })
    }

    fn token(&self) -> Result<Option<Secret>, Miss> {
        let token = match &self.token {
            None => return Ok(None),
            Some(AuthToken::Value(t)) => t.clone(),
            Some(AuthToken::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Miss::failed(format!(
                        "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {e}",
                        path.display()
                    ))
                })?;
                Secret::new(text.trim())
            }
        };
        if token.is_blank() || token.expose().contains(['\r', '\n']) {
            return Err(Miss::failed(
                "the container authorization token is empty or spans several lines",
            ));
        }
        Ok(Some(token))
    }

    async fn load(&self) -> Result<Credentials, Miss> {
        let token = self.token()?;
        let mut req = self
            .http
            .get(&self.uri)
            .header("accept", "application/json");
        if let Some(t) = &token {
            req = req.header("authorization", t.expose());
        }
        let secrets: Vec<&str> = token.iter().map(Secret::expose).collect();
        let scrub = |m: String| http::scrub(&m, &secrets);
        let r = http::receive(
            "the container credentials endpoint",
            req,
            None,
            MAX_CREDENTIALS_RESPONSE,
        )
        .await
        .map_err(|e| Miss::Failed {
            message: scrub(format!("GET {}: {e}", self.uri)),
            transient: true,
        })?;
        if !r.is_success() {
            return Err(Miss::Failed {
                message: scrub(format!(
                    "GET {} answered {}: {}",
                    self.uri,
                    r.status,
                    agent_message(&r.body, &secrets)
                )),
                transient: r.status >= 500 || r.status == 429,
            });
        }
        let answer: ContainerCredentials = serde_json::from_slice(&r.body).map_err(|e| {
            // serde's message quotes no values for a missing field or a wrong type at the top.
            Miss::failed(format!(
                "GET {}: unexpected answer (want AccessKeyId, SecretAccessKey, Token, Expiration): {}",
                self.uri,
                scrub(e.to_string())
            ))
        })?;
        let expiry = answer
            .expiration
            .as_deref()
            .map(|t| {
                humantime::parse_rfc3339_weak(t).map_err(|e| {
                    Miss::failed(format!(
                        "GET {}: unreadable Expiration {t:?}: {e}",
                        self.uri
                    ))
                })
            })
            .transpose()?;
        Ok(Credentials::new(
            answer.access_key_id,
            answer.secret_access_key,
            answer.token,
            expiry,
            "EcsContainer",
        ))
    }
}

/// The container endpoint's JSON (ECS and EKS Pod Identity agents).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerCredentials {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

/// The agent's error message: `{"Code", "Message"}` or the body's text, secrets scrubbed.
fn agent_message(body: &[u8], secrets: &[&str]) -> String {
    #[derive(Deserialize)]
    struct AgentError {
        #[serde(rename = "Code", alias = "code", default)]
        code: Option<String>,
        #[serde(rename = "Message", alias = "message", default)]
        message: Option<String>,
    }
    match serde_json::from_slice::<AgentError>(body) {
        Ok(AgentError {
            code: Some(code),
            message,
        }) => http::scrub(&format!("{code}: {}", message.unwrap_or_default()), secrets),
        Ok(AgentError {
            code: None,
            message: Some(m),
        }) => http::scrub(&m, secrets),
        _ => http::provider_message(body, secrets),
    }
}

/// Whether a full container credentials URI may be called: any `https` URI; `http` only to a
/// loopback address or to the ECS and EKS Pod Identity agents.
fn allowed_full_uri(uri: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(uri).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => return Ok(()),
        "http" => {}
        other => return Err(format!("scheme {other} (want http or https)")),
    }
    let ok = match host(&url) {
        Some(Host::Name(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ip(IpAddr::V4(ip))) => {
            ip.is_loopback() || ip == Ipv4Addr::new(169, 254, 170, 2) || ip == EKS_AGENT_V4
        }
        Some(Host::Ip(IpAddr::V6(ip))) => ip.is_loopback() || ip == EKS_AGENT_V6,
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(
            "plain http is allowed only to a loopback address, 169.254.170.2, 169.254.170.23 \
             or [fd00:ec2::23]; use https"
                .into(),
        )
    }
}

enum Host<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

/// A URL's host: an IP address (IPv6 without its brackets) or a name.
fn host(url: &reqwest::Url) -> Option<Host<'_>> {
    let h = url.host_str()?;
    let bare = h.trim_start_matches('[').trim_end_matches(']');
    Some(bare.parse().map_or(Host::Name(h), Host::Ip))
}

/// The EKS Pod Identity agent's addresses.
const EKS_AGENT_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 23);
const EKS_AGENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23);

// ---- 5. IMDSv2 --------------------------------------------------------------------------------

fn imds_provider(vars: &Vars, config: &ProviderConfig) -> Result<ImdsCredentialsProvider, Miss> {
    if vars.is_true("AWS_EC2_METADATA_DISABLED") {
        return Err(Miss::Skipped(
            "disabled by AWS_EC2_METADATA_DISABLED".into(),
        ));
    }
    let endpoint = vars
        .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(
            || match vars.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") {
                Some(m) if m.trim().eq_ignore_ascii_case("ipv6") => "http://[fd00:ec2::254]".into(),
                _ => "http://169.254.169.254".into(),
            },
        );
    let client = imds::Client::builder()
        .configure(config)
        .endpoint(endpoint.trim())
        .map_err(|e| {
            Miss::failed(format!(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT {endpoint} is not a valid URL: {e}"
            ))
        })?
        .build();
    Ok(ImdsCredentialsProvider::builder()
        .configure(config)
        .imds_client(client)
        .build())
}

// ---- the SDK's HTTP client over reqwest --------------------------------------------------------

/// aws-config's and aws-sdk-sts's HTTP client: reqwest with rustls (ring), one client per
/// timeout setting; link-local and loopback destinations (IMDS, agents) bypass proxies.
#[derive(Debug, Clone, Default)]
struct SdkHttpClient {
    connectors: Arc<Mutex<HashMap<Timeouts, SharedHttpConnector>>>,
}

/// Connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| {
                SharedHttpConnector::new(ReqwestConnector {
                    proxied: reqwest_client(key.0, key.1, false),
                    direct: reqwest_client(key.0, key.1, true),
                })
            })
            .clone()
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    proxied: reqwest::Client,
    direct: reqwest::Client,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = if is_local(request.uri()) {
            self.direct.clone()
        } else {
            self.proxied.clone()
        };
        HttpConnectorFuture::new(transmit(client, request))
    }
}

/// Whether `uri` points at a loopback or link-local host (never through a proxy).
fn is_local(uri: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    match host(&url) {
        Some(Host::Name(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ip(IpAddr::V4(ip))) => ip.is_loopback() || ip.is_link_local(),
        Some(Host::Ip(IpAddr::V6(ip))) => {
            ip.is_loopback() || (ip.segments()[0] == 0xfd00 && ip.segments()[1] == 0xec2)
        }
        None => false,
    }
}

async fn transmit(
    client: reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let user = |m: String| ConnectorError::user(m.into());
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| user(format!("invalid method: {e}")))?;
    let body = request
        .body()
        .bytes()
        .ok_or_else(|| user("streaming request bodies are not supported".into()))?
        .to_vec();
    let mut req = client.request(method.clone(), request.uri());
    for (name, value) in request.headers() {
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            req = req.header(name, value);
        }
    }
    if !body.is_empty() || !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD) {
        req = req.body(body);
    }
    let mut resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            ConnectorError::timeout(e.into())
        } else if e.is_connect() {
            ConnectorError::io(e.into())
        } else if e.is_builder() {
            ConnectorError::user(e.into())
        } else {
            ConnectorError::other(e.into(), None)
        }
    })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        if e.is_timeout() {
            ConnectorError::timeout(e.into())
        } else {
            ConnectorError::io(e.into())
        }
    })? {
        if u64::try_from(bytes.len() + chunk.len()).unwrap_or(u64::MAX) > MAX_CREDENTIALS_RESPONSE {
            return Err(ConnectorError::other(
                format!("response body over {MAX_CREDENTIALS_RESPONSE} bytes").into(),
                None,
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let status = StatusCode::try_from(status).map_err(|e| ConnectorError::other(e.into(), None))?;
    let mut out = HttpResponse::new(status, SdkBody::from(bytes));
    for (name, value) in &headers {
        if let Ok(value) = value.to_str() {
            // A header the SDK's type cannot hold is dropped, not fatal.
            let _ = out
                .headers_mut()
                .try_append(name.as_str().to_owned(), value.to_owned());
        }
    }
    Ok(out)
}

/// A reqwest client with rustls (ring), the given timeouts and, for `direct`, no proxy.
fn reqwest_client(
    connect: Option<Duration>,
    read: Option<Duration>,
    direct: bool,
) -> reqwest::Client {
    let mut b = crate::http::client_builder();
    if let Some(t) = connect {
        b = b.connect_timeout(t);
    }
    if let Some(t) = read {
        b = b.read_timeout(t);
    }
    if direct {
        b = b.no_proxy();
    }
    b.build().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Vars::read(&|k| map.get(k).cloned())
    }

    #[test]
    fn full_uris_must_be_https_or_loopback_or_an_agent_address() {
        for ok in [
            "https://creds.example.com/v1",
            "http://127.0.0.1:8080/creds",
            "http://localhost/creds",
            "http://169.254.170.23/v1/credentials",
            "http://169.254.170.2/creds",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://[::1]:9000/",
        ] {
            assert!(allowed_full_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/creds",
            "http://10.0.0.1/creds",
            "ftp://127.0.0.1/x",
            "not a url",
        ] {
            assert!(allowed_full_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_relative_uri_goes_to_the_ecs_agent_and_wins_over_a_full_uri() {
        let link = ContainerLink::new(&vars(&[
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/abc",
            ),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/x"),
        ]))
        .ok()
        .unwrap();
        assert_eq!(link.uri, "http://169.254.170.2/v2/credentials/abc");
    }

    #[test]
    fn link_local_and_loopback_destinations_bypass_proxies() {
        assert!(is_local("http://169.254.169.254/latest/api/token"));
        assert!(is_local("http://[fd00:ec2::254]/latest/api/token"));
        assert!(is_local("http://127.0.0.1:4566/"));
        assert!(!is_local("https://sts.eu-west-1.amazonaws.com/"));
    }

    #[test]
    fn half_set_environment_keys_are_an_error_naming_the_missing_one() {
        let Err(Miss::Failed { message, .. }) =
            environment(&vars(&[("AWS_ACCESS_KEY_ID", "AKID")]))
        else {
            panic!("expected a failure");
        };
        assert!(
            message.contains("AWS_SECRET_ACCESS_KEY is not"),
            "{message}"
        );
        assert!(matches!(environment(&vars(&[])), Err(Miss::Skipped(_))));
    }

    #[test]
    fn agent_errors_quote_code_and_message_without_the_token() {
        assert_eq!(
            agent_message(
                br#"{"Code":"AccessDeniedException","Message":"token tok-123456 refused"}"#,
                &["tok-123456"]
            ),
            "AccessDeniedException: token [REDACTED] refused"
        );
        assert_eq!(agent_message(b"bad gateway", &[]), "bad gateway");
    }
}
