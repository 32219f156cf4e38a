//! Shared HTTP plumbing: the secret key type, one client, receiving a response with a size cap,
//! mapping HTTP failures to typed [`LlmError`]s that keep the provider's status and message, and
//! scrubbing the provider's secrets out of anything an error quotes.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use sre_core::LlmError;

pub use sre_core::secret::Secret;

/// The largest response body a provider accepts unless configured otherwise: 8 MiB.
///
/// A chat completion is a few kilobytes; a body far larger is a misbehaving server or proxy, and
/// reading it whole could exhaust memory. Raise it with `max_response_bytes` on the provider
/// ([`OpenAiCompatible::max_response_bytes`](crate::OpenAiCompatible::max_response_bytes),
/// [`Bedrock::max_response_bytes`](crate::Bedrock::max_response_bytes)) or in the
/// [`ProviderConfig`](crate::ProviderConfig).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;

/// What replaces a secret in text that goes into an error.
const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not scrubbed: they protect nothing, and replacing every
/// occurrence of a one- or two-letter string would garble the provider's message.
const MIN_SCRUBBED_LEN: usize = 4;

/// Replaces every occurrence of each secret (exact match) in `text` with `[REDACTED]`.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if secret.len() >= MIN_SCRUBBED_LEN && out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

/// `e` with every secret scrubbed from the text it carries.
pub(crate) fn scrub_error(e: LlmError, secrets: &[&str]) -> LlmError {
    let s = |m: String| scrub(&m, secrets);
    match e {
        LlmError::Auth { provider, message } => LlmError::Auth {
            provider,
            message: s(message),
        },
        LlmError::BadRequest {
            provider,
            status,
            message,
        } => LlmError::BadRequest {
            provider,
            status,
            message: s(message),
        },
        LlmError::Server {
            provider,
            status,
            message,
        } => LlmError::Server {
            provider,
            status,
            message: s(message),
        },
        LlmError::ContentFilter { provider, message } => LlmError::ContentFilter {
            provider,
            message: s(message),
        },
        LlmError::Connect { provider, message } => LlmError::Connect {
            provider,
            message: s(message),
        },
        LlmError::MalformedResponse { provider, message } => LlmError::MalformedResponse {
            provider,
            message: s(message),
        },
        LlmError::Config(message) => LlmError::Config(s(message)),
        LlmError::Other(message) => LlmError::Other(s(message)),
        other => other,
    }
}

/// The one reqwest client builder of this crate: rustls with ring, the user agent, and **no
/// redirects** — reqwest strips only `Authorization` on a cross-host redirect, so following one
/// would carry `X-Vault-Token`, Azure's `api-key` or a re-posted body holding a web identity token or
/// a client assertion to another host. The AWS SDKs follow none either.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
}

/// A client from [`client_builder`] with the given request timeout.
pub(crate) fn client(timeout: Option<Duration>) -> reqwest::Client {
    let mut b = client_builder();
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().unwrap_or_default()
}

/// The provider's own error message in a JSON error body (`{"error": {"message"}}`,
/// `{"message"}`, `{"error": "…"}`), or the body itself (its first 500 characters), with every
/// secret scrubbed — before truncating, so no prefix of a key survives the cut.
pub(crate) fn provider_message(body: &[u8], secrets: &[&str]) -> String {
    let text = || {
        scrub(&String::from_utf8_lossy(body), secrets)
            .chars()
            .take(500)
            .collect()
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return text();
    };
    let msg = v
        .pointer("/error/message")
        .or_else(|| v.get("message"))
        .or_else(|| v.get("Message"))
        .or_else(|| v.get("error"))
        .and_then(Value::as_str);
    msg.map_or_else(text, |m| scrub(m, secrets))
}

/// A wait in seconds (`"2"`, `"1.5"`), or in Groq's `2m59.56s` form. A number of seconds
/// past what a `Duration` holds (`"1e30"`, `"inf"`) is the longest wait, which
/// [`Retry`](crate::Retry) refuses to sit out, never a panic.
fn seconds(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(f) = s.parse::<f64>() {
        return (f >= 0.0).then(|| Duration::try_from_secs_f64(f).unwrap_or(Duration::MAX));
    }
    // Groq's reset headers look like "2m59.56s", "7.66s", "120ms".
    humantime::parse_duration(s).ok()
}

