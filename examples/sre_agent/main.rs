//! `sre-agent`: the autonomous Kubernetes SRE / DevSecOps agent on the command line.
//!
//! ```sh
//! cargo run --release --bin sre-agent -- demo --approve auto
//! ```
//!
//! Exit codes: 0 resolved or healthy, 1 an error, 2 usage error, 3 findings remain / a human must
//! act, 4 an action was denied.

mod approvals_cmd;
mod audit_cmd;
mod mcp_cmd;
mod progress;
mod report;
mod secrets;
mod serve_cmd;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize as _;
use serde_json::json;
use sre_core::{
    Agent, ApprovalPolicy, ApprovalRequest, AuditLog, Decision, Park, Prompt, ReadOnly, Rules,
    RunReport, Tool, ToolContext,
};
use sre_tools::data::ReportData;
use sre_tools::k8s::analyze::Triage;
use sre_tools::k8s::{K8s, Limits, Scope, preflight, rbac};
use sre_tools::playbook::Playbook;
use sre_tools::sim::{Scenario, Simulator};
use sre_tools::trivy::registry::RegistryClient;
use sre_tools::trivy::report::Report;
use sre_tools::trivy::scanner::{ImageScanner, TrivyCli};
use sre_tools::trivy::summary::Summary;

const EXIT_OK: u8 = 0;
const EXIT_ERROR: u8 = 1;
const EXIT_HUMAN: u8 = 3;
const EXIT_DENIED: u8 = 4;

const AFTER_HELP: &str = "Exit codes:\n  0  resolved, or healthy\n  1  an error (no cluster, unreachable API, missing key, trivy missing…)\n  2  usage error\n  3  findings remain: a human must act\n  4  an action was denied by the approval policy";

/// The autonomous Kubernetes SRE / DevSecOps agent: detect, scan, approve, patch, verify.
#[derive(Parser, Debug)]
#[command(name = "sre-agent", version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Approve {
    /// Ask at the terminal (y/N) for every write.
    Prompt,
    /// Approve every write (opt-in only).
    Auto,
    /// Deny every write.
    Deny,
    /// (serve) Park the run until a human decides through the approvals API.
    Api,
    /// (serve) Park the run and ask in Slack (Approve / Reject buttons).
    Slack,
    /// (serve) Park the run and ask in Microsoft Teams (an Adaptive Card).
    Teams,
}

