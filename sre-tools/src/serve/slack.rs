//! Slack approvals: a Block Kit message that asks "Patch now?" about a parked approval
//! ([`Slack`], a [`Channel`]) and `POST /slack/interactions` that takes the click ([`routes`]).
//!
//! **Asking.** [`Channel::ask`] posts with `chat.postMessage` (`Authorization: Bearer <bot
//! token>`): a header naming the tool and the target, the incident as quoted evidence, the plan,
//! its risk and warning, the images before and after, the tool's typed evidence (for an image
//! patch the current and the candidate image's scans and the CRITICAL/HIGH ids it clears, keeps
//! and adds; for a rollback the crash) as a count line and the lines of
//! [`Evidence::render`](sre_core::evidence::Evidence::render) (cut past [`SCAN_LIMIT`]
//! characters), the server-side dry-run diff in a code
//! block (cut with a note past [`DIFF_LIMIT`] characters), the expiry, and two buttons —
//! Approve (`action_id` [`APPROVE_ACTION`], with a confirm dialog) and Reject
//! ([`REJECT_ACTION`]) — whose `value` is the approval's id and nothing else. Every untrusted
//! string is escaped: control and invisible characters made visible, `&`, `<` and `>` written as
//! entities (no mention, link or broadcast can be smuggled in), and the evidence and the diff go
//! into rich-text elements, which Slack never parses as markup. The `channel` and `ts` Slack
//! answers are remembered (in memory, at most [`MAX_REMEMBERED`] messages) so that
//! [`Channel::settle`] can `chat.update` the message with how it ended.
//!
//! Slack's Web API errors are surfaced with their code: `{"ok": false, "error":
//! "channel_not_found"}` names the channel, `invalid_auth`, `not_authed`, `account_inactive`,
//! `token_revoked` and `token_expired` say the bot token is wrong, `missing_scope` names the scope
//! needed; `429` with `Retry-After` is retried after the given delay (at most
//! [`SlackConfig::max_tries`] tries and [`SlackConfig::max_retry_wait`] of waiting in all). The
//! bot token is never printed.
//!
//! **Deciding.** `POST /slack/interactions` (Slack's interactivity request URL) reads at most
//! [`MAX_BODY`] bytes of raw body and checks, before anything else, Slack's `v0` signature:
//! `X-Slack-Signature` must be `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` under
//! the signing secret (compared in constant time), and `X-Slack-Request-Timestamp` must be within
//! [`MAX_SKEW`] of now, either way. A request that fails is refused with `401` and a JSON error
//! naming why, and decides nothing. A verified `block_actions` payload with one of the two
//! actions is then checked against the approvers (user ids, and optionally a user group read with
//! `usergroups.users.list`, cached for [`SlackConfig::group_cache_ttl`]): anyone else gets an
//! ephemeral "not allowed" and nothing is decided. An approver's click is recorded with
//! [`channel::decide`] (`by` is `slack:<user id>`, the audit record carries the SHA-256 of the raw
//! request); a click on an approval already decided, expired or unknown decides nothing and is
//! told so. Slack is answered at once, and the message is updated afterwards, in the background.
//!
//! ```no_run
//! # async fn demo(sink: sre_tools::serve::channel::DecisionSink) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sre_tools::serve::secret::{SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, ServiceSecret};
//! use sre_tools::serve::slack::{Slack, SlackConfig};
//!
//! let config = SlackConfig::new(
//!     ServiceSecret::from_file(&SLACK_BOT_TOKEN, "/var/run/secrets/slack/bot-token")?,
//!     ServiceSecret::from_file(&SLACK_SIGNING_SECRET, "/var/run/secrets/slack/signing-secret")?,
//!     "C0123456789",
//!     "U0123ABCD,U0456EFGH",
//! )?;
//! let slack = Arc::new(Slack::new(config)?);
//! let router = sre_tools::serve::slack::routes(slack.clone(), sink);
//! # let _ = router;
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac as _};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sre_core::evidence::Evidence;
use sre_core::secret::{Secret, SecretError};
use sre_core::text::{escape_untrusted, escape_untrusted_lines};
use subtle::ConstantTimeEq as _;

use super::channel::{
    self, Ask, Channel, ChannelError, ChatDecision, DecisionSink, Ending, Settled,
};
use super::secret::ServiceSecret;
use super::store::{ApprovalState, ApprovalView, DecideError};

/// Slack's Web API, the default base of every method URL.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";
/// The path of the interactivity endpoint.
pub const PATH: &str = "/slack/interactions";
/// The largest interaction request read (64 KiB); larger ones get `413`.
pub const MAX_BODY: usize = 64 * 1024;
/// How far `X-Slack-Request-Timestamp` may be from now, either way (Slack's five minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// The `action_id` of the Approve button.
pub const APPROVE_ACTION: &str = "sre_approve";
/// The `action_id` of the Reject button.
pub const REJECT_ACTION: &str = "sre_reject";
/// The `block_id` of the buttons' `actions` block (replaced when the approval is decided).
pub const ACTIONS_BLOCK: &str = "sre_decision";
/// The `block_id` of the context line that says how the approval stands or ended.
pub const OUTCOME_BLOCK: &str = "sre_outcome";
/// The most characters of the diff shown; a longer diff is cut at a line break, with a note.
/// (Slack allows 3000 characters in a section's text.)
pub const DIFF_LIMIT: usize = 2800;
/// The most characters of the incident's evidence shown.
pub const EVIDENCE_LIMIT: usize = 1500;
/// The most characters of the tool's typed evidence (scans, crash) shown; a longer one is cut
/// at a line break, with a note. Each line is cut at [`SCAN_LINE_LIMIT`] characters first.
pub const SCAN_LIMIT: usize = 2000;
/// The most characters of one line of the typed evidence (a very long id or log line).
pub const SCAN_LINE_LIMIT: usize = 300;
/// The `block_id` of the typed evidence.
pub const SCAN_BLOCK: &str = "sre_scan";
/// The most posted messages remembered for an update; the oldest is forgotten first.
pub const MAX_REMEMBERED: usize = 1024;

/// Slack's limit on a header block's text.
const HEADER_LIMIT: usize = 150;
/// Slack's limit on a section's text.
const SECTION_LIMIT: usize = 3000;
/// Slack's limit on a section field's text.
const FIELD_LIMIT: usize = 2000;
/// The most image lines shown.
const MAX_IMAGES: usize = 10;
/// Slack's limit on blocks in a message.
const MAX_BLOCKS: usize = 50;
/// The longest Slack error code shown.
const MAX_CODE: usize = 100;
/// The longest approval id looked up.
const MAX_ID: usize = 128;

