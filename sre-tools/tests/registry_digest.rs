//! The content digest a tag points at, from a loopback OCI registry speaking the distribution
//! API: `HEAD /v2/<name>/manifests/<tag>` behind the bearer-token dance, `Docker-Content-Digest`
//! validated, `GET` and hashing when the header is missing, and the registry's own errors.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use sre_tools::trivy::registry::{
    Credentials, ImageRef, MANIFEST_MEDIA_TYPES, RegistryClient, TagLister,
};

/// An OCI image index, as a registry stores it (the bytes its digest is of).
const INDEX: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:7d3c1a6bfbcb8eb2fc5b6ec4d2f5fcb4a9e0b7c9d94bba1f58df2d4a0b3f1e2a","size":1568,"platform":{"architecture":"amd64","os":"linux"}}]}"#;

const PASSWORD: &str = "s3cret-registry-password";

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

struct Registry {
    base: String,
    /// The `Authorization` the token service wants (Basic …), when it wants one.
    basic: Option<String>,
    /// Refuse every token (the registry answers 403 for the manifest).
    deny: bool,
    log: Mutex<Vec<String>>,
}

async fn token(
    State(r): State<Arc<Registry>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    r.log.lock().unwrap().push(format!(
        "token service={} scope={}",
        q.get("service").cloned().unwrap_or_default(),
        q.get("scope").cloned().unwrap_or_default()
    ));
    if let Some(expected) = &r.basic {
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if got != expected {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"details": "incorrect username or password"})),
            )
                .into_response();
        }
    }
    axum::Json(json!({"token": "good-token", "access_token": "good-token", "expires_in": 300}))
        .into_response()
}

fn manifest_error(status: StatusCode, code: &str, message: &str, tag: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        axum::Json(json!({"errors": [{"code": code, "message": message, "detail": {"Tag": tag}}]})),
    )
        .into_response()
}

async fn manifest(
    State(r): State<Arc<Registry>>,
    method: Method,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    r.log.lock().unwrap().push(format!(
        "{method} {reference} auth={} accept={accept}",
        !auth.is_empty()
    ));
    if auth != "Bearer good-token" {
        let challenge = format!(
            "Bearer realm=\"{}/token\",service=\"test-registry\",scope=\"repository:library/nginx:pull\"",
            r.base
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            axum::Json(
                json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}),
            ),
        )
            .into_response();
    }
    if r.deny {
        return manifest_error(
            StatusCode::FORBIDDEN,
            "DENIED",
            "requested access to the resource is denied",
            &reference,
        );
    }
    let head = method == Method::HEAD;
    let ok = |digest: Option<String>| {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/vnd.oci.image.index.v1+json".parse().unwrap(),
        );
        h.insert(header::CONTENT_LENGTH, INDEX.len().into());
        if let Some(d) = digest {
            h.insert("docker-content-digest", d.parse().unwrap());
        }
        let body = if head { Vec::new() } else { INDEX.to_vec() };
        (StatusCode::OK, h, body).into_response()
    };
    match reference.as_str() {
        "1.25.3-alpine" => ok(Some(sha(INDEX))),
        // HEAD without a digest, then an empty body.
        "empty-get" if !head => (StatusCode::OK, Vec::new()).into_response(),
        // Some registries leave the header out: the client must hash what GET serves.
        "no-header" | "empty-get" => ok(None),
        // The header only on GET, and it lies about the bytes.
        "lying" => ok((!head).then(|| format!("sha256:{}", "f".repeat(64)))),
        "upper" => ok(Some(format!("sha256:{}", "AB".repeat(32)))),
        "short" => ok(Some("sha256:abc123".into())),
        "sha512" => ok(Some(format!("sha512:{}", "ab".repeat(64)))),
        "bare" => ok(Some("ab".repeat(32))),
        _ if head => StatusCode::NOT_FOUND.into_response(),
        _ => manifest_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
            &reference,
        ),
    }
}

async fn serve(basic: Option<String>, deny: bool) -> Arc<Registry> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Registry {
        base,
        basic,
        deny,
        log: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .route("/token", get(token))
        .route(
            "/v2/library/nginx/manifests/{reference}",
            get(manifest).head(manifest),
        )
        .with_state(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    state
}

fn client(reg: &Registry) -> RegistryClient {
    RegistryClient::new().with_endpoint("docker.io", &reg.base)
}

async fn digest_of(client: &RegistryClient, image: &str) -> Result<Option<String>, String> {
    client.digest(&ImageRef::parse(image).unwrap()).await
}

fn log(reg: &Registry) -> Vec<String> {
    reg.log.lock().unwrap().clone()
}

#[tokio::test]
async fn head_after_the_token_dance_reads_the_content_digest() {
    let reg = serve(None, false).await;
    let d = digest_of(&client(&reg), "nginx:1.25.3-alpine")
        .await
        .unwrap();
    assert_eq!(d, Some(sha(INDEX)));
    let accept = MANIFEST_MEDIA_TYPES.join(", ");
    assert_eq!(
        log(&reg),
        [
            format!("HEAD 1.25.3-alpine auth=false accept={accept}"),
            "token service=test-registry scope=repository:library/nginx:pull".to_owned(),
            format!("HEAD 1.25.3-alpine auth=true accept={accept}"),
        ]
    );
    for t in [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ] {
        assert!(accept.contains(t), "{t}");
    }
}

#[tokio::test]
async fn without_a_digest_header_the_manifest_is_fetched_and_hashed() {
    let reg = serve(None, false).await;
    let d = digest_of(&client(&reg), "nginx:no-header").await.unwrap();
    assert_eq!(d, Some(sha(INDEX)));
    let methods: Vec<String> = log(&reg)
        .iter()
        .filter(|l| !l.starts_with("token"))
        .map(|l| l.split(" auth=").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        methods,
        ["HEAD no-header", "HEAD no-header", "GET no-header"]
    );
    assert_eq!(
        log(&reg).iter().filter(|l| l.starts_with("token")).count(),
        1,
        "one token for both requests"
    );

    let e = digest_of(&client(&reg), "nginx:lying").await.unwrap_err();
    assert_eq!(
        e,
        format!(
            "registry docker.io named the manifest of library/nginx:lying sha256:{}, but the bytes it sent hash to {}; refusing",
            "f".repeat(64),
            sha(INDEX)
        )
    );
    let e = digest_of(&client(&reg), "nginx:empty-get")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        "registry docker.io sent an empty manifest for library/nginx:empty-get"
    );
}

