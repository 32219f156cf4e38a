//! A hash-chained JSON Lines audit trail, optionally keyed, and [`verify`] / [`verify_with`] to
//! check it.
//!
//! Each line is
//! `{"seq":N,"ts":"…","prev":"<chain value of line N-1>","event":{…},"alg":"…","hash":"<chain value>"}`
//! where the chain value is computed over `seq "\n" ts "\n" prev "\n" canonical(event)`:
//!
//! - `"alg":"sha256"` (an unkeyed log; also assumed when `alg` is absent, as in logs written before
//!   keys existed): `hash = sha256(…)`. Editing, deleting, inserting or reordering a line breaks the
//!   chain at that line — but anyone can recompute every hash after an edit (a *rebuilt* chain).
//! - `"alg":"hmac-sha256"` (a keyed log, [`AuditLog::keyed`]): `hash = HMAC-SHA256(key, …)`. Without
//!   the [`AuditKey`] nobody can rebuild the chain, so an edit is found even when every later hash
//!   was recomputed.
//!
//! Every record of a log uses the same `alg`. A keyed log checked without a key is
//! [`AuditError::KeyRequired`]; an unkeyed log checked with a key is [`AuditError::NotKeyed`] (it
//! may be a keyed log rewritten without its key).
//!
//! Cutting lines off the end cannot be seen from the file alone: keep the head (the last chain
//! value, [`AuditLog::head`] or [`AuditSummary::head`]) somewhere else — the run report, a ticket,
//! another system — and pass it as [`VerifyOptions::expected_head`] to detect it.
//!
//! ```no_run
//! use std::io::BufReader;
//! use sre_core::audit::{self, AuditKey, VerifyOptions};
//!
//! # fn main() -> Result<(), sre_core::AuditError> {
//! let key = AuditKey::from_env("SRE_AUDIT_KEY")?;
//! let options = VerifyOptions {
//!     key: Some(key),
//!     expected_head: Some("9f2c…the head the run report printed".to_owned()),
//! };
//! let file = std::fs::File::open("audit.jsonl")?;
//! let summary = audit::verify_with(BufReader::new(file), &options)?;
//! println!("{} records, head {}", summary.records, summary.head);
//! # Ok(())
//! # }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canon::now_rfc3339;
use crate::event::{Event, Observer};

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `alg` of an unkeyed record (and of a record without `alg`, written before keys existed).
pub const UNKEYED_ALG: &str = "sha256";

/// The `alg` of a keyed record.
pub const KEYED_ALG: &str = "hmac-sha256";

/// An audit problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing the file failed.
    #[error("audit log i/o failed: {0}")]
    Io(#[from] std::io::Error),
    /// The chain is broken at `line` (1-based).
    #[error("audit log tampered at line {line}: {reason}")]
    Tampered {
        /// The first line that does not verify.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The chain is intact but does not end at the expected head: records were cut off the end,
    /// the whole chain was rebuilt, or (when `found_at` is set) records were appended after it.
    #[error("{}", head_mismatch(*.records, .head, .expected, *.found_at))]
    HeadMismatch {
        /// Records in the log.
        records: usize,
        /// The log's head (its last chain value).
        head: String,
        /// The head that was expected.
        expected: String,
        /// The record whose chain value is the expected head, when the log goes on after it.
        found_at: Option<usize>,
    },
    /// The log is keyed and no key was given.
    #[error(
        "audit log is keyed ({KEYED_ALG}): it can only be verified or continued with the key it was written with"
    )]
    KeyRequired,
    /// A key was given but the log is not keyed.
    #[error(
        "audit log is not keyed, but a key was given: anyone can rebuild its plain {UNKEYED_ALG} chain, so it proves nothing about the key (was a keyed log rewritten without its key?)"
    )]
    NotKeyed,
    /// The audit key could not be loaded. The message never contains the key.
    #[error("audit key from {from} is unusable: {reason}")]
    Key {
        /// Where the key was to come from (`file PATH`, `environment variable NAME`).
        from: String,
        /// What is wrong.
        reason: String,
    },
}

