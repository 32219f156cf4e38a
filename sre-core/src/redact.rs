//! The [`Redactor`]: every tool result passes it before a model, a log or the audit trail sees it.
//! The agent applies it itself, so a tool cannot opt out.
//!
//! How it works. Each built-in rule has a few cheap keywords, and one [`RegexSet`] pass over the
//! text tells which rules can fire at all, so clean text costs that one pass and comes back
//! borrowed. Each rule that can fire reports the byte ranges of secrets in the *original* text;
//! the ranges are merged and each merged range is replaced by [`REDACTED`] once. Nothing is
//! redacted twice (no `[REDACTED]]`), and what surrounds a secret (the key, the quotes, the host
//! of a URL) stays readable.
//!
//! There are three kinds of rule:
//! - token formats that are secret wherever they appear: vendor token prefixes, JWTs, PEM private
//!   keys, passwords in URLs, `Authorization` credentials, passwords on database and SSH command
//!   lines;
//! - values next to a key that names a secret: `KEY=value`, `key: value`, `"key": "value"`,
//!   `--flag value`, `<key>value</key>`, Kubernetes `name:`/`value:` env pairs and cookies. The key
//!   is split into words and classified, and keys that only *refer to* a secret (`secretName`,
//!   `TOKEN_FILE`, `password_policy`, `prompt_tokens`) are left alone, as are placeholder values
//!   (`true`, `${VAR}`, `<set to the key ...>`);
//! - values next to a key that only hints at a secret (`key`, `auth`, `session`, `hmac`): these
//!   are redacted only when they look random (base64 or hex alphabet, at least 16 characters, a
//!   digit, and high Shannon entropy), so `key: app.kubernetes.io/name` survives.
//!
//! The rules were written for this crate. Their shape follows public secret scanners: gitleaks'
//! rule set (a keyword pre-check per rule, vendor token prefixes, the `generic-api-key` rule with
//! its entropy limit and allow-list of key names that are not secrets), trufflehog's detector
//! prefixes, and detect-secrets' keyword plugin (secret-ish key names, placeholder values) and
//! high-entropy-string plugins (Shannon entropy limits per alphabet).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use regex::{Regex, RegexSet};

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// How many passes of the rules [`Redactor::redact`] makes before it withholds the whole text.
/// One pass finds nearly everything, a second what the first one's redactions uncovered.
const MAX_PASSES: usize = 4;

/// Removes secrets from text: vendor API keys and tokens, AWS keys, private key blocks, JWTs,
/// passwords in URLs and on command lines, `Authorization` and cookie values, values of settings
/// whose name says they are secret, random-looking values of settings whose name hints at a
/// secret, plus any extra patterns the user configures.
///
/// The built-in rules are compiled once per process; `Redactor::default()` is cheap.
#[derive(Debug, Clone)]
pub struct Redactor {
    builtin: &'static Builtin,
    custom: Vec<Regex>,
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
        let builtin = builtin()?;
        let custom = extra
            .into_iter()
            .map(|p| compile(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { builtin, custom })
    }

    /// The text with every secret replaced by [`REDACTED`]. Borrows when nothing matched.
    ///
    /// Redacting the result again changes nothing. A redaction can change how the rules read the
    /// text around it (a JWT that looked like the next `name: ` of a line becomes
    /// `[REDACTED]`, so the line's value now runs to its end), so the rules run again on the
    /// redacted text until nothing more is found. A line that
    /// still changes after four passes (values nested in quotes of different kinds, one
    /// layer unwrapped per pass) is withheld whole, and the other lines kept: one planted log
    /// line must not take the rest of the evidence with it. Only if that does not settle either
    /// is the whole text withheld: failing closed.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_within(text, MAX_PASSES)
    }

    /// [`redact`](Self::redact) with at most `passes` passes before lines are withheld.
    fn redact_within<'a>(&self, text: &'a str, passes: usize) -> Cow<'a, str> {
        let Cow::Owned(out) = self.redact_pass(text) else {
            return Cow::Borrowed(text);
        };
        let unsettled = match self.settle(out, passes) {
            Ok(done) => return Cow::Owned(done),
            Err(unsettled) => unsettled,
        };
        match self.settle(self.withhold_lines(&unsettled), passes) {
            Ok(done) => Cow::Owned(done),
            Err(_) => Cow::Owned(REDACTED.to_owned()),
        }
    }

    /// Passes over `out` until one changes nothing (`Ok`), or `Err` with the text after
    /// `passes - 1` passes that all changed it.
    fn settle(&self, mut out: String, passes: usize) -> Result<String, String> {
        for _ in 1..passes {
            match self.redact_pass(&out) {
                Cow::Owned(next) if next != out => out = next,
                _ => return Ok(out),
            }
        }
        Err(out)
    }

    /// `text` with each line that a rule still finds something in replaced whole by
    /// [`REDACTED`] (a secret spread over lines takes all of them).
    fn withhold_lines(&self, text: &str) -> String {
        let lines = self
            .hits(text)
            .into_iter()
            .map(|h| {
                let start = text[..h.range.start].rfind('\n').map_or(0, |i| i + 1);
                let end = text[h.range.end..]
                    .find('\n')
                    .map_or(text.len(), |i| h.range.end + i);
                start..end
            })
            .collect();
        replace_ranges(text, lines)
    }

    /// For a message that quotes untrusted input (a parser's error naming the value it refused):
    /// [`redact`](Self::redact) of the whole message, then of each run of token characters
    /// (letters, digits, `_-./+=`) standing alone. A message glues the input's text to its own
    /// (`field status: "Token=…" is not…`, `images.<key>: invalid type…`), and a rule's
    /// boundaries can then miss a credential that it finds in the input's own token.
    pub fn redact_message(&self, message: &str) -> String {
        let whole = self.redact(message);
        let mut out = String::with_capacity(whole.len());
        let mut run_start = None;
        for (i, c) in whole.char_indices() {
            let token = c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '+' | '=');
            match (token, run_start) {
                (true, None) => run_start = Some(i),
                (false, Some(start)) => {
                    out.push_str(&self.redact(&whole[start..i]));
                    run_start = None;
                    out.push(c);
                }
                (false, None) => out.push(c),
                (true, Some(_)) => {}
            }
        }
        if let Some(start) = run_start {
            out.push_str(&self.redact(&whole[start..]));
        }
        out
    }

    /// A deserializer's error message, safe to show: the input values serde quotes whole
    /// (`invalid type: string "…"`) left out ([`elide_quoted_values`](crate::text::elide_quoted_values)),
    /// then the rest through [`redact_message`](Self::redact_message).
    pub fn redact_parse_error(&self, message: &str) -> String {
        self.redact_message(&crate::text::elide_quoted_values(message))
    }

    /// One pass of the rules over `text`: each secret they find replaced by [`REDACTED`].
    fn redact_pass<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let hits = self.hits(text);
        if hits.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(replace_ranges(
            text,
            hits.into_iter().map(|h| h.range).collect(),
        ))
    }

    /// `value` with every string in it (keys kept) redacted: typed tool data passes the same
    /// rules as text.
    pub fn redact_value(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s).into_owned()),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.redact_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Names of the rules that would redact something in `text`, in rule order (for tests and
    /// diagnostics; never the secret). Extra patterns are named `custom`.
    pub fn matching_rules(&self, text: &str) -> Vec<&'static str> {
        let rules = &self.builtin.rules;
        let mut fired = vec![false; rules.len() + 1];
        for hit in self.hits(text) {
            fired[hit.rule.min(rules.len())] = true;
        }
        let mut names: Vec<&'static str> = rules
            .iter()
            .zip(&fired)
            .filter(|(_, f)| **f)
            .map(|(r, _)| r.name)
            .collect();
        names.dedup();
        if fired[rules.len()] {
            names.push("custom");
        }
        names
    }

    /// Every secret range in `text`, unsorted and possibly overlapping.
    fn hits(&self, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        if !self.builtin.any.is_match(text) && self.custom.is_empty() {
            return hits;
        }
        let candidates = self.builtin.gate.matches(text);
        for index in &candidates {
            self.builtin.rules[index].collect(text, index, &mut hits);
        }
        let custom_index = self.builtin.rules.len();
        // A custom pattern may match inside a marker (`[A-Z]{4,}` in `[REDACTED]`): such a match
        // is no secret, and replacing it would never settle.
        let markers: Vec<Range<usize>> = if self.custom.is_empty() {
            Vec::new()
        } else {
            text.match_indices(REDACTED)
                .map(|(i, m)| i..i + m.len())
                .collect()
        };
        let in_marker = |m: &regex::Match<'_>| {
            let after = markers.partition_point(|k| k.start <= m.start());
            after > 0 && m.end() <= markers[after - 1].end
        };
        for pattern in &self.custom {
            hits.extend(
                pattern
                    .find_iter(text)
                    .filter(|m| !m.is_empty() && !in_marker(m))
                    .map(|m| Hit {
                        range: m.range(),
                        rule: custom_index,
                    }),
            );
        }
        hits
    }
}

