//! The AWS credential chain against loopback servers speaking the real protocols: STS
//! `AssumeRoleWithWebIdentity` (query request, XML answer and XML error), the EKS Pod Identity
//! agent (GET with the token file as `Authorization`, JSON credentials), `IMDSv2` (PUT a session
//! token, then the role, then its credentials), shared profile files; then Bedrock Converse
//! requests signed with what the chain returned. Refresh before expiry, invalidation on
//! `ExpiredTokenException` with one retry, and secrets that never print.
//!
//! Configuration is given through a function, never the process environment.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use serde_json::{Value, json};
use sre_core::{ChatRequest, LlmError, LlmProvider, Message};
use sre_llm::aws::{AwsCredentialsError, AwsCredentialsProvider, credential_chain};
use sre_llm::{AwsCredentials, Bedrock, ProviderConfig, ProviderKind, Secret};
use wiremock::matchers::{header, header_exists, header_regex, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ROLE: &str = "arn:aws:iam::123456789012:role/sre-agent";
/// A projected service-account token (the shape of one; nothing verifies it here).
const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNyZSJ9.eyJhdWQiOlsic3RzLmFtYXpvbmF3cy5jb20iXSwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50OnNyZTpzcmUtYWdlbnQifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";
const STS_AKID: &str = "ASIASTSWEBIDENTITY01";
const STS_SECRET: &str = "sts/secret/key/wJalrXUtnFEMI+K7MDENG";
const STS_SESSION: &str = "FwoGZXIvYXdzEBYaDsts-session-token-value";

/// A fresh directory under the system temp dir (empty: no `.aws` files in it).
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sre-identity-aws-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn rfc3339_in(d: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + d).to_string()
}

/// STS's `AssumeRoleWithWebIdentity` answer, as the service sends it.
fn sts_answer(expiration: &str) -> String {
    format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:sre:sre-agent</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/sre-agent/sre-test</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:sre-test</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{STS_AKID}</AccessKeyId>
      <SecretAccessKey>{STS_SECRET}</SecretAccessKey>
      <SessionToken>{STS_SESSION}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
    )
}

/// STS's query-protocol error document.
fn sts_error(code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>{code}</Code>
    <Message>{message}</Message>
  </Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"#
    )
}

/// The JSON of the container endpoint (EKS Pod Identity agent, ECS agent).
fn agent_answer(akid: &str, expires_in: Duration) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "AccessKeyId": akid,
        "SecretAccessKey": format!("secret-of-{akid}"),
        "Token": format!("session-of-{akid}"),
        "AccountId": "123456789012",
        "Expiration": rfc3339_in(expires_in),
    }))
}

fn converse_ok() -> ResponseTemplate {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bedrock-converse-final-response.json");
    let body: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    ResponseTemplate::new(200).set_body_json(body)
}

fn ask() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("is the shop namespace healthy?")],
        ..ChatRequest::default()
    }
}

/// The fields of an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn header_of(r: &Request, name: &str) -> Option<String> {
    r.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// The access key id in a SigV4 `Authorization` header.
fn signed_by(r: &Request) -> String {
    let auth = header_of(r, "authorization").unwrap();
    auth.strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("not a SigV4 authorization: {auth}"))
        .to_owned()
}

// ---- web identity (IRSA) ----------------------------------------------------------------------

