//! Microsoft Teams approvals: an Adaptive Card with Approve / Reject buttons sent through the Bot
//! Framework connector, and `POST /teams/messages`, which takes the click.
//!
//! **Asking.** [`Teams`] is a [`Channel`]. [`ask`](Channel::ask) gets a bot token from
//! Microsoft Entra ID (client credentials, cached until shortly before it expires) and posts a
//! message with an Adaptive Card (version [`CARD_VERSION`]) to the configured conversation:
//! `POST {serviceUrl}/v3/conversations/{conversationId}/activities`. The card shows the evidence,
//! the plan, its risk and warning, the tool's typed findings (for an image patch the current and
//! the candidate image's scans and the CRITICAL/HIGH ids it clears, keeps and adds; for a
//! rollback the crash: a count line and the lines of
//! [`Evidence::render`](sre_core::evidence::Evidence::render), bounded by [`MAX_FINDINGS`]),
//! the dry-run diff (bounded), the target and the expiry, and two
//! `Action.Execute` buttons whose `verb` is [`VERB_APPROVE`] or [`VERB_REJECT`] and whose `data`
//! is `{"approval": "<id>"}` — the opaque id, never the change. The activity id the connector
//! returns is remembered (in memory, at most [`MAX_REMEMBERED`]) so that
//! [`settle`](Channel::settle) can replace the card with how the approval ended
//! (`PUT …/activities/{activityId}`).
//!
//! **Deciding.** [`routes`] serves `POST /teams/messages`, the bot's messaging endpoint. Every
//! request must carry `Authorization: Bearer <jwt>` signed by the Bot Framework: RS256, a key
//! published in the JWKS named by the `OpenID` metadata (cached; refetched when stale and, at most
//! once per [`TeamsConfig::keys_min_refetch`], when a token names an unknown key — rotation),
//! issuer [`BOT_FRAMEWORK_ISSUER`], audience the bot's app id, `exp`/`nbf` within
//! [`TeamsConfig::leeway`], the `serviceurl` claim equal to the activity's `serviceUrl`, and the
//! key endorsed for the activity's `channelId` when the key lists endorsements. Anything else is
//! `401` with a JSON `{"error", "status", "code"}` naming the reason, and nothing is decided.
//!
//! An `invoke` activity named `adaptiveCard/action` with verb [`VERB_APPROVE`] or
//! [`VERB_REJECT`] is then decided with [`channel::decide`] as `teams:<aadObjectId>` — only when
//! `from.aadObjectId` is in [`TeamsConfig::approvers`] — and answered as Universal Actions
//! expect: HTTP 200 with `{"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive",
//! "value": <the refreshed card>}`. A user not on the allow-list, an approval already decided,
//! expired or unknown get a card saying so, and nothing changes. Other activities get `200` and
//! an empty body.
//!
//! **Untrusted text.** Every string that came from the cluster, the model or a user is escaped
//! ([`escape_untrusted`]), bounded, and placed in `TextRun`s of a `RichTextBlock`, which Adaptive
//! Cards render as plain text (no Markdown: no links or formatting can be smuggled in).
//!
//! **Fallback.** [`TeamsWebhook`] posts a notification card to a Teams Workflows ("incoming
//! webhook") URL. It is not interactive: the card says to decide with
//! `sre-agent approvals approve <id>` and links to the approvals API.
//!
//! ```no_run
//! # async fn demo(sink: sre_tools::serve::channel::DecisionSink) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sre_tools::serve::secret::{ServiceSecret, TEAMS_APP_PASSWORD};
//! use sre_tools::serve::teams::{Teams, TeamsConfig, routes};
//!
//! let config = TeamsConfig::new(
//!     "00000000-0000-0000-0000-000000000001",
//!     ServiceSecret::from_file(&TEAMS_APP_PASSWORD, "/var/run/secrets/teams/app-password")?,
//!     vec!["6b3c7a5e-1d2f-4e8a-9b0c-112233445566".to_owned()],
//!     "https://smba.trafficmanager.net/emea/",
//!     "19:abc123@thread.tacv2",
//! );
//! let teams = Arc::new(Teams::new(config)?);
//! let router = routes(Arc::clone(&teams), sink); // merge into serve's router
//! # drop(router);
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, Url};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sre_core::evidence::Evidence;
use sre_core::plan::{Risk, Target};
use sre_core::secret::SecretError;
use sre_core::text::{escape_untrusted, escape_untrusted_lines};
use tokio::time::Instant;

use super::channel::{self, Ask, Channel, ChannelError, ChatDecision, DecisionSink, Settled};
use super::secret::ServiceSecret;
use super::{ApprovalState, ApprovalView, DecideError};

/// The issuer of every token the Bot Framework sends to a bot.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";
/// The Bot Framework's `OpenID` metadata (it names the JWKS of its signing keys).
pub const DEFAULT_OPENID_METADATA_URL: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";
/// Where a multi-tenant bot gets its token for the connector (client credentials).
pub const DEFAULT_TOKEN_URL: &str =
    "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token";
