//! The offline playbook brain: an [`LlmProvider`] with no model behind it. It reads the transcript,
//! plans the standard runbooks as tool calls, and writes the final report. It is deterministic,
//! stateless (everything it knows is in the transcript), never repeats a call, asks no further write
//! once one is denied, and obeys the agent's budgets like a model (its token usage is an estimate).
//!
//! Several incidents at once are the normal case: rollout failures that are the same incident (the
//! same finding on the same image in the same container) are diagnosed once and rolled back
//! workload by workload; every read the runbooks need is asked in one step, then every write in one
//! step, so a run over 1 or 20 incidents takes the same four steps. Reads that do not depend on each
//! other share a step (the triage and the Trivy reports; a deployment and the recommendation for
//! the image its report scanned): every model call resends the tool specs and the transcript.
//!
//! Runbooks:
//! - crash-looping release → previous container's logs + events → revisions → roll back;
//! - image that cannot be pulled → events → revisions → roll back to the last image that pulled;
//! - OOMKilled → logs + pod description → report with a suggested memory limit (no change);
//! - unschedulable → events → report the scheduler's reason (no change);
//! - critical CVEs (when the task asks about security) → Trivy Operator reports → the running image →
//!   recommendation → patch the image → verify.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use sre_core::{ChatRequest, LlmProvider, Message};
//! let brain = sre_tools::playbook::Playbook::new(["shop"]);
//! let first = brain
//!     .chat(&ChatRequest { messages: vec![Message::user("shop/web is failing")], ..Default::default() })
//!     .await
//!     .unwrap();
//! assert_eq!(first.message.tool_calls[0].name, "k8s_find_unhealthy");
//! # }
//! ```

mod data;

use std::fmt::Write as _;

use async_trait::async_trait;
use serde_json::{Value, json};
use sre_core::{
    ChatRequest, ChatResponse, LlmError, LlmProvider, Message, Role, StopReason, ToolCall, Usage,
};

pub(crate) use data::workloads_of;
use data::{Workload, images_of, recommended_of, reports_of, revisions_of};

/// The playbook brain.
#[derive(Debug, Clone)]
pub struct Playbook {
    namespaces: Vec<String>,
}

impl Playbook {
    /// A playbook for the namespaces in the agent's scope (used for the security runbook).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(namespaces: I) -> Self {
        Self {
            namespaces: namespaces.into_iter().map(Into::into).collect(),
        }
    }
}

/// A call already made, with its result.
struct Done<'a> {
    call: &'a ToolCall,
    result: Option<&'a Message>,
}

/// What the transcript says so far.
struct History<'a> {
    task: String,
    done: Vec<Done<'a>>,
    tools: Vec<String>,
}

impl<'a> History<'a> {
    fn of(request: &'a ChatRequest) -> Self {
        let task = request
            .messages
            .iter()
            .filter(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let mut done = Vec::new();
        for m in &request.messages {
            for c in &m.tool_calls {
                let result = request.messages.iter().find(|r| {
                    r.role == Role::Tool && r.tool_call_id.as_deref() == Some(c.id.as_str())
                });
                done.push(Done { call: c, result });
            }
        }
        Self {
            task,
            done,
            tools: request.tools.iter().map(|t| t.name.clone()).collect(),
        }
    }

    fn find(&self, name: &str, args: &Value) -> Option<&Done<'a>> {
        self.done
            .iter()
            .find(|d| d.call.name == name && &d.call.arguments == args)
    }

    /// The result text of a call made, `Err` with the text when it failed.
    fn result(&self, name: &str, args: &Value) -> Option<Result<&'a str, &'a str>> {
        let d = self.find(name, args)?;
        let m = d.result?;
        Some(if m.is_error {
            Err(m.content.as_str())
        } else {
            Ok(m.content.as_str())
        })
    }