/// `text` with each of `ranges` (unsorted, possibly overlapping) replaced by [`REDACTED`];
/// overlapping and touching ranges are merged, so each merged range gets one marker.
fn replace_ranges(text: &str, mut ranges: Vec<Range<usize>>) -> String {
    ranges.sort_unstable_by_key(|r| (r.start, r.end));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut current: Option<Range<usize>> = None;
    for range in ranges {
        match &mut current {
            Some(c) if range.start <= c.end => c.end = c.end.max(range.end),
            _ => {
                if let Some(c) = current.replace(range) {
                    out.push_str(&text[copied..c.start]);
                    out.push_str(REDACTED);
                    copied = c.end;
                }
            }
        }
    }
    if let Some(c) = current {
        out.push_str(&text[copied..c.start]);
        out.push_str(REDACTED);
        copied = c.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// A secret's byte range and the index of the rule that found it.
#[derive(Debug)]
struct Hit {
    range: Range<usize>,
    rule: usize,
}

/// The compiled built-in rules and the keyword gate (entry `i` of `gate` guards `rules[i]`).
#[derive(Debug)]
struct Builtin {
    rules: Vec<Rule>,
    gate: RegexSet,
    /// The union of the gates: one search with literal prefilters that rules clean text out.
    any: Regex,
}

#[derive(Debug)]
struct Rule {
    name: &'static str,
    regex: Regex,
    find: Find,
    /// Whether `regex` has a group named `s` holding the secret (otherwise the whole match is).
    secret_group: bool,
}

/// What a rule's match means.
#[derive(Debug, Clone, Copy)]
enum Find {
    /// The match (or group `s`) is a secret.
    Token,
    /// The match (or group `s`) is a secret when the check accepts it.
    Checked(fn(&str) -> bool),
    /// The match is a setting's name, a closing quote and a separator (`key=`, `"key": `, ...);
    /// the value follows it.
    Assignment,
    /// The match is a command-line flag and the blanks after it; the value follows it.
    Flag,
    /// Group `key` is the name in a `name: X` / `value: Y` pair; the value follows the match.
    NameValue,
    /// Group `key` names an XML element whose text is group `s`.
    Element,
}

struct Spec {
    name: &'static str,
    /// Cheap keywords (regex syntax) that every match of `pattern` contains.
    gate: &'static str,
    pattern: String,
    find: Find,
}

fn spec(name: &'static str, gate: &'static str, pattern: &str, find: Find) -> Spec {
    Spec {
        name,
        gate,
        pattern: pattern.to_owned(),
        find,
    }
}

fn compile(pattern: &str) -> Result<Regex, PatternError> {
    Regex::new(pattern).map_err(|e| PatternError {
        pattern: pattern.to_owned(),
        message: e.to_string(),
    })
}

fn builtin() -> Result<&'static Builtin, PatternError> {
    static BUILTIN: OnceLock<Result<Builtin, PatternError>> = OnceLock::new();
    BUILTIN
        .get_or_init(|| {
            let specs = specs();
            let gate = RegexSet::new(specs.iter().map(|s| s.gate)).map_err(|e| PatternError {
                pattern: "keyword gate".to_owned(),
                message: e.to_string(),
            })?;
            let union: Vec<String> = specs.iter().map(|s| format!("(?:{})", s.gate)).collect();
            let any = compile(&union.join("|"))?;
            let rules = specs
                .into_iter()
                .map(|s| {
                    let regex = compile(&s.pattern)?;
                    let secret_group = regex.capture_names().any(|n| n == Some("s"));
                    Ok(Rule {
                        name: s.name,
                        regex,
                        find: s.find,
                        secret_group,
                    })
                })
                .collect::<Result<_, PatternError>>()?;
            Ok(Builtin { rules, gate, any })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Substrings that every key, flag or element name worth looking at contains (case-insensitive).
const KEY_WORDS: &str =
    "pass|pw|secret|token|key|auth|cred|sig|sid|cookie|sess|sas|hmac|dockercfg|dockerconfigjson";
/// The gate for the rules built on [`KEY_WORDS`].
const KEY_GATE: &str =
    "(?i)pass|pw|secret|token|key|auth|cred|sig|sid|cookie|sess|sas|hmac|dockercfg";
/// The gate for `--flag value`: a dash right before a key word's run.
const FLAG_GATE: &str =
    r"(?i)-[a-z0-9_.\-]*(?:pass|pw|secret|token|key|auth|cred|sig|sid|cookie|sess|sas|hmac)";
/// A value after `-p`, `-a`, `-u user:` on a command line: quoted, or up to whitespace.
const CLI_VALUE: &str = r#"(?P<s>"[^"\n]*"|'[^'\n]*'|[^\s"']+)"#;

#[expect(
    clippy::too_many_lines,
    reason = "one table of rules reads best in one place"
)]
fn specs() -> Vec<Spec> {
    use Find::{Assignment, Checked, Element, Flag, NameValue, Token};
    vec![
        // PEM private keys (RSA, EC, OPENSSH, ENCRYPTED, PGP ... BLOCK), also cut off by a log
        // tail; the header and footer stay so a reader knows what was there.
        spec(
            "private-key",
            "BEGIN",
            r"-----BEGIN[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----(?P<s>[\s\S]*?)(?:-----END[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----|\z)",
            Checked(not_placeholder),
        ),
        // The body of a key whose BEGIN line fell off a log tail: base64 lines right before its
        // END line.
        spec(
            "private-key",
            "END",
            r"(?m)(?P<s>(?:^[A-Za-z0-9+/=]{16,}\r?\n)+)-----END[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----",
            Checked(not_placeholder),
        ),
        spec(
            "jwt",
            "eyJ",
            r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
            Token,
        ),
        // `scheme://user:password@host`: the user may be empty and the password may hold `@`, `/`
        // and `%40`; the password ends at the last `@` that a host follows.
        spec(
            "url-password",
            "://",
            r#"(?i)\b[a-z][a-z0-9+.\-]{1,30}://[^\s:/?#@"'<>]*:(?P<s>[^\s"'<>]*)@[a-z0-9\-._~%\[\]]+(?::\d{1,5})?(?:[/?#\s"'<>),;\\]|\z)"#,
            Checked(is_url_password),
        ),
        // Go's MySQL DSN: `user:password@tcp(host:3306)/db`, which has no scheme.
        spec(
            "url-password",
            r"@(?:tcp|udp|unix)\(",
            r#"(?m)(?:^|[\s"'=])[A-Za-z0-9_.\-]+:(?P<s>[^\s"']+)@(?:tcp|udp|unix)\("#,
            Checked(not_placeholder),
        ),
        spec(
            "bearer-token",
            "(?i)bearer",
            r"(?i)\bbearer[ \t]+(?P<s>[A-Za-z0-9\-._~+/]{8,}=*)",
            Checked(looks_random),
        ),
        spec(
            "basic-auth",
            "(?i)basic",
            r"(?i)\bbasic[ \t]+(?P<s>[A-Za-z0-9+/]{8,}={0,2})",
            Checked(is_basic_credential),
        ),
        spec(
            "aws-access-key-id",
            "A3T|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA",
            r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
            Token,
        ),
        // A 40-character AWS secret access key near the words "aws" and "secret", in prose.
        spec(
            "aws-secret-key",
            "(?i)aws",
            r"(?i)aws[^\n]{0,20}?secret[^\n]{0,20}?[^A-Za-z0-9/+=](?P<s>[A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|\z)",
            Token,
        ),
        spec(
            "stripe",
            "sk_live|sk_test|sk_prod|rk_live|rk_test|rk_prod|whsec_",
            r"\b(?:[sr]k_(?:live|test|prod)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{24,})",
            Token,
        ),
        // OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-), Anthropic (sk-ant-), Groq, xAI.
        spec(
            "llm-api-key",
            "sk-|gsk_|xai-",
            r"\b(?:sk-(?:ant|proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}|sk-[A-Za-z0-9]{32,}|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{40,})",
            Token,
        ),
        spec(
            "github",
            "ghp_|gho_|ghu_|ghs_|ghr_|github_pat_",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
            Token,
        ),
        spec(
            "gitlab",
            "glpat-|gldt-|glrt-|glptt-|glsoat-|glcbt-|glft-|glimt-|glagent-|gloas-|glffct-",
            r"\bgl(?:pat|dt|rt|ptt|soat|cbt|ft|imt|agent|oas|ffct)-[A-Za-z0-9_\-]{20,}",
            Token,
        ),
        spec(
            "slack-token",
            "xox|xapp-",
            r"\b(?:xox(?:[abposr]|e(?:\.xox[bp])?)-[A-Za-z0-9\-]{10,}|xapp-\d-[A-Za-z0-9\-]{10,})",
            Token,
        ),
        spec(
            "slack-webhook",
            r"(?i)hooks\.slack\.com",
            r"(?i)hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9+/_\-]{16,})",
            Token,
        ),
        spec(
            "discord-webhook",
            "(?i)discord",
            r"(?i)discord(?:app)?\.com/api/webhooks/(?P<s>\d+/[A-Za-z0-9_\-]{20,})",
            Token,
        ),
        spec(
            "teams-webhook",
            "(?i)webhook",
            r#"(?i)(?:\.webhook\.office\.com/webhookb2|outlook\.office(?:365)?\.com/webhook(?:b2)?)/(?P<s>[^\s"'<>]{16,})"#,
            Token,
        ),
        // Google API keys, OAuth client secrets, access and refresh tokens.
        spec(
            "google",
            r"AIza|GOCSPX-|ya29\.|1//0",
            r"\b(?:AIza[A-Za-z0-9_\-]{30,}|GOCSPX-[A-Za-z0-9_\-]{20,}|ya29\.[A-Za-z0-9_\-]{20,}|1//0[A-Za-z0-9_\-]{30,})",
            Token,
        ),
        spec("npm", "npm_", r"\bnpm_[A-Za-z0-9]{36,}", Token),
        spec("pypi", "pypi-", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}", Token),
        spec(
            "huggingface",
            "hf_|api_org_",
            r"\b(?:hf|api_org)_[A-Za-z0-9]{30,}",
            Token,
        ),
        spec(
            "sendgrid",
            r"SG\.",
            r"\bSG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}",
            Token,
        ),
        spec("mailgun", "key-", r"\bkey-[0-9a-f]{32}\b", Token),
        spec("mailchimp", "-us", r"\b[0-9a-f]{32}-us\d{1,2}\b", Token),
        spec("twilio", "SK", r"\bSK[0-9a-fA-F]{32}\b", Token),
        spec(
            "shopify",
            "shpat_|shpca_|shppa_|shpss_",
            r"\bshp(?:at|ca|pa|ss)_[A-Fa-f0-9]{32}\b",
            Token,
        ),
        spec(
            "digitalocean",
            "_v1_",
            r"\bdo[opr]_v1_[a-f0-9]{64}\b",
            Token,
        ),
        spec(
            "atlassian",
            "ATATT3|ATCTT3",
            r"\bAT(?:ATT|CTT)3[A-Za-z0-9_\-=]{50,}",
            Token,
        ),
        spec(
            "azure-client-secret",
            "Q~",
            r#"(?:^|[\s"'`=:(,>\\])(?P<s>[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34})(?:$|[\s"'`<),\\])"#,
            Token,
        ),
        // HashiCorp Vault and Terraform Cloud, Grafana, Sentry, New Relic, Linear, Postman,
        // Doppler, Pulumi, Databricks, age, Square.
        spec(
            "vendor-token",
            r"hvs\.|hvb\.|atlasv1|glsa_|glc_|sntry|NRAK-|lin_api_|PMAK-|dp\.|pul-|dapi|AGE-SECRET-KEY-|sq0",
            r"\b(?:hv[sb]\.[A-Za-z0-9_\-]{24,}|[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2}|sntry[su]_[A-Za-z0-9+/=_\-]{30,}|NRAK-[A-Z0-9]{27}|lin_api_[A-Za-z0-9]{40}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}|dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}|pul-[a-f0-9]{40}|dapi[a-f0-9]{32}(?:-\d)?|AGE-SECRET-KEY-1[02-9ac-hj-np-zAC-HJ-NP-Z]{58}|sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,})",
            Token,
        ),
        // Passwords that command lines take without a `--password` flag.
        spec(
            "cli-password",
            "mysql|mariadb",
            &format!(
                r"\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlcheck|mysqlshow|mysqlsh|mariadb|mariadb-dump|mariadb-admin)\b[^\n;|&]*?[ \t]-p{CLI_VALUE}"
            ),
            Checked(not_placeholder),
        ),
        spec(
            "cli-password",
            "sshpass",
            &format!(r"\bsshpass\b[^\n;|&]*?[ \t]-p[ \t]*{CLI_VALUE}"),
            Checked(not_placeholder),
        ),
        spec(
            "cli-password",
            "redis-cli",
            &format!(r"\bredis-cli\b[^\n;|&]*?[ \t]-a[ \t]+{CLI_VALUE}"),
            Checked(not_placeholder),
        ),
        spec(
            "cli-password",
            "login",
            &format!(
                r"\b(?:docker|podman|nerdctl|buildah|skopeo|oras|crane|helm)\b[^\n;|&]*?\blogin\b[^\n;|&]*?[ \t]-p[ \t]+{CLI_VALUE}"
            ),
            Checked(not_placeholder),
        ),
        spec(
            "cli-password",
            "curl|wget",
            r#"\b(?:curl|wget)\b[^\n;|&]*?[ \t](?:-u|--user|-U|--proxy-user)(?:[ \t]*|=)["']?[^\s:"']*:(?P<s>[^\s"']+)"#,
            Checked(not_placeholder),
        ),
        spec(
            "secret-flag",
            FLAG_GATE,
            &format!(
                r#"(?i-u)--?[a-z0-9_.\-]*(?:{KEY_WORDS})[a-z0-9_.\-]*(?:[ \t]+|["']?[ \t]*,[ \t]*|["']?\r?\n[ \t]*-[ \t]+)"#
            ),
            Flag,
        ),
        spec(
            "secret-env-pair",
            "(?i)value",
            &format!(
                r#"(?i)\b(?:name|key)(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?["'])?(?P<key>[a-z0-9_.\-]*(?:{KEY_WORDS})[a-z0-9_.\-]*)(?:\\?["'])?[ \t]*,?\s*(?:\\?["'])?(?P<vk>value)(?P<vq>\\?["'])?[ \t]*[:=]"#
            ),
            NameValue,
        ),
        spec(
            "secret-element",
            "</",
            &format!(
                r"(?i)<(?P<key>[a-z0-9_.:\-]*(?:{KEY_WORDS})[a-z0-9_.:\-]*)(?:\s[^<>]*)?>(?P<s>[^<\n]+)</"
            ),
            Element,
        ),
        spec(
            "secret-assignment",
            KEY_GATE,
            &format!(
                r#"(?i-u)[a-z0-9_.\-]*(?:{KEY_WORDS})[a-z0-9_.\-]*(?:\\?["']|%2[27])?[ \t]*(?::=|=>|=|:|%3[ad])"#
            ),
            Assignment,
        ),
    ]
}

impl Rule {
    fn collect(&self, text: &str, index: usize, hits: &mut Vec<Hit>) {
        let mut push = |range: Range<usize>| {
            if !range.is_empty() {
                hits.push(Hit { range, rule: index });
            }
        };
        match self.find {
            Find::Token if !self.secret_group => {
                self.regex.find_iter(text).for_each(|m| push(m.range()));
            }
            Find::Token | Find::Checked(_) => {
                let mut at = 0;
                while at <= text.len() {
                    let Some(caps) = self.regex.captures_at(text, at) else {
                        break;
                    };
                    let Some(all) = caps.get(0) else {
                        break;
                    };
                    let m = caps.name("s").unwrap_or(all);
                    let next_char =
                        all.start() + text[all.start()..].chars().next().map_or(1, char::len_utf8);
                    if let Find::Checked(check) = self.find
                        && !check(m.as_str())
                    {
                        // A rejected candidate can hide a real one that starts inside it
                        // (`x.y://z://user:password@host`): search again from its next character.
                        at = next_char;
                        continue;
                    }
                    push(m.range());
                    at = all.end().max(next_char);
                }
            }
            // These two read their parts from the match itself: a plain search is several times
            // cheaper than one that resolves capture groups.
            Find::Assignment => {
                for m in self.regex.find_iter(text) {
                    let parts = AssignmentMatch::parse(m.as_str());
                    let key = m.start()..m.start() + parts.key_len;
                    assignment(text, key, parts.quote, parts.spaced, parts.sep, m.end())
                        .into_iter()
                        .for_each(&mut push);
                }
            }
            Find::Flag => {
                for m in self.regex.find_iter(text) {
                    let key_len = m.as_str().bytes().take_while(|b| is_key_byte(*b)).count();
                    flag(text, m.start()..m.start() + key_len, m.end())
                        .into_iter()
                        .for_each(&mut push);
                }
            }
            Find::NameValue => {
                for caps in self.regex.captures_iter(text) {
                    if let (Some(key), Some(vk), Some(all)) =
                        (caps.name("key"), caps.name("vk"), caps.get(0))
                    {
                        let class = classify(key.as_str());
                        let whole_line = caps.name("vq").is_none() && starts_line(text, vk.start());
                        let mode = Mode {
                            extent: if whole_line {
                                Extent::Line
                            } else {
                                Extent::Token
                            },
                            encoded: false,
                            column: if whole_line {
                                column(text, vk.start())
                            } else {
                                0
                            },
                        };
                        if let Some(value) = read_value(text, all.end(), mode) {
                            secret_ranges(text, &value, class, mode)
                                .into_iter()
                                .for_each(&mut push);
                        }
                    }
                }
            }
            Find::Element => {
                for caps in self.regex.captures_iter(text) {
                    if let (Some(key), Some(s)) = (caps.name("key"), caps.name("s")) {
                        let value = Value {
                            range: trim_range(text, s.range()),
                            quoted: true,
                        };
                        let mode = Mode {
                            extent: Extent::Token,
                            encoded: false,
                            column: 0,
                        };
                        secret_ranges(text, &value, classify(key.as_str()), mode)
                            .into_iter()
                            .for_each(&mut push);
                    }
                }
            }
        }
    }
}

/// The parts of an assignment match: `key`, an optional closing quote, blanks, the separator.
struct AssignmentMatch<'a> {
    key_len: usize,
    quote: Option<&'a str>,
    spaced: bool,
    sep: &'a str,
}

impl<'a> AssignmentMatch<'a> {
    /// Splits a match of the assignment regex, reading from its end.
    fn parse(m: &'a str) -> Self {
        let sep_len = if m.ends_with(":=") || m.ends_with("=>") {
            2
        } else if m.as_bytes().get(m.len().wrapping_sub(3)) == Some(&b'%') {
            3
        } else {
            1
        };
        let sep = &m[m.len().saturating_sub(sep_len)..];
        let before_sep = &m[..m.len() - sep.len()];
        let unspaced = before_sep.trim_end_matches([' ', '\t']);
        let spaced = unspaced.len() < before_sep.len();
        let key_len = unspaced.bytes().take_while(|b| is_key_byte(*b)).count();
        let quote = Some(&unspaced[key_len..]).filter(|q| !q.is_empty());
        Self {
            key_len,
            quote,
            spaced,
            sep,
        }
    }
}

/// A byte of a key or flag name.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// The secret ranges of one `key <sep> value` match. `key` is the key's byte range (the regex
/// run of key characters), `quote` the quote that closed the key, `spaced` whether blanks stood
/// between the key and the separator, and `value_start` where the value begins.
fn assignment(
    text: &str,
    key: Range<usize>,
    quote: Option<&str>,
    spaced: bool,
    sep: &str,
    value_start: usize,
) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut key_start = key.start;
    let before = key_start.checked_sub(1).map(|i| bytes[i]);
    // `%26password%3D...`: the key run starts with the two hex digits of an escape.
    if before == Some(b'%') {
        if key.len() > 2
            && bytes[key_start].is_ascii_hexdigit()
            && bytes[key_start + 1].is_ascii_hexdigit()
        {
            key_start += 2;
        } else {
            return Vec::new();
        }
    }
    let key_text = &text[key_start..key.end];
    let encoded = sep.starts_with('%') || quote.is_some_and(|q| q.starts_with('%'));
    let key_quoted = quote.is_some()
        || key_start
            .checked_sub(1)
            .is_some_and(|i| matches!(bytes[i], b'"' | b'\''));
    let after = &text[value_start..];
    if (sep == "=" && after.starts_with('=')) || (sep == ":" && after.starts_with(':')) {
        return Vec::new();
    }
    if sep.eq_ignore_ascii_case(":") || sep.eq_ignore_ascii_case("%3a") {
        if after.starts_with("//") {
            return Vec::new(); // a URL scheme
        }
        let value_quoted = after.starts_with(['"', '\'']) || after.starts_with("\\\"");
        // `volume "db-password" : secret "x" not found` is prose; `"password" : "x"` is JSON.
        if spaced && !value_quoted {
            return Vec::new();
        }
        // `image: vault-token:1.2` is an image; `{Password:hunter2}` is a Go struct.
        let blank_after = after.starts_with([' ', '\t', '\n', '\r']) || after.is_empty();
        let slashed = before.is_some_and(|b| matches!(b, b'/' | b'@' | b':'));
        if !blank_after
            && !key_quoted
            && !value_quoted
            && (slashed
                || !key_text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Vec::new();
        }
    } else if before.is_some_and(|b| b == b'@') {
        return Vec::new();
    }
    let class = classify(key_text);
    if class == Class::Plain {
        return Vec::new();
    }
    let extent = if encoded || key_text.starts_with('-') {
        Extent::Token
    } else if class == Class::Cookie {
        Extent::WholeLine
    } else if !key_quoted && matches!(sep, "=" | ":") && starts_line(text, key_start) {
        Extent::Line
    } else {
        Extent::Token
    };
    let mode = Mode {
        extent,
        encoded,
        column: if extent == Extent::Line {
            column(text, key_start)
        } else {
            0
        },
    };
    match read_value(text, value_start, mode) {
        Some(value) => secret_ranges(text, &value, class, mode),
        None => Vec::new(),
    }
}

