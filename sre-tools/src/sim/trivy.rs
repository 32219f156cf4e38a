//! The simulator's image catalogue and its stand-ins for Trivy and the registry.
//!
//! The [`Catalogue`] is a registry in miniature, shared by everything that looks at images: the
//! kubelet (what a pod runs and reports in `imageID`), the [`CatalogueScanner`] (what a scan
//! finds) and [`CatalogueTags`] (which tags exist and what they point at). It holds contents by
//! digest and tags pointing at them, so it can show what a real registry does: a tag *moves*
//! when a new build is pushed ([`Catalogue::push`]) while the old content stays addressable by
//! digest and the pods already running it keep it, and a vulnerability-database update makes a
//! re-scan of the same content find more ([`Catalogue::set_findings`]). Everything it produces is
//! labelled simulated where it is shown.
//!
//! References resolve as a container runtime resolves them: `repo:tag` is the tag's current
//! content (`latest` when there is no tag); `repo@sha256:…` and `repo:tag@sha256:…` are the
//! content with that digest in the repository (the tag is ignored), including content a tag used
//! to point at. Repositories are compared normalised (`nginx` is `docker.io/library/nginx`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sre_tools::Error> {
//! use sre_tools::sim::Simulator;
//! use sre_tools::sim::scenario::ImageProfile;
//!
//! let sim = Simulator::start_named("critical-cve").await?;
//! let catalogue = sim.catalogue();
//! let before = catalogue.digest("nginx:1.25.5-alpine");
//! // A new build of the tag: pods already running keep the old content.
//! let after = catalogue.push("nginx:1.25.5-alpine", ImageProfile::default())?;
//! assert_ne!(before.as_deref(), Some(after.as_str()));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use super::scenario::{ImageFinding, ImageProfile, limits};
use crate::error::{Error, Result};
use crate::trivy::registry::{ImageRef, TagLister, check_digest};
use crate::trivy::report::{Cvss, Metadata, Report, ScanResult, Severity, Vulnerability};
use crate::trivy::scanner::{ImageScanner, ScanError};

/// The digest of a catalogue entry that names none: the sha256 of the reference string.
pub fn default_digest(reference: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(reference.as_bytes()))
    )
}

/// `<repo>@<digest>` with the repository as written in `reference` (`nginx:1.25` →
/// `nginx@sha256:…`), as a kubelet reports `imageID` and Trivy `RepoDigests`.
pub fn repo_digest(reference: &str, digest: &str) -> String {
    let name = ImageRef::parse(reference).map_or_else(
        |_| {
            // Not a valid reference: strip what looks like a digest and a tag.
            let rest = reference.split('@').next().unwrap_or(reference);
            match rest.rfind(':') {
                Some(i) if !rest[i..].contains('/') => rest[..i].to_owned(),
                _ => rest.to_owned(),
            }
        },
        |r| r.name,
    );
    format!("{name}@{digest}")
}

/// The normalised repository of a reference (`docker.io/library/nginx`), if it parses.
pub(crate) fn repository_key(reference: &str) -> Option<String> {
    ImageRef::parse(reference)
        .ok()
        .map(|r| format!("{}/{}", r.registry, r.repository))
}

/// The digest a catalogue entry stands for: the reference's own, else the profile's, else
/// [`default_digest`].
pub(crate) fn content_digest(reference: &str, profile: &ImageProfile) -> String {
    ImageRef::parse(reference)
        .ok()
        .and_then(|r| r.digest)
        .or_else(|| profile.digest.clone())
        .unwrap_or_else(|| default_digest(reference))
}

/// True when two profiles describe the same content (their `digest` fields aside).
pub(crate) fn same_content(a: &ImageProfile, b: &ImageProfile) -> bool {
    let strip = |p: &ImageProfile| ImageProfile {
        digest: None,
        ..p.clone()
    };
    strip(a) == strip(b)
}

