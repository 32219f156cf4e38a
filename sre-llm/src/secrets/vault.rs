//! `vault:mount/data/path#field`: Vault's KV secrets engine over its HTTP API, with token
//! or Kubernetes auth and token renewal.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{
    Answer, Fetched, Secret, SecretError, SecretRef, SecretSource, Transport, client, field,
    invalid, key_names, scrub, send,
};
use crate::error::{Error, Result};

/// The Kubernetes auth mount used when none is configured.
pub const DEFAULT_KUBERNETES_MOUNT: &str = "kubernetes";

/// Where Kubernetes mounts a pod's service-account token.
pub const SERVICE_ACCOUNT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How Vault is authenticated to.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultAuth {
    /// A token (`VAULT_TOKEN`). Looked up once (`auth/token/lookup-self`) to learn its lease;
    /// renewed (`auth/token/renew-self`) when renewable; when it expires the source answers
    /// [`SecretError::Denied`] saying so.
    Token(Secret),
    /// A file holding a token (a Vault Agent sink), read at first use and again whenever Vault
    /// refuses the token it held.
    TokenFile(PathBuf),
    /// Kubernetes auth: `POST /v1/auth/{mount}/login` with the role and the pod's service-account
    /// token (read from `jwt_path` at each login, as Kubernetes rotates it). The Vault token it
    /// gives is renewed at 2/3 of its lease, and replaced by a new login when renewal fails, when it
    /// is not renewable, or when Vault refuses it.
    Kubernetes {
        /// The Vault role.
        role: String,
        /// The auth mount (default [`DEFAULT_KUBERNETES_MOUNT`]).
        mount: String,
        /// The service-account token file (default [`SERVICE_ACCOUNT_TOKEN_PATH`]).
        jwt_path: PathBuf,
    },
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token([REDACTED])"),
            Self::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
            Self::Kubernetes {
                role,
                mount,
                jwt_path,
            } => f
                .debug_struct("Kubernetes")
                .field("role", role)
                .field("mount", mount)
                .field("jwt_path", jwt_path)
                .finish(),
        }
    }
}

impl VaultAuth {
    /// Kubernetes auth as `role` at the default mount with the pod's own service-account token.
    pub fn kubernetes(role: impl Into<String>) -> Self {
        Self::Kubernetes {
            role: role.into(),
            mount: DEFAULT_KUBERNETES_MOUNT.to_owned(),
            jwt_path: PathBuf::from(SERVICE_ACCOUNT_TOKEN_PATH),
        }
    }

    /// What the token is, for an error.
    fn describe(&self) -> String {
        match self {
            Self::Token(_) => "the token from VAULT_TOKEN".to_owned(),
            Self::TokenFile(path) => format!("the token in {}", path.display()),
            Self::Kubernetes { role, mount, .. } => {
                format!("the token of Kubernetes login as role {role:?} (mount {mount:?})")
            }
        }
    }
}

/// Where Vault is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultConfig {
    /// The address, `http(s)://host:port` (`VAULT_ADDR`).
    pub addr: String,
    /// How to authenticate.
    pub auth: VaultAuth,
    /// Vault Enterprise namespace, sent as `X-Vault-Namespace` (`VAULT_NAMESPACE`).
    pub namespace: Option<String>,
    /// A PEM file of CA certificates trusted in addition to the system's (`VAULT_CACERT`).
    pub ca_cert: Option<PathBuf>,
    /// The timeout of each request (default 30 s).
    pub timeout: Duration,
}