/// Why a Slack configuration is unusable. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlackConfigError {
    /// A secret could not be had or is not what it should be.
    #[error("slack: {0}")]
    Secret(#[from] SecretError),
    /// A setting is invalid.
    #[error("slack {setting}: {reason}")]
    Invalid {
        /// The setting (`channel`, `approvers`, `api URL`, …).
        setting: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> SlackConfigError {
    SlackConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// How `serve` talks to Slack. [`new`](Self::new) checks the required settings; the `with_…`
/// methods check the optional ones; the tuning fields have working defaults.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The Web API base (default [`DEFAULT_API_URL`]; a proxy or a test server otherwise).
    pub api_url: Url,
    /// The bot token (`xoxb-…`, of kind [`SLACK_BOT_TOKEN`](super::secret::SLACK_BOT_TOKEN)), sent as `Authorization: Bearer`.
    pub bot_token: ServiceSecret,
    /// The app's signing secret (of kind [`SLACK_SIGNING_SECRET`](super::secret::SLACK_SIGNING_SECRET)), which verifies interaction
    /// requests.
    pub signing_secret: ServiceSecret,
    /// Where questions are posted: a channel id (`C…`, `G…`) or name.
    pub channel: String,
    /// The user ids (`U…`, `W…`) allowed to decide.
    pub approvers: Vec<String>,
    /// A user group id (`S…`) whose members may decide too (needs `usergroups:read`).
    pub approver_group: Option<String>,
    /// Where `serve`'s approvals API is reachable, linked from the message.
    pub public_url: Option<Url>,
    /// How long the user group's members are cached (default 60 s).
    pub group_cache_ttl: Duration,
    /// Timeout of one Web API call (default 10 s).
    pub request_timeout: Duration,
    /// Tries of a rate-limited call, the first included (default 3).
    pub max_tries: u32,
    /// The most time spent waiting on `Retry-After` for one call (default 30 s).
    pub max_retry_wait: Duration,
}

/// True for a Slack id: an uppercase letter from `first`, then at least two uppercase letters or
/// digits, at most 32 in all.
fn slack_id(id: &str, first: &[u8]) -> bool {
    let b = id.as_bytes();
    (3..=32).contains(&b.len())
        && first.contains(&b[0])
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// True for a user id (`U…` or, in Enterprise Grid, `W…`).
fn user_id(id: &str) -> bool {
    slack_id(id, b"UW")
}

/// A checked list of user ids: `U1,U2` (commas and/or white space between ids).
///
/// # Errors
/// [`SlackConfigError::Invalid`] naming the first entry that is not a user id.
pub fn parse_user_ids(list: &str) -> Result<Vec<String>, SlackConfigError> {
    let mut ids = Vec::new();
    for entry in list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        if !user_id(entry) {
            return Err(invalid(
                "approvers",
                format!(
                    "{:?} is not a Slack user id (U… or W…, as shown in a profile's \"Copy member ID\"); names and emails are not accepted",
                    escape_untrusted(&entry.chars().take(40).collect::<String>())
                ),
            ));
        }
        if !ids.iter().any(|i| i == entry) {
            ids.push(entry.to_owned());
        }
    }
    Ok(ids)
}

/// An http(s) URL with a host and nothing that could carry a credential.
fn base_url(setting: &'static str, text: &str) -> Result<Url, SlackConfigError> {
    let url = Url::parse(text.trim()).map_err(|e| {
        invalid(
            setting,
            format!(
                "{:?} is not a URL ({e})",
                escape_untrusted(&text.chars().take(80).collect::<String>())
            ),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            setting,
            format!("the scheme must be http or https, not {:?}", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(setting, "the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            setting,
            "credentials in the URL (user:password@) are not accepted",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(setting, "the URL must have no ?query or #fragment"));
    }
    Ok(url)
}

impl SlackConfig {
    /// A configuration posting to `channel` (an id such as `C0123456789`, or a name such as
    /// `#ops`) for the approvers `approvers` (user ids, comma-separated; may be empty when an
    /// [approver group](Self::with_approver_group) is set).
    ///
    /// # Errors
    /// [`SlackConfigError`] when the channel is neither an id nor a channel name, or an approver
    /// is not a user id. The secrets are checked when they are fetched (their [`Rule`]s:
    /// a bot token starts `xox`, a signing secret has at least 16 characters).
    ///
    /// [`Rule`]: super::secret::Rule
    pub fn new(
        bot_token: ServiceSecret,
        signing_secret: ServiceSecret,
        channel: &str,
        approvers: &str,
    ) -> Result<Self, SlackConfigError> {
        let channel = channel.trim();
        let name = channel.strip_prefix('#').unwrap_or(channel);
        let is_id = slack_id(channel, b"CGD");
        let is_name = !name.is_empty()
            && name.len() <= 80
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if !is_id && !is_name {
            return Err(invalid(
                "channel",
                format!(
                    "{:?} is neither a channel id (C…, G…) nor a channel name (lowercase letters, digits, - _ .)",
                    escape_untrusted(&channel.chars().take(80).collect::<String>())
                ),
            ));
        }
        Ok(Self {
            api_url: base_url("api URL", DEFAULT_API_URL)?,
            bot_token,
            signing_secret,
            channel: channel.to_owned(),
            approvers: parse_user_ids(approvers)?,
            approver_group: None,
            public_url: None,
            group_cache_ttl: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_tries: 3,
            max_retry_wait: Duration::from_secs(30),
        })
    }

    /// Uses the Web API at `url` (e.g. `https://slack-proxy.internal/api`).
    ///
    /// # Errors
    /// [`SlackConfigError::Invalid`] when it is not an http(s) URL with a host, or it carries
    /// credentials, a query or a fragment.
    pub fn with_api_url(mut self, url: &str) -> Result<Self, SlackConfigError> {
        self.api_url = base_url("api URL", url)?;
        Ok(self)
    }

    /// Lets the members of the user group `group` (`S…`) decide too.
    ///
    /// # Errors
    /// [`SlackConfigError::Invalid`] when it is not a user group id.
    pub fn with_approver_group(mut self, group: &str) -> Result<Self, SlackConfigError> {
        let group = group.trim();
        if !slack_id(group, b"S") {
            return Err(invalid(
                "approver group",
                format!(
                    "{:?} is not a user group id (S…; the group's page shows it, or usergroups.list)",
                    escape_untrusted(&group.chars().take(40).collect::<String>())
                ),
            ));
        }
        self.approver_group = Some(group.to_owned());
        Ok(self)
    }

    /// Links the message to the approvals API at `url` (e.g. `https://sre-agent.example.com`).
    ///
    /// # Errors
    /// [`SlackConfigError::Invalid`] as for [`with_api_url`](Self::with_api_url).
    pub fn with_public_url(mut self, url: &str) -> Result<Self, SlackConfigError> {
        self.public_url = Some(base_url("public URL", url)?);
        Ok(self)
    }

    /// The URL of Web API `method`.
    fn method_url(&self, method: &str) -> String {
        format!("{}/{method}", self.api_url.as_str().trim_end_matches('/'))
    }
}

/// A posted question: where it is, and its blocks without the buttons.
#[derive(Debug, Clone)]
struct Posted {
    channel: String,
    ts: String,
    blocks: Vec<Value>,
}

/// Posted questions by approval id, the oldest forgotten first.
#[derive(Debug, Default)]
struct Remembered {
    by_id: HashMap<String, Posted>,
    order: VecDeque<String>,
}

impl Remembered {
    fn insert(&mut self, id: String, posted: Posted) {
        if self.by_id.insert(id.clone(), posted).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    fn take(&mut self, id: &str) -> Option<Posted> {
        let posted = self.by_id.remove(id)?;
        self.order.retain(|i| i != id);
        Some(posted)
    }
}

/// The approver group's members, as read at `at`.
#[derive(Debug)]
struct GroupMembers {
    at: Instant,
    users: HashSet<String>,
}

/// How a Web API method is called.
enum Call<'a> {
    /// `POST` with a JSON body.
    Json(&'a Value),
    /// `GET` with query parameters.
    Query(&'a [(&'a str, &'a str)]),
}

/// The Slack approval channel. Build it with [`Slack::new`], give it to
/// [`Channels`](super::channel::Channels) and serve its [`routes`].
pub struct Slack {
    config: SlackConfig,
    http: reqwest::Client,
    posted: Mutex<Remembered>,
    group: Mutex<Option<GroupMembers>>,
}

impl fmt::Debug for Slack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slack")
            .field("api_url", &self.config.api_url.as_str())
            .field("channel", &self.config.channel)
            .field("approvers", &self.config.approvers)
            .field("approver_group", &self.config.approver_group)
            .finish_non_exhaustive()
    }
}

fn channel_error(message: impl Into<String>) -> ChannelError {
    ChannelError {
        channel: "slack",
        message: message.into(),
    }
}

impl Slack {
    /// The channel for `config`.
    ///
    /// # Errors
    /// [`SlackConfigError::Invalid`] when nobody could decide (no approvers and no group), or
    /// the HTTP client cannot be built.
    pub fn new(config: SlackConfig) -> Result<Self, SlackConfigError> {
        if config.approvers.is_empty() && config.approver_group.is_none() {
            return Err(invalid(
                "approvers",
                "nobody may decide: give approver user ids (U…) or an approver group (S…)",
            ));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            // A redirect would carry the bot token elsewhere: follow none.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid("HTTP client", format!("cannot be built: {e}")))?;
        Ok(Self {
            config,
            http,
            posted: Mutex::new(Remembered::default()),
            group: Mutex::new(None),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &SlackConfig {
        &self.config
    }

    /// Where the question about approval `id` was posted (`channel`, `ts`), while remembered.
    pub fn posted(&self, id: &str) -> Option<(String, String)> {
        let posted = self.posted.lock().unwrap_or_else(PoisonError::into_inner);
        posted
            .by_id
            .get(id)
            .map(|p| (p.channel.clone(), p.ts.clone()))
    }

    /// True when `user` may decide: one of the approvers, or a member of the approver group
    /// (read with `usergroups.users.list`, cached for [`SlackConfig::group_cache_ttl`]).
    ///
    /// # Errors
    /// [`ChannelError`] when the group's members cannot be read (then nobody outside the
    /// approvers may decide).
    pub async fn is_approver(&self, user: &str) -> Result<bool, ChannelError> {
        if self.config.approvers.iter().any(|a| a == user) {
            return Ok(true);
        }
        let Some(group) = &self.config.approver_group else {
            return Ok(false);
        };
        {
            let cached = self.group.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(members) = cached.as_ref()
                && members.at.elapsed() < self.config.group_cache_ttl
            {
                return Ok(members.users.contains(user));
            }
        }
        let reply = self
            .call(
                "usergroups.users.list",
                Call::Query(&[("usergroup", group.as_str())]),
            )
            .await?;
        let users: HashSet<String> = reply
            .get("users")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                channel_error(format!(
                    "usergroups.users.list answered without the \"users\" of group {group}"
                ))
            })?
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let allowed = users.contains(user);
        *self.group.lock().unwrap_or_else(PoisonError::into_inner) = Some(GroupMembers {
            at: Instant::now(),
            users,
        });
        Ok(allowed)
    }

    /// Calls Web API `method`; retries `429` after its `Retry-After`. Returns the JSON answer
    /// when it is `"ok": true`.
    async fn call(&self, method: &str, call: Call<'_>) -> Result<Value, ChannelError> {
        let url = self.config.method_url(method);
        let mut waited = Duration::ZERO;
        let mut tries = 0;
        loop {
            tries += 1;
            let token = self
                .config
                .bot_token
                .get()
                .await
                .map_err(|e| channel_error(format!("{method}: {e}")))?;
            // Printable ASCII (the token's rule), so this cannot fail.
            let mut auth =
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    channel_error(format!(
                        "{method}: the bot token cannot be sent in a header"
                    ))
                })?;
            auth.set_sensitive(true);
            let request = match call {
                Call::Json(body) => self
                    .http
                    .post(&url)
                    .header(CONTENT_TYPE, "application/json; charset=utf-8")
                    .body(serde_json::to_vec(body).unwrap_or_default()),
                Call::Query(query) => self.http.get(&url).query(query),
            };
            let response = request
                .header(AUTHORIZATION, auth)
                .send()
                .await
                .map_err(|e| {
                    channel_error(format!(
                        "{method}: cannot reach the Slack Web API at {}: {}",
                        self.config.api_url,
                        e.without_url()
                    ))
                })?;
            let status = response.status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(response.headers());
                if tries >= self.config.max_tries.max(1)
                    || waited + wait > self.config.max_retry_wait
                {
                    return Err(channel_error(format!(
                        "{method}: Slack rate-limited the bot (ratelimited, HTTP 429) {tries} times; gave up after waiting {}s (it asked for {}s more)",
                        waited.as_secs(),
                        wait.as_secs()
                    )));
                }
                tracing::warn!(
                    method,
                    retry_after_s = wait.as_secs(),
                    "slack: rate-limited (ratelimited); retrying after Retry-After"
                );
                tokio::time::sleep(wait).await;
                waited += wait;
                continue;
            }
            let body = response.bytes().await.map_err(|e| {
                channel_error(format!(
                    "{method}: cannot read Slack's answer: {}",
                    e.without_url()
                ))
            })?;
            let value: Option<Value> = serde_json::from_slice(&body).ok();
            let code = value
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map(shown_code);
            if !status.is_success() {
                return Err(channel_error(format!(
                    "{method}: Slack answered HTTP {status}{}",
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                )));
            }
            let Some(value) = value else {
                return Err(channel_error(format!(
                    "{method}: Slack answered HTTP {status} with a body that is not JSON"
                )));
            };
            if value.get("ok") == Some(&Value::Bool(true)) {
                return Ok(value);
            }
            let code = code.unwrap_or_else(|| "no error code".to_owned());
            return Err(channel_error(self.describe(method, &code, &value)));
        }
    }

    /// A Web API error as a sentence that says what to do.
    fn describe(&self, method: &str, code: &str, answer: &Value) -> String {
        let channel = escape_untrusted(&self.config.channel);
        match code {
            "invalid_auth"
            | "not_authed"
            | "account_inactive"
            | "token_revoked"
            | "token_expired"
            | "not_allowed_token_type" => {
                // A rotated token is fetched again at the next call.
                self.config.bot_token.invalidate();
                format!(
                    "{method}: the bot token is wrong ({code}): Slack does not accept the token from {}; put the app's Bot User OAuth Token (xoxb-…) there",
                    self.config.bot_token.reference()
                )
            }
            "channel_not_found" => format!(
                "{method}: channel {channel} not found ({code}): give the channel's id (C…) and invite the app to it (/invite @app)"
            ),
            "not_in_channel" => format!(
                "{method}: the app is not in channel {channel} ({code}): invite it (/invite @app)"
            ),
            "is_archived" => format!("{method}: channel {channel} is archived ({code})"),
            "missing_scope" => format!(
                "{method}: the bot token lacks a scope ({code}; needed: {}): add it under OAuth & Permissions and reinstall the app",
                answer
                    .get("needed")
                    .and_then(Value::as_str)
                    .map_or_else(|| "unknown".to_owned(), shown_code)
            ),
            "ratelimited" => format!("{method}: Slack rate-limited the bot ({code})"),
            "message_not_found" | "cant_update_message" | "edit_window_closed" => {
                format!("{method}: the message cannot be updated ({code})")
            }
            _ => format!("{method}: Slack refused the call ({code})"),
        }
    }

    /// Remembers where the question about `id` was posted.
    fn remember(&self, id: &str, posted: Posted) {
        self.posted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), posted);
    }

    /// Replaces the buttons (or an earlier outcome line) of the message with `line`.
    async fn update(
        &self,
        channel: &str,
        ts: &str,
        blocks: &[Value],
        line: &str,
    ) -> Result<(), ChannelError> {
        let mut blocks: Vec<Value> = blocks
            .iter()
            .filter(|b| {
                !matches!(
                    b.get("block_id").and_then(Value::as_str),
                    Some(ACTIONS_BLOCK | OUTCOME_BLOCK)
                ) && b.get("type").and_then(Value::as_str) != Some("actions")
            })
            .take(MAX_BLOCKS - 1)
            .cloned()
            .collect();
        blocks.push(context(OUTCOME_BLOCK, line));
        let body = json!({
            "channel": channel,
            "ts": ts,
            "text": cut_chars(&plain_of(line), 3000),
            "blocks": blocks,
        });
        self.call("chat.update", Call::Json(&body))
            .await
            .map(|_| ())
    }

    /// Shows `user` (only) `text` in `channel`.
    async fn ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), ChannelError> {
        let body = json!({"channel": channel, "user": user, "text": text});
        self.call("chat.postEphemeral", Call::Json(&body))
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Channel for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn ask(&self, ask: &Ask) -> Result<(), ChannelError> {
        let message = question_message(ask, &self.config.channel, self.config.public_url.as_ref());
        let reply = self.call("chat.postMessage", Call::Json(&message)).await?;
        let (Some(channel), Some(ts)) = (
            reply.get("channel").and_then(Value::as_str),
            reply.get("ts").and_then(Value::as_str),
        ) else {
            return Err(channel_error(
                "chat.postMessage: Slack answered ok without the message's channel and ts; it cannot be updated",
            ));
        };
        let blocks = message
            .get("blocks")
            .and_then(Value::as_array)
            .map(|b| {
                b.iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) != Some("actions"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        self.remember(
            &ask.approval.id,
            Posted {
                channel: channel.to_owned(),
                ts: ts.to_owned(),
                blocks,
            },
        );
        tracing::info!(approval = %ask.approval.id, channel, ts, "slack: asked for approval");
        Ok(())
    }

    async fn settle(&self, settled: &Settled) -> Result<(), ChannelError> {
        let taken = self
            .posted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(&settled.approval.id);
        let Some(posted) = taken else {
            tracing::info!(
                approval = %settled.approval.id,
                "slack: the question about this approval is not remembered (posted before a restart, or by another replica); its message is left as it is"
            );
            return Ok(());
        };
        let line = ending_line(&settled.ending, now_secs());
        self.update(&posted.channel, &posted.ts, &posted.blocks, &line)
            .await
    }
}

/// `Retry-After` in seconds (default 1 s, at most an hour).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), |s| Duration::from_secs(s.min(3600)))
}

/// A Slack error code as shown: escaped and bounded.
fn shown_code(code: &str) -> String {
    escape_untrusted(&code.chars().take(MAX_CODE).collect::<String>()).into_owned()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// The message.

/// `text` escaped for Slack: control and invisible characters made visible (line breaks kept
/// when `lines`), and, for `mrkdwn`, `&`, `<`, `>` as entities. At most `limit` characters;
/// true when something was cut.
fn fit(text: &str, limit: usize, lines: bool, mrkdwn: bool) -> (String, bool) {
    let mut out = String::new();
    let mut used = 0;
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let piece: Cow<'_, str> = match c {
            '&' if mrkdwn => Cow::Borrowed("&amp;"),
            '<' if mrkdwn => Cow::Borrowed("&lt;"),
            '>' if mrkdwn => Cow::Borrowed("&gt;"),
            c => {
                let s: &str = c.encode_utf8(&mut buf);
                if lines {
                    escape_untrusted_lines(s)
                } else {
                    escape_untrusted(s)
                }
            }
        };
        let n = piece.chars().count();
        if used + n > limit {
            return (out, true);
        }
        out.push_str(&piece);
        used += n;
    }
    (out, false)
}

/// One line of untrusted text for mrkdwn, at most `limit` characters (`…` when cut).
fn md(text: &str, limit: usize) -> String {
    let (mut out, cut) = fit(text, limit.saturating_sub(1), false, true);
    if cut {
        out.push('…');
    }
    out
}

/// One line of untrusted text for `plain_text`, at most `limit` characters (`…` when cut).
fn plain(text: &str, limit: usize) -> String {
    let (mut out, cut) = fit(text, limit.saturating_sub(1), false, false);
    if cut {
        out.push('…');
    }
    out
}

/// At most `limit` characters of `text`.
fn cut_chars(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

/// mrkdwn text as plain text for a notification (`&lt;` back to `<`; dates to their fallback).
fn plain_of(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("<!date^") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        match (tail.find('|'), tail.find('>')) {
            (Some(bar), Some(end)) if bar < end => {
                out.push_str(&tail[bar + 1..end]);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push_str(tail);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `<!date^…>`: a time Slack shows in each reader's time zone, with an RFC 3339 fallback.
fn slack_date(unix_secs: u64) -> String {
    let fallback = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix_secs));
    format!("<!date^{unix_secs}^{{date_short_pretty}} at {{time}}|{fallback}>")
}

/// Who decided, for mrkdwn: `slack:U…` as a mention, anything else escaped.
fn who(by: &str) -> String {
    match by.strip_prefix("slack:") {
        Some(user) if user_id(user) => format!("<@{user}>"),
        _ => md(by, 200),
    }
}

fn context(block_id: &str, mrkdwn: &str) -> Value {
    json!({
        "type": "context",
        "block_id": block_id,
        "elements": [{"type": "mrkdwn", "text": cut_chars(mrkdwn, SECTION_LIMIT)}],
    })
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": cut_chars(text, SECTION_LIMIT)}})
}

/// The diff, at most [`DIFF_LIMIT`] characters, cut at a line break; the note says what was
/// left out.
fn diff_text(diff: &str) -> (String, Option<String>) {
    let (shown, cut) = fit(diff.trim_end_matches('\n'), DIFF_LIMIT, true, false);
    if !cut {
        return (shown, None);
    }
    let shown = match shown.rfind('\n') {
        Some(at) if at > 0 => shown[..at].to_owned(),
        _ => shown,
    };
    let total = diff.lines().count();
    let kept = shown.lines().count();
    (
        shown,
        Some(format!(
            "diff cut: {kept} of {total} lines shown ({} of {} characters); the approvals API shows it whole",
            diff.chars().count().min(DIFF_LIMIT),
            diff.chars().count()
        )),
    )
}

/// The question's header: `Patch now? k8s_set_image on shop/web`.
fn header_text(ask: &Ask) -> String {
    let request = &ask.approval.request;
    let plan = &request.preview;
    let verb = if plan
        .images
        .as_ref()
        .is_some_and(|images| images.iter().any(sre_core::ImageChange::changes))
    {
        "Patch"
    } else {
        "Apply"
    };
    let on = match &plan.target {
        Some(t) if t.namespace.is_empty() => format!("{} {}", t.kind, t.name),
        Some(t) => format!("{} {}/{}", t.kind, t.namespace, t.name),
        None => format!("{}/{}", ask.incident.namespace, ask.incident.workload),
    };
    plain(
        &format!("{verb} now? {} on {on}", request.tool),
        HEADER_LIMIT,
    )
}

/// The section with the plan, and its risk, expiry, target and id as fields.
fn plan_section(ask: &Ask) -> Value {
    let approval = &ask.approval;
    let plan = &approval.request.preview;
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Risk*\n{}", risk_text(plan.risk))}),
        json!({"type": "mrkdwn", "text": format!(
            "*Expires*\n{}",
            expiry_text(approval.expires_at_ms, &approval.expires_at)
        )}),
    ];
    if let Some(t) = &plan.target {
        fields.push(json!({"type": "mrkdwn", "text": cut_chars(&format!(
            "*Target*\n{} {}{}{} (resourceVersion {})",
            md(&t.kind, 100),
            md(&t.namespace, 253),
            if t.namespace.is_empty() { "" } else { "/" },
            md(&t.name, 253),
            md(&t.resource_version, 64),
        ), FIELD_LIMIT)}));
    }
    fields.push(
        json!({"type": "mrkdwn", "text": format!("*Approval*\n{}", md(&approval.id, MAX_ID))}),
    );
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut_chars(&format!(
            "*Plan* ({}) {}",
            md(&approval.request.tool, 100),
            md(&plan.summary, 1000)
        ), SECTION_LIMIT)},
        "fields": fields,
    })
}