    /// The typed data of a call that succeeded.
    fn data(&self, name: &str, args: &Value) -> Option<&'a Value> {
        let m = self.find(name, args)?.result?;
        if m.is_error { None } else { m.data.as_ref() }
    }

    fn has_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t == name)
    }

    fn wants_security(&self) -> bool {
        let t = self.task.to_lowercase();
        [
            "security",
            "cve",
            "vulnerab",
            "trivy",
            "scan",
            "patch image",
        ]
        .iter()
        .any(|k| t.contains(k))
    }
}

/// The next step: calls to make, or the final report.
enum Step {
    Calls(Vec<(String, Value)>),
    Final(String),
}

/// Collects the calls a runbook still needs, and what it concluded.
#[derive(Default)]
struct Plan {
    calls: Vec<(String, Value)>,
    findings: Vec<String>,
    actions: Vec<String>,
    human: Vec<String>,
    stop: Option<String>,
    /// Writes are queued only once every read of the step is answered, so one step asks for all
    /// of them at once (a write never waits behind another workload's reads).
    allow_writes: bool,
}

impl Plan {
    /// `Some(result)` when the call was made; otherwise queues it and returns `None`.
    fn need<'a>(
        &mut self,
        h: &History<'a>,
        name: &str,
        args: Value,
    ) -> Option<Result<&'a str, &'a str>> {
        if let Some(r) = h.result(name, &args) {
            return Some(r);
        }
        if h.find(name, &args).is_none() && !self.calls.iter().any(|(n, a)| n == name && *a == args)
        {
            self.calls.push((name.to_owned(), args));
        }
        None
    }
}

impl Plan {
    /// A write's result when it was made. Otherwise the write is queued, unless the step still
    /// waits for reads or an earlier write was denied (a denial ends the run's writes).
    fn write<'a>(
        &mut self,
        h: &History<'a>,
        name: &str,
        args: Value,
    ) -> Option<Result<&'a str, &'a str>> {
        if let Some(r) = h.result(name, &args) {
            return Some(r);
        }
        if self.allow_writes && self.stop.is_none() {
            self.need(h, name, args)
        } else {
            None
        }
    }
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join(" / ")
}

fn last_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join(" / ")
}

/// Doubles a memory limit like `128Mi` (rounded to a power-of-two-ish step).
fn suggest_memory(limit: &str) -> Option<String> {
    let digits: String = limit.chars().take_while(char::is_ascii_digit).collect();
    let unit = &limit[digits.len()..];
    let n: u64 = digits.parse().ok()?;
    Some(format!("{}{unit}", n * 2))
}

/// Records a write's result: an action, a denial (the first one is the run's stop line; no
/// further write is asked after it), or a failure for a human.
fn record_write(plan: &mut Plan, what: &str, result: Result<&str, &str>) {
    match result {
        Ok(text) => {
            let verified = text
                .lines()
                .find(|l| l.starts_with("verification:"))
                .unwrap_or("verification: none");
            plan.actions
                .push(format!("{what}: {}; {verified}", first_lines(text, 1)));
            if text.contains("automatic rollback") {
                plan.human.push(format!("{what} failed its verification and was rolled back automatically: investigate before retrying"));
            }
        }
        Err(e) if e.starts_with("denied by") => {
            if plan.stop.is_none() {
                plan.stop = Some(format!(
                    "I would have applied: {what}. The approval policy denied it ({}), so nothing was changed. \
                     A human has to decide: apply it by hand, or approve it in a new run.",
                    first_lines(e, 1)
                ));
            } else {
                plan.human.push(format!(
                    "{what} was denied ({}): nothing was changed",
                    first_lines(e, 1)
                ));
            }
        }
        Err(e) => {
            plan.human
                .push(format!("{what} was not applied: {}", first_lines(e, 1)));
        }
    }
}

/// How many workload names a grouped finding lists before "and N more".
const NAMES_SHOWN: usize = 10;