/// The scope of the bot's connector token.
pub const BOT_FRAMEWORK_SCOPE: &str = "https://api.botframework.com/.default";
/// The path of the messaging endpoint.
pub const PATH: &str = "/teams/messages";
/// The `verb` of the Approve button.
pub const VERB_APPROVE: &str = "sre_approve";
/// The `verb` of the Reject button.
pub const VERB_REJECT: &str = "sre_reject";
/// The content type of an Adaptive Card attachment and of a card invoke response.
pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";
/// The content type of an error invoke response.
pub const INVOKE_ERROR: &str = "application/vnd.microsoft.error";
/// The Adaptive Card version of every card (`Action.Execute` needs 1.4).
pub const CARD_VERSION: &str = "1.4";
/// The largest request body `/teams/messages` reads.
pub const MAX_BODY: usize = 64 * 1024;
/// How many posted cards are remembered for [`settle`](Channel::settle).
pub const MAX_REMEMBERED: usize = 1024;
/// The most characters of evidence (the incident summary) a card shows.
pub const MAX_EVIDENCE: usize = 1000;
/// The most characters of the diff a card shows.
pub const MAX_DIFF: usize = 4000;
/// The most characters of the tool's typed findings (scans, crash) a card shows; longer ones
/// are cut at a line break, with a note. Each line is cut at [`MAX_FINDINGS_LINE`] first.
pub const MAX_FINDINGS: usize = 2000;
/// The most characters of one line of the findings (a very long id or log line).
pub const MAX_FINDINGS_LINE: usize = 300;
/// The most characters of any other untrusted line a card shows.
const MAX_LINE: usize = 500;
/// The longest approval id accepted from a button, in bytes.
const MAX_ID: usize = 128;
/// Tries of one connector call (the first and the retries of 429, 5xx and connection errors).
const TRIES: u32 = 3;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Why Teams could not be set up. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TeamsError {
    /// A setting is unusable.
    #[error("teams: {field}: {reason}")]
    Config {
        /// The setting (`app_id`, `approvers`, `service_url`, …).
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A secret could not be had or is not what it should be.
    #[error("teams: {0}")]
    Secret(#[from] SecretError),
}

fn config_error(field: &'static str, reason: impl Into<String>) -> TeamsError {
    TeamsError::Config {
        field,
        reason: reason.into(),
    }
}

/// How the bot talks to Teams and whom it lets decide. [`TeamsConfig::new`] fills in the Bot
/// Framework's endpoints and working defaults; [`Teams::new`] validates it.
#[derive(Debug, Clone)]
pub struct TeamsConfig {
    /// The bot's Microsoft App ID (a GUID): the audience of incoming tokens, the client id of
    /// outgoing ones.
    pub app_id: String,
    /// The bot's client secret (of kind [`TEAMS_APP_PASSWORD`](super::secret::TEAMS_APP_PASSWORD)).
    pub app_password: ServiceSecret,
    /// The AAD (Entra ID) object ids of the users who may decide (GUIDs, case-insensitive).
    pub approvers: Vec<String>,
    /// The `OpenID` metadata naming the signing keys (default [`DEFAULT_OPENID_METADATA_URL`]).
    pub openid_metadata_url: String,
    /// The token endpoint (default [`DEFAULT_TOKEN_URL`]; a single-tenant bot uses
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`).
    pub token_url: String,
    /// The connector's service URL for proactive posts (e.g.
    /// `https://smba.trafficmanager.net/emea/`; it is the `serviceUrl` of any activity the bot
    /// received from that tenant).
    pub service_url: String,
    /// The conversation (a channel's `19:…@thread.tacv2`, a chat, a personal conversation) the
    /// cards are posted to.
    pub conversation_id: String,
    /// Clock skew allowed on `exp` and `nbf` (default 2 minutes, at most 5).
    pub leeway: Duration,
    /// How long fetched signing keys are used before they are fetched again (default 24 hours).
    pub keys_max_age: Duration,
    /// The shortest time between two fetches caused by an unknown key id (default 1 minute), so
    /// forged key ids cannot make the bot hammer the metadata endpoint.
    pub keys_min_refetch: Duration,
    /// Timeout of one outgoing request (default 10 s).
    pub request_timeout: Duration,
}

impl TeamsConfig {
    /// A config with the Bot Framework's endpoints and the default timings.
    pub fn new(
        app_id: impl Into<String>,
        app_password: ServiceSecret,
        approvers: Vec<String>,
        service_url: impl Into<String>,
        conversation_id: impl Into<String>,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            app_password,
            approvers,
            openid_metadata_url: DEFAULT_OPENID_METADATA_URL.to_owned(),
            token_url: DEFAULT_TOKEN_URL.to_owned(),
            service_url: service_url.into(),
            conversation_id: conversation_id.into(),
            leeway: Duration::from_secs(120),
            keys_max_age: Duration::from_secs(24 * 3600),
            keys_min_refetch: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`TeamsError::Config`] naming the first unusable setting and why.
    pub fn validate(&self) -> Result<(), TeamsError> {
        if !is_guid(&self.app_id) {
            return Err(config_error(
                "app_id",
                format!(
                    "{:?} is not a Microsoft App ID: use the GUID of the Azure Bot's app registration (like 00000000-0000-0000-0000-000000000000)",
                    shown(&self.app_id)
                ),
            ));
        }
        if self.approvers.is_empty() {
            return Err(config_error(
                "approvers",
                "no approvers: list the AAD object ids (GUIDs) of the users who may decide",
            ));
        }
        if let Some(bad) = self.approvers.iter().find(|a| !is_guid(a.trim())) {
            return Err(config_error(
                "approvers",
                format!(
                    "{:?} is not an AAD object id: use the user's Object ID from Entra ID (a GUID), not a name or e-mail address",
                    shown(bad)
                ),
            ));
        }
        check_url("openid_metadata_url", &self.openid_metadata_url)?;
        check_url("token_url", &self.token_url)?;
        check_url("service_url", &self.service_url)?;
        let conversation = self.conversation_id.trim();
        if conversation.is_empty() || conversation.len() > 1024 {
            return Err(config_error(
                "conversation_id",
                "give the id of the conversation to post to (1 to 1024 characters, e.g. 19:…@thread.tacv2)",
            ));
        }
        if conversation.chars().any(char::is_control) {
            return Err(config_error(
                "conversation_id",
                "it holds control characters",
            ));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(config_error(
                "leeway",
                "more than 5 minutes of clock skew makes expired tokens usable; fix the clock instead",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(config_error("request_timeout", "it must be more than zero"));
        }
        Ok(())
    }
}

/// `8-4-4-4-12` hex digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An untrusted value as an error may show it: escaped and bounded.
fn shown(s: &str) -> String {
    bounded(&escape_untrusted(s), 80)
}

/// `s` cut to `max` characters, saying how much was cut.
fn bounded(s: &str, max: usize) -> String {
    let total = s.chars().count();
    if total <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    let _ = write!(out, " … ({} more characters)", total - max);
    out
}

/// True for `localhost` and loopback addresses, where plain http is allowed (tests, a local
/// proxy).
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A URL the bot may call: https (http only on loopback), no credentials, no fragment.
fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err("plain http is allowed only on loopback: use https".to_owned()),
        other => return Err(format!("the scheme must be https, not {other:?}")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not accepted".to_owned());
    }
    if url.fragment().is_some() {
        return Err("a #fragment has no meaning here".to_owned());
    }
    Ok(url)
}

fn check_url(field: &'static str, text: &str) -> Result<Url, TeamsError> {
    parse_url(text).map_err(|reason| config_error(field, format!("{}: {reason}", shown(text))))
}

/// `scheme://host[:port]/path`: a URL as logs and errors show it (no query, which may hold a
/// signature).
fn display_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// The reqwest client every Teams call uses.
fn http_client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// A bot token and when to stop using it.
struct BotToken {
    value: String,
    until: Instant,
}

/// A published signing key.
#[derive(Clone)]
struct SigningKey {
    key: DecodingKey,
    /// The channels the key is endorsed for, when the JWKS lists them.
    endorsements: Option<Vec<String>>,
}

/// The signing keys by `kid`, and when they were fetched.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, SigningKey>,
    fetched: Option<Instant>,
}

/// The cards posted, by approval id (oldest forgotten first).
#[derive(Default)]
struct Posted {
    activity: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Posted {
    fn remember(&mut self, approval: &str, activity: String) {
        if self
            .activity
            .insert(approval.to_owned(), activity)
            .is_none()
        {
            self.order.push_back(approval.to_owned());
        }
        while self.order.len() > MAX_REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.activity.remove(&old);
            }
        }
    }
}

/// What a verified token says about the request.
struct Verified {
    /// The `serviceurl` claim, when present.
    service_url: Option<String>,
    /// The channels the signing key is endorsed for, when listed.
    endorsements: Option<Vec<String>>,
}

/// The Teams approval channel: posts cards through the Bot Framework connector and verifies
/// the clicks that come back to [`routes`].
pub struct Teams {
    config: TeamsConfig,
    metadata_url: Url,
    token_url: Url,
    service_url: Url,
    approvers: Vec<String>,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<BotToken>>,
    keys: tokio::sync::Mutex<KeyCache>,
    posted: Mutex<Posted>,
}

impl fmt::Debug for Teams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Teams")
            .field("app_id", &self.config.app_id)
            .field("service_url", &display_url(&self.service_url))
            .field("conversation_id", &self.config.conversation_id)
            .field("approvers", &self.approvers.len())
            .finish_non_exhaustive()
    }
}