#[tokio::test]
async fn web_identity_assumes_the_role_with_the_token_file_and_bedrock_signs_with_its_keys() {
    let dir = temp_dir("irsa");
    let token_file = dir.join("token");
    // A trailing newline, as `echo` leaves it, is not part of the token.
    std::fs::write(&token_file, format!("{JWT}\n")).unwrap();
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/xml")
                .set_body_string(sts_answer(&rfc3339_in(Duration::from_secs(3600)))),
        )
        .mount(&sts)
        .await;
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/model/m/converse"))
        .and(header("x-amz-security-token", STS_SESSION))
        .respond_with(converse_ok())
        .mount(&bedrock)
        .await;
    let (sts_uri, bedrock_uri) = (sts.uri(), bedrock.uri());
    let (token_path, home) = (token_file.display().to_string(), dir.display().to_string());
    let env = env_of(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_ROLE_SESSION_NAME", "sre-test"),
        ("AWS_ENDPOINT_URL_STS", &sts_uri),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &bedrock_uri),
        ("HOME", &home),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let mut config = ProviderConfig::new(ProviderKind::Bedrock);
    config.model = Some("m".into());
    config.max_retries = Some(0);
    // No static keys: building succeeds and nothing is fetched yet.
    let provider = config.build_with(&env).unwrap();
    assert!(sts.received_requests().await.unwrap().is_empty());

    provider.chat(&ask()).await.unwrap();
    provider.chat(&ask()).await.unwrap();

    let sts_requests = sts.received_requests().await.unwrap();
    assert_eq!(sts_requests.len(), 1, "cached for the second call");
    let r = &sts_requests[0];
    assert_eq!(
        header_of(r, "content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        header_of(r, "authorization"),
        None,
        "AssumeRoleWithWebIdentity is not signed"
    );
    let f = form(&r.body);
    assert_eq!(f["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(f["Version"], "2011-06-15");
    assert_eq!(f["RoleArn"], ROLE);
    assert_eq!(f["RoleSessionName"], "sre-test");
    assert_eq!(f["WebIdentityToken"], JWT);

    let calls = bedrock.received_requests().await.unwrap();
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert_eq!(signed_by(c), STS_AKID);
        let auth = header_of(c, "authorization").unwrap();
        assert!(
            auth.contains("/eu-west-1/bedrock/aws4_request, SignedHeaders=")
                && auth.contains("x-amz-security-token"),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn sts_access_denied_is_an_auth_error_naming_web_identity_and_never_the_token() {
    let dir = temp_dir("irsa-denied");
    let token_file = dir.join("token");
    std::fs::write(&token_file, JWT).unwrap();
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("content-type", "text/xml")
                .set_body_string(sts_error(
                    "AccessDenied",
                    "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                )),
        )
        .mount(&sts)
        .await;
    let bedrock = MockServer::start().await;
    let (sts_uri, token_path, home) = (
        sts.uri(),
        token_file.display().to_string(),
        dir.display().to_string(),
    );
    let env = env_of(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_ENDPOINT_URL_STS", &sts_uri),
        ("HOME", &home),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let aws = credential_chain(Some("eu-west-1"), &env);
    let e = Bedrock::with_credentials_provider("eu-west-1", "m", aws, Some(&bedrock.uri()))
        .chat(&ask())
        .await
        .unwrap_err();
    let LlmError::Auth { provider, message } = &e else {
        panic!("want an auth error, got {e:?}");
    };
    assert_eq!(provider, "bedrock");
    assert_eq!(
        message,
        &format!(
            "AWS credentials from web identity failed: STS AssumeRoleWithWebIdentity at {sts_uri} \
             for role {ROLE} (token file {token_path}): refused with AccessDenied (HTTP 403): Not \
             authorized to perform sts:AssumeRoleWithWebIdentity"
        )
    );
    assert!(!e.is_retryable());
    assert!(!format!("{e} {e:?}").contains(JWT));
    assert_eq!(sts.received_requests().await.unwrap().len(), 1, "no retry");
    assert!(
        bedrock.received_requests().await.unwrap().is_empty(),
        "no unsigned call to Bedrock"
    );
}

#[tokio::test]
async fn a_token_quoted_back_by_sts_is_redacted() {
    let dir = temp_dir("irsa-echo");
    let token_file = dir.join("token");
    std::fs::write(&token_file, JWT).unwrap();
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string(sts_error(
            "InvalidIdentityToken",
            &format!("Couldn't retrieve verification key from your identity provider for {JWT}"),
        )))
        .mount(&sts)
        .await;
    let (sts_uri, token_path) = (sts.uri(), token_file.display().to_string());
    let env = env_of(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_ENDPOINT_URL", &sts_uri),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let e = credential_chain(Some("eu-west-1"), &env)
        .credentials()
        .await
        .unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains(JWT), "{text}");
    assert!(
        text.contains(
            "InvalidIdentityToken (HTTP 400): Couldn't retrieve verification key from \
             your identity provider for [REDACTED]"
        ),
        "{text}"
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn a_token_file_without_a_role_arn_is_an_error_naming_aws_role_arn() {
    let env = env_of(&[
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let e = credential_chain(Some("eu-west-1"), &env)
        .credentials()
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "AWS credentials from web identity failed: AWS_WEB_IDENTITY_TOKEN_FILE is set \
             (/var/run/secrets/eks.amazonaws.com/serviceaccount/token) but AWS_ROLE_ARN is not"
        ),
        "{e}"
    );
}

// ---- EKS Pod Identity / ECS container endpoint ------------------------------------------------

#[tokio::test]
async fn the_pod_identity_agent_is_called_with_the_token_file_as_authorization() {
    let dir = temp_dir("pod-identity");
    let token_file = dir.join("eks-pod-identity-token");
    std::fs::write(&token_file, JWT).unwrap();
    let agent = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/credentials"))
        .and(header("authorization", JWT))
        .respond_with(agent_answer(
            "ASIAPODIDENTITY00001",
            Duration::from_secs(6 * 3600),
        ))
        .mount(&agent)
        .await;
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header(
            "x-amz-security-token",
            "session-of-ASIAPODIDENTITY00001",
        ))
        .respond_with(converse_ok())
        .mount(&bedrock)
        .await;
    let full_uri = format!("{}/v1/credentials", agent.uri());
    let (token_path, home) = (token_file.display().to_string(), dir.display().to_string());
    let env = env_of(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full_uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_path),
        ("HOME", &home),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let aws = credential_chain(Some("us-east-1"), &env);
    Bedrock::with_credentials_provider("us-east-1", "m", aws.clone(), Some(&bedrock.uri()))
        .chat(&ask())
        .await
        .unwrap();
    let fetches = agent.received_requests().await.unwrap();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].method.as_str(), "GET");
    assert_eq!(
        header_of(&fetches[0], "authorization").as_deref(),
        Some(JWT)
    );
    let calls = bedrock.received_requests().await.unwrap();
    assert_eq!(signed_by(&calls[0]), "ASIAPODIDENTITY00001");

    // The same cache behind aws-credential-types' interface.
    let shared = aws.shared();
    let c = shared.provide_credentials().await.unwrap();
    assert_eq!(c.access_key_id(), "ASIAPODIDENTITY00001");
    assert_eq!(c.secret_access_key(), "secret-of-ASIAPODIDENTITY00001");
    assert_eq!(agent.received_requests().await.unwrap().len(), 1);
    // Nothing secret in Debug.
    let debug = format!("{aws:?} {shared:?}");
    assert!(
        !debug.contains("secret-of-") && !debug.contains("session-of-") && !debug.contains(JWT),
        "{debug}"
    );
}

#[tokio::test]
async fn credentials_expiring_soon_are_fetched_again_on_the_next_call() {
    let dir = temp_dir("refresh");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "pod-token-one").unwrap();
    let agent = MockServer::start().await;
    // Two minutes left: inside the five-minute refresh margin.
    Mock::given(method("GET"))
        .and(header("authorization", "pod-token-one"))
        .respond_with(agent_answer(
            "ASIAEXPIRINGSOON0001",
            Duration::from_secs(120),
        ))
        .up_to_n_times(1)
        .mount(&agent)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "pod-token-two"))
        .respond_with(agent_answer(
            "ASIAFRESHKEYS0000002",
            Duration::from_secs(6 * 3600),
        ))
        .mount(&agent)
        .await;
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(converse_ok())
        .mount(&bedrock)
        .await;
    let full_uri = format!("{}/v1/credentials", agent.uri());
    let token_path = token_file.display().to_string();
    let env = env_of(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full_uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_path),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let b = Bedrock::with_credentials_provider(
        "us-east-1",
        "m",
        credential_chain(Some("us-east-1"), &env),
        Some(&bedrock.uri()),
    );
    b.chat(&ask()).await.unwrap();
    // The kubelet rotates the token file; the next fetch sends the new token.
    std::fs::write(&token_file, "pod-token-two").unwrap();
    b.chat(&ask()).await.unwrap();
    b.chat(&ask()).await.unwrap();

    let fetches = agent.received_requests().await.unwrap();
    assert_eq!(
        fetches.len(),
        2,
        "one refresh, then the fresh keys are cached"
    );
    let signers: Vec<String> = bedrock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(signed_by)
        .collect();
    assert_eq!(
        signers,
        [
            "ASIAEXPIRINGSOON0001",
            "ASIAFRESHKEYS0000002",
            "ASIAFRESHKEYS0000002"
        ]
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let agent = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(agent_answer(
            "ASIACONCURRENT000001",
            Duration::from_secs(3600),
        ))
        .mount(&agent)
        .await;
    let full_uri = format!("{}/creds", agent.uri());
    let env = env_of(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full_uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "inline-token"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let aws = credential_chain(Some("us-east-1"), &env);
    let (a, b, c, d) = tokio::join!(
        aws.credentials(),
        aws.credentials(),
        aws.credentials(),
        aws.credentials()
    );
    for r in [a, b, c, d] {
        assert_eq!(r.unwrap().access_key_id, "ASIACONCURRENT000001");
    }
    let fetches = agent.received_requests().await.unwrap();
    assert_eq!(fetches.len(), 1);
    assert_eq!(
        header_of(&fetches[0], "authorization").as_deref(),
        Some("inline-token")
    );
}

#[tokio::test]
async fn an_agent_failure_is_named_retryable_on_5xx_and_never_quotes_the_token() {
    let agent = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "Code": "ServiceUnavailable",
            "Message": "cannot reach EKS Auth with token tok-abcdef-123456"
        })))
        .mount(&agent)
        .await;
    let full_uri = format!("{}/v1/credentials", agent.uri());
    let env = env_of(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full_uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok-abcdef-123456"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let e = Bedrock::with_credentials_provider(
        "us-east-1",
        "m",
        credential_chain(Some("us-east-1"), &env),
        Some("http://127.0.0.1:9"),
    )
    .chat(&ask())
    .await
    .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "could not reach bedrock: AWS credentials from container endpoint failed: GET \
             {full_uri} answered 500: ServiceUnavailable: cannot reach EKS Auth with token \
             [REDACTED]"
        )
    );
}