fn names(group: &[&Workload]) -> String {
    let mut out = group
        .iter()
        .take(NAMES_SHOWN)
        .map(|w| format!("{}/{}", w.namespace, w.name))
        .collect::<Vec<_>>()
        .join(", ");
    if group.len() > NAMES_SHOWN {
        let _ = write!(out, " and {} more", group.len() - NAMES_SHOWN);
    }
    out
}

/// Diagnoses a group of workloads failing the same way (the same finding on the same image) once,
/// from the first one's pod: the previous container's logs for a crash loop, the events for a pull
/// failure.
fn diagnose(h: &History<'_>, plan: &mut Plan, group: &[&Workload]) {
    let w = group[0];
    let f = &w.findings[0];
    let Some(pod) = f.pods.first() else {
        plan.human.push(format!(
            "{}/{}: {} but no pod to inspect",
            w.namespace, w.name, f.kind
        ));
        return;
    };
    let who = if group.len() == 1 {
        format!("{}/{}", w.namespace, w.name)
    } else {
        format!(
            "{} workloads failing the same way ({}; diagnosed from {}/{})",
            group.len(),
            names(group),
            w.namespace,
            pod
        )
    };
    if f.kind == "CrashLoopBackOff" {
        let mut args =
            json!({"namespace": w.namespace, "pod": pod, "previous": true, "tail_lines": 20});
        if let Some(c) = &f.container {
            args["container"] = json!(c);
        }
        let logs = plan.need(h, "k8s_pod_logs", args);
        let events = plan.need(
            h,
            "k8s_events",
            json!({"namespace": w.namespace, "name": pod}),
        );
        if let (Some(Ok(logs)), Some(_)) = (logs, events) {
            plan.findings.push(format!(
                "{who}: container {} crash-loops; last log lines: {}",
                f.container.as_deref().unwrap_or("?"),
                last_lines(logs, 2)
            ));
        }
    } else if let Some(Ok(events)) = plan.need(
        h,
        "k8s_events",
        json!({"namespace": w.namespace, "name": pod}),
    ) {
        let warning = events
            .lines()
            .find(|l| l.starts_with("Warning"))
            .unwrap_or("no warning events");
        plan.findings.push(format!(
            "{who}: image {} cannot be pulled; {warning}",
            f.image.as_deref().unwrap_or("?")
        ));
    }
}

/// Rolls one crash-looping or unpullable workload back to its previous revision (its deployment
/// read first); the write is queued only once the step's reads are answered.
fn roll_back(h: &History<'_>, plan: &mut Plan, w: &Workload) {
    if w.kind != "Deployment" {
        plan.human.push(format!(
            "{}/{} {} is not a Deployment: roll it back by hand",
            w.namespace, w.kind, w.name
        ));
        return;
    }
    let dep_args = json!({"namespace": w.namespace, "deployment": w.name});
    let Some(Ok(_)) = plan.need(h, "k8s_get_deployment", dep_args.clone()) else {
        return;
    };
    let revisions = revisions_of(h.data("k8s_get_deployment", &dep_args));
    let Some(previous) = revisions.iter().find(|r| !r.current) else {
        plan.human.push(format!(
            "{}/{} has no earlier revision to roll back to: fix the release",
            w.namespace, w.name
        ));
        return;
    };
    let what = format!(
        "roll back deployment {}/{} to revision {} ({})",
        w.namespace, w.name, previous.number, previous.images
    );
    let args = json!({"namespace": w.namespace, "deployment": w.name});
    if let Some(result) = plan.write(h, "k8s_rollback", args) {
        record_write(plan, &what, result);
    }
}

