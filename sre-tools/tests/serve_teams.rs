//! Teams approvals over real HTTP: a loopback server plays Microsoft (the Bot Framework's `OpenID`
//! metadata and JWKS with RSA keys generated here, the Entra ID token endpoint, the connector and
//! a Workflows webhook) and records every request; the real [`routes`] are bound on 127.0.0.1:0 in
//! front of an in-memory [`SqliteStore`] with a parked run.
//!
//! Covers: a valid click approves (store, audit, the decided signal, the refreshed card); expired,
//! wrong-audience, wrong-issuer, unsigned, misaddressed and unknown-key tokens, key rotation, a
//! user not on the allow-list, a double click and an expired approval — each leaving the approval
//! as it was; `ask` posting the card with the bot token and only the id in the buttons; `settle`
//! replacing it; the Workflows webhook fallback; and the tool's typed findings (scans, crash) on
//! the card with their ids and counts, as plain text, bounded; `docs/teams-approval-card.json` is
//! the card [`teams::ask_card`] builds.

#![cfg(feature = "serve")]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

#[path = "support/parked.rs"]
mod parked;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sre_core::approval::ApprovalRequest;
use sre_core::evidence::{
    CrashEvidence, Evidence, Finding, ImageScan, ScanSource, Severities, VulnerabilityEvidence,
};
use sre_core::plan::{ImageChange, Preview, Risk, Target};
use sre_core::{Decision, Event, Observer, PendingApproval};
use sre_tools::serve::channel::{Ask, Channel, DecisionSink, Ending, Settled};
use sre_tools::serve::metrics::Metrics;
use sre_tools::serve::secret::{ServiceSecret, TEAMS_APP_PASSWORD};
use sre_tools::serve::teams::{
    self, Teams, TeamsConfig, TeamsError, TeamsWebhook, VERB_APPROVE, VERB_REJECT,
};
use sre_tools::serve::{ApprovalState, Incident, RunStore, SqliteStore, Trigger};
use tokio::sync::{Notify, oneshot};

const APP_ID: &str = "00000000-0000-0000-0000-00000000b07a";
const APP_PASSWORD: &str = "app-password-~s3cr3t.Value_0123";
const ADA: &str = "6b3c7a5e-1d2f-4e8a-9b0c-112233445566";
const GRACE: &str = "0f1e2d3c-4b5a-6978-8a9b-aabbccddeeff";
const MALLORY: &str = "deadbeef-0000-4000-8000-000000000bad";
const CONVERSATION: &str = "19:a1b2c3d4e5f60718293a4b5c6d7e8f90@thread.tacv2";
/// The `serviceUrl` of the invoke fixture (and of the tokens issued for it).
const ACTIVITY_SERVICE_URL: &str = "https://smba.trafficmanager.net/emea/";
const BOT_TOKEN: &str = "bot-access-token-from-entra";
const ACTIVITY_ID: &str = "1:1AbCdEfGhIjKlMnOpQ";
const HOUR: i64 = 3_600_000;

const INVOKE: &str = include_str!("fixtures/teams/invoke-adaptive-card-action.json");
const OPENID: &str = include_str!("fixtures/teams/openid-configuration.json");

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn now_s() -> u64 {
    now_ms() / 1000
}

// ----- signing keys ---------------------------------------------------------------------

/// An RSA key generated here: its kid, the private key to sign with, its public JWK.
struct Key {
    kid: &'static str,
    signer: EncodingKey,
    jwk: Value,
}

/// A test-only random source: SHA-256 in counter mode over a seed from std's randomly keyed
/// hasher. Good enough for throwaway test keys (2048 bits: fast to generate); never for real ones.
struct TestRng {
    seed: [u8; 32],
    counter: u64,
}

impl TestRng {
    fn new(label: &str) -> Self {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write(label.as_bytes());
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        let entropy = hasher.finish();
        let seed = Sha256::digest(format!("{label}:{entropy}:{}", std::process::id()).as_bytes());
        Self {
            seed: seed.into(),
            counter: 0,
        }
    }
}

impl rsa::rand_core::TryRng for TestRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(32) {
            self.counter += 1;
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_le_bytes());
            chunk.copy_from_slice(&h.finalize()[..chunk.len()]);
        }
        Ok(())
    }
}

impl rsa::rand_core::TryCryptoRng for TestRng {}

fn generate(kid: &'static str) -> Key {
    let private = rsa::PrivateKey::new(&mut TestRng::new(kid), 2048).unwrap();
    let der = private.to_pkcs1_der().unwrap();
    let signer = EncodingKey::from_rsa_der(der.as_bytes());
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&signer, Algorithm::RS256).unwrap()).unwrap();
    let map = jwk.as_object_mut().unwrap();
    map.insert("kid".into(), json!(kid));
    map.insert("use".into(), json!("sig"));
    map.insert("endorsements".into(), json!(["msteams", "webchat"]));
    Key { kid, signer, jwk }
}

/// Three keys, generated once per test binary: the published one, the one it rotates to, and
/// one never published.
fn keys() -> &'static [Key; 3] {
    static KEYS: OnceLock<[Key; 3]> = OnceLock::new();
    KEYS.get_or_init(|| [generate("kid-a"), generate("kid-b"), generate("kid-x")])
}