fn head_mismatch(records: usize, head: &str, expected: &str, found_at: Option<usize>) -> String {
    match found_at {
        Some(at) => format!(
            "audit log ends at record {records} with head {head}, expected head {expected}, which is record {at}: {} records were appended after it",
            records - at
        ),
        None => format!(
            "audit log ends at record {records} with head {head}, expected head {expected}: records were removed from the end or the log was rebuilt"
        ),
    }
}

/// What [`verify`] found in an intact log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditSummary {
    /// Number of records.
    pub records: usize,
    /// Chain value of the last record ([`GENESIS`] for an empty log): the anchor to keep elsewhere.
    pub head: String,
    /// True when the records are keyed ([`KEYED_ALG`]); false for an unkeyed or empty log.
    pub keyed: bool,
}

/// The secret that keys an audit log's chain (HMAC-SHA256).
///
/// Only the HMAC state derived from it is kept, never the key itself; `Debug` and every error show
/// where the key came from, never its bytes. A trailing newline (`\n` or `\r\n`) is not part of the
/// key, so `openssl rand -hex 32 > audit.key` and `export SRE_AUDIT_KEY=$(cat audit.key)` give the
/// same key.
#[derive(Clone)]
pub struct AuditKey {
    mac: Hmac<Sha256>,
    from: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// The shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key from bytes held by the caller.
    ///
    /// # Errors
    /// [`AuditError::Key`] when the key is shorter than [`MIN_LEN`](Self::MIN_LEN).
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Self, AuditError> {
        Self::with_source(bytes.as_ref(), "memory".to_owned())
    }