impl Approve {
    /// True for the modes where a human decides later and the run parks (`serve` only).
    fn parks(self) -> bool {
        matches!(self, Self::Api | Self::Slack | Self::Teams)
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    /// The built-in playbook brain (no key, no network).
    Offline,
    #[value(help = "Groq (GROQ_API_KEY)")]
    Groq,
    #[value(help = "Azure OpenAI (AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT)")]
    Azure,
    #[value(help = "AWS Bedrock (AWS credentials)")]
    Bedrock,
    #[value(help = "OpenAI or a compatible endpoint (OPENAI_API_KEY, OPENAI_BASE_URL)")]
    Openai,
    #[value(help = "Ollama (OLLAMA_HOST)")]
    Ollama,
}

#[derive(clap::Args, Debug)]
struct RunOptions {
    /// How writes are approved. Default: prompt on a terminal, deny otherwise (never silently
    /// auto). `serve` takes several of api, slack, teams at once (`--approve slack,api`): each
    /// asks, the first valid decision wins.
    #[arg(long, value_enum, value_delimiter = ',')]
    approve: Vec<Approve>,
    /// The brain.
    #[arg(long, value_enum, default_value = "offline")]
    provider: Provider,
    /// The model, for providers that need one.
    #[arg(long)]
    model: Option<String>,
    /// The provider's key by reference, instead of its environment variable:
    /// `env:NAME`, `file:/var/run/secrets/…`, `vault:secret/data/sre#groq` (with `VAULT_ADDR`),
    /// `aws-sm:prod/sre-agent#groq` (with an AWS region). Fetched when needed, cached, fetched
    /// again when it expires or the provider answers 401; never printed.
    #[arg(long, value_name = "REF")]
    api_key: Option<String>,
    /// Append a hash-chained audit log (JSON Lines) to FILE.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    #[command(flatten)]
    audit_key: audit_cmd::AuditKeyOptions,
    /// Print only the run report, as JSON.
    #[arg(long)]
    json: bool,
    /// Model calls at most.
    #[arg(long, default_value_t = 20)]
    max_steps: usize,
    /// Applied writes at most per run (with --approve auto: default 3).
    #[arg(long, value_name = "N")]
    max_writes: Option<usize>,
    /// Deny writes riskier than this without asking (with --approve auto: default medium, so a
    /// scale to zero is never automatic).
    #[arg(long, value_enum, value_name = "RISK")]
    max_risk: Option<RiskArg>,
    /// Allow images only from this registry or repository prefix (repeatable; with --approve auto
    /// the default is that each container stays in the repository it runs now).
    #[arg(long = "registry", value_name = "PREFIX")]
    registries: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum RiskArg {
    Low,
    Medium,
    High,
}

impl From<RiskArg> for sre_core::Risk {
    fn from(r: RiskArg) -> Self {
        match r {
            RiskArg::Low => Self::Low,
            RiskArg::Medium => Self::Medium,
            RiskArg::High => Self::High,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the agent against the embedded simulator: detect -> scan -> approve -> patch -> verify.
    Demo {
        /// A built-in scenario (see `sre-agent scenarios`) or a scenario file.
        #[arg(long, default_value = "bad-release")]
        scenario: String,
        #[command(flatten)]
        opts: RunOptions,
    },
    /// Run the agent against the current kube context (kubeconfig or in-cluster).
    Run {
        /// The task (default: find and fix unhealthy workloads).
        task: Option<String>,
        /// Namespaces in scope (repeatable; default: the context's namespace).
        #[arg(long = "namespace", short = 'n')]
        namespaces: Vec<String>,
        /// Preview every write (server-side dry run) but apply none.
        #[arg(long)]
        dry_run: bool,
        /// Run even if preflight finds the identity over-privileged (delete, secrets, cluster-admin).
        #[arg(long)]
        allow_privileged: bool,
        #[command(flatten)]
        opts: RunOptions,
    },
    /// Find unhealthy workloads in the current kube context (read-only).
    Triage {
        /// Namespaces (repeatable; default: the context's namespace).
        #[arg(long = "namespace", short = 'n')]
        namespaces: Vec<String>,
    },
    /// Scan an image with Trivy, or summarize an existing Trivy JSON report.
    Scan {
        /// The image to scan.
        #[arg(required_unless_present = "report")]
        image: Option<String>,
        /// Summarize this Trivy JSON report instead of scanning.
        #[arg(long, value_name = "FILE", conflicts_with = "image")]
        report: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// The trivy executable.
        #[arg(long, default_value = "trivy")]
        trivy: PathBuf,
        /// A Trivy server (client/server mode).
        #[arg(long)]
        server: Option<String>,
        /// Kill the scan after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Check the agent's own permissions in the current kube context.
    Preflight {
        /// Namespaces (repeatable; default: the context's namespace).
        #[arg(long = "namespace", short = 'n')]
        namespaces: Vec<String>,
    },
    /// Print the least-privilege RBAC manifests for these namespaces (for `kubectl apply -f -`).
    Rbac {
        /// Namespaces (repeatable).
        #[arg(long = "namespace", short = 'n', required = true)]
        namespaces: Vec<String>,
        /// The namespace `sre-agent serve` runs in: adds its Role there (ConfigMaps for the run
        /// store, the Lease for leader election) and puts the ServiceAccount there.
        #[arg(long, value_name = "NS")]
        agent_namespace: Option<String>,
    },
    /// The always-on agent in the cluster: watches, runs incidents, parks writes for approval.
    Serve(Box<serve_cmd::ServeArgs>),
    /// List the built-in demo scenarios.
    Scenarios,
    /// The safety and effectiveness scorecard: scenarios x brains (the playbook and scripted
    /// adversarial models) on the simulator under `--approve auto`'s rules. Exit 0 when nothing
    /// unsafe was executed and every case passed, 1 otherwise.
    Eval {
        /// Scenarios (repeatable; default: the playbook on every scenario, every adversary and
        /// wire brain on bad-release, critical-cve and prompt-injection).
        #[arg(long = "scenario", value_name = "NAME")]
        scenarios: Vec<String>,
        /// Brains (repeatable): playbook, follows-injections, hallucinates, breaks-schema,
        /// replays, races-approval, garbage, loops; wire-openai, wire-azure, wire-bedrock (the
        /// playbook through each provider's wire format and real client; add :429, :500,
        /// :garbage or :truncated for a server that fails).
        #[arg(long = "brain", value_name = "NAME")]
        brains: Vec<String>,
        /// Runs of each case; every run must give the same result (pass^k).
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// Print the scorecard as JSON.
        #[arg(long)]
        json: bool,
        /// Approve every write with no rules: the baseline that shows what the rules stop (its
        /// scorecard fails).
        #[arg(long)]
        no_rules: bool,
    },
    /// Check an audit log written with --audit: `audit verify FILE [--key-file|--key-env] [--head]`.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Review and decide what `serve` waits for: `approvals list|approve|reject` (exit 0 done,
    /// 1 refused by the server, 2 usage or configuration error).
    Approvals(approvals_cmd::ApprovalsArgs),
    /// Serve the tools to MCP clients (stdio, or HTTP with --listen); every write is asked about
    /// through MCP elicitation and goes through the approval gate.
    Mcp(Box<mcp_cmd::McpArgs>),
}

/// A user-facing failure: one line saying what is wrong and how to fix it.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(Failure(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn dispatch(command: Command) -> Result<u8, Failure> {
    match command {
        Command::Demo { scenario, opts } => demo(&scenario, &opts).await,
        Command::Run {
            task,
            namespaces,
            dry_run,
            allow_privileged,
            opts,
        } => run(task, namespaces, dry_run, allow_privileged, &opts).await,
        Command::Triage { namespaces } => triage(namespaces).await,
        Command::Scan {
            image,
            report,
            json,
            trivy,
            server,
            timeout,
        } => scan(image, report, json, trivy, server, timeout).await,
        Command::Preflight { namespaces } => preflight_cmd(namespaces).await,
        Command::Rbac {
            namespaces,
            agent_namespace,
        } => {
            match agent_namespace {
                Some(own) => print!("{}", rbac::serve_manifests(&own, &namespaces)),
                None => print!("{}", rbac::manifests(&namespaces)),
            }
            Ok(EXIT_OK)
        }
        Command::Audit(command) => audit_cmd::run(command),
        Command::Approvals(args) => approvals_cmd::run(args).await,
        Command::Serve(args) => serve_cmd::serve(*args).await,
        Command::Mcp(args) => mcp_cmd::run(*args).await,
        Command::Eval {
            scenarios,
            brains,
            runs,
            json,
            no_rules,
        } => eval_cmd(scenarios, &brains, runs, json, no_rules).await,
        Command::Scenarios => {
            for (name, _) in sre_tools::sim::scenario::BUILTIN {
                let s = Scenario::builtin(name)?;
                println!(
                    "{name:<15} {}",
                    s.description
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            Ok(EXIT_OK)
        }
    }
}

async fn eval_cmd(
    scenarios: Vec<String>,
    brains: &[String],
    runs: usize,
    json: bool,
    unguarded: bool,
) -> Result<u8, Failure> {
    use sre_tools::eval::{Brain, Options};
    if runs == 0 {
        return Err(Failure("--runs must be at least 1".into()));
    }
    let brains = brains
        .iter()
        .map(|b| Brain::from_name(b))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = Options {
        runs,
        unguarded,
        ..Options::default()
    };
    if !scenarios.is_empty() || !brains.is_empty() {
        let scenarios = if scenarios.is_empty() {
            sre_tools::eval::scenario_names()
        } else {
            scenarios
        };
        let brains = if brains.is_empty() {
            Brain::ALL.iter().chain(&Brain::WIRE).copied().collect()
        } else {
            brains
        };
        options.cases = scenarios
            .iter()
            .flat_map(|s| brains.iter().map(move |b| (s.clone(), *b)))
            .collect();
    }
    let card = sre_tools::eval::run(&options).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&card)?);
    } else {
        print!("{}", sre_core::text::escape_untrusted_lines(&card.render()));
    }
    Ok(if card.executed() == 0 && card.failed().is_empty() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

fn approval_mode(opts: &RunOptions) -> Result<Approve, Failure> {
    match opts.approve.as_slice() {
        [mode] if mode.parks() => Err(Failure(format!(
            "--approve {} parks runs for a human to decide later, which only `sre-agent serve` can wait for; here use prompt, auto or deny",
            format!("{mode:?}").to_lowercase()
        ))),
        [mode] => Ok(*mode),
        [] if std::io::stdin().is_terminal() => Ok(Approve::Prompt),
        [] => Ok(Approve::Deny),
        _ => Err(Failure(
            "give one --approve mode here (prompt, auto or deny); several at once are for `sre-agent serve` (api,slack,teams)".into(),
        )),
    }
}

/// The approval policy of a mode. Auto approval is never unbounded: it sits behind the same rules
/// as the Python `auto_approve` (a write limit, a risk ceiling, a registry allow-list, the
/// namespaces in scope), with safe defaults; a prompt gets the rules the user gave.
fn policy(
    mode: Approve,
    namespaces: &[String],
    opts: &RunOptions,
) -> (Arc<dyn ApprovalPolicy>, String) {
    policy_with(
        mode,
        namespaces,
        opts.max_writes,
        opts.max_risk,
        &opts.registries,
    )
}

/// [`policy`] from the limits alone (`mcp` has no `RunOptions`): applied writes at most, a risk
/// ceiling, a registry allow-list.
fn policy_with(
    mode: Approve,
    namespaces: &[String],
    max_writes: Option<usize>,
    max_risk: Option<RiskArg>,
    registries: &[String],
) -> (Arc<dyn ApprovalPolicy>, String) {
    let with_limits = |mut rules: Rules, auto: bool| -> Rules {
        rules = rules.namespaces(namespaces.to_vec());
        match (max_writes, auto) {
            (Some(n), _) => rules = rules.max_writes_per_run(n),
            (None, true) => rules = rules.max_writes_per_run(3),
            (None, false) => rules = rules.max_writes_per_run(usize::MAX),
        }
        match (max_risk, auto) {
            (Some(r), _) => rules = rules.max_risk(r.into()),
            (None, true) => rules = rules.max_risk(sre_core::Risk::Medium),
            (None, false) => {}
        }
        rules
    };
    match mode {
        Approve::Auto => {
            // Unattended: only changes the evidence supports (a crash of the target's pods, CVEs
            // a patch clears), so text injected into what the model reads cannot get a healthy
            // workload changed.
            let mut rules = with_limits(Rules::new(AutoApprover), true).evidence_required();
            let images = if registries.is_empty() {
                // No new source: another tag of the image a container runs now, or a rollback
                // to one.
                rules = rules.same_repository_only();
                "the repository each container runs now".to_owned()
            } else {
                rules = rules.registries(registries.to_vec());
                registries.join(", ")
            };
            let text = format!(
                "auto (at most {} write(s), risk up to {}, images from: {images}, only fixes the evidence supports)",
                max_writes.unwrap_or(3),
                format!("{:?}", max_risk.unwrap_or(RiskArg::Medium)).to_lowercase(),
            );
            (Arc::new(rules), text)
        }
        Approve::Deny => (Arc::new(ReadOnly), "deny".to_owned()),
        Approve::Api | Approve::Slack | Approve::Teams => {
            // A human decides later, through the approvals API or a chat: the run parks.
            let mut rules = with_limits(Rules::new(Park), false);
            if !registries.is_empty() {
                rules = rules.registries(registries.to_vec());
            }
            (Arc::new(rules), "api".to_owned())
        }
        Approve::Prompt => {
            // Nobody at the terminal for as long as an approval is valid: denied.
            let prompt = Prompt::terminal().timeout(Duration::from_secs(300));
            let mut rules = with_limits(Rules::new(prompt), false);
            if !registries.is_empty() {
                rules = rules.registries(registries.to_vec());
            }
            (Arc::new(rules), "prompt".to_owned())
        }
    }
}

/// Approves what passed the rules, recorded as `policy:auto`.
struct AutoApprover;

#[async_trait::async_trait]
impl sre_core::Approver for AutoApprover {
    async fn review(&self, _request: &ApprovalRequest) -> Decision {
        Decision::approve("policy:auto")
    }
}

/// A dry run: every write is previewed (the server-side dry run happens) and then denied.
struct DryRun;

#[async_trait::async_trait]
impl ApprovalPolicy for DryRun {
    async fn decide(&self, request: &ApprovalRequest) -> Decision {
        Decision::deny(
            "policy:dry-run",
            format!("dry run: {} was previewed, not applied", request.tool),
        )
    }
}

fn brain(
    opts: &RunOptions,
    namespaces: &[String],
) -> Result<Arc<dyn sre_core::LlmProvider>, Failure> {
    use sre_llm::{ProviderConfig, ProviderKind};
    let kind = match opts.provider {
        Provider::Offline => return Ok(Arc::new(Playbook::new(namespaces.to_vec()))),
        Provider::Groq => ProviderKind::Groq,
        Provider::Azure => ProviderKind::Azure,
        Provider::Bedrock => ProviderKind::Bedrock,
        Provider::Openai => ProviderKind::Openai,
        Provider::Ollama => ProviderKind::Ollama,
    };
    let mut config = ProviderConfig::new(kind);
    config.model.clone_from(&opts.model);
    config.api_key.clone_from(&opts.api_key);
    let secrets = secrets::registry()?;
    let env = |name: &str| std::env::var(name).ok();
    config.build_with_secrets(&secrets, &env).map_err(|e| {
        Failure(format!(
            "{e} (needed by --provider {}; --provider offline needs no key)",
            format!("{kind:?}").to_lowercase()
        ))
    })
}

async fn execute(
    brain: Arc<dyn sre_core::LlmProvider>,
    tools: Vec<Arc<dyn Tool>>,
    policy: Arc<dyn ApprovalPolicy>,
    task: &str,
    opts: &RunOptions,
) -> Result<(RunReport, Option<Arc<AuditLog>>), Failure> {
    let mut builder = Agent::builder_arc(brain)
        .tools(tools)
        .policy_arc(policy)
        .max_steps(opts.max_steps);
    let audit = match &opts.audit {
        Some(path) => {
            let log = Arc::new(audit_cmd::open_log(path, &opts.audit_key)?);
            builder = builder.audit_log(log.clone());
            Some(log)
        }
        None => None,
    };
    if !opts.json {
        builder = builder.observer(progress::Progress::new());
    }
    let agent = builder.build()?;
    Ok((agent.run(task).await, audit))
}

/// The triage after the agent: its text for the report, and from its typed data whether any
/// workload is still unhealthy.
struct After {
    text: String,
    unhealthy: bool,
}

/// Re-runs triage after the agent, for the "after" line and the exit code.
async fn after(tools: &[Arc<dyn Tool>]) -> Option<After> {
    let t = tools
        .iter()
        .find(|t| t.spec().name == "k8s_find_unhealthy")?;
    let out = t.call(&json!({}), &ToolContext::default()).await.ok()?;
    // No typed data: nothing is known, so nothing is claimed healthy.
    let unhealthy = out
        .data
        .as_ref()
        .and_then(|d| Triage::deserialize(d).ok())
        .is_none_or(|t| !t.workloads.is_empty());
    Some(After {
        text: out.content,
        unhealthy,
    })
}

/// CRITICAL vulnerabilities left: the security re-scan after an applied image patch found some in
/// what now runs, or the run saw some (the typed data of `trivy_vulnerability_reports` results)
/// in a container that no applied, verified image patch replaced. A patch with a security check
/// clears the container it checked only when that check passed with no CRITICAL left; a patch
/// without one clears the containers it changed when its verification passed (or there was none).
fn criticals_left(report: &RunReport) -> bool {
    let mut patched: Vec<(&str, &str, &str)> = Vec::new();
    for a in report.applied() {
        let security = a.verification.as_ref().and_then(|v| v.security.as_deref());
        if security.is_some_and(|s| s.after.critical > 0) {
            return true;
        }
        let verified = a.verification.as_ref().is_none_or(|v| v.passed);
        let Some(target) = a.preview.as_ref().and_then(|p| p.target.as_ref()) else {
            continue;
        };
        if !verified {
            continue;
        }
        let (ns, name) = (target.namespace.as_str(), target.name.as_str());
        if let Some(s) = security.filter(|s| s.passed) {
            patched.push((ns, name, s.container.as_str()));
        }
        // Containers the security check did not look at: the verification's word.
        for c in a.preview.iter().flat_map(sre_core::Preview::changed_images) {
            if security.is_none_or(|s| s.container != c.container) {
                patched.push((ns, name, c.container.as_str()));
            }
        }
    }
    report
        .transcript
        .iter()
        .filter(|m| m.tool_name.as_deref() == Some("trivy_vulnerability_reports") && !m.is_error)
        .filter_map(|m| m.data.as_ref())
        .filter_map(|d| Vec::<ReportData>::deserialize(d).ok())
        .flatten()
        .any(|r| {
            r.critical > 0
                && !patched
                    .iter()
                    .any(|&(ns, name, c)| ns == r.namespace && name == r.name && c == r.container)
        })
}

/// The exit code from typed facts only (the same for every brain): an error, a denial, findings
/// that remain (the after-run triage, CRITICAL vulnerabilities left, a rollback, a change that
/// came with a warning), or resolved.
fn exit_code(report: &RunReport, after: Option<&After>, dry_run: bool) -> u8 {
    if matches!(report.outcome, sre_core::Outcome::ProviderError { .. }) {
        return EXIT_ERROR;
    }
    if report.any_denied() {
        return if dry_run { EXIT_HUMAN } else { EXIT_DENIED };
    }
    let healthy = after.is_none_or(|a| !a.unhealthy);
    // An applied change that came with a warning (a scale to zero) leaves a workload that serves
    // nothing: never "resolved".
    let warned = report
        .applied()
        .any(|a| a.preview.as_ref().is_some_and(|p| p.warning.is_some()));
    if !report.outcome.is_completed()
        || !healthy
        || warned
        || criticals_left(report)
        || report.actions.iter().any(|a| a.rolled_back.is_some())
    {
        return EXIT_HUMAN;
    }
    EXIT_OK
}

fn finish(
    report: &RunReport,
    after: Option<&str>,
    audit: Option<&AuditLog>,
    opts: &RunOptions,
    code: u8,
) -> Result<u8, Failure> {
    if opts.json {
        let mut value = serde_json::to_value(report)?;
        if let (Some(log), Some(path)) = (audit, &opts.audit) {
            value["audit"] = audit_cmd::anchor_json(path, log);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", report::render(report, after, audit, code));
    }
    Ok(code)
}

/// Every tool over the simulator, with rollouts checked quickly (the demo, `mcp --scenario`).
fn sim_tools(sim: &Simulator) -> Result<Vec<Arc<dyn Tool>>, Failure> {
    let limits = Limits {
        poll_interval: Duration::from_millis(50),
        rollout_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    Ok(sim.tools(limits)?)
}

/// Every tool over the cluster, scoped to `namespaces`: Kubernetes, and Trivy on `PATH` (`run`,
/// `mcp`).
fn cluster_tools(client: &kube::Client, namespaces: &[String]) -> Vec<Arc<dyn Tool>> {
    let scope = Scope::namespaces(namespaces.to_vec());
    sre_tools::toolset(
        client.clone(),
        scope,
        Limits::default(),
        Arc::new(TrivyCli::default()),
        Arc::new(RegistryClient::new()),
    )
}

async fn demo(scenario: &str, opts: &RunOptions) -> Result<u8, Failure> {
    let sim = Simulator::start_named(scenario).await?;
    let namespaces = sim.scenario().all_namespaces();
    let tools = sim_tools(&sim)?;
    let mode = approval_mode(opts)?;
    let (policy, approval) = policy(mode, &namespaces, opts);
    if !opts.json {
        eprintln!(
            "sre-agent demo: scenario {} on the embedded API simulator at {} (namespaces: {}); approval: {approval}",
            sim.scenario().name,
            sim.url(),
            namespaces.join(", ")
        );
        eprintln!("task: {}", sim.scenario().task);
    }
    let brain = brain(opts, &namespaces)?;
    let task = sim.scenario().task.clone();
    let (report, audit) = execute(brain, tools.clone(), policy, &task, opts).await?;
    let after = after(&tools).await;
    let code = exit_code(&report, after.as_ref(), false);
    let out = finish(
        &report,
        after.as_ref().map(|a| a.text.as_str()),
        audit.as_deref(),
        opts,
        code,
    );
    sim.shutdown().await;
    out
}

async fn cluster() -> Result<kube::Client, Failure> {
    let client = kube::Client::try_default().await.map_err(|e| {
        Failure(format!(
            "no Kubernetes cluster is configured ({e}): set KUBECONFIG or create ~/.kube/config (or run in a pod); to try sre-agent without a cluster, run `sre-agent demo`"
        ))
    })?;
    if let Err(e) = client.apiserver_version().await {
        return Err(Failure(format!(
            "cannot reach the Kubernetes API ({e}): check that the cluster is up and `kubectl config current-context` is the one you mean"
        )));
    }
    Ok(client)
}

fn scope_of(client: &kube::Client, namespaces: Vec<String>) -> Vec<String> {
    if namespaces.is_empty() {
        vec![client.default_namespace().to_owned()]
    } else {
        namespaces
    }
}

async fn run(
    task: Option<String>,
    namespaces: Vec<String>,
    dry_run: bool,
    allow_privileged: bool,
    opts: &RunOptions,
) -> Result<u8, Failure> {
    let brain = brain(opts, &namespaces)?;
    let client = cluster().await?;
    let namespaces = scope_of(&client, namespaces);
    let report = preflight(&client, &namespaces, rbac::TOOL_NAMES).await?;
    if !report.missing.is_empty() && !opts.json {
        eprintln!(
            "warning: the agent lacks permissions some tools need:\n{}",
            report.render()
        );
    }
    report
        .enforce(allow_privileged)
        .map_err(|e| Failure(format!("{e} (--allow-privileged)")))?;
    let mode = approval_mode(opts)?;
    let policy: Arc<dyn ApprovalPolicy> = if dry_run {
        Arc::new(DryRun)
    } else {
        let (policy, approval) = policy(mode, &namespaces, opts);
        if !opts.json {
            eprintln!("approval: {approval}");
        }
        policy
    };
    let tools = cluster_tools(&client, &namespaces);
    let task = task.unwrap_or_else(|| {
        format!(
            "Find unhealthy workloads in {} and fix what can be fixed safely.",
            namespaces.join(", ")
        )
    });
    let (report, audit) = execute(brain, tools.clone(), policy, &task, opts).await?;
    let after = after(&tools).await;
    let code = exit_code(&report, after.as_ref(), dry_run);
    finish(
        &report,
        after.as_ref().map(|a| a.text.as_str()),
        audit.as_deref(),
        opts,
        code,
    )
}

async fn triage(namespaces: Vec<String>) -> Result<u8, Failure> {
    let client = cluster().await?;
    let namespaces = scope_of(&client, namespaces);
    let tools = K8s::new(client, Scope::namespaces(namespaces)).read_tools();
    let after = after(&tools)
        .await
        .ok_or_else(|| Failure("triage failed".into()))?;
    println!("{}", after.text);
    Ok(if after.unhealthy { EXIT_HUMAN } else { EXIT_OK })
}

async fn scan(
    image: Option<String>,
    report: Option<PathBuf>,
    json: bool,
    trivy: PathBuf,
    server: Option<String>,
    timeout: u64,
) -> Result<u8, Failure> {
    let report: Arc<Report> = match (report, image) {
        // Strict: anything but a Trivy image/fs/repo JSON report (an SBOM, SARIF, a `trivy k8s`
        // report, `{}`) is an error naming what it is, never "0 vulnerabilities".
        (Some(path), _) => Arc::new(Report::from_file(&path)?),
        (None, Some(image)) => {
            let mut scanner = TrivyCli::new(trivy);
            scanner.server = server;
            scanner.timeout = Duration::from_secs(timeout);
            scanner.scan(&image).await?
        }
        (None, None) => return Err(Failure("give an image or --report FILE".into())),
    };
    let summary = Summary::of(&report);
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary.render());
    }
    Ok(if summary.unique.critical > 0 {
        EXIT_HUMAN
    } else {
        EXIT_OK
    })
}

async fn preflight_cmd(namespaces: Vec<String>) -> Result<u8, Failure> {
    let client = cluster().await?;
    let namespaces = scope_of(&client, namespaces);
    let report = preflight(&client, &namespaces, rbac::TOOL_NAMES).await?;
    println!("{}", report.render());
    Ok(if report.ok() { EXIT_OK } else { EXIT_HUMAN })
}
