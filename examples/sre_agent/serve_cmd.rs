//! `sre-agent serve`: the always-on agent in the cluster. Triggers (the workload watcher, the
//! Alertmanager webhook, the Trivy Operator sweep) become runs; a write that needs a human parks
//! its run in the store until a decision comes through the approvals API; `/healthz`, `/readyz`
//! and `/metrics` for the platform; JSON logs on stdout; SIGTERM parks what is in flight.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sre_core::secret::Secrets;
use sre_core::{Agent, Stop, TracingObserver};
use sre_tools::k8s::{Limits, Scope, preflight, rbac};
use sre_tools::playbook::Playbook;
use sre_tools::serve::api::{self, ApiState, ApiToken};
use sre_tools::serve::audit_sink::{AuditSink, AuditSinkConfig};
use sre_tools::serve::channel::{Channel, Channels, DecisionSink};
use sre_tools::serve::lease::{Elector, LeaseConfig};
use sre_tools::serve::metrics::Metrics;
use sre_tools::serve::secret::{
    API_TOKEN, Rule, SINK_TOKEN, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, ServiceSecret,
    TEAMS_APP_PASSWORD, TEAMS_WEBHOOK_URL,
};
use sre_tools::serve::slack::{self, Slack, SlackConfig};
use sre_tools::serve::teams::{self, Teams, TeamsConfig, TeamsWebhook};
use sre_tools::serve::{
    AgentFactory, Health, KubeStore, Queue, RunStore, Service, ServiceConfig, SqliteStore,
    Triggers, alertmanager, watch,
};
use sre_tools::trivy::registry::RegistryClient;
use sre_tools::trivy::registry::TagLister;
use sre_tools::trivy::scanner::{ImageScanner, TrivyCli};
use tokio::sync::Notify;

use crate::{Approve, Failure, Provider, RunOptions};

/// Where parked runs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreArg {
    /// A SQLite file: one process.
    Sqlite(PathBuf),
    /// ConfigMaps in the agent's own namespace: every replica, with leader election.
    Kubernetes,
}

impl FromStr for StoreArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "kubernetes" {
            return Ok(Self::Kubernetes);
        }
        match s.strip_prefix("sqlite:") {
            Some(path) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            _ => Err(format!(
                "{s:?} is not a store: use sqlite:PATH (one process) or kubernetes (replicas)"
            )),
        }
    }
}

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Namespaces to watch and act in (repeatable).
    #[arg(long = "namespace", short = 'n', required = true)]
    namespaces: Vec<String>,
    /// Where the HTTP server listens (approvals API, webhooks, health, metrics).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Where parked runs live: `sqlite:PATH` (one process) or `kubernetes` (ConfigMaps in the
    /// agent's own namespace, shared by replicas; turns leader election on).
    #[arg(long, default_value = "sqlite:sre-agent.db", value_name = "STORE")]
    store: StoreArg,
    /// The bearer token the approvals API accepts, by reference: `file:/var/run/secrets/…` (a
    /// mounted Secret, followed when it rotates), `env:NAME`, `vault:secret/data/sre#api-token`
    /// or `aws-sm:prod/sre-agent#api-token`. Needed by `--approve api`.
    #[arg(long, value_name = "REF")]
    api_token: Option<String>,
    /// The bearer token Alertmanager sends to `/webhooks/alertmanager`, by reference (the file
    /// Alertmanager's `http_config.authorization.credentials_file` reads too). Without it the
    /// webhook is off.
    #[arg(long, value_name = "REF")]
    webhook_token: Option<String>,
    /// How long a parked approval waits for a decision before the write is denied.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    approval_ttl: Duration,
    /// The agent's own namespace (the Lease and the store's ConfigMaps). Default: `$POD_NAMESPACE`,
    /// else the kube context's namespace.
    #[arg(long, value_name = "NS")]
    agent_namespace: Option<String>,
    /// This replica's identity. Default: `$POD_NAME`, else the host name.
    #[arg(long)]
    identity: Option<String>,
    /// How long a Lease lasts without renewal (leader election with `--store kubernetes`).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// After a run ends, the same incident is not handled again for this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    cooldown: Duration,
    /// An incident waits this long for more signals before its run starts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    debounce: Duration,
    /// Incidents queued at most; more are dropped (counted) until the queue drains.
    #[arg(long, default_value_t = 64)]
    queue_capacity: usize,
    /// Runs at once, at most.
    #[arg(long, default_value_t = 2)]
    max_runs: usize,
    /// How often Trivy Operator VulnerabilityReports are swept for new CRITICAL findings
    /// (`0s`: never).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    trivy_sweep: Duration,
    /// Ship audit events to Splunk HEC (`…/services/collector[/event]`) or Elasticsearch
    /// (`…/[INDEX/]_bulk`).
    #[arg(long, value_name = "URL")]
    audit_sink: Option<String>,
    /// The token for `--audit-sink` (HEC token or Elasticsearch API key), by reference.
    #[arg(long, value_name = "REF", requires = "audit_sink")]
    audit_sink_token: Option<String>,
    /// Logs on stdout: `json` (for Fluent Bit, Elastic, Splunk) or `text`.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
    #[command(flatten)]
    slack: SlackArgs,
    #[command(flatten)]
    teams: TeamsArgs,
    #[command(flatten)]
    opts: RunOptions,
}