/// The images before and after, at most [`MAX_IMAGES`] lines.
fn images_section(images: &[sre_core::ImageChange]) -> Value {
    let mut text = String::from("*Images*");
    for image in images.iter().take(MAX_IMAGES) {
        let _ = write!(
            text,
            "\n• {}: {} → {}",
            md(&image.container, 100),
            image
                .before
                .as_deref()
                .map_or_else(|| "(new container)".to_owned(), |b| md(b, 250)),
            md(&image.after, 250)
        );
    }
    if images.len() > MAX_IMAGES {
        let _ = write!(text, "\n… and {} more", images.len() - MAX_IMAGES);
    }
    section(&text)
}

/// The diff as a rich-text code block (never parsed as markup), with the note when cut.
fn diff_block(diff: &str) -> Value {
    let (diff, note) = diff_text(diff);
    let shown = if diff.is_empty() {
        "(no diff)".to_owned()
    } else {
        diff
    };
    let mut elements = vec![json!({
        "type": "rich_text_preformatted",
        "elements": [{"type": "text", "text": shown}],
    })];
    if let Some(note) = note {
        elements.push(json!({
            "type": "rich_text_section",
            "elements": [{"type": "text", "text": note, "style": {"italic": true}}],
        }));
    }
    json!({"type": "rich_text", "block_id": "sre_diff", "elements": elements})
}

