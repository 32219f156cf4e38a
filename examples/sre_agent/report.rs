//! The human report: findings, each proposed action with its diff, the approval (who, when), the
//! result, the verification, token usage and estimated cost.

use std::fmt::Write as _;

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

fn render_action(out: &mut String, n: usize, a: &ActionRecord) {
    let _ = writeln!(out, "{}. {} {}", n, a.tool, a.arguments);
    if let Some(p) = &a.preview {
        if let Some(w) = &p.warning {
            let _ = writeln!(out, "   WARNING: {w}");
        }
        let _ = writeln!(out, "   change: {} (risk {:?})", p.summary, p.risk);
        out.push_str(&indent(&p.diff, "     "));
        let _ = writeln!(out, "   target: {}", p.fingerprint);
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