/// The secret ranges of one `--flag value` match.
fn flag(text: &str, key: Range<usize>, value_start: usize) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let boundary = key.start.checked_sub(1).is_none_or(|i| {
        matches!(
            bytes[i],
            b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'[' | b'(' | b',' | b'='
        )
    });
    if !boundary {
        return Vec::new();
    }
    let name = &text[key];
    // `-pS3cret` is mysql's password, not a flag named like a secret: single-dash flags
    // (Go style, `-db-password`) are lowercase.
    if !name.starts_with("--") && name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Vec::new();
    }
    let class = classify(name);
    if class == Class::Plain {
        return Vec::new();
    }
    let mode = Mode {
        extent: Extent::Token,
        encoded: false,
        column: 0,
    };
    match read_value(text, value_start, mode) {
        Some(value) if value.quoted || !text[value.range.clone()].starts_with('-') => {
            secret_ranges(text, &value, class, mode)
        }
        _ => Vec::new(),
    }
}

/// How strongly a key's name says that its value is secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Not a secret (or only a reference to one: `secretName`, `TOKEN_FILE`).
    Plain,
    /// Always a secret (`password`, `client_secret`, `*_TOKEN`, `*_KEY`).
    Secret,
    /// The shell's `PWD`: a secret unless the value is a path.
    Pwd,
    /// A secret when the value looks random (`key`, `auth`, `session`).
    Entropy,
    /// A cookie header: each cookie's value is a secret.
    Cookie,
}