#[tokio::test]
async fn a_plain_http_full_uri_to_a_remote_host_is_refused_before_any_request() {
    let env = env_of(&[
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.169.254.nip.io/creds",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let e = credential_chain(Some("us-east-1"), &env)
        .credentials()
        .await
        .unwrap_err();
    assert!(matches!(e, AwsCredentialsError::Failed { .. }));
    assert!(
        e.to_string().starts_with(
            "AWS credentials from container endpoint failed: AWS_CONTAINER_CREDENTIALS_FULL_URI \
             http://169.254.169.254.nip.io/creds is not allowed: plain http is allowed only to"
        ),
        "{e}"
    );
}

// ---- IMDSv2 -----------------------------------------------------------------------------------

#[tokio::test]
async fn imds_v2_puts_for_a_session_token_then_reads_the_role_and_its_credentials() {
    let imds = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/latest/api/token"))
        .and(header_exists("x-aws-ec2-metadata-token-ttl-seconds"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
                .set_body_string("AQAEAFTNrA4eEGx0AQgJ1arIq_imds-session"),
        )
        .mount(&imds)
        .await;
    Mock::given(method("GET"))
        .and(path("/latest/meta-data/iam/security-credentials/"))
        .and(header(
            "x-aws-ec2-metadata-token",
            "AQAEAFTNrA4eEGx0AQgJ1arIq_imds-session",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string("sre-node-role"))
        .mount(&imds)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/latest/meta-data/iam/security-credentials/sre-node-role",
        ))
        .and(header(
            "x-aws-ec2-metadata-token",
            "AQAEAFTNrA4eEGx0AQgJ1arIq_imds-session",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Code": "Success",
            "LastUpdated": rfc3339_in(Duration::ZERO),
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIAIMDSNODEROLE0001",
            "SecretAccessKey": "imds/secret/key",
            "Token": "imds-session-token-for-the-role",
            "Expiration": rfc3339_in(Duration::from_secs(6 * 3600)),
        })))
        .mount(&imds)
        .await;
    let dir = temp_dir("imds");
    let (endpoint, home) = (imds.uri(), dir.display().to_string());
    let env = env_of(&[
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint),
        ("HOME", &home),
    ]);
    let c = credential_chain(Some("us-east-1"), &env)
        .credentials()
        .await
        .unwrap();
    assert_eq!(c.access_key_id, "ASIAIMDSNODEROLE0001");
    assert_eq!(c.secret_access_key.expose(), "imds/secret/key");
    assert_eq!(
        c.session_token.as_ref().map(Secret::expose),
        Some("imds-session-token-for-the-role")
    );
    let seen: Vec<(String, String)> = imds
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| (r.method.to_string(), r.url.path().to_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            ("PUT".to_owned(), "/latest/api/token".to_owned()),
            (
                "GET".to_owned(),
                "/latest/meta-data/iam/security-credentials/".to_owned()
            ),
            (
                "GET".to_owned(),
                "/latest/meta-data/iam/security-credentials/sre-node-role".to_owned()
            ),
        ]
    );
}

