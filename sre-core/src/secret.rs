//! Secrets by reference: what a key *is* ([`Secret`], never printed), where it lives
//! ([`SecretRef`]: `env:GROQ_API_KEY`, `file:/var/run/secrets/sre/groq`,
//! `vault:secret/data/sre#groq`, `aws-sm:prod/sre-agent#groq`), who fetches it ([`SecretSource`],
//! implemented with I/O in `sre-llm`), and a cached, refreshable [`SecretHandle`] that a provider or a
//! chat channel holds instead of the value.
//!
//! A handle caches a fetched value for the source's lifetime or its own TTL, whichever is shorter,
//! fetches again when that passes, and forgets the value at once when its user says the value was
//! refused ([`SecretHandle::invalidate`], e.g. on a provider's 401). Errors name the reference and
//! what went wrong, never the value.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sre_core::secret::SecretError> {
//! use std::sync::Arc;
//! use sre_core::secret::{Fetched, Secret, SecretError, SecretRef, SecretSource, Secrets};
//!
//! struct Fixed;
//! #[async_trait::async_trait]
//! impl SecretSource for Fixed {
//!     fn scheme(&self) -> &'static str { "mem" }
//!     async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
//!         match reference.path() {
//!             "groq" => Ok(Fetched::new(Secret::new("gsk_live_value"))),
//!             _ => Err(SecretError::not_found(reference, "no such entry")),
//!         }
//!     }
//! }
//!
//! let secrets = Secrets::new().with(Arc::new(Fixed));
//! let key = secrets.handle("mem:groq")?;
//! assert_eq!(key.get().await?.expose(), "gsk_live_value");
//! assert_eq!(format!("{key:?}"), "SecretHandle(mem:groq)");
//! assert!(secrets.handle("vault:secret/data/sre#groq").is_err()); // no Vault source registered
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// How long a fetched value is kept when neither the handle nor the source says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// A secret value: an API key, a signing secret, a token. Never printed by `Debug`; no `Display`,
/// no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty or only whitespace (a mounted file that is not filled yet).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Where a secret lives: `scheme:path`, optionally `#key` for one field of a structured secret.
///
/// | reference | meaning |
/// |---|---|
/// | `env:GROQ_API_KEY` | the environment variable |
/// | `file:/var/run/secrets/sre/groq` | a file's content, one trailing newline trimmed |
/// | `vault:secret/data/sre#groq` | field `groq` of a Vault KV v2 secret (path after `/v1/`) |
/// | `aws-sm:prod/sre-agent#groq` | key `groq` of an AWS Secrets Manager JSON secret |
///
/// Only the first `:` separates the scheme, so a path may hold colons (an ARN); only the last `#`
/// separates the key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    scheme: String,
    path: String,
    key: Option<String>,
}

impl SecretRef {
    /// Parses a reference.
    ///
    /// # Errors
    /// [`SecretError::BadReference`] naming what is wrong: no scheme, a scheme that is not lower-case
    /// letters, digits and `-`, an empty path or key, or control characters.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        // A text that is not a reference may be the secret itself (`--api-key sk-…`): the error
        // never quotes it, only how long it is and, once the scheme is known, the scheme.
        let hidden = || {
            format!(
                "<{} characters, not shown: it may be the secret itself>",
                text.chars().count()
            )
        };
        let bad = |reason: &str| SecretError::BadReference {
            reference: hidden(),
            reason: format!(
                "{reason}; if this is the value itself, pass it by reference instead (env:NAME, file:/path)"
            ),
        };
        if text.chars().any(char::is_control) {
            return Err(bad("it contains control characters"));
        }
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(bad(
                "it has no scheme: write env:NAME, file:/path, vault:mount/data/path#key or aws-sm:id#key",
            ));
        };
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(
                "the scheme must be lower-case letters, digits and '-' (env, file, vault, aws-sm)",
            ));
        }
        let known = |reason: &str| SecretError::BadReference {
            reference: format!("{scheme}:…"),
            reason: reason.to_owned(),
        };
        let (path, key) = match rest.rsplit_once('#') {
            Some((path, key)) => {
                if key.is_empty() {
                    return Err(known("the key after '#' is empty"));
                }
                (path, Some(key.to_owned()))
            }
            None => (rest, None),
        };
        if path.trim().is_empty() {
            return Err(known("the path after the scheme is empty"));
        }
        Ok(Self {
            scheme: scheme.to_owned(),
            path: path.to_owned(),
            key,
        })
    }

    /// The scheme (`env`, `file`, `vault`, `aws-sm`, …).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// What comes after the scheme, without the key.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The field after `#`, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.path)?;
        if let Some(key) = &self.key {
            write!(f, "#{key}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({self})")
    }
}

