//! `aws-sm:name-or-arn#key`: AWS Secrets Manager's `GetSecretValue` over its JSON 1.1 protocol,
//! signed with SigV4, with bounded retries on throttling and server errors.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{
    Answer, Fetched, Secret, SecretError, SecretRef, SecretSource, Transport, client, invalid,
    pick, scrub, send,
};
use crate::bedrock::sigv4::{self, AwsCredentials};
use crate::error::Result;

/// The `X-Amz-Target` of the call.
const TARGET: &str = "secretsmanager.GetSecretValue";

/// The content type of the AWS JSON 1.1 protocol.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// How throttled and failed calls are retried: exponential backoff with jitter, bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretsManagerRetry {
    /// Retries after the first try (default 3).
    pub max_retries: usize,
    /// First wait (default 200 ms).
    pub min_delay: Duration,
    /// Longest wait (default 5 s).
    pub max_delay: Duration,
}

impl Default for SecretsManagerRetry {
    fn default() -> Self {
        Self {
            max_retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// The `aws-sm` source: `POST /` with `X-Amz-Target: secretsmanager.GetSecretValue` and
/// `{"SecretId": "..."}`, signed (SigV4, service `secretsmanager`) with credentials from the given
/// provider.
///
/// Without `#key` the value is the whole `SecretString`; with `#key` it is that key's string in
/// the JSON object `SecretString` holds (a missing key is [`SecretError::NotFound`] listing the key
/// names only). A secret with only `SecretBinary` is [`SecretError::Invalid`]. An ARN reference is
/// sent to (and signed for) the ARN's region.
///
/// | `__type` / `x-amzn-ErrorType` | error |
/// |---|---|
/// | `ResourceNotFoundException` | [`SecretError::NotFound`] |
/// | `AccessDeniedException`, `UnrecognizedClientException`, `ExpiredTokenException`, `DecryptionFailure`, signature errors | [`SecretError::Denied`] |
/// | `ThrottlingException`, `InternalServiceError`, 5xx, no connection | retried ([`SecretsManagerRetry`]), then [`SecretError::Unavailable`] |
/// | `InvalidRequestException`, `InvalidParameterException`, other 4xx | [`SecretError::Invalid`] |
#[derive(Clone)]
pub struct SecretsManagerSource {
    region: String,
    endpoint: Option<String>,
    credentials: SharedCredentialsProvider,
    http: reqwest::Client,
    retry: SecretsManagerRetry,
    clock: Option<SystemTime>,
}

impl fmt::Debug for SecretsManagerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerSource")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerSource {
    /// Secrets Manager in `region` (`https://secretsmanager.{region}.amazonaws.com/`), signing
    /// with credentials from `credentials`, with a 30 s timeout and the default retries.
    pub fn new(region: &str, credentials: SharedCredentialsProvider) -> Self {
        Self {
            region: region.trim().to_owned(),
            endpoint: None,
            credentials,
            http: client(Duration::from_secs(30), Vec::new()).unwrap_or_default(),
            retry: SecretsManagerRetry::default(),
            clock: None,
        }
    }

    /// As [`new`](Self::new), with the endpoint the AWS SDKs would take from the variables read
    /// through `env`: `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else `AWS_ENDPOINT_URL`, neither when
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) when the region is not a region name or the
    /// endpoint is not `http(s)://`.
    pub fn from_env(
        region: &str,
        credentials: SharedCredentialsProvider,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let region = region.trim();
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid(format!(
                "aws-sm: {region:?} is not an AWS region name (like eu-west-1)"
            )));
        }
        let mut source = Self::new(region, credentials);
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let ignore = var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !ignore {
            for name in ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"] {
                if let Some(url) = var(name) {
                    let url = url.trim();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(invalid(format!(
                            "aws-sm: {name}={url:?} is not an http:// or https:// URL"
                        )));
                    }
                    source = source.endpoint(url);
                    break;
                }
            }
        }
        Ok(source)
    }

    /// Sends to `url` instead of the regional endpoint (a VPC endpoint, a test server).
    #[must_use]
    pub fn endpoint(mut self, url: &str) -> Self {
        self.endpoint = Some(url.trim().trim_end_matches('/').to_owned());
        self
    }

    /// How throttled and failed calls are retried.
    #[must_use]
    pub fn retry(mut self, retry: SecretsManagerRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The timeout of each request (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http = client(timeout, Vec::new()).unwrap_or_default();
        self
    }

    /// Signs with this time instead of the clock (tests).
    #[must_use]
    pub fn fixed_clock(mut self, time: SystemTime) -> Self {
        self.clock = Some(time);
        self
    }

    /// The region a reference is sent to: an ARN's own, else the configured one.
    fn region_for<'a>(&'a self, r: &'a SecretRef) -> &'a str {
        arn_region(r.path()).unwrap_or(&self.region)
    }

    /// The URL a reference is sent to.
    fn url_for(&self, region: &str) -> String {
        if let Some(endpoint) = &self.endpoint {
            return format!("{endpoint}/");
        }
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://secretsmanager.{region}.{suffix}/")
    }

    async fn credentials(&self, r: &SecretRef) -> Result<AwsCredentials, SecretError> {
        let c = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| credentials_error(r, &e))?;
        Ok(AwsCredentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: Secret::new(c.secret_access_key()),
            session_token: c.session_token().map(Secret::new),
        })
    }

    /// One signed `GetSecretValue` call.
    async fn attempt(
        &self,
        r: &SecretRef,
        credentials: &AwsCredentials,
        secrets: &[&str],
    ) -> Result<Fetched, Attempt> {
        let region = self.region_for(r);
        let url = self.url_for(region);
        let body = json!({"SecretId": r.path()}).to_string().into_bytes();
        let host = signed_host(&url);
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("host", host.as_str()),
            ("x-amz-target", TARGET),
        ];
        let signed = sigv4::sign_request(
            credentials,
            region,
            "secretsmanager",
            sigv4::Unsigned {
                method: "POST",
                url: &url,
                headers: &headers,
                body: &body,
            },
            self.clock.unwrap_or_else(SystemTime::now),
        )
        .map_err(|e| {
            Attempt::Final(SecretError::invalid(
                r,
                format!("the request cannot be signed: {}", scrub(&e, secrets)),
            ))
        })?;
        let mut req = self
            .http
            .post(&url)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", TARGET)
            .body(body);
        for (name, value) in signed {
            req = req.header(name, value);
        }
        let answer = send(req).await.map_err(|e| match e {
            Transport::Failed(message) => Attempt::Retry(format!(
                "could not reach Secrets Manager at {url}: {}",
                scrub(&message, secrets)
            )),
            Transport::TooLarge => Attempt::Final(SecretError::invalid(
                r,
                "Secrets Manager's answer is larger than 1 MiB",
            )),
        })?;
        if (200..300).contains(&answer.status) {
            return secret_value(r, &answer.body).map_err(Attempt::Final);
        }
        Err(error_for(r, &answer, secrets))
    }
}

