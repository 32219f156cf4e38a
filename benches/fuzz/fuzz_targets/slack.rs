//! Fuzz target: the Slack interactivity endpoint's read path (`serve::slack::read_interaction`:
//! the `v0` request signature, the form body's one `payload=` field, the interaction JSON, the
//! button action). The input is a form body, which the target signs as Slack would; an input
//! starting `v0=` is instead `<x-slack-signature>\n<x-slack-request-timestamp>\n<body>`, sent as
//! it is. Beyond "no panic": a correctly signed request is never refused as unauthenticated; the
//! same body with one byte changed, or signed an hour ago, always is; a request with a presented
//! signature is accepted only if that signature is right; an error never quotes the signing
//! secret or a secret-looking token of the input whole; an accepted click carries a plausible
//! approval id.
#![no_main]

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac as _};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use sre_tools::serve::slack::{InteractionClick, read_interaction};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Slack's signature of `body` at `timestamp` (the client side of the check under test).
fn sign(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn headers(signature: &[u8], timestamp: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Ok(v) = HeaderValue::from_bytes(signature) {
        h.insert("x-slack-signature", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(timestamp) {
        h.insert("x-slack-request-timestamp", v);
    }
    h
}

fn check(input: &[u8], result: &Result<InteractionClick, (u16, String)>) {
    match result {
        Ok(click) => assert!(
            !click.approval.is_empty()
                && click
                    .approval
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "an accepted click with approval id {:?}",
            click.approval
        ),
        Err((_, message)) => {
            assert!(
                !message.contains(SECRET),
                "an error quotes the signing secret"
            );
            let text = String::from_utf8_lossy(input);
            sre_fuzz::assert_no_secret_echo(&text, message, "slack interaction");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if data.starts_with(b"v0=") {
        let mut parts = data.splitn(3, |b| *b == b'\n');
        let signature = parts.next().unwrap_or_default();
        let timestamp = parts.next().unwrap_or_default();
        let body = parts.next().unwrap_or_default();
        let result = read_interaction(SECRET, &headers(signature, timestamp), body);
        let right =
            std::str::from_utf8(timestamp).is_ok_and(|t| sign(t, body).as_bytes() == signature);
        if !right {
            assert!(
                matches!(result, Err((401, _))),
                "a request with a wrong signature was not refused: {result:?}"
            );
        }
        check(data, &result);
        return;
    }
    let ts = now.to_string();
    let result = read_interaction(
        SECRET,
        &headers(sign(&ts, data).as_bytes(), ts.as_bytes()),
        data,
    );
    assert!(
        !matches!(result, Err((401, _))),
        "a correctly signed request was refused: {result:?}"
    );
    check(data, &result);

    let mut tampered = data.to_vec();
    match tampered.get_mut(data.len() / 2) {
        Some(b) => *b ^= 0x01,
        None => tampered.push(b'&'),
    }
    let result = read_interaction(
        SECRET,
        &headers(sign(&ts, data).as_bytes(), ts.as_bytes()),
        &tampered,
    );
    assert!(
        matches!(result, Err((401, _))),
        "a body changed after signing was not refused: {result:?}"
    );

    let old = (now - 3600).to_string();
    let result = read_interaction(
        SECRET,
        &headers(sign(&old, data).as_bytes(), old.as_bytes()),
        data,
    );
    assert!(
        matches!(result, Err((401, _))),
        "a request signed an hour ago was not refused: {result:?}"
    );
});
