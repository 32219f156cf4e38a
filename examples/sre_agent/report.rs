//! The human report: findings, each proposed action with its diff and its evidence (the scans or
//! the crash that led to it), the approval (who, when), the result, the verification with the
//! security re-scan of what runs, token usage and estimated cost.

use std::fmt::Write as _;

use sre_core::evidence::SecurityCheck;
use sre_core::{ActionRecord, ActionStatus, AuditLog, Decision, Outcome, RunReport};

fn indent(text: &str, pad: &str) -> String {
    text.lines().fold(String::new(), |mut acc, l| {
        let _ = writeln!(acc, "{pad}{l}");
        acc
    })
}

pub(crate) fn render(
    r: &RunReport,
    after: Option<&str>,
    audit: Option<&AuditLog>,
    code: u8,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n== sre-agent report ==");
    let outcome = match &r.outcome {
        Outcome::Completed => "completed".to_owned(),
        Outcome::ProviderError { message, .. } => format!("provider error: {message}"),
        other => format!("{other:?}"),
    };
    let _ = writeln!(
        out,
        "brain: {} | outcome: {outcome} | steps: {} | tool calls: {} | {} ms",
        r.provider, r.steps, r.tool_calls, r.duration_ms
    );
    let offline = r.provider.starts_with("offline/");
    let _ = writeln!(
        out,
        "tokens: {} in / {} out{} | estimated cost: {}",
        r.usage.input_tokens,
        r.usage.output_tokens,
        if offline {
            " (estimated; no model)"
        } else {
            ""
        },
        if offline {
            "$0.00 (offline)".to_owned()
        } else {
            sre_llm::PriceTable::default()
                .cost(&r.provider, r.usage)
                .map_or_else(
                    || "unknown (model not in the price table)".to_owned(),
                    |c| format!("${c:.4} (list prices)"),
                )
        }
    );
    if let Some(answer) = &r.answer {
        // The brain's own words, quoted: a model cannot forge the approval record or the exit
        // code below by writing lines that look like them.
        let _ = writeln!(out, "\nThe brain's answer:");
        let mut blank = false;
        for line in answer.lines() {
            if line.trim().is_empty() {
                if !blank {
                    let _ = writeln!(out, "  |");
                }
                blank = true;
                continue;
            }
            blank = false;
            let _ = writeln!(out, "  | {line}");
        }
    }
    if r.answer.is_none() && !matches!(r.outcome, Outcome::Parked { .. }) {
        render_unfinished(&mut out, r, after.is_some());
    }
    if !r.actions.is_empty() {
        let _ = writeln!(out, "\nActions (approval record):");
    }
    for (i, a) in r.actions.iter().enumerate() {
        render_action(&mut out, i + 1, a);
    }
    if let Some(after) = after {
        let _ = writeln!(out, "\nAfter the run:\n{}", indent(after, "  ").trim_end());
    }
    if let Some(log) = audit {
        let s = log.summary();
        let mode = if s.keyed { "keyed" } else { "unkeyed" };
        let _ = writeln!(
            out,
            "\naudit log head: {} ({} records, {mode})",
            s.head, s.records
        );
    }
    let meaning = match code {
        0 => "resolved / healthy",
        3 => "findings remain: a human must act",
        4 => "an action was denied",
        _ => "error",
    };
    let _ = writeln!(out, "\nexit code {code}: {meaning}");
    // Names, images, log lines and the model's answer are untrusted: no terminal sequence in them
    // may reach the terminal.
    sre_core::text::escape_untrusted_lines(&out).into_owned()
}

/// How many lines of the triage an unfinished run's report quotes.
const FOUND_LINES: usize = 40;