#[tokio::test]
async fn a_malformed_digest_is_an_error_naming_what_is_wrong() {
    let reg = serve(None, false).await;
    let c = client(&reg);
    for (tag, expected) in [
        (
            "upper",
            "has 'A' at position 1 of its hex part; a sha256 digest is lower-case hex",
        ),
        (
            "short",
            "\"sha256:abc123\" has 6 hex digits; a sha256 digest has 64",
        ),
        (
            "sha512",
            "uses the algorithm \"sha512\"; expected sha256:<64 lower-case hex digits>",
        ),
        (
            "bare",
            "has no algorithm (expected sha256:<64 lower-case hex digits>)",
        ),
    ] {
        let e = digest_of(&c, &format!("nginx:{tag}")).await.unwrap_err();
        assert!(
            e.starts_with(&format!(
                "registry docker.io sent an invalid Docker-Content-Digest for library/nginx:{tag}: "
            )),
            "{tag}: {e}"
        );
        assert!(e.contains(expected), "{tag}: {e}");
    }
}

#[tokio::test]
async fn an_unknown_manifest_quotes_the_registry_error() {
    let reg = serve(None, false).await;
    let e = digest_of(&client(&reg), "nginx:9.9.9").await.unwrap_err();
    assert_eq!(
        e,
        r#"registry docker.io has no manifest for library/nginx:9.9.9 (HTTP 404 Not Found); the registry said: MANIFEST_UNKNOWN: manifest unknown (detail: {"Tag":"9.9.9"})"#
    );
    // HEAD has no body to explain the 404: the client asked again with GET.
    assert!(log(&reg).last().unwrap().starts_with("GET 9.9.9 auth=true"));
    // No tag is `latest`.
    let e = digest_of(&client(&reg), "nginx").await.unwrap_err();
    assert!(e.contains("library/nginx:latest (HTTP 404"), "{e}");
}

#[tokio::test]
async fn refused_credentials_are_an_error_that_never_shows_them() {
    let basic = format!(
        "Basic {}",
        // base64("user:s3cret-registry-password")
        "dXNlcjpzM2NyZXQtcmVnaXN0cnktcGFzc3dvcmQ="
    );
    let reg = serve(Some(basic), false).await;
    let anonymous = digest_of(&client(&reg), "nginx:1.25.3-alpine")
        .await
        .unwrap_err();
    assert!(
        anonymous.contains("refused (HTTP 401 Unauthorized): check the registry credentials"),
        "{anonymous}"
    );
    let wrong = client(&reg).with_credentials(
        "docker.io",
        Credentials {
            username: "user".into(),
            password: "not-the-password".into(),
        },
    );
    let e = digest_of(&wrong, "nginx:1.25.3-alpine").await.unwrap_err();
    assert!(e.contains("check the registry credentials"), "{e}");
    assert!(!e.contains("not-the-password") && !format!("{e:?}").contains("not-the-password"));
    let right = client(&reg).with_credentials(
        "docker.io",
        Credentials {
            username: "user".into(),
            password: PASSWORD.into(),
        },
    );
    assert_eq!(
        digest_of(&right, "nginx:1.25.3-alpine").await.unwrap(),
        Some(sha(INDEX))
    );

    // A token that does not grant pull: the registry's 403 and its words.
    let denied = serve(None, true).await;
    let e = digest_of(&client(&denied), "nginx:1.25.3-alpine")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        r#"registry docker.io refused the manifest of library/nginx:1.25.3-alpine (HTTP 403 Forbidden): credentials needed; the registry said: DENIED: requested access to the resource is denied (detail: {"Tag":"1.25.3-alpine"})"#
    );
    assert!(!e.contains("good-token"), "{e}");
}

#[tokio::test]
async fn a_reference_by_digest_needs_no_request() {
    let reg = serve(None, false).await;
    let c = client(&reg);
    let d = format!("sha256:{}", "9f".repeat(32));
    for image in [format!("nginx@{d}"), format!("nginx:1.25.3-alpine@{d}")] {
        assert_eq!(digest_of(&c, &image).await.unwrap(), Some(d.clone()));
    }
    assert!(log(&reg).is_empty(), "{:?}", log(&reg));
    // A registry the model names on a private address is never contacted.
    let e = digest_of(&RegistryClient::new(), "169.254.169.254/latest/meta-data:1")
        .await
        .unwrap_err();
    assert!(e.contains("local or private address"), "{e}");
    // Nothing listens there: the error says the registry is unreachable.
    let gone = RegistryClient::new().with_endpoint("ghcr.io", "http://127.0.0.1:9");
    let e = digest_of(&gone, "ghcr.io/acme/api:1").await.unwrap_err();
    assert!(e.starts_with("registry ghcr.io unreachable: "), "{e}");
}
