//! A hash-chained JSON Lines audit trail, and [`verify`] to check it.
//!
//! Each line is `{"seq":N,"ts":"…","prev":"<hash of line N-1>","event":{…},"hash":"<sha256>"}` where
//! `hash = sha256(seq "\n" ts "\n" prev "\n" canonical(event))`. Editing, deleting or reordering a line
//! breaks the chain at that line. Cutting lines off the end cannot be seen from the file alone:
//! keep the head hash that [`verify`] returns (or the last [`AuditLog::head`]) somewhere else to
//! detect it.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::approval::now_rfc3339;
use crate::event::{Event, Observer};

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
}

/// What [`verify`] found in an intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSummary {
    /// Number of records.
    pub records: usize,
    /// Hash of the last record ([`GENESIS`] for an empty log).
    pub head: String,
}

/// JSON with object keys sorted, so that hashing does not depend on key order.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn record_hash(seq: u64, ts: &str, prev: &str, event_canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(ts.as_bytes());
    h.update(b"\n");
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(event_canonical.as_bytes());
    hex::encode(h.finalize())
}

struct Chain {
    out: Box<dyn Write + Send>,
    seq: u64,
    head: String,
    failed: Option<String>,
}

/// An [`Observer`] that appends every event to a hash-chained JSON Lines file.
pub struct AuditLog {
    chain: Mutex<Chain>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("head", &self.head())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// A new chain written to `out`, starting at [`GENESIS`].
    pub fn new(out: impl Write + Send + 'static) -> Self {
        Self {
            chain: Mutex::new(Chain {
                out: Box::new(out),
                seq: 0,
                head: GENESIS.to_owned(),
                failed: None,
            }),
        }
    }

    /// Opens `path` for appending, continuing its chain. An existing file must verify first.
    ///
    /// # Errors
    /// When the file cannot be read or written, or its chain is broken (nothing is appended then).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref();
        let (records, head) = match File::open(path) {
            Ok(f) => {
                let s = verify(BufReader::new(f))?;
                (s.records, s.head)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, GENESIS.to_owned()),
            Err(e) => return Err(e.into()),
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            chain: Mutex::new(Chain {
                out: Box::new(file),
                seq: records as u64,
                head,
                failed: None,
            }),
        })
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
        let hash = record_hash(seq, &ts, &chain.head, &canonical);
        let line = format!(
            "{{\"seq\":{seq},\"ts\":{},\"prev\":\"{}\",\"event\":{canonical},\"hash\":\"{hash}\"}}\n",
            Value::String(ts.clone()),
            chain.head
        );
        chain.out.write_all(line.as_bytes())?;
        chain.out.flush()?;
        chain.seq = seq;
        chain.head = hash;
        Ok(())
    }

    /// Hash of the last record written.
    pub fn head(&self) -> String {
        self.chain
            .lock()
            .map(|c| c.head.clone())
            .unwrap_or_default()
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

/// Checks a whole audit log and returns its length and head hash.
///
/// # Errors
/// [`AuditError::Tampered`] naming the first line that does not verify (edited, inserted, deleted
/// before it, or out of order), or [`AuditError::Io`].
pub fn verify(reader: impl BufRead) -> Result<AuditSummary, AuditError> {
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
        let computed = record_hash(seq, ts, rec_prev, &canonical_json(event));
        if computed != hash {
            return Err(tampered(
                "hash does not match the record's content (the line was edited)".into(),
            ));
        }
        hash.clone_into(&mut prev);
        records += 1;
    }
    Ok(AuditSummary {
        records,
        head: prev,
    })
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
}