/// A run that ended without the brain's answer (a budget, a deadline, a provider error) still says
/// what it found (the last triage it read), what it did (the actions) and what is left (the
/// triage after the run).
fn render_unfinished(out: &mut String, r: &RunReport, after: bool) {
    let _ = writeln!(
        out,
        "\nThe run ended before the brain's answer. What it found, did and left:"
    );
    let triage = r
        .transcript
        .iter()
        .flat_map(|m| &m.tool_calls)
        .filter(|c| c.name == "k8s_find_unhealthy")
        .filter_map(|c| {
            r.transcript.iter().find(|m| {
                m.role == sre_core::Role::Tool
                    && m.tool_call_id.as_deref() == Some(c.id.as_str())
                    && !m.is_error
            })
        })
        .next_back();
    match triage {
        Some(m) => {
            let lines: Vec<&str> = m.content.lines().collect();
            let _ = writeln!(out, "  found (its last k8s_find_unhealthy):");
            for l in lines.iter().take(FOUND_LINES) {
                let _ = writeln!(out, "    {l}");
            }
            if lines.len() > FOUND_LINES {
                let _ = writeln!(out, "    … {} more lines", lines.len() - FOUND_LINES);
            }
        }
        None => {
            let _ = writeln!(out, "  found: it had not triaged the cluster yet");
        }
    }
    let applied = r
        .actions
        .iter()
        .filter(|a| a.status == ActionStatus::Applied)
        .count();
    let _ = writeln!(
        out,
        "  did: {} write(s) asked, {applied} applied (the approval record below)",
        r.actions.len()
    );
    let _ = writeln!(
        out,
        "  left: {}",
        if after {
            "the triage after the run, below"
        } else {
            "unknown (no triage after the run)"
        }
    );
}

fn render_action(out: &mut String, n: usize, a: &ActionRecord) {
    let _ = writeln!(out, "{}. {} {}", n, a.tool, a.arguments);
    if let Some(p) = &a.preview {
        if let Some(w) = &p.warning {
            let _ = writeln!(out, "   WARNING: {w}");
        }
        let _ = writeln!(out, "   change: {} (risk {:?})", p.summary, p.risk);
        out.push_str(&indent(&p.diff, "     "));
        let _ = writeln!(out, "   target: {}", p.fingerprint);
        if let Some(evidence) = p.evidence.as_ref().filter(|e| !e.is_empty()) {
            // Escaped line by line by the renderer; the full lists are in --json.
            let _ = writeln!(out, "   evidence:");
            out.push_str(&indent(&evidence.render(), "     "));
        }
    }
    match (&a.decision, &a.decided_at) {
        (Some(Decision::Approved { by }), at) => {
            let _ = writeln!(
                out,
                "   approval: approved by {by} at {}",
                at.as_deref().unwrap_or("?")
            );
        }
        (Some(Decision::Denied { by, reason }), at) => {
            let _ = writeln!(
                out,
                "   approval: DENIED by {by} at {}: {reason}",
                at.as_deref().unwrap_or("?")
            );
        }
        (None, _) => {}
    }
    let status = match a.status {
        ActionStatus::Applied => "applied",
        ActionStatus::Denied => "not applied (denied)",
        ActionStatus::Refused => "not applied (refused)",
        ActionStatus::Failed => "failed",
        ActionStatus::Skipped => "skipped",
    };
    let first = a.result.lines().next().unwrap_or_default();
    if a.status == ActionStatus::Applied {
        let _ = writeln!(out, "   result: {first}");
    } else {
        let _ = writeln!(out, "   result: {status}: {first}");
    }
    if let Some(v) = &a.verification {
        let _ = writeln!(
            out,
            "   verification: {}: {}",
            if v.passed { "passed" } else { "FAILED" },
            v.detail
        );
        if let Some(check) = &v.security {
            render_security(out, check, &v.detail);
        }
    }
    if let Some(rb) = &a.rolled_back {
        let _ = writeln!(
            out,
            "   automatic rollback: {}: {}",
            if rb.ok { "done" } else { "FAILED" },
            rb.detail
        );
    }
}

