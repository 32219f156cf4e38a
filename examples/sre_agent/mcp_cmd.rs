//! `sre-agent mcp`: the agent's tools as a Model Context Protocol server, over stdio (an MCP client
//! starts it) or streamable HTTP (`--listen`, with a bearer token). Reads run directly; every write
//! goes through the approval gate, asked through MCP elicitation (see `sre_tools::mcp`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use sre_core::{ApprovalPolicy, Tool};
use sre_tools::k8s::{preflight, rbac};
use sre_tools::mcp::clients::{self, Client, Launch};
use sre_tools::mcp::{McpConfig, McpServer};
use sre_tools::serve::api::ApiToken;
use sre_tools::sim::Simulator;

use crate::{Approve, EXIT_OK, Failure, RiskArg};

/// Who approves a write for a client that cannot be asked through elicitation.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum McpApprove {
    /// Approve automatically within limits (opt-in; at most --max-writes per server, default 3,
    /// risk up to medium, images from the repository each container runs now).
    Auto,
    /// Deny every write such a client asks for.
    Deny,
    /// Ask at this terminal (y/N); only with --listen, where stdin is free.
    Prompt,
}

/// An MCP client `--print-config` knows.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientArg {
    /// Claude Desktop (`claude_desktop_config.json`).
    ClaudeDesktop,
    /// Claude Code (a `claude mcp add` command).
    ClaudeCode,
    /// VS Code (`.vscode/mcp.json`).
    Vscode,
    /// Cursor (`~/.cursor/mcp.json`).
    Cursor,
}

/// `sre-agent mcp`.
#[derive(clap::Args, Debug)]
pub(crate) struct McpArgs {
    /// Serve the tools over the embedded API simulator of this scenario (a built-in name, see
    /// `sre-agent scenarios`, or a scenario file) instead of the current kube context.
    #[arg(long, value_name = "NAME|FILE", conflicts_with = "namespaces")]
    scenario: Option<String>,
    /// Namespaces in scope (repeatable; default: the context's namespace).
    #[arg(long = "namespace", short = 'n')]
    namespaces: Vec<String>,
    /// Offer only the read tools; a write called by name anyway is refused.
    #[arg(long)]
    read_only: bool,
    /// Who approves a write when the client does not support MCP elicitation (a client that does
    /// is always asked). Default: nobody — such a client gets an error saying how to enable
    /// approvals.
    #[arg(long, value_enum)]
    approve: Option<McpApprove>,
    /// How long an approval question waits for its answer (never longer than --approval-ttl); no
    /// answer changes nothing.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    elicitation_timeout: Duration,
    /// How long a previewed plan stays valid; an approval after that applies nothing.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    approval_ttl: Duration,
    /// Applied writes at most by this server process, all sessions together (with --approve auto:
    /// default 3).
    #[arg(long, value_name = "N")]
    max_writes: Option<usize>,
    /// Deny writes riskier than this without asking (with --approve auto: default medium).
    #[arg(long, value_enum, value_name = "RISK")]
    max_risk: Option<RiskArg>,
    /// Allow images only from this registry or repository prefix (repeatable).
    #[arg(long = "registry", value_name = "PREFIX")]
    registries: Vec<String>,
    /// Run even if preflight finds the identity over-privileged (delete, secrets, cluster-admin).
    #[arg(long)]
    allow_privileged: bool,
    /// Serve streamable HTTP at `http://ADDR/mcp` (e.g. 127.0.0.1:8808) instead of stdio; needs
    /// --token.
    #[arg(long, value_name = "ADDR", requires = "token")]
    listen: Option<SocketAddr>,
    /// The bearer token HTTP clients must send, by reference: `env:NAME`, `file:/path`,
    /// `vault:…`, `aws-sm:…` (at least 16 bytes; e.g. `openssl rand -hex 32`). Never printed.
    #[arg(long, value_name = "REF", requires = "listen")]
    token: Option<String>,
    /// Print the snippet that adds this server, started with these same options, to an MCP
    /// client, and exit.
    #[arg(long, value_enum, value_name = "CLIENT")]
    print_config: Option<ClientArg>,
}