impl std::str::FromStr for SecretRef {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a secret could not be had. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The reference does not parse.
    #[error("bad secret reference {reference:?}: {reason}")]
    BadReference {
        /// The reference as written (escaped, shortened).
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// No source is registered for the scheme.
    #[error(
        "secret reference {reference}: no source for scheme {scheme:?} (known: {known}; if this is the value itself, pass it by reference instead: env:NAME, file:/path)"
    )]
    UnknownScheme {
        /// The scheme followed by `:…` (the rest is not shown: a text with an unknown scheme may
        /// be a secret, such as a webhook URL with its signature).
        reference: String,
        /// Its scheme.
        scheme: String,
        /// The schemes that are registered, comma-separated.
        known: String,
    },
    /// The secret, or the key inside it, does not exist.
    #[error("secret {reference} not found: {detail}")]
    NotFound {
        /// The reference.
        reference: String,
        /// What the source said.
        detail: String,
    },
    /// The source refused (403, `AccessDenied`, permission denied on a file).
    #[error("secret {reference}: access denied: {detail}")]
    Denied {
        /// The reference.
        reference: String,
        /// What the source said.
        detail: String,
    },
    /// The source could not answer now (sealed, throttled, unreachable, 5xx); a retry may work.
    #[error("secret {reference}: source unavailable: {detail}")]
    Unavailable {
        /// The reference.
        reference: String,
        /// What the source said.
        detail: String,
    },
    /// The secret exists but is not usable (empty, not JSON where a key was asked for, not text).
    #[error("secret {reference} is not usable: {detail}")]
    Invalid {
        /// The reference.
        reference: String,
        /// What is wrong with it (never the value).
        detail: String,
    },
}

impl SecretError {
    /// [`SecretError::NotFound`] for `reference`.
    pub fn not_found(reference: &SecretRef, detail: impl Into<String>) -> Self {
        Self::NotFound {
            reference: reference.to_string(),
            detail: detail.into(),
        }
    }

    /// [`SecretError::Denied`] for `reference`.
    pub fn denied(reference: &SecretRef, detail: impl Into<String>) -> Self {
        Self::Denied {
            reference: reference.to_string(),
            detail: detail.into(),
        }
    }

    /// [`SecretError::Unavailable`] for `reference`.
    pub fn unavailable(reference: &SecretRef, detail: impl Into<String>) -> Self {
        Self::Unavailable {
            reference: reference.to_string(),
            detail: detail.into(),
        }
    }

    /// [`SecretError::Invalid`] for `reference`.
    pub fn invalid(reference: &SecretRef, detail: impl Into<String>) -> Self {
        Self::Invalid {
            reference: reference.to_string(),
            detail: detail.into(),
        }
    }
}

/// A value as a source returns it, with how long it may be used.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The value.
    pub value: Secret,
    /// How long the value stays valid (a token's `expires_in`, a lease's duration), if the source
    /// knows; the handle refreshes before that.
    pub valid_for: Option<Duration>,
}

impl Fetched {
    /// A value with no known lifetime.
    pub fn new(value: Secret) -> Self {
        Self {
            value,
            valid_for: None,
        }
    }

    /// A value valid for `valid_for`.
    #[must_use]
    pub fn valid_for(mut self, valid_for: Duration) -> Self {
        self.valid_for = Some(valid_for);
        self
    }
}

/// Fetches secrets of one scheme. Implementations do the I/O (the environment, files, Vault, AWS
/// Secrets Manager, a token endpoint) and map failures to the [`SecretError`] kinds; they never put
/// the value in an error or a log line.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The scheme this source serves (`env`, `file`, `vault`, `aws-sm`, …).
    fn scheme(&self) -> &'static str;

    /// Fetches the value `reference` names (its scheme is this source's).
    ///
    /// # Errors
    /// The [`SecretError`] kind that fits, naming the reference.
    async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError>;
}

/// The registered sources, by scheme: hands out [`SecretHandle`]s.
#[derive(Clone, Default)]
pub struct Secrets {
    sources: BTreeMap<&'static str, Arc<dyn SecretSource>>,
    ttl: Option<Duration>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("schemes", &self.sources.keys().collect::<Vec<_>>())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Secrets {
    /// No sources.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `source` for its scheme (replacing one registered before).
    #[must_use]
    pub fn with(mut self, source: Arc<dyn SecretSource>) -> Self {
        self.sources.insert(source.scheme(), source);
        self
    }

    /// How long handles keep a value at most (default [`DEFAULT_TTL`]).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The registered schemes.
    pub fn schemes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sources.keys().copied()
    }