impl Teams {
    /// The channel for `config`.
    ///
    /// # Errors
    /// [`TeamsError::Config`] when a setting is unusable ([`TeamsConfig::validate`]).
    pub fn new(config: TeamsConfig) -> Result<Self, TeamsError> {
        config.validate()?;
        let metadata_url = check_url("openid_metadata_url", &config.openid_metadata_url)?;
        let token_url = check_url("token_url", &config.token_url)?;
        let service_url = check_url("service_url", &config.service_url)?;
        let mut approvers: Vec<String> = config
            .approvers
            .iter()
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        approvers.sort();
        approvers.dedup();
        Ok(Self {
            http: http_client(config.request_timeout),
            metadata_url,
            token_url,
            service_url,
            approvers,
            config,
            token: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(KeyCache::default()),
            posted: Mutex::new(Posted::default()),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &TeamsConfig {
        &self.config
    }

    /// True when `aad_object_id` may decide.
    pub fn is_approver(&self, aad_object_id: &str) -> bool {
        let id = aad_object_id.trim().to_ascii_lowercase();
        self.approvers.binary_search(&id).is_ok()
    }

    /// The activity id of the card posted for `approval`, when it is remembered.
    pub fn posted_activity(&self, approval: &str) -> Option<String> {
        self.posted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .activity
            .get(approval)
            .cloned()
    }

    fn error(message: impl Into<String>) -> ChannelError {
        ChannelError {
            channel: "teams",
            message: message.into(),
        }
    }

    /// A bot token for the connector, from the cache or the token endpoint.
    async fn bot_token(&self) -> Result<String, ChannelError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.until) {
            return Ok(token.value.clone());
        }
        let password = self
            .config
            .app_password
            .get()
            .await
            .map_err(|e| Self::error(e.to_string()))?;
        let mut form =
            Url::parse("http://form.invalid/").map_err(|e| Self::error(e.to_string()))?;
        form.query_pairs_mut()
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.config.app_id)
            .append_pair("client_secret", password.expose())
            .append_pair("scope", BOT_FRAMEWORK_SCOPE);
        let body = form.query().unwrap_or_default().to_owned();
        let endpoint = display_url(&self.token_url);
        let response = self
            .http
            .post(self.token_url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                Self::error(format!(
                    "cannot get a bot token from {endpoint}: {}",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            // A rotated password is fetched again at the next try.
            self.config.app_password.invalidate();
            let code = json["error"].as_str().unwrap_or("no error code");
            let description = json["error_description"]
                .as_str()
                .and_then(|d| d.lines().next())
                .unwrap_or("");
            return Err(Self::error(format!(
                "the token endpoint {endpoint} refused the bot's credentials: {status}: {code}: {}",
                shown_long(description)
            )));
        }
        let Some(value) = json["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(Self::error(format!(
                "the token endpoint {endpoint} answered {status} without an access_token"
            )));
        };
        let lifetime = json["expires_in"]
            .as_u64()
            .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3600);
        // Stop using it five minutes early (at least 30 seconds after it was issued).
        let keep = lifetime.saturating_sub(300).max(30);
        *cached = Some(BotToken {
            value: value.to_owned(),
            until: Instant::now() + Duration::from_secs(keep),
        });
        Ok(value.to_owned())
    }

    /// `{serviceUrl}/v3/conversations/{conversationId}/activities[/{activityId}]`, each segment
    /// percent-encoded.
    fn activities_url(&self, activity: Option<&str>) -> Url {
        let mut url = self.service_url.clone();
        url.set_query(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            segments.extend([
                "v3",
                "conversations",
                self.config.conversation_id.trim(),
                "activities",
            ]);
            if let Some(activity) = activity {
                segments.push(activity);
            }
        }
        url
    }

    /// Sends `body` to the connector with the bot token; retries 429, 5xx and connection
    /// failures. A 401 drops the cached token.
    async fn connector(
        &self,
        method: Method,
        url: Url,
        body: &Value,
    ) -> Result<Value, ChannelError> {
        let shown_url = display_url(&url);
        let mut last = String::new();
        for attempt in 1..=TRIES {
            let token = self.bot_token().await?;
            let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Self::error("the token endpoint returned a token that is not a header value")
            })?;
            auth.set_sensitive(true);
            let sent = self
                .http
                .request(method.clone(), url.clone())
                .header(header::AUTHORIZATION, auth)
                .json(body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e) => {
                    last = format!("{method} {shown_url} failed: {}", e.without_url());
                    backoff(attempt, None).await;
                    continue;
                }
            };
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = response.text().await.unwrap_or_default();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            let code = json["error"]["code"].as_str().unwrap_or("no error code");
            let message = json["error"]["message"].as_str().unwrap_or("");
            last = format!(
                "{method} {shown_url} answered {status}: {code}: {}",
                shown_long(message)
            );
            if status == reqwest::StatusCode::UNAUTHORIZED {
                *self.token.lock().await = None;
                return Err(Self::error(format!(
                    "{last} (the connector refused the bot token: check the app id, the app password and that the bot is installed in the conversation)"
                )));
            }
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                if attempt < TRIES {
                    backoff(attempt, retry_after).await;
                }
                continue;
            }
            return Err(Self::error(last));
        }
        Err(Self::error(format!("{last} (gave up after {TRIES} tries)")))
    }

    /// Verifies the bearer token of a request to the messaging endpoint.
    async fn verify(&self, jwt: &str) -> Result<Verified, String> {
        let head = jsonwebtoken::decode_header(jwt)
            .map_err(|e| format!("the bearer token is not a JWT ({})", jwt_reason(e.kind())))?;
        if head.alg != Algorithm::RS256 {
            return Err(format!(
                "the token is signed with {:?}; the Bot Framework signs with RS256",
                head.alg
            ));
        }
        let Some(kid) = head.kid.as_deref().filter(|k| !k.is_empty()) else {
            return Err("the token names no signing key (no kid in its header)".to_owned());
        };
        let key = self.signing_key(kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.config.app_id]);
        validation.set_issuer(&[BOT_FRAMEWORK_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway.as_secs();
        let data = jsonwebtoken::decode::<Value>(jwt, &key.key, &validation)
            .map_err(|e| jwt_reason(e.kind()))?;
        let service_url = data
            .claims
            .get("serviceurl")
            .or_else(|| data.claims.get("serviceUrl"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Verified {
            service_url,
            endorsements: key.endorsements,
        })
    }

    /// The key `kid`: cached, or fetched when the cache is stale, or refetched once when `kid`
    /// is unknown (rotation) and the last fetch is older than `keys_min_refetch`.
    async fn signing_key(&self, kid: &str) -> Result<SigningKey, String> {
        let mut cache = self.keys.lock().await;
        let mut fresh = false;
        if cache
            .fetched
            .is_none_or(|at| at.elapsed() >= self.config.keys_max_age)
        {
            match self.fetch_keys().await {
                Ok(keys) => {
                    *cache = KeyCache {
                        keys,
                        fetched: Some(Instant::now()),
                    };
                    fresh = true;
                }
                Err(e) if cache.keys.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "teams: cannot refresh the Bot Framework signing keys; using the ones fetched before");
                }
            }
        }
        if let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_refetch = cache
            .fetched
            .is_none_or(|at| at.elapsed() >= self.config.keys_min_refetch);
        if !fresh && may_refetch {
            tracing::info!(kid = %shown(kid), "teams: a token names an unknown signing key; fetching the keys again");
            let keys = self.fetch_keys().await?;
            *cache = KeyCache {
                keys,
                fetched: Some(Instant::now()),
            };
            if let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
        }
        Err(format!(
            "the token is signed with key {:?}, which is not among the Bot Framework's published signing keys",
            shown(kid)
        ))
    }

    /// Fetches the `OpenID` metadata, then the JWKS it names: the usable RSA signing keys by kid.
    async fn fetch_keys(&self) -> Result<HashMap<String, SigningKey>, String> {
        let metadata = self
            .get_json(&self.metadata_url, "the OpenID metadata")
            .await?;
        let Some(named) = metadata["jwks_uri"].as_str() else {
            return Err(format!(
                "the OpenID metadata at {} names no jwks_uri",
                display_url(&self.metadata_url)
            ));
        };
        let jwks_url = parse_url(named)
            .map_err(|e| format!("the OpenID metadata's jwks_uri {}: {e}", shown(named)))?;
        let jwks = self.get_json(&jwks_url, "the signing keys (JWKS)").await?;
        let Some(entries) = jwks["keys"].as_array() else {
            return Err(format!(
                "the JWKS at {} has no \"keys\" array",
                display_url(&jwks_url)
            ));
        };
        let mut keys = HashMap::new();
        for entry in entries {
            let Some(kid) = entry["kid"].as_str() else {
                continue;
            };
            if entry["kty"].as_str() != Some("RSA")
                || entry.get("use").is_some_and(|u| u.as_str() != Some("sig"))
            {
                continue;
            }
            let key = serde_json::from_value::<Jwk>(entry.clone())
                .ok()
                .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok());
            let Some(key) = key else {
                tracing::warn!(kid = %shown(kid), "teams: skipping a signing key that cannot be read");
                continue;
            };
            let endorsements = entry["endorsements"].as_array().map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            });
            keys.insert(kid.to_owned(), SigningKey { key, endorsements });
        }
        if keys.is_empty() {
            return Err(format!(
                "the JWKS at {} holds no usable RSA signing key",
                display_url(&jwks_url)
            ));
        }
        tracing::debug!(
            keys = keys.len(),
            "teams: fetched the Bot Framework signing keys"
        );
        Ok(keys)
    }

    async fn get_json(&self, url: &Url, what: &str) -> Result<Value, String> {
        let shown_url = display_url(url);
        let response = self
            .http
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("cannot fetch {what} from {shown_url}: {}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "fetching {what} from {shown_url} answered {status}"
            ));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| format!("{what} at {shown_url} is not JSON: {}", e.without_url()))
    }
}

