//! [`Metrics`]: what `serve` exposes on `/metrics`, in the `OpenMetrics` text format
//! (prometheus-client).
//!
//! Every family is prefixed `sre_agent_`:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `sre_agent_runs_started_total` | counter | `trigger` |
//! | `sre_agent_runs_total` | counter | `trigger`, `outcome` |
//! | `sre_agent_approvals_total` | counter | `decision` |
//! | `sre_agent_approval_latency_seconds` | histogram | |
//! | `sre_agent_tool_calls_total` | counter | `tool`, `result` |
//! | `sre_agent_tool_call_seconds` | histogram | `tool` |
//! | `sre_agent_tokens_total` | counter | `provider`, `direction` |
//! | `sre_agent_cost_usd_total` | counter | `provider` |
//! | `sre_agent_queue_depth` | gauge | |
//! | `sre_agent_queue_dropped_total` | counter | |
//! | `sre_agent_leader` | gauge | |
//! | `sre_agent_lease_transitions_total` | counter | |
//! | `sre_agent_audit_events_total` | counter | `sink`, `result` |
//!
//! Label values are bounded, because some come from untrusted input (a tool name is whatever the
//! model wrote): a tool outside [`known_tools`] is `other`, an outcome or a decision outside its
//! documented set is `other`, and at most [`MAX_FREE_LABELS`] distinct provider or sink names are
//! kept (later ones are `other`), each reduced to a safe alphabet (the exposition format does not
//! escape label values).
//!
//! ```
//! use std::time::Duration;
//! use sre_tools::serve::{Trigger, metrics::Metrics};
//!
//! let metrics = Metrics::new();
//! metrics.run_started(Trigger::Watcher);
//! metrics.tool_call("k8s_get_deployment", true, Duration::from_millis(12));
//! metrics.tool_call("rm -rf /", false, Duration::from_millis(1));
//! let text = metrics.encode();
//! assert!(text.contains(r#"sre_agent_runs_started_total{trigger="watcher"} 1"#));
//! assert!(text.contains(r#"sre_agent_tool_calls_total{tool="other",result="error"} 1"#));
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use sre_core::{Event, Observer};

use super::Trigger;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The tools outside the Kubernetes table ([`TOOL_NAMES`](crate::k8s::rbac::TOOL_NAMES)) that
/// get their own `tool` label value: the Trivy and image tools that need no cluster.
pub const IMAGE_TOOLS: &[&str] = &["trivy_scan_image", "image_recommend"];

/// Every tool name that gets its own `tool` label value: the Kubernetes tools
/// ([`TOOL_NAMES`](crate::k8s::rbac::TOOL_NAMES)) and [`IMAGE_TOOLS`]; any other is `other`.
pub fn known_tools() -> impl Iterator<Item = &'static str> {
    crate::k8s::rbac::TOOL_NAMES
        .iter()
        .chain(IMAGE_TOOLS)
        .copied()
}

/// Run outcomes that get their own `outcome` label value; any other is `other`.
pub const OUTCOMES: &[&str] = &[
    "completed",
    "parked",
    "failed",
    "cancelled",
    "denied",
    "expired",
    "max_steps",
    "token_budget",
    "deadline",
    "repeated_calls",
    "provider_error",
];

/// How many distinct provider (and, separately, sink) names get their own label value; later
/// ones are `other`.
pub const MAX_FREE_LABELS: usize = 16;

/// The longest provider or sink label value kept (characters).
const MAX_LABEL_LEN: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    trigger: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolResultLabels {
    tool: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    sink: String,
    result: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn tool_call_histogram() -> Histogram {
    // 5 ms .. ~41 s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Approvals take seconds to hours.
const APPROVAL_BUCKETS: [f64; 14] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0,
    86400.0,
];

/// A set of at most [`MAX_FREE_LABELS`] label values chosen at run time.
#[derive(Debug, Default)]
struct FreeLabels(Mutex<Vec<String>>);

impl FreeLabels {
    fn get(&self, raw: &str) -> String {
        let value = sanitize(raw);
        let Ok(mut seen) = self.0.lock() else {
            return "other".to_owned();
        };
        if seen.contains(&value) {
            return value;
        }
        if seen.len() < MAX_FREE_LABELS {
            seen.push(value.clone());
            return value;
        }
        "other".to_owned()
    }
}

/// A label value in a safe alphabet (letters, digits, `_ . : / @ + -`), at most 64 characters.
fn sanitize(raw: &str) -> String {
    let value: String = raw
        .trim()
        .chars()
        .take(MAX_LABEL_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:/@+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if value.is_empty() {
        "unknown".to_owned()
    } else {
        value
    }
}

/// The `tool` label of a tool name: the name when it is one of [`known_tools`], else `other`.
pub fn tool_label(tool: &str) -> &'static str {
    known_tools().find(|t| *t == tool).unwrap_or("other")
}

/// The `outcome` label of an outcome name: the name when it is in [`OUTCOMES`], else `other`.
pub fn outcome_label(outcome: &str) -> &'static str {
    OUTCOMES
        .iter()
        .find(|o| **o == outcome)
        .copied()
        .unwrap_or("other")
}

