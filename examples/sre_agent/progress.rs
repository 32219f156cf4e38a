//! Progress: a spinner line per agent step on a terminal, plain lines otherwise (on stderr).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use sre_core::{Decision, Event, Observer};

pub(crate) struct Progress {
    spinner: Option<Mutex<ProgressBar>>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            Mutex::new(bar)
        });
        Self { spinner }
    }

    fn line(&self, text: &str) {
        // Tool results, names and reasons are untrusted: escape terminal sequences.
        let text = &*sre_core::text::escape_untrusted_lines(text);
        match &self.spinner {
            Some(bar) => {
                if let Ok(bar) = bar.lock() {
                    bar.println(text);
                }
            }
            None => eprintln!("{text}"),
        }
    }

    fn status(&self, text: &str) {
        if let Some(bar) = &self.spinner
            && let Ok(bar) = bar.lock()
        {
            bar.set_message(sre_core::text::escape_untrusted(text).into_owned());
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.spinner
            && let Ok(bar) = bar.lock()
        {
            bar.finish_and_clear();
        }
    }
}

fn short(s: &str, n: usize) -> String {
    let first = s.lines().next().unwrap_or_default();
    if first.chars().count() > n {
        format!("{}…", first.chars().take(n).collect::<String>())
    } else {
        first.to_owned()
    }
}

impl Observer for Progress {
    fn on_event(&self, event: &Event) {
        match event {
            Event::StepStarted { step, .. } => self.status(&format!("step {step}: thinking…")),
            Event::ModelResponded {
                step, tool_calls, ..
            } if !tool_calls.is_empty() => {
                self.line(&format!("step {step}: {}", tool_calls.join(", ")));
            }
            Event::ToolStarted {
                tool, arguments, ..
            } => self.status(&format!("running {tool} {arguments}")),
            Event::ToolFinished {
                tool,
                ok,
                result,
                duration_ms,
                ..
            } => {
                self.line(&format!(
                    "  {} {tool} ({duration_ms} ms): {}",
                    if *ok { "ok" } else { "error" },
                    short(result, 100)
                ));
            }
            Event::ToolRejected { tool, error, .. } => {
                self.line(&format!("  rejected {tool}: {}", short(error, 100)));
            }
            Event::ApprovalRequested { request, .. } => {
                self.line(&format!(
                    "  approval requested: {}",
                    request.preview.summary
                ));
                if let Some(e) = request.preview.evidence.as_ref().filter(|e| !e.is_empty()) {
                    self.line(&format!("  evidence: {}", e.headline()));
                }
                // A terminal prompt may follow: make room for it.
                self.clear();
            }
            Event::ApprovalDecided { decision, .. } => match decision {
                Decision::Approved { by } => self.line(&format!("  approved by {by}")),
                Decision::Denied { by, reason } => {
                    self.line(&format!("  denied by {by}: {reason}"));
                }
            },
            Event::WriteRefused { reason, .. } => {
                self.line(&format!("  refused: {}", short(reason, 100)));
            }
            Event::Verified { verification, .. } => self.line(&format!(
                "  verification {}: {}",
                if verification.passed {
                    "passed"
                } else {
                    "FAILED"
                },
                short(&verification.detail, 100)
            )),
            Event::RolledBack { rollback, .. } => self.line(&format!(
                "  rolled back automatically: {}",
                short(&rollback.detail, 100)
            )),
            Event::RunFinished { .. } => self.clear(),
            _ => {}
        }
    }
}
