//! The `aws-sm:` secret source against a loopback server speaking Secrets Manager's JSON 1.1
//! protocol (wiremock): the exact request (target, content type, body, a SigV4 signature checked
//! by hand), JSON keys, ARNs, every error type, bounded retries on throttling, and that no error
//! shows the value or the AWS secret key.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

#[path = "secrets_support/hidden.rs"]
mod hidden;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use hidden::assert_hidden;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sre_core::secret::{SecretError, SecretRef, SecretSource};
use sre_llm::secrets::{SecretsManagerRetry, SecretsManagerSource, standard_sources};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN";
const GROQ: &str = "gsk_secretsmanager_value_1";
const SLACK: &str = "xoxb-secretsmanager-value-2";
/// 2024-05-01T12:00:00Z.
const NOON: u64 = 1_714_564_800;

fn r(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

fn credentials(session_token: Option<&str>) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "AKID",
        SECRET_KEY,
        session_token.map(str::to_owned),
        None,
        "test",
    ))
}

fn quick_retries(max_retries: usize) -> SecretsManagerRetry {
    SecretsManagerRetry {
        max_retries,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn source(server: &MockServer) -> SecretsManagerSource {
    SecretsManagerSource::new("eu-west-1", credentials(None))
        .endpoint(&server.uri())
        .retry(quick_retries(3))
        .fixed_clock(SystemTime::UNIX_EPOCH + Duration::from_secs(NOON))
}

/// A `GetSecretValue` answer, as the service sends it.
fn answer(secret_string: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .insert_header("x-amzn-requestid", "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f")
        .set_body_json(json!({
            "ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/sre-agent-AbCdEf",
            "CreatedDate": 1.714_564_8e9,
            "Name": "prod/sre-agent",
            "SecretString": secret_string,
            "VersionId": "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE",
            "VersionStages": ["AWSCURRENT"]
        }))
}

/// An error answer: status 400, the type in `x-amzn-ErrorType` and in `__type` (with the
/// namespace the service puts there), and the message.
fn error(kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .insert_header(
            "x-amzn-ErrorType",
            format!("{kind}:http://internal.amazon.com/coral/com.amazonaws.secretsmanager/")
                .as_str(),
        )
        .set_body_json(json!({
            "__type": format!("com.amazonaws.secretsmanager#{kind}"),
            "Message": message
        }))
}

fn json_secret() -> String {
    json!({"groq": GROQ, "slack": SLACK}).to_string()
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The SigV4 signature of the request as it arrived, derived by hand from the specification.
fn signature_by_hand(q: &Request, region: &str, signed_headers: &str) -> String {
    let get = |name: &str| {
        q.headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .to_owned()
    };
    let canonical_headers: Vec<String> = signed_headers
        .split(';')
        .map(|h| format!("{h}:{}", get(h)))
        .collect();
    let canonical_headers = canonical_headers.join("\n");
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(&q.body))
    );
    let amz_date = get("x-amz-date");
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/secretsmanager/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date);
    let k = hmac(&k, region);
    let k = hmac(&k, "secretsmanager");
    let k = hmac(&k, "aws4_request");
    hex::encode(hmac(&k, &to_sign))
}

#[tokio::test]
async fn the_request_is_get_secret_value_over_json_1_1_signed_with_sigv4() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("content-type", "application/x-amz-json-1.1"))
        .and(header("x-amz-target", "secretsmanager.GetSecretValue"))
        .and(body_json(json!({"SecretId": "prod/sre-agent"})))
        .respond_with(answer(&json_secret()))
        .expect(1)
        .mount(&server)
        .await;
    let sm = source(&server);
    let got = sm.fetch(&r("aws-sm:prod/sre-agent#groq")).await.unwrap();
    assert_eq!(got.value.expose(), GROQ);
    assert_eq!(got.valid_for, None);

    let q = &requests(&server).await[0];
    assert_eq!(q.body, br#"{"SecretId":"prod/sre-agent"}"#);
    let auth = q.headers.get("authorization").unwrap().to_str().unwrap();
    let signed = "content-type;host;x-amz-date;x-amz-target";
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20240501/eu-west-1/secretsmanager/aws4_request, SignedHeaders={signed}, Signature="
        )),
        "{auth}"
    );
    assert_eq!(
        q.headers.get("x-amz-date").unwrap().to_str().unwrap(),
        "20240501T120000Z"
    );
    let signature = auth.rsplit("Signature=").next().unwrap();
    assert_eq!(signature, signature_by_hand(q, "eu-west-1", signed));
    assert!(q.headers.get("x-amz-security-token").is_none());
}

