//! SigV4: the signature the aws-sigv4 crate computes for our requests equals one derived here by
//! hand, step by step from the specification (canonical request → string to sign → signing key →
//! signature), and AWS's published `get-vanilla` test vector.

#![expect(
    clippy::unwrap_used,
    clippy::too_many_arguments,
    reason = "test helpers fail loudly; the hand signer takes every SigV4 input"
)]

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sre_llm::Secret;
use sre_llm::bedrock::AwsCredentials;
use sre_llm::bedrock::sigv4::{Unsigned, sign_request};

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// SigV4 by hand, for a request whose path and query need no further encoding.
fn by_hand(
    secret: &str,
    region: &str,
    service: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    amz_date: &str,
) -> String {
    let mut sorted: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.trim().to_owned()))
        .collect();
    sorted.sort();
    let canonical_headers = sorted
        .iter()
        .fold(String::new(), |acc, (k, v)| acc + k + ":" + v + "\n");
    let signed_headers = sorted
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{path}\n\n{canonical_headers}\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(body))
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    hex::encode(hmac(&k_signing, &string_to_sign))
}

fn header<'a>(signed: &'a [(String, String)], name: &str) -> &'a str {
    signed
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap()
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[test]
fn the_published_get_vanilla_vector() {
    let creds = AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new(SECRET),
        session_token: None,
    };
    // 2015-08-30T12:36:00Z
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    let signed = sign_request(
        &creds,
        "us-east-1",
        "service",
        Unsigned {
            method: "GET",
            url: "https://example.amazonaws.com/",
            headers: &[("host", "example.amazonaws.com")],
            body: b"",
        },
        time,
    )
    .unwrap();
    assert_eq!(header(&signed, "x-amz-date"), "20150830T123600Z");
    let expected = by_hand(
        SECRET,
        "us-east-1",
        "service",
        "GET",
        "/",
        &[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ],
        b"",
        "20150830T123600Z",
    );
    assert_eq!(
        expected, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "the hand derivation matches AWS's test suite"
    );
    assert_eq!(
        header(&signed, "authorization"),
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={expected}"
        )
    );
}

#[test]
fn a_bedrock_converse_post_with_a_session_token() {
    let creds = AwsCredentials {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: Secret::new(SECRET),
        session_token: Some(Secret::new("FQoGZXIvYXdzEXAMPLETOKEN")),
    };
    // 2026-11-25T10:00:00Z
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_600_800);
    let body = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
    let host = "bedrock-runtime.eu-west-1.amazonaws.com";
    let signed = sign_request(
        &creds,
        "eu-west-1",
        "bedrock",
        Unsigned {
            method: "POST",
            url: &format!("https://{host}/model/meta.llama3-1-70b-instruct-v1%3A0/converse"),
            headers: &[("content-type", "application/json"), ("host", host)],
            body,
        },
        time,
    )
    .unwrap();
    let amz_date = header(&signed, "x-amz-date").to_owned();
    assert_eq!(amz_date, "20261125T100000Z");
    assert_eq!(
        header(&signed, "x-amz-security-token"),
        "FQoGZXIvYXdzEXAMPLETOKEN"
    );
    // The path is signed as sent: the ':' of the model id percent-encoded, and that '%' encoded again
    // in the canonical URI (SigV4 double-encodes paths for every service but S3).
    let expected = by_hand(
        SECRET,
        "eu-west-1",
        "bedrock",
        "POST",
        "/model/meta.llama3-1-70b-instruct-v1%253A0/converse",
        &[
            ("content-type", "application/json"),
            ("host", host),
            ("x-amz-date", &amz_date),
            ("x-amz-security-token", "FQoGZXIvYXdzEXAMPLETOKEN"),
        ],
        body,
        &amz_date,
    );
    assert_eq!(
        header(&signed, "authorization"),
        format!(
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261125/eu-west-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature={expected}"
        )
    );
}