/// The security re-scan after an image patch: a headline a reader takes in at a glance
/// (`2 CRITICAL, 6 HIGH -> no findings`), then the check's own line with the ids, unless the
/// verification's `detail` (just printed) already holds that very line.
fn render_security(out: &mut String, check: &SecurityCheck, detail: &str) {
    let _ = writeln!(
        out,
        "   security: {}: {} -> {}",
        if check.passed { "passed" } else { "FAILED" },
        check.before.render(),
        check.after.render()
    );
    // Escaped by the renderer.
    let line = check.render();
    if !detail.contains(&line) {
        let _ = writeln!(out, "     {line}");
    }
}

#[cfg(test)]
mod tests {
    //! The report and the exit code (`crate::exit_code`, `crate::criticals_left`) of runs built
    //! here with constructed evidence and security checks.

    use serde_json::json;
    use sre_core::evidence::{
        Evidence, Finding, ImageScan, ScanSource, SecurityCheck, Severities, VulnerabilityEvidence,
    };
    use sre_core::plan::{ImageChange, Preview, Risk, Target, Verification};
    use sre_core::{ActionRecord, ActionStatus, Decision, Message, Outcome, RunReport, Usage};

    fn finding(id: &str, severity: &str) -> Finding {
        Finding {
            id: id.into(),
            severity: severity.into(),
            package: "openssl".into(),
            installed: "3.1.4-r0".into(),
            fixed: Some("3.1.4-r5".into()),
            cvss: Some(9.8),
        }
    }

    /// An image patch of `container`'s nginx 1.25.3 (2 CRITICAL, 6 HIGH: `criticals`) to 1.25.5
    /// (4 MEDIUM), which clears the CRITICAL ids.
    fn evidence(container: &str, criticals: &[&str]) -> Evidence {
        Evidence {
            vulnerabilities: Some(VulnerabilityEvidence {
                container: container.into(),
                current: ImageScan {
                    image: "nginx:1.25.3-alpine".into(),
                    digest: None,
                    counts: Severities {
                        critical: 2,
                        high: 6,
                        ..Severities::default()
                    },
                    findings: criticals.iter().map(|i| finding(i, "CRITICAL")).collect(),
                    source: ScanSource::TrivyCli,
                },
                candidate: ImageScan {
                    image: "nginx:1.25.5-alpine".into(),
                    digest: Some("sha256:5a5e".into()),
                    counts: Severities {
                        medium: 4,
                        ..Severities::default()
                    },
                    findings: vec![],
                    source: ScanSource::TrivyCli,
                },
                clears: criticals.iter().map(|&i| i.to_owned()).collect(),
                remains: vec![],
                introduces: vec![],
            }),
            crash: None,
            target_crash: None,
            target_scan: None,
            unchecked: Vec::new(),
        }
    }

    /// The re-scan of `container` after the patch: `after` in what runs.
    fn check(container: &str, after: Severities, passed: bool) -> SecurityCheck {
        SecurityCheck {
            container: container.into(),
            running: "docker.io/library/nginx@sha256:5a5e".into(),
            approved_digest: Some("sha256:5a5e".into()),
            before: Severities {
                critical: 2,
                high: 6,
                ..Severities::default()
            },
            after,
            gone: vec!["CVE-2024-0001".into(), "CVE-2024-0002".into()],
            remaining: vec![],
            not_cleared: vec![],
            unexpected: vec![],
            source: ScanSource::TrivyCli,
            passed,
        }
    }