#[tokio::test]
async fn without_a_key_the_whole_string_and_an_arn_is_signed_for_its_region() {
    let server = MockServer::start().await;
    let arn = "arn:aws:secretsmanager:us-east-2:123456789012:secret:prod/sre-agent-AbCdEf";
    Mock::given(method("POST"))
        .and(body_json(json!({"SecretId": arn})))
        .respond_with(answer(GROQ))
        .mount(&server)
        .await;
    let sm = SecretsManagerSource::new("eu-west-1", credentials(Some(SESSION_TOKEN)))
        .endpoint(&server.uri())
        .fixed_clock(SystemTime::UNIX_EPOCH + Duration::from_secs(NOON));
    let got = sm.fetch(&r(&format!("aws-sm:{arn}"))).await.unwrap();
    assert_eq!(got.value.expose(), GROQ);
    let q = &requests(&server).await[0];
    let auth = q.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(
        auth.contains("Credential=AKID/20240501/us-east-2/secretsmanager/aws4_request"),
        "{auth}"
    );
    assert!(
        auth.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        ),
        "{auth}"
    );
    assert_eq!(
        q.headers
            .get("x-amz-security-token")
            .unwrap()
            .to_str()
            .unwrap(),
        SESSION_TOKEN
    );
}

#[tokio::test]
async fn a_missing_secret_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = source(&server)
        .fetch(&r("aws-sm:prod/nope#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "secret aws-sm:prod/nope#groq not found: Secrets Manager has no secret \"prod/nope\": \
         ResourceNotFoundException (400): Secrets Manager can't find the specified secret."
    );
    assert_hidden(&err, &[SECRET_KEY]);
}

#[tokio::test]
async fn a_missing_key_is_not_found_listing_key_names_only() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer(&json_secret()))
        .mount(&server)
        .await;
    let err = source(&server)
        .fetch(&r("aws-sm:prod/sre-agent#openai"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(r#"has no key "openai" (its keys: "groq", "slack")"#),
        "{err}"
    );
    assert_hidden(&err, &[GROQ, SLACK, SECRET_KEY]);

    // A key asked of a secret that is not JSON.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer(GROQ))
        .mount(&server)
        .await;
    let err = source(&server)
        .fetch(&r("aws-sm:prod/sre-agent#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert_hidden(&err, &[GROQ]);
}

#[tokio::test]
async fn access_denied_and_its_kin_are_denied_without_the_secret_key() {
    for (kind, message) in [
        (
            "AccessDeniedException",
            format!(
                "User: arn:aws:sts::123456789012:assumed-role/sre-agent/i-0abc is not authorized to perform: \
                 secretsmanager:GetSecretValue on resource: prod/sre-agent (key {SECRET_KEY})"
            ),
        ),
        (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".to_owned(),
        ),
        (
            "ExpiredTokenException",
            "The security token included in the request is expired".to_owned(),
        ),
        (
            "DecryptionFailure",
            "Access to KMS is not allowed".to_owned(),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(error(kind, &message))
            .expect(1) // never retried
            .mount(&server)
            .await;
        let err = source(&server)
            .fetch(&r("aws-sm:prod/sre-agent#groq"))
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::Denied { .. }), "{kind}: {err}");
        assert!(err.to_string().contains(kind), "{err}");
        assert_hidden(&err, &[SECRET_KEY]);
    }
}

#[tokio::test]
async fn the_error_type_is_read_from_the_header_alone_or_the_body_alone() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-amzn-ErrorType", "AccessDeniedException")
                .set_body_string(""),
        )
        .mount(&server)
        .await;
    let err = source(&server)
        .fetch(&r("aws-sm:prod/sre-agent"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Denied { .. }), "{err}");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "__type": "InvalidRequestException",
            "message": "You can't perform this operation on the secret because it was marked for deletion."
        })))
        .expect(1)
        .mount(&server)
        .await;
    let err = source(&server)
        .fetch(&r("aws-sm:prod/sre-agent"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("marked for deletion"), "{err}");
}