/// A longer untrusted message (a service's error description), escaped and bounded.
fn shown_long(s: &str) -> String {
    bounded(&escape_untrusted(s), MAX_LINE)
}

async fn backoff(attempt: u32, retry_after: Option<Duration>) {
    let wait = retry_after.map_or_else(
        || Duration::from_millis(250u64 << attempt.min(5)),
        |d| d.min(MAX_RETRY_AFTER),
    );
    tokio::time::sleep(wait).await;
}

/// Why a token was refused, as the 401 says it.
fn jwt_reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => {
            "the token is not valid yet (nbf is in the future)".to_owned()
        }
        ErrorKind::InvalidAudience => "the token's audience is not this bot's app id".to_owned(),
        ErrorKind::InvalidIssuer => {
            format!("the token's issuer is not {BOT_FRAMEWORK_ISSUER}")
        }
        ErrorKind::InvalidSignature => {
            "the token's signature does not verify with the published signing key".to_owned()
        }
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the token has no {} claim", shown(claim))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("the token's {} claim is malformed", shown(claim))
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "the bearer token is not a well-formed JWT".to_owned(),
        other => format!("the token is not valid ({other:?})"),
    }
}

#[async_trait]
impl Channel for Teams {
    fn name(&self) -> &'static str {
        "teams"
    }

    async fn ask(&self, ask: &Ask) -> Result<(), ChannelError> {
        let card = ask_card(ask);
        let activity = json!({
            "type": "message",
            "summary": bounded(&format!("Approval needed: {}", escape_untrusted(&ask.approval.request.preview.summary)), 200),
            "attachments": [{ "contentType": ADAPTIVE_CARD, "content": card }],
        });
        let answer = self
            .connector(Method::POST, self.activities_url(None), &activity)
            .await?;
        match answer["id"].as_str().filter(|id| !id.is_empty()) {
            Some(id) => {
                self.posted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remember(&ask.approval.id, id.to_owned());
                tracing::info!(approval = %ask.approval.id, activity = %id, "teams: asked for approval");
            }
            None => {
                tracing::warn!(approval = %ask.approval.id, "teams: the connector returned no activity id; the card will not be updated when the approval ends");
            }
        }
        Ok(())
    }

    async fn settle(&self, settled: &Settled) -> Result<(), ChannelError> {
        let Some(activity_id) = self.posted_activity(&settled.approval.id) else {
            tracing::info!(approval = %settled.approval.id, "teams: no card of this process to update for this approval; skipped");
            return Ok(());
        };
        let card = settled_card(settled);
        let activity = json!({
            "type": "message",
            "id": activity_id,
            "attachments": [{ "contentType": ADAPTIVE_CARD, "content": card }],
        });
        self.connector(
            Method::PUT,
            self.activities_url(Some(&activity_id)),
            &activity,
        )
        .await?;
        tracing::info!(approval = %settled.approval.id, "teams: showed how the approval ended");
        Ok(())
    }
}

