//! A parked approval in a run store, as the leader's loop leaves one: the shared sample of the
//! approvals API, chat channel and CLI tests.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the sample"
)]
#![expect(
    clippy::unwrap_used,
    reason = "a sample that cannot be stored must fail the test"
)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sre_core::{
    ApprovalRequest, ImageChange, ParkReason, ParkedRun, PendingApproval, Preview, Risk, Target,
    Usage,
};
use sre_tools::serve::channel::Ask;
use sre_tools::serve::{Incident, RunStore, Trigger};

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// RFC 3339 of `ms`.
pub(crate) fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// An hour, in milliseconds.
pub(crate) const HOUR: i64 = 3_600_000;

/// A parked image change of `shop/{workload}` (nginx 1.25.3 → 1.25.5) waiting for approval.
pub(crate) struct Sample {
    workload: String,
    ttl_ms: i64,
    trigger: Trigger,
    evidence: String,
    summary: Option<String>,
    diff: String,
    warning: Option<String>,
    plan_evidence: Option<sre_core::evidence::Evidence>,
}

impl Sample {
    /// The sample for `workload`, its approval expiring `ttl_ms` from now (negative: expired).
    pub(crate) fn new(workload: &str, ttl_ms: i64) -> Self {
        Self {
            workload: workload.into(),
            ttl_ms,
            trigger: Trigger::Watcher,
            evidence: format!("deployment shop/{workload} is crash-looping"),
            summary: None,
            diff: "-  image: nginx:1.25.3\n+  image: nginx:1.25.5\n".into(),
            warning: None,
            plan_evidence: None,
        }
    }

    /// The plan's evidence (scans, a crash).
    pub(crate) fn plan_evidence(mut self, evidence: sre_core::evidence::Evidence) -> Self {
        self.plan_evidence = Some(evidence);
        self
    }

    /// What started it.
    pub(crate) fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// The incident's evidence (the run's task).
    pub(crate) fn evidence(mut self, evidence: &str) -> Self {
        self.evidence = evidence.into();
        self
    }

    /// The plan's one-line summary.
    pub(crate) fn summary(mut self, summary: &str) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// The dry-run diff.
    pub(crate) fn diff(mut self, diff: &str) -> Self {
        self.diff = diff.into();
        self
    }

    /// A warning the approver must read.
    pub(crate) fn warning(mut self, warning: &str) -> Self {
        self.warning = Some(warning.into());
        self
    }

    /// Opens the incident and parks the run in `store`; what a channel is asked.
    pub(crate) async fn park(self, store: &dyn RunStore) -> Ask {
        let now = now_ms();
        let workload = &self.workload;
        let incident = Incident {
            key: format!("shop/{workload}/health"),
            trigger: self.trigger,
            namespace: "shop".into(),
            workload: workload.clone(),
            summary: self.evidence,
        };
        assert!(
            store
                .open(&incident, "replica-a", now, Duration::ZERO)
                .await
                .unwrap()
        );
        let run_id = format!("run-{workload}");
        let mut preview = Preview::new(
            self.summary.unwrap_or_else(|| {
                format!(
                    "deployment shop/{workload}: container web image nginx:1.25.3 -> nginx:1.25.5"
                )
            }),
            self.diff,
            format!("deployments.apps/shop/{workload}@41"),
            Risk::Medium,
        );
        preview.target = Some(Target {
            kind: "deployments.apps".into(),
            namespace: "shop".into(),
            name: workload.clone(),
            resource_version: "41".into(),
        });
        preview.images = Some(vec![ImageChange {
            container: "web".into(),
            before: Some("nginx:1.25.3".into()),
            after: "nginx:1.25.5".into(),
        }]);
        preview.warning = self.warning;
        preview.evidence = self.plan_evidence.map(Box::new);
        let request = ApprovalRequest {
            run_id: run_id.clone(),
            tool: "k8s_set_image".into(),
            call_id: "call-1".into(),
            arguments: json!({"namespace": "shop", "deployment": workload, "container": "web", "image": "nginx:1.25.5"}),
            preview,
            incident: incident.summary.clone(),
            writes_so_far: 0,
            rollback_on_failure: true,
        };
        let action = request.action_fingerprint();
        let expires_at_ms = now.saturating_add_signed(self.ttl_ms);
        let approval = PendingApproval {
            id: PendingApproval::id_for(&run_id, "call-1", &action),
            request,
            action,
            requested_at: rfc3339(now - 2_000),
            expires_at: rfc3339(expires_at_ms),
            expires_at_ms,
        };
        let run = ParkedRun {
            run_id,
            task: incident.summary.clone(),
            provider: "offline".into(),
            started_at: rfc3339(now - 5_000),
            reason: ParkReason::Approval,
            parked_at: rfc3339(now),
            steps: 2,
            tool_calls: 3,
            usage: Usage::default(),
            writes_applied: 0,
            active_ms: 1_200,
            transcript: Vec::new(),
            actions: Vec::new(),
            seen: BTreeMap::new(),
            turn: None,
            approval: Some(approval.clone()),
        };
        store.park(&incident.key, "replica-a", &run).await.unwrap();
        Ask { incident, approval }
    }
}