#[tokio::test]
async fn throttling_is_retried_until_it_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error("ThrottlingException", "Rate exceeded"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(answer(&json_secret()))
        .mount(&server)
        .await;
    let got = source(&server)
        .fetch(&r("aws-sm:prod/sre-agent#slack"))
        .await
        .unwrap();
    assert_eq!(got.value.expose(), SLACK);
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn a_server_error_is_retried_too() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .insert_header("x-amzn-ErrorType", "InternalServiceError")
                .set_body_json(json!({"__type": "InternalServiceError", "Message": "An error occurred on the server side."})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(answer(&json_secret()))
        .mount(&server)
        .await;
    let got = source(&server)
        .fetch(&r("aws-sm:prod/sre-agent#groq"))
        .await
        .unwrap();
    assert_eq!(got.value.expose(), GROQ);
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn throttling_that_never_ends_is_unavailable_after_the_bounded_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error("ThrottlingException", "Rate exceeded"))
        .mount(&server)
        .await;
    let err = source(&server)
        .retry(quick_retries(2))
        .fetch(&r("aws-sm:prod/sre-agent#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Unavailable { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "secret aws-sm:prod/sre-agent#groq: source unavailable: Secrets Manager answered \
         ThrottlingException (400): Rate exceeded (gave up after 2 retries)"
    );
    assert_eq!(requests(&server).await.len(), 3, "one try and two retries");
    assert_hidden(&err, &[SECRET_KEY]);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_after_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = SecretsManagerSource::new("eu-west-1", credentials(None))
        .endpoint(&format!("http://127.0.0.1:{port}"))
        .retry(quick_retries(1))
        .fetch(&r("aws-sm:prod/sre-agent#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "could not reach Secrets Manager at http://127.0.0.1:{port}/"
        )),
        "{err}"
    );
    assert!(err.to_string().contains("gave up after 1 retries"), "{err}");
}

#[tokio::test]
async fn a_binary_only_secret_is_invalid() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/cert-AbCdEf",
            "Name": "prod/cert",
            "SecretBinary": "Z3NrX2JpbmFyeV92YWx1ZQ==",
            "VersionId": "EXAMPLE2-90ab-cdef-fedc-ba987EXAMPLE",
            "VersionStages": ["AWSCURRENT"]
        })))
        .mount(&server)
        .await;
    let err = source(&server)
        .fetch(&r("aws-sm:prod/cert"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("SecretBinary"), "{err}");
    assert_hidden(&err, &["Z3NrX2JpbmFyeV92YWx1ZQ=="]);
}

#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "no credentials in the environment, profile, web identity or IMDS",
        )))
    }
}

#[tokio::test]
async fn no_credentials_is_denied_before_anything_is_sent() {
    let server = MockServer::start().await;
    let err = SecretsManagerSource::new("eu-west-1", SharedCredentialsProvider::new(NoCredentials))
        .endpoint(&server.uri())
        .fetch(&r("aws-sm:prod/sre-agent#groq"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Denied { .. }), "{err}");
    assert!(err.to_string().contains("no AWS credentials"), "{err}");
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn the_standard_sources_take_the_endpoint_from_the_sdk_variables() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "secretsmanager.GetSecretValue"))
        .respond_with(answer(&json_secret()))
        .mount(&server)
        .await;
    let uri = server.uri();
    let env = move |name: &str| match name {
        "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9/not-this-one".to_owned()),
        "AWS_ENDPOINT_URL_SECRETS_MANAGER" => Some(uri.clone()),
        _ => None,
    };
    let secrets =
        standard_sources(&env, Some((credentials(None), "eu-west-1".to_owned()))).unwrap();
    assert_eq!(
        secrets.schemes().collect::<Vec<_>>(),
        ["aws-sm", "env", "file"]
    );
    let handle = secrets.handle("aws-sm:prod/sre-agent#groq").unwrap();
    assert_eq!(handle.get().await.unwrap().expose(), GROQ);
    let q = &requests(&server).await[0];
    let body: Value = serde_json::from_slice(&q.body).unwrap();
    assert_eq!(body, json!({"SecretId": "prod/sre-agent"}));
}
