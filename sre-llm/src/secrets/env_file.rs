//! `env:NAME` and `file:/abs/path` sources.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Fetched, SecretError, SecretRef, SecretSource, pick};

/// Looks a variable up (the process environment by default).
type Lookup = Arc<dyn Fn(&str) -> Result<Option<String>, ()> + Send + Sync>;

/// `env:NAME`: the environment variable `NAME`, or with `#key` the key of the JSON object it
/// holds. An unset or empty variable is [`SecretError::NotFound`] naming it; one that is not
/// UTF-8 is [`SecretError::Invalid`]. The value has no lifetime of its own (the handle's TTL
/// applies).
#[derive(Clone)]
pub struct EnvSource {
    lookup: Lookup,
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnvSource")
    }
}

impl Default for EnvSource {
    fn default() -> Self {
        Self::new()
    }
}

impl EnvSource {
    /// A source over the process environment.
    pub fn new() -> Self {
        Self {
            lookup: Arc::new(|name| match std::env::var(name) {
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(()),
            }),
        }
    }

    /// A source over `lookup` instead of the process environment (tests, a config map).
    pub fn with_lookup(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(move |name| Ok(lookup(name))),
        }
    }
}

#[async_trait]
impl SecretSource for EnvSource {
    fn scheme(&self) -> &'static str {
        "env"
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let name = reference.path();
        if name.contains('=') || name.contains('\0') || name.trim() != name {
            return Err(SecretError::BadReference {
                reference: reference.to_string(),
                reason: format!(
                    "{name:?} is not an environment variable name (no '=', NUL or surrounding spaces)"
                ),
            });
        }
        let what = format!("environment variable {name}");
        match (self.lookup)(name) {
            Err(()) => Err(SecretError::invalid(
                reference,
                format!("{what} is not valid UTF-8"),
            )),
            Ok(None) => Err(SecretError::not_found(
                reference,
                format!("{what} is not set"),
            )),
            Ok(Some(v)) if v.is_empty() => Err(SecretError::not_found(
                reference,
                format!("{what} is set but empty"),
            )),
            Ok(Some(v)) => Ok(Fetched::new(pick(reference, v, &what)?)),
        }
    }
}

/// The largest secret file read: 64 KiB (a Kubernetes Secret is at most 1 MiB in all, and a key or
/// token is far smaller; a larger file is the wrong file).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// `file:/abs/path`: a file's content with one trailing newline (`\n` or `\r\n`) trimmed, or with
/// `#key` the key of the JSON object it holds. The value is valid for [`FileSource::refresh_after`]
/// (30 s by default), so a Secret that Kubernetes rotates behind a mounted path is read again soon.
///
/// A relative path is [`SecretError::BadReference`]; a missing file [`SecretError::NotFound`];
/// permission denied [`SecretError::Denied`]; a directory, a file over [`MAX_FILE_BYTES`] or one
/// that is not UTF-8 [`SecretError::Invalid`].
#[derive(Debug, Clone)]
pub struct FileSource {
    refresh_after: Duration,
}

impl Default for FileSource {
    fn default() -> Self {
        Self::new()
    }
}

impl FileSource {
    /// A source whose values are read again after 30 s.
    pub fn new() -> Self {
        Self {
            refresh_after: Duration::from_secs(30),
        }
    }

    /// How long a value read from a file is used before the file is read again.
    #[must_use]
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.refresh_after = after;
        self
    }
}

/// The error for an I/O failure reading `path`.
fn io_error(reference: &SecretRef, path: &Path, e: &io::Error) -> SecretError {
    let shown = path.display();
    match e.kind() {
        io::ErrorKind::NotFound => SecretError::not_found(reference, format!("no file {shown}")),
        io::ErrorKind::PermissionDenied => SecretError::denied(
            reference,
            format!(
                "permission denied reading {shown} (check the file's mode and the user the agent runs as)"
            ),
        ),
        io::ErrorKind::IsADirectory => {
            SecretError::invalid(reference, format!("{shown} is a directory, not a file"))
        }
        _ => SecretError::unavailable(reference, format!("reading {shown}: {e}")),
    }
}

/// Reads `path` (at most [`MAX_FILE_BYTES`]) and trims one trailing newline.
fn read_secret_file(reference: &SecretRef, path: &Path) -> Result<String, SecretError> {
    // Checked before opening: opening a FIFO blocks until a writer comes (the runtime thread
    // with it), and a device has no end. A mounted Secret is a symlink to a regular file.
    let meta = std::fs::metadata(path).map_err(|e| io_error(reference, path, &e))?;
    if meta.is_dir() {
        return Err(SecretError::invalid(
            reference,
            format!("{} is a directory, not a file", path.display()),
        ));
    }
    if !meta.is_file() {
        return Err(SecretError::invalid(
            reference,
            format!(
                "{} is not a regular file (a FIFO, socket or device is never read)",
                path.display()
            ),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| io_error(reference, path, &e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(reference, path, &e))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_BYTES {
        return Err(SecretError::invalid(
            reference,
            format!(
                "{} is larger than {MAX_FILE_BYTES} bytes: not a secret file",
                path.display()
            ),
        ));
    }
    let mut text = String::from_utf8(bytes).map_err(|e| {
        SecretError::invalid(
            reference,
            format!(
                "{} is not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    Ok(text)
}

#[async_trait]
impl SecretSource for FileSource {
    fn scheme(&self) -> &'static str {
        "file"
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let path = Path::new(reference.path());
        if !path.is_absolute() {
            return Err(SecretError::BadReference {
                reference: reference.to_string(),
                reason: format!(
                    "the path {:?} is relative: write an absolute path (file:/var/run/secrets/...)",
                    reference.path()
                ),
            });
        }
        // A blocking read of at most 64 KiB from a local (usually tmpfs) mount: cheaper than a
        // hop to a blocking thread.
        let text = read_secret_file(reference, path)?;
        let what = format!("the file {}", path.display());
        Ok(Fetched::new(pick(reference, text, &what)?).valid_for(self.refresh_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_kinds() {
        let r = SecretRef::parse("file:/s/k").unwrap();
        let p = Path::new("/s/k");
        let kind = |k: io::ErrorKind| io_error(&r, p, &io::Error::from(k));
        assert!(matches!(
            kind(io::ErrorKind::PermissionDenied),
            SecretError::Denied { .. }
        ));
        assert!(matches!(
            kind(io::ErrorKind::NotFound),
            SecretError::NotFound { .. }
        ));
        assert!(matches!(
            kind(io::ErrorKind::IsADirectory),
            SecretError::Invalid { .. }
        ));
        assert!(matches!(
            kind(io::ErrorKind::Interrupted),
            SecretError::Unavailable { .. }
        ));
        let denied = kind(io::ErrorKind::PermissionDenied).to_string();
        assert_eq!(
            denied,
            "secret file:/s/k: access denied: permission denied reading /s/k (check the file's mode and the user the agent runs as)"
        );
    }

    #[cfg(unix)]
    #[test]
    fn an_os_permission_error_is_denied() {
        // EACCES as the OS reports it (root reads any file, so a test cannot provoke it).
        let r = SecretRef::parse("file:/s/k").unwrap();
        let e = io::Error::from_raw_os_error(13);
        assert!(matches!(
            io_error(&r, Path::new("/s/k"), &e),
            SecretError::Denied { .. }
        ));
    }
}
