//! Image references and the OCI distribution API's tag list (`GET /v2/<name>/tags/list`), with the
//! `WWW-Authenticate: Bearer` token dance (anonymous for public images, with credentials when
//! configured) and `Link` pagination.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use serde::Deserialize;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path (`library/nginx` on Docker Hub).
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest (`sha256:…`), if pinned.
    pub digest: Option<String>,
    /// How the user wrote the name part (kept when suggesting a new tag).
    pub name: String,
}

impl ImageRef {
    /// Parses `[registry/]repo[:tag][@digest]`.
    ///
    /// # Errors
    /// An empty or malformed reference, with the reason.
    pub fn parse(image: &str) -> Result<Self, String> {
        // Canonical references only (as container runtimes parse them): no white space, control
        // characters, upper-case paths or leading '-', so nothing odd reaches a registry URL or
        // trivy's command line.
        let parsed = sre_core::image::ImageRef::parse(image).map_err(|e| e.to_string())?;
        // The name as written: the reference without its digest and tag.
        let rest = image.split('@').next().unwrap_or(image);
        let name = match (parsed.tag(), rest.rfind(':')) {
            (Some(_), Some(i)) => &rest[..i],
            _ => rest,
        };
        Ok(Self {
            registry: parsed.domain().to_owned(),
            repository: parsed.path().to_owned(),
            tag: parsed.tag().map(str::to_owned),
            digest: parsed.digest().map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// The same repository with another tag, written the way the user wrote the name.
    pub fn with_tag(&self, tag: &str) -> String {
        format!("{}:{tag}", self.name)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Lists the tags of an image's repository.
#[async_trait]
pub trait TagLister: Send + Sync {
    /// Every tag of the repository of `image`.
    async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, String>;
}

/// Credentials for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User.
    pub username: String,
    /// Password or token (never printed).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// An OCI distribution API client for tag lists.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    credentials: HashMap<String, Credentials>,
    /// Base URL per registry host (e.g. `http://127.0.0.1:5000` for a local registry). Default:
    /// `https://<host>`, with Docker Hub at `https://registry-1.docker.io`.
    pub endpoints: HashMap<String, String>,
    /// Most pages followed.
    pub max_pages: usize,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// True for `localhost`, and for IP literals that are loopback, private, link-local, unique-local,
/// unspecified or CGNAT (with or without a port).
fn is_local_or_private(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, p)| {
            if p.bytes().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host_port
            }
        }),
    };
    let host = host.to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_local_or_private(&v4.to_string()))
        }
        Err(_) => false,
    }
}

/// A token service (`realm`) may be used for a registry at `base`: HTTPS (plain HTTP only when the
/// registry itself is configured as plain HTTP), and not a local or private address unless the
/// registry is configured on one too.
fn realm_allowed(base: &str, realm: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(realm) else {
        return false;
    };
    let base_http = base.starts_with("http://");
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && base_http);
    let host = url.host_str().unwrap_or_default();
    let base_local = reqwest::Url::parse(base)
        .ok()
        .and_then(|b| b.host_str().map(is_local_or_private))
        .unwrap_or(false);
    scheme_ok && (!is_local_or_private(host) || base_local)
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
fn bearer_challenge(header: &str) -> Option<HashMap<String, String>> {
    let rest = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut out = HashMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].trim_start_matches(',').trim_start())
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (
                &after[..end],
                after[end..].trim_start_matches(',').trim_start(),
            )
        };
        out.insert(k.trim().to_ascii_lowercase(), v.to_owned());
        s = next;
    }
    Some(out)
}

/// The `rel="next"` target of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header
        .split(',')
        .find(|p| p.contains("rel=\"next\""))
        .and_then(|p| {
            let start = p.find('<')? + 1;
            let end = p.find('>')?;
            Some(p[start..end].to_owned())
        })
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self::new()
    }
}

impl RegistryClient {
    /// A client with no credentials.
    pub fn new() -> Self {
        install_crypto();
        let http = reqwest::Client::builder()
            .user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            http,
            credentials: HashMap::new(),
            endpoints: HashMap::new(),
            max_pages: 20,
        }
    }

    /// Uses `credentials` for `registry` (and its token service).
    #[must_use]
    pub fn with_credentials(mut self, registry: &str, credentials: Credentials) -> Self {
        self.credentials.insert(registry.to_owned(), credentials);
        self
    }

    /// Talks to `registry` at `base_url` (e.g. a local `http://127.0.0.1:5000`).
    #[must_use]
    pub fn with_endpoint(mut self, registry: &str, base_url: &str) -> Self {
        self.endpoints.insert(
            registry.to_owned(),
            base_url.trim_end_matches('/').to_owned(),
        );
        self
    }

    /// Refuses a registry the model named that is a local or private address (SSRF toward the
    /// node, the cloud metadata endpoint or internal services) unless it was configured
    /// explicitly with [`RegistryClient::with_endpoint`].
    fn check_host(&self, registry: &str) -> Result<(), String> {
        if self.endpoints.contains_key(registry) {
            return Ok(());
        }
        if is_local_or_private(registry) {
            return Err(format!(
                "refusing to contact registry {registry}: a local or private address; configure it explicitly (RegistryClient::with_endpoint) if it is yours"
            ));
        }
        Ok(())
    }

    fn base(&self, registry: &str) -> String {
        self.endpoints
            .get(registry)
            .cloned()
            .unwrap_or_else(|| match registry {
                "docker.io" | "index.docker.io" => "https://registry-1.docker.io".into(),
                other => format!("https://{other}"),
            })
    }

    async fn token(&self, image: &ImageRef, challenge: &str) -> Result<String, String> {
        let params = bearer_challenge(challenge).ok_or_else(|| {
            format!(
                "registry {} sent an unsupported challenge: {challenge}",
                image.registry
            )
        })?;
        let realm = params.get("realm").ok_or_else(|| {
            format!(
                "registry {} sent a challenge without a realm",
                image.registry
            )
        })?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(service) = params.get("service") {
            query.push(("service", service.clone()));
        }
        query.push((
            "scope",
            params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| format!("repository:{}:pull", image.repository)),
        ));
        // Credentials and requests go to the token service only over TLS (unless the registry
        // itself was configured as plain HTTP, as a local test registry is), and never to a local
        // or private address the registry was not configured as.
        let base = self.base(&image.registry);
        if !realm_allowed(&base, realm) {
            return Err(format!(
                "registry {} named the token service {realm}, which is not HTTPS or is a local or private address; refusing",
                image.registry
            ));
        }
        let mut req = self.http.get(realm).query(&query);
        if let Some(c) = self.credentials.get(&image.registry) {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("token request to {realm} failed: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!(
                "token service {realm} refused (HTTP {status}): check the registry credentials"
            ));
        }
        let t: TokenResponse = resp
            .json()
            .await
            .map_err(|e| format!("token service {realm} sent an unreadable answer: {e}"))?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| format!("token service {realm} sent no token"))
    }
}