/// Words of a key that make it secret wherever they stand.
#[rustfmt::skip]
const SECRET_WORDS: &[&str] = &[
    "password", "passwd", "passphrase", "passcode", "pass", "pw", "passin", "passout", "secret",
    "secrets", "token", "apikey", "credential", "credentials", "creds", "cred", "privatekey",
    "sig", "signature", "sas", "authorization",
];

/// Substrings of a word written without separators (`DBPASSWORD`, `apikey`) that make it secret.
#[rustfmt::skip]
const SECRET_PARTS: &[&str] = &[
    "password", "passwd", "passphrase", "secret", "apikey", "privatekey", "accountkey",
    "accesskey", "secretkey", "signingkey", "masterkey", "encryptionkey", "authkey", "authtoken",
    "accesstoken", "refreshtoken", "sessiontoken", "bearertoken", "credential", "dockerconfigjson",
    "dockercfg", "sessionid", "sessid",
];

/// Last words of keys that name something *about* a secret, not the secret (after gitleaks'
/// generic-api-key allow-list and the usual Kubernetes and Helm field names).
#[rustfmt::skip]
const REFERENCE_WORDS: &[&str] = &[
    "name", "names", "ref", "refs", "file", "files", "path", "paths", "dir", "url", "uri",
    "endpoint", "host", "id", "ids", "ttl", "timeout", "expiry", "expires", "expiration",
    "seconds", "length", "len", "size", "type", "types", "enabled", "enable", "disabled",
    "required", "policy", "policies", "count", "limit", "tokens", "mode", "format", "version",
    "algorithm", "alg", "header", "headers", "provider", "store", "source", "kind", "field", "env",
    "rotation", "manager", "helper", "location", "arn", "mount", "duration", "interval", "age",
    "at", "created", "updated", "status", "min", "max", "hint", "strength", "pattern", "regex",
    "template", "lifetime", "yaml", "yml", "json", "txt", "toml", "ini", "xml", "conf", "cfg",
    "pub", "crt", "cert", "csr", "log", "md", "stdin", "index", "prefix", "suffix", "selector",
    "namespace", "user", "username", "label", "issuer", "audience", "scope", "scopes", "region",
    "bucket", "backend", "volume", "volumes", "service", "fingerprint", "usage", "used", "valid",
    "validity", "reset", "changed", "last",
];