/// The longest a plan may wait for its approval.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the HTTP snippets name as the client's token variable when `--token` is not `env:NAME`.
const TOKEN_ENV: &str = "SRE_AGENT_MCP_TOKEN";

/// Runs `sre-agent mcp`.
pub(crate) async fn run(args: McpArgs) -> Result<u8, Failure> {
    if let Some(client) = args.print_config {
        return print_config(client, &args);
    }
    if args.approval_ttl.is_zero() || args.approval_ttl > MAX_TTL {
        return Err(Failure(
            "--approval-ttl must be more than 0 and at most 24h".into(),
        ));
    }
    if args.elicitation_timeout.is_zero() {
        return Err(Failure(
            "--elicitation-timeout must be more than 0 (a question nobody can answer approves nothing)".into(),
        ));
    }
    let fallback_mode = match args.approve {
        None => None,
        Some(McpApprove::Auto) => Some(Approve::Auto),
        Some(McpApprove::Deny) => Some(Approve::Deny),
        Some(McpApprove::Prompt) if args.listen.is_some() => Some(Approve::Prompt),
        Some(McpApprove::Prompt) => {
            return Err(Failure(
                "--approve prompt needs --listen: over stdio, stdin carries the MCP protocol and there is no terminal to ask at; use a client that supports elicitation, or --approve auto|deny".into(),
            ));
        }
    };
    let token = match &args.token {
        Some(reference) => Some(token(reference).await?),
        None => None,
    };
    let (tools, namespaces, sim) = tools(&args).await?;
    let policy = |mode| {
        crate::policy_with(
            mode,
            &namespaces,
            args.max_writes,
            args.max_risk,
            &args.registries,
        )
        .0
    };
    // The rules every write passes before anyone is asked: the namespaces in scope and the limits
    // given. (Built as the policy of a human-decided mode; the server only re-checks its rules and
    // never asks its approver.)
    let rules = policy(Approve::Api);
    let fallback: Option<Arc<dyn ApprovalPolicy>> = fallback_mode.map(policy);
    let config = McpConfig {
        read_only: args.read_only,
        rules: Some(rules),
        fallback,
        elicitation_timeout: args.elicitation_timeout,
        approval_ttl: args.approval_ttl,
        enable_hint: "use an MCP client that supports elicitation (it is asked about every write), or restart `sre-agent mcp` with --approve auto (writes within limits are approved automatically) or --approve deny; with --listen, --approve prompt asks at the server's terminal".into(),
    };
    let server = McpServer::new(tools, config)?;
    let writes = match (args.read_only, args.approve) {
        (true, _) => "none (--read-only)".to_owned(),
        (false, None) => "asked through elicitation; refused for clients without it".to_owned(),
        (false, Some(mode)) => format!(
            "asked through elicitation; for clients without it: {}",
            format!("{mode:?}").to_lowercase()
        ),
    };
    let source = sim.as_ref().map_or_else(
        || "the current kube context".to_owned(),
        |sim| {
            format!(
                "scenario {} on the embedded API simulator at {}",
                sim.scenario().name,
                sim.url()
            )
        },
    );
    let banner = format!(
        "sre-agent mcp: {} tools over {source} (namespaces: {}); writes: {writes}",
        server.tools().len(),
        namespaces.join(", "),
    );
    // clap makes --listen and --token come together.
    let outcome = if let (Some(addr), Some(token)) = (args.listen, token) {
        serve_http(addr, server, token, &banner).await
    } else {
        eprintln!("{banner}; stdio");
        server.serve_stdio().await.map_err(Failure::from)
    };
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    outcome?;
    Ok(EXIT_OK)
}