// ----- cards -------------------------------------------------------------------------------

fn risk_label(risk: Risk) -> &'static str {
    match risk {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

/// A plain-text line: a bold label and an escaped, bounded value (no Markdown).
fn field(label: &str, value: &str, max: usize) -> Value {
    json!({
        "type": "RichTextBlock",
        "inlines": [
            { "type": "TextRun", "text": format!("{label}: "), "weight": "Bolder" },
            { "type": "TextRun", "text": bounded(&escape_untrusted(value), max) },
        ],
    })
}

/// A heading (trusted text only).
fn heading(text: &str, color: &str) -> Value {
    json!({
        "type": "TextBlock",
        "text": text,
        "weight": "Bolder",
        "size": "Medium",
        "color": color,
        "wrap": true,
    })
}

/// Untrusted text as one plain-text paragraph.
fn plain(text: &str, color: Option<&str>) -> Value {
    let mut run = json!({ "type": "TextRun", "text": text });
    if let (Some(color), Some(map)) = (color, run.as_object_mut()) {
        map.insert("color".to_owned(), json!(color));
    }
    json!({ "type": "RichTextBlock", "inlines": [run] })
}

/// The tool's typed findings: a bold label with the counts (trusted data: numbers and fixed
/// words), then the lines of [`Evidence::render`] (already escaped) in monospace, each at most
/// [`MAX_FINDINGS_LINE`] characters and all at most [`MAX_FINDINGS`], cut at a line break with
/// a note.
fn findings(evidence: &Evidence) -> Vec<Value> {
    let (shown, kept, total) = super::slack::evidence_lines(
        evidence,
        |l| bounded(&escape_untrusted(l), MAX_FINDINGS_LINE),
        MAX_FINDINGS,
    );
    let attention = evidence
        .vulnerabilities
        .as_ref()
        .is_some_and(|v| !v.introduces.is_empty());
    let mut headline = json!({ "type": "TextRun", "text": evidence.headline() });
    if let (true, Some(map)) = (attention, headline.as_object_mut()) {
        map.insert("color".to_owned(), json!("Attention"));
    }
    let mut items = vec![json!({
        "type": "RichTextBlock",
        "inlines": [{ "type": "TextRun", "text": shown, "fontType": "Monospace" }],
    })];
    if kept < total {
        items.push(json!({
            "type": "RichTextBlock",
            "inlines": [{
                "type": "TextRun",
                "text": format!("findings cut: {kept} of {total} lines shown; the approvals API and --json have them whole"),
                "italic": true,
            }],
        }));
    }
    vec![
        json!({
            "type": "RichTextBlock",
            "inlines": [
                { "type": "TextRun", "text": "Findings: ", "weight": "Bolder" },
                headline,
            ],
        }),
        json!({ "type": "Container", "style": "emphasis", "items": items }),
    ]
}

/// What a card shows about an approval.
struct Details<'a> {
    id: &'a str,
    incident: &'a str,
    evidence: Option<&'a str>,
    /// The tool's typed findings (only while the plan is at hand: an [`ApprovalView`] has none).
    findings: Option<&'a Evidence>,
    tool: &'a str,
    summary: &'a str,
    diff: &'a str,
    risk: Risk,
    warning: Option<&'a str>,
    target: Option<&'a Target>,
    expires_at: &'a str,
}

impl<'a> Details<'a> {
    fn of_ask(ask: &'a Ask) -> Self {
        let plan = &ask.approval.request.preview;
        Self {
            id: &ask.approval.id,
            incident: &ask.incident.key,
            evidence: Some(&ask.incident.summary),
            findings: plan.evidence.as_deref().filter(|e| !e.is_empty()),
            tool: &ask.approval.request.tool,
            summary: &plan.summary,
            diff: &plan.diff,
            risk: plan.risk,
            warning: plan.warning.as_deref(),
            target: plan.target.as_ref(),
            expires_at: &ask.approval.expires_at,
        }
    }

    fn of_view(view: &'a ApprovalView) -> Self {
        Self {
            id: &view.id,
            incident: &view.incident,
            evidence: None,
            findings: None,
            tool: &view.tool,
            summary: &view.summary,
            diff: &view.diff,
            risk: view.risk,
            warning: view.warning.as_deref(),
            target: view.target.as_ref(),
            expires_at: &view.expires_at,
        }
    }

    /// The body elements: evidence, plan, risk, warning, target, expiry, findings, diff, id.
    fn body(&self, with_diff: bool) -> Vec<Value> {
        let mut body = Vec::new();
        if let Some(evidence) = self.evidence {
            body.push(field("Evidence", evidence, MAX_EVIDENCE));
        }
        body.push(field("Incident", self.incident, MAX_LINE));
        body.push(field("Plan", self.summary, MAX_LINE));
        body.push(field("Tool", self.tool, MAX_LINE));
        body.push(field("Risk", risk_label(self.risk), MAX_LINE));
        if let Some(warning) = self.warning {
            body.push(json!({
                "type": "RichTextBlock",
                "inlines": [
                    { "type": "TextRun", "text": "Warning: ", "weight": "Bolder", "color": "Attention" },
                    { "type": "TextRun", "text": bounded(&escape_untrusted(warning), MAX_LINE), "color": "Attention" },
                ],
            }));
        }
        match self.target {
            Some(target) => body.push(field("Target", &target.to_string(), MAX_LINE)),
            None => body.push(field("Target", "not named by the tool", MAX_LINE)),
        }
        body.push(field("Expires", self.expires_at, MAX_LINE));
        if let Some(evidence) = self.findings {
            body.extend(findings(evidence));
        }
        if with_diff {
            body.push(json!({ "type": "TextBlock", "text": "Dry-run diff", "weight": "Bolder", "wrap": true }));
            let diff = if self.diff.trim().is_empty() {
                "(no diff)".to_owned()
            } else {
                bounded(&escape_untrusted_lines(self.diff), MAX_DIFF)
            };
            body.push(json!({
                "type": "Container",
                "style": "emphasis",
                "items": [{
                    "type": "RichTextBlock",
                    "inlines": [{ "type": "TextRun", "text": diff, "fontType": "Monospace" }],
                }],
            }));
        }
        body.push(field("Approval", self.id, MAX_ID));
        body
    }
}