    /// An applied image patch of `shop/frontend` container `container`, verified as given.
    fn patch(
        container: &str,
        evidence: Option<Evidence>,
        verification: Option<Verification>,
    ) -> ActionRecord {
        let mut preview = Preview::new(
            format!(
                "deployment shop/frontend: container {container} image nginx:1.25.3-alpine -> nginx:1.25.5-alpine"
            ),
            "-  image: nginx:1.25.3-alpine\n+  image: nginx:1.25.5-alpine\n",
            "deployments.apps/shop/frontend@7",
            Risk::Medium,
        );
        preview.target = Some(Target {
            kind: "deployments.apps".into(),
            namespace: "shop".into(),
            name: "frontend".into(),
            resource_version: "7".into(),
        });
        preview.images = Some(vec![ImageChange {
            container: container.into(),
            before: Some("nginx:1.25.3-alpine".into()),
            after: "nginx:1.25.5-alpine".into(),
        }]);
        preview.evidence = evidence.map(Box::new);
        ActionRecord {
            call_id: "c1".into(),
            tool: "k8s_patch_image".into(),
            arguments: json!({"namespace": "shop", "deployment": "frontend", "container": container, "image": "nginx:1.25.5-alpine"}),
            preview: Some(preview),
            decision: Some(Decision::approve("cli:auto")),
            decided_at: Some("2026-01-01T00:00:00Z".into()),
            status: ActionStatus::Applied,
            result: "patched".into(),
            verification,
            rolled_back: None,
        }
    }

    /// A completed run with `actions` and `transcript`.
    fn run(actions: Vec<ActionRecord>, transcript: Vec<Message>) -> RunReport {
        RunReport {
            run_id: "run-1".into(),
            provider: "offline/playbook".into(),
            task: "fix the CVEs".into(),
            outcome: Outcome::Completed,
            answer: None,
            actions,
            tool_calls: 3,
            steps: 2,
            usage: Usage::default(),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 12,
            transcript,
            audit: None,
        }
    }

    fn verified(security: SecurityCheck) -> Verification {
        Verification {
            security: Some(Box::new(security)),
            ..Verification::new(true, "rollout complete: 2/2 pods ready")
        }
    }

    #[test]
    fn a_run_cut_short_by_its_budget_still_says_what_it_found_did_and_left() {
        let call = sre_core::ToolCall::new("c1", "k8s_find_unhealthy", json!({}));
        let triage = "2 unhealthy workload(s):\n- shop/web CrashLoopBackOff\n- shop/api ImagePull";
        let transcript = vec![
            Message::user("fix it"),
            Message::assistant_tool_calls("", vec![call.clone()]),
            Message::tool_result(&call, triage),
        ];
        let mut r = run(Vec::new(), transcript);
        r.outcome = Outcome::MaxSteps;
        let out = super::render(&r, Some("healthy: 4 pods"), None, 3);
        for expected in [
            "The run ended before the brain's answer",
            "found (its last k8s_find_unhealthy):",
            "    - shop/web CrashLoopBackOff",
            "did: 0 write(s) asked, 0 applied",
            "left: the triage after the run, below",
        ] {
            assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
        }

        // Nothing read yet, and a completed run has no such section.
        let mut r = run(Vec::new(), vec![Message::user("fix it")]);
        r.outcome = Outcome::Deadline;
        let out = super::render(&r, None, None, 1);
        assert!(
            out.contains("found: it had not triaged the cluster yet"),
            "{out}"
        );
        assert!(out.contains("left: unknown"), "{out}");
        let mut r = run(Vec::new(), Vec::new());
        r.answer = Some("all good".into());
        assert!(!super::render(&r, None, None, 0).contains("The run ended before"));
    }

