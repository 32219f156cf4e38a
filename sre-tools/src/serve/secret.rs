//! The service's own secrets — the approvals API token, the Slack bot token and signing secret,
//! the Teams app password and webhook URL, the audit sink's token — taken by reference
//! (`file:/var/run/secrets/…`, `env:NAME`, `vault:secret/data/sre#slack`, `aws-sm:prod/sre#hec`)
//! through one type, [`ServiceSecret`]: fetched on use through a cached
//! [`SecretHandle`], checked against the shape its kind must have
//! ([`Rule`]), and never shown: `Debug` and every error name the reference and the kind, not the
//! value.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sre_core::secret::{Secret, SecretError, SecretHandle, SecretRef, Secrets};
use sre_core::text::describe_char;

/// What a kind of service secret must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// What it is, for errors ("the approvals API token").
    pub what: &'static str,
    /// Shortest length accepted, in bytes.
    pub min_len: usize,
    /// Longest length accepted, in bytes.
    pub max_len: usize,
    /// A prefix it must start with (Slack bot tokens start `xox`).
    pub prefix: Option<&'static str>,
    /// How to make a good one, appended to a length error.
    pub hint: &'static str,
    /// Whether it checks incoming requests (a bearer token, a signing secret): then a value that
    /// changed at its source must stop working at once, so it is cached briefly or not at all
    /// (see [`ServiceSecret::by_reference`]).
    pub checks_requests: bool,
}

/// The approvals API's bearer token (also the Alertmanager webhook's).
pub const API_TOKEN: Rule = Rule {
    what: "the approvals API token",
    min_len: 16,
    max_len: 4096,
    prefix: None,
    hint: " (for example `openssl rand -hex 32`)",
    checks_requests: true,
};
/// Slack's bot token (`xoxb-…`).
pub const SLACK_BOT_TOKEN: Rule = Rule {
    what: "the Slack bot token",
    min_len: 8,
    max_len: 4096,
    prefix: Some("xox"),
    hint: " (the app's Bot User OAuth Token, xoxb-…)",
    checks_requests: false,
};
/// Slack's signing secret.
pub const SLACK_SIGNING_SECRET: Rule = Rule {
    what: "the Slack signing secret",
    min_len: 16,
    max_len: 4096,
    prefix: None,
    hint: " (Basic Information → App Credentials → Signing Secret)",
    checks_requests: true,
};
/// The Teams bot's client secret ("app password").
pub const TEAMS_APP_PASSWORD: Rule = Rule {
    what: "the Teams app password",
    min_len: 1,
    max_len: 4096,
    prefix: None,
    hint: " (the client secret of the Azure Bot's app registration)",
    checks_requests: false,
};
/// A Teams Workflows webhook URL (it carries its own signature, so it is a secret).
pub const TEAMS_WEBHOOK_URL: Rule = Rule {
    what: "the Teams Workflows webhook URL",
    min_len: 8,
    max_len: 4096,
    prefix: Some("http"),
    hint: "",
    checks_requests: false,
};
/// An audit sink's token (Splunk HEC token, Elasticsearch API key).
pub const SINK_TOKEN: Rule = Rule {
    what: "the audit sink token",
    min_len: 1,
    max_len: 4096,
    prefix: None,
    hint: "",
    checks_requests: false,
};

impl Rule {
    /// Checks `value` (fetched for `reference`): printable ASCII without white space, within the
    /// length bounds, with the prefix. The error says where the problem is, never what the
    /// value holds.
    ///
    /// # Errors
    /// [`SecretError::Invalid`] naming the kind and what is wrong.
    pub fn check(&self, reference: &SecretRef, value: &str) -> Result<(), SecretError> {
        let what = self.what;
        let problem = if let Some((at, c)) =
            value.char_indices().find(|(_, c)| !c.is_ascii_graphic())
        {
            // The character is described, never shown: the rest of the value stays secret.
            Some(format!(
                "{what} contains {} at byte {at}: it is one line of printable ASCII without white space (a file holds it alone, with at most one trailing newline)",
                describe_char(c)
            ))
        } else if value.len() < self.min_len {
            Some(format!(
                "{what} is {} bytes long; use at least {}{}",
                value.len(),
                self.min_len,
                self.hint
            ))
        } else if value.len() > self.max_len {
            Some(format!("{what} is longer than {} bytes", self.max_len))
        } else {
            self.prefix
                .filter(|p| !value.starts_with(p))
                .map(|prefix| format!("{what} does not start with {prefix:?}{}", self.hint))
        };
        problem.map_or(Ok(()), |detail| {
            Err(SecretError::invalid(reference, detail))
        })
    }
}

/// How long a secret that checks incoming requests is kept when it comes from a remote source
/// (Vault, Secrets Manager): a token rotated there stops working within this time. From a file or
/// the environment it is read again on every request.
pub const REMOTE_INBOUND_TTL: Duration = Duration::from_secs(30);

/// One of the service's secrets, by reference, checked on every fetch against its [`Rule`].
/// Cheap to clone (clones share the cache).
#[derive(Clone)]
pub struct ServiceSecret {
    handle: SecretHandle,
    rule: &'static Rule,
}

impl fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ServiceSecret({} from {})",
            self.rule.what,
            self.reference()
        )
    }
}

impl ServiceSecret {
    /// The secret `handle` fetches, of kind `rule`.
    pub fn new(rule: &'static Rule, handle: SecretHandle) -> Self {
        Self { handle, rule }
    }