fn card(body: Vec<Value>, actions: Option<Vec<Value>>) -> Value {
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": Value::Array(body),
    });
    if let (Some(actions), Some(map)) = (actions, card.as_object_mut()) {
        map.insert("actions".to_owned(), Value::Array(actions));
    }
    card
}

/// The card that asks: the details and Approve / Reject `Action.Execute` buttons carrying only
/// `{"approval": "<id>"}`.
pub fn ask_card(ask: &Ask) -> Value {
    let details = Details::of_ask(ask);
    let mut body = vec![heading("sre-agent asks: apply this change?", "Default")];
    body.extend(details.body(true));
    body.push(json!({
        "type": "TextBlock",
        "text": "Only listed approvers can decide. The agent re-checks the target before it applies anything: if it changed, it asks again.",
        "isSubtle": true,
        "size": "Small",
        "wrap": true,
    }));
    let data = json!({ "approval": ask.approval.id });
    card(
        body,
        Some(vec![
            json!({ "type": "Action.Execute", "title": "Approve", "verb": VERB_APPROVE, "data": data, "style": "positive" }),
            json!({ "type": "Action.Execute", "title": "Reject", "verb": VERB_REJECT, "data": data, "style": "destructive" }),
        ]),
    )
}

/// The card that shows how an approval ended (no buttons).
pub fn settled_card(settled: &Settled) -> Value {
    let ask = Ask {
        incident: settled.incident.clone(),
        approval: settled.approval.clone(),
    };
    let details = Details::of_ask(&ask);
    let color = match settled.ending {
        channel::Ending::Applied { .. } => "Good",
        channel::Ending::RolledBack { .. }
        | channel::Ending::Refused { .. }
        | channel::Ending::AskedAgain { .. } => "Warning",
        channel::Ending::Denied { .. } => "Attention",
        channel::Ending::Expired => "Default",
    };
    let mut body = vec![
        heading("sre-agent: this approval has ended", color),
        plain(
            &bounded(&escape_untrusted(&settled.ending.to_string()), MAX_LINE),
            Some(color),
        ),
    ];
    body.extend(details.body(false));
    card(body, None)
}

/// The card answering a click that decided `view`, or found it decided, expired or unknown.
fn view_card(headline: &str, color: &str, line: &str, view: Option<&ApprovalView>) -> Value {
    let mut body = vec![heading(headline, color), plain(line, None)];
    if let Some(view) = view {
        body.extend(Details::of_view(view).body(false));
    }
    card(body, None)
}

/// The Universal Actions invoke response carrying `card`.
fn card_response(card: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(Value::Object(serde_json::Map::from_iter([
            ("statusCode".to_owned(), json!(200)),
            ("type".to_owned(), json!(ADAPTIVE_CARD)),
            ("value".to_owned(), card),
        ]))),
    )
        .into_response()
}

/// A Universal Actions error response (`application/vnd.microsoft.error`).
fn invoke_error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({
            "statusCode": status,
            "type": INVOKE_ERROR,
            "value": { "code": code, "message": message },
        })),
    )
        .into_response()
}

// ----- the messaging endpoint --------------------------------------------------------------

#[derive(Clone)]
struct Shared {
    teams: Arc<Teams>,
    sink: DecisionSink,
}

/// A JSON error: `{"error", "status", "code"}`.
fn http_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({ "error": message, "status": status.as_u16(), "code": code })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sre-agent teams\""),
        );
    }
    response
}

fn unauthorized(reason: &str) -> Response {
    tracing::warn!(reason, "teams: refused a request to the messaging endpoint");
    http_error(StatusCode::UNAUTHORIZED, "unauthorized", reason)
}

/// The bearer token of `headers`, or why there is none.
fn bearer(headers: &HeaderMap) -> Result<&str, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(
            "no Authorization header: the Bot Framework signs every request with a bearer token",
        );
    };
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII")?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err("the Authorization header has no scheme");
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the Authorization scheme is not Bearer");
    }
    let token = token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the bearer token is empty or holds white space");
    }
    Ok(token)
}

/// The router serving `POST /teams/messages` (bodies up to [`MAX_BODY`]). Merge it into
/// `serve`'s router; the Bot Framework calls it at the bot's messaging endpoint.
pub fn routes(teams: Arc<Teams>, sink: DecisionSink) -> Router {
    Router::new()
        .route(PATH, post(messages))
        .method_not_allowed_fallback(|| async {
            http_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the Teams messaging endpoint takes POST only",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Shared { teams, sink })
}

async fn messages(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let token = match bearer(&headers) {
        Ok(token) => token,
        Err(reason) => return unauthorized(reason),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("the request body is larger than {MAX_BODY} bytes")
            } else {
                format!("cannot read the request body: {rejection}")
            };
            return http_error(status, "bad_body", &message);
        }
    };
    let verified = match shared.teams.verify(token).await {
        Ok(verified) => verified,
        Err(reason) => return unauthorized(&reason),
    };
    let click = match read_activity(&body, &verified) {
        Ok(click) => click,
        Err(not) => return not.into_response(),
    };
    let digest = hex::encode(Sha256::digest(&body));
    invoke(&shared, &click, digest).await
}

/// A click on one of an approval card's buttons, read from an authenticated activity.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardClick {
    /// True for the approve button.
    pub approve: bool,
    /// The approval id the card carries.
    pub approval: String,
    /// The clicker's AAD object id (trimmed, as sent).
    pub user: String,
    /// The clicker's display name, as sent.
    pub name: String,
}

/// Why an authenticated activity decides nothing, and so what the endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NotAClick {
    /// Not an `adaptiveCard/action` invoke: `200`, nothing else.
    Ignored,
    /// The body is not an activity: `400`.
    BadRequest(String),
    /// The activity contradicts its token: `401`.
    Unauthorized(String),
    /// An invoke this bot cannot act on: an invoke error (`400` inside a `200`).
    BadInvoke(String),
}

