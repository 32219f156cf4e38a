//! `sre-agent audit verify FILE`: checks an audit log written with `--audit FILE` — every line's
//! hash chain, the key of a keyed log, and the head the run report printed — and the
//! `--audit-key-file` / `--audit-key-env` options that key the log `demo` and `run` write.
//!
//! ```sh
//! sre-agent demo --approve auto --audit audit.jsonl --audit-key-file audit.key
//! sre-agent audit verify audit.jsonl --key-file audit.key --head <the head the report printed>
//! ```
//!
//! Exit codes: 0 the log verifies; 3 it does not (the first bad line, or how it ends, is named);
//! 1 it could not be checked (unreadable file or key, a keyed log without its key).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sre_core::AuditLog;
use sre_core::audit::{self, AuditError, AuditKey, VerifyOptions};

use super::{EXIT_HUMAN, EXIT_OK, Failure};

/// `sre-agent audit …`.
#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// Check an audit log's hash chain, key and head: exit 0 intact, 3 not intact, 1 not checkable.
    ///
    /// Names the first edited, deleted, inserted or reordered line. A keyed log needs its key
    /// (--key-file or --key-env); with it, a chain rebuilt without the key is found. With --head
    /// (the head the run report printed), records cut off the end are found too.
    Verify(VerifyArgs),
}

/// The arguments of `audit verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The audit log (JSON Lines) written with `--audit FILE`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Read the key of a keyed log from this file (a trailing newline is ignored).
    #[arg(long, value_name = "PATH", conflicts_with = "key_env")]
    key_file: Option<PathBuf>,
    /// Read the key of a keyed log from this environment variable.
    #[arg(long, value_name = "VAR")]
    key_env: Option<String>,
    /// The head kept from the run report (`audit log head: …`): the log must end there, which
    /// detects records cut off the end and a rebuilt chain.
    #[arg(long, value_name = "HASH", value_parser = parse_head)]
    head: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `--audit-key-file` / `--audit-key-env` of `demo` and `run`.
#[derive(Args, Debug)]
pub(crate) struct AuditKeyOptions {
    /// Key the audit log (HMAC-SHA256) with the key in this file; needs --audit.
    #[arg(
        long,
        value_name = "PATH",
        requires = "audit",
        conflicts_with = "audit_key_env"
    )]
    audit_key_file: Option<PathBuf>,
    /// Key the audit log (HMAC-SHA256) with the key in this environment variable; needs --audit.
    #[arg(long, value_name = "VAR", requires = "audit")]
    audit_key_env: Option<String>,
}

/// Runs an `audit` subcommand.
pub(crate) fn run(command: AuditCommand) -> Result<u8, Failure> {
    match command {
        AuditCommand::Verify(args) => verify(&args),
    }
}

fn parse_head(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("expected the 64 hex digits the report printed after `audit log head:`".to_owned())
    }
}

fn load_key(file: Option<&Path>, env: Option<&str>) -> Result<Option<AuditKey>, Failure> {
    Ok(match (file, env) {
        (Some(path), _) => Some(AuditKey::from_file(path)?),
        (None, Some(name)) => Some(AuditKey::from_env(name)?),
        (None, None) => None,
    })
}

fn verify(args: &VerifyArgs) -> Result<u8, Failure> {
    let shown = args.file.display();
    let key = load_key(args.key_file.as_deref(), args.key_env.as_deref())?;
    let file = File::open(&args.file)
        .map_err(|e| Failure(format!("cannot read audit log {shown}: {e}")))?;
    let options = VerifyOptions {
        key,
        expected_head: args.head.clone(),
    };
    let (problem, detail, mut extra) = match audit::verify_with(BufReader::new(file), &options) {
        Ok(s) => {
            let mode = if s.keyed { "keyed" } else { "unkeyed" };
            if args.json {
                let v = json!({
                    "file": shown.to_string(),
                    "intact": true,
                    "records": s.records,
                    "head": s.head,
                    "keyed": s.keyed,
                });
                println!("{v:#}");
            } else {
                println!(
                    "audit log {shown}: {} records, chain intact, head {}, {mode}",
                    s.records, s.head
                );
            }
            return Ok(EXIT_OK);
        }
        Err(AuditError::KeyRequired) => {
            return Err(Failure(format!(
                "audit log {shown}: this log is keyed: pass --key-file/--key-env"
            )));
        }
        Err(AuditError::Io(e)) => {
            return Err(Failure(format!("cannot read audit log {shown}: {e}")));
        }
        Err(AuditError::Tampered { line, reason }) => (
            "tampered",
            format!("tampered at line {line}: {reason}"),
            json!({ "line": line }),
        ),
        Err(AuditError::HeadMismatch {
            records,
            head,
            expected,
            found_at,
        }) => {
            let why = match found_at {
                Some(at) => format!(
                    ", which is record {at}: {} records were appended after it (pass the head of the latest run)",
                    records - at
                ),
                None => ": records were removed from the end or the log was rebuilt".to_owned(),
            };
            (
                "head_mismatch",
                format!("ends at record {records} with head {head}, expected head {expected}{why}"),
                json!({ "records": records, "head": head, "expected_head": expected }),
            )
        }
        Err(AuditError::NotKeyed) => (
            "not_keyed",
            "not keyed, but a key was given: anyone can rebuild its plain sha256 chain (was a keyed log rewritten without its key?); without --key-file/--key-env it is checked as an unkeyed log".to_owned(),
            json!({}),
        ),
        Err(e) => return Err(Failure(format!("audit log {shown}: {e}"))),
    };
    if args.json {
        if let Value::Object(map) = &mut extra {
            map.insert("file".into(), shown.to_string().into());
            map.insert("intact".into(), false.into());
            map.insert("problem".into(), problem.into());
            map.insert("error".into(), detail.into());
        }
        println!("{extra:#}");
    } else {
        println!("audit log {shown}: {detail}");
    }
    Ok(EXIT_HUMAN)
}

/// Opens the `--audit FILE` log of `demo` / `run`, keyed when a key option is given.
pub(crate) fn open_log(path: &Path, options: &AuditKeyOptions) -> Result<AuditLog, Failure> {
    let key = load_key(
        options.audit_key_file.as_deref(),
        options.audit_key_env.as_deref(),
    )?;
    let opened = match key {
        Some(key) => AuditLog::open_keyed(path, key),
        None => AuditLog::open(path),
    };
    opened.map_err(|e| {
        let why = match e {
            AuditError::KeyRequired => {
                "this log is keyed: pass --audit-key-file/--audit-key-env to continue it".to_owned()
            }
            AuditError::NotKeyed => {
                "this log is not keyed, so a keyed chain cannot continue it: write the keyed log to a new file".to_owned()
            }
            other => other.to_string(),
        };
        Failure(format!("audit log {}: {why}", path.display()))
    })
}

/// The `"audit"` object of the JSON run report: the file, its records, its head (the anchor to
/// keep) and its mode.
pub(crate) fn anchor_json(path: &Path, log: &AuditLog) -> Value {
    let s = log.summary();
    json!({
        "file": path.display().to_string(),
        "records": s.records,
        "head": s.head,
        "keyed": s.keyed,
    })
}