    /// A handle for `reference`; nothing is fetched yet.
    ///
    /// # Errors
    /// The reference does not parse, or no source serves its scheme.
    pub fn handle(&self, reference: &str) -> Result<SecretHandle, SecretError> {
        let reference = SecretRef::parse(reference)?;
        let source =
            self.sources
                .get(reference.scheme())
                .ok_or_else(|| SecretError::UnknownScheme {
                    reference: format!("{}:…", reference.scheme()),
                    scheme: reference.scheme().to_owned(),
                    known: self.schemes().collect::<Vec<_>>().join(", "),
                })?;
        Ok(SecretHandle::new(
            reference,
            Arc::clone(source),
            self.ttl.unwrap_or(DEFAULT_TTL),
        ))
    }
}

/// How much of a source's stated lifetime a handle uses before it fetches again: a token valid for
/// an hour is refreshed after 48 minutes, so a request never goes out with one about to expire.
const LIFETIME_USED: f64 = 0.8;

#[derive(Clone)]
struct Cached {
    value: Secret,
    until: Instant,
}

/// A secret by reference, fetched on first use, cached, and refreshed when its time is up or its user
/// says it was refused. Cheap to clone (clones share the cache).
#[derive(Clone)]
pub struct SecretHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    reference: SecretRef,
    source: Option<Arc<dyn SecretSource>>,
    ttl: Duration,
    cached: Mutex<Option<Cached>>,
    /// Held while fetching: concurrent callers that find the cache empty wait for one fetch
    /// instead of each asking the source (a thundering herd on Vault or Secrets Manager).
    fetching: tokio::sync::Mutex<()>,
    fixed: Option<Secret>,
}

impl fmt::Debug for SecretHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHandle({})", self.inner.reference)
    }
}