// ---- Bedrock refusing the credentials ----------------------------------------------------------

/// A Pod Identity agent handing out `first`, then `second` on every later fetch.
async fn rotating_agent(first: &str, second: &str) -> (MockServer, AwsCredentialsProvider) {
    let agent = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(agent_answer(first, Duration::from_secs(3600)))
        .up_to_n_times(1)
        .mount(&agent)
        .await;
    Mock::given(method("GET"))
        .respond_with(agent_answer(second, Duration::from_secs(3600)))
        .mount(&agent)
        .await;
    let full_uri = format!("{}/v1/credentials", agent.uri());
    let env = env_of(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &full_uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-token"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let aws = credential_chain(Some("us-east-1"), &env);
    (agent, aws)
}

fn refused(kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(403)
        .insert_header(
            "x-amzn-ErrorType",
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/").as_str(),
        )
        .set_body_json(json!({ "message": message }))
}

#[tokio::test]
async fn an_expired_token_answer_makes_bedrock_fetch_again_and_retry_once() {
    let (agent, aws) = rotating_agent("ASIAREVOKEDKEYS00001", "ASIAREPLACEMENT00002").await;
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header_regex(
            "authorization",
            "Credential=ASIAREVOKEDKEYS00001/",
        ))
        .respond_with(refused(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ))
        .mount(&bedrock)
        .await;
    Mock::given(method("POST"))
        .and(header_regex(
            "authorization",
            "Credential=ASIAREPLACEMENT00002/",
        ))
        .respond_with(converse_ok())
        .mount(&bedrock)
        .await;
    let b = Bedrock::with_credentials_provider("us-east-1", "m", aws, Some(&bedrock.uri()));
    let r = b.chat(&ask()).await.unwrap();
    assert!(r.message.content.contains("30°C"));
    assert_eq!(agent.received_requests().await.unwrap().len(), 2);
    let signers: Vec<String> = bedrock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(signed_by)
        .collect();
    assert_eq!(signers, ["ASIAREVOKEDKEYS00001", "ASIAREPLACEMENT00002"]);
}