    #[test]
    fn an_image_patch_shows_its_evidence_and_the_rescan_before_and_after() {
        let ids = ["CVE-2024-0001", "CVE-2024-0002"];
        let action = patch(
            "nginx",
            Some(evidence("nginx", &ids)),
            Some(verified(check("nginx", Severities::default(), true))),
        );
        let text = super::render(&run(vec![action], vec![]), None, None, 0);
        for shown in [
            "   evidence:\n     now:       nginx:1.25.3-alpine — 2 CRITICAL, 6 HIGH (trivy CLI scan)\n",
            "CRITICAL CVE-2024-0001 openssl 3.1.4-r0 -> 3.1.4-r5 (CVSS 9.8)",
            "CRITICAL CVE-2024-0002 openssl",
            "candidate: nginx:1.25.5-alpine (sha256:5a5e) — 4 MEDIUM",
            "clears:    CVE-2024-0001, CVE-2024-0002",
            "   security: passed: 2 CRITICAL, 6 HIGH -> no findings\n",
            "security re-scan of what runs (docker.io/library/nginx@sha256:5a5e): 2 CRITICAL, 6 HIGH -> no findings; gone: CVE-2024-0001, CVE-2024-0002; remaining: none [trivy CLI scan]",
        ] {
            assert!(text.contains(shown), "missing {shown:?} in:\n{text}");
        }
        // The evidence sits with its action, before the approval; the re-scan after the
        // verification.
        let at = |s: &str| text.find(s).unwrap();
        assert!(at("   evidence:") < at("   approval: approved by cli:auto"));
        assert!(at("   verification: passed") < at("   security: passed"));
    }