/// The outcome name of a finished run, for [`Metrics::run_finished`] (`completed`, `parked`,
/// `max_steps`, `token_budget`, `deadline`, `repeated_calls`, `provider_error`).
pub fn outcome_name(outcome: &sre_core::Outcome) -> &'static str {
    use sre_core::Outcome as O;
    match outcome {
        O::Completed => "completed",
        O::Parked { .. } => "parked",
        O::MaxSteps => "max_steps",
        O::TokenBudget => "token_budget",
        O::Deadline => "deadline",
        O::RepeatedCalls => "repeated_calls",
        O::ProviderError { .. } => "provider_error",
        _ => "other",
    }
}

/// The `decision` label: `approve`, `reject`, `expired` (also accepted: `approved`, `rejected`,
/// `denied`, `deny`), else `other`.
fn decision_label(decision: &str) -> &'static str {
    match decision {
        "approve" | "approved" => "approve",
        "reject" | "rejected" | "deny" | "denied" => "reject",
        "expired" | "expire" => "expired",
        _ => "other",
    }
}

/// Every metric `serve` exposes, registered once; cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs_started: Family<TriggerLabels, Counter>,
    runs: Family<RunLabels, Counter>,
    approvals: Family<DecisionLabels, Counter>,
    approval_latency: Histogram,
    tool_calls: Family<ToolResultLabels, Counter>,
    tool_seconds: HistogramFamily<ToolLabels>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<ProviderLabels, Counter<f64, AtomicU64>>,
    queue_depth: Gauge,
    queue_dropped: Counter,
    leader: Gauge,
    lease_transitions: Counter,
    audit: Family<AuditLabels, Counter>,
    providers: FreeLabels,
    sinks: FreeLabels,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sre_agent");
        let runs_started = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "runs_started",
            "Agent runs started, by trigger",
            runs_started.clone(),
        );
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runs",
            "Agent runs finished, by trigger and outcome",
            runs.clone(),
        );
        let approvals = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "approvals",
            "Approval decisions, by decision (approve, reject, expired)",
            approvals.clone(),
        );
        let approval_latency = Histogram::new(APPROVAL_BUCKETS);
        registry.register_with_unit(
            "approval_latency",
            "Time from an approval request to its decision",
            Unit::Seconds,
            approval_latency.clone(),
        );
        let tool_calls = Family::<ToolResultLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls, by tool and result (ok, error)",
            tool_calls.clone(),
        );
        let tool_seconds: HistogramFamily<ToolLabels> =
            Family::new_with_constructor(tool_call_histogram);
        registry.register_with_unit(
            "tool_call",
            "Tool call wall time, by tool",
            Unit::Seconds,
            tool_seconds.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Model tokens, by provider and direction (input, output)",
            tokens.clone(),
        );
        let cost = Family::<ProviderLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "Estimated model cost in US dollars, by provider",
            cost.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Incidents waiting in the queue",
            queue_depth.clone(),
        );
        let queue_dropped = Counter::default();
        registry.register(
            "queue_dropped",
            "Incidents dropped because the queue was full",
            queue_dropped.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the lease, else 0",
            leader.clone(),
        );
        let lease_transitions = Counter::default();
        registry.register(
            "lease_transitions",
            "Times this replica gained or lost the lease",
            lease_transitions.clone(),
        );
        let audit = Family::<AuditLabels, Counter>::default();
        registry.register(
            "audit_events",
            "Audit events sent to a sink, by sink and result (shipped, dropped)",
            audit.clone(),
        );
        Self {
            registry,
            runs_started,
            runs,
            approvals,
            approval_latency,
            tool_calls,
            tool_seconds,
            tokens,
            cost,
            queue_depth,
            queue_dropped,
            leader,
            lease_transitions,
            audit,
            providers: FreeLabels::default(),
            sinks: FreeLabels::default(),
        }
    }

    /// A run started.
    pub fn run_started(&self, trigger: Trigger) {
        self.runs_started
            .get_or_create(&TriggerLabels {
                trigger: trigger.as_str(),
            })
            .inc();
    }

    /// A run ended with `outcome` (one of [`OUTCOMES`]; any other counts as `other`; see
    /// [`outcome_name`]).
    pub fn run_finished(&self, trigger: Trigger, outcome: &str) {
        self.runs
            .get_or_create(&RunLabels {
                trigger: trigger.as_str(),
                outcome: outcome_label(outcome),
            })
            .inc();
    }

    /// An approval was decided (`approve`, `reject` or `expired`) `latency` after it was asked.
    pub fn approval_decided(&self, decision: &str, latency: Duration) {
        self.approvals
            .get_or_create(&DecisionLabels {
                decision: decision_label(decision),
            })
            .inc();
        self.approval_latency.observe(latency.as_secs_f64());
    }

    /// A tool call finished (`ok` false: it returned an error) after `latency`.
    pub fn tool_call(&self, tool: &str, ok: bool, latency: Duration) {
        let tool = tool_label(tool);
        let result = if ok { "ok" } else { "error" };
        self.tool_calls
            .get_or_create(&ToolResultLabels { tool, result })
            .inc();
        self.tool_seconds
            .get_or_create(&ToolLabels { tool })
            .observe(latency.as_secs_f64());
    }

    /// A model used `input` and `output` tokens at an estimated `cost_usd` (negative or
    /// non-finite costs are ignored).
    pub fn tokens(&self, provider: &str, input: u64, output: u64, cost_usd: f64) {
        let provider = self.providers.get(provider);
        for (direction, n) in [("input", input), ("output", output)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    provider: provider.clone(),
                    direction,
                })
                .inc_by(n);
        }
        let cost = self.cost.get_or_create(&ProviderLabels { provider });
        if cost_usd.is_finite() && cost_usd > 0.0 {
            cost.inc_by(cost_usd);
        }
    }

    /// Incidents waiting in the queue now.
    pub fn set_queue_depth(&self, n: usize) {
        self.queue_depth.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `n` incidents were dropped because the queue was full.
    pub fn queue_dropped(&self, n: u64) {
        self.queue_dropped.inc_by(n);
    }

    /// This replica holds the lease (or not).
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// This replica gained or lost the lease.
    pub fn lease_transition(&self) {
        self.lease_transitions.inc();
    }

    /// `n` audit events reached `sink`.
    pub fn audit_shipped(&self, sink: &str, n: u64) {
        self.audit_events(sink, "shipped", n);
    }

    /// `n` audit events meant for `sink` were dropped.
    pub fn audit_dropped(&self, sink: &str, n: u64) {
        self.audit_events(sink, "dropped", n);
    }

    fn audit_events(&self, sink: &str, result: &'static str, n: u64) {
        self.audit
            .get_or_create(&AuditLabels {
                sink: self.sinks.get(sink),
                result,
            })
            .inc_by(n);
    }

    /// Every metric in the `OpenMetrics` text exposition format (ends with `# EOF`); serve it with
    /// [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String does not fail; keep what was written and say so.
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// An observer that counts tool calls and their latency from [`Event::ToolFinished`].
    pub fn observer(self: &Arc<Self>) -> Arc<dyn Observer> {
        Arc::new(MetricsObserver(Arc::clone(self)))
    }
}