impl NotAClick {
    fn into_response(self) -> Response {
        match self {
            Self::Ignored => StatusCode::OK.into_response(),
            Self::BadRequest(m) => http_error(StatusCode::BAD_REQUEST, "bad_request", &m),
            Self::Unauthorized(m) => unauthorized(&m),
            Self::BadInvoke(m) => invoke_error(400, "BadRequest", &m),
        }
    }
}

/// Reads an activity whose token `verified` passed: the JSON body, the token's `serviceurl`
/// and endorsement claims against it, and for an `adaptiveCard/action` invoke the verb, the
/// approval id and the clicker.
fn read_activity(body: &[u8], verified: &Verified) -> Result<CardClick, NotAClick> {
    let activity: Value = match serde_json::from_slice(body) {
        Ok(activity @ Value::Object(_)) => activity,
        Ok(_) => {
            return Err(NotAClick::BadRequest(
                "the body is not a Bot Framework activity (a JSON object)".to_owned(),
            ));
        }
        Err(e) => {
            return Err(NotAClick::BadRequest(format!("the body is not JSON: {e}")));
        }
    };
    if let Some(claimed) = &verified.service_url {
        let body_url = activity["serviceUrl"].as_str().unwrap_or("");
        if claimed.trim_end_matches('/') != body_url.trim_end_matches('/') {
            return Err(NotAClick::Unauthorized(
                "the activity's serviceUrl is not the one the token was issued for (serviceurl claim)"
                    .to_owned(),
            ));
        }
    }
    if let (Some(endorsed), Some(channel_id)) =
        (&verified.endorsements, activity["channelId"].as_str())
        && !endorsed.iter().any(|e| e == channel_id)
    {
        return Err(NotAClick::Unauthorized(format!(
            "the signing key is not endorsed for channel {:?}",
            shown(channel_id)
        )));
    }
    if activity["type"].as_str() != Some("invoke")
        || activity["name"].as_str() != Some("adaptiveCard/action")
    {
        return Err(NotAClick::Ignored);
    }
    let action = &activity["value"]["action"];
    let approve = match action["verb"].as_str() {
        Some(VERB_APPROVE) => true,
        Some(VERB_REJECT) => false,
        other => {
            return Err(NotAClick::BadInvoke(format!(
                "unknown action verb {:?}: this bot knows {VERB_APPROVE} and {VERB_REJECT}",
                shown(other.unwrap_or(""))
            )));
        }
    };
    let Some(approval) = action["data"]["approval"].as_str().filter(|id| {
        !id.is_empty()
            && id.len() <= MAX_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) else {
        return Err(NotAClick::BadInvoke(
            "the action carries no valid approval id (data.approval)".to_owned(),
        ));
    };
    Ok(CardClick {
        approve,
        approval: approval.to_owned(),
        user: activity["from"]["aadObjectId"]
            .as_str()
            .unwrap_or("")
            .trim()
            .to_owned(),
        name: activity["from"]["name"].as_str().unwrap_or("").to_owned(),
    })
}

/// Runs the messaging endpoint's read path on an activity body whose token carried the
/// `service_url` and `endorsements` claims (the token check itself is not run): `Ok(None)` for
/// an activity that is answered `200` and ignored, `Err` with the status and message of a
/// refusal (an invoke error counts as `400`). Public for the fuzz targets in `benches/fuzz`.
///
/// # Errors
/// What the endpoint refuses, as its status and message.
#[doc(hidden)]
pub fn parse_activity(
    body: &[u8],
    service_url: Option<&str>,
    endorsements: Option<&[String]>,
) -> Result<Option<CardClick>, (u16, String)> {
    let verified = Verified {
        service_url: service_url.map(str::to_owned),
        endorsements: endorsements.map(<[String]>::to_vec),
    };
    match read_activity(body, &verified) {
        Ok(click) => Ok(Some(click)),
        Err(NotAClick::Ignored) => Ok(None),
        Err(NotAClick::BadRequest(m) | NotAClick::BadInvoke(m)) => Err((400, m)),
        Err(NotAClick::Unauthorized(m)) => Err((401, m)),
    }
}

/// Handles an `adaptiveCard/action` click that passed authentication.
async fn invoke(shared: &Shared, click: &CardClick, request_digest: String) -> Response {
    let (approve, approval) = (click.approve, click.approval.as_str());
    let (user, name) = (click.user.as_str(), click.name.as_str());
    if user.is_empty() || !shared.teams.is_approver(user) {
        tracing::warn!(approval, user = %shown(user), "teams: a user not on the approvers list clicked; nothing decided");
        return card_response(view_card(
            "Not allowed",
            "Attention",
            &format!(
                "You are not on this bot's list of approvers, so your click decided nothing. Approval {approval} is unchanged. Ask the platform team to add your AAD object id{} to --teams-approvers.",
                if user.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", shown(user))
                }
            ),
            None,
        ));
    }
    let user = user.to_ascii_lowercase();
    let decision = ChatDecision {
        channel: "teams",
        approval,
        approve,
        user: &user,
        request_digest,
    };
    let who = if name.is_empty() {
        format!("teams:{user}")
    } else {
        format!("{} (teams:{user})", shown(name))
    };
    answer(
        channel::decide(&shared.sink, &decision).await,
        approve,
        &who,
        approval,
    )
}

/// The invoke response for a decision's result.
fn answer(
    result: Result<ApprovalView, DecideError>,
    approve: bool,
    who: &str,
    approval: &str,
) -> Response {
    match result {
        Ok(view) => {
            let (headline, color, line) = if approve {
                (
                    "Approved",
                    "Good",
                    format!(
                        "Approved by {who}. The agent resumes the run, re-checks the target and applies the change; this card shows the outcome when it ends."
                    ),
                )
            } else {
                (
                    "Rejected",
                    "Attention",
                    format!("Rejected by {who}. Nothing will be applied."),
                )
            };
            card_response(view_card(headline, color, &line, Some(&view)))
        }
        Err(DecideError::AlreadyDecided(view)) => {
            let how = match view.state {
                ApprovalState::Approved => "approved",
                ApprovalState::Rejected => "rejected",
                ApprovalState::Expired => "expired",
                ApprovalState::Pending => "decided",
            };
            let by = view.decided_by.as_deref().map(shown).unwrap_or_default();
            card_response(view_card(
                "Already decided",
                "Warning",
                &format!("This approval was already {how} by {by}; your click changed nothing."),
                Some(&view),
            ))
        }
        Err(DecideError::Expired(view)) => card_response(view_card(
            "Expired",
            "Warning",
            &format!(
                "This approval expired at {}; nothing was applied and your click changed nothing.",
                shown(&view.expires_at)
            ),
            Some(&view),
        )),
        Err(DecideError::NotFound(_)) => card_response(view_card(
            "No such approval",
            "Warning",
            &format!(
                "There is no pending approval {approval}: it ended, or was never asked here. Your click changed nothing."
            ),
            None,
        )),
        Err(DecideError::OtherAction { .. }) => card_response(view_card(
            "Out of date",
            "Warning",
            "This card is for a plan that is no longer the one waiting; your click changed nothing.",
            None,
        )),
        Err(e) => {
            tracing::error!(error = %e, approval, "teams: could not record a decision");
            invoke_error(
                503,
                "ServiceUnavailable",
                "the decision could not be recorded (the run store is unavailable); nothing changed, try again",
            )
        }
    }
}