fn claims() -> Value {
    json!({
        "iss": "https://api.botframework.com",
        "aud": APP_ID,
        "exp": now_s() + 300,
        "nbf": now_s() - 10,
        "serviceurl": ACTIVITY_SERVICE_URL,
    })
}

fn sign(key: &Key, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.signer).unwrap()
}

fn valid_token() -> String {
    sign(&keys()[0], &claims())
}

// ----- the fake Microsoft ---------------------------------------------------------------

/// One request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct FakeState {
    base: String,
    jwks: Value,
    seen: Vec<Seen>,
    webhook_status: Option<u16>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<FakeState>>);

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }

    fn count(&self, method: &Method, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }

    fn publish(&self, keys: &[&Key]) {
        self.0.lock().unwrap().jwks =
            json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    }
}

async fn microsoft(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let mut state = fake.0.lock().unwrap();
    state.seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        query: uri.query().map(str::to_owned),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let base = state.base.clone();
    match (method.as_str(), path.as_str()) {
        ("GET", "/v1/.well-known/openidconfiguration") => {
            let mut metadata: Value = serde_json::from_str(OPENID).unwrap();
            metadata["jwks_uri"] = json!(format!("{base}/v1/.well-known/keys"));
            axum::Json(metadata).into_response()
        }
        ("GET", "/v1/.well-known/keys") => axum::Json(state.jwks.clone()).into_response(),
        ("POST", "/botframework.com/oauth2/v2.0/token") => axum::Json(json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": BOT_TOKEN,
        }))
        .into_response(),
        ("POST", p) if p.starts_with("/emea/v3/conversations/") && p.ends_with("/activities") => {
            axum::Json(json!({ "id": ACTIVITY_ID })).into_response()
        }
        ("PUT", p) if p.starts_with("/emea/v3/conversations/") => {
            axum::Json(json!({ "id": ACTIVITY_ID })).into_response()
        }
        ("POST", "/workflows/hook") => match state.webhook_status {
            Some(status) => (
                StatusCode::from_u16(status).unwrap(),
                "{\"error\":{\"code\":\"InvalidTemplate\",\"message\":\"bad card\"}}",
            )
                .into_response(),
            None => StatusCode::ACCEPTED.into_response(),
        },
        _ => (StatusCode::NOT_FOUND, "no such fake route").into_response(),
    }
}

/// Serves `router` on a loopback port until the sender is dropped.
async fn serve(router: Router) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{addr}"), stop)
}

// ----- the bot under test ---------------------------------------------------------------

/// Every audit event the sink saw.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Observer for Recorder {
    fn on_event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn decisions(&self) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::DecisionReceived { .. }))
            .cloned()
            .collect()
    }
}

struct World {
    fake: Fake,
    fake_url: String,
    bot_url: String,
    teams: Arc<Teams>,
    store: Arc<SqliteStore>,
    decided: Arc<Notify>,
    audit: Arc<Recorder>,
    http: reqwest::Client,
    _stops: Vec<oneshot::Sender<()>>,
}

fn config(fake_url: &str) -> TeamsConfig {
    let mut config = TeamsConfig::new(
        APP_ID,
        ServiceSecret::fixed(&TEAMS_APP_PASSWORD, APP_PASSWORD).unwrap(),
        vec![ADA.to_owned(), GRACE.to_uppercase()],
        format!("{fake_url}/emea/"),
        CONVERSATION,
    );
    config.openid_metadata_url = format!("{fake_url}/v1/.well-known/openidconfiguration");
    config.token_url = format!("{fake_url}/botframework.com/oauth2/v2.0/token");
    config.keys_min_refetch = Duration::ZERO;
    config
}

async fn world() -> World {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = Fake::default();
    fake.publish(&[&keys()[0]]);
    let (fake_url, fake_stop) =
        serve(Router::new().fallback(microsoft).with_state(fake.clone())).await;
    fake.0.lock().unwrap().base.clone_from(&fake_url);
    let teams = Arc::new(Teams::new(config(&fake_url)).unwrap());
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let decided = Arc::new(Notify::new());
    let audit = Arc::new(Recorder::default());
    let sink = DecisionSink {
        store: store.clone(),
        decided: decided.clone(),
        metrics: Arc::new(Metrics::new()),
        audit: vec![audit.clone()],
    };
    let (bot_url, bot_stop) = serve(teams::routes(teams.clone(), sink)).await;
    World {
        fake,
        fake_url,
        bot_url,
        teams,
        store,
        decided,
        audit,
        http: reqwest::Client::new(),
        _stops: vec![fake_stop, bot_stop],
    }
}

/// A parked approval: its id and incident key.
struct Parked {
    id: String,
    key: String,
}

/// Parks a run of `workload` whose approval expires `ttl_ms` from now (negative: expired).
async fn park(store: &dyn RunStore, workload: &str, ttl_ms: i64) -> Parked {
    let ask = parked::Sample::new(workload, ttl_ms)
        .trigger(Trigger::Trivy)
        .evidence(&format!(
            "deployment shop/{workload}: CVE-2024-123 (critical) in nginx:1.25.3 [click](https://evil.example)"
        ))
        .warning("pods restart one at a time")
        .park(store)
        .await;
    Parked {
        id: ask.approval.id,
        key: ask.incident.key,
    }
}