/// First words of keys that switch a feature rather than hold a secret (`--no-password`).
#[rustfmt::skip]
const SWITCH_WORDS: &[&str] = &[
    "existing", "no", "skip", "use", "enable", "disable", "allow", "require", "show", "hide",
    "print", "inject", "mount", "max", "min",
];

/// Words before `key` that make it a lookup key rather than a secret (`sortKey`, `topologyKey`).
#[rustfmt::skip]
const LOOKUP_KEY_WORDS: &[&str] = &[
    "public", "pub", "topology", "sort", "partition", "primary", "routing", "cache", "foreign",
    "hash", "range", "label", "lookup", "map", "index", "idempotency", "dedup", "row", "group",
    "node", "kms", "object", "s3", "bucket", "config", "message", "metadata", "cluster", "join",
    "shard", "dictionary", "dict", "sorting", "unique", "composite", "natural", "schema",
];

/// Words that hint at a secret without naming one.
#[rustfmt::skip]
const HINT_WORDS: &[&str] = &[
    "key", "keys", "session", "sess", "sid", "hmac", "oauth",
];

fn classify(key: &str) -> Class {
    let words = split_words(key);
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return Class::Plain;
    };
    let prev = words.len().checked_sub(2).map(|i| words[i].as_str());
    // `session_id` is a session id; every other `*_id` names something.
    if last == "id" && matches!(prev, Some("session" | "sess")) {
        return Class::Secret;
    }
    if REFERENCE_WORDS.contains(&last.as_str()) || SWITCH_WORDS.contains(&first.as_str()) {
        return Class::Plain;
    }
    if words.iter().any(|w| w == "cookie" || w == "cookies") {
        return Class::Cookie;
    }
    match (words.len(), last.as_str()) {
        (1, "oldpwd") => return Class::Plain,
        (1, "pwd") => return Class::Pwd,
        _ => {}
    }
    if last.ends_with("pwd")
        || words.iter().any(|w| {
            SECRET_WORDS.contains(&w.as_str())
                || (w.len() >= 6 && SECRET_PARTS.iter().any(|p| w.contains(p)))
        })
    {
        return Class::Secret;
    }
    if let (Some(prev), "key" | "keys") = (prev, last.as_str()) {
        return if LOOKUP_KEY_WORDS.contains(&prev) {
            Class::Entropy
        } else {
            Class::Secret
        };
    }
    if last.ends_with("key")
        || words
            .iter()
            .any(|w| HINT_WORDS.contains(&w.as_str()) || w.starts_with("auth"))
    {
        return Class::Entropy;
    }
    Class::Plain
}

/// Lowercase words of a key: split at non-alphanumerics and camel-case humps
/// (`clientSecret` → `client secret`, `APIKey` → `api key`, `DB_PASSWORD` → `db password`).
fn split_words(key: &str) -> Vec<String> {
    let bytes = key.as_bytes();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if b.is_ascii_uppercase() && !current.is_empty() {
            let prev = bytes[i - 1];
            let next_lower = bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                words.push(std::mem::take(&mut current));
            }
        }
        current.push(char::from(b.to_ascii_lowercase()));
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// How far an unquoted value runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extent {
    /// To the next blank or closing punctuation (`a=1 b=2`, `?a=1&b=2`, `{a: 1}`).
    Token,
    /// To the end of the line or the next `NAME=` pair on it (env files, YAML mappings).
    Line,
    /// To the end of the line (cookie headers, Digest credentials).
    WholeLine,
}

/// How to read a value.
#[derive(Debug, Clone, Copy)]
struct Mode {
    extent: Extent,
    /// The separator was URL-encoded, so `%26` (`&`) and friends end the value.
    encoded: bool,
    /// The key's column, which a YAML block scalar's lines are indented past.
    column: usize,
}

/// A value's content (inside its quotes, if any).
#[derive(Debug, Clone)]
struct Value {
    range: Range<usize>,
    quoted: bool,
}