/// How long the provider asked us to wait: `retry-after-ms` (Azure), `Retry-After` (seconds or an
/// HTTP date), or Groq's `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens`.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    if let Some(v) = get("retry-after") {
        if let Some(d) = seconds(v) {
            return Some(d);
        }
        if let Ok(t) = humantime::parse_rfc3339_weak(v).or_else(|_| httpdate(v)) {
            return Some(
                t.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default(),
            );
        }
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|h| get(h).and_then(seconds))
        .max()
}

fn httpdate(v: &str) -> Result<std::time::SystemTime, humantime::TimestampError> {
    // "Wed, 21 Oct 2015 07:28:00 GMT" -> "2015-10-21T07:28:00Z"
    let parts: Vec<&str> = v.split_whitespace().collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if let [_, day, mon, year, time, _] = parts.as_slice()
        && let Some(m) = months.iter().position(|x| x == mon)
    {
        return humantime::parse_rfc3339(&format!("{year}-{:02}-{:0>2}T{time}Z", m + 1, day));
    }
    humantime::parse_rfc3339(v)
}

/// Maps a reqwest failure.
pub(crate) fn transport_error(
    provider: &str,
    e: &reqwest::Error,
    timeout: Option<Duration>,
) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout {
            provider: provider.to_owned(),
            elapsed: timeout.unwrap_or_default(),
        }
    } else {
        LlmError::Connect {
            provider: provider.to_owned(),
            message: e.to_string(),
        }
    }
}

