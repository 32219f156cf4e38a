//! Scanning images: the [`ImageScanner`] contract and the real `trivy` CLI ([`TrivyCli`], local or
//! client/server mode, with a timeout and a per-image cache). The simulator's stand-in lives in
//! `sim::trivy` (feature `sim`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::report::{Report, Severity};

/// Why a scan failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The trivy binary is missing.
    #[error(
        "trivy is not installed (no executable at {binary:?}): install Trivy (your OS packages or its release binaries) and put it on PATH, pass its path, or point the scanner at a Trivy server (--server URL)"
    )]
    NotInstalled {
        /// The binary that was tried.
        binary: String,
    },
    /// The image does not exist.
    #[error("image {image} was not found in its registry: check the name and tag ({detail})")]
    ImageNotFound {
        /// The image.
        image: String,
        /// Trivy's words.
        detail: String,
    },
    /// The registry refused the credentials.
    #[error(
        "registry refused access to {image}: log in (docker login / TRIVY_USERNAME and TRIVY_PASSWORD) or use a public image ({detail})"
    )]
    RegistryAuth {
        /// The image.
        image: String,
        /// Trivy's words.
        detail: String,
    },
    /// The scan took too long; the process was killed.
    #[error("trivy scan of {image} timed out after {}s; the process was killed", timeout.as_secs())]
    Timeout {
        /// The image.
        image: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Trivy exited with an error.
    #[error("trivy failed on {image} (exit code {code}): {stderr}")]
    Failed {
        /// The image.
        image: String,
        /// Exit code (-1 when killed by a signal).
        code: i32,
        /// The end of its stderr.
        stderr: String,
    },
    /// Trivy's output was not a report.
    #[error("trivy output for {image} is not a JSON report: {detail}")]
    InvalidJson {
        /// The image.
        image: String,
        /// The parser's message.
        detail: String,
    },
    /// The stand-in scanner does not know the image.
    #[error("{0}")]
    Unknown(String),
}

/// Scans an image. The real one runs Trivy; the simulator's reads its catalogue.
#[async_trait]
pub trait ImageScanner: Send + Sync {
    /// The report for `image`.
    async fn scan(&self, image: &str) -> Result<Arc<Report>, ScanError>;

    /// A report made now, never a cached one (the verification after a patch). Default:
    /// [`ImageScanner::scan`], for scanners that do not cache.
    async fn scan_fresh(&self, image: &str) -> Result<Arc<Report>, ScanError> {
        self.scan(image).await
    }

    /// True when the findings are simulated (shown as such in every output).
    fn simulated(&self) -> bool {
        false
    }
}

#[async_trait]
impl<T: ImageScanner + ?Sized> ImageScanner for Arc<T> {
    async fn scan(&self, image: &str) -> Result<Arc<Report>, ScanError> {
        (**self).scan(image).await
    }
    async fn scan_fresh(&self, image: &str) -> Result<Arc<Report>, ScanError> {
        (**self).scan_fresh(image).await
    }
    fn simulated(&self) -> bool {
        (**self).simulated()
    }
}

/// The `trivy image --format json --quiet` scanner.
#[derive(Debug)]
pub struct TrivyCli {
    /// The executable (default `trivy`, found on PATH).
    pub binary: PathBuf,
    /// A Trivy server for client/server mode (`--server URL`).
    pub server: Option<String>,
    /// Kill the scan after this long (default 5 minutes).
    pub timeout: Duration,
    /// Only these severities (`--severity`); empty for all.
    pub severities: Vec<Severity>,
    /// How long a result is reused (default 1 hour).
    pub cache_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Arc<Report>)>>,
}

impl Default for TrivyCli {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("trivy"),
            server: None,
            timeout: Duration::from_secs(300),
            severities: Vec::new(),
            cache_ttl: Duration::from_secs(3600),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join(" | ")
}