/// The [`Ask`] of a parked approval, as the service hands it to channels.
async fn ask_of(store: &dyn RunStore, parked: &Parked) -> Ask {
    let record = store.get(&parked.key).await.unwrap().unwrap();
    Ask {
        incident: record.incident.clone(),
        approval: record.run.unwrap().approval.unwrap(),
    }
}

/// The invoke fixture for `approval`, clicked by `user` with `verb`.
fn invoke(approval: &str, user: &str, verb: &str) -> String {
    let mut activity: Value = serde_json::from_str(INVOKE).unwrap();
    activity["value"]["action"]["data"]["approval"] = json!(approval);
    activity["value"]["action"]["verb"] = json!(verb);
    activity["from"]["aadObjectId"] = json!(user);
    serde_json::to_string(&activity).unwrap()
}

/// A response's status and JSON body (Null when empty).
struct Reply {
    status: StatusCode,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        if self.text.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Every text of the refreshed card, joined.
    fn card_text(&self) -> String {
        let json = self.json();
        assert_eq!(json["statusCode"], 200, "{}", self.text);
        assert_eq!(
            json["type"], "application/vnd.microsoft.card.adaptive",
            "{}",
            self.text
        );
        let mut out = Vec::new();
        collect_text(&json["value"], &mut out);
        out.join("\n")
    }
}

fn collect_text(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(t)) = map.get("text") {
                out.push(t.clone());
            }
            for (k, child) in map {
                if k != "text" {
                    collect_text(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        _ => {}
    }
}

impl World {
    async fn post(&self, token: Option<&str>, body: &str) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/teams/messages", self.bot_url))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        Reply {
            status: response.status(),
            text: response.text().await.unwrap(),
        }
    }

    async fn state_of(&self, id: &str) -> (ApprovalState, Option<String>) {
        let all = self.store.approvals(now_ms()).await.unwrap();
        let view = all.iter().find(|v| v.id == id).unwrap();
        (view.state, view.decided_by.clone())
    }

    /// The approval is still pending and no decision was audited.
    async fn assert_untouched(&self, id: &str) {
        assert_eq!(self.state_of(id).await, (ApprovalState::Pending, None));
        assert!(self.audit.decisions().is_empty(), "a decision was audited");
    }

    fn jwks_fetches(&self) -> usize {
        self.fake.count(&Method::GET, "/v1/.well-known/keys")
    }
}