/// The lines of [`Evidence::render`] (already escaped for a terminal), each passed through
/// `line` (which escapes and bounds it for the chat) and all at most `limit` characters, cut at
/// a line break: the text, and how many of how many lines it holds. Teams cuts the same way.
pub(super) fn evidence_lines(
    evidence: &Evidence,
    line: impl Fn(&str) -> String,
    limit: usize,
) -> (String, usize, usize) {
    let rendered = evidence.render();
    let lines: Vec<String> = rendered.lines().map(line).collect();
    let mut shown = String::new();
    let mut used = 0;
    let mut kept = 0;
    for l in &lines {
        let extra = usize::from(kept > 0) + l.chars().count();
        if used + extra > limit {
            break;
        }
        if kept > 0 {
            shown.push('\n');
        }
        shown.push_str(l);
        used += extra;
        kept += 1;
    }
    (shown, kept, lines.len())
}

/// The evidence's lines for Slack (each at most [`SCAN_LINE_LIMIT`] characters, all at most
/// [`SCAN_LIMIT`]); the note says what was left out.
fn evidence_text(evidence: &Evidence) -> (String, Option<String>) {
    let (shown, kept, total) = evidence_lines(evidence, |l| plain(l, SCAN_LINE_LIMIT), SCAN_LIMIT);
    let note = (kept < total).then(|| {
        format!(
            "evidence cut: {kept} of {total} lines shown; the approvals API and --json have it whole"
        )
    });
    (shown, note)
}

