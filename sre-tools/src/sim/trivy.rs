//! The simulator's stand-ins for Trivy and the registry: scans made from the scenario's image
//! catalogue (labelled simulated everywhere they are shown) and tags listed from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::scenario::ImageProfile;
use crate::trivy::registry::{ImageRef, TagLister};
use crate::trivy::report::{Cvss, Metadata, Report, ScanResult, Severity, Vulnerability};
use crate::trivy::scanner::{ImageScanner, ScanError};

/// The simulator's stand-in for Trivy: reports made from the scenario's image catalogue
/// (severity counts), labelled simulated everywhere they are shown.
#[derive(Debug, Clone, Default)]
pub struct CatalogueScanner {
    images: BTreeMap<String, ImageProfile>,
}

impl CatalogueScanner {
    /// A scanner over a scenario's images.
    pub fn new(images: BTreeMap<String, ImageProfile>) -> Self {
        Self { images }
    }

    /// The catalogue's image references.
    pub fn images(&self) -> impl Iterator<Item = &String> {
        self.images.keys()
    }
}

#[async_trait]
impl ImageScanner for CatalogueScanner {
    async fn scan(&self, image: &str) -> Result<Arc<Report>, ScanError> {
        let Some(profile) = self.images.get(image) else {
            return Err(ScanError::ImageNotFound {
                image: image.to_owned(),
                detail: "not in the simulator's image catalogue".into(),
            });
        };
        let mut vulns = Vec::new();
        for (sev, count) in &profile.vulnerabilities {
            let severity = Severity::parse(sev);
            for i in 0..*count {
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
                    cvss: BTreeMap::from([(
                        "nvd".into(),
                        Cvss {
                            v3_score: Some(score),
                            v2_score: None,
                        },
                    )]),
                });
            }
        }
        Ok(Arc::new(Report {
            schema_version: Some(2),
            created_at: None,
            artifact_name: image.to_owned(),
            artifact_type: Some("container_image".into()),
            metadata: Metadata::default(),
            results: vec![ScanResult {
                target: format!("{image} (simulated)"),
                class: Some("os-pkgs".into()),
                type_: Some("simulated".into()),
                vulnerabilities: vulns,
                ..ScanResult::default()
            }],
        }))
    }

    fn simulated(&self) -> bool {
        true
    }
}

/// Tags from the simulator's catalogue (images of the same repository).
#[derive(Debug, Clone, Default)]
pub struct CatalogueTags {
    images: Vec<String>,
}

impl CatalogueTags {
    /// Tags of these image references.
    pub fn new(images: impl IntoIterator<Item = String>) -> Self {
        Self {
            images: images.into_iter().collect(),
        }
    }
}

#[async_trait]
impl TagLister for CatalogueTags {
    async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, String> {
        Ok(self
            .images
            .iter()
            .filter_map(|i| ImageRef::parse(i).ok())
            .filter(|r| r.registry == image.registry && r.repository == image.repository)
            .filter_map(|r| r.tag)
            .collect())
    }
}