// ----- the tests ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_click_approves_and_answers_the_refreshed_card() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let body = invoke(&parked.id, ADA, VERB_APPROVE);
    let reply = w.post(Some(&valid_token()), &body).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let text = reply.card_text();
    assert!(text.contains("Approved"), "{text}");
    assert!(
        text.contains(&format!("Ada Lovelace (teams:{ADA})")),
        "{text}"
    );
    assert!(
        reply.json()["value"].get("actions").is_none(),
        "the refreshed card has no buttons"
    );
    assert_eq!(
        w.state_of(&parked.id).await,
        (ApprovalState::Approved, Some(format!("teams:{ADA}")))
    );
    let decisions = w.audit.decisions();
    assert_eq!(decisions.len(), 1);
    let Event::DecisionReceived {
        approval,
        channel,
        decision,
        request_digest,
        ..
    } = &decisions[0]
    else {
        unreachable!()
    };
    assert_eq!(approval, &parked.id);
    assert_eq!(channel, "teams");
    assert_eq!(decision, &Decision::approve(format!("teams:{ADA}")));
    assert_eq!(
        request_digest,
        &hex::encode(Sha256::digest(body.as_bytes()))
    );
    tokio::time::timeout(Duration::from_secs(10), w.decided.notified())
        .await
        .expect("the decided signal fires");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_click_rejects() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let reply = w
        .post(
            Some(&valid_token()),
            &invoke(&parked.id, &GRACE.to_uppercase(), VERB_REJECT),
        )
        .await;
    assert!(reply.card_text().contains("Rejected by"), "{}", reply.text);
    assert_eq!(
        w.state_of(&parked.id).await,
        (ApprovalState::Rejected, Some(format!("teams:{GRACE}")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_the_reason_and_decide_nothing() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let body = invoke(&parked.id, ADA, VERB_APPROVE);
    let key = &keys()[0];
    let with = |field: &str, value: Value| {
        let mut c = claims();
        c[field] = value;
        sign(key, &c)
    };
    let mut unsigned = valid_token();
    unsigned.truncate(unsigned.rfind('.').unwrap() + 1);
    unsigned.push_str("AAAA");
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some("kid-a".into());
    let hmac_forgery = jsonwebtoken::encode(
        &hs256,
        &claims(),
        &EncodingKey::from_secret(b"anyone can make this").unwrap(),
    )
    .unwrap();
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        (
            "expired",
            Some(with("exp", json!(now_s() - 600))),
            "the token has expired",
        ),
        (
            "not yet valid",
            Some(with("nbf", json!(now_s() + 600))),
            "not valid yet",
        ),
        (
            "wrong audience",
            Some(with("aud", json!("11111111-1111-1111-1111-111111111111"))),
            "audience is not this bot's app id",
        ),
        (
            "wrong issuer",
            Some(with("iss", json!("https://sts.windows.net/evil/"))),
            "issuer is not https://api.botframework.com",
        ),
        (
            "other service url",
            Some(with("serviceurl", json!("https://evil.example/teams/"))),
            "serviceUrl is not the one the token was issued for",
        ),
        ("bad signature", Some(unsigned), "signature does not verify"),
        ("HS256 forgery", Some(hmac_forgery), "RS256"),
        ("no token", None, "no Authorization header"),
        ("garbage", Some("not-a-jwt".into()), "not a JWT"),
    ];
    for (name, token, reason) in cases {
        let reply = w.post(token.as_deref(), &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{name}: {}",
            reply.text
        );
        let json = reply.json();
        assert_eq!(json["code"], "unauthorized", "{name}");
        let error = json["error"].as_str().unwrap();
        assert!(error.contains(reason), "{name}: {error}");
        w.assert_untouched(&parked.id).await;
    }
    // The same body with a good token does decide: the refusals above were about the tokens.
    let reply = w.post(Some(&valid_token()), &body).await;
    assert!(reply.card_text().contains("Approved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_signing_key_is_refused_after_one_refetch() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let body = invoke(&parked.id, ADA, VERB_APPROVE);
    // Warm the cache with a harmless activity.
    let message = json!({"type": "message", "serviceUrl": ACTIVITY_SERVICE_URL, "channelId": "msteams", "text": "hi"}).to_string();
    let reply = w.post(Some(&valid_token()), &message).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.text, "");
    assert_eq!(w.jwks_fetches(), 1);

    let reply = w.post(Some(&sign(&keys()[2], &claims())), &body).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("\"kid-x\", which is not among the Bot Framework's published signing keys"),
        "{error}"
    );
    assert_eq!(
        w.jwks_fetches(),
        2,
        "an unknown kid refetches the keys once"
    );
    w.assert_untouched(&parked.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_and_accepted() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let other = park(w.store.as_ref(), "api", HOUR).await;
    // The first click fetches the keys (kid-a).
    let reply = w
        .post(Some(&valid_token()), &invoke(&other.id, ADA, VERB_APPROVE))
        .await;
    assert!(reply.card_text().contains("Approved"));
    assert_eq!(w.jwks_fetches(), 1);

    // Microsoft rotates: kid-b is published, kid-a retired.
    w.fake.publish(&[&keys()[1]]);
    let reply = w
        .post(
            Some(&sign(&keys()[1], &claims())),
            &invoke(&parked.id, ADA, VERB_APPROVE),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.card_text().contains("Approved"));
    assert_eq!(w.jwks_fetches(), 2);
    assert_eq!(
        w.state_of(&parked.id).await,
        (ApprovalState::Approved, Some(format!("teams:{ADA}")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_not_endorsed_for_the_channel_is_refused() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let mut activity: Value = serde_json::from_str(&invoke(&parked.id, ADA, VERB_APPROVE)).unwrap();
    activity["channelId"] = json!("skype");
    let reply = w.post(Some(&valid_token()), &activity.to_string()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert!(
        reply.text.contains("not endorsed for channel"),
        "{}",
        reply.text
    );
    w.assert_untouched(&parked.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_not_on_the_allow_list_decides_nothing() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let reply = w
        .post(
            Some(&valid_token()),
            &invoke(&parked.id, MALLORY, VERB_APPROVE),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let text = reply.card_text();
    assert!(text.contains("Not allowed"), "{text}");
    assert!(text.contains(MALLORY), "{text}");
    w.assert_untouched(&parked.id).await;

    // A click without an AAD object id at all (e.g. an anonymous or guest identity).
    let mut activity: Value = serde_json::from_str(&invoke(&parked.id, ADA, VERB_APPROVE)).unwrap();
    activity["from"]
        .as_object_mut()
        .unwrap()
        .remove("aadObjectId");
    let reply = w.post(Some(&valid_token()), &activity.to_string()).await;
    assert!(reply.card_text().contains("Not allowed"));
    w.assert_untouched(&parked.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_click_decides_once() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let first = w
        .post(Some(&valid_token()), &invoke(&parked.id, ADA, VERB_APPROVE))
        .await;
    assert!(first.card_text().contains("Approved"));
    // A second approver rejects a moment later: the first decision stands.
    let second = w
        .post(
            Some(&valid_token()),
            &invoke(&parked.id, GRACE, VERB_REJECT),
        )
        .await;
    let text = second.card_text();
    assert!(text.contains("Already decided"), "{text}");
    assert!(
        text.contains(&format!("already approved by teams:{ADA}")),
        "{text}"
    );
    assert_eq!(
        w.state_of(&parked.id).await,
        (ApprovalState::Approved, Some(format!("teams:{ADA}")))
    );
    assert_eq!(w.audit.decisions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_on_an_expired_approval_decides_nothing() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", -60_000).await;
    let reply = w
        .post(Some(&valid_token()), &invoke(&parked.id, ADA, VERB_APPROVE))
        .await;
    let text = reply.card_text();
    assert!(text.contains("Expired"), "{text}");
    assert!(text.contains("nothing was applied"), "{text}");
    assert_eq!(w.state_of(&parked.id).await, (ApprovalState::Expired, None));
    assert!(w.audit.decisions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_approvals_verbs_and_activities_decide_nothing() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let reply = w
        .post(
            Some(&valid_token()),
            &invoke("apv-000000000000000000000000", ADA, VERB_APPROVE),
        )
        .await;
    assert!(
        reply.card_text().contains("No such approval"),
        "{}",
        reply.text
    );

    let reply = w
        .post(
            Some(&valid_token()),
            &invoke(&parked.id, ADA, "sre_apply_everything"),
        )
        .await;
    let json = reply.json();
    assert_eq!(json["statusCode"], 400, "{}", reply.text);
    assert_eq!(json["type"], "application/vnd.microsoft.error");

    let reply = w
        .post(
            Some(&valid_token()),
            &invoke("../../etc", ADA, VERB_APPROVE),
        )
        .await;
    assert_eq!(reply.json()["statusCode"], 400, "{}", reply.text);

    let reply = w.post(Some(&valid_token()), "{not json").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.json()["error"].as_str().unwrap().contains("not JSON"));

    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(teams::MAX_BODY));
    let reply = w.post(Some(&valid_token()), &big).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    w.assert_untouched(&parked.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_posts_the_card_with_the_bot_token_and_only_the_id() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let mut ask = ask_of(w.store.as_ref(), &parked).await;
    ask.approval.request.preview.evidence = Some(Box::new(documented_findings()));
    w.teams.ask(&ask).await.unwrap();
    w.teams.ask(&ask).await.unwrap();

    let seen = w.fake.seen();
    let tokens: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path == "/botframework.com/oauth2/v2.0/token")
        .collect();
    assert_eq!(tokens.len(), 1, "the bot token is cached");
    let form: BTreeMap<String, String> = url_decode(&tokens[0].body);
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], APP_ID);
    assert_eq!(form["client_secret"], APP_PASSWORD);
    assert_eq!(form["scope"], "https://api.botframework.com/.default");

    let posts: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.path.starts_with("/emea/v3/"))
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[0].path,
        "/emea/v3/conversations/19:a1b2c3d4e5f60718293a4b5c6d7e8f90@thread.tacv2/activities"
    );
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    let activity = posts[0].json();
    assert_eq!(activity["type"], "message");
    let attachment = &activity["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    let actions = card["actions"].as_array().unwrap();
    let verbs: Vec<&str> = actions
        .iter()
        .map(|a| a["verb"].as_str().unwrap())
        .collect();
    assert_eq!(verbs, [VERB_APPROVE, VERB_REJECT]);
    for action in actions {
        assert_eq!(action["type"], "Action.Execute");
        assert_eq!(action["data"], json!({ "approval": parked.id }));
    }
    let mut texts = Vec::new();
    collect_text(card, &mut texts);
    let text = texts.join("\n");
    for shown in [
        "CVE-2024-123",
        "nginx:1.25.3 -> nginx:1.25.5",
        "+  image: nginx:1.25.5",
        "medium",
        "pods restart one at a time",
        "deployments.apps/shop/web@resourceVersion=41",
        &ask.approval.expires_at,
        &parked.id,
        "Findings: ",
        "2 CRITICAL, 6 HIGH now -> 4 MEDIUM in the candidate; clears 3, remains 0",
        "CRITICAL CVE-2024-123 libexpat 2.5.0-r1 -> 2.6.3-r0 (CVSS 9.8)",
        "clears:    CVE-2024-123, CVE-2024-45491, CVE-2023-44487",
    ] {
        assert!(text.contains(shown), "the card shows {shown}: {text}");
    }
    // docs/teams-approval-card.json (pasted into the Adaptive Cards Designer) has this card's
    // shape (its text is the_documented_card_is_what_ask_card_builds').
    let documented: Value =
        serde_json::from_str(include_str!("../../docs/teams-approval-card.json")).unwrap();
    assert_eq!(
        skeleton(&documented),
        skeleton(card),
        "docs/teams-approval-card.json is stale"
    );
    // Untrusted text is never Markdown: it sits in TextRuns, which render as plain text.
    let evidence = find_run(card, "CVE-2024-123").unwrap();
    assert_eq!(evidence["type"], "TextRun");
    assert_eq!(
        w.teams.posted_activity(&parked.id).as_deref(),
        Some(ACTIVITY_ID)
    );
    assert!(!format!("{:?}", w.teams).contains(APP_PASSWORD));
}

// ----- the tool's typed findings --------------------------------------------------------

/// A finding of `package` `installed`, fixed in `fixed`.
fn finding(
    id: &str,
    severity: &str,
    package: &str,
    (installed, fixed): (&str, &str),
    cvss: f64,
) -> Finding {
    Finding {
        id: id.into(),
        severity: severity.into(),
        package: package.into(),
        installed: installed.into(),
        fixed: Some(fixed.into()),
        cvss: Some(cvss),
    }
}

/// nginx:1.25.3 (2 CRITICAL, 6 HIGH; `findings`) patched to nginx:1.25.5 (4 MEDIUM), clearing
/// `clears`.
fn scan_evidence(findings: Vec<Finding>, clears: &[&str]) -> Evidence {
    Evidence {
        vulnerabilities: Some(VulnerabilityEvidence {
            container: "web".into(),
            current: ImageScan {
                image: "nginx:1.25.3".into(),
                digest: None,
                counts: Severities {
                    critical: 2,
                    high: 6,
                    ..Severities::default()
                },
                findings,
                source: ScanSource::TrivyCli,
            },
            candidate: ImageScan {
                image: "nginx:1.25.5".into(),
                digest: Some(
                    "sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31"
                        .into(),
                ),
                counts: Severities {
                    medium: 4,
                    ..Severities::default()
                },
                findings: vec![],
                source: ScanSource::TrivyCli,
            },
            clears: clears.iter().map(|&c| c.to_owned()).collect(),
            remains: vec![],
            introduces: vec![],
        }),
        crash: None,
        target_crash: None,
        target_scan: None,
        unchecked: Vec::new(),
    }
}

/// The findings of the documented card.
fn documented_findings() -> Evidence {
    scan_evidence(
        vec![
            finding(
                "CVE-2024-123",
                "CRITICAL",
                "libexpat",
                ("2.5.0-r1", "2.6.3-r0"),
                9.8,
            ),
            finding(
                "CVE-2024-45491",
                "CRITICAL",
                "libexpat",
                ("2.5.0-r1", "2.6.3-r0"),
                9.1,
            ),
            finding(
                "CVE-2023-44487",
                "HIGH",
                "nghttp2-libs",
                ("1.57.0-r0", "1.57.0-r1"),
                7.5,
            ),
        ],
        &["CVE-2024-123", "CVE-2024-45491", "CVE-2023-44487"],
    )
}

/// A fixed ask (no clock, no store): the one `docs/teams-approval-card.json` shows.
fn documented_ask() -> Ask {
    let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut preview = Preview::new(
        "deployment shop/web: container web image nginx:1.25.3 -> nginx:1.25.5",
        "-  image: nginx:1.25.3\n+  image: nginx:1.25.5\n",
        "deployments.apps/shop/web@41",
        Risk::Medium,
    );
    preview.target = Some(Target {
        kind: "deployments.apps".into(),
        namespace: "shop".into(),
        name: "web".into(),
        resource_version: "41".into(),
    });
    preview.images = Some(vec![ImageChange {
        container: "web".into(),
        before: Some("nginx:1.25.3".into()),
        after: "nginx:1.25.5".into(),
    }]);
    preview.warning = Some("pods restart one at a time".into());
    preview.evidence = Some(Box::new(documented_findings()));
    let request = ApprovalRequest {
        run_id: "run-0001".into(),
        tool: "k8s_patch_image".into(),
        call_id: "call-1".into(),
        arguments: json!({"namespace": "shop", "deployment": "web", "container": "web", "image": "nginx:1.25.5"}),
        preview,
        incident: "deployment shop/web: CVE-2024-123 (critical) in nginx:1.25.3".into(),
        writes_so_far: 0,
        rollback_on_failure: true,
    };
    let action = request.action_fingerprint();
    let at = |ms: u64| {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    };
    Ask {
        incident: Incident {
            key: "shop/deployment/web/vulnerabilities".into(),
            trigger: Trigger::Trivy,
            namespace: "shop".into(),
            workload: "web".into(),
            summary: request.incident.clone(),
        },
        approval: PendingApproval {
            id: PendingApproval::id_for("run-0001", "call-1", &action),
            request,
            action,
            requested_at: at(now),
            expires_at: at(now + 3_600_000),
            expires_at_ms: now + 3_600_000,
        },
    }
}

#[test]
fn the_documented_card_is_what_ask_card_builds() {
    let card = teams::ask_card(&documented_ask());
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/teams-approval-card.json"
    );
    let rendered = format!("{}\n", serde_json::to_string_pretty(&card).unwrap());
    if std::env::var_os("SRE_BLESS").is_some() {
        std::fs::write(path, &rendered).unwrap();
    }
    let documented = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (run with SRE_BLESS=1 to write it)"));
    assert_eq!(
        documented, rendered,
        "docs/teams-approval-card.json is out of date: run this test with SRE_BLESS=1"
    );
}

/// The findings on `card`: (the label's value, the monospace lines, the cut note).
fn findings_of(card: &Value) -> (String, String, Option<String>) {
    let body = card["body"].as_array().unwrap();
    let at = body
        .iter()
        .position(|b| b["inlines"][0]["text"] == "Findings: ")
        .unwrap_or_else(|| panic!("no findings on the card: {card}"));
    assert_eq!(body[at]["type"], "RichTextBlock");
    assert_eq!(body[at]["inlines"][0]["weight"], "Bolder");
    let headline = body[at]["inlines"][1]["text"].as_str().unwrap().to_owned();
    let container = &body[at + 1];
    assert_eq!(container["type"], "Container");
    let run = &container["items"][0]["inlines"][0];
    assert_eq!(run["type"], "TextRun", "plain text, never Markdown");
    assert_eq!(run["fontType"], "Monospace");
    let note = container["items"][1]["inlines"][0]["text"]
        .as_str()
        .map(str::to_owned);
    (headline, run["text"].as_str().unwrap().to_owned(), note)
}

#[test]
fn the_card_shows_the_findings_as_plain_text_with_hostile_ids_inert() {
    let mut ask = documented_ask();
    let ids = [
        "CVE-2024-0001",
        "[click](https://evil.example)",
        "<!channel> *bold*",
        "CVE-9\u{1b}[2J\u{202e}",
    ];
    let findings = ids
        .iter()
        .map(|id| finding(id, "CRITICAL", "openssl", ("3.1.4-r0", "3.1.4-r5"), 9.8))
        .collect();
    ask.approval.request.preview.evidence = Some(Box::new(scan_evidence(findings, &ids)));
    let card = teams::ask_card(&ask);
    let (headline, lines, note) = findings_of(&card);
    assert_eq!(
        headline,
        "2 CRITICAL, 6 HIGH now -> 4 MEDIUM in the candidate; clears 4, remains 0"
    );
    assert_eq!(note, None);
    for shown in [
        "now:       nginx:1.25.3 — 2 CRITICAL, 6 HIGH (trivy CLI scan)",
        "CRITICAL CVE-2024-0001 openssl 3.1.4-r0 -> 3.1.4-r5 (CVSS 9.8)",
        "CRITICAL [click](https://evil.example) openssl",
        "CRITICAL <!channel> *bold* openssl",
        "CRITICAL CVE-9\\e[2J\\u{202e} openssl",
        "candidate: nginx:1.25.5 (sha256:0d17b565",
    ] {
        assert!(lines.contains(shown), "missing {shown:?} in:\n{lines}");
    }
    let serialized = card.to_string();
    assert!(
        !serialized.contains('\u{1b}') && !serialized.contains('\u{202e}'),
        "{serialized}"
    );
    // The hostile ids appear only in TextRuns (plain text), never in a Markdown TextBlock.
    for needle in ["[click]", "<!channel>"] {
        assert_eq!(
            find_run(&card, needle).unwrap()["type"],
            "TextRun",
            "{needle}"
        );
    }

    // The settled card keeps them; a crash shows its exit code and restarts.
    ask.approval.request.preview.evidence = Some(Box::new(Evidence {
        vulnerabilities: None,
        crash: Some(CrashEvidence {
            pod: "web-7d9f-abcde".into(),
            container: "web".into(),
            image: "ghcr.io/acme/shop-web:1.5.0".into(),
            reason: "CrashLoopBackOff".into(),
            exit_code: Some(1),
            restarts: 7,
            failing_pods: 3,
            last_log_lines: vec!["panic: missing DATABASE_URL".into()],
            events: vec![],
        }),
        target_crash: None,
        target_scan: None,
        unchecked: Vec::new(),
    }));
    let settled = teams::settled_card(&Settled {
        approval: ask.approval.clone(),
        incident: ask.incident.clone(),
        ending: Ending::Expired,
    });
    let (headline, lines, _) = findings_of(&settled);
    assert_eq!(headline, "crash: exit code 1, 7 restarts, 3 failing pod(s)");
    assert!(
        lines.contains("log:     panic: missing DATABASE_URL"),
        "{lines}"
    );
}

#[test]
fn long_findings_are_bounded_with_a_note() {
    let mut ask = documented_ask();
    let ids: Vec<String> = (0..40)
        .map(|i| format!("CVE-{i:04}-{}", "9".repeat(400)))
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let findings = ids
        .iter()
        .map(|id| finding(id, "CRITICAL", "openssl", ("3.1.4-r0", "3.1.4-r5"), 9.8))
        .collect();
    ask.approval.request.preview.evidence = Some(Box::new(scan_evidence(findings, &refs)));
    let card = teams::ask_card(&ask);
    let (headline, lines, note) = findings_of(&card);
    assert!(headline.contains("clears 40, remains 0"), "{headline}");
    assert!(
        lines.chars().count() <= teams::MAX_FINDINGS,
        "{}",
        lines.len()
    );
    for line in lines.lines() {
        // Cut lines say how much was cut.
        assert!(
            line.chars().count() <= teams::MAX_FINDINGS_LINE + 30,
            "{line}"
        );
    }
    assert!(lines.contains("more characters)"), "{lines}");
    let note = note.unwrap();
    assert!(
        note.starts_with(&format!("findings cut: {} of ", lines.lines().count())),
        "{note}"
    );
    // The whole card stays far below what Teams accepts in one message (about 28 KB).
    assert!(
        card.to_string().len() < 16 * 1024,
        "{}",
        card.to_string().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_replaces_the_card_with_the_outcome() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let ask = ask_of(w.store.as_ref(), &parked).await;
    w.teams.ask(&ask).await.unwrap();
    let settled = Settled {
        approval: ask.approval.clone(),
        incident: ask.incident.clone(),
        ending: Ending::Applied {
            by: format!("teams:{ADA}"),
        },
    };
    w.teams.settle(&settled).await.unwrap();

    let puts: Vec<Seen> = w
        .fake
        .seen()
        .into_iter()
        .filter(|s| s.method == Method::PUT)
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].path,
        format!("/emea/v3/conversations/{CONVERSATION}/activities/{ACTIVITY_ID}")
    );
    assert_eq!(
        puts[0].authorization.as_deref(),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    let activity = puts[0].json();
    assert_eq!(activity["id"], ACTIVITY_ID);
    let card = &activity["attachments"][0]["content"];
    assert!(card.get("actions").is_none(), "no buttons once it ended");
    let mut texts = Vec::new();
    collect_text(card, &mut texts);
    let text = texts.join("\n");
    assert!(
        text.contains(&format!("approved by teams:{ADA}: applied and verified")),
        "{text}"
    );

    // An approval this process never posted is skipped, not an error.
    let other = park(w.store.as_ref(), "api", HOUR).await;
    let other = ask_of(w.store.as_ref(), &other).await;
    w.teams
        .settle(&Settled {
            approval: other.approval,
            incident: other.incident,
            ending: Ending::Expired,
        })
        .await
        .unwrap();
    assert_eq!(w.fake.count(&Method::PUT, &puts[0].path), 1);
    assert_eq!(
        w.fake
            .seen()
            .iter()
            .filter(|s| s.method == Method::PUT)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_fallback_posts_a_labelled_link() {
    let w = world().await;
    let parked = park(w.store.as_ref(), "web", HOUR).await;
    let ask = ask_of(w.store.as_ref(), &parked).await;
    let hook = TeamsWebhook::new(
        &format!(
            "{}/workflows/hook?api-version=1&sig=WEBHOOK-SIGNATURE",
            w.fake_url
        ),
        Some("https://sre-agent.example.com/"),
    )
    .unwrap();
    assert!(!format!("{hook:?}").contains("WEBHOOK-SIGNATURE"));
    hook.ask(&ask).await.unwrap();

    let posts: Vec<Seen> = w
        .fake
        .seen()
        .into_iter()
        .filter(|s| s.path == "/workflows/hook")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].query.as_deref(),
        Some("api-version=1&sig=WEBHOOK-SIGNATURE")
    );
    let body = posts[0].json();
    let card = &body["attachments"][0]["content"];
    assert_eq!(
        body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let mut texts = Vec::new();
    collect_text(card, &mut texts);
    let text = texts.join("\n");
    assert!(text.contains("notification only"), "{text}");
    assert!(
        text.contains(&format!(
            "Not interactive: decide with `sre-agent approvals approve {}`",
            parked.id
        )),
        "{text}"
    );
    let actions = card["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["type"], "Action.OpenUrl");
    assert_eq!(
        actions[0]["url"],
        format!(
            "https://sre-agent.example.com/api/v1/approvals/{}",
            parked.id
        )
    );

    // A refused post is an error that names the status but never the signature.
    w.fake.0.lock().unwrap().webhook_status = Some(400);
    let error = hook.ask(&ask).await.unwrap_err();
    assert!(error.message.contains("400"), "{error}");
    assert!(!error.to_string().contains("WEBHOOK-SIGNATURE"), "{error}");
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    let password = || ServiceSecret::fixed(&TEAMS_APP_PASSWORD, APP_PASSWORD).unwrap();
    let base = || {
        TeamsConfig::new(
            APP_ID,
            password(),
            vec![ADA.to_owned()],
            "https://smba.trafficmanager.net/emea/",
            CONVERSATION,
        )
    };
    assert!(Teams::new(base()).is_ok());
    let field_of = |config: TeamsConfig| match Teams::new(config).unwrap_err() {
        TeamsError::Config { field, reason } => format!("{field}: {reason}"),
        other => panic!("{other}"),
    };
    let mut c = base();
    c.app_id = "my-bot".into();
    assert!(field_of(c).starts_with("app_id: "));
    let mut c = base();
    c.approvers = vec![];
    assert!(field_of(c).starts_with("approvers: no approvers"));
    let mut c = base();
    c.approvers = vec!["ada@example.com".into()];
    assert!(field_of(c).contains("is not an AAD object id"));
    let mut c = base();
    c.service_url = "http://smba.example.com/".into();
    assert!(field_of(c).contains("plain http is allowed only on loopback"));
    let mut c = base();
    c.openid_metadata_url = "not a url".into();
    assert!(field_of(c).starts_with("openid_metadata_url: "));
    let mut c = base();
    c.conversation_id = " ".into();
    assert!(field_of(c).starts_with("conversation_id: "));
    let mut c = base();
    c.leeway = Duration::from_secs(3600);
    assert!(field_of(c).starts_with("leeway: "));

    let dir = std::env::temp_dir().join(format!("sre-teams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("password");
    std::fs::write(&file, format!("{APP_PASSWORD}\n")).unwrap();
    let loaded = ServiceSecret::from_file(&TEAMS_APP_PASSWORD, &file).unwrap();
    assert!(!format!("{loaded:?}").contains(APP_PASSWORD));
    assert_eq!(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(loaded.get())
            .unwrap()
            .expose(),
        APP_PASSWORD
    );
    std::fs::write(&file, "\n").unwrap();
    let error = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(loaded.check())
        .unwrap_err()
        .to_string();
    assert!(error.contains("empty"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The object whose `text` contains `needle`.
fn find_run<'a>(v: &'a Value, needle: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) => {
            if map
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains(needle))
            {
                return Some(v);
            }
            map.values().find_map(|c| find_run(c, needle))
        }
        Value::Array(items) => items.iter().find_map(|c| find_run(c, needle)),
        _ => None,
    }
}

/// `v` with its free text blanked: the structure and the enumerated values (types, verbs,
/// styles) stay.
fn skeleton(v: &Value) -> Value {
    const KEPT: [&str; 10] = [
        "type", "verb", "version", "style", "weight", "color", "size", "fontType", "title",
        "$schema",
    ];
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, c)| match c {
                    Value::String(_) if !KEPT.contains(&k.as_str()) => (k.clone(), json!("")),
                    _ => (k.clone(), skeleton(c)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(skeleton).collect()),
        other => other.clone(),
    }
}

/// `application/x-www-form-urlencoded` decoded.
fn url_decode(body: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