impl SecretHandle {
    /// A handle that fetches `reference` from `source`, keeping a value at most `ttl`.
    pub fn new(reference: SecretRef, source: Arc<dyn SecretSource>, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(HandleInner {
                reference,
                source: Some(source),
                ttl,
                cached: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
                fixed: None,
            }),
        }
    }

    /// A handle that always gives `value` (a key given in code or a test); `label` names it in
    /// errors and `Debug` (e.g. `"GROQ_API_KEY"`), never the value.
    pub fn fixed(label: &str, value: Secret) -> Self {
        Self {
            inner: Arc::new(HandleInner {
                reference: SecretRef {
                    scheme: "fixed".to_owned(),
                    path: label.to_owned(),
                    key: None,
                },
                source: None,
                ttl: Duration::MAX,
                cached: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
                fixed: Some(value),
            }),
        }
    }

    /// The reference this handle fetches.
    pub fn reference(&self) -> &SecretRef {
        &self.inner.reference
    }

    /// The value: the cached one while it is fresh, else fetched now.
    ///
    /// # Errors
    /// The source's [`SecretError`]; a fetched value that is blank is [`SecretError::Invalid`].
    pub async fn get(&self) -> Result<Secret, SecretError> {
        let inner = &self.inner;
        if let Some(value) = &inner.fixed {
            return Ok(value.clone());
        }
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let _fetching = inner.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let Some(source) = &inner.source else {
            return Err(SecretError::unavailable(&inner.reference, "no source"));
        };
        let fetched = source.fetch(&inner.reference).await?;
        if fetched.value.is_blank() {
            return Err(SecretError::invalid(&inner.reference, "the value is empty"));
        }
        let keep = fetched
            .valid_for
            .map_or(inner.ttl, |life| life.mul_f64(LIFETIME_USED).min(inner.ttl));
        let until = Instant::now()
            .checked_add(keep)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        *self.lock() = Some(Cached {
            value: fetched.value.clone(),
            until,
        });
        Ok(fetched.value)
    }

    fn fresh(&self) -> Option<Secret> {
        self.lock()
            .as_ref()
            .filter(|cached| Instant::now() < cached.until)
            .map(|cached| cached.value.clone())
    }

    /// Forgets the cached value: the next [`get`](Self::get) fetches again. Call it when the value was
    /// refused (a 401), so a rotated key is picked up at once.
    pub fn invalidate(&self) {
        *self.lock() = None;
    }

    /// Forgets the cached value only if it is still `refused`: when several requests were refused
    /// with the same old value, the first one's fresh fetch is kept, not thrown away by the others.
    pub fn invalidate_if(&self, refused: &Secret) {
        let mut cached = self.lock();
        if cached.as_ref().is_some_and(|c| &c.value == refused) {
            *cached = None;
        }
    }

    /// Whether the handle can give a different value after [`invalidate`](Self::invalidate) (a
    /// fixed handle cannot, so retrying a 401 with it is pointless).
    pub fn refreshable(&self) -> bool {
        self.inner.fixed.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.inner
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counting {
        calls: AtomicUsize,
        valid_for: Option<Duration>,
    }

    #[async_trait]
    impl SecretSource for Counting {
        fn scheme(&self) -> &'static str {
            "count"
        }
        async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if reference.path() == "blank" {
                return Ok(Fetched::new(Secret::new("  \n")));
            }
            let fetched = Fetched::new(Secret::new(format!("value-{n}")));
            Ok(match self.valid_for {
                Some(d) => fetched.valid_for(d),
                None => fetched,
            })
        }
    }

    fn counting(valid_for: Option<Duration>) -> Arc<Counting> {
        Arc::new(Counting {
            calls: AtomicUsize::new(0),
            valid_for,
        })
    }

    #[test]
    fn references_parse_with_scheme_path_and_key() {
        let r = SecretRef::parse("vault:secret/data/sre#groq").unwrap();
        assert_eq!(
            (r.scheme(), r.path(), r.key()),
            ("vault", "secret/data/sre", Some("groq"))
        );
        let r =
            SecretRef::parse("aws-sm:arn:aws:secretsmanager:eu-west-1:1:secret:sre-AbC#k").unwrap();
        assert_eq!(r.scheme(), "aws-sm");
        assert_eq!(
            r.path(),
            "arn:aws:secretsmanager:eu-west-1:1:secret:sre-AbC"
        );
        assert_eq!(r.key(), Some("k"));
        let r = SecretRef::parse("file:/var/run/secrets/x").unwrap();
        assert_eq!((r.path(), r.key()), ("/var/run/secrets/x", None));
        assert_eq!(r.to_string(), "file:/var/run/secrets/x");
    }

    #[test]
    fn bad_references_name_what_is_wrong() {
        for (text, needle) in [
            ("GROQ_API_KEY", "no scheme"),
            (":x", "scheme must be"),
            ("Env:X", "scheme must be"),
            ("env:", "path after the scheme is empty"),
            ("vault:secret/data/sre#", "key after '#' is empty"),
            ("env:A\nB", "control characters"),
        ] {
            let err = SecretRef::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            // The text may be the secret itself: it is never quoted.
            if text.len() > 6 {
                assert!(!err.contains(text), "{text:?}: {err}");
            }
        }
    }

    #[tokio::test]
    async fn a_handle_caches_until_invalidated() {
        let source = counting(None);
        let secrets = Secrets::new().with(source.clone());
        let handle = secrets.handle("count:a").unwrap();
        assert_eq!(handle.get().await.unwrap().expose(), "value-1");
        assert_eq!(handle.clone().get().await.unwrap().expose(), "value-1");
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
        handle.invalidate();
        assert_eq!(handle.get().await.unwrap().expose(), "value-2");
    }

    #[tokio::test]
    async fn a_short_lifetime_is_refreshed_before_it_ends() {
        let source = counting(Some(Duration::ZERO));
        let handle = Secrets::new()
            .with(source.clone())
            .handle("count:a")
            .unwrap();
        assert_eq!(handle.get().await.unwrap().expose(), "value-1");
        assert_eq!(handle.get().await.unwrap().expose(), "value-2");
        let handle = Secrets::new()
            .with(counting(None))
            .ttl(Duration::ZERO)
            .handle("count:a")
            .unwrap();
        handle.get().await.unwrap();
        assert_eq!(handle.get().await.unwrap().expose(), "value-2");
    }

    #[tokio::test]
    async fn blank_values_and_unknown_schemes_are_errors() {
        let secrets = Secrets::new().with(counting(None));
        let err = secrets
            .handle("count:blank")
            .unwrap()
            .get()
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
        let err = secrets.handle("vault:secret/data/x#k").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "secret reference vault:…: no source for scheme \"vault\" (known: count;"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn nothing_prints_the_value() {
        let handle = SecretHandle::fixed("GROQ_API_KEY", Secret::new("gsk_very_secret"));
        let value = handle.get().await.unwrap();
        assert_eq!(value.expose(), "gsk_very_secret");
        assert!(!handle.refreshable());
        for shown in [format!("{handle:?}"), format!("{value:?}")] {
            assert!(!shown.contains("gsk_very_secret"), "{shown}");
        }
    }
}