/// Microsoft Teams (`--approve teams`): an Adaptive Card per parked approval, sent through the
/// Bot Framework connector, buttons answered at `POST /teams/messages` (Bot Framework JWTs, an
/// allow-list of users). With only `--teams-webhook-url`: a card that notifies and links to
/// the approvals API (not interactive).
#[derive(clap::Args, Debug)]
#[expect(clippy::struct_field_names, reason = "the flags are --teams-*")]
pub(crate) struct TeamsArgs {
    /// The bot's Microsoft App ID.
    #[arg(long, value_name = "GUID")]
    teams_app_id: Option<String>,
    /// The bot's client secret, by reference (`file:…`, `env:…`, `vault:…`, `aws-sm:…`).
    #[arg(long, value_name = "REF")]
    teams_app_password: Option<String>,
    /// The AAD object ids allowed to decide (`id1,id2`).
    #[arg(long, value_name = "IDS")]
    teams_approvers: Option<String>,
    /// The conversation the cards go to (a channel or chat id).
    #[arg(long, value_name = "ID")]
    teams_conversation_id: Option<String>,
    /// The Bot Framework service URL of that conversation (from an activity the bot received).
    #[arg(long, value_name = "URL")]
    teams_service_url: Option<String>,
    /// Where the Bot Framework's signing keys are published (for proxies and tests).
    #[arg(long, value_name = "URL", default_value = sre_tools::serve::teams::DEFAULT_OPENID_METADATA_URL)]
    teams_openid_metadata_url: String,
    /// The token endpoint of the bot's tenant (single-tenant bots:
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`).
    #[arg(long, value_name = "URL", default_value = sre_tools::serve::teams::DEFAULT_TOKEN_URL)]
    teams_token_url: String,
    /// A Workflows incoming-webhook URL, by reference (it holds a signature, so it is a
    /// secret): notification only.
    #[arg(long, value_name = "REF")]
    teams_webhook_url: Option<String>,
    /// The approvals API's base URL as approvers reach it, linked from webhook cards.
    #[arg(long, value_name = "URL")]
    teams_approvals_url: Option<String>,
}

impl TeamsArgs {
    async fn build(&self, secrets: &Secrets) -> Result<Option<Teams>, Failure> {
        let Some(app_id) = &self.teams_app_id else {
            return Ok(None);
        };
        let need = |v: Option<&String>, flag: &str| {
            v.cloned()
                .ok_or_else(|| Failure(format!("--teams-app-id needs {flag}")))
        };
        let reference = self
            .teams_app_password
            .as_deref()
            .ok_or_else(|| Failure("--teams-app-id needs --teams-app-password REF".into()))?;
        let password = secret(
            secrets,
            "--teams-app-password",
            reference,
            &TEAMS_APP_PASSWORD,
        )
        .await?;
        let approvers: Vec<String> = need(self.teams_approvers.as_ref(), "--teams-approvers IDS")?
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        let mut config = TeamsConfig::new(
            app_id,
            password,
            approvers,
            need(self.teams_service_url.as_ref(), "--teams-service-url URL")?,
            need(
                self.teams_conversation_id.as_ref(),
                "--teams-conversation-id ID",
            )?,
        );
        config
            .openid_metadata_url
            .clone_from(&self.teams_openid_metadata_url);
        config.token_url.clone_from(&self.teams_token_url);
        config.validate()?;
        Ok(Some(Teams::new(config)?))
    }

    async fn webhook(&self, secrets: &Secrets) -> Result<Option<TeamsWebhook>, Failure> {
        let Some(reference) = &self.teams_webhook_url else {
            return Ok(None);
        };
        // The URL is read once: a new one needs a restart (the card's sender keeps no state).
        let url = secret(
            secrets,
            "--teams-webhook-url",
            reference,
            &TEAMS_WEBHOOK_URL,
        )
        .await?;
        let url = url
            .get()
            .await
            .map_err(|e| Failure(format!("--teams-webhook-url: {e}")))?;
        Ok(Some(TeamsWebhook::new(
            url.expose(),
            self.teams_approvals_url.as_deref(),
        )?))
    }
}

/// Slack (`--approve slack`): a Block Kit question per parked approval, buttons answered at
/// `POST /slack/interactions` (signed requests, an allow-list of users).
#[derive(clap::Args, Debug)]
#[expect(clippy::struct_field_names, reason = "the flags are --slack-*")]
pub(crate) struct SlackArgs {
    /// The bot token (`xoxb-…`), by reference (`file:…`, `env:…`, `vault:…`, `aws-sm:…`).
    #[arg(long, value_name = "REF")]
    slack_bot_token: Option<String>,
    /// The app's signing secret, by reference.
    #[arg(long, value_name = "REF")]
    slack_signing_secret: Option<String>,
    /// The channel to ask in (an id such as `C0123ABCD`, or a name).
    #[arg(long, value_name = "CHANNEL")]
    slack_channel: Option<String>,
    /// The user ids allowed to decide (`U1,U2`).
    #[arg(long, value_name = "U1,U2")]
    slack_approvers: Option<String>,
    /// Members of this user group (`S…`) may decide too (needs `usergroups:read`).
    #[arg(long, value_name = "GROUP")]
    slack_approver_group: Option<String>,
    /// The Web API base (for proxies and tests).
    #[arg(long, value_name = "URL", default_value = sre_tools::serve::slack::DEFAULT_API_URL)]
    slack_api_url: String,
}

impl SlackArgs {
    async fn build(&self, secrets: &Secrets) -> Result<Slack, Failure> {
        let need = |v: &Option<String>, flag: &str| {
            v.clone()
                .ok_or_else(|| Failure(format!("--approve slack needs {flag} REF")))
        };
        let token = secret(
            secrets,
            "--slack-bot-token",
            &need(&self.slack_bot_token, "--slack-bot-token")?,
            &SLACK_BOT_TOKEN,
        )
        .await?;
        let signing = secret(
            secrets,
            "--slack-signing-secret",
            &need(&self.slack_signing_secret, "--slack-signing-secret")?,
            &SLACK_SIGNING_SECRET,
        )
        .await?;
        let channel = self
            .slack_channel
            .as_deref()
            .ok_or_else(|| Failure("--approve slack needs --slack-channel CHANNEL".into()))?;
        let mut config = SlackConfig::new(
            token,
            signing,
            channel,
            self.slack_approvers.as_deref().unwrap_or_default(),
        )?
        .with_api_url(&self.slack_api_url)?;
        if let Some(group) = &self.slack_approver_group {
            config = config.with_approver_group(group)?;
        }
        Ok(Slack::new(config)?)
    }
}

fn init_logs(format: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("SRE_AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The AWS runtime logs whole request and response bodies at trace level (a web identity
    // token, a Secrets Manager answer): never that far, whatever SRE_AGENT_LOG asks.
    for quiet in [
        "aws_sigv4=debug",
        "aws_smithy_runtime=debug",
        "aws_smithy_runtime_api=debug",
        "aws_config=debug",
    ] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(false);
    let _ = if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

fn identity(arg: Option<String>) -> String {
    arg.or_else(|| std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("sre-agent-{}", std::process::id()))
}

/// The service secret `reference` names, fetched and checked once now, so a missing or malformed
/// secret stops the start with an error naming the flag (never the value).
pub(crate) async fn secret(
    secrets: &Secrets,
    flag: &str,
    reference: &str,
    rule: &'static Rule,
) -> Result<ServiceSecret, Failure> {
    let secret = ServiceSecret::by_reference(rule, secrets, reference)
        .map_err(|e| Failure(format!("{flag}: {e}")))?;
    secret
        .check()
        .await
        .map_err(|e| Failure(format!("{flag}: {e}")))?;
    Ok(secret)
}

/// Runs `serve` until SIGTERM or SIGINT.
#[expect(
    clippy::too_many_lines,
    reason = "the service's wiring, in the order it starts"
)]
pub(crate) async fn serve(args: ServeArgs) -> Result<u8, Failure> {
    init_logs(&args.log_format);
    let opts = &args.opts;
    let modes: Vec<Approve> = if opts.approve.is_empty() {
        vec![Approve::Api]
    } else {
        opts.approve.clone()
    };
    if modes.contains(&Approve::Prompt) {
        return Err(Failure(
            "serve has no terminal to prompt at: use --approve api,slack,teams (a human decides later), auto or deny".into(),
        ));
    }
    if modes.len() > 1 && !modes.iter().all(|m| m.parks()) {
        return Err(Failure(
            "--approve auto or deny stands alone; only api, slack and teams combine (--approve slack,api)".into(),
        ));
    }
    let mode = modes[0];
    let secrets = crate::secrets::registry()?;
    let token = match &args.api_token {
        Some(reference) => Some(ApiToken::new(
            secret(&secrets, "--api-token", reference, &API_TOKEN).await?,
        )),
        None => None,
    };
    if modes.contains(&Approve::Api) && token.is_none() {
        return Err(Failure(
            "--approve api needs --api-token REF (e.g. file:/var/run/secrets/sre-agent/api-token): nobody could decide a parked approval without the approvals API".into(),
        ));
    }
    let webhook_token = match &args.webhook_token {
        Some(reference) => Some(ApiToken::new(
            secret(&secrets, "--webhook-token", reference, &API_TOKEN).await?,
        )),
        None => None,
    };
    let client = crate::cluster().await?;
    let namespaces = args.namespaces.clone();
    let own_namespace = args
        .agent_namespace
        .clone()
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let identity = identity(args.identity.clone());
    let names: Vec<&str> = rbac::TOOL_NAMES
        .iter()
        .copied()
        .chain(std::iter::once(rbac::TRIGGERS))
        .collect();
    let report = preflight(&client, &namespaces, &names).await?;
    if !report.missing.is_empty() {
        tracing::warn!(missing = %report.render(), "the agent lacks permissions some tools need");
    }
    report.enforce(false)?;

    let metrics = Arc::new(Metrics::new());
    let elect = args.store == StoreArg::Kubernetes;
    let health = Arc::new(Health::new(elect));
    let store: Arc<dyn RunStore> = match &args.store {
        StoreArg::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        StoreArg::Kubernetes => Arc::new(KubeStore::new(client.clone(), &own_namespace)),
    };
    let queue = Arc::new(Queue::new(args.queue_capacity, args.debounce));
    let decided = Arc::new(Notify::new());
    let stop = Stop::new();

    let sink = match &args.audit_sink {
        Some(url) => {
            let token = match &args.audit_sink_token {
                Some(reference) => {
                    Some(secret(&secrets, "--audit-sink-token", reference, &SINK_TOKEN).await?)
                }
                None => None,
            };
            let config = AuditSinkConfig::parse(url, token)?;
            let (sink, _task) = AuditSink::start(config, Arc::clone(&metrics));
            Some(sink)
        }
        None => None,
    };
    let audit_log = match &opts.audit {
        Some(path) => Some(Arc::new(crate::audit_cmd::open_log(path, &opts.audit_key)?)),
        None => None,
    };

    // One brain for every run, except the playbook, which is scoped to the incident's namespace.
    let shared_brain = match opts.provider {
        Provider::Offline => None,
        _ => Some(crate::brain(opts, &namespaces)?),
    };
    // One agent per namespace, built once: its brain scoped to the namespace (the playbook is
    // stateless; a model provider is shared), its tools scoped to it, its policy; every run is a
    // clone (runs are independent), so an incident starts without building anything.
    let factory: AgentFactory = {
        // One scanner and one registry client (its TLS setup) for every namespace.
        let scanner: Arc<dyn ImageScanner> = Arc::new(TrivyCli::default());
        let tags: Arc<dyn TagLister> = Arc::new(RegistryClient::new());
        let mut agents: Vec<(String, Agent)> = Vec::with_capacity(namespaces.len());
        for ns in &namespaces {
            let brain: Arc<dyn sre_core::LlmProvider> = match &shared_brain {
                Some(b) => Arc::clone(b),
                None => Arc::new(Playbook::new([ns.clone()])),
            };
            let tools = sre_tools::toolset(
                client.clone(),
                Scope::namespaces([ns.clone()]),
                Limits::default(),
                Arc::clone(&scanner),
                Arc::clone(&tags),
            );
            let mut builder = Agent::builder_arc(brain)
                .tools(tools)
                .policy_arc(crate::policy(mode, std::slice::from_ref(ns), opts).0)
                .max_steps(opts.max_steps)
                .approval_ttl(args.approval_ttl)
                .observer_arc(metrics.observer())
                .observer(TracingObserver);
            if let Some(log) = &audit_log {
                builder = builder.audit_log(Arc::clone(log));
            }
            if let Some(sink) = &sink {
                builder = builder.observer_arc(Arc::clone(sink) as Arc<dyn sre_core::Observer>);
            }
            agents.push((ns.clone(), builder.build()?));
        }
        let namespaces = namespaces.clone();
        Arc::new(move |incident| {
            agents
                .iter()
                .find(|(ns, _)| *ns == incident.namespace)
                .map(|(_, agent)| agent.clone())
                .ok_or_else(|| {
                    format!(
                        "namespace {:?} is not in scope ({})",
                        incident.namespace,
                        namespaces.join(", ")
                    )
                })
        })
    };
    let triggers: Triggers = {
        let client = client.clone();
        let namespaces = namespaces.clone();
        let queue = Arc::clone(&queue);
        let health = Arc::clone(&health);
        let sweep = args.trivy_sweep;
        Arc::new(move |term: Stop| {
            tokio::spawn(watch::watch_workloads(
                client.clone(),
                namespaces.clone(),
                Arc::clone(&queue),
                Arc::clone(&health),
                term.clone(),
            ));
            if !sweep.is_zero() {
                tokio::spawn(watch::trivy_sweep(
                    client.clone(),
                    namespaces.clone(),
                    Arc::clone(&queue),
                    sweep,
                    term,
                ));
            }
        })
    };

    // Leadership: a Lease with the shared store, else this process alone.
    let (leading_tx, leading_rx) = tokio::sync::watch::channel(!elect);
    let elector = if elect {
        let mut config = LeaseConfig::new(&own_namespace, &identity);
        config.duration = args.lease_duration;
        config.renew_every = (args.lease_duration / 5).max(Duration::from_millis(200));
        let elector = Elector::new(client.clone(), config)?;
        Some(tokio::spawn(elector.run(
            Arc::clone(&health),
            leading_tx,
            stop.clone(),
        )))
    } else {
        drop(leading_tx);
        None
    };
    {
        let metrics = Arc::clone(&metrics);
        let mut rx = leading_rx.clone();
        tokio::spawn(async move {
            loop {
                let now = *rx.borrow_and_update();
                metrics.set_leader(now);
                if rx.changed().await.is_err() {
                    return;
                }
                metrics.lease_transition();
            }
        });
    }

    let router = api::router(ApiState {
        store: Arc::clone(&store),
        token,
        metrics: Arc::clone(&metrics),
        health: Arc::clone(&health),
        decided: Arc::clone(&decided),
    });
    // An unauthenticated webhook would let anyone who reaches the port start runs: off unless
    // a token is configured.
    let router = match webhook_token {
        Some(token) => router.merge(alertmanager::routes(Arc::clone(&queue), Some(token))),
        None => router,
    };
    // Chat channels: they ask about every parked approval; their endpoints record a verified
    // human's decision in the store (audited), as the approvals API does.
    let mut audit: Vec<Arc<dyn sre_core::Observer>> = Vec::new();
    if let Some(log) = &audit_log {
        audit.push(Arc::clone(log) as Arc<dyn sre_core::Observer>);
    }
    if let Some(sink) = &sink {
        audit.push(Arc::clone(sink) as Arc<dyn sre_core::Observer>);
    }
    let decisions = DecisionSink {
        store: Arc::clone(&store),
        decided: Arc::clone(&decided),
        metrics: Arc::clone(&metrics),
        audit,
    };
    let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
    let mut router = router;
    if modes.contains(&Approve::Slack) {
        let slack = Arc::new(args.slack.build(&secrets).await?);
        router = router.merge(slack::routes(Arc::clone(&slack), decisions.clone()));
        channels.push(slack);
    }
    if modes.contains(&Approve::Teams) {
        let bot = args.teams.build(&secrets).await?;
        let webhook = args.teams.webhook(&secrets).await?;
        if bot.is_none() && webhook.is_none() {
            return Err(Failure(
                "--approve teams needs --teams-app-id (with --teams-app-password, --teams-approvers, --teams-service-url, --teams-conversation-id) or --teams-webhook-url".into(),
            ));
        }
        if let Some(bot) = bot {
            let bot = Arc::new(bot);
            router = router.merge(teams::routes(Arc::clone(&bot), decisions.clone()));
            channels.push(bot);
        }
        if let Some(webhook) = webhook {
            if !modes.contains(&Approve::Api) {
                return Err(Failure(
                    "--teams-webhook-url only notifies (not interactive): add --approve api so that someone can decide".into(),
                ));
            }
            channels.push(Arc::new(webhook));
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", args.listen)))?;
    let bound = listener.local_addr()?;
    let http = {
        let stop = stop.clone();
        tokio::spawn(api::serve(listener, router, async move {
            stop.stopped().await;
        }))
    };
    tracing::info!(
        listen = %bound,
        namespaces = ?namespaces,
        identity = %identity,
        agent_namespace = %own_namespace,
        store = ?args.store,
        approve = ?mode,
        "sre-agent serve started"
    );

    let config = ServiceConfig {
        cooldown: args.cooldown,
        max_runs: args.max_runs,
        scope: Some(namespaces.clone()),
        // List prices by model (`name/model` → model); unknown models count no cost.
        cost: Some(Arc::new(|provider: &str, usage: sre_core::Usage| {
            let priced = provider.split_once('/').map_or(provider, |(_, m)| m);
            sre_llm::PriceTable::default().cost(priced, usage)
        })),
        channels: Channels::new(channels),
        ..ServiceConfig::new(identity)
    };
    let service = Service::new(
        config,
        store,
        queue,
        Arc::clone(&metrics),
        factory,
        triggers,
        decided,
    );
    let service = tokio::spawn(service.run(leading_rx, stop.clone()));

    shutdown_signal().await;
    tracing::info!("stopping: parking runs in flight");
    stop.stop();
    let _ = service.await;
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    if let Some(sink) = &sink {
        let stats = sink.close(Duration::from_secs(5)).await;
        tracing::info!(stats = ?stats, "audit sink closed");
    }
    let _ = http.await;
    tracing::info!("stopped");
    Ok(crate::EXIT_OK)
}

/// Ctrl-C or SIGTERM (`serve` and `mcp --listen` stop on either).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