#[tokio::test]
async fn a_second_refusal_is_returned_after_exactly_one_retry() {
    let (agent, aws) = rotating_agent("ASIAUNKNOWNKEYS00001", "ASIAUNKNOWNKEYS00002").await;
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(refused(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ))
        .mount(&bedrock)
        .await;
    let e = Bedrock::with_credentials_provider("us-east-1", "m", aws, Some(&bedrock.uri()))
        .chat(&ask())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "authentication failed for bedrock: UnrecognizedClientException: The security token \
         included in the request is invalid."
    );
    assert_eq!(bedrock.received_requests().await.unwrap().len(), 2);
    assert_eq!(agent.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn access_denied_is_not_a_credentials_problem_and_is_not_retried() {
    let (agent, aws) = rotating_agent("ASIANOPERMISSION0001", "ASIANOPERMISSION0002").await;
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(refused(
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ))
        .mount(&bedrock)
        .await;
    let e = Bedrock::with_credentials_provider("us-east-1", "m", aws, Some(&bedrock.uri()))
        .chat(&ask())
        .await
        .unwrap_err();
    assert!(matches!(e, LlmError::Auth { .. }), "{e:?}");
    assert_eq!(bedrock.received_requests().await.unwrap().len(), 1);
    assert_eq!(agent.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn fixed_keys_refused_as_expired_are_not_retried() {
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(refused(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ))
        .mount(&bedrock)
        .await;
    let keys = AwsCredentials {
        access_key_id: "ASIAFIXEDKEYS0000001".into(),
        secret_access_key: Secret::new("fixed/secret"),
        session_token: Some(Secret::new("fixed-session-token")),
    };
    let e = Bedrock::new("us-east-1", "m", keys, Some(&bedrock.uri()))
        .chat(&ask())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "authentication failed for bedrock: ExpiredTokenException: The security token included \
         in the request is expired"
    );
    assert_eq!(bedrock.received_requests().await.unwrap().len(), 1);
}

// ---- environment, shared profile, nothing at all ---------------------------------------------

#[tokio::test]
async fn environment_keys_come_first_and_nothing_else_is_asked() {
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&sts)
        .await;
    let sts_uri = sts.uri();
    let env = env_of(&[
        ("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001"),
        ("AWS_SECRET_ACCESS_KEY", "env/secret"),
        ("AWS_SESSION_TOKEN", "env-session"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_ENDPOINT_URL_STS", &sts_uri),
    ]);
    let c = credential_chain(Some("eu-west-1"), &env)
        .credentials()
        .await
        .unwrap();
    assert_eq!(c.access_key_id, "AKIAENVIRONMENT00001");
    assert_eq!(c.secret_access_key.expose(), "env/secret");
    assert_eq!(
        c.session_token.as_ref().map(Secret::expose),
        Some("env-session")
    );
}

#[tokio::test]
async fn the_shared_profile_named_by_aws_profile_is_read_from_the_credentials_file() {
    let dir = temp_dir("profile");
    std::fs::create_dir_all(dir.join(".aws")).unwrap();
    std::fs::write(
        dir.join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIADEFAULTPROFILE01\naws_secret_access_key = default/secret\n\n\
         [sre]\naws_access_key_id = AKIASREPROFILE000001\naws_secret_access_key = sre/secret\n\
         aws_session_token = sre-session\n",
    )
    .unwrap();
    let home = dir.display().to_string();
    let chain = |profile: Option<&str>| {
        let mut pairs = vec![
            ("HOME", home.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        if let Some(p) = profile {
            pairs.push(("AWS_PROFILE", p));
        }
        credential_chain(Some("eu-west-1"), &env_of(&pairs))
    };
    let c = chain(Some("sre")).credentials().await.unwrap();
    assert_eq!(c.access_key_id, "AKIASREPROFILE000001");
    assert_eq!(c.secret_access_key.expose(), "sre/secret");
    assert_eq!(
        c.session_token.as_ref().map(Secret::expose),
        Some("sre-session")
    );
    let c = chain(None).credentials().await.unwrap();
    assert_eq!(c.access_key_id, "AKIADEFAULTPROFILE01");

    // A profile asked for by name that is not there is an error, not a reason to move on.
    let e = chain(Some("missing")).credentials().await.unwrap_err();
    assert!(matches!(e, AwsCredentialsError::Failed { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("AWS credentials from shared profile failed: profile `missing`")
            && e.to_string().contains("profile `missing` was not defined"),
        "{e}"
    );
    assert!(!format!("{e:?}").contains("sre/secret"));

    // Without a default profile and without AWS_PROFILE, the chain moves on.
    std::fs::write(
        dir.join(".aws/credentials"),
        "[sre]\naws_access_key_id = AKIASREPROFILE000001\naws_secret_access_key = sre/secret\n",
    )
    .unwrap();
    let e = chain(None).credentials().await.unwrap_err();
    assert!(matches!(e, AwsCredentialsError::NotFound { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("; shared profile (profile `default`: "),
        "{e}"
    );
}

#[tokio::test]
async fn with_no_source_configured_the_build_succeeds_and_the_first_call_names_every_source() {
    let dir = temp_dir("nothing");
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(converse_ok())
        .expect(0)
        .mount(&bedrock)
        .await;
    let (bedrock_uri, home) = (bedrock.uri(), dir.display().to_string());
    let env = env_of(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &bedrock_uri),
        ("HOME", &home),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let mut config = ProviderConfig::new(ProviderKind::Bedrock);
    config.model = Some("m".into());
    config.max_retries = Some(0);
    let provider = config.build_with(&env).unwrap();
    let e = provider.chat(&ask()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "provider configuration error: bedrock: no AWS credentials found; tried: environment \
             (AWS_ACCESS_KEY_ID not set); shared profile (no {home}/.aws/credentials or \
             {home}/.aws/config); web identity (AWS_WEB_IDENTITY_TOKEN_FILE not set); container \
             endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI and _RELATIVE_URI not set); IMDSv2 \
             (disabled by AWS_EC2_METADATA_DISABLED)"
        )
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn static_keys_in_the_environment_still_sign_directly() {
    let bedrock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-security-token", "static-session"))
        .respond_with(converse_ok())
        .mount(&bedrock)
        .await;
    let bedrock_uri = bedrock.uri();
    // A web identity is configured too, at an STS that does not exist: it is never asked.
    let env = env_of(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIASTATICKEYS000001"),
        ("AWS_SECRET_ACCESS_KEY", "static/secret"),
        ("AWS_SESSION_TOKEN", "static-session"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9"),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &bedrock_uri),
    ]);
    let mut config = ProviderConfig::new(ProviderKind::Bedrock);
    config.model = Some("m".into());
    config.max_retries = Some(0);
    config.build_with(&env).unwrap().chat(&ask()).await.unwrap();
    let calls = bedrock.received_requests().await.unwrap();
    assert_eq!(signed_by(&calls[0]), "AKIASTATICKEYS000001");
    // Only one of the two keys: named, at build time, as before.
    let e = ProviderConfig {
        model: Some("m".into()),
        ..ProviderConfig::new(ProviderKind::Bedrock)
    }
    .build_with(&env_of(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIASTATICKEYS000001"),
    ]))
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .starts_with("AWS_SECRET_ACCESS_KEY is not set"),
        "{e}"
    );
}