    /// The secret `reference` names, through the sources of `secrets`. A kind that
    /// [checks requests](Rule::checks_requests) is read again on every use from a file or the
    /// environment, and kept at most [`REMOTE_INBOUND_TTL`] from a remote source, so a rotated
    /// (perhaps leaked) token stops working at once or within that time; other kinds keep the
    /// registry's TTL. Nothing is fetched yet: call [`check`](Self::check) to fail early.
    ///
    /// # Errors
    /// The reference does not parse, or no source serves its scheme.
    pub fn by_reference(
        rule: &'static Rule,
        secrets: &Secrets,
        reference: &str,
    ) -> Result<Self, SecretError> {
        let parsed = SecretRef::parse(reference)?;
        let handle = if rule.checks_requests {
            let ttl = match parsed.scheme() {
                "file" | "env" => Duration::ZERO,
                _ => REMOTE_INBOUND_TTL,
            };
            secrets.clone().ttl(ttl).handle(reference)?
        } else {
            secrets.handle(reference)?
        };
        Ok(Self::new(rule, handle))
    }

    /// A value held by the caller (tests, or a secret read elsewhere), checked now.
    ///
    /// # Errors
    /// [`SecretError::Invalid`] when it does not have the kind's shape.
    pub fn fixed(rule: &'static Rule, value: impl Into<String>) -> Result<Self, SecretError> {
        let value = Secret::new(value);
        let handle = SecretHandle::fixed(rule.what, value.clone());
        rule.check(handle.reference(), value.expose())?;
        Ok(Self::new(rule, handle))
    }

    /// The secret in the file at `path`, read again on every use, so a rotated Kubernetes Secret
    /// (a new file behind the same path) takes effect at the next request. Nothing is read yet:
    /// call [`check`](Self::check) to fail early.
    ///
    /// # Errors
    /// [`SecretError::BadReference`] when the path is not absolute or not UTF-8.
    pub fn from_file(rule: &'static Rule, path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let text = absolute.to_str().ok_or_else(|| SecretError::BadReference {
            reference: path.display().to_string(),
            reason: "the path is not UTF-8".to_owned(),
        })?;
        let reference = SecretRef::parse(&format!("file:{text}"))?;
        let source = Arc::new(sre_llm::secrets::FileSource::new());
        Ok(Self::new(
            rule,
            SecretHandle::new(reference, source, Duration::ZERO),
        ))
    }

    /// The secret in the environment variable `name`.
    ///
    /// # Errors
    /// [`SecretError::BadReference`] when `name` is empty.
    pub fn from_env(rule: &'static Rule, name: &str) -> Result<Self, SecretError> {
        let reference = SecretRef::parse(&format!("env:{name}"))?;
        let source = Arc::new(sre_llm::secrets::EnvSource::new());
        Ok(Self::new(
            rule,
            SecretHandle::new(reference, source, Duration::ZERO),
        ))
    }

    /// The value: the cached one while fresh, else fetched now; checked against the rule.
    ///
    /// # Errors
    /// The source's [`SecretError`], or [`SecretError::Invalid`] from the rule.
    pub async fn get(&self) -> Result<Secret, SecretError> {
        let value = self.handle.get().await?;
        if let Err(e) = self.rule.check(self.handle.reference(), value.expose()) {
            self.handle.invalidate();
            return Err(e);
        }
        Ok(value)
    }

    /// Fetches and checks the value once: call at start-up so a missing or malformed secret stops
    /// the service with a clear error instead of failing its first request.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn check(&self) -> Result<(), SecretError> {
        self.get().await.map(drop)
    }

    /// Forgets the cached value (the far end refused it): the next use fetches again.
    pub fn invalidate(&self) {
        self.handle.invalidate();
    }

    /// Where the value comes from.
    pub fn reference(&self) -> &SecretRef {
        self.handle.reference()
    }

    /// What kind of secret this is.
    pub fn rule(&self) -> &'static Rule {
        self.rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_the_problem_without_the_value() {
        let r = SecretRef::parse("vault:secret/data/sre#slack").unwrap();
        for (rule, value, needle) in [
            (
                &API_TOKEN,
                "short-secret",
                "is 12 bytes long; use at least 16",
            ),
            (
                &API_TOKEN,
                "0123456789 abcdefgh",
                "U+0020 (white space) at byte 10",
            ),
            (
                &SLACK_BOT_TOKEN,
                "not-a-slack-token-value",
                "does not start with \"xox\"",
            ),
            (&TEAMS_APP_PASSWORD, "", "is 0 bytes long"),
        ] {
            let e = rule.check(&r, value).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(e.contains("vault:secret/data/sre#slack"), "{e}");
            assert!(value.is_empty() || !e.contains(value), "{e}");
        }
        API_TOKEN.check(&r, "0123456789abcdef").unwrap();
    }

    #[tokio::test]
    async fn a_file_secret_follows_its_file_and_refuses_a_bad_rotation() {
        let dir = std::env::temp_dir().join(format!("sre-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first-token-0123456789\n").unwrap();
        let secret = ServiceSecret::from_file(&API_TOKEN, &path).unwrap();
        assert_eq!(
            secret.get().await.unwrap().expose(),
            "first-token-0123456789"
        );
        std::fs::write(&path, "second-token-0123456789").unwrap();
        assert_eq!(
            secret.get().await.unwrap().expose(),
            "second-token-0123456789"
        );
        std::fs::write(&path, "tiny").unwrap();
        let e = secret.get().await.unwrap_err().to_string();
        assert!(e.contains("is 4 bytes long"), "{e}");
        assert!(!format!("{secret:?}").contains("token-0123"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