// ----- the Workflows webhook fallback ------------------------------------------------------

/// A Teams Workflows ("incoming webhook") notifier: posts a card for each approval asked and a
/// note when it ends. **Not interactive**: the card tells approvers to decide with
/// `sre-agent approvals approve <id>` and links to the approvals API. The webhook URL carries a
/// signature: it is never shown (errors and `Debug` show its host and path only).
pub struct TeamsWebhook {
    url: Url,
    approvals_url: Option<Url>,
    http: reqwest::Client,
}

impl fmt::Debug for TeamsWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamsWebhook")
            .field("url", &display_url(&self.url))
            .field(
                "approvals_url",
                &self.approvals_url.as_ref().map(display_url),
            )
            .finish_non_exhaustive()
    }
}

impl TeamsWebhook {
    /// A notifier posting to the Workflows webhook `url`; `approvals_url` is the base URL of
    /// `serve`'s approvals API as approvers reach it (e.g. `https://sre-agent.example`), linked
    /// from each card when given.
    ///
    /// # Errors
    /// [`TeamsError::Config`] when a URL is unusable.
    pub fn new(url: &str, approvals_url: Option<&str>) -> Result<Self, TeamsError> {
        let url = parse_url(url).map_err(|reason| {
            config_error(
                "webhook_url",
                format!("the Workflows webhook URL: {reason}"),
            )
        })?;
        let approvals_url = approvals_url
            .map(|u| check_url("approvals_url", u))
            .transpose()?;
        Ok(Self {
            url,
            approvals_url,
            http: http_client(Duration::from_secs(10)),
        })
    }

    /// The link to `id` in the approvals API, when its base URL is known.
    fn link(&self, id: &str) -> Option<Url> {
        let mut url = self.approvals_url.clone()?;
        url.set_query(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            segments.extend(["api", "v1", "approvals", id]);
        }
        Some(url)
    }

    async fn post(&self, card: Value) -> Result<(), ChannelError> {
        let body = json!({
            "type": "message",
            "attachments": [{ "contentType": ADAPTIVE_CARD, "contentUrl": null, "content": card }],
        });
        let shown_url = display_url(&self.url);
        let response = self
            .http
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| ChannelError {
                channel: "teams",
                message: format!(
                    "POST to the Workflows webhook {shown_url} failed: {}",
                    e.without_url()
                ),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(ChannelError {
            channel: "teams",
            message: format!(
                "the Workflows webhook {shown_url} answered {status}: {}",
                shown_long(&text)
            ),
        })
    }
}

/// The notification card of the webhook fallback.
pub fn webhook_card(ask: &Ask, link: Option<&str>) -> Value {
    let id = &ask.approval.id;
    let mut body = vec![
        heading("sre-agent: approval needed (notification only)", "Warning"),
        json!({
            "type": "TextBlock",
            "text": format!("Not interactive: decide with `sre-agent approvals approve {id}` (or `sre-agent approvals reject {id}`)."),
            "wrap": true,
            "weight": "Bolder",
        }),
    ];
    body.extend(Details::of_ask(ask).body(true));
    let actions = link.map(|link| {
        vec![json!({ "type": "Action.OpenUrl", "title": "Open in the approvals API", "url": link })]
    });
    card(body, actions)
}

#[async_trait]
impl Channel for TeamsWebhook {
    fn name(&self) -> &'static str {
        "teams"
    }

    async fn ask(&self, ask: &Ask) -> Result<(), ChannelError> {
        let link = self.link(&ask.approval.id).map(|u| u.to_string());
        self.post(webhook_card(ask, link.as_deref())).await
    }

    async fn settle(&self, settled: &Settled) -> Result<(), ChannelError> {
        let body = vec![
            heading("sre-agent: approval ended", "Default"),
            plain(
                &bounded(&escape_untrusted(&settled.ending.to_string()), MAX_LINE),
                None,
            ),
            field("Plan", &settled.approval.request.preview.summary, MAX_LINE),
            field("Approval", &settled.approval.id, MAX_ID),
        ];
        self.post(card(body, None)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::secret::TEAMS_APP_PASSWORD;

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("6b3c7a5e-1d2f-4e8a-9b0c-112233445566"));
        assert!(!is_guid("6b3c7a5e-1d2f-4e8a-9b0c-11223344556"));
        assert!(!is_guid("alice@example.com"));
    }

    #[test]
    fn bounded_says_what_was_cut() {
        assert_eq!(bounded("abcdef", 3), "abc … (3 more characters)");
        assert_eq!(bounded("abc", 3), "abc");
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(parse_url("http://127.0.0.1:9/x").is_ok());
        assert!(parse_url("http://example.com/x").is_err());
        assert!(parse_url("https://user:pw@example.com/").is_err());
    }

    #[test]
    fn the_password_never_prints() {
        let password = ServiceSecret::fixed(&TEAMS_APP_PASSWORD, "s3cr3t-value").unwrap();
        assert!(!format!("{password:?}").contains("s3cr3t"));
        let e = ServiceSecret::fixed(&TEAMS_APP_PASSWORD, "two words").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("words"), "{e}");
    }

    #[test]
    fn remembered_cards_are_bounded() {
        let mut posted = Posted::default();
        for i in 0..=MAX_REMEMBERED {
            posted.remember(&format!("apv-{i}"), format!("act-{i}"));
        }
        assert_eq!(posted.activity.len(), MAX_REMEMBERED);
        assert!(!posted.activity.contains_key("apv-0"));
        assert_eq!(
            posted.activity.get("apv-1").map(String::as_str),
            Some("act-1")
        );
    }
}