/// The typed evidence as rich text (never parsed as markup): a bold label with the counts, the
/// rendered lines in a code block, and the note when cut.
fn evidence_block(evidence: &Evidence) -> Value {
    let (lines, note) = evidence_text(evidence);
    let mut elements = vec![
        json!({
            "type": "rich_text_section",
            "elements": [
                {"type": "text", "text": "Findings:", "style": {"bold": true}},
                {"type": "text", "text": format!(" {}", evidence.headline())},
            ],
        }),
        json!({
            "type": "rich_text_preformatted",
            "elements": [{"type": "text", "text": lines}],
        }),
    ];
    if let Some(note) = note {
        elements.push(json!({
            "type": "rich_text_section",
            "elements": [{"type": "text", "text": note, "style": {"italic": true}}],
        }));
    }
    json!({"type": "rich_text", "block_id": SCAN_BLOCK, "elements": elements})
}

/// The Approve (with a confirm dialog) and Reject buttons; their value is the id alone.
fn buttons(ask: &Ask) -> Value {
    let id = &ask.approval.id;
    json!({
        "type": "actions",
        "block_id": ACTIONS_BLOCK,
        "elements": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "text": {"type": "plain_text", "text": "Approve", "emoji": false},
                "style": "primary",
                "value": id,
                "confirm": {
                    "title": {"type": "plain_text", "text": "Apply this change?"},
                    "text": {"type": "mrkdwn", "text": cut_chars(&format!(
                        "{} will be applied to the cluster if the target has not changed; a changed target asks again.",
                        md(&ask.approval.request.preview.summary, 250)
                    ), 300)},
                    "confirm": {"type": "plain_text", "text": "Approve"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                    "style": "primary",
                },
            },
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "text": {"type": "plain_text", "text": "Reject", "emoji": false},
                "style": "danger",
                "value": id,
            },
        ],
    })
}

/// The Block Kit blocks of the question about `ask`, buttons included. Every untrusted string
/// is escaped and bounded.
pub fn question_blocks(ask: &Ask, public_url: Option<&Url>) -> Vec<Value> {
    let plan = &ask.approval.request.preview;
    let id = md(&ask.approval.id, MAX_ID);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": header_text(ask), "emoji": false},
    })];
    blocks.push(section(&format!(
        "*Incident* {} · seen by {} · workload {}/{}",
        md(&ask.incident.key, 200),
        ask.incident.trigger.as_str(),
        md(&ask.incident.namespace, 253),
        md(&ask.incident.workload, 253),
    )));
    let (evidence, cut) = fit(&ask.incident.summary, EVIDENCE_LIMIT, true, false);
    let mut quote = vec![json!({"type": "text", "text": evidence})];
    if cut {
        quote.push(json!({"type": "text", "text": " … (cut)", "style": {"italic": true}}));
    }
    blocks.push(json!({
        "type": "rich_text",
        "block_id": "sre_evidence",
        "elements": [{"type": "rich_text_quote", "elements": quote}],
    }));
    blocks.push(plan_section(ask));
    if let Some(warning) = &plan.warning {
        blocks.push(section(&format!(
            ":warning: *Warning* {}",
            md(warning, 1000)
        )));
    }
    if let Some(images) = plan.images.as_ref().filter(|i| !i.is_empty()) {
        blocks.push(images_section(images));
    }
    if let Some(evidence) = plan.evidence.as_deref().filter(|e| !e.is_empty()) {
        blocks.push(evidence_block(evidence));
    }
    blocks.push(section("*Dry-run diff*"));
    blocks.push(diff_block(&plan.diff));
    blocks.push(buttons(ask));
    let mut footer = format!(
        "Approve applies exactly this plan, re-checked against the cluster first. Or: `sre-agent approvals show {id}`"
    );
    if let Some(url) = public_url {
        let _ = write!(
            footer,
            " · <{}/api/v1/approvals/{id}|approvals API>",
            url.as_str().trim_end_matches('/')
        );
    }
    blocks.push(context("sre_help", &footer));
    blocks
}

fn risk_text(risk: sre_core::Risk) -> &'static str {
    match risk {
        sre_core::Risk::Low => "low",
        sre_core::Risk::Medium => "medium",
        sre_core::Risk::High => ":rotating_light: high",
    }
}

fn expiry_text(expires_at_ms: u64, expires_at: &str) -> String {
    let secs = expires_at_ms / 1000;
    if secs == 0 {
        md(expires_at, 64)
    } else {
        slack_date(secs)
    }
}