/// The outcome of a failed attempt.
enum Attempt {
    /// Worth another try (throttled, 5xx, no connection): what happened.
    Retry(String),
    /// Final.
    Final(SecretError),
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    fn scheme(&self) -> &'static str {
        "aws-sm"
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let credentials = self.credentials(reference).await?;
        let secrets: Vec<&str> = std::iter::once(credentials.secret_access_key.expose())
            .chain(credentials.session_token.as_ref().map(Secret::expose))
            .collect();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_jitter()
            .with_max_times(self.retry.max_retries)
            .build();
        loop {
            match self.attempt(reference, &credentials, &secrets).await {
                Ok(fetched) => return Ok(fetched),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry(what)) => {
                    let Some(wait) = backoff.next() else {
                        let retries = self.retry.max_retries;
                        return Err(SecretError::unavailable(
                            reference,
                            format!("{what} (gave up after {retries} retries)"),
                        ));
                    };
                    tracing::warn!(
                        secret = %reference,
                        wait_ms = wait.as_millis(),
                        "secrets manager: {what}; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// The `host` header reqwest sends for `url` (so the one that is signed): the authority, without
/// the scheme's default port.
fn signed_host(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    authority
        .strip_suffix(default_port)
        .unwrap_or(authority)
        .to_owned()
}

/// The region of a Secrets Manager ARN (`arn:aws:secretsmanager:eu-west-1:123:secret:name`).
fn arn_region(id: &str) -> Option<&str> {
    let mut parts = id.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("secretsmanager"), Some(region)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    (!region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    .then_some(region)
}

/// The error for a credentials provider that failed.
fn credentials_error(r: &SecretRef, e: &CredentialsError) -> SecretError {
    let said = super::error_chain(e);
    match e {
        CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
            SecretError::denied(r, format!("no AWS credentials: {said}"))
        }
        _ => SecretError::unavailable(r, format!("AWS credentials could not be had: {said}")),
    }
}

/// The error code (`x-amzn-ErrorType`, else `__type`, namespace and URL cut off) and message of
/// an error answer.
fn error_code(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let raw = headers
        .get("x-amzn-errortype")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            v.get("__type")
                .or_else(|| v.get("code"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let code = raw.split(':').next().unwrap_or_default();
    let code = code
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(body).trim().to_owned(),
            str::to_owned,
        );
    (code, message)
}

/// What a non-2xx answer means.
fn error_for(r: &SecretRef, answer: &Answer, secrets: &[&str]) -> Attempt {
    let (code, message) = error_code(&answer.headers, &answer.body);
    let message: String = scrub(&message, secrets).chars().take(300).collect();
    let status = answer.status;
    let said = if code.is_empty() {
        format!("{status}: {message}")
    } else {
        format!("{code} ({status}): {message}")
    };
    match code.as_str() {
        "ResourceNotFoundException" => Attempt::Final(SecretError::not_found(
            r,
            format!("Secrets Manager has no secret {:?}: {said}", r.path()),
        )),
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "RequestExpired"
        | "DecryptionFailure" => Attempt::Final(SecretError::denied(
            r,
            format!("Secrets Manager refused: {said}"),
        )),
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "RequestTimeout"
        | "RequestTimeoutException" => Attempt::Retry(format!("Secrets Manager answered {said}")),
        _ if status >= 500 || status == 429 => {
            Attempt::Retry(format!("Secrets Manager answered {said}"))
        }
        _ if status == 401 || status == 403 => Attempt::Final(SecretError::denied(
            r,
            format!("Secrets Manager refused: {said}"),
        )),
        _ => Attempt::Final(SecretError::invalid(
            r,
            format!("Secrets Manager rejected the request: {said}"),
        )),
    }
}

/// The value of a `GetSecretValue` answer.
fn secret_value(r: &SecretRef, body: &[u8]) -> Result<Fetched, SecretError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| SecretError::unavailable(r, "Secrets Manager's answer is not JSON"))?;
    match v.get("SecretString").and_then(Value::as_str) {
        Some(text) => {
            let what = format!("the SecretString of {:?}", r.path());
            Ok(Fetched::new(pick(r, text.to_owned(), &what)?))
        }
        None if v.get("SecretBinary").is_some_and(|b| !b.is_null()) => Err(SecretError::invalid(
            r,
            "the secret holds SecretBinary, not SecretString: store the value as text (or JSON)",
        )),
        None => Err(SecretError::invalid(
            r,
            "Secrets Manager's answer has neither SecretString nor SecretBinary",
        )),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn error_codes_are_read_like_the_sdks() {
        let mut h = HeaderMap::new();
        let body = br#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","Message":"Secrets Manager can't find the specified secret."}"#;
        assert_eq!(
            error_code(&h, body),
            (
                "ResourceNotFoundException".to_owned(),
                "Secrets Manager can't find the specified secret.".to_owned()
            )
        );
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
            ),
        );
        assert_eq!(
            error_code(&h, br#"{"message":"Rate exceeded"}"#).0,
            "ThrottlingException"
        );
    }

    #[test]
    fn the_signed_host_is_the_one_sent() {
        assert_eq!(
            signed_host("https://secretsmanager.eu-west-1.amazonaws.com/"),
            "secretsmanager.eu-west-1.amazonaws.com"
        );
        assert_eq!(signed_host("https://vpce.example:443/"), "vpce.example");
        assert_eq!(signed_host("http://127.0.0.1:4566/"), "127.0.0.1:4566");
        assert_eq!(signed_host("http://localstack:80/"), "localstack");
    }

    #[test]
    fn arn_regions() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-1:123456789012:secret:sre-AbCdEf"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("prod/sre-agent"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn endpoints_follow_the_sdk_variables() {
        let creds = SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "AKID", "SECRET", None, None, "test",
        ));
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let s = SecretsManagerSource::from_env("eu-west-1", creds.clone(), &env(&[])).unwrap();
        assert_eq!(
            s.url_for("eu-west-1"),
            "https://secretsmanager.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            s.url_for("cn-north-1"),
            "https://secretsmanager.cn-north-1.amazonaws.com.cn/"
        );
        let s = SecretsManagerSource::from_env(
            "eu-west-1",
            creds.clone(),
            &env(&[
                ("AWS_ENDPOINT_URL", "http://general:1"),
                ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://sm:2/"),
            ]),
        )
        .unwrap();
        assert_eq!(s.url_for("eu-west-1"), "http://sm:2/");
        let s = SecretsManagerSource::from_env(
            "eu-west-1",
            creds.clone(),
            &env(&[("AWS_ENDPOINT_URL", "http://general:1")]),
        )
        .unwrap();
        assert_eq!(s.url_for("eu-west-1"), "http://general:1/");
        let s = SecretsManagerSource::from_env(
            "eu-west-1",
            creds.clone(),
            &env(&[
                ("AWS_ENDPOINT_URL", "http://general:1"),
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.url_for("eu-west-1"),
            "https://secretsmanager.eu-west-1.amazonaws.com/"
        );
        let err = SecretsManagerSource::from_env("EU West", creds, &env(&[])).unwrap_err();
        assert!(err.to_string().contains("not an AWS region"), "{err}");
    }
}
