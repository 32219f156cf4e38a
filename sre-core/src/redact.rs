//! The [`Redactor`]: every tool result passes it before a model, a log or the audit trail sees it.
//! The agent applies it itself, so a tool cannot opt out.

use std::borrow::Cow;

use regex::Regex;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// One rule: a pattern and the replacement (which may keep capture groups such as `${1}`).
#[derive(Debug, Clone)]
struct Rule {
    name: &'static str,
    pattern: Regex,
    replacement: String,
}

/// Removes secrets from text: API keys and bearer tokens, AWS access keys and secrets, private key
/// blocks, JWTs, passwords in URLs, `KEY=value` pairs whose key names a secret, plus any extra
/// patterns the user configures.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// Quick pre-check: if none of these substrings occurs (case-insensitively), the text is clean.
    any: Regex,
}

/// A pattern the redactor could not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid redaction pattern {pattern:?}: {message}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// The regex engine's message.
    pub message: String,
}

// Names of settings whose values are secrets.
const SECRET_KEY_NAMES: &str = r"[A-Za-z0-9_.\-]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API[_-]?KEY|ACCESS[_-]?KEY|PRIVATE[_-]?KEY|CREDENTIALS?|AUTHORIZATION|AUTH[_-]?KEY)[A-Za-z0-9_.\-]*";

fn builtin() -> Vec<(&'static str, String, String)> {
    vec![
        (
            "private-key",
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)".into(),
            format!("-----BEGIN PRIVATE KEY-----{REDACTED}-----END PRIVATE KEY-----"),
        ),
        (
            "jwt",
            r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*".into(),
            REDACTED.into(),
        ),
        (
            "bearer",
            r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]{8,}=*".into(),
            format!("${{1}}${{2}}{REDACTED}"),
        ),
        (
            "basic-auth",
            r"(?i)\b(basic)(\s+)[A-Za-z0-9+/]{8,}=*".into(),
            format!("${{1}}${{2}}{REDACTED}"),
        ),
        (
            "url-password",
            r"\b([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]+:)[^@/\s]+@".into(),
            format!("${{1}}{REDACTED}@"),
        ),
        (
            "aws-access-key-id",
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b".into(),
            REDACTED.into(),
        ),
        (
            "api-key",
            r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}|gsk_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9\-]{10,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|AIza[A-Za-z0-9_\-]{30,}|glpat-[A-Za-z0-9_\-]{20,})".into(),
            REDACTED.into(),
        ),
        (
            // KEY=value, KEY: value, "key": "value" where the key names a secret.
            "secret-assignment",
            format!(
                r#"(?i)(["']?\b{SECRET_KEY_NAMES}["']?\s*[:=]\s*(?:(?:bearer|basic|token)\s+)?)("[^"\n]*"|'[^'\n]*'|[^\s,;}}\]]+)"#
            ),
            format!("${{1}}{REDACTED}"),
        ),
        (
            // A bare AWS secret access key: 40 base64 characters next to a hint word.
            "aws-secret-key",
            r"(?i)(aws.{0,20}?secret.{0,20}?\W)([A-Za-z0-9/+=]{40})\b".into(),
            format!("${{1}}{REDACTED}"),
        ),
    ]
}

impl Default for Redactor {
    #[expect(
        clippy::expect_used,
        reason = "the built-in patterns are constants, compiled by every test run"
    )]
    fn default() -> Self {
        Self::with_patterns(std::iter::empty::<&str>())
            .expect("built-in redaction patterns compile")
    }
}

impl Redactor {
    /// The built-in rules plus `extra` patterns (regex syntax); a match of an extra pattern is
    /// replaced whole.
    ///
    /// # Errors
    /// When a pattern does not compile.
    pub fn with_patterns<I, S>(extra: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let compile = |p: &str| {
            Regex::new(p).map_err(|e| PatternError {
                pattern: p.to_owned(),
                message: e.to_string(),
            })
        };
        let mut rules = Vec::new();
        for (name, pattern, replacement) in builtin() {
            rules.push(Rule {
                name,
                pattern: compile(&pattern)?,
                replacement,
            });
        }
        let mut extra_sources = Vec::new();
        for p in extra {
            let p = p.as_ref();
            rules.push(Rule {
                name: "custom",
                pattern: compile(p)?,
                replacement: REDACTED.into(),
            });
            extra_sources.push(format!("(?:{p})"));
        }
        // Cheap gate: the built-in rules all need one of these; the extra patterns are added as is.
        let mut gate = vec![
            r"(?i)PRIVATE KEY|eyJ|bearer|token|basic|://|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|sk-|gsk_|xox|gh[pousr]_|github_pat_|AIza|glpat-|pass|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth"
                .to_owned(),
        ];
        gate.extend(extra_sources);
        let any = compile(&gate.join("|"))?;
        Ok(Self { rules, any })
    }