/// The `chat.postMessage` body asking about `ask` in `channel`: `text` (the notification
/// fallback, with the evidence's counts) and the [`question_blocks`]; links are not unfurled.
pub fn question_message(ask: &Ask, channel: &str, public_url: Option<&Url>) -> Value {
    let counts = ask
        .approval
        .request
        .preview
        .evidence
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(|e| format!(" ({})", md(&e.headline(), 500)))
        .unwrap_or_default();
    let text = format!(
        "{}{counts} — approval {} expires {}",
        header_text(ask),
        md(&ask.approval.id, MAX_ID),
        md(&ask.approval.expires_at, 64),
    );
    json!({
        "channel": channel,
        "text": cut_chars(&text, 3000),
        "blocks": question_blocks(ask, public_url),
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// The context line saying how an approval ended, at `unix_secs`.
fn ending_line(ending: &Ending, unix_secs: u64) -> String {
    let at = slack_date(unix_secs);
    match ending {
        Ending::Applied { by } => {
            format!(
                ":white_check_mark: Approved by {}: applied and verified · {at}",
                who(by)
            )
        }
        Ending::RolledBack { by, detail } => format!(
            ":rewind: Approved by {}: applied, verification failed, rolled back ({}) · {at}",
            who(by),
            md(detail, 500)
        ),
        Ending::Refused { by, reason } => format!(
            ":no_entry: Approved by {}, but not applied: {} · {at}",
            who(by),
            md(reason, 500)
        ),
        Ending::AskedAgain { approval } => format!(
            ":arrows_counterclockwise: The target changed before it was applied: this approval is void; asked again as {} · {at}",
            md(approval, MAX_ID)
        ),
        Ending::Denied { by, reason } => {
            format!(":x: Denied by {}: {} · {at}", who(by), md(reason, 500))
        }
        Ending::Expired => {
            format!(":hourglass: Expired: nobody decided in time; nothing was applied · {at}")
        }
    }
}

/// How a decided (or not decidable) approval stands, for the message and the clicker.
fn standing_line(view: &ApprovalView) -> String {
    let at = view
        .decided_at_ms
        .map(|ms| format!(" · {}", slack_date(ms / 1000)))
        .unwrap_or_default();
    let by = view.decided_by.as_deref().map(who).unwrap_or_default();
    match view.state {
        ApprovalState::Approved => format!(
            ":white_check_mark: Approved by {by}{at}: the run resumes, re-checks the target, applies and verifies; the outcome follows here"
        ),
        ApprovalState::Rejected => format!(
            ":x: Rejected by {by}{at}: nothing will be applied ({})",
            md(view.reason.as_deref().unwrap_or("rejected"), 300)
        ),
        ApprovalState::Expired => format!(
            ":hourglass: Expired at {}: nothing was applied",
            expiry_text(rfc3339_secs(&view.expires_at) * 1000, &view.expires_at)
        ),
        ApprovalState::Pending => ":hourglass_flowing_sand: Waiting for a decision".to_owned(),
    }
}

fn rfc3339_secs(text: &str) -> u64 {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// The interactivity endpoint.

/// Why an interaction request was refused before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    MissingTimestamp,
    BadTimestamp,
    Stale,
    MissingSignature,
    BadSignature,
    Mismatch,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Self::MissingTimestamp | Self::BadTimestamp => "bad_timestamp",
            Self::Stale => "stale_timestamp",
            Self::MissingSignature | Self::BadSignature => "bad_signature",
            Self::Mismatch => "signature_mismatch",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::MissingTimestamp => "the X-Slack-Request-Timestamp header is missing",
            Self::BadTimestamp => {
                "the X-Slack-Request-Timestamp header is not one Unix time in seconds"
            }
            Self::Stale => {
                "the X-Slack-Request-Timestamp is more than 5 minutes from now (a replayed or delayed request, or a clock out of sync)"
            }
            Self::MissingSignature => "the X-Slack-Signature header is missing",
            Self::BadSignature => {
                "the X-Slack-Signature header is not one v0= signature (v0= and 64 hex digits)"
            }
            Self::Mismatch => {
                "the X-Slack-Signature does not match the request: wrong signing secret, or the body was altered"
            }
        }
    }
}

/// `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}` under `secret`.
fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The one value of header `name`, as text.
fn one_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<Result<&'h str, ()>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(()));
    }
    Some(first.to_str().map_err(|_| ()))
}

/// Checks Slack's `v0` signature of a request at `now_secs`.
fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8], now_secs: u64) -> Result<(), Refusal> {
    let timestamp = match one_header(headers, "x-slack-request-timestamp") {
        None => return Err(Refusal::MissingTimestamp),
        Some(Err(())) => return Err(Refusal::BadTimestamp),
        Some(Ok(t)) => t,
    };
    if timestamp.is_empty()
        || timestamp.len() > 12
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Refusal::BadTimestamp);
    }
    let at: u64 = timestamp.parse().map_err(|_| Refusal::BadTimestamp)?;
    if at.abs_diff(now_secs) > MAX_SKEW.as_secs() {
        return Err(Refusal::Stale);
    }
    let presented = match one_header(headers, "x-slack-signature") {
        None => return Err(Refusal::MissingSignature),
        Some(Err(())) => return Err(Refusal::BadSignature),
        Some(Ok(s)) => s,
    };
    let well_formed = presented.len() == 67
        && presented.starts_with("v0=")
        && presented[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(Refusal::BadSignature);
    }
    let expected = signature(secret, timestamp, body);
    if bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn form_decode(text: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The one `payload` field of a form body.
fn form_payload(body: &[u8]) -> Result<String, String> {
    let mut payload = None;
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let key = form_decode(key).ok_or("the form body is not valid URL-encoded UTF-8")?;
        if key != "payload" {
            continue;
        }
        if payload.is_some() {
            return Err("the form body has more than one payload field".to_owned());
        }
        payload =
            Some(form_decode(value).ok_or("the payload field is not valid URL-encoded UTF-8")?);
    }
    payload.ok_or_else(|| "the form body has no payload field".to_owned())
}

/// The fields of an interaction payload that are read (Slack sends many more).
#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    container: Option<Container>,
    #[serde(default)]
    channel: Option<IdOnly>,
    #[serde(default)]
    message: Option<MessageRef>,
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    id: String,
}

#[derive(Debug, Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: String,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    message_ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageRef {
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    blocks: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Action {
    #[serde(default)]
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

impl Interaction {
    /// The clicked message: channel, ts and blocks.
    fn message(&self) -> Option<Posted> {
        let channel = self
            .container
            .as_ref()
            .and_then(|c| c.channel_id.clone())
            .or_else(|| self.channel.as_ref().map(|c| c.id.clone()))
            .filter(|c| !c.is_empty())?;
        let ts = self
            .container
            .as_ref()
            .and_then(|c| c.message_ts.clone())
            .or_else(|| self.message.as_ref().and_then(|m| m.ts.clone()))
            .filter(|t| !t.is_empty())?;
        let blocks = self
            .message
            .as_ref()
            .map(|m| m.blocks.clone())
            .unwrap_or_default();
        Some(Posted {
            channel,
            ts,
            blocks,
        })
    }
}

/// An approval id as the store issues them: short, URL-safe.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[derive(Clone)]
struct Endpoint {
    slack: Arc<Slack>,
    sink: DecisionSink,
}

/// The interactivity endpoint, `POST` [`PATH`]: verifies Slack's signature, checks the clicking
/// user, and records the decision in `sink`. Merge it into `serve`'s router.
pub fn routes(slack: Arc<Slack>, sink: DecisionSink) -> Router {
    Router::new()
        .route(PATH, post(interactions))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Endpoint { slack, sink })
}

/// A JSON error: `{"error", "status", "code"}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": message, "status": status.as_u16(), "code": code})),
    )
        .into_response()
}

/// What Slack is answered with: an ephemeral text for the clicker.
fn answer(text: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({
            "response_type": "ephemeral",
            "replace_original": false,
            "text": text,
        })),
    )
        .into_response()
}

fn ignored(why: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "ignored": why})),
    )
        .into_response()
}