fn handle_report_only(h: &History<'_>, plan: &mut Plan, w: &Workload) {
    let f = &w.findings[0];
    let pod = f.pods.first().cloned();
    match f.kind.as_str() {
        "OOMKilled" => {
            if let Some(pod) = pod {
                let mut args = json!({"namespace": w.namespace, "pod": pod, "previous": true, "tail_lines": 20});
                if let Some(c) = &f.container {
                    args["container"] = json!(c);
                }
                let logs = plan.need(h, "k8s_pod_logs", args);
                let describe = plan.need(
                    h,
                    "k8s_describe_pod",
                    json!({"namespace": w.namespace, "pod": pod}),
                );
                if let (Some(logs), Some(_)) = (logs, describe) {
                    let limit = f.memory_limit.clone().unwrap_or_else(|| "none".into());
                    let suggestion = f
                        .memory_limit
                        .as_deref()
                        .and_then(suggest_memory)
                        .unwrap_or_else(|| "a limit sized from its peak usage".into());
                    plan.findings.push(format!(
                        "{}/{}: container {} is OOMKilled (exit 137) at its memory limit {limit}; last log lines: {}",
                        w.namespace,
                        w.name,
                        f.container.as_deref().unwrap_or("?"),
                        last_lines(logs.unwrap_or_else(|e| e), 2)
                    ));
                    plan.human.push(format!(
                        "raise the memory limit of {}/{} container {} from {limit} to about {suggestion} (or reduce its batch size); \
                         a limit is a capacity decision, so nothing was changed automatically",
                        w.namespace,
                        w.name,
                        f.container.as_deref().unwrap_or("?")
                    ));
                }
            }
        }
        "Unschedulable" => {
            if let Some(pod) = pod
                && plan
                    .need(
                        h,
                        "k8s_events",
                        json!({"namespace": w.namespace, "name": pod}),
                    )
                    .is_some()
            {
                plan.findings.push(format!(
                    "{}/{}: pods stay Pending; the scheduler says: {}",
                    w.namespace, w.name, f.message
                ));
                plan.human.push(format!(
                    "make room for {}/{}: add capacity (or the resource it asks for), or lower its requests; nothing was changed automatically",
                    w.namespace, w.name
                ));
            }
        }
        other => {
            plan.findings
                .push(format!("{}/{}: {other} {}", w.namespace, w.name, f.message));
            plan.human.push(format!(
                "look into {}/{} ({other}); no runbook changes it automatically",
                w.namespace, w.name
            ));
        }
    }
}

fn security(h: &History<'_>, plan: &mut Plan, namespaces: &[String]) {
    if !h.has_tool("trivy_vulnerability_reports") {
        plan.human.push("no Trivy Operator reports are available to this agent: scan the running images with trivy".into());
        return;
    }
    for ns in namespaces {
        let reports_args = json!({"namespace": ns});
        let Some(result) = plan.need(h, "trivy_vulnerability_reports", reports_args.clone()) else {
            continue;
        };
        match result {
            Ok(_) => {}
            Err(e) => {
                plan.human.push(format!(
                    "could not read the Trivy Operator's reports in {ns}: {}",
                    first_lines(e, 1)
                ));
                continue;
            }
        }
        let mut critical = reports_of(h.data("trivy_vulnerability_reports", &reports_args));
        if critical.is_empty() {
            // No report is no evidence of no vulnerability: say what is unknown.
            plan.findings.push(format!(
                "{ns}: no Trivy Operator vulnerability reports, so the images' vulnerabilities are unknown (is the operator installed and has it scanned them?)"
            ));
            continue;
        }
        critical.retain(|r| r.critical > 0 && r.kind == "Deployment");
        if critical.is_empty() {
            plan.findings.push(format!(
                "{ns}: no running image has CRITICAL vulnerabilities"
            ));
        }
        for r in critical {
            plan.findings.push(format!(
                "{ns}/{} container {}: {} CRITICAL vulnerabilities ({})",
                r.name, r.container, r.critical, r.image
            ));
            let dep_args = json!({"namespace": ns, "deployment": r.name});
            let deployment = plan.need(h, "k8s_get_deployment", dep_args.clone());
            // The recommendation for the image the report scanned is asked in the same step as
            // the deployment (one model call less); the deployment decides which image runs, and
            // when it runs another one, that image's recommendation is asked next.
            if !r.image.is_empty() {
                plan.need(h, "image_recommend", json!({"image": r.image}));
            }
            let Some(Ok(_)) = deployment else {
                continue;
            };
            let Some(image) = images_of(h.data("k8s_get_deployment", &dep_args))
                .into_iter()
                .find(|(c, _)| *c == r.container)
                .map(|(_, i)| i)
            else {
                plan.human
                    .push(format!("{ns}/{} has no container {}", r.name, r.container));
                continue;
            };
            let rec_args = json!({"image": image});
            let Some(rec) = plan.need(h, "image_recommend", rec_args.clone()) else {
                continue;
            };
            let Some(target) = recommended_of(h.data("image_recommend", &rec_args)) else {
                plan.human.push(format!(
                    "no upgrade of {image} clears its CRITICAL findings: {}",
                    first_lines(rec.unwrap_or_else(|e| e), 2)
                ));
                continue;
            };
            let what = format!(
                "patch {ns}/{} container {} image {image} -> {target}",
                r.name, r.container
            );
            let args = json!({"namespace": ns, "deployment": r.name, "container": r.container, "image": target});
            if let Some(result) = plan.write(h, "k8s_patch_image", args) {
                record_write(plan, &what, result);
            }
        }
    }
}