/// One repository of the catalogue.
#[derive(Debug, Clone)]
struct Repo {
    /// The name as first written (`nginx`, `ghcr.io/acme/web`), for listing references.
    name: String,
    /// Tag → digest of the content it points at now.
    tags: BTreeMap<String, String>,
    /// Digest → content (its `digest` field set).
    contents: BTreeMap<String, ImageProfile>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Normalised repository (`docker.io/library/nginx`) → repository.
    repos: BTreeMap<String, Repo>,
    /// Pushes so far: each push is a new build, with a digest of its own.
    pushes: u64,
}

impl Inner {
    fn contents(&self) -> usize {
        self.repos.values().map(|r| r.contents.len()).sum()
    }

    /// Stores `profile` as the content `digest` of `reference`'s repository, pointing the
    /// reference's tag (if any) at it.
    fn insert(&mut self, reference: &ImageRef, digest: &str, mut profile: ImageProfile) {
        profile.digest = Some(digest.to_owned());
        let repo = self
            .repos
            .entry(format!("{}/{}", reference.registry, reference.repository))
            .or_insert_with(|| Repo {
                name: reference.name.clone(),
                tags: BTreeMap::new(),
                contents: BTreeMap::new(),
            });
        repo.contents.entry(digest.to_owned()).or_insert(profile);
        if let Some(tag) = &reference.tag {
            repo.tags.insert(tag.clone(), digest.to_owned());
        }
    }
}

/// How a reference resolved.
#[derive(Debug, Clone)]
enum Resolution {
    /// The content, and whether it was found through the tag (not a digest).
    Found(ImageProfile, bool),
    /// The repository or tag is not in the catalogue.
    UnknownTag,
    /// The reference names a digest the repository does not have.
    UnknownDigest(ImageRef, String),
    /// Not an image reference.
    Invalid(String),
}

/// The simulator's live image catalogue: contents by digest and the tags pointing at them,
/// shared (cloning shares it) by the kubelet, [`CatalogueScanner`] and [`CatalogueTags`], so a
/// change is seen by all of them. See the [module](self) documentation.
#[derive(Clone, Default)]
pub struct Catalogue {
    inner: Arc<RwLock<Inner>>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.read();
        f.debug_struct("Catalogue")
            .field("repositories", &inner.repos.len())
            .field("contents", &inner.contents())
            .finish_non_exhaustive()
    }
}

impl Catalogue {
    /// A catalogue of a scenario's `images`: each entry is a content (its `digest`, the digest in
    /// its reference, or else [`default_digest`] of the reference) and its tag points at it.
    /// Entries whose key is not an image reference are left out ([`super::Scenario::validate`]
    /// refuses them).
    pub fn from_images(images: &BTreeMap<String, ImageProfile>) -> Self {
        Self::from_entries(images.iter().map(|(r, p)| (r.clone(), p.clone())))
    }

