//! Image references and two calls of the OCI distribution API: the tag list
//! (`GET /v2/<name>/tags/list`, with `Link` pagination) and the content digest a tag points at now
//! (`HEAD /v2/<name>/manifests/<tag>`, reading `Docker-Content-Digest`), both with the
//! `WWW-Authenticate: Bearer` token dance (anonymous for public images, with credentials when
//! configured).

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

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

/// Lists the tags of an image's repository, and tells which content a tag points at now.
#[async_trait]
pub trait TagLister: Send + Sync {
    /// Every tag of the repository of `image`.
    async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, String>;

    /// The content digest (`sha256:…`) the registry serves for the image's tag now (`latest`
    /// when the reference has no tag); an image given by digest is that digest. A tag can move
    /// (a new push), so this is what pins "what was scanned" to "what runs".
    ///
    /// The default knows no digests: `Ok(None)`.
    ///
    /// # Errors
    /// The registry is unreachable, refuses, has no such manifest, or sends a malformed digest.
    async fn digest(&self, image: &ImageRef) -> Result<Option<String>, String> {
        let _ = image;
        Ok(None)
    }
}

/// Checks that `digest` is `sha256:` followed by 64 lower-case hex digits (the form registries
/// and container runtimes use for content digests).
///
/// # Errors
/// What is wrong with it: no algorithm, another algorithm, the wrong length or a character that
/// is not lower-case hex (untrusted text escaped).
pub fn check_digest(digest: &str) -> Result<(), String> {
    let shown = || sre_core::text::escape_untrusted(digest).into_owned();
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!(
            "{:?} has no algorithm (expected sha256:<64 lower-case hex digits>)",
            shown()
        ));
    };
    if algorithm != "sha256" {
        return Err(format!(
            "{:?} uses the algorithm {:?}; expected sha256:<64 lower-case hex digits>",
            shown(),
            sre_core::text::escape_untrusted(algorithm)
        ));
    }
    if let Some((i, c)) = hex
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || ('a'..='f').contains(c)))
    {
        return Err(format!(
            "{:?} has {} at position {} of its hex part; a sha256 digest is lower-case hex",
            shown(),
            if c.is_ascii_graphic() {
                format!("{c:?}")
            } else {
                sre_core::text::describe_char(c)
            },
            i + 1
        ));
    }
    if hex.len() != 64 {
        return Err(format!(
            "{:?} has {} hex digits; a sha256 digest has 64",
            shown(),
            hex.len()
        ));
    }
    Ok(())
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

/// The OCI distribution API's error body: `{"errors": [{"code", "message", "detail"}]}`.
#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

/// The manifest media types a digest lookup accepts: an index (multi-platform image) or a
/// single manifest, OCI and Docker. The digest of what the registry serves for these is the one
/// container runtimes pull and kubelets report in `imageID`.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The header a registry names a manifest's digest in.
const CONTENT_DIGEST: &str = "docker-content-digest";

/// Largest manifest read to compute a digest (the distribution registry's own limit).
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Most bytes of an error body read and quoted.
const MAX_ERROR_BYTES: usize = 16 << 10;

