//! Invariant checks shared by the fuzz targets in `fuzz_targets/` (see `run.sh` and the README's
//! "Fuzzing" paragraph). Each target feeds its input to the same public entry point real input
//! takes; these helpers state what must hold beyond "no panic". A failed check panics, which
//! libFuzzer reports as a crash with the input saved under `artifacts/<target>/`.
//!
//! ```no_run
//! // a parser's error message must not quote a secret-looking token of its input whole
//! sre_fuzz::assert_no_secret_echo("{\"k\": \"ghp_...\"}", "invalid type", "example");
//! ```

use std::sync::OnceLock;

use serde_json::Value;
use sre_core::Redactor;

/// The built-in redactor, built once per process.
pub fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(Redactor::default)
}

/// Shortest run of token characters checked: shorter runs are no credential format's.
const MIN_TOKEN: usize = 16;

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'+' | b'=')
}

/// The secret-looking tokens of `input`: maximal runs of token characters (letters, digits,
/// `_-./+=`) of at least 16 bytes that the redactor redacts standing alone (vendor key formats,
/// JWTs, AWS keys: formats that are secret wherever they appear).
pub fn secret_tokens(input: &str) -> Vec<&str> {
    input
        .split(|c: char| !c.is_ascii() || !token_byte(c as u8))
        .filter(|run| run.len() >= MIN_TOKEN)
        .filter(|run| redactor().redact(run) != *run)
        .collect()
}

/// Panics when `message` (an error a parser returned for `input`) quotes one of `input`'s
/// secret-looking tokens whole. `what` names the parser in the panic.
pub fn assert_no_secret_echo(input: &str, message: &str, what: &str) {
    // Whole tokens of the message, cut the way the input's were: a secret-looking token of the
    // input that appears in the message only as part of a longer token (`AKIA` + 16 characters
    // followed by one more) is not that secret, and the redactor rightly leaves it.
    let quoted: Vec<&str> = message
        .split(|c: char| !c.is_ascii() || !token_byte(c as u8))
        .collect();
    for token in secret_tokens(input) {
        assert!(
            !quoted.contains(&token),
            "{what}: the error message quotes a secret-looking token of the input whole \
             ({} bytes, rules {:?}): {message}",
            token.len(),
            redactor().matching_rules(token),
        );
    }
}

/// Panics when `message` contains one of `secrets` (the credentials a provider was called with).
pub fn assert_no_secret(message: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(
            !message.contains(secret),
            "{what}: the error message quotes a credential: {message}"
        );
    }
}

/// Two JSON values are the same but for the last bits of floating-point numbers (serde_json's
/// default float parser may be one unit in the last place off after a print/parse round trip).
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Panics unless `a` and `b` serialize to the [same](same_json) JSON.
pub fn assert_same<T: serde::Serialize>(a: &T, b: &T, what: &str) {
    let (x, y) = (serde_json::to_value(a), serde_json::to_value(b));
    match (x, y) {
        (Ok(x), Ok(y)) => assert!(
            same_json(&x, &y),
            "{what}: a re-parsed value differs from the first parse:\nfirst:  {x}\nsecond: {y}"
        ),
        (x, y) => panic!("{what}: a parsed value does not serialize: {x:?} / {y:?}"),
    }
}

/// The statuses an error answer is tried with (one per input, chosen by its length).
const ERROR_STATUSES: [u16; 8] = [400, 401, 403, 404, 408, 429, 500, 503];

/// A provider answer as the LLM targets read their input: an optional first line
/// `header-name: value` (the one response header the parser reads, e.g. `x-amzn-errortype`),
/// then the body. Returns the headers, the body and a non-2xx status to try it with besides 200.
pub fn provider_answer(data: &[u8], header: &str) -> (http::HeaderMap, Vec<u8>, u16) {
    let mut headers = http::HeaderMap::new();
    let mut body = data;
    let prefix = format!("{header}:");
    if data.len() > prefix.len() && data[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()) {
        let end = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(header.as_bytes()),
            http::HeaderValue::from_bytes(data[prefix.len()..end].trim_ascii()),
        ) {
            headers.insert(name, value);
        }
        body = data.get(end + 1..).unwrap_or_default();
    }
    let status = ERROR_STATUSES[data.len() % ERROR_STATUSES.len()];
    (headers, body.to_vec(), status)
}

/// The checks both provider targets make on a parsed answer: only a 2xx status parses into a
/// response, its tool calls have unique, non-blank ids (results are paired with calls by id),
/// and an error never quotes one of `secrets`.
pub fn check_answer(
    status: u16,
    answer: Result<sre_core::ChatResponse, sre_core::LlmError>,
    secrets: &[&str],
    what: &str,
) {
    match answer {
        Ok(response) => {
            assert!(
                (200..300).contains(&status),
                "an error status parsed as a response"
            );
            let calls = &response.message.tool_calls;
            let ids: std::collections::HashSet<&str> =
                calls.iter().map(|c| c.id.as_str()).collect();
            assert_eq!(ids.len(), calls.len(), "tool call ids repeat: {calls:?}");
            assert!(
                calls.iter().all(|c| !c.id.trim().is_empty()),
                "a tool call without an id: {calls:?}"
            );
        }
        Err(e) => assert_no_secret(&e.to_string(), secrets, what),
    }
}