/// A verified click on one of the two buttons.
#[derive(Debug)]
struct Click {
    user: String,
    approval: String,
    approve: bool,
    /// SHA-256 (hex) of the raw request.
    digest: String,
    /// The clicked message, when the payload says where it is.
    message: Option<Posted>,
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Verifies and reads an interaction request: a [`Click`], or the answer to give (a refusal, or
/// `200` for a verified interaction that is not a click on our buttons).
#[expect(
    clippy::result_large_err,
    reason = "the error is the response, returned at once by the one caller"
)]
fn read_click(
    secret: &Secret,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Click, Response> {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the body is larger than {MAX_BODY} bytes"),
            ));
        }
        Err(e) => return Err(error(e.status(), "bad_request", &e.body_text())),
    };
    if let Err(refusal) = verify(secret.expose().as_bytes(), headers, &body, now_secs()) {
        tracing::warn!(
            reason = refusal.message(),
            "slack: interaction request refused"
        );
        return Err(error(
            StatusCode::UNAUTHORIZED,
            refusal.code(),
            refusal.message(),
        ));
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "an interaction is a form body: Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let payload = form_payload(&body).map_err(|m| bad_request(&m))?;
    let interaction: Interaction = serde_json::from_str(&payload).map_err(|e| {
        bad_request(&format!(
            "the payload is not an interaction: {}",
            sre_core::Redactor::default().redact_parse_error(&e.to_string())
        ))
    })?;
    if interaction.kind != "block_actions" {
        return Err(ignored(&format!(
            "interaction type {:?} is not handled",
            md(&interaction.kind, 40)
        )));
    }
    let ours: Vec<&Action> = interaction
        .actions
        .iter()
        .filter(|a| matches!(a.action_id.as_str(), APPROVE_ACTION | REJECT_ACTION))
        .collect();
    let action = match ours.as_slice() {
        [] => return Err(ignored("no sre_approve or sre_reject action")),
        [one] => *one,
        _ => {
            return Err(bad_request(
                "the payload has more than one sre_approve/sre_reject action",
            ));
        }
    };
    let user = interaction
        .user
        .as_ref()
        .map(|u| u.id.as_str())
        .filter(|u| user_id(u))
        .ok_or_else(|| bad_request("the payload has no valid user.id"))?;
    let approval = action
        .value
        .as_deref()
        .filter(|v| plausible_id(v))
        .ok_or_else(|| bad_request("the action's value is not an approval id"))?;
    Ok(Click {
        user: user.to_owned(),
        approval: approval.to_owned(),
        approve: action.action_id == APPROVE_ACTION,
        digest: hex::encode(Sha256::digest(&body)),
        message: interaction.message(),
    })
}

/// A button click as the interactivity endpoint reads it, before the approver check and the
/// store: see [`read_interaction`].
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionClick {
    /// The clicking user's Slack id.
    pub user: String,
    /// The approval id the button carries.
    pub approval: String,
    /// True for the approve button.
    pub approve: bool,
    /// The clicked message's channel and ts, when the payload says where it is.
    pub message: Option<(String, String)>,
}