/// Feeds [`Metrics`] from a run's events.
struct MetricsObserver(Arc<Metrics>);

impl Observer for MetricsObserver {
    fn on_event(&self, event: &Event) {
        if let Event::ToolFinished {
            tool,
            ok,
            duration_ms,
            ..
        } = event
        {
            self.0
                .tool_call(tool, *ok, Duration::from_millis(*duration_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tools_are_the_rbac_tools_plus_the_image_tools() {
        for t in crate::k8s::rbac::TOOL_NAMES {
            assert_eq!(tool_label(t), *t);
        }
        assert_eq!(tool_label("trivy_scan_image"), "trivy_scan_image");
        assert_eq!(tool_label("image_recommend"), "image_recommend");
        assert_eq!(tool_label("k8s_delete_everything"), "other");
    }

    #[test]
    fn free_labels_are_sanitized_and_bounded() {
        let labels = FreeLabels::default();
        assert_eq!(labels.get("groq/llama-3.3"), "groq/llama-3.3");
        assert_eq!(labels.get("a\"b\nc} d"), "a_b_c__d");
        assert_eq!(labels.get("  "), "unknown");
        assert_eq!(labels.get(&"x".repeat(200)).len(), MAX_LABEL_LEN);
        for i in 0..MAX_FREE_LABELS {
            labels.get(&format!("p{i}"));
        }
        assert_eq!(labels.get("one-too-many"), "other");
        assert_eq!(labels.get("groq/llama-3.3"), "groq/llama-3.3");
    }

    #[test]
    fn decisions_and_outcomes_are_bounded() {
        assert_eq!(decision_label("approved"), "approve");
        assert_eq!(decision_label("deny"), "reject");
        assert_eq!(decision_label("maybe"), "other");
        assert_eq!(outcome_label("completed"), "completed");
        assert_eq!(outcome_label("<script>"), "other");
        assert_eq!(outcome_name(&sre_core::Outcome::Deadline), "deadline");
    }
}