/// Rollout failures that are the same incident: the same finding on the same image in the same
/// container (a bad release shipped to many services, one typo in a shared image).
fn same_incident(a: &Workload, b: &Workload) -> bool {
    let (fa, fb) = (&a.findings[0], &b.findings[0]);
    fa.kind == fb.kind && fa.image.is_some() && fa.image == fb.image && fa.container == fb.container
}

impl Playbook {
    fn step(&self, h: &History<'_>) -> Step {
        let triage = match h.result("k8s_find_unhealthy", &json!({})) {
            None => {
                // The security runbook does not depend on the triage: its first reads go in the
                // same step (one model call less).
                let mut plan = Plan::default();
                plan.need(h, "k8s_find_unhealthy", json!({}));
                if h.wants_security() {
                    security(h, &mut plan, &self.namespaces);
                }
                return Step::Calls(plan.calls);
            }
            Some(Err(e)) => {
                return Step::Final(format!(
                    "I could not triage the cluster: {e}\nA human has to check the agent's access (sre-agent preflight)."
                ));
            }
            Some(Ok(t)) => t,
        };
        let workloads = workloads_of(h.data("k8s_find_unhealthy", &json!({})));
        let primary: Vec<Workload> = workloads
            .iter()
            .filter(|w| !w.findings.is_empty())
            .map(Workload::primary_first)
            .collect();
        // Several incidents at once: identical rollout failures form one group, diagnosed once and
        // rolled back workload by workload; every other finding is its own.
        let mut groups: Vec<Vec<&Workload>> = Vec::new();
        let mut others: Vec<&Workload> = Vec::new();
        for w in &primary {
            if !matches!(
                w.findings[0].kind.as_str(),
                "CrashLoopBackOff" | "ImagePull"
            ) {
                others.push(w);
            } else if let Some(g) = groups.iter_mut().find(|g| same_incident(g[0], w)) {
                g.push(w);
            } else {
                groups.push(vec![w]);
            }
        }
        // Two passes over the same history: the first asks every read the runbooks still need, all
        // in one step; once they are answered, the second asks every write in one step.
        let mut plan = Plan::default();
        for allow_writes in [false, true] {
            plan = Plan {
                allow_writes,
                ..Plan::default()
            };
            for g in &groups {
                diagnose(h, &mut plan, g);
                for w in g {
                    roll_back(h, &mut plan, w);
                }
            }
            for w in &others {
                handle_report_only(h, &mut plan, w);
            }
            if h.wants_security() {
                security(h, &mut plan, &self.namespaces);
            }
            if !plan.calls.is_empty() {
                return Step::Calls(plan.calls);
            }
        }
        Step::Final(report(triage, &workloads, &plan))
    }
}