/// Runs the interactivity endpoint's read path on one request — the `v0` signature under
/// `signing_secret` checked against the clock now, the form body, the payload's JSON, the
/// action — and nothing after it (no approver check, no store). `Err` is the HTTP status and
/// body the endpoint answers with. Public for the fuzz targets in `benches/fuzz`.
///
/// # Errors
/// Whatever the endpoint refuses or ignores, as its status and JSON body.
#[doc(hidden)]
pub fn read_interaction(
    signing_secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<InteractionClick, (u16, String)> {
    use futures::FutureExt as _;
    let secret = Secret::new(signing_secret);
    match read_click(&secret, headers, Ok(Bytes::copy_from_slice(body))) {
        Ok(click) => Ok(InteractionClick {
            user: click.user,
            approval: click.approval,
            approve: click.approve,
            message: click.message.map(|m| (m.channel, m.ts)),
        }),
        Err(response) => {
            let status = response.status().as_u16();
            // The endpoint's answers are in-memory JSON bodies: reading them never waits.
            let text = axum::body::to_bytes(response.into_body(), MAX_BODY)
                .now_or_never()
                .and_then(Result::ok)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Err((status, text))
        }
    }
}

/// What the clicker is told and the line the message shows, for the store's answer.
fn outcome(
    click: &Click,
    decided: Result<ApprovalView, DecideError>,
) -> Result<(String, String), DecideError> {
    let id = &click.approval;
    Ok(match decided {
        Ok(view) => (
            format!(
                "{} approval {id}.",
                if click.approve {
                    "You approved"
                } else {
                    "You rejected"
                }
            ),
            standing_line(&view),
        ),
        Err(DecideError::AlreadyDecided(view)) => {
            let how = match view.state {
                ApprovalState::Approved => "approved",
                ApprovalState::Rejected => "rejected",
                ApprovalState::Pending | ApprovalState::Expired => "decided",
            };
            let by = view
                .decided_by
                .as_deref()
                .map(|b| format!(" by {}", md(b, 200)))
                .unwrap_or_default();
            (
                format!("Approval {id} was already {how}{by}; your click changed nothing."),
                standing_line(&view),
            )
        }
        Err(DecideError::Expired(view)) => (
            format!(
                "Approval {id} expired at {}; nothing was decided and nothing will be applied.",
                md(&view.expires_at, 64)
            ),
            standing_line(&view),
        ),
        Err(DecideError::NotFound(_)) => (
            format!(
                "Approval {id} is not pending any more (it was resumed, or replaced by a new question); nothing was decided."
            ),
            ":grey_question: This approval is no longer pending; nothing was decided here"
                .to_owned(),
        ),
        Err(DecideError::OtherAction { .. }) => (
            format!("Approval {id} now waits for another action; review the new question."),
            ":arrows_counterclockwise: The plan changed; a new question follows".to_owned(),
        ),
        Err(e) => return Err(e),
    })
}

async fn interactions(
    State(endpoint): State<Endpoint>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let slack = &endpoint.slack;
    let secret = match slack.config.signing_secret.get().await {
        Ok(secret) => secret,
        Err(e) => {
            tracing::error!(error = %e, "slack: the signing secret cannot be had: interactions are refused until it can");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "secret_unavailable",
                "the signing secret cannot be had",
            );
        }
    };
    let click = match read_click(&secret, &headers, body) {
        Ok(click) => click,
        Err(answer) => return answer,
    };
    let (user, id) = (click.user.as_str(), click.approval.as_str());
    match slack.is_approver(user).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                user,
                approval = id,
                "slack: a user who is not an approver clicked; nothing decided"
            );
            let text = format!(
                "You are not allowed to decide approval {id}: only the configured approvers may. Nothing was decided."
            );
            if let Some(m) = &click.message {
                let (slack, channel, user, text) = (
                    Arc::clone(slack),
                    m.channel.clone(),
                    user.to_owned(),
                    text.clone(),
                );
                tokio::spawn(async move {
                    if let Err(e) = slack.ephemeral(&channel, &user, &text).await {
                        tracing::warn!(error = %e, "slack: could not tell a user they may not decide");
                    }
                });
            }
            return answer(&text);
        }
        Err(e) => {
            tracing::error!(error = %e, "slack: cannot check the approver group; nothing decided");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "approvers_unavailable",
                "cannot check the approver group right now; nothing was decided; try again",
            );
        }
    }
    let decision = ChatDecision {
        channel: "slack",
        approval: id,
        approve: click.approve,
        user,
        request_digest: click.digest.clone(),
    };
    let decided = channel::decide(&endpoint.sink, &decision).await;
    let (text, line) = match outcome(&click, decided) {
        Ok(texts) => texts,
        Err(e) => {
            tracing::error!(error = %e, approval = id, "slack: the run store failed to record a decision");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the run store is unavailable; nothing was decided; try again",
            );
        }
    };
    // Acknowledge now; update the message after.
    let remembered = {
        let posted = slack.posted.lock().unwrap_or_else(PoisonError::into_inner);
        posted.by_id.get(id).cloned()
    };
    let target = match (click.message, remembered) {
        (Some(m), Some(r)) if m.blocks.is_empty() => Some(Posted {
            blocks: r.blocks,
            ..m
        }),
        (Some(m), _) => Some(m),
        (None, r) => r,
    };
    let (slack, user, ephemeral) = (Arc::clone(slack), click.user, text.clone());
    tokio::spawn(async move {
        let Some(target) = target else { return };
        if let Err(e) = slack
            .update(&target.channel, &target.ts, &target.blocks, &line)
            .await
        {
            tracing::warn!(error = %e, "slack: could not update the approval message");
        }
        if let Err(e) = slack.ephemeral(&target.channel, &user, &ephemeral).await {
            tracing::debug!(error = %e, "slack: could not answer the clicker");
        }
    });
    answer(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::secret::{SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET};

    // Slack's worked example (docs.slack.dev, "Verifying requests from Slack").
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TS: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-slack-request-timestamp", ts.parse().unwrap());
        h.insert("x-slack-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn slacks_worked_example_verifies() {
        assert_eq!(
            signature(DOC_SECRET.as_bytes(), DOC_TS, DOC_BODY.as_bytes()),
            DOC_SIG
        );
        let at = 1_531_420_618;
        let h = headers(DOC_TS, DOC_SIG);
        assert_eq!(
            verify(DOC_SECRET.as_bytes(), &h, DOC_BODY.as_bytes(), at + 300),
            Ok(())
        );
        assert_eq!(
            verify(DOC_SECRET.as_bytes(), &h, DOC_BODY.as_bytes(), at - 300),
            Ok(())
        );
        assert_eq!(
            verify(DOC_SECRET.as_bytes(), &h, DOC_BODY.as_bytes(), at + 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify(DOC_SECRET.as_bytes(), &h, DOC_BODY.as_bytes(), at - 301),
            Err(Refusal::Stale)
        );
        let mut altered = DOC_BODY.as_bytes().to_vec();
        altered[6] ^= 1;
        assert_eq!(
            verify(DOC_SECRET.as_bytes(), &h, &altered, at),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(
                b"another-secret-0123456789abcdef",
                &h,
                DOC_BODY.as_bytes(),
                at
            ),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn malformed_signature_headers_are_refused() {
        let at = 1_531_420_618;
        let body = DOC_BODY.as_bytes();
        let secret = DOC_SECRET.as_bytes();
        assert_eq!(
            verify(secret, &HeaderMap::new(), body, at),
            Err(Refusal::MissingTimestamp)
        );
        let mut h = HeaderMap::new();
        h.insert("x-slack-request-timestamp", DOC_TS.parse().unwrap());
        assert_eq!(verify(secret, &h, body, at), Err(Refusal::MissingSignature));
        for ts in ["", "-1", "1531420618.5", "0x5b47", "99999999999999"] {
            assert_eq!(
                verify(secret, &headers(ts, DOC_SIG), body, at),
                Err(Refusal::BadTimestamp),
                "{ts:?}"
            );
        }
        let upper = DOC_SIG.to_uppercase().replacen("V0=", "v0=", 1);
        for sig in ["", "v1=abc", &DOC_SIG[..66], "a2114d57", &upper] {
            assert_eq!(
                verify(secret, &headers(DOC_TS, sig), body, at),
                Err(Refusal::BadSignature),
                "{sig:?}"
            );
        }
        let mut two = headers(DOC_TS, DOC_SIG);
        two.append("x-slack-signature", DOC_SIG.parse().unwrap());
        assert_eq!(verify(secret, &two, body, at), Err(Refusal::BadSignature));
    }

    #[test]
    fn form_bodies_decode() {
        assert_eq!(
            form_payload(b"payload=%7B%22a%22%3A+1%7D").unwrap(),
            "{\"a\": 1}"
        );
        assert_eq!(form_payload(b"x=1&payload=ok&y").unwrap(), "ok");
        assert!(form_payload(b"x=1").unwrap_err().contains("no payload"));
        assert!(
            form_payload(b"payload=a&payload=b")
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            form_payload(b"payload=%zz")
                .unwrap_err()
                .contains("not valid")
        );
        assert!(
            form_payload(b"payload=%4")
                .unwrap_err()
                .contains("not valid")
        );
        assert!(
            form_payload(b"payload=%ff")
                .unwrap_err()
                .contains("not valid")
        );
    }

    #[test]
    fn escaping_neutralises_markup_and_bounds_length() {
        assert_eq!(
            md("<!channel> & <@U1|x>", 100),
            "&lt;!channel&gt; &amp; &lt;@U1|x&gt;"
        );
        assert_eq!(md("a\u{1b}[2Kb\nc", 100), "a\\e[2Kb\\nc");
        assert_eq!(md("abcdef", 4), "abc…");
        // An entity is never cut in half.
        assert_eq!(md("a&b", 4), "a…");
        assert_eq!(plain("<b>", 10), "<b>");
        let (text, cut) = fit("x\ny\u{202e}", 100, true, false);
        assert_eq!((text.as_str(), cut), ("x\ny\\u{202e}", false));
    }

    #[test]
    fn long_diffs_are_cut_at_a_line_with_a_note() {
        let mut diff = String::new();
        for i in 0..500 {
            let _ = writeln!(diff, "+ line {i:04} of the diff");
        }
        let (shown, note) = diff_text(&diff);
        assert!(shown.chars().count() <= DIFF_LIMIT);
        assert!(
            shown.ends_with("of the diff"),
            "{}",
            &shown[shown.len() - 30..]
        );
        let note = note.unwrap();
        assert!(note.contains("of 500 lines shown"), "{note}");
        let (short, no_note) = diff_text("-a\n+b\n");
        assert_eq!((short.as_str(), no_note), ("-a\n+b", None));
    }

    #[test]
    fn config_errors_name_the_problem_and_never_the_secret() {
        let token =
            || ServiceSecret::fixed(&SLACK_BOT_TOKEN, "xoxb-1234-5678-abcdefghijkl").unwrap();
        let secret = || {
            ServiceSecret::fixed(&SLACK_SIGNING_SECRET, "0123456789abcdef0123456789abcdef").unwrap()
        };
        let e = ServiceSecret::fixed(&SLACK_BOT_TOKEN, "not-a-token-secret-value")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("xox") && !e.contains("not-a-token-secret-value"),
            "{e}"
        );
        let e = ServiceSecret::fixed(&SLACK_SIGNING_SECRET, "short")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 16") && !e.contains("short\""), "{e}");
        let e = SlackConfig::new(token(), secret(), "Ops Channel", "UABC")
            .unwrap_err()
            .to_string();
        assert!(e.contains("channel"), "{e}");
        let e = SlackConfig::new(token(), secret(), "C1234", "UABC, alice@example.com")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("alice@example.com") && e.contains("not a Slack user id"),
            "{e}"
        );
        let c = SlackConfig::new(token(), secret(), "#ops", "UABC WDEF,UABC").unwrap();
        assert_eq!(c.approvers, ["UABC", "WDEF"]);
        assert_eq!(c.api_url.as_str(), "https://slack.com/api");
        assert!(c.clone().with_api_url("ftp://x").is_err());
        assert!(c.clone().with_api_url("https://u:p@x/api").is_err());
        assert!(c.clone().with_approver_group("ops-team").is_err());
        let e = Slack::new(SlackConfig::new(token(), secret(), "C1234", "").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("nobody may decide"), "{e}");
        assert!(!format!("{:?}", token()).contains("xoxb-1234"));
        let e = ServiceSecret::fixed(&SLACK_BOT_TOKEN, "xoxb has spaces")
            .unwrap_err()
            .to_string();
        assert!(e.contains("byte 4") && !e.contains("has spaces"), "{e}");
    }

    #[test]
    fn endings_render_who_and_when() {
        let line = ending_line(
            &Ending::Applied {
                by: "slack:U0ABC".into(),
            },
            1_700_000_000,
        );
        assert!(
            line.contains("<@U0ABC>") && line.contains("<!date^1700000000^"),
            "{line}"
        );
        let line = ending_line(
            &Ending::Denied {
                by: "api:<!here>".into(),
                reason: "no".into(),
            },
            1,
        );
        assert!(line.contains("api:&lt;!here&gt;"), "{line}");
        assert_eq!(
            plain_of("a &lt;b&gt; <!date^1^{time}|1970-01-01T00:00:01Z> c"),
            "a <b> 1970-01-01T00:00:01Z c"
        );
    }
}