    /// Reads the key from a file.
    ///
    /// # Errors
    /// [`AuditError::Key`] naming the file when it cannot be read or the key is too short.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref();
        let from = format!("file {}", path.display());
        match std::fs::read(path) {
            Ok(bytes) => Self::with_source(&bytes, from),
            Err(e) => Err(AuditError::Key {
                from,
                reason: format!("cannot read it: {e}"),
            }),
        }
    }

    /// Reads the key from the environment variable `name`.
    ///
    /// # Errors
    /// [`AuditError::Key`] naming the variable when it is not set, not UTF-8 or too short.
    pub fn from_env(name: &str) -> Result<Self, AuditError> {
        let from = format!("environment variable {name}");
        let reason = match std::env::var_os(name).map(std::ffi::OsString::into_string) {
            Some(Ok(value)) => return Self::with_source(value.as_bytes(), from),
            // Never the value: it is the secret.
            Some(Err(_)) => "its value is not valid UTF-8",
            None => "it is not set",
        };
        Err(AuditError::Key {
            from,
            reason: reason.to_owned(),
        })
    }

    fn with_source(bytes: &[u8], from: String) -> Result<Self, AuditError> {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.len() < Self::MIN_LEN {
            return Err(AuditError::Key {
                from,
                reason: format!(
                    "it is {} bytes long; use at least {} (for example `openssl rand -hex 32`)",
                    bytes.len(),
                    Self::MIN_LEN
                ),
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(bytes).map_err(|e| AuditError::Key {
            from: from.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { mac, from })
    }

    /// Where the key came from: `file PATH`, `environment variable NAME` or `memory`.
    pub fn source(&self) -> &str {
        &self.from
    }
}

/// Options of [`verify_with`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The key the log was written with; `None` for an unkeyed log.
    pub key: Option<AuditKey>,
    /// The head kept elsewhere (hex, any case); the log must end there.
    pub expected_head: Option<String>,
}

pub use crate::canon::canonical_json;

/// How chain values are computed: plain SHA-256, or HMAC-SHA256 under a key.
#[derive(Clone)]
enum Chainer {
    Plain,
    Keyed(Hmac<Sha256>),
}

impl Chainer {
    fn new(key: Option<&AuditKey>) -> Self {
        key.map_or(Self::Plain, |k| Self::Keyed(k.mac.clone()))
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Plain => UNKEYED_ALG,
            Self::Keyed(_) => KEYED_ALG,
        }
    }

    fn is_keyed(&self) -> bool {
        matches!(self, Self::Keyed(_))
    }

    fn value(&self, seq: u64, ts: &str, prev: &str, event_canonical: &str) -> String {
        let seq = seq.to_string();
        let parts = [
            seq.as_bytes(),
            b"\n",
            ts.as_bytes(),
            b"\n",
            prev.as_bytes(),
            b"\n",
            event_canonical.as_bytes(),
        ];
        match self {
            Self::Plain => {
                let mut h = Sha256::new();
                for p in parts {
                    h.update(p);
                }
                hex::encode(h.finalize())
            }
            Self::Keyed(mac) => {
                let mut m = mac.clone();
                for p in parts {
                    m.update(p);
                }
                hex::encode(m.finalize().into_bytes())
            }
        }
    }
}

struct Chain {
    out: Box<dyn Write + Send>,
    seq: u64,
    head: String,
    chainer: Chainer,
    failed: Option<String>,
}

/// An [`Observer`] that appends every event to a hash-chained JSON Lines file, keyed or not.
pub struct AuditLog {
    chain: Mutex<Chain>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("head", &self.head())
            .field("keyed", &self.is_keyed())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// A new unkeyed chain written to `out`, starting at [`GENESIS`].
    pub fn new(out: impl Write + Send + 'static) -> Self {
        Self::start(Box::new(out), 0, GENESIS.to_owned(), Chainer::Plain)
    }

    /// A new chain keyed with `key` (HMAC-SHA256), written to `out`, starting at [`GENESIS`].
    pub fn keyed(out: impl Write + Send + 'static, key: AuditKey) -> Self {
        Self::start(
            Box::new(out),
            0,
            GENESIS.to_owned(),
            Chainer::Keyed(key.mac),
        )
    }

    fn start(out: Box<dyn Write + Send>, seq: u64, head: String, chainer: Chainer) -> Self {
        Self {
            chain: Mutex::new(Chain {
                out,
                seq,
                head,
                chainer,
                failed: None,
            }),
        }
    }

    /// Opens `path` for appending, continuing its unkeyed chain. An existing file must verify first.
    ///
    /// # Errors
    /// When the file cannot be read or written, its chain is broken, or it is keyed
    /// ([`AuditError::KeyRequired`]); nothing is appended then.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_with(path.as_ref(), None)
    }

    /// Opens `path` for appending, continuing its chain keyed with `key`. An existing file must
    /// verify with that key first.
    ///
    /// # Errors
    /// When the file cannot be read or written, its chain is broken or was written with another key
    /// ([`AuditError::Tampered`] at line 1), or it is not keyed ([`AuditError::NotKeyed`]); nothing
    /// is appended then.
    pub fn open_keyed(path: impl AsRef<Path>, key: AuditKey) -> Result<Self, AuditError> {
        Self::open_with(path.as_ref(), Some(key))
    }

    fn open_with(path: &Path, key: Option<AuditKey>) -> Result<Self, AuditError> {
        let chainer = Chainer::new(key.as_ref());
        let options = VerifyOptions {
            key,
            expected_head: None,
        };
        let (records, head) = match File::open(path) {
            Ok(f) => {
                let s = verify_with(BufReader::new(f), &options)?;
                (s.records, s.head)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, GENESIS.to_owned()),
            Err(e) => return Err(e.into()),
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::start(Box::new(file), records as u64, head, chainer))
    }

    /// Appends one event.
    ///
    /// # Errors
    /// When the event cannot be serialized or written.
    pub fn append(&self, event: &Event) -> Result<(), AuditError> {
        let value = serde_json::to_value(event).map_err(std::io::Error::other)?;
        let canonical = canonical_json(&value);
        let ts = now_rfc3339();
        let mut chain = self
            .chain
            .lock()
            .map_err(|_| std::io::Error::other("audit log lock poisoned"))?;
        let seq = chain.seq + 1;
        let hash = chain.chainer.value(seq, &ts, &chain.head, &canonical);
        let line = format!(
            "{{\"seq\":{seq},\"ts\":{},\"prev\":\"{}\",\"event\":{canonical},\"alg\":\"{}\",\"hash\":\"{hash}\"}}\n",
            Value::String(ts.clone()),
            chain.head,
            chain.chainer.alg(),
        );
        chain.out.write_all(line.as_bytes())?;
        chain.out.flush()?;
        chain.seq = seq;
        chain.head = hash;
        Ok(())
    }

    /// Chain value of the last record written ([`GENESIS`] before the first): the anchor to keep
    /// elsewhere and pass as [`VerifyOptions::expected_head`].
    pub fn head(&self) -> String {
        self.chain
            .lock()
            .map(|c| c.head.clone())
            .unwrap_or_default()
    }

    /// True when the chain is keyed.
    pub fn is_keyed(&self) -> bool {
        self.chain.lock().is_ok_and(|c| c.chainer.is_keyed())
    }

    /// Records in the log (including those of an opened file), its head and its mode.
    pub fn summary(&self) -> AuditSummary {
        self.chain.lock().map_or_else(
            |_| AuditSummary {
                records: 0,
                head: String::new(),
                keyed: false,
            },
            |c| AuditSummary {
                records: usize::try_from(c.seq).unwrap_or(usize::MAX),
                head: c.head.clone(),
                keyed: c.chainer.is_keyed(),
            },
        )
    }

    /// The first write error, if any happened while observing (observers cannot return errors).
    pub fn failure(&self) -> Option<String> {
        self.chain.lock().ok().and_then(|c| c.failed.clone())
    }
}

