//! Registry tags from a loopback OCI registry that demands the bearer-token dance and paginates,
//! and image recommendation over it with the simulator's stand-in scanner.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sre_tools::sim::Scenario;
use sre_tools::sim::trivy::CatalogueScanner;
use sre_tools::trivy::recommend::recommend;
use sre_tools::trivy::registry::{Credentials, ImageRef, RegistryClient, TagLister};
use sre_tools::trivy::report::Severity;

const TAGS: &[&str] = &[
    "1.25.3-alpine",
    "latest",
    "1.25.4-alpine",
    "1.25.5",
    "1.25.5-alpine",
    "mainline-alpine",
    "1.26.2-alpine",
];

#[derive(Default)]
struct Registry {
    base: String,
    basic: Option<String>,
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
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    if q.get("service").map(String::as_str) != Some("test-registry") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    axum::Json(json!({"token": "good-token", "expires_in": 300})).into_response()
}

async fn tags(
    State(r): State<Arc<Registry>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    r.log.lock().unwrap().push(format!(
        "tags last={} auth={}",
        q.get("last").cloned().unwrap_or_default(),
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
            axum::Json(json!({"errors": [{"code": "UNAUTHORIZED"}]})),
        )
            .into_response();
    }
    let start = q
        .get("last")
        .and_then(|l| TAGS.iter().position(|t| t == l))
        .map_or(0, |i| i + 1);
    let page: Vec<&str> = TAGS.iter().skip(start).take(2).copied().collect();
    let body = axum::Json(json!({"name": "library/nginx", "tags": page}));
    if start + 2 < TAGS.len() {
        let link = format!(
            "</v2/library/nginx/tags/list?n=2&last={}>; rel=\"next\"",
            page.last().unwrap()
        );
        return ([(header::LINK, link)], body).into_response();
    }
    body.into_response()
}

async fn serve(basic: Option<String>) -> Arc<Registry> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Registry {
        base,
        basic,
        ..Registry::default()
    });
    let app = axum::Router::new()
        .route("/token", get(token))
        .route("/v2/library/nginx/tags/list", get(tags))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    state
}

#[tokio::test]
async fn tags_follow_the_token_dance_and_every_page() {
    let reg = serve(None).await;
    let client = RegistryClient::new().with_endpoint("docker.io", &reg.base);
    let tags = client
        .tags(&ImageRef::parse("nginx:1.25.3-alpine").unwrap())
        .await
        .unwrap();
    assert_eq!(tags, TAGS);
    let log = reg.log.lock().unwrap().clone();
    assert_eq!(log[0], "tags last= auth=false");
    assert_eq!(
        log[1],
        "token service=test-registry scope=repository:library/nginx:pull"
    );
    assert_eq!(log[2], "tags last= auth=true");
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("tags") && l.ends_with("auth=true"))
            .count(),
        4,
        "4 pages: {log:?}"
    );
}

#[tokio::test]
async fn credentials_are_sent_to_the_token_service() {
    let expected = "Basic dXNlcjpzM2NyZXQ="; // user:s3cret
    let reg = serve(Some(expected.into())).await;
    let anonymous = RegistryClient::new().with_endpoint("docker.io", &reg.base);
    let e = anonymous
        .tags(&ImageRef::parse("nginx:1").unwrap())
        .await
        .unwrap_err();
    assert!(
        e.contains("refused (HTTP 401 Unauthorized): check the registry credentials"),
        "{e}"
    );
    let with = RegistryClient::new()
        .with_endpoint("docker.io", &reg.base)
        .with_credentials(
            "docker.io",
            Credentials {
                username: "user".into(),
                password: "s3cret".into(),
            },
        );
    assert_eq!(
        with.tags(&ImageRef::parse("nginx:1").unwrap())
            .await
            .unwrap()
            .len(),
        TAGS.len()
    );
}

#[tokio::test]
async fn an_unknown_repository_is_a_clear_error() {
    let reg = serve(None).await;
    let client = RegistryClient::new().with_endpoint("ghcr.io", &reg.base);
    let e = client
        .tags(&ImageRef::parse("ghcr.io/acme/none:1").unwrap())
        .await
        .unwrap_err();
    assert!(
        e.contains("repository acme/none not found on ghcr.io"),
        "{e}"
    );
}

fn scanner() -> CatalogueScanner {
    CatalogueScanner::new(Scenario::builtin("critical-cve").unwrap().images)
}

#[tokio::test]
async fn recommends_the_smallest_upgrade_that_clears_critical_and_high() {
    let reg = serve(None).await;
    let client = RegistryClient::new().with_endpoint("docker.io", &reg.base);
    let r = recommend(
        "nginx:1.25.3-alpine",
        Severity::Critical,
        &client,
        &scanner(),
    )
    .await
    .unwrap();
    assert_eq!(r.current.unique.critical, 2);
    let rec = r.recommended.clone().unwrap();
    assert_eq!(rec.image, "nginx:1.25.5-alpine");
    assert_eq!((rec.unique.critical, rec.unique.high), (0, 0));
    assert_eq!(
        r.scanned
            .iter()
            .map(|e| e.image.as_str())
            .collect::<Vec<_>>(),
        ["nginx:1.25.4-alpine", "nginx:1.25.5-alpine"]
    );
    let text = r.render();
    assert!(
        text.contains("RECOMMENDED nginx:1.25.5-alpine: 4 MEDIUM, 1 LOW"),
        "{text}"
    );
    assert!(text.contains("SIMULATED"), "{text}");
    assert!(!text.contains("latest"), "{text}");
}

#[tokio::test]
async fn falls_back_to_clearing_critical_only_and_handles_pins_and_floating_tags() {
    let mut images = Scenario::builtin("critical-cve").unwrap().images;
    images
        .get_mut("nginx:1.25.5-alpine")
        .unwrap()
        .vulnerabilities
        .insert("HIGH".into(), 2);
    images.remove("nginx:1.26.2-alpine");
    let scanner = CatalogueScanner::new(images);
    let tags = sre_tools::sim::trivy::CatalogueTags::new(scanner.images().cloned());
    let r = recommend("nginx:1.25.3-alpine", Severity::Critical, &tags, &scanner)
        .await
        .unwrap();
    assert_eq!(
        r.recommended.unwrap().image,
        "nginx:1.25.5-alpine",
        "no candidate clears HIGH, so the smallest that clears CRITICAL"
    );
    let r = recommend("nginx:1.25.3-alpine", Severity::High, &tags, &scanner)
        .await
        .unwrap();
    assert!(r.recommended.is_none());
    assert!(
        r.render()
            .contains("no candidate clears every HIGH or worse finding"),
        "{}",
        r.render()
    );

    let pin = format!("sha256:{}", "0123".repeat(16));
    let e = recommend(&format!("nginx@{pin}"), Severity::Critical, &tags, &scanner)
        .await
        .unwrap_err();
    assert!(e.contains("pinned by digest only"), "{e}");
    let e = recommend("nginx:latest", Severity::Critical, &tags, &scanner)
        .await
        .unwrap_err();
    assert!(e.contains("not a version"), "{e}");
    let r = recommend(
        &format!("nginx:1.25.3-alpine@{pin}"),
        Severity::Critical,
        &tags,
        &scanner,
    )
    .await;
    // The pinned reference itself is not in the catalogue, so the scan says so.
    assert!(
        r.unwrap_err()
            .contains("not in the simulator's image catalogue")
    );
}
