//! `sre-agent approvals list|approve|reject`: review and decide, from a terminal, the writes a
//! `sre-agent serve` has parked for a human, through its approvals API.
//!
//! ```sh
//! export SRE_AGENT_SERVER=http://sre-agent.sre.svc:8080
//! sre-agent approvals list --token-file api.token
//! sre-agent approvals approve apv-0123456789abcdef01234567 --token-file api.token --reason "checked the diff"
//! sre-agent approvals reject apv-0123456789abcdef01234567 --token-file api.token --reason "not during the sale"
//! ```
//!
//! The server comes from `--server URL` or `SRE_AGENT_SERVER`; the token from `--token-file FILE`
//! or `SRE_AGENT_API_TOKEN` (it is never printed). Every string the server sends is escaped before
//! it reaches the terminal.
//!
//! Exit codes: 0 done; 1 the server refused (401, 403, 404, 409 already decided or another action,
//! 410 expired) or could not be reached, with the server's message; 2 a usage or configuration
//! error (no server or token, a bad URL or token file, a field the server rejected as invalid).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use sre_core::text::escape_untrusted;
use sre_tools::serve::ApprovalView;
use sre_tools::serve::api::ApiToken;
use sre_tools::serve::client::{ApprovalsClient, ClientError};

use super::{EXIT_ERROR, EXIT_OK, Failure};

const EXIT_USAGE: u8 = 2;
const SERVER_ENV: &str = "SRE_AGENT_SERVER";
const TOKEN_ENV: &str = "SRE_AGENT_API_TOKEN";
/// The widest summary the table shows, in characters.
const SUMMARY_WIDTH: usize = 60;

/// `sre-agent approvals …`: where the server is and how to authenticate, then what to do.
#[derive(Args, Debug)]
pub(crate) struct ApprovalsArgs {
    #[arg(
        long,
        value_name = "URL",
        global = true,
        help = "The `sre-agent serve` to talk to, e.g. http://sre-agent.sre.svc:8080 (default: $SRE_AGENT_SERVER)"
    )]
    server: Option<String>,
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        help = "Read the API token from FILE (default: $SRE_AGENT_API_TOKEN); one trailing newline is ignored"
    )]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: ApprovalsCommand,
}

/// What to do with the approvals.
#[derive(Subcommand, Debug)]
pub(crate) enum ApprovalsCommand {
    /// List the approvals: pending, and decided but not resumed yet.
    List {
        /// Only the pending ones.
        #[arg(long)]
        pending: bool,
        /// Print the approvals as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending write: the parked run resumes and applies it.
    Approve {
        /// The approval's id (see `approvals list`).
        id: String,
        /// Why (logged by the server).
        #[arg(long)]
        reason: Option<String>,
        /// Who decides, recorded as `api:NAME` (default: $USER, or "cli").
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// Approve only if the approval still waits for this action fingerprint (`sha256:…`,
        /// shown by `approvals list --json`): a plan that changed since is not approved.
        #[arg(long, value_name = "FP")]
        action: Option<String>,
    },
    /// Reject a pending write: the parked run resumes without it.
    Reject {
        /// The approval's id (see `approvals list`).
        id: String,
        /// Why (shown to the model and in the run's report).
        #[arg(long)]
        reason: Option<String>,
        /// Who decides, recorded as `api:NAME` (default: $USER, or "cli").
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
}

/// A failure with its exit code.
struct Exit(u8, String);

fn usage(message: impl Into<String>) -> Exit {
    Exit(EXIT_USAGE, message.into())
}

impl From<ClientError> for Exit {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            // A bad --server or ID, or what the server refused as invalid (a bad --by,
            // --reason or --action).
            ClientError::InvalidServer(_)
            | ClientError::InvalidId(_)
            | ClientError::Server {
                status: 400 | 413 | 415,
                ..
            } => EXIT_USAGE,
            _ => EXIT_ERROR,
        };
        Self(code, e.to_string())
    }
}

/// Runs an `approvals` subcommand.
pub(crate) async fn run(args: ApprovalsArgs) -> Result<u8, Failure> {
    match execute(args).await {
        Ok(()) => Ok(EXIT_OK),
        Err(Exit(code, message)) => {
            // Everything here may quote the server or the command line: escape it.
            eprintln!("error: {}", escape_untrusted(&message));
            Ok(code)
        }
    }
}

