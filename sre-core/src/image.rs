//! Container image references, parsed the way container runtimes parse them.
//!
//! The grammar is the distribution project's (`[domain/]path[:tag][@digest]`), and the domain is
//! split off the way Docker and containerd do it: the first path component is a registry host when
//! it contains `.` or `:`, is `localhost`, or has an upper-case letter. A reference that is not
//! canonical — surrounding white space, control characters, upper case in the repository path, an
//! empty tag — is an error, never "cleaned up", so an allow-list compares exactly what a runtime
//! would pull. [`ImageRef::repository`] is the normalised form (`nginx` →
//! `docker.io/library/nginx`, `Localhost/app` → `localhost/app`).
//!
//! ```
//! use sre_core::image::ImageRef;
//! let r = ImageRef::parse("ghcr.io/acme/api:1.4.2").unwrap();
//! assert_eq!(r.repository(), "ghcr.io/acme/api");
//! assert_eq!(ImageRef::parse("nginx").unwrap().repository(), "docker.io/library/nginx");
//! assert!(ImageRef::parse(" localhost/app:1").is_err());
//! ```

use std::fmt;

/// Longest image name (domain and path) container runtimes accept.
pub const MAX_NAME_LEN: usize = 255;

/// A parsed, canonical image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a string is not a canonical image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reference:?} is not a valid image reference: {reason}")]
pub struct ImageRefError {
    /// The reference as given, escaped for display.
    pub reference: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(reference: &str, reason: impl Into<String>) -> ImageRefError {
    ImageRefError {
        reference: crate::text::escape_untrusted(reference).into_owned(),
        reason: reason.into(),
    }
}

/// `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`
fn domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // [IPv6]:port
        let Some((inner, after)) = rest.split_once(']') else {
            return false;
        };
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("", Some(p)),
            None if after.is_empty() => ("", None),
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => {
                if h.is_empty() {
                    return false;
                }
                (h, Some(p))
            }
            None => (domain, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    host.is_empty() && domain.starts_with('[') || host.split('.').all(domain_component)
}

/// `[a-z0-9]+(([_.]|__|[-]+)[a-z0-9]+)*`
fn path_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or a run of '-'.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_lower_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `algorithm:hex` with a known algorithm and the right length.
fn valid_digest(digest: &str) -> Result<(), String> {
    let Some((alg, hex)) = digest.split_once(':') else {
        return Err("the digest has no algorithm (expected sha256:<64 hex digits>)".into());
    };
    let want = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => {
            return Err(format!(
                "unsupported digest algorithm {other:?} (expected sha256, sha384 or sha512)"
            ));
        }
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(format!(
            "a {alg} digest is {want} lower-case hex digits, got {:?}",
            crate::text::escape_untrusted(hex)
        ));
    }
    Ok(())
}