    fn from_entries(images: impl IntoIterator<Item = (String, ImageProfile)>) -> Self {
        let mut inner = Inner::default();
        for (reference, profile) in images {
            if let Ok(r) = ImageRef::parse(&reference) {
                let digest = content_digest(&reference, &profile);
                inner.insert(&r, &digest, profile);
            }
        }
        Self {
            inner: Arc::new(RwLock::new(inner)),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn resolution(&self, reference: &str) -> Resolution {
        let r = match ImageRef::parse(reference) {
            Ok(r) => r,
            Err(e) => return Resolution::Invalid(e),
        };
        let inner = self.read();
        let repo = inner.repos.get(&format!("{}/{}", r.registry, r.repository));
        if let Some(d) = &r.digest {
            if let Some(p) = repo.and_then(|repo| repo.contents.get(d)) {
                return Resolution::Found(p.clone(), false);
            }
            let d = d.clone();
            return Resolution::UnknownDigest(r, d);
        }
        let tag = r.tag.as_deref().unwrap_or("latest");
        repo.and_then(|repo| repo.tags.get(tag).and_then(|d| repo.contents.get(d)))
            .map_or(Resolution::UnknownTag, |p| {
                Resolution::Found(p.clone(), true)
            })
    }

    /// The content `reference` names now, its `digest` set; `None` when the repository, tag or
    /// digest is unknown (or the reference is not valid).
    pub fn resolve(&self, reference: &str) -> Option<ImageProfile> {
        match self.resolution(reference) {
            Resolution::Found(p, _) => Some(p),
            _ => None,
        }
    }

    /// What a kubelet pulls for `reference`: the content, or an image that cannot be pulled
    /// ([`super::kubelet::missing_image`]) when the catalogue does not have it.
    pub fn profile(&self, reference: &str) -> ImageProfile {
        self.resolve(reference)
            .unwrap_or_else(|| super::kubelet::missing_image(reference))
    }

    /// The content digest (`sha256:…`) `reference` names now.
    pub fn digest(&self, reference: &str) -> Option<String> {
        self.resolve(reference).and_then(|p| p.digest)
    }

    /// Every `repo:tag` of the catalogue, with the repository as first written.
    pub fn references(&self) -> Vec<String> {
        self.read()
            .repos
            .values()
            .flat_map(|r| r.tags.keys().map(move |t| format!("{}:{t}", r.name)))
            .collect()
    }

    /// The tags of `image`'s repository, sorted.
    fn tags_of(&self, image: &ImageRef) -> Vec<String> {
        self.read()
            .repos
            .get(&format!("{}/{}", image.registry, image.repository))
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Pushes a new build: `profile` becomes a content of `reference`'s repository and the
    /// reference's tag points at it (the tag moves). The old content stays addressable by digest,
    /// and pods already running it keep it and its `imageID`; pods started from now on by that
    /// tag get the new content. Returns the new content's digest: `profile.digest` or the digest
    /// in `reference` when given, else a new one (every push is a new build).
    ///
    /// # Errors
    /// A reference that is not valid, a malformed digest, a digest that differs from the one in
    /// the reference or already names other content, a profile over the scenario [`limits`], or
    /// a catalogue that is full.
    pub fn push(&self, reference: &str, profile: ImageProfile) -> Result<String> {
        let bad = |message: String| Error::Simulator(format!("push of {reference}: {message}"));
        super::scenario::check_image(reference, &profile).map_err(bad)?;
        let r = ImageRef::parse(reference).map_err(bad)?;
        if r.tag.is_none() && r.digest.is_none() {
            return Err(bad(
                "name a tag or a digest to push to (a container registry pushes to `latest` \
                 only when told)"
                    .into(),
            ));
        }
        let mut inner = self.write();
        let given = r.digest.clone().or_else(|| profile.digest.clone());
        let digest = given.unwrap_or_else(|| {
            let body = serde_json::to_string(&profile).unwrap_or_default();
            default_digest(&format!(
                "{}/{}\n{}\n{body}",
                r.registry, r.repository, inner.pushes
            ))
        });
        let key = format!("{}/{}", r.registry, r.repository);
        let existing = inner
            .repos
            .get(&key)
            .and_then(|repo| repo.contents.get(&digest));
        match existing {
            Some(old) if !same_content(old, &profile) => {
                return Err(bad(format!(
                    "digest {digest} already names other content in {key}"
                )));
            }
            None if inner.contents() >= limits::MAX_IMAGES => {
                return Err(bad(format!(
                    "the catalogue holds {} contents; the simulator allows at most {}",
                    limits::MAX_IMAGES,
                    limits::MAX_IMAGES
                )));
            }
            _ => {}
        }
        check_digest(&digest).map_err(|e| bad(format!("digest {e}")))?;
        inner.pushes += 1;
        inner.insert(&r, &digest, profile);
        Ok(digest)
    }

    /// A vulnerability-database update: the content with `digest` (in every repository that
    /// has it) now has these explicit findings, so the next scan of the same content finds them.
    /// Nothing else about the content changes: pods running it keep their `imageID`.
    ///
    /// # Errors
    /// A malformed digest or finding, or no content with that digest.
    pub fn set_findings(&self, digest: &str, findings: Vec<ImageFinding>) -> Result<()> {
        let bad = |message: String| Error::Simulator(format!("findings of {digest}: {message}"));
        check_digest(digest).map_err(bad)?;
        let mut inner = self.write();
        let Some((name, current)) = inner
            .repos
            .values()
            .find_map(|r| r.contents.get(digest).map(|p| (r.name.clone(), p.clone())))
        else {
            return Err(bad("no content with this digest in the catalogue".into()));
        };
        let updated = ImageProfile {
            findings,
            ..current
        };
        super::scenario::check_image(&format!("{name}@{digest}"), &updated).map_err(bad)?;
        for p in inner
            .repos
            .values_mut()
            .filter_map(|r| r.contents.get_mut(digest))
        {
            p.findings.clone_from(&updated.findings);
        }
        Ok(())
    }
}

/// The scanner's findings for a content: its explicit findings, then one generated `SIM-…`
/// finding per counted vulnerability (at most `generated_per_severity` of each severity).
pub(crate) fn vulnerabilities(
    profile: &ImageProfile,
    generated_per_severity: u32,
) -> Vec<Vulnerability> {
    let nvd = |score: f64| {
        BTreeMap::from([(
            "nvd".to_owned(),
            Cvss {
                v3_score: Some(score),
                v2_score: None,
            },
        )])
    };
    let mut vulns: Vec<Vulnerability> = profile
        .findings
        .iter()
        .map(|f| Vulnerability {
            vulnerability_id: f.id.clone(),
            pkg_name: f.package.clone(),
            installed_version: f.installed.clone(),
            fixed_version: f.fixed.clone(),
            status: Some(
                if f.fixed.is_some() {
                    "fixed"
                } else {
                    "affected"
                }
                .into(),
            ),
            severity: f.severity,
            title: f.title.clone(),
            primary_url: f
                .id
                .starts_with("CVE-")
                .then(|| format!("https://avd.aquasec.com/nvd/{}", f.id.to_ascii_lowercase())),
            cvss: f.cvss.map(nvd).unwrap_or_default(),
        })
        .collect();
    for (sev, count) in &profile.vulnerabilities {
        let severity = Severity::parse(sev);
        for i in 0..(*count).min(generated_per_severity) {
            let score = match severity {
                Severity::Critical => 9.8 - f64::from(i % 5) * 0.1,
                Severity::High => 7.5,
                Severity::Medium => 5.3,
                Severity::Low => 2.1,
                Severity::Unknown => 0.0,
            };
            vulns.push(Vulnerability {
                vulnerability_id: format!("SIM-{sev}-{:04}", i + 1),
                pkg_name: format!("sim-lib{}", i % 3),
                installed_version: "1.0.0".into(),
                fixed_version: Some("1.0.1".into()),
                status: Some("fixed".into()),
                severity,
                title: Some(format!("simulated {sev} finding {}", i + 1)),
                primary_url: None,
                cvss: nvd(score),
            });
        }
    }
    vulns
}

/// How many findings of `severity` the scanner makes for a content (all of them, uncapped).
pub(crate) fn severity_count(profile: &ImageProfile, severity: Severity) -> u64 {
    let generated: u64 = profile
        .vulnerabilities
        .iter()
        .filter(|(s, _)| Severity::parse(s) == severity)
        .map(|(_, c)| u64::from(*c))
        .sum();
    let explicit = profile
        .findings
        .iter()
        .filter(|f| f.severity == severity)
        .count();
    generated.saturating_add(u64::try_from(explicit).unwrap_or(u64::MAX))
}

/// The image ID (config digest) Trivy reports for a content: made from its manifest digest, so
/// it differs from it as a real config digest does.
fn config_digest(digest: &str) -> String {
    default_digest(&format!("config of {digest}"))
}

/// The simulator's stand-in for Trivy: reports made from the [`Catalogue`] (explicit findings
/// and generated ones), labelled simulated everywhere they are shown. It scans any reference the
/// catalogue resolves, by tag or by digest, and reports the content's digest in
/// `Metadata.RepoDigests` as Trivy does.
#[derive(Debug, Clone, Default)]
pub struct CatalogueScanner {
    catalogue: Catalogue,
    seeded: Vec<String>,
}

impl CatalogueScanner {
    /// A scanner over a scenario's images (a catalogue of its own; use
    /// [`CatalogueScanner::from`] a [`Catalogue`] to share one).
    pub fn new(images: BTreeMap<String, ImageProfile>) -> Self {
        Catalogue::from_entries(images).into()
    }

    /// The catalogue it scans.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The `repo:tag` references of the catalogue when the scanner was made (the live list is
    /// [`Catalogue::references`]).
    pub fn images(&self) -> impl Iterator<Item = &String> {
        self.seeded.iter()
    }
}

impl From<Catalogue> for CatalogueScanner {
    fn from(catalogue: Catalogue) -> Self {
        let seeded = catalogue.references();
        Self { catalogue, seeded }
    }
}

#[async_trait]
impl ImageScanner for CatalogueScanner {
    async fn scan(&self, image: &str) -> std::result::Result<Arc<Report>, ScanError> {
        let (profile, by_tag) = match self.catalogue.resolution(image) {
            Resolution::Found(p, by_tag) => (p, by_tag),
            Resolution::UnknownTag => {
                return Err(ScanError::ImageNotFound {
                    image: image.to_owned(),
                    detail: "not in the simulator's image catalogue".into(),
                });
            }
            Resolution::UnknownDigest(r, d) => {
                return Err(ScanError::ImageNotFound {
                    image: image.to_owned(),
                    detail: format!(
                        "MANIFEST_UNKNOWN: manifest unknown: content {d} of {}/{} is not in the \
                         simulator's image catalogue",
                        r.registry, r.repository
                    ),
                });
            }
            Resolution::Invalid(e) => {
                return Err(ScanError::ImageNotFound {
                    image: image.to_owned(),
                    detail: e,
                });
            }
        };
        let digest = profile
            .digest
            .clone()
            .unwrap_or_else(|| default_digest(image));
        let repo_tags = ImageRef::parse(image)
            .ok()
            .filter(|_| by_tag)
            .map(|r| vec![r.with_tag(r.tag.as_deref().unwrap_or("latest"))])
            .unwrap_or_default();
        Ok(Arc::new(Report {
            schema_version: Some(2),
            created_at: None,
            artifact_name: image.to_owned(),
            artifact_type: Some("container_image".into()),
            metadata: Metadata {
                image_id: Some(config_digest(&digest)),
                repo_digests: vec![repo_digest(image, &digest)],
                repo_tags,
                ..Metadata::default()
            },
            results: vec![ScanResult {
                target: format!("{image} (simulated)"),
                class: Some("os-pkgs".into()),
                type_: Some("simulated".into()),
                vulnerabilities: vulnerabilities(&profile, u32::MAX),
                ..ScanResult::default()
            }],
        }))
    }

    fn simulated(&self) -> bool {
        true
    }
}

/// Tags and digests from the simulator's [`Catalogue`]: the tags of a repository now, and the
/// content a tag points at now.
#[derive(Debug, Clone, Default)]
pub struct CatalogueTags {
    catalogue: Catalogue,
}

impl CatalogueTags {
    /// Tags of these image references (a catalogue of their own, with default contents; use
    /// [`CatalogueTags::from`] a [`Catalogue`] to share one).
    pub fn new(images: impl IntoIterator<Item = String>) -> Self {
        Catalogue::from_entries(images.into_iter().map(|i| (i, ImageProfile::default()))).into()
    }
}

impl From<Catalogue> for CatalogueTags {
    fn from(catalogue: Catalogue) -> Self {
        Self { catalogue }
    }
}

#[async_trait]
impl TagLister for CatalogueTags {
    async fn tags(&self, image: &ImageRef) -> std::result::Result<Vec<String>, String> {
        Ok(self.catalogue.tags_of(image))
    }

    async fn digest(&self, image: &ImageRef) -> std::result::Result<Option<String>, String> {
        if let Some(d) = &image.digest {
            return Ok(Some(d.clone()));
        }
        let tag = image.tag.as_deref().unwrap_or("latest");
        self.catalogue
            .digest(&image.with_tag(tag))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "registry {} has no manifest for {}:{tag} (simulated catalogue); the \
                     registry said: MANIFEST_UNKNOWN: manifest unknown",
                    image.registry, image.repository
                )
            })
    }
}