/// Reads the value that starts at `start` (blanks skipped); `None` when there is none.
fn read_value(text: &str, start: usize, mode: Mode) -> Option<Value> {
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    let rest = &text[i..];
    let quote: Option<&str> = ["\\\"", "\\'", "\"", "'", "%22", "%27"]
        .into_iter()
        .find(|q| {
            rest.get(..q.len())
                .is_some_and(|r| r.eq_ignore_ascii_case(q))
        });
    let range = if let Some(q) = quote {
        let from = i + q.len();
        from..closing_quote(text, from, q)
    } else {
        match mode.extent {
            Extent::Token => i..token_end(text, i, mode.encoded),
            Extent::WholeLine => trim_range(text, i..line_end(text, i)),
            Extent::Line => {
                let range = trim_range(text, i..line_value_end(text, i));
                if is_block_indicator(&text[range.clone()]) {
                    block_scalar(text, line_end(text, i), mode.column)?
                } else {
                    range
                }
            }
        }
    };
    (!range.is_empty()).then_some(Value {
        range,
        quoted: quote.is_some(),
    })
}

/// Where the line that holds `from` ends: a newline, or a `\n` escape inside a JSON string.
fn line_end(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' | b'\r' => return i,
            b'\\' if matches!(bytes.get(i + 1), Some(b'n' | b'r')) => return i,
            _ => i += 1,
        }
    }
    i
}

/// Where a whole-line value that starts at `from` ends: at the line's end, or before a blank
/// that the next `NAME=` / `name: ` pair follows (`DB_PASSWORD=a b LOG_LEVEL=debug` ends at `b`).
fn line_value_end(text: &str, from: usize) -> usize {
    let bytes = text.as_bytes();
    let end = line_end(text, from);
    let mut i = from;
    while i < end {
        if matches!(bytes[i], b' ' | b'\t') {
            let next = i + bytes[i..end]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            let name_len = bytes[next..end]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                .count();
            let pair = match bytes.get(next + name_len) {
                Some(b'=') => true,
                Some(b':') => matches!(bytes.get(next + name_len + 1), Some(b' ' | b'\t')),
                _ => false,
            };
            if name_len > 0 && pair {
                return i;
            }
            i = next;
        } else {
            i += 1;
        }
    }
    end
}

/// Where a quoted value that starts at `from` ends: at its closing `quote` (backslash escapes
/// of plain quotes skipped), or at the end of the line when it has none.
fn closing_quote(text: &str, from: usize, quote: &str) -> usize {
    let bytes = text.as_bytes();
    let quote = quote.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' | b'\r' => return i,
            _ if bytes[i..]
                .get(..quote.len())
                .is_some_and(|q| q.eq_ignore_ascii_case(quote)) =>
            {
                return i;
            }
            b'\\' if quote.len() == 1 && matches!(bytes.get(i + 1), Some(b'"' | b'\'' | b'\\')) => {
                i += 2;
            }
            _ => i += 1,
        }
    }
    i
}

/// Where an unquoted single-token value ends.
fn token_end(text: &str, from: usize, encoded: bool) -> usize {
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'`' => return i,
            b'\\'
                if matches!(
                    bytes.get(i + 1),
                    Some(b'n' | b'r' | b't' | b'"' | b'\'' | b'\\')
                ) =>
            {
                return i;
            }
            // Punctuation ends the value where something else clearly starts after it, so
            // `?token=abc&user=bob` stops at `&` while the password `p&ss;w,rd` stays whole.
            b',' | b';' | b'&' | b')' | b']' | b'}' | b'<' | b'>' if ends_value(text, i + 1) => {
                return i;
            }
            b'%' if encoded && is_encoded_delimiter(bytes.get(i + 1..i + 3)) => return i,
            _ => i += 1,
        }
    }
    i
}

/// Whether what follows a punctuation mark at `at` shows that the mark ended a value: the end,
/// a blank, more punctuation or a quote, or the next `name=` / `name:` pair.
fn ends_value(text: &str, at: usize) -> bool {
    let bytes = text.as_bytes();
    let Some(&next) = bytes.get(at) else {
        return true;
    };
    if matches!(
        next,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | b'"'
            | b'\''
            | b'`'
            | b','
            | b';'
            | b'&'
            | b')'
            | b']'
            | b'}'
            | b'<'
            | b'>'
            | b'\\'
    ) {
        return true;
    }
    let name_len = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        .count();
    name_len > 0 && matches!(bytes.get(at + name_len), Some(b'=' | b':'))
}

fn is_encoded_delimiter(hex: Option<&[u8]>) -> bool {
    let Some(&[a, b]) = hex else {
        return false;
    };
    let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    matches!(
        &code,
        b"26" | b"3B" | b"22" | b"27" | b"2C" | b"20" | b"7D" | b"5D" | b"0A" | b"0D"
    )
}

/// `|`, `>-`, `|+2` ...: a YAML block scalar follows on the next lines.
fn is_block_indicator(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('|' | '>')) && chars.all(|c| matches!(c, '-' | '+' | '0'..='9'))
}

/// The lines after the line that ends at `from` that are indented past `column`, trimmed.
fn block_scalar(text: &str, from: usize, column: usize) -> Option<Range<usize>> {
    let mut pos = from + text[from..].find('\n')? + 1;
    let mut start = None;
    let mut end = pos;
    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = text[pos..line_end].trim_end_matches('\r');
        if !line.trim().is_empty() {
            let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
            if indent <= column {
                break;
            }
            start.get_or_insert(pos + indent);
            end = pos + line.len();
        }
        pos = line_end + 1;
    }
    start.map(|s| s..end)
}

/// The ranges to redact in a value, given its key's class.
fn secret_ranges(text: &str, value: &Value, class: Class, mode: Mode) -> Vec<Range<usize>> {
    let mut range = value.range.clone();
    match class {
        Class::Plain => return Vec::new(),
        Class::Cookie => return cookie_ranges(text, range),
        Class::Secret | Class::Pwd | Class::Entropy => {}
    }
    // `Authorization: Bearer abc`: keep the scheme, redact what follows it.
    let scheme = match class {
        Class::Entropy => None,
        _ => auth_scheme(&text[range.clone()]),
    };
    if let Some((skip, whole_rest)) = scheme {
        if skip == range.len() {
            // The value was the scheme alone (read up to a blank): read what follows it.
            let next = Mode {
                extent: if whole_rest {
                    Extent::WholeLine
                } else {
                    mode.extent
                },
                ..mode
            };
            // Nothing after it: the word itself is the value (`password: basic`).
            if let Some(v) = read_value(text, range.end, next) {
                range = v.range;
            }
        } else {
            range.start += skip;
        }
    }
    let secret = &text[range.clone()];
    let keep = match class {
        Class::Entropy => !looks_generated(secret),
        Class::Pwd => is_placeholder(secret) || secret.starts_with(['/', '~']),
        _ => is_placeholder(secret),
    };
    if keep { Vec::new() } else { vec![range] }
}

/// For a value that starts with an HTTP authorization scheme: how many bytes to skip (the scheme
/// and the blanks after it), and whether the credentials run to the end (Digest's `k=v, ...`).
fn auth_scheme(value: &str) -> Option<(usize, bool)> {
    const SCHEMES: &[(&str, bool)] = &[
        ("bearer", false),
        ("basic", false),
        ("token", false),
        ("apikey", false),
        ("api-key", false),
        ("sso-key", false),
        ("negotiate", false),
        ("ntlm", false),
        ("digest", true),
        ("hmac", true),
        ("aws4-hmac-sha256", true),
    ];
    let word_len = value
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-')
        .count();
    let word = &value[..word_len];
    let (_, whole_rest) = SCHEMES.iter().find(|(s, _)| s.eq_ignore_ascii_case(word))?;
    let blanks = value[word_len..]
        .bytes()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    (blanks > 0 || word_len == value.len()).then_some((word_len + blanks, *whole_rest))
}

/// Cookie attributes, which are not secret.
#[rustfmt::skip]
const COOKIE_ATTRIBUTES: &[&str] = &[
    "path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority",
    "partitioned", "version", "comment",
];