    /// The text with every secret replaced by `[REDACTED]`. Borrows when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.any.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = Cow::Borrowed(text);
        for rule in &self.rules {
            if let Cow::Owned(s) = rule.pattern.replace_all(&out, rule.replacement.as_str()) {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// Names of the rules that would fire on `text` (for tests and diagnostics; never the secret).
    pub fn matching_rules(&self, text: &str) -> Vec<&'static str> {
        self.rules
            .iter()
            .filter(|r| r.pattern.is_match(text))
            .map(|r| r.name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> String {
        Redactor::default().redact(text).into_owned()
    }

    fn assert_gone(text: &str, secret: &str) {
        let out = r(text);
        assert!(!out.contains(secret), "secret survived: {out}");
        assert!(out.contains(REDACTED), "no marker: {out}");
    }

    #[test]
    fn clean_text_is_borrowed_untouched() {
        let text = "pod shop/web-1 CrashLoopBackOff exit 1 (Error), 5 restarts";
        assert!(matches!(Redactor::default().redact(text), Cow::Borrowed(_)));
    }

    #[test]
    fn api_keys() {
        assert_gone(
            "using key sk-proj-abcdefghijklmnopqrstuvwxyz0123 now",
            "abcdefghijklmnop",
        );
        assert_gone(
            "GROQ gsk_0123456789abcdefghijABCDEFGHIJ",
            "0123456789abcdef",
        );
        assert_gone(
            "token ghp_0123456789abcdefghijABCDEFGHIJ0123",
            "0123456789abcdefghij",
        );
        assert_gone(
            r#"{"api-key": "3f1e9c0d8b7a6f5e4d3c2b1a09f8e7d6"}"#,
            "3f1e9c0d8b7a",
        );
    }

    #[test]
    fn bearer_tokens() {
        let out = r("Authorization: Bearer abc.DEF-123_456~789/xyz==");
        assert!(!out.contains("abc.DEF"), "{out}");
        assert!(out.contains("Bearer [REDACTED]"), "{out}");
    }

    #[test]
    fn aws_keys() {
        assert_gone("id AKIAIOSFODNN7EXAMPLE in log", "AKIAIOSFODNN7EXAMPLE");
        assert_gone(
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI",
        );
        assert_gone(
            "aws secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI",
        );
    }

    #[test]
    fn private_key_blocks() {
        let text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----\ndone";
        let out = r(text);
        assert!(!out.contains("MIIEowIBAAKCAQEA7"), "{out}");
        assert!(out.ends_with("done"), "{out}");
        // A block cut off by a log tail is still removed.
        assert_gone(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA",
            "b3BlbnNzaC1rZXktdjEA",
        );
    }

    #[test]
    fn jwts() {
        assert_gone(
            "sa token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl end",
            "eyJzdWIiOiJzeXN0ZW0ifQ",
        );
    }

    #[test]
    fn passwords_in_urls() {
        let out = r("DATABASE at postgres://app:hunter2@db.shop:5432/orders");
        assert_eq!(
            out,
            "DATABASE at postgres://app:[REDACTED]@db.shop:5432/orders"
        );
    }

    #[test]
    fn env_pairs() {
        let out = r("DB_PASSWORD=hunter2 LOG_LEVEL=debug STRIPE_SECRET='s3cr3t v' other");
        assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
        assert!(out.contains("LOG_LEVEL=debug"), "{out}");
        assert!(out.contains("DB_PASSWORD=[REDACTED]"), "{out}");
        let out = r(r#"{"password": "hunter2", "user": "app"}"#);
        assert_eq!(out, r#"{"password": [REDACTED], "user": "app"}"#);
    }

    #[test]
    fn custom_patterns() {
        let red = Redactor::with_patterns([r"ACME-[0-9]{6}"]).unwrap();
        assert_eq!(
            red.redact("license ACME-123456 ok"),
            "license [REDACTED] ok"
        );
        assert_eq!(red.matching_rules("ACME-123456"), vec!["custom"]);
        let bad = Redactor::with_patterns(["(unclosed"]).unwrap_err();
        assert!(bad.to_string().contains("(unclosed"));
    }
}