impl ImageRef {
    /// Parses a reference exactly as written: nothing is trimmed or case-folded except the
    /// registry host, which DNS treats case-insensitively.
    ///
    /// # Errors
    /// [`ImageRefError`] naming what is wrong: white space or control characters, an empty or
    /// malformed part, upper case in the repository path, a bad tag or digest, or a name over
    /// [`MAX_NAME_LEN`] characters.
    pub fn parse(reference: &str) -> Result<Self, ImageRefError> {
        if reference.is_empty() {
            return Err(err(reference, "it is empty"));
        }
        if let Some(c) = reference
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || crate::text::is_invisible(*c))
        {
            return Err(err(
                reference,
                format!(
                    "it contains {} (white space, control and invisible characters are not allowed)",
                    crate::text::describe_char(c)
                ),
            ));
        }
        if !reference.is_ascii() {
            return Err(err(reference, "it contains non-ASCII characters"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => {
                valid_digest(d).map_err(|reason| err(reference, reason))?;
                (r, Some(d.to_owned()))
            }
            None => (reference, None),
        };
        // A tag is what follows the last ':' when no '/' follows it.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(err(
                reference,
                format!(
                    "tag {t:?} is not valid (1 to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-')"
                ),
            ));
        }
        if name.is_empty() {
            return Err(err(reference, "the repository name is empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(err(
                reference,
                format!("the name is longer than {MAX_NAME_LEN} characters"),
            ));
        }
        // Docker's and containerd's rule for where the registry host ends.
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|c| c.is_ascii_uppercase()) =>
            {
                if !valid_domain(first) {
                    return Err(err(
                        reference,
                        format!("registry host {first:?} is not a valid host[:port]"),
                    ));
                }
                (first.to_ascii_lowercase(), remainder.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let domain = match domain.as_str() {
            "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
            _ => domain,
        };
        if let Some(bad) = path.split('/').find(|c| !path_component(c)) {
            return Err(err(
                reference,
                if bad.bytes().any(|c| c.is_ascii_uppercase()) {
                    format!("repository path component {bad:?} must be lower case")
                } else {
                    format!(
                        "repository path component {bad:?} is not valid (lower-case letters and digits, separated by '.', '_', '__' or '-')"
                    )
                },
            ));
        }
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Self {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry host (lower case; `docker.io` for Docker Hub).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry (`library/nginx` on Docker Hub).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The fully qualified repository: `docker.io/library/nginx`, `ghcr.io/acme/api`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// True when the repository is `prefix` or lies below it (`ghcr.io/acme` covers
    /// `ghcr.io/acme/api` but not `ghcr.io/acme-evil/api`). `prefix` is normalised with
    /// [`normalize_prefix`] by the caller.
    pub fn is_under(&self, prefix: &str) -> bool {
        let repo = self.repository();
        repo == prefix
            || repo
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for ImageRef {
    /// The fully qualified form: `docker.io/library/nginx:1.25@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Normalises an allow-list entry: a registry host (`ghcr.io`, `localhost:5000`) or a repository
/// prefix (`ghcr.io/acme`, `docker.io/library`, or Docker Hub short forms such as `library` or
/// `bitnami`, which mean `docker.io/…`). Trailing `/` are dropped and the host is lower-cased.
///
/// # Errors
/// An entry with white space, control characters or an invalid host or path.
pub fn normalize_prefix(entry: &str) -> Result<String, ImageRefError> {
    let trimmed = entry.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(err(entry, "the allow-list entry is empty"));
    }
    if let Some(c) = trimmed
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || crate::text::is_invisible(*c))
    {
        return Err(err(
            entry,
            format!(
                "the allow-list entry contains {}",
                crate::text::describe_char(c)
            ),
        ));
    }
    let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let is_host = first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|c| c.is_ascii_uppercase());
    let (domain, path) = if is_host {
        if !valid_domain(first) {
            return Err(err(
                entry,
                format!("{first:?} is not a valid registry host"),
            ));
        }
        let d = first.to_ascii_lowercase();
        let d = match d.as_str() {
            "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
            _ => d,
        };
        (d, rest)
    } else {
        ("docker.io".to_owned(), trimmed)
    };
    if !path.is_empty()
        && let Some(bad) = path.split('/').find(|c| !path_component(c))
    {
        return Err(err(
            entry,
            format!("repository path component {bad:?} is not valid (lower case, no white space)"),
        ));
    }
    Ok(if path.is_empty() {
        domain
    } else {
        format!("{domain}/{path}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> String {
        ImageRef::parse(s).unwrap().repository()
    }

    #[test]
    fn normalises_like_container_runtimes() {
        assert_eq!(repo("nginx"), "docker.io/library/nginx");
        assert_eq!(repo("nginx:1.25"), "docker.io/library/nginx");
        assert_eq!(repo("bitnami/redis:7"), "docker.io/bitnami/redis");
        assert_eq!(
            repo("index.docker.io/library/nginx:1"),
            "docker.io/library/nginx"
        );
        assert_eq!(
            repo(&format!("localhost:5000/app:1@sha256:{}", "0".repeat(64))),
            "localhost:5000/app"
        );
        assert_eq!(
            repo(&format!("ghcr.io/acme/api@sha256:{}", "a".repeat(64))),
            "ghcr.io/acme/api"
        );
        assert_eq!(repo("localhost/app"), "localhost/app");
        // An upper-case first component is a registry host (Docker's rule), compared lower-cased.
        assert_eq!(repo("Localhost/app:1"), "localhost/app");
        assert_eq!(repo("GHCR.io/acme/api:1"), "ghcr.io/acme/api");
        let r = ImageRef::parse("ghcr.io/acme/api:1.4.2").unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("ghcr.io", "acme/api", Some("1.4.2"))
        );
    }

    #[test]
    fn rejects_non_canonical_references() {
        for bad in [
            "",
            " localhost/app:1",
            "localhost/app:1 ",
            "nginx\t",
            "nginx:1.25\u{1b}[2K",
            "nginx:1\u{9b}31m",
            "ngi\u{202e}nx",
            "ngi\u{200b}nx",
            "Nginx",
            "docker.io/Library/nginx",
            "nginx:",
            "nginx:.hidden",
            "nginx@sha256:abc",
            "nginx@md5:0123",
            "ghcr.io//api",
            "ghcr.io/acme/api/",
            "-bad.io/x",
            "bad..io/x",
            "nginx:1@sha256:ABCD",
            "ñginx",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        let e = ImageRef::parse("nginx\u{1b}[31m").unwrap_err().to_string();
        assert!(
            !e.contains('\u{1b}'),
            "the error escapes the control character: {e}"
        );
    }

    #[test]
    fn allow_list_prefixes_match_whole_path_components() {
        let p = normalize_prefix("ghcr.io/acme/").unwrap();
        assert!(ImageRef::parse("ghcr.io/acme/api:1").unwrap().is_under(&p));
        assert!(
            !ImageRef::parse("ghcr.io/acme-evil/api:1")
                .unwrap()
                .is_under(&p)
        );
        let hub = normalize_prefix("docker.io/library").unwrap();
        assert!(ImageRef::parse("nginx:1").unwrap().is_under(&hub));
        assert!(!ImageRef::parse("Localhost/nginx:1").unwrap().is_under(&hub));
        assert_eq!(normalize_prefix("GHCR.IO").unwrap(), "ghcr.io");
        assert_eq!(normalize_prefix("bitnami").unwrap(), "docker.io/bitnami");
        assert!(normalize_prefix(" ghcr.io").is_err());
    }
}