/// Reads at most `max` bytes of a body; `Ok(None)` when it is longer.
async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > max))
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The registry's error body, for an error message: its `code: message (detail)` entries, or
/// the body itself quoted when it is not the API's JSON (escaped, cut at 300 characters).
fn registry_errors(body: &[u8]) -> String {
    let cut = |s: &str, n: usize| -> String {
        let s = sre_core::text::escape_untrusted(s);
        match s.char_indices().nth(n) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s.into_owned(),
        }
    };
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body)
        && !parsed.errors.is_empty()
    {
        return parsed
            .errors
            .iter()
            .map(|e| {
                let mut line = format!("{}: {}", cut(&e.code, 64), cut(&e.message, 200));
                if let Some(d) = e.detail.as_ref().filter(|d| !d.is_null()) {
                    let _ = write!(line, " (detail: {})", cut(&d.to_string(), 200));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no error body".into()
    } else {
        format!("{:?}", cut(text, 300))
    }
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

/// Follows a registry's redirect (blob stores, mirrors) only to a public address: a registry a
/// model named cannot send the agent to the node, the cloud metadata endpoint or an internal
/// service. A local address is followed only on the host the request started on (a configured
/// local endpoint redirecting to itself).
fn redirect_policy(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let host = |u: &reqwest::Url| match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    };
    if attempt.previous().len() >= 5 {
        return attempt.error("more than 5 redirects");
    }
    let target = host(attempt.url());
    let same_host = attempt
        .previous()
        .first()
        .is_some_and(|u| host(u) == target);
    if target.is_empty() || (is_local_or_private(&target) && !same_host) {
        let msg = format!("refusing a redirect to {target}: a local or private address");
        return attempt.error(msg);
    }
    attempt.follow()
}

impl RegistryClient {
    /// A client with no credentials.
    pub fn new() -> Self {
        install_crypto();
        let http = reqwest::Client::builder()
            .user_agent(concat!("sre-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::custom(redirect_policy))
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

    /// Sends the request `build` makes, with the bearer `token` when one is held. On a 401 with
    /// no token yet, gets one from the `WWW-Authenticate` challenge (anonymously, or with the
    /// registry's credentials), keeps it in `token` for the next requests and sends again once.
    async fn send(
        &self,
        image: &ImageRef,
        token: &mut Option<String>,
        build: impl Fn() -> reqwest::RequestBuilder + Send,
    ) -> Result<reqwest::Response, String> {
        let unreachable =
            |e: reqwest::Error| format!("registry {} unreachable: {e}", image.registry);
        let mut req = build();
        if let Some(t) = token.as_deref() {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(unreachable)?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED || token.is_some() {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let t = self.token(image, &challenge).await?;
        let resp = build().bearer_auth(&t).send().await.map_err(unreachable)?;
        *token = Some(t);
        Ok(resp)
    }

    /// The digest of `tag`'s manifest: `HEAD`, reading `Docker-Content-Digest`; without that
    /// header (or when `HEAD` is refused), `GET` and the sha256 of the bytes served.
    async fn manifest_digest(&self, image: &ImageRef, tag: &str) -> Result<String, String> {
        self.check_host(&image.registry)?;
        let registry = &image.registry;
        let what = format!("{}:{tag}", image.repository);
        let url = format!(
            "{}/v2/{}/manifests/{tag}",
            self.base(registry),
            image.repository
        );
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let mut token = None;
        let header_digest = |resp: &reqwest::Response| -> Result<Option<String>, String> {
            let Some(v) = resp.headers().get(CONTENT_DIGEST) else {
                return Ok(None);
            };
            let d = v.to_str().map_err(|_| {
                format!(
                    "registry {registry} sent a Docker-Content-Digest for {what} that is not text"
                )
            })?;
            check_digest(d).map_err(|e| {
                format!("registry {registry} sent an invalid Docker-Content-Digest for {what}: {e}")
            })?;
            Ok(Some(d.to_owned()))
        };
        let head = self
            .send(image, &mut token, || {
                self.http
                    .head(&url)
                    .header(reqwest::header::ACCEPT, &accept)
            })
            .await?;
        if head.status().is_success()
            && let Some(d) = header_digest(&head)?
        {
            return Ok(d);
        }
        // No digest in the answer to HEAD, or HEAD failed (its answer has no body to explain
        // why): GET the manifest, for its bytes or the registry's error.
        let resp = self
            .send(image, &mut token, || {
                self.http.get(&url).header(reqwest::header::ACCEPT, &accept)
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_capped(resp, MAX_ERROR_BYTES)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let said = registry_errors(&body);
            return Err(match status.as_u16() {
                401 | 403 => format!(
                    "registry {registry} refused the manifest of {what} (HTTP {status}): credentials needed; the registry said: {said}"
                ),
                404 => format!(
                    "registry {registry} has no manifest for {what} (HTTP {status}); the registry said: {said}"
                ),
                _ => format!(
                    "registry {registry} answered HTTP {status} for the manifest of {what}; the registry said: {said}"
                ),
            });
        }
        let claimed = header_digest(&resp)?;
        let body = read_capped(resp, MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| format!("registry {registry} broke off the manifest of {what}: {e}"))?
            .ok_or_else(|| {
                format!(
                    "registry {registry} sent a manifest for {what} larger than {MAX_MANIFEST_BYTES} bytes; refusing"
                )
            })?;
        if body.is_empty() {
            return Err(format!(
                "registry {registry} sent an empty manifest for {what}"
            ));
        }
        let computed = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if let Some(claimed) = claimed
            && claimed != computed
        {
            return Err(format!(
                "registry {registry} named the manifest of {what} {claimed}, but the bytes it sent hash to {computed}; refusing"
            ));
        }
        Ok(computed)
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
            let resp = self.send(image, &mut token, || self.http.get(&url)).await?;
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

    async fn digest(&self, image: &ImageRef) -> Result<Option<String>, String> {
        if let Some(d) = &image.digest {
            return Ok(Some(d.clone()));
        }
        let tag = image.tag.as_deref().unwrap_or("latest");
        self.manifest_digest(image, tag).await.map(Some)
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
    fn digests_are_sha256_and_lower_case_hex() {
        let good = format!("sha256:{}", "0a".repeat(32));
        assert_eq!(check_digest(&good), Ok(()));
        let e = check_digest(&"0a".repeat(32)).unwrap_err();
        assert!(e.contains("has no algorithm"), "{e}");
        let e = check_digest(&format!("sha512:{}", "0a".repeat(64))).unwrap_err();
        assert!(e.contains("uses the algorithm \"sha512\""), "{e}");
        let e = check_digest(&format!("sha256:{}", "0A".repeat(32))).unwrap_err();
        assert!(e.contains("has 'A' at position 2 of its hex part"), "{e}");
        let e = check_digest("sha256:abc").unwrap_err();
        assert!(
            e.contains("has 3 hex digits; a sha256 digest has 64"),
            "{e}"
        );
        let e = check_digest("sha256:\u{1b}[2J").unwrap_err();
        assert!(!e.contains('\u{1b}'), "escaped: {e:?}");
    }

    #[test]
    fn registry_error_bodies_are_quoted() {
        assert_eq!(
            registry_errors(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"9"}}]}"#
            ),
            r#"MANIFEST_UNKNOWN: manifest unknown (detail: {"Tag":"9"})"#
        );
        assert_eq!(
            registry_errors(b"<html>bad gateway</html>"),
            "\"<html>bad gateway</html>\""
        );
        assert_eq!(registry_errors(b""), "no error body");
        assert!(registry_errors("x".repeat(1000).as_bytes()).ends_with("…\""));
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