fn report(triage: &str, workloads: &[Workload], plan: &Plan) -> String {
    let mut out = String::new();
    if workloads.is_empty() {
        let _ = writeln!(out, "Status: {}", first_lines(triage, 1));
    } else {
        let _ = writeln!(out, "Status: {} unhealthy workload(s).", workloads.len());
    }
    if !plan.findings.is_empty() {
        out.push_str("Findings:\n");
        for f in &plan.findings {
            let _ = writeln!(out, "- {f}");
        }
    }
    if !plan.actions.is_empty() {
        out.push_str("Actions:\n");
        for a in &plan.actions {
            let _ = writeln!(out, "- {a}");
        }
    }
    if let Some(stop) = &plan.stop {
        let _ = writeln!(out, "Stopped: {stop}");
    }
    if plan.human.is_empty() && plan.stop.is_none() {
        out.push_str("Needs a human: nothing.\n");
    } else if !plan.human.is_empty() {
        out.push_str("Needs a human:\n");
        for x in &plan.human {
            let _ = writeln!(out, "- {x}");
        }
    }
    out.trim_end().to_owned()
}

/// About four characters per token: the playbook reports an estimate so token budgets still apply.
fn estimate(s: usize) -> u64 {
    u64::try_from(s.div_ceil(4)).unwrap_or(u64::MAX)
}