/// The tools to serve, the namespaces in scope, and the simulator they run on (if any).
async fn tools(
    args: &McpArgs,
) -> Result<(Vec<Arc<dyn Tool>>, Vec<String>, Option<Simulator>), Failure> {
    if let Some(scenario) = &args.scenario {
        let sim = Simulator::start_named(scenario).await?;
        let namespaces = sim.scenario().all_namespaces();
        return Ok((crate::sim_tools(&sim)?, namespaces, Some(sim)));
    }
    let client = crate::cluster().await?;
    let namespaces = crate::scope_of(&client, args.namespaces.clone());
    let report = preflight(&client, &namespaces, rbac::TOOL_NAMES).await?;
    if !report.missing.is_empty() {
        eprintln!(
            "warning: the agent lacks permissions some tools need:\n{}",
            report.render()
        );
    }
    report
        .enforce(args.allow_privileged)
        .map_err(|e| Failure(format!("{e} (--allow-privileged)")))?;
    Ok((crate::cluster_tools(&client, &namespaces), namespaces, None))
}

/// Serves streamable HTTP on `addr` until Ctrl-C or SIGTERM.
async fn serve_http(
    addr: SocketAddr,
    server: McpServer,
    token: ApiToken,
    banner: &str,
) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure(format!("--listen {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        eprintln!(
            "warning: listening on {bound}, not loopback: the bearer token travels in clear text; put a TLS-terminating proxy in front"
        );
    }
    eprintln!("{banner}; http://{bound}{}", sre_tools::mcp::http::PATH);
    sre_tools::mcp::http::serve(listener, server, token, crate::serve_cmd::shutdown_signal())
        .await?;
    Ok(())
}

/// The bearer token `reference` names, fetched and checked once now, so a missing or malformed
/// token stops the start with an error naming the flag (never the value).
async fn token(reference: &str) -> Result<ApiToken, Failure> {
    // serve's own path: the same checks at start, and the same rotation policy (a rotated token
    // stops working at once from a file or the environment).
    let secrets = crate::secrets::registry()?;
    crate::serve_cmd::secret(&secrets, "--token", reference, &sre_tools::mcp::http::TOKEN)
        .await
        .map(ApiToken::new)
}

/// This command's own arguments without `--print-config CLIENT`: what the client should run.
fn serving_args(all: impl IntoIterator<Item = OsString>) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in all {
        let arg = arg.to_string_lossy().into_owned();
        if skip_value {
            skip_value = false;
            continue;
        }
        if arg == "--print-config" {
            skip_value = true;
            continue;
        }
        if arg.starts_with("--print-config=") {
            continue;
        }
        out.push(arg);
    }
    out
}

fn print_config(client: ClientArg, args: &McpArgs) -> Result<u8, Failure> {
    let client = match client {
        ClientArg::ClaudeDesktop => Client::ClaudeDesktop,
        ClientArg::ClaudeCode => Client::ClaudeCode,
        ClientArg::Vscode => Client::Vscode,
        ClientArg::Cursor => Client::Cursor,
    };
    let launch = if let Some(addr) = args.listen {
        Launch::Http {
            url: format!("http://{addr}{}", sre_tools::mcp::http::PATH),
            token_env: args
                .token
                .as_deref()
                .and_then(|t| t.strip_prefix("env:"))
                .unwrap_or(TOKEN_ENV)
                .to_owned(),
        }
    } else {
        let command = std::env::current_exe()
            .map_err(|e| Failure(format!("cannot find this executable's path: {e}")))?;
        Launch::Stdio {
            command: command.to_string_lossy().into_owned(),
            args: serving_args(std::env::args_os().skip(1)),
        }
    };
    let snippet = clients::snippet(client, "sre-agent", &launch).map_err(Failure)?;
    eprintln!("{}", clients::instruction(client));
    println!("{snippet}");
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_config_is_dropped_from_the_served_command() {
        let args = |v: &[&str]| serving_args(v.iter().map(OsString::from));
        assert_eq!(
            args(&[
                "mcp",
                "--scenario",
                "bad-release",
                "--print-config",
                "vscode"
            ]),
            ["mcp", "--scenario", "bad-release"]
        );
        assert_eq!(
            args(&["mcp", "--print-config=cursor", "-n", "shop", "--read-only"]),
            ["mcp", "-n", "shop", "--read-only"]
        );
    }
}