/// Maps a non-2xx answer; `secrets` are scrubbed from the quoted message.
pub(crate) fn status_error(
    provider: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> LlmError {
    let message = provider_message(body, secrets);
    let p = provider.to_owned();
    let code = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer("/error/code")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    if code.as_deref() == Some("content_filter") {
        return LlmError::ContentFilter {
            provider: p,
            message,
        };
    }
    match status {
        401 | 403 => LlmError::Auth {
            provider: p,
            message,
        },
        429 => LlmError::RateLimited {
            provider: p,
            retry_after: retry_after(headers),
        },
        500..=599 => LlmError::Server {
            provider: p,
            status,
            message,
        },
        _ => LlmError::BadRequest {
            provider: p,
            status,
            message,
        },
    }
}

/// A response: status, headers and the body read under the size cap.
pub(crate) struct Received {
    /// HTTP status.
    pub(crate) status: u16,
    /// Response headers.
    pub(crate) headers: HeaderMap,
    /// The body; for a non-2xx answer, at most the cap (the rest is not read).
    pub(crate) body: Vec<u8>,
}

impl Received {
    /// True for a 2xx status.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The error for a 2xx body larger than `limit` bytes: names the provider, the limit and how to
/// raise it. `declared` is the `Content-Length` when that is what gave it away.
fn too_large(provider: &str, limit: u64, declared: Option<u64>) -> LlmError {
    let what = declared.map_or_else(
        || "response body".to_owned(),
        |n| format!("response body of {n} bytes (Content-Length)"),
    );
    LlmError::MalformedResponse {
        provider: provider.to_owned(),
        message: format!(
            "{what} exceeds the limit of {limit} bytes and was not read further; raise it with \
             `max_response_bytes` in the provider config or `.max_response_bytes(n)` on the provider"
        ),
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Sends a prepared request and reads the answer, at most `limit` bytes of body.
///
/// A 2xx answer whose `Content-Length` exceeds `limit` fails before its body is read; one without
/// a `Content-Length` (chunked) fails as soon as the bytes read pass `limit`, and the connection
/// is dropped. A non-2xx body is only quoted in the error, so it is cut at `limit` instead.
pub(crate) async fn receive(
    provider: &str,
    req: reqwest::RequestBuilder,
    timeout: Option<Duration>,
    limit: u64,
) -> Result<Received, LlmError> {
    let mut resp = req
        .send()
        .await
        .map_err(|e| transport_error(provider, &e, timeout))?;
    let status = resp.status().as_u16();
    let success = resp.status().is_success();
    let headers = resp.headers().clone();
    let declared = resp.content_length();
    if success && let Some(n) = declared.filter(|&n| n > limit) {
        return Err(too_large(provider, limit, Some(n)));
    }
    // Never pre-allocate more than 1 MiB on the server's word.
    let hint = declared.unwrap_or(0).min(limit).min(1024 * 1024);
    let mut body = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(provider, &e, timeout))?
    {
        let room = limit.saturating_sub(len_u64(body.len()));
        if len_u64(chunk.len()) > room {
            if success {
                return Err(too_large(provider, limit, None));
            }
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            body.extend_from_slice(&chunk[..room.min(chunk.len())]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Received {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after-ms", "1500"),
                ("retry-after", "9")
            ])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[
                ("x-ratelimit-reset-requests", "2m59.56s"),
                ("x-ratelimit-reset-tokens", "7.66s")
            ])),
            Some(Duration::from_millis(179_560))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[])), None);
    }

    #[test]
    fn a_retry_after_too_long_for_a_duration_is_the_longest_wait_not_a_panic() {
        // Found by the fuzz target `openai_response`: `Duration::from_secs_f64` panicked on a
        // `Retry-After` of 755555...5 seconds, so a hostile or broken endpoint (or a proxy in
        // front of it) could crash the agent with one header.
        for v in [
            "7555555555555555555555555555555555555555",
            "1e30",
            "inf",
            "Infinity",
        ] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", v)])),
                Some(Duration::MAX),
                "{v}"
            );
        }
        for v in ["-1", "NaN", "-inf"] {
            assert_eq!(retry_after(&headers(&[("retry-after", v)])), None, "{v}");
        }
    }

    #[test]
    fn provider_messages() {
        assert_eq!(
            provider_message(
                br#"{"error": {"message": "bad tool", "type": "invalid_request_error"}}"#,
                &[]
            ),
            "bad tool"
        );
        assert_eq!(
            provider_message(
                br#"{"message": "The provided model identifier is invalid."}"#,
                &[]
            ),
            "The provided model identifier is invalid."
        );
        assert_eq!(
            provider_message(b"upstream connect error", &[]),
            "upstream connect error"
        );
    }

    #[test]
    fn a_key_cut_by_the_500_character_limit_leaves_no_prefix_behind() {
        let key = "gsk_live_0123456789abcdef";
        let body = format!("{}{key} was rejected", "x".repeat(495));
        let m = provider_message(body.as_bytes(), &[key]);
        assert!(!m.contains("gsk_"), "{m}");
        assert!(m.ends_with("[REDA"), "cut after scrubbing: {m}");
        let json = format!(r#"{{"error": {{"message": "Incorrect API key provided: {key}"}}}}"#);
        assert_eq!(
            provider_message(json.as_bytes(), &[key]),
            "Incorrect API key provided: [REDACTED]"
        );
    }

    #[test]
    fn scrubbing_reaches_every_message_and_skips_trivial_secrets() {
        let e = scrub_error(
            LlmError::Connect {
                provider: "azure".into(),
                message: "error sending request with token tok-123456".into(),
            },
            &["tok-123456"],
        );
        assert_eq!(
            e.to_string(),
            "could not reach azure: error sending request with token [REDACTED]"
        );
        let e = scrub_error(
            LlmError::MalformedResponse {
                provider: "groq".into(),
                message: "invalid type: string \"tok-123456\"".into(),
            },
            &["", "k", "tok-123456"],
        );
        assert!(!e.to_string().contains("tok-123456"), "{e}");
        assert_eq!(scrub("bad key", &["k", ""]), "bad key");
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(
            format!("{:?}", Secret::new("gsk_123")),
            "Secret([REDACTED])"
        );
    }
}