    #[test]
    fn a_rescan_the_verification_already_quotes_is_not_repeated() {
        let rescan = check("nginx", Severities::default(), true);
        let detail = format!("rollout complete: 3/3 available; {}", rescan.render());
        let action = patch(
            "nginx",
            Some(evidence("nginx", &["CVE-2024-0001"])),
            Some(Verification {
                security: Some(Box::new(rescan)),
                ..Verification::new(true, detail)
            }),
        );
        let text = super::render(&run(vec![action], vec![]), None, None, 0);
        assert_eq!(
            text.matches("security re-scan of what runs").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("   security: passed: 2 CRITICAL, 6 HIGH -> no findings\n"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_rescan_says_so_and_names_what_was_not_cleared() {
        let mut failed = check(
            "nginx",
            Severities {
                critical: 1,
                ..Severities::default()
            },
            false,
        );
        failed.not_cleared = vec!["CVE-2024-0002".into()];
        let action = patch(
            "nginx",
            Some(evidence("nginx", &["CVE-2024-0001", "CVE-2024-0002"])),
            Some(Verification {
                security: Some(Box::new(failed)),
                ..Verification::new(false, "the image that runs still has CVE-2024-0002")
            }),
        );
        let text = super::render(&run(vec![action], vec![]), None, None, 3);
        assert!(
            text.contains("   security: FAILED: 2 CRITICAL, 6 HIGH -> 1 CRITICAL\n"),
            "{text}"
        );
        assert!(
            text.contains("NOT CLEARED though approved as cleared: CVE-2024-0002"),
            "{text}"
        );
    }

    #[test]
    fn hostile_ids_are_escaped_once() {
        let hostile = "CVE-1\u{1b}]8;;https://evil\u{7}\u{202e}";
        let action = patch(
            "nginx",
            Some(evidence("nginx", &[hostile])),
            Some(verified(check("nginx", Severities::default(), true))),
        );
        let text = super::render(&run(vec![action], vec![]), None, None, 0);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(
            text.contains("CRITICAL CVE-1\\e]8;;https://evil\\u{7}\\u{202e} openssl"),
            "{text}"
        );
        assert!(!text.contains("\\\\e"), "escaped twice: {text}");
    }

    #[test]
    fn an_action_without_evidence_shows_no_evidence_lines() {
        let action = patch(
            "nginx",
            None,
            Some(Verification::new(true, "rollout complete")),
        );
        let text = super::render(&run(vec![action], vec![]), None, None, 0);
        assert!(!text.contains("evidence:"), "{text}");
        assert!(!text.contains("security:"), "{text}");
        assert!(
            text.contains("   verification: passed: rollout complete\n"),
            "{text}"
        );
    }

    mod exit_code {
        //! The exit code from what remains after an image patch, from constructed reports.

        use serde_json::json;
        use sre_core::evidence::Severities;
        use sre_core::plan::Verification;
        use sre_core::{Message, ToolCall};

        use super::{check, evidence, patch, run};
        use crate::{EXIT_HUMAN, EXIT_OK, criticals_left, exit_code};

        const IDS: [&str; 2] = ["CVE-2024-0001", "CVE-2024-0002"];

        /// `trivy_vulnerability_reports`' result: `critical` CRITICAL findings in each container.
        fn reports(containers: &[(&str, u64)]) -> Message {
            let call = ToolCall::new("c0", "trivy_vulnerability_reports", json!({}));
            let data: Vec<_> = containers
                .iter()
                .map(|(c, critical)| {
                    json!({"namespace": "shop", "kind": "Deployment", "name": "frontend", "container": c,
                           "image": "nginx:1.25.3-alpine", "critical": critical, "high": 6})
                })
                .collect();
            Message {
                data: Some(json!(data)),
                ..Message::tool_result(&call, "2 reports")
            }
        }

        fn rescanned(container: &str, after: Severities, passed: bool) -> Verification {
            Verification {
                security: Some(Box::new(check(container, after, passed))),
                ..Verification::new(true, "rollout complete")
            }
        }

        fn critical(n: u32) -> Severities {
            Severities {
                critical: n,
                ..Severities::default()
            }
        }

        #[test]
        fn a_passed_rescan_clears_the_container_it_patched() {
            let r = run(
                vec![patch(
                    "nginx",
                    Some(evidence("nginx", &IDS)),
                    Some(rescanned("nginx", Severities::default(), true)),
                )],
                vec![reports(&[("nginx", 2)])],
            );
            assert!(!criticals_left(&r));
            assert_eq!(exit_code(&r, None, false), EXIT_OK);
        }

        #[test]
        fn a_critical_left_in_what_runs_is_a_critical_left() {
            // The re-scan passed (nothing the approval promised is contradicted: the CRITICAL was
            // shown as remaining), but a CRITICAL runs: a human must act.
            let r = run(
                vec![patch(
                    "nginx",
                    Some(evidence("nginx", &IDS)),
                    Some(rescanned("nginx", critical(1), true)),
                )],
                vec![],
            );
            assert!(criticals_left(&r), "no scan in the transcript is needed");
            assert_eq!(exit_code(&r, None, false), EXIT_HUMAN);
        }

        #[test]
        fn a_failed_rescan_clears_nothing() {
            // The verification said yes, the security check no: the container keeps its findings.
            let r = run(
                vec![patch(
                    "nginx",
                    Some(evidence("nginx", &IDS)),
                    Some(rescanned("nginx", Severities::default(), false)),
                )],
                vec![reports(&[("nginx", 2)])],
            );
            assert!(criticals_left(&r));
            assert_eq!(exit_code(&r, None, false), EXIT_HUMAN);
        }

        #[test]
        fn a_rescan_of_one_container_does_not_clear_another() {
            let r = run(
                vec![patch(
                    "nginx",
                    Some(evidence("nginx", &IDS)),
                    Some(rescanned("nginx", Severities::default(), true)),
                )],
                vec![reports(&[("nginx", 2), ("sidecar", 1)])],
            );
            assert!(criticals_left(&r));
        }

        #[test]
        fn without_a_rescan_a_verified_patch_still_clears_what_it_changed() {
            let verified = run(
                vec![patch(
                    "nginx",
                    None,
                    Some(Verification::new(true, "rollout complete")),
                )],
                vec![reports(&[("nginx", 2)])],
            );
            assert!(!criticals_left(&verified));
            let failed = run(
                vec![patch(
                    "nginx",
                    None,
                    Some(Verification::new(false, "rollout stuck")),
                )],
                vec![reports(&[("nginx", 2)])],
            );
            assert!(criticals_left(&failed));
        }
    }
}