impl VaultConfig {
    /// Vault at `addr` with `auth`, no namespace, the system's CAs and a 30 s timeout.
    pub fn new(addr: impl Into<String>, auth: VaultAuth) -> Self {
        Self {
            addr: addr.into(),
            auth,
            namespace: None,
            ca_cert: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The configuration the variables give (`VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_TOKEN_FILE`,
    /// `VAULT_K8S_ROLE`, `VAULT_K8S_MOUNT`, `VAULT_K8S_TOKEN_PATH`, `VAULT_NAMESPACE`,
    /// `VAULT_CACERT`; see the [module documentation](super)), or `None` when `VAULT_ADDR` is not
    /// set. Empty variables count as unset.
    ///
    /// # Errors
    /// [`Error::MissingVariable`] when `VAULT_ADDR` is set with no auth variable;
    /// [`Error::Invalid`] when more than one is set, or `VAULT_ADDR` is not `http(s)://`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let Some(addr) = var("VAULT_ADDR") else {
            return Ok(None);
        };
        let addr = addr.trim().trim_end_matches('/').to_owned();
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(invalid(format!(
                "vault: VAULT_ADDR={addr:?} is not an http:// or https:// address"
            )));
        }
        let token = var("VAULT_TOKEN");
        let token_file = var("VAULT_TOKEN_FILE");
        let role = var("VAULT_K8S_ROLE");
        let set: Vec<&str> = [
            ("VAULT_TOKEN", token.is_some()),
            ("VAULT_TOKEN_FILE", token_file.is_some()),
            ("VAULT_K8S_ROLE", role.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
        if set.len() > 1 {
            return Err(invalid(format!(
                "vault: {} are all set: choose one way to authenticate to Vault",
                set.join(" and ")
            )));
        }
        let auth = if let Some(token) = token {
            VaultAuth::Token(Secret::new(token.trim()))
        } else if let Some(path) = token_file {
            VaultAuth::TokenFile(PathBuf::from(path))
        } else if let Some(role) = role {
            VaultAuth::Kubernetes {
                role,
                mount: var("VAULT_K8S_MOUNT").map_or_else(
                    || DEFAULT_KUBERNETES_MOUNT.to_owned(),
                    |m| m.trim_matches('/').to_owned(),
                ),
                jwt_path: var("VAULT_K8S_TOKEN_PATH")
                    .map_or_else(|| PathBuf::from(SERVICE_ACCOUNT_TOKEN_PATH), PathBuf::from),
            }
        } else {
            return Err(Error::MissingVariable {
                variable: "VAULT_TOKEN".to_owned(),
                hint: "VAULT_ADDR is set, so Vault needs a way to authenticate: set VAULT_TOKEN, \
                       VAULT_TOKEN_FILE (a file holding the token) or VAULT_K8S_ROLE (Kubernetes \
                       auth with the pod's service-account token)"
                    .to_owned(),
            });
        };
        Ok(Some(Self {
            namespace: var("VAULT_NAMESPACE"),
            ca_cert: var("VAULT_CACERT").map(PathBuf::from),
            ..Self::new(addr, auth)
        }))
    }
}

/// A Vault token the source holds, with what Vault said of its lease.
#[derive(Clone)]
struct Token {
    value: Secret,
    renewable: bool,
    /// `None`: no expiry known (a root token, a token file, or lookup-self was not allowed).
    lease: Option<Duration>,
    obtained: Instant,
}

impl Token {
    fn renew_due(&self, now: Instant) -> bool {
        self.lease
            .is_some_and(|lease| now >= self.obtained + lease.mul_f64(2.0 / 3.0))
    }

    fn expired(&self, now: Instant) -> bool {
        self.lease.is_some_and(|lease| now >= self.obtained + lease)
    }
}

/// Why a read failed: Vault refused the token (403), or anything else.
enum Failure {
    Forbidden(String),
    Other(SecretError),
}

/// The `vault` source: reads `{addr}/v1/{path}` and picks a field of the secret.
///
/// KV v2 answers (`{"data": {"data": {...}, "metadata": {...}}}`) and KV v1 answers
/// (`{"data": {...}}`) are both read. With `#field` that field is the value; without one, a secret
/// with exactly one field gives it, and any other is [`SecretError::Invalid`] naming the fields
/// (never their values). A secret with a lease (KV v1 with a TTL) is valid for that lease.
///
/// | Vault says | error |
/// |---|---|
/// | 404 | [`SecretError::NotFound`] (`deleted` / `destroyed` for such a KV v2 version) |
/// | 403 | [`SecretError::Denied`] quoting Vault, after one new login (Kubernetes auth) or one re-read of the token file |
/// | 503 `Vault is sealed` | [`SecretError::Unavailable`] "Vault is sealed" |
/// | 5xx, 429, no connection | [`SecretError::Unavailable`] |
/// | a missing field | [`SecretError::NotFound`] naming the field and the fields there are |
pub struct VaultSource {
    addr: String,
    auth: VaultAuth,
    namespace: Option<String>,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
    /// Held while logging in, renewing or replacing the token: concurrent reads wait for one
    /// login instead of each creating a Vault token.
    authenticating: tokio::sync::Mutex<()>,
}

impl fmt::Debug for VaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSource")
            .field("addr", &self.addr)
            .field("auth", &self.auth)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl VaultSource {
    /// A source for `config`; nothing is sent yet.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `addr` is not `http(s)://`, or the CA file cannot be read or holds
    /// no usable PEM certificate.
    pub fn new(config: VaultConfig) -> Result<Self> {
        let addr = config.addr.trim().trim_end_matches('/').to_owned();
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(invalid(format!(
                "vault: the address {addr:?} is not http:// or https://"
            )));
        }
        let mut roots = Vec::new();
        if let Some(path) = &config.ca_cert {
            let shown = path.display();
            let pem = std::fs::read(path)
                .map_err(|e| invalid(format!("vault: VAULT_CACERT {shown}: {e}")))?;
            roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                invalid(format!(
                    "vault: VAULT_CACERT {shown} is not a PEM certificate bundle: {e}"
                ))
            })?;
            if roots.is_empty() {
                return Err(invalid(format!(
                    "vault: VAULT_CACERT {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                )));
            }
        }
        let http = client(config.timeout, roots).map_err(|e| {
            invalid(format!(
                "vault: the HTTP client could not be built (check VAULT_CACERT): {}",
                super::error_chain(&e)
            ))
        })?;
        Ok(Self {
            addr,
            auth: config.auth,
            namespace: config.namespace,
            http,
            token: Mutex::new(None),
            authenticating: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Token>> {
        self.token.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request to `{addr}/v1/{path}` with Vault's headers (and the token, when given).
    fn request(
        &self,
        r: &SecretRef,
        method: Method,
        path: &str,
        token: Option<&Secret>,
    ) -> Result<reqwest::RequestBuilder, SecretError> {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Request", "true");
        if let Some(namespace) = &self.namespace {
            req = req.header("X-Vault-Namespace", namespace);
        }
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                SecretError::denied(
                    r,
                    format!(
                        "{} has characters a header cannot carry",
                        self.auth.describe()
                    ),
                )
            })?;
            value.set_sensitive(true);
            req = req.header("X-Vault-Token", value);
        }
        Ok(req)
    }

    /// Sends `req`; a transport failure is [`SecretError::Unavailable`] naming `action`.
    async fn call(
        &self,
        r: &SecretRef,
        req: reqwest::RequestBuilder,
        action: &str,
        secrets: &[&str],
    ) -> Result<Answer, SecretError> {
        send(req).await.map_err(|e| match e {
            Transport::Failed(message) => SecretError::unavailable(
                r,
                format!(
                    "could not reach Vault at {} to {action}: {}",
                    self.addr,
                    scrub(&message, secrets)
                ),
            ),
            Transport::TooLarge => SecretError::unavailable(
                r,
                format!("Vault's answer to {action} is larger than 1 MiB"),
            ),
        })
    }

    /// The error for a non-2xx answer to `action` that is neither a 403 nor a 404.
    fn status_error(r: &SecretRef, answer: &Answer, action: &str, secrets: &[&str]) -> SecretError {
        let said = vault_said(&answer.body, secrets);
        let status = answer.status;
        if status == 503 && said.contains("Vault is sealed") {
            return SecretError::unavailable(
                r,
                format!("Vault is sealed (503 to {action}): unseal it and try again"),
            );
        }
        match status {
            429 | 412 | 500..=599 => {
                SecretError::unavailable(r, format!("Vault answered {status} to {action}: {said}"))
            }
            401 | 403 => {
                SecretError::denied(r, format!("Vault answered {status} to {action}: {said}"))
            }
            _ => SecretError::invalid(r, format!("Vault answered {status} to {action}: {said}")),
        }
    }

    /// Kubernetes login: the role and the service-account token; the Vault token it gives.
    async fn login(
        &self,
        r: &SecretRef,
        role: &str,
        mount: &str,
        jwt_path: &Path,
    ) -> Result<Token, SecretError> {
        let shown = jwt_path.display();
        let jwt = std::fs::read_to_string(jwt_path).map_err(|e| {
            SecretError::denied(
                r,
                format!(
                    "cannot log in to Vault: the service-account token {shown} cannot be read ({e}); \
                     is automountServiceAccountToken off, or VAULT_K8S_TOKEN_PATH wrong?"
                ),
            )
        })?;
        let jwt = jwt.trim();
        if jwt.is_empty() {
            return Err(SecretError::denied(
                r,
                format!("cannot log in to Vault: the service-account token {shown} is empty"),
            ));
        }
        let action = format!("log in as role {role:?} at auth/{mount}");
        let obtained = Instant::now();
        let req = self
            .request(
                r,
                Method::POST,
                &format!("auth/{}/login", encode_path(mount)),
                None,
            )?
            .json(&json!({"role": role, "jwt": jwt}));
        let secrets = [jwt];
        let answer = self.call(r, req, &action, &secrets).await?;
        match answer.status {
            200..=299 => auth_token(r, &answer.body, obtained, &action, true),
            400 | 401 | 403 => Err(SecretError::denied(
                r,
                format!(
                    "Vault refused to {action}: {} ({})",
                    vault_said(&answer.body, &secrets),
                    answer.status
                ),
            )),
            _ => Err(Self::status_error(r, &answer, &action, &secrets)),
        }
    }

    /// `auth/token/lookup-self`: the static token's remaining TTL and whether it is renewable.
    /// A token not allowed to look itself up is used as it is, with no known expiry.
    async fn look_up(&self, r: &SecretRef, token: Secret) -> Result<Token, SecretError> {
        let action = "look up the token (auth/token/lookup-self)";
        let obtained = Instant::now();
        let req = self.request(r, Method::GET, "auth/token/lookup-self", Some(&token))?;
        let answer = self.call(r, req, action, &[token.expose()]).await?;
        if answer.status == 403 {
            tracing::debug!(
                "vault: the token may not look itself up; its expiry is unknown, so it is not renewed"
            );
            return Ok(Token {
                value: token,
                renewable: false,
                lease: None,
                obtained,
            });
        }
        if !(200..300).contains(&answer.status) {
            return Err(Self::status_error(r, &answer, action, &[token.expose()]));
        }
        let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let ttl = v.pointer("/data/ttl").and_then(Value::as_u64).unwrap_or(0);
        Ok(Token {
            renewable: v
                .pointer("/data/renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            lease: (ttl > 0).then(|| Duration::from_secs(ttl)),
            value: token,
            obtained,
        })
    }

    /// `auth/token/renew-self`: a new lease for `token`.
    async fn renew(&self, r: &SecretRef, token: &Token) -> Result<Token, SecretError> {
        let action = "renew the token (auth/token/renew-self)";
        let obtained = Instant::now();
        let req = self
            .request(r, Method::POST, "auth/token/renew-self", Some(&token.value))?
            .json(&json!({}));
        let secrets = [token.value.expose()];
        let answer = self.call(r, req, action, &secrets).await?;
        if !(200..300).contains(&answer.status) {
            return Err(Self::status_error(r, &answer, action, &secrets));
        }
        let mut renewed = auth_token(r, &answer.body, obtained, action, false)?;
        if renewed.lease.is_none() {
            // Renewal that gives no lease gave nothing: treat it as failed.
            return Err(SecretError::unavailable(
                r,
                format!("Vault's answer to {action} has no lease"),
            ));
        }
        if renewed.value.expose().is_empty() {
            renewed.value = token.value.clone();
        }
        Ok(renewed)
    }

    /// A first token, by the configured method.
    async fn authenticate(&self, r: &SecretRef) -> Result<Token, SecretError> {
        match &self.auth {
            VaultAuth::Token(token) => self.look_up(r, token.clone()).await,
            VaultAuth::TokenFile(path) => Ok(Token {
                value: read_token_file(r, path)?,
                renewable: false,
                lease: None,
                obtained: Instant::now(),
            }),
            VaultAuth::Kubernetes {
                role,
                mount,
                jwt_path,
            } => self.login(r, role, mount, jwt_path).await,
        }
    }

    /// A token whose renewal is due: renewed when renewable, else (or when that fails) a new login
    /// with Kubernetes auth; a static token that has expired is a clear [`SecretError::Denied`].
    async fn refresh(&self, r: &SecretRef, token: Token) -> Result<Token, SecretError> {
        if token.renewable {
            match self.renew(r, &token).await {
                Ok(renewed) => return Ok(renewed),
                Err(e) => tracing::warn!(error = %e, "vault: renewing the token failed"),
            }
        }
        match &self.auth {
            VaultAuth::Kubernetes {
                role,
                mount,
                jwt_path,
            } => self.login(r, role, mount, jwt_path).await,
            VaultAuth::TokenFile(path) => {
                let value = read_token_file(r, path)?;
                if value != token.value {
                    return Ok(Token {
                        value,
                        renewable: false,
                        lease: None,
                        obtained: Instant::now(),
                    });
                }
                self.expired_or_kept(r, token)
            }
            VaultAuth::Token(_) => self.expired_or_kept(r, token),
        }
    }

    fn expired_or_kept(&self, r: &SecretRef, token: Token) -> Result<Token, SecretError> {
        if token.expired(Instant::now()) {
            return Err(self.expired(r));
        }
        Ok(token)
    }

    fn expired(&self, r: &SecretRef) -> SecretError {
        SecretError::denied(
            r,
            format!(
                "{} has expired and could not be renewed: give a fresh token, or use \
                 Kubernetes auth (VAULT_K8S_ROLE), which logs in again by itself",
                self.auth.describe()
            ),
        )
    }

    /// The token to use now: the held one, renewed or replaced when due.
    async fn current(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        let usable = |held: Option<Token>| held.filter(|t| !t.renew_due(Instant::now()));
        if let Some(token) = usable(self.lock().clone()) {
            return Ok(token.value);
        }
        let _authenticating = self.authenticating.lock().await;
        // Another read may have logged in or renewed while this one waited.
        let held = self.lock().clone();
        let token = match held {
            None => self.authenticate(r).await?,
            Some(token) if token.renew_due(Instant::now()) => self.refresh(r, token).await?,
            Some(token) => token,
        };
        let value = token.value.clone();
        *self.lock() = Some(token);
        Ok(value)
    }

    /// A token that replaces `refused` after Vault refused it, where the method can get one: a
    /// new Kubernetes login, or a token file that now holds another token.
    async fn replacement(
        &self,
        r: &SecretRef,
        refused: &Secret,
    ) -> Result<Option<Secret>, SecretError> {
        let _authenticating = self.authenticating.lock().await;
        // Another read refused with the same token may have replaced it already.
        if let Some(held) = self.lock().as_ref().filter(|t| t.value != *refused) {
            return Ok(Some(held.value.clone()));
        }
        let token = match &self.auth {
            VaultAuth::Kubernetes {
                role,
                mount,
                jwt_path,
            } => {
                *self.lock() = None;
                self.login(r, role, mount, jwt_path).await?
            }
            VaultAuth::TokenFile(path) => {
                let value = read_token_file(r, path)?;
                if value == *refused {
                    return Ok(None);
                }
                Token {
                    value,
                    renewable: false,
                    lease: None,
                    obtained: Instant::now(),
                }
            }
            VaultAuth::Token(_) => return Ok(None),
        };
        let value = token.value.clone();
        *self.lock() = Some(token);
        Ok(Some(value))
    }

    /// GET `{addr}/v1/{path}` with `token` and the value it holds.
    async fn read(&self, r: &SecretRef, path: &str, token: &Secret) -> Result<Fetched, Failure> {
        let action = format!("read {}", r.path());
        let req = self
            .request(r, Method::GET, path, Some(token))
            .map_err(Failure::Other)?;
        let secrets = [token.expose()];
        let answer = self
            .call(r, req, &action, &secrets)
            .await
            .map_err(Failure::Other)?;
        match answer.status {
            200..=299 => secret_value(r, &answer.body).map_err(Failure::Other),
            403 => Err(Failure::Forbidden(vault_said(&answer.body, &secrets))),
            404 => Err(Failure::Other(not_found(r, &answer.body, &secrets))),
            _ => Err(Failure::Other(Self::status_error(
                r, &answer, &action, &secrets,
            ))),
        }
    }

    fn denied(&self, r: &SecretRef, said: &str, retried: bool) -> SecretError {
        let again = if retried {
            match &self.auth {
                VaultAuth::Kubernetes { .. } => " (also after a fresh login)",
                _ => " (also with the token the file holds now)",
            }
        } else {
            ""
        };
        SecretError::denied(
            r,
            format!(
                "Vault refused to let {} read {}{again}: {said}; check the token's policies",
                self.auth.describe(),
                r.path()
            ),
        )
    }
}

#[async_trait]
impl SecretSource for VaultSource {
    fn scheme(&self) -> &'static str {
        "vault"
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let path = api_path(reference)?;
        let token = self.current(reference).await?;
        let said = match self.read(reference, &path, &token).await {
            Ok(fetched) => return Ok(fetched),
            Err(Failure::Other(e)) => return Err(e),
            Err(Failure::Forbidden(said)) => said,
        };
        let expired = matches!(self.auth, VaultAuth::Token(_))
            && self
                .lock()
                .as_ref()
                .is_some_and(|held| held.expired(Instant::now()));
        if expired {
            return Err(self.expired(reference));
        }
        let Some(fresh) = self.replacement(reference, &token).await? else {
            return Err(self.denied(reference, &said, false));
        };
        match self.read(reference, &path, &fresh).await {
            Ok(fetched) => Ok(fetched),
            Err(Failure::Forbidden(said)) => Err(self.denied(reference, &said, true)),
            Err(Failure::Other(e)) => Err(e),
        }
    }
}

/// The reference's path as a URL path after `/v1/`, each segment percent-encoded.
fn api_path(r: &SecretRef) -> Result<String, SecretError> {
    let bad = |reason: String| SecretError::BadReference {
        reference: r.to_string(),
        reason,
    };
    let path = r.path().trim_start_matches('/');
    if path.starts_with("v1/") {
        return Err(bad(
            "write the path without /v1/ (vault:secret/data/sre#groq)".to_owned(),
        ));
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad(format!(
            "the Vault path {path:?} has an empty, '.' or '..' segment"
        )));
    }
    Ok(encode_path(path))
}

/// `path` with each `/`-separated segment percent-encoded.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// A token file's content, trimmed.
fn read_token_file(r: &SecretRef, path: &Path) -> Result<Secret, SecretError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        SecretError::denied(
            r,
            format!("the Vault token file {shown} cannot be read: {e}"),
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(SecretError::denied(
            r,
            format!("the Vault token file {shown} is empty"),
        ));
    }
    Ok(Secret::new(token))
}

/// What Vault said in an error body: its `errors` joined (and `warnings`), or the start of the
/// body; with `secrets` scrubbed.
fn vault_said(body: &[u8], secrets: &[&str]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let list = |name: &str| -> Vec<String> {
                v.get(name)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut said = list("errors");
            said.extend(list("warnings"));
            if said.is_empty() {
                "no error message".to_owned()
            } else {
                said.join("; ")
            }
        }
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let text = scrub(&text, secrets);
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

/// The not-found error for a 404: a deleted or destroyed KV v2 version is named as such.
fn not_found(r: &SecretRef, body: &[u8], secrets: &[&str]) -> SecretError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let metadata = v.pointer("/data/metadata");
    let version = metadata
        .and_then(|m| m.get("version"))
        .and_then(Value::as_u64)
        .map_or_else(String::new, |n| format!(" {n}"));
    if metadata
        .and_then(|m| m.get("destroyed"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return SecretError::not_found(
            r,
            format!(
                "version{version} of {} was destroyed: write a new version",
                r.path()
            ),
        );
    }
    if let Some(when) = metadata
        .and_then(|m| m.get("deletion_time"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return SecretError::not_found(
            r,
            format!(
                "version{version} of {} was deleted at {when}: undelete it or write a new version",
                r.path()
            ),
        );
    }
    let said = vault_said(body, secrets);
    let said = if said == "no error message" {
        String::new()
    } else {
        format!(" ({said})")
    };
    SecretError::not_found(r, format!("Vault has no secret at {}{said}", r.path()))
}

/// The Vault token in a login or renewal answer (`auth.client_token`, `lease_duration`,
/// `renewable`).
fn auth_token(
    r: &SecretRef,
    body: &[u8],
    obtained: Instant,
    action: &str,
    require_token: bool,
) -> Result<Token, SecretError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(auth) = v.get("auth").filter(|a| a.is_object()) else {
        return Err(SecretError::unavailable(
            r,
            format!("Vault's answer to {action} has no auth object"),
        ));
    };
    let token = auth
        .get("client_token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let lease = auth
        .get("lease_duration")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if token.is_empty() && require_token {
        return Err(SecretError::unavailable(
            r,
            format!("Vault's answer to {action} has no auth.client_token"),
        ));
    }
    Ok(Token {
        value: Secret::new(token),
        renewable: auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        lease: (lease > 0).then(|| Duration::from_secs(lease)),
        obtained,
    })
}

/// The value a 2xx read answer holds for `r`.
fn secret_value(r: &SecretRef, body: &[u8]) -> Result<Fetched, SecretError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| SecretError::unavailable(r, "Vault's answer is not JSON"))?;
    let Some(Value::Object(data)) = v.get("data") else {
        return Err(SecretError::not_found(
            r,
            format!("Vault's answer for {} holds no data", r.path()),
        ));
    };
    let fields: &Map<String, Value> = if data.contains_key("metadata") && data.contains_key("data")
    {
        // KV v2.
        match data.get("data") {
            Some(Value::Object(fields)) => fields,
            _ => {
                return Err(SecretError::not_found(
                    r,
                    format!("the current version of {} has no data (deleted)", r.path()),
                ));
            }
        }
    } else {
        data
    };
    let what = format!("the Vault secret {}", r.path());
    let only = if fields.len() == 1 {
        fields.keys().next()
    } else {
        None
    };
    let value = if let Some(key) = r.key().or(only.map(String::as_str)) {
        field(r, fields, key, &what)?
    } else {
        match fields.len() {
            0 => return Err(SecretError::not_found(r, format!("{what} has no fields"))),
            _ => {
                return Err(SecretError::invalid(
                    r,
                    format!(
                        "{what} has {} fields ({}): name one, as in vault:{}#{}",
                        fields.len(),
                        key_names(fields),
                        r.path(),
                        fields.keys().min().map_or("field", String::as_str)
                    ),
                ));
            }
        }
    };
    let lease = v.get("lease_duration").and_then(Value::as_u64).unwrap_or(0);
    let fetched = Fetched::new(value);
    Ok(if lease > 0 {
        fetched.valid_for(Duration::from_secs(lease))
    } else {
        fetched
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> SecretRef {
        SecretRef::parse(text).unwrap()
    }

    #[test]
    fn paths_are_checked_and_encoded() {
        assert_eq!(
            api_path(&r("vault:secret/data/sre#k")).unwrap(),
            "secret/data/sre"
        );
        assert_eq!(
            api_path(&r("vault:/secret/data/a b?x")).unwrap(),
            "secret/data/a%20b%3Fx"
        );
        for bad in [
            "vault:secret//x",
            "vault:secret/../sys/seal",
            "vault:v1/secret/x",
        ] {
            let err = api_path(&r(bad)).unwrap_err();
            assert!(
                matches!(err, SecretError::BadReference { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn config_from_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(VaultConfig::from_env(&vars(&[])).unwrap(), None);
        let c = VaultConfig::from_env(&vars(&[
            ("VAULT_ADDR", "https://vault.vault:8200/"),
            ("VAULT_K8S_ROLE", "sre-agent"),
            ("VAULT_NAMESPACE", "team-a"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.addr, "https://vault.vault:8200");
        assert_eq!(c.auth, VaultAuth::kubernetes("sre-agent"));
        assert_eq!(c.namespace.as_deref(), Some("team-a"));
        let err = VaultConfig::from_env(&vars(&[("VAULT_ADDR", "http://v:8200")])).unwrap_err();
        assert!(err.to_string().contains("VAULT_K8S_ROLE"), "{err}");
        let err = VaultConfig::from_env(&vars(&[
            ("VAULT_ADDR", "http://v:8200"),
            ("VAULT_TOKEN", "hvs.secret-token"),
            ("VAULT_K8S_ROLE", "r"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("VAULT_TOKEN and VAULT_K8S_ROLE"),
            "{err}"
        );
        assert!(!err.to_string().contains("hvs.secret-token"), "{err}");
        let err =
            VaultConfig::from_env(&vars(&[("VAULT_ADDR", "vault:8200"), ("VAULT_TOKEN", "t")]))
                .unwrap_err();
        assert!(err.to_string().contains("not an http"), "{err}");
        let c = VaultConfig::from_env(&vars(&[
            ("VAULT_ADDR", "http://v:8200"),
            ("VAULT_TOKEN", "hvs.secret-token"),
        ]))
        .unwrap()
        .unwrap();
        assert!(!format!("{c:?}").contains("hvs.secret-token"));
    }

    #[test]
    fn vault_messages_are_quoted_and_scrubbed() {
        assert_eq!(
            vault_said(br#"{"errors":["permission denied"]}"#, &[]),
            "permission denied"
        );
        assert_eq!(
            vault_said(br#"{"errors":["bad token hvs.abcdef"]}"#, &["hvs.abcdef"]),
            "bad token [REDACTED]"
        );
        assert_eq!(vault_said(br#"{"errors":[]}"#, &[]), "no error message");
    }
}