#[async_trait]
impl TagLister for RegistryClient {
    async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, String> {
        self.check_host(&image.registry)?;
        let base = self.base(&image.registry);
        let mut url = format!("{base}/v2/{}/tags/list?n=1000", image.repository);
        let mut token: Option<String> = None;
        let mut tags = Vec::new();
        for _ in 0..self.max_pages {
            let mut req = self.http.get(&url);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("registry {} unreachable: {e}", image.registry))?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED && token.is_none() {
                let challenge = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                token = Some(self.token(image, &challenge).await?);
                continue;
            }
            let status = resp.status();
            if !status.is_success() {
                return Err(match status.as_u16() {
                    401 | 403 => format!(
                        "registry {} refused the tag list of {} (HTTP {status}): credentials needed",
                        image.registry, image.repository
                    ),
                    404 => format!(
                        "repository {} not found on {}",
                        image.repository, image.registry
                    ),
                    _ => format!(
                        "registry {} answered HTTP {status} for the tags of {}",
                        image.registry, image.repository
                    ),
                });
            }
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let page: TagList = resp.json().await.map_err(|e| {
                format!(
                    "registry {} sent an unreadable tag list: {e}",
                    image.registry
                )
            })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) if n.starts_with("http") => url = n,
                Some(n) => url = format!("{base}{n}"),
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = ImageRef::parse("nginx:1.25.3-alpine").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/nginx", Some("1.25.3-alpine"))
        );
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = ImageRef::parse(&format!("localhost:5000/team/app:2@{digest}")).unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.tag.as_deref(),
                r.digest.as_deref()
            ),
            (
                "localhost:5000",
                "team/app",
                Some("2"),
                Some(digest.as_str())
            )
        );
        let r = ImageRef::parse(&format!("ghcr.io/acme/api@{digest}")).unwrap();
        assert_eq!((r.tag, r.digest.as_deref()), (None, Some(digest.as_str())));
        assert_eq!(
            ImageRef::parse("bitnami/redis").unwrap().repository,
            "bitnami/redis"
        );
        assert!(ImageRef::parse("nginx:").is_err());
        assert!(ImageRef::parse("a b").is_err());
        assert!(ImageRef::parse(" nginx:1").is_err());
        assert!(ImageRef::parse("--output=/etc/x").is_err());
        assert!(ImageRef::parse("nginx:1#x").is_err());
        assert_eq!(ImageRef::parse("nginx:1").unwrap().with_tag("2"), "nginx:2");
    }

    #[test]
    fn challenges_and_links() {
        let c = bearer_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#).unwrap();
        assert_eq!(c["realm"], "https://auth.example/token");
        assert_eq!(c["service"], "registry.example");
        assert_eq!(c["scope"], "repository:a/b:pull");
        assert!(bearer_challenge("Basic realm=x").is_none());
    }

    #[test]
    fn local_and_private_registries_and_realms_are_refused() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "169.254.169.254",
            "10.0.0.7:5000",
            "192.168.1.1",
            "100.64.0.1",
            "[::1]:5000",
            "[fd00::1]",
        ] {
            assert!(is_local_or_private(host), "{host}");
        }
        for host in ["ghcr.io", "registry-1.docker.io", "8.8.8.8", "quay.io:443"] {
            assert!(!is_local_or_private(host), "{host}");
        }
        let hub = "https://registry-1.docker.io";
        assert!(realm_allowed(hub, "https://auth.docker.io/token"));
        assert!(
            !realm_allowed(hub, "http://auth.docker.io/token"),
            "no plain HTTP"
        );
        assert!(
            !realm_allowed(hub, "https://169.254.169.254/token"),
            "no metadata endpoint"
        );
        let local = "http://127.0.0.1:5000";
        assert!(realm_allowed(local, "http://127.0.0.1:5000/token"));
    }

    #[tokio::test]
    async fn a_registry_the_model_names_on_a_private_address_is_never_contacted() {
        // Regression: image_recommend fetched tag lists from any host the model named.
        let client = RegistryClient::new();
        for image in [
            "169.254.169.254/latest/meta-data:1",
            "localhost:5000/x:1",
            "10.1.2.3/app:1",
        ] {
            let e = client
                .tags(&ImageRef::parse(image).unwrap())
                .await
                .unwrap_err();
            assert!(e.contains("local or private address"), "{image}: {e}");
        }
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