/// Each cookie's value in a `Cookie` / `Set-Cookie` value (`a=1; b=2; Path=/`).
fn cookie_ranges(text: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = range.start;
    for part in text[range.clone()].split(';') {
        let part_range = trim_range(text, start..start + part.len());
        start += part.len() + 1;
        let part = &text[part_range.clone()];
        let (name, value) = match part.find('=') {
            Some(eq) => (&part[..eq], part_range.start + eq + 1..part_range.end),
            None => (part, part_range.clone()),
        };
        let name = name.trim();
        if COOKIE_ATTRIBUTES
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let value = trim_range(text, value);
        if !value.is_empty() && !is_placeholder(&text[value.clone()]) {
            out.push(value);
        }
    }
    out
}

/// Values that stand for a secret without being one.
#[rustfmt::skip]
const PLACEHOLDERS: &[&str] = &[
    "true", "false", "yes", "no", "on", "off", "null", "nil", "none", "undefined", "empty",
    "unset", "set", "missing", "invalid", "expired", "required", "optional", "hidden", "masked",
    "redacted", "provided", "present", "absent", "n/a", "na", "-", "--", "~", "string", "bool",
    "boolean", "int", "integer", "object", "changed", "ok",
];

/// Values that stand for a secret without being one.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    let lower = v.trim_matches(['"', '\'']).to_ascii_lowercase();
    if lower.is_empty()
        || v.starts_with("[REDACTED")
        || PLACEHOLDERS.contains(&lower.as_str())
        || lower.bytes().all(|b| b == lower.as_bytes()[0])
    {
        return true;
    }
    // Template and variable references: ${VAR}, $(cmd), {{ .Values.x }}, %(name)s, $VAR, <...>.
    let reference = (v.starts_with("${") && v.ends_with('}'))
        || (v.starts_with("$(") && v.ends_with(')'))
        || (v.starts_with("{{") && v.ends_with("}}"))
        || (v.starts_with("%(") && v.ends_with(")s"))
        || (v.starts_with('<') && v.ends_with('>'))
        || (v.starts_with('$')
            && v.len() > 1
            && v[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    // A nested object or list (`"password": {"type": "string"}`) or `kubectl describe secret`'s
    // `password:  8 bytes`.
    let structure = v.starts_with(['{', '[']) || is_byte_count(v);
    reference || structure
}

fn is_byte_count(v: &str) -> bool {
    v.strip_suffix(" bytes")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn not_placeholder(value: &str) -> bool {
    !is_placeholder(value)
}

/// A URL password, not a port and path read as one (`http://host:8080/users/@me`).
fn is_url_password(value: &str) -> bool {
    if is_placeholder(value) {
        return false;
    }
    match value.split_once('/') {
        Some((port, _)) => !(port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())),
        None => true,
    }
}

/// A bearer credential rather than an English word after "bearer": it has a digit, a symbol or
/// a capital letter past the first character.
fn looks_random(value: &str) -> bool {
    value
        .bytes()
        .any(|b| b.is_ascii_digit() || !b.is_ascii_alphanumeric())
        || value.bytes().skip(1).any(|b| b.is_ascii_uppercase())
}

/// Base64 of `user:password` after "basic", not "basic authentication".
fn is_basic_credential(value: &str) -> bool {
    value.len().is_multiple_of(4) && looks_random(value)
}

/// A generated secret (for keys that only hint at one): 16 or more characters of the base64 or
/// hex alphabets, with a letter and a digit, and Shannon entropy of at least 3.5 bits per
/// character (3.0 for hex), the limits gitleaks and detect-secrets use.
fn looks_generated(value: &str) -> bool {
    let body = value.trim_end_matches('=');
    if body.len() < 16
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-'))
        || !body.bytes().any(|b| b.is_ascii_digit())
        || !body.bytes().any(|b| b.is_ascii_alphabetic())
    {
        return false;
    }
    let limit = if body.bytes().all(|b| b.is_ascii_hexdigit()) {
        3.0
    } else {
        3.5
    };
    shannon_entropy(body) >= limit
}

/// Bits per byte.
fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0_u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let len = f64::from(u32::try_from(s.len()).unwrap_or(u32::MAX));
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// Whether `pos` starts its line, not counting indentation, list dashes, comment marks, an
/// opening quote or a shell `export`/`set` (so `KEY=value` lines of env files and YAML mappings
/// take the whole line as the value).
fn starts_line(text: &str, pos: usize) -> bool {
    // Look back a bounded distance, so a long minified line with many keys stays linear.
    const REACH: usize = 256;
    let from = pos.saturating_sub(REACH);
    let line_start = match text.as_bytes()[from..pos].iter().rposition(|b| *b == b'\n') {
        Some(i) => from + i + 1,
        None if from == 0 => 0,
        None => return false,
    };
    let prefix = text[line_start..pos]
        .trim_end_matches(['"', '\''])
        .trim_start_matches([' ', '\t', '-', '+', '#', '>'])
        .trim_end();
    matches!(
        prefix,
        "" | "export" | "set" | "setx" | "declare -x" | "ENV" | "ARG" | "env"
    )
}

fn column(text: &str, pos: usize) -> usize {
    pos - text[..pos].rfind('\n').map_or(0, |i| i + 1)
}

fn trim_range(text: &str, range: Range<usize>) -> Range<usize> {
    let s = &text[range.clone()];
    let start = range.start + (s.len() - s.trim_start().len());
    let end = range.end - (s.len() - s.trim_end().len());
    start..end.max(start)
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
        assert_eq!(out, "Authorization: Bearer [REDACTED]");
        assert_eq!(
            r("bearer authentication failed"),
            "bearer authentication failed"
        );
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
        assert_eq!(
            out,
            "key:\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\ndone"
        );
        // A block cut off by a log tail is still removed.
        assert_gone(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA",
            "b3BlbnNzaC1rZXktdjEA",
        );
        // So is one whose BEGIN line fell off the start of a tail.
        let tail = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAoIBAQDtestonlykeymaterialxyz0123\n-----END PRIVATE KEY-----\npanic: bad key";
        let out = r(tail);
        assert!(
            !out.contains("testonlykeymaterial") && !out.contains("MIIEvQ"),
            "{out}"
        );
        assert!(
            out.ends_with("-----END PRIVATE KEY-----\npanic: bad key"),
            "{out}"
        );
        // Base64-looking lines with no END after them stay (digests, ids).
        let plain = "sha256abcdefABCDEF0123456789\ndone";
        assert_eq!(r(plain), plain);
    }

    #[test]
    fn jwts() {
        assert_gone(
            "sa token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl end",
            "eyJzdWIiOiJzeXN0ZW0ifQ",
        );
    }

    #[test]
    fn url_password_behind_a_rejected_url_candidate_is_redacted() {
        // Found by the fuzz target `redact`: the leftmost `scheme://…:…@host` candidate was
        // rejected (its "password" read as a path), and the search went on after its end, so
        // the real URL inside it kept its password until a second pass.
        let r = Redactor::default();
        let text = "ab.c2lnbmF0dXJlc://F0dXJles://app:s3cr3tpass@db:5432/app";
        let once = r.redact(text);
        assert!(!once.contains("s3cr3tpass"), "{once}");
        assert_eq!(r.redact(&once), once);
    }

    #[test]
    fn passwords_in_urls() {
        let out = r("DATABASE at postgres://app:hunter2@db.shop:5432/orders");
        assert_eq!(
            out,
            "DATABASE at postgres://app:[REDACTED]@db.shop:5432/orders"
        );
        let plain = "GET http://localhost:8080/users/@me 200";
        assert_eq!(r(plain), plain);
    }

    #[test]
    fn env_pairs() {
        let out = r("DB_PASSWORD=hunter2 LOG_LEVEL=debug STRIPE_SECRET='s3cr3t v' other");
        assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
        assert!(out.contains("LOG_LEVEL=debug"), "{out}");
        let out = r(r#"{"password": "hunter2", "user": "app"}"#);
        assert_eq!(out, r#"{"password": "[REDACTED]", "user": "app"}"#);
    }

    #[test]
    fn key_words() {
        assert_eq!(split_words("clientSecret"), ["client", "secret"]);
        assert_eq!(split_words("APIKey"), ["api", "key"]);
        assert_eq!(split_words("DB_PASSWORD"), ["db", "password"]);
        assert_eq!(split_words("--api-key"), ["api", "key"]);
        assert_eq!(classify("secretName"), Class::Plain);
        assert_eq!(classify("secretKeyRef"), Class::Plain);
        assert_eq!(classify("prompt_tokens"), Class::Plain);
        assert_eq!(classify("AccountKey"), Class::Secret);
        assert_eq!(classify("DD_API_KEY"), Class::Secret);
        assert_eq!(classify("topologyKey"), Class::Entropy);
        assert_eq!(classify("key"), Class::Entropy);
        assert_eq!(classify("Set-Cookie"), Class::Cookie);
        assert_eq!(classify("session_id"), Class::Secret);
        assert_eq!(classify("keycloak"), Class::Plain);
        assert_eq!(classify("OLDPWD"), Class::Plain);
    }

    #[test]
    fn entropy() {
        assert!(looks_generated("9fK2xQ7vLm3ZpR8tWc1Y"));
        assert!(looks_generated("3f1e9c0d8b7a6f5e4d3c2b1a"));
        assert!(!looks_generated("applicationDefaultCredentials"));
        assert!(!looks_generated("aaaaaaaaaaaaaaaa1"));
        assert!(!looks_generated("app.kubernetes.io/name"));
    }

    #[test]
    fn redacting_twice_changes_nothing() {
        let text =
            "Authorization: Bearer abcdefgh12345678\nDB_PASSWORD=hunter2\nredis://:pw1@r:6379";
        let once = r(text);
        assert_eq!(r(&once), once);
        assert!(!once.contains("]]"), "{once}");
    }

    /// Found by the `redact` fuzz target: the first pass redacted the JWT, which the line's
    /// reading had taken for the next `name: ` of the line (so the value was `$Bearer`, a
    /// variable reference, and kept); a second redaction then took the whole line. One call
    /// must do both.
    #[test]
    fn redaction_that_changes_how_the_line_reads_is_finished_in_one_call() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let red = Redactor::default();
        for text in [
            format!("Authorization:$Bearer {jwt}: x\n"),
            format!("Authorization:$Bearer {jwt}: Bea#rer eyJhbGc&\0\01NiJWIaub\n"),
        ] {
            let once = red.redact(&text);
            assert!(!once.contains("eyJ"), "{once}");
            assert_eq!(red.redact(&once), once, "redacting twice changed {text:?}");
            assert!(red.matching_rules(&once).is_empty(), "{once}");
        }
        assert_eq!(
            red.redact(&format!("Authorization:$Bearer {jwt}: x")),
            "Authorization:[REDACTED]"
        );
    }

    /// From an adversarial review: values nested in quotes of different kinds lose one layer
    /// per pass (this one needs 4 passes), and when the passes did not settle the whole text
    /// was withheld — one planted log line hid every other line of the log from the model and
    /// the approver. With fewer passes allowed than it needs, only its line is withheld.
    #[test]
    fn a_line_that_does_not_settle_is_withheld_alone() {
        let red = Redactor::default();
        let nested = "password=%22${token=%27${secret=\"${passwd='h1dd3n}\"q'}%27r\"}%22s%27t%22";
        let text = format!("line one ok\n{nested}\nline three ok\nDB_PASSWORD=hunter2\n");
        let settled = red.redact(&text);
        assert_eq!(
            settled,
            "line one ok\npassword=%22[REDACTED]%22\nline three ok\nDB_PASSWORD=[REDACTED]\n"
        );
        assert_eq!(red.redact(&settled), settled);
        for passes in 2..=3 {
            let withheld = red.redact_within(&text, passes);
            assert_eq!(
                withheld, "line one ok\n[REDACTED]\nline three ok\nDB_PASSWORD=[REDACTED]\n",
                "{passes} passes"
            );
            assert_eq!(red.redact(&withheld), withheld);
        }
        // Should withholding lines not settle either (no pass allowed to check), all goes.
        assert_eq!(red.redact_within(&text, 1), "[REDACTED]");
    }

    #[test]
    fn a_custom_pattern_that_matches_the_marker_settles() {
        // `[A-Z]{4,}` matches `REDACTED` inside the marker: re-redacting it would never settle
        // and the whole text would be withheld.
        let red = Redactor::with_patterns(["[A-Z]{4,}"]).unwrap();
        let once = red.redact("hello ABCD and more\nsecond line");
        assert_eq!(once, "hello [REDACTED] and more\nsecond line");
        assert_eq!(red.redact(&once), once);
        // A match that only overlaps a marker is still a secret.
        let red = Redactor::with_patterns([r"D\]x+"]).unwrap();
        assert_eq!(red.redact("[REDACTED]xx ok"), "[REDACTE[REDACTED] ok");
    }

    #[test]
    fn redaction_settles_on_text_already_redacted() {
        // A pass that only re-finds its own markers changes nothing and must not be taken for
        // one that does not settle (which would withhold the whole text).
        let red = Redactor::default();
        let text = "DB_PASSWORD=[REDACTED] note: kept";
        assert_eq!(red.redact(text), text);
        let out = red.redact("password: hunter2\nAuthorization: Bearer [REDACTED]\nlevel: info");
        assert_eq!(
            out,
            "password: [REDACTED]\nAuthorization: Bearer [REDACTED]\nlevel: info"
        );
    }

    #[test]
    fn a_message_quoting_input_is_redacted_whole_and_token_by_token() {
        let red = Redactor::default();
        // Glued to the message's own text, the assignment is not at a word boundary, so the
        // whole-text pass misses it; standing alone, the token is an assignment.
        let message = "field `status`: \"firingm.host.internal:\u{7f}TTTTTTToken=68sT2uV4wX6yZ8aB0cD2eR8sTTTTTTT&T\" is not a status";
        let out = red.redact_message(message);
        assert!(!out.contains("68sT2uV4wX6yZ8aB0cD2eR8s"), "{out}");
        assert!(
            out.starts_with("field `status`: \"firingm.host.internal:"),
            "{out}"
        );
        assert!(out.ends_with("[REDACTED]\" is not a status"), "{out}");
        // Clean text and text ending in a token come back as they were.
        for text in ["no secret here", "ends in a word", "", "password"] {
            assert_eq!(red.redact_message(text), text);
        }
        assert_eq!(
            red.redact_message("key ghp_0123456789abcdefghijABCDEFGHIJ0123"),
            "key [REDACTED]"
        );
    }

    #[test]
    fn a_parse_error_keeps_neither_the_quoted_value_nor_a_secret() {
        let red = Redactor::default();
        assert_eq!(
            red.redact_parse_error(
                r#"field `x`: invalid type: string "ghp_0123456789abcdefghijABCDEFGHIJ0123", expected u64"#
            ),
            "field `x`: invalid type: string (38 characters), expected u64"
        );
        assert_eq!(
            red.redact_parse_error("at token=ghp_0123456789abcdefghijABCDEFGHIJ0123 line 1"),
            "at token=[REDACTED] line 1"
        );
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

    #[test]
    fn matching_rules_name_the_rules() {
        let red = Redactor::default();
        assert_eq!(
            red.matching_rules("DB_PASSWORD=hunter2"),
            vec!["secret-assignment"]
        );
        assert_eq!(
            red.matching_rules("ghp_0123456789abcdefghijABCDEFGHIJ0123"),
            vec!["github"]
        );
        assert!(red.matching_rules("all pods healthy").is_empty());
    }
}
