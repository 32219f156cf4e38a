//! Shared HTTP plumbing: the secret key type, one client, sending a request, and mapping HTTP
//! failures to typed [`LlmError`]s that keep the provider's status and message.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use sre_core::LlmError;

/// An API key or token: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a key.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The key, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// A reqwest client with rustls (ring) and the given request timeout.
pub(crate) fn client(timeout: Option<Duration>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b =
        reqwest::Client::builder().user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().unwrap_or_default()
}

/// The provider's own error message in a JSON error body (`{"error": {"message"}}`,
/// `{"message"}`, `{"error": "…"}`), or the body itself.
pub(crate) fn provider_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return text.chars().take(500).collect();
    };
    let msg = v
        .pointer("/error/message")
        .or_else(|| v.get("message"))
        .or_else(|| v.get("Message"))
        .or_else(|| v.get("error"))
        .and_then(Value::as_str);
    msg.map_or_else(|| text.chars().take(500).collect(), str::to_owned)
}

fn seconds(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(f) = s.parse::<f64>() {
        return (f.is_finite() && f >= 0.0).then(|| Duration::from_secs_f64(f));
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

/// Maps a non-2xx answer.
pub(crate) fn status_error(
    provider: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> LlmError {
    let message = provider_message(body);
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

/// Sends a prepared request and returns the body of a 2xx answer.
pub(crate) async fn send(
    provider: &str,
    req: reqwest::RequestBuilder,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, LlmError> {
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error(provider, &e, timeout))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport_error(provider, &e, timeout))?;
    if !(200..300).contains(&status) {
        return Err(status_error(provider, status, &headers, &body));
    }
    Ok(body.to_vec())
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
    fn provider_messages() {
        assert_eq!(
            provider_message(
                br#"{"error": {"message": "bad tool", "type": "invalid_request_error"}}"#
            ),
            "bad tool"
        );
        assert_eq!(
            provider_message(br#"{"message": "The provided model identifier is invalid."}"#),
            "The provided model identifier is invalid."
        );
        assert_eq!(
            provider_message(b"upstream connect error"),
            "upstream connect error"
        );
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(
            format!("{:?}", Secret::new("gsk_123")),
            "Secret([REDACTED])"
        );
    }
}