impl Observer for AuditLog {
    fn on_event(&self, event: &Event) {
        if let Err(e) = self.append(event) {
            tracing::error!(error = %e, "audit log write failed");
            if let Ok(mut c) = self.chain.lock() {
                c.failed.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Checks a whole unkeyed audit log and returns its length and head: [`verify_with`] without a
/// key or an expected head.
///
/// # Errors
/// [`AuditError::Tampered`] naming the first line that does not verify (edited, inserted, deleted
/// before it, or out of order), [`AuditError::KeyRequired`] for a keyed log, or
/// [`AuditError::Io`].
pub fn verify(reader: impl BufRead) -> Result<AuditSummary, AuditError> {
    verify_with(reader, &VerifyOptions::default())
}

/// Checks a whole audit log — with the key it was written with, if any, and against the head kept
/// elsewhere, if given — and returns its length, head and mode.
///
/// # Errors
/// - [`AuditError::Tampered`] naming the first line that does not verify: edited, inserted,
///   deleted before it, out of order, of another mode than line 1, or (keyed) not computed with
///   this key — a chain rebuilt without the key fails at its first rebuilt line, and a wrong key
///   at line 1;
/// - [`AuditError::KeyRequired`] for a keyed log without `options.key`;
/// - [`AuditError::NotKeyed`] for an unkeyed log with `options.key`;
/// - [`AuditError::HeadMismatch`] when the chain is intact but does not end at
///   `options.expected_head` (records cut off the end, or the chain rebuilt);
/// - [`AuditError::Io`].
pub fn verify_with(
    reader: impl BufRead,
    options: &VerifyOptions,
) -> Result<AuditSummary, AuditError> {
    let expected = options
        .expected_head
        .as_deref()
        .map(|h| h.trim().to_ascii_lowercase());
    let mut found_at = (expected.as_deref() == Some(GENESIS)).then_some(0);
    let mut chainer: Option<Chainer> = None;
    let mut prev = GENESIS.to_owned();
    let mut records = 0;
    for (expected_seq, (i, line)) in (1_u64..).zip(reader.lines().enumerate()) {
        let line_no = i + 1;
        let line = line?;
        let tampered = |reason: String| AuditError::Tampered {
            line: line_no,
            reason,
        };
        let record: Value =
            serde_json::from_str(&line).map_err(|e| tampered(format!("not a JSON record: {e}")))?;
        let seq = record["seq"]
            .as_u64()
            .ok_or_else(|| tampered("missing seq".into()))?;
        let ts = record["ts"]
            .as_str()
            .ok_or_else(|| tampered("missing ts".into()))?;
        let rec_prev = record["prev"]
            .as_str()
            .ok_or_else(|| tampered("missing prev".into()))?;
        let hash = record["hash"]
            .as_str()
            .ok_or_else(|| tampered("missing hash".into()))?;
        let event = record
            .get("event")
            .ok_or_else(|| tampered("missing event".into()))?;
        let alg = match record.get("alg") {
            None => UNKEYED_ALG,
            Some(Value::String(a)) if a == UNKEYED_ALG || a == KEYED_ALG => a.as_str(),
            Some(other) => {
                return Err(tampered(format!(
                    "unknown alg {other} (expected \"{UNKEYED_ALG}\" or \"{KEYED_ALG}\")"
                )));
            }
        };
        if chainer.is_none() {
            match (alg == KEYED_ALG, &options.key) {
                (true, None) => return Err(AuditError::KeyRequired),
                (false, Some(_)) => return Err(AuditError::NotKeyed),
                _ => {}
            }
        }
        let chainer = &*chainer.get_or_insert_with(|| Chainer::new(options.key.as_ref()));
        if chainer.alg() != alg {
            return Err(tampered(format!(
                "alg is \"{alg}\" but the log began as \"{}\" (records of another chain were spliced in)",
                chainer.alg()
            )));
        }
        if seq != expected_seq {
            return Err(tampered(format!(
                "sequence number {seq} where {expected_seq} was expected (a line was deleted, inserted or moved)"
            )));
        }
        if rec_prev != prev {
            return Err(tampered(
                "prev does not match the hash of the line before (a line was deleted, inserted or moved)".into(),
            ));
        }
        let computed = chainer.value(seq, ts, rec_prev, &canonical_json(event));
        if computed != hash {
            let why = match (chainer.is_keyed(), line_no) {
                (false, _) => "the line was edited",
                (true, 1) => {
                    "the key is not the one the log was written with, or the line was edited"
                }
                (true, _) => "the line was edited, or the chain was rebuilt without the key",
            };
            return Err(tampered(format!(
                "hash does not match the record's content ({why})"
            )));
        }
        hash.clone_into(&mut prev);
        records += 1;
        if expected.as_deref() == Some(hash) {
            found_at = Some(records);
        }
    }
    let summary = AuditSummary {
        records,
        head: prev,
        keyed: chainer.as_ref().is_some_and(Chainer::is_keyed),
    };
    match expected {
        Some(expected) if expected != summary.head => Err(AuditError::HeadMismatch {
            records: summary.records,
            head: summary.head,
            expected,
            found_at,
        }),
        _ => Ok(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"d": [true, null, "x"], "c": 1.5}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":1.5,"d":[true,null,"x"]},"b":1}"#
        );
    }

    #[test]
    fn a_keyed_chain_value_is_hmac_sha256_of_the_record() {
        let key = AuditKey::new(b"a key of at least sixteen bytes").unwrap();
        let keyed = Chainer::new(Some(&key)).value(1, "t", GENESIS, "{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a key of at least sixteen bytes").unwrap();
        mac.update(format!("1\nt\n{GENESIS}\n{{}}").as_bytes());
        assert_eq!(keyed, hex::encode(mac.finalize().into_bytes()));
        let plain = Chainer::Plain.value(1, "t", GENESIS, "{}");
        assert_eq!(
            plain,
            hex::encode(Sha256::digest(format!("1\nt\n{GENESIS}\n{{}}")))
        );
        assert_ne!(keyed, plain);
    }

    #[test]
    fn a_trailing_newline_is_not_part_of_the_key() {
        let a = AuditKey::new(b"0123456789abcdef0123\n").unwrap();
        let b = AuditKey::new(b"0123456789abcdef0123").unwrap();
        let c = AuditKey::new(b"0123456789abcdef0123\r\n").unwrap();
        let v = |k: &AuditKey| Chainer::new(Some(k)).value(1, "t", GENESIS, "{}");
        assert_eq!(v(&a), v(&b));
        assert_eq!(v(&c), v(&b));
        assert!(matches!(
            AuditKey::new(b"short\n"),
            Err(AuditError::Key { .. })
        ));
    }
}