impl TrivyCli {
    /// A scanner running `binary` with the defaults (local mode, 5 minute timeout, 1 hour cache).
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            ..Self::default()
        }
    }

    /// The arguments of a scan of `image`.
    pub fn args(&self, image: &str) -> Vec<String> {
        let mut args: Vec<String> = ["image", "--format", "json", "--quiet"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if let Some(server) = &self.server {
            args.push("--server".into());
            args.push(server.clone());
        }
        if !self.severities.is_empty() {
            args.push("--severity".into());
            args.push(
                self.severities
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        args.push(image.to_owned());
        args
    }

    /// Starts trivy. "Text file busy" (the executable was just written, e.g. while trivy is being
    /// upgraded, and a concurrent fork still holds it open) is retried briefly.
    async fn spawn(&self, image: &str) -> Result<tokio::process::Child, ScanError> {
        const ETXTBSY: i32 = 26;
        // The image goes on trivy's command line: it must be a canonical reference, never
        // something trivy would read as a flag (`--output=…`).
        if let Err(e) = sre_core::image::ImageRef::parse(image) {
            return Err(ScanError::Failed {
                image: sre_core::text::escape_untrusted(image).into_owned(),
                code: -1,
                stderr: format!("refused to run trivy: {e}"),
            });
        }
        let mut attempt = 0;
        loop {
            let spawned = tokio::process::Command::new(&self.binary)
                .args(self.args(image))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn();
            match spawned {
                Ok(child) => return Ok(child),
                Err(e) if e.raw_os_error() == Some(ETXTBSY) && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                Err(e) => {
                    return Err(match e.kind() {
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                            ScanError::NotInstalled {
                                binary: self.binary.display().to_string(),
                            }
                        }
                        _ => ScanError::Failed {
                            image: image.to_owned(),
                            code: -1,
                            stderr: format!("cannot start {}: {e}", self.binary.display()),
                        },
                    });
                }
            }
        }
    }

    fn cached(&self, image: &str) -> Option<Arc<Report>> {
        let cache = self.cache.lock().ok()?;
        let (at, r) = cache.get(image)?;
        (at.elapsed() < self.cache_ttl).then(|| Arc::clone(r))
    }

    async fn run(&self, image: &str) -> Result<Arc<Report>, ScanError> {
        let mut child = self.spawn(image).await?;
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let io = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let read_out = async {
                if let Some(s) = stdout.as_mut() {
                    let _ = s.read_to_end(&mut out).await;
                }
            };
            let read_err = async {
                if let Some(s) = stderr.as_mut() {
                    let _ = s.read_to_end(&mut err).await;
                }
            };
            tokio::join!(read_out, read_err);
            let status = child.wait().await;
            (out, err, status)
        };
        // On timeout, dropping the future drops the child, which kill_on_drop kills.
        let Ok((out, err, status)) = tokio::time::timeout(self.timeout, io).await else {
            return Err(ScanError::Timeout {
                image: image.to_owned(),
                timeout: self.timeout,
            });
        };
        let err = String::from_utf8_lossy(&err).into_owned();
        let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
        if code != 0 {
            let detail = tail(&err, 3);
            let lower = err.to_ascii_lowercase();
            if lower.contains("manifest_unknown")
                || lower.contains("manifest unknown")
                || lower.contains("not found") && lower.contains("image")
            {
                return Err(ScanError::ImageNotFound {
                    image: image.to_owned(),
                    detail,
                });
            }
            if lower.contains("unauthorized")
                || lower.contains("authentication required")
                || lower.contains("denied")
            {
                return Err(ScanError::RegistryAuth {
                    image: image.to_owned(),
                    detail,
                });
            }
            return Err(ScanError::Failed {
                image: image.to_owned(),
                code,
                stderr: detail,
            });
        }
        let report = Report::from_json(&out).map_err(|e| ScanError::InvalidJson {
            image: image.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(Arc::new(report))
    }
}

#[async_trait]
impl ImageScanner for TrivyCli {
    async fn scan(&self, image: &str) -> Result<Arc<Report>, ScanError> {
        if let Some(r) = self.cached(image) {
            return Ok(r);
        }
        self.scan_fresh(image).await
    }

    async fn scan_fresh(&self, image: &str) -> Result<Arc<Report>, ScanError> {
        let report = self.run(image).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(image.to_owned(), (Instant::now(), Arc::clone(&report)));
            for digest in &report.metadata.repo_digests {
                cache.insert(digest.clone(), (Instant::now(), Arc::clone(&report)));
            }
        }
        Ok(report)
    }
}