/// The server URL from `--server` or the environment.
fn server(args: &ApprovalsArgs) -> Result<String, Exit> {
    if let Some(server) = &args.server {
        return Ok(server.clone());
    }
    match std::env::var(SERVER_ENV) {
        Ok(server) if !server.trim().is_empty() => Ok(server),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(usage(format!(
            "no server: pass --server URL or set {SERVER_ENV} (e.g. http://sre-agent.sre.svc:8080)"
        ))),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(usage(format!("{SERVER_ENV} is not valid UTF-8")))
        }
    }
}

/// The token from `--token-file` or the environment; errors never contain it.
fn token(args: &ApprovalsArgs) -> Result<ApiToken, Exit> {
    let token = match &args.token_file {
        Some(path) => ApiToken::from_file(path),
        None if std::env::var_os(TOKEN_ENV).is_some() => ApiToken::from_env(TOKEN_ENV),
        None => {
            return Err(usage(format!(
                "no API token: pass --token-file FILE or set {TOKEN_ENV}"
            )));
        }
    };
    token.map_err(|e| usage(e.to_string()))
}

/// `--by`, or `$USER`, or `cli`.
fn decider(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "cli".to_owned())
}

async fn execute(args: ApprovalsArgs) -> Result<(), Exit> {
    let server = server(&args)?;
    let token = token(&args)?;
    // A missing or malformed token is a usage error, said before anything is sent.
    token.check().await.map_err(|e| usage(e.to_string()))?;
    let client = ApprovalsClient::new(&server, token)?;
    match args.command {
        ApprovalsCommand::List { pending, json } => {
            let mut views = client.list().await?;
            if pending {
                views.retain(|v| v.state == sre_tools::serve::ApprovalState::Pending);
            }
            if json {
                let text = serde_json::to_string_pretty(&views)
                    .map_err(|e| Exit(EXIT_ERROR, format!("cannot print the approvals: {e}")))?;
                println!("{text}");
            } else {
                print!("{}", table(&views));
            }
        }
        ApprovalsCommand::Approve {
            id,
            reason,
            by,
            action,
        } => {
            let view = client
                .decide(
                    &id,
                    true,
                    &decider(by),
                    reason.as_deref(),
                    action.as_deref(),
                )
                .await?;
            println!("{}", decided(&view));
        }
        ApprovalsCommand::Reject { id, reason, by } => {
            let view = client
                .decide(&id, false, &decider(by), reason.as_deref(), None)
                .await?;
            println!("{}", decided(&view));
        }
    }
    Ok(())
}

fn state_name(view: &ApprovalView) -> &'static str {
    use sre_tools::serve::ApprovalState as S;
    match view.state {
        S::Pending => "pending",
        S::Approved => "approved",
        S::Rejected => "rejected",
        S::Expired => "expired",
    }
}

fn risk_name(view: &ApprovalView) -> &'static str {
    match view.risk {
        sre_core::Risk::Low => "low",
        sre_core::Risk::Medium => "medium",
        sre_core::Risk::High => "HIGH",
    }
}

/// The object the write changes, `kind/namespace/name`, escaped.
fn target(view: &ApprovalView) -> String {
    view.target.as_ref().map_or_else(
        || "-".to_owned(),
        |t| escape_untrusted(&format!("{}/{}/{}", t.kind, t.namespace, t.name)).into_owned(),
    )
}

/// `text` cut to `width` characters, with `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One line about a decision that was recorded.
fn decided(view: &ApprovalView) -> String {
    let by = view.decided_by.as_deref().unwrap_or("?");
    let mut line = format!(
        "{} {} by {}: {} ({})",
        state_name(view),
        escape_untrusted(&view.id),
        escape_untrusted(by),
        escape_untrusted(&view.summary),
        target(view),
    );
    if let Some(reason) = &view.reason {
        let _ = write!(line, "; reason: {}", escape_untrusted(reason));
    }
    line
}

/// The approvals as a table: id, state, risk, target, summary, expires. Every string is escaped.
fn table(views: &[ApprovalView]) -> String {
    if views.is_empty() {
        return "no approvals\n".to_owned();
    }
    let header = ["ID", "STATE", "RISK", "TARGET", "SUMMARY", "EXPIRES"].map(str::to_owned);
    let rows: Vec<[String; 6]> = views
        .iter()
        .map(|v| {
            [
                escape_untrusted(&v.id).into_owned(),
                state_name(v).to_owned(),
                risk_name(v).to_owned(),
                target(v),
                cut(&escape_untrusted(&v.summary), SUMMARY_WIDTH),
                escape_untrusted(&v.expires_at).into_owned(),
            ]
        })
        .collect();
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = w - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