#[async_trait]
impl LlmProvider for Playbook {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let h = History::of(request);
        let input: usize = request.messages.iter().map(|m| m.content.len() + 16).sum();
        let step = self.step(&h);
        Ok(match step {
            Step::Calls(calls) => {
                let base = h.done.len();
                let calls: Vec<ToolCall> = calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, args))| {
                        ToolCall::new(format!("pb-{}", base + i + 1), name, args)
                    })
                    .collect();
                let out: usize = calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.to_string().len())
                    .sum();
                ChatResponse {
                    message: Message::assistant_tool_calls("", calls),
                    stop_reason: StopReason::ToolUse,
                    usage: Usage::new(estimate(input), estimate(out)),
                }
            }
            Step::Final(text) => ChatResponse {
                usage: Usage::new(estimate(input), estimate(text.len())),
                message: Message::assistant(text),
                stop_reason: StopReason::EndTurn,
            },
        })
    }

    fn name(&self) -> String {
        "offline/playbook".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sre_core::ToolSpec;

    /// A transcript of the security runbook: each step's calls, answered with `answer`.
    struct Transcript {
        request: ChatRequest,
    }

    impl Transcript {
        fn new() -> Self {
            let tool = |name: &str| ToolSpec {
                name: name.into(),
                description: String::new(),
                parameters: json!({"type": "object"}),
            };
            Self {
                request: ChatRequest {
                    messages: vec![Message::user("Remediate critical CVEs in shop.")],
                    tools: vec![
                        tool("k8s_find_unhealthy"),
                        tool("trivy_vulnerability_reports"),
                    ],
                    ..ChatRequest::default()
                },
            }
        }

        /// The playbook's next calls, as `(name, arguments)`.
        async fn next(&self) -> Vec<(String, Value)> {
            let r = Playbook::new(["shop"]).chat(&self.request).await.unwrap();
            r.message
                .tool_calls
                .iter()
                .map(|c| (c.name.clone(), c.arguments.clone()))
                .collect()
        }

        /// Makes the playbook's next step and answers every call with `data(name, args)`.
        async fn step(&mut self, data: impl Fn(&str, &Value) -> Option<Value>) {
            let r = Playbook::new(["shop"]).chat(&self.request).await.unwrap();
            let calls = r.message.tool_calls.clone();
            self.request.messages.push(r.message);
            for c in &calls {
                let mut m = Message::tool_result(c, "ok");
                m.data = data(&c.name, &c.arguments);
                self.request.messages.push(m);
            }
        }
    }

    fn world(running: &'static str) -> impl Fn(&str, &Value) -> Option<Value> {
        move |name, args| match name {
            "trivy_vulnerability_reports" => Some(json!([{
                "namespace": "shop", "kind": "Deployment", "name": "frontend",
                "container": "nginx", "image": "nginx:1.25.3-alpine", "critical": 2, "high": 6
            }])),
            "k8s_get_deployment" => Some(json!({
                "namespace": "shop", "name": "frontend",
                "images": [{"container": "nginx", "image": running}],
                "revisions": [{"number": 1, "current": true,
                               "images": [{"container": "nginx", "image": running}]}]
            })),
            "image_recommend" => {
                let asked = args["image"].as_str().unwrap_or_default();
                Some(json!({"current": asked, "recommended": "nginx:1.25.5-alpine"}))
            }
            _ => None,
        }
    }

    #[tokio::test]
    async fn independent_reads_share_a_step() {
        let mut t = Transcript::new();
        assert_eq!(
            t.next().await,
            [
                ("k8s_find_unhealthy".into(), json!({})),
                (
                    "trivy_vulnerability_reports".into(),
                    json!({"namespace": "shop"})
                ),
            ]
        );
        t.step(world("nginx:1.25.3-alpine")).await;
        assert_eq!(
            t.next().await,
            [
                (
                    "k8s_get_deployment".into(),
                    json!({"namespace": "shop", "deployment": "frontend"})
                ),
                (
                    "image_recommend".into(),
                    json!({"image": "nginx:1.25.3-alpine"})
                ),
            ]
        );
        t.step(world("nginx:1.25.3-alpine")).await;
        assert_eq!(
            t.next().await,
            [(
                "k8s_patch_image".into(),
                json!({"namespace": "shop", "deployment": "frontend", "container": "nginx",
                       "image": "nginx:1.25.5-alpine"})
            )]
        );
    }

    #[tokio::test]
    async fn no_reports_is_said_to_be_unknown_not_an_all_clear() {
        let answer = |reports: Value| async move {
            let mut t = Transcript::new();
            t.step(move |name, _| (name == "trivy_vulnerability_reports").then(|| reports.clone()))
                .await;
            let r = Playbook::new(["shop"]).chat(&t.request).await.unwrap();
            assert!(
                r.message.tool_calls.is_empty(),
                "{:?}",
                r.message.tool_calls
            );
            r.message.content
        };
        let none = answer(json!([])).await;
        assert!(none.contains("vulnerabilities are unknown"), "{none}");
        assert!(!none.contains("no running image has CRITICAL"), "{none}");
        let clean = answer(json!([{
            "namespace": "shop", "kind": "Deployment", "name": "frontend",
            "container": "nginx", "image": "nginx:1.25.5-alpine", "critical": 0, "high": 1
        }]))
        .await;
        assert!(clean.contains("no running image has CRITICAL"), "{clean}");
    }

    #[tokio::test]
    async fn a_stale_report_gets_the_running_image_recommended_before_any_patch() {
        // The report scanned 1.25.3; the deployment runs 1.25.4 by now. The recommendation asked
        // for the report's image is not used: the running image's is asked next.
        let mut t = Transcript::new();
        t.step(world("nginx:1.25.4-alpine")).await;
        t.step(world("nginx:1.25.4-alpine")).await;
        assert_eq!(
            t.next().await,
            [(
                "image_recommend".into(),
                json!({"image": "nginx:1.25.4-alpine"})
            )]
        );
        t.step(world("nginx:1.25.4-alpine")).await;
        let next = t.next().await;
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(next[0].0, "k8s_patch_image");
        let r = Playbook::new(["shop"]).chat(&t.request).await.unwrap();
        t.request.messages.push(r.message.clone());
        let call = &r.message.tool_calls[0];
        t.request
            .messages
            .push(Message::tool_result(call, "applied: patched"));
        let report = Playbook::new(["shop"]).chat(&t.request).await.unwrap();
        assert!(
            report
                .message
                .content
                .contains("image nginx:1.25.4-alpine -> nginx:1.25.5-alpine"),
            "{}",
            report.message.content
        );
    }
}
