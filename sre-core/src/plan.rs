//! The typed write plan a tool previews and the gate applies: its [`Target`], the images
//! [`ImageChange`] before and after, the [`Risk`], and the [`Verification`] after applying.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evidence::{Evidence, SecurityCheck};

/// How risky a write is, as the tool judges it. Policies may use it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Reversible, small blast radius (e.g. a restart).
    Low,
    /// Changes what runs (e.g. an image patch).
    #[default]
    Medium,
    /// Could cause an outage.
    High,
}

/// The object a write changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Resource and group, e.g. `deployments.apps`.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// The version that was read; the write is applied only to this version.
    pub resource_version: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}@resourceVersion={}",
            self.kind, self.namespace, self.name, self.resource_version
        )
    }
}

/// One container's image before and after a write (equal when the write keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageChange {
    /// Container name.
    pub container: String,
    /// The image it runs now (`None`: a container the write adds).
    pub before: Option<String>,
    /// The image it will run.
    pub after: String,
}

impl ImageChange {
    /// True when the write changes this container's image.
    pub fn changes(&self) -> bool {
        self.before.as_deref() != Some(self.after.as_str())
    }
}

/// A typed write plan: what a write would change, shown to the approver before anything is
/// applied, and — once approved — exactly what the tool applies.
///
/// `payload` and `undo` are the tool's own (e.g. the patch it sends and the JSON patch that
/// reverts it); the agent never reads them, it only carries them from the approval to the apply,
/// so a write cannot be re-planned between the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// One line, e.g. `deployment shop/web: container web image nginx:1.25.3 -> nginx:1.25.5`.
    pub summary: String,
    /// The change as a diff (ideally from a server-side dry run).
    pub diff: String,
    /// Identity and version of everything the change read (the target and, e.g., the
    /// ReplicaSet a rollback copies); what is approved is bound to it.
    pub fingerprint: String,
    /// The tool's risk estimate.
    #[serde(default)]
    pub risk: Risk,
    /// The object the write changes. Policies with a namespace allow-list deny a plan without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Every container's image before and after. `None`: the tool does not say, and a policy
    /// with a registry allow-list denies the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<ImageChange>>,
    /// A warning the approver must read (e.g. that a scale to zero stops every pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// What the tool will send when the plan is approved (tool-specific).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub payload: Value,
    /// How the tool undoes the applied change if verification fails (tool-specific).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub undo: Value,
    /// Why the write is proposed, gathered by the tool (scans, the crash); shown to every
    /// approver. The scans' ids are part of the action fingerprint, the crash is not (see
    /// [`crate::evidence`]).
    /// Boxed: most plans have none, and a plan travels through many futures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Box<Evidence>>,
}

impl Preview {
    /// A plan with a summary, a diff, the fingerprint and a risk; no target, images or payload.
    pub fn new(
        summary: impl Into<String>,
        diff: impl Into<String>,
        fingerprint: impl Into<String>,
        risk: Risk,
    ) -> Self {
        Self {
            summary: summary.into(),
            diff: diff.into(),
            fingerprint: fingerprint.into(),
            risk,
            target: None,
            images: None,
            warning: None,
            payload: Value::Null,
            undo: Value::Null,
            evidence: None,
        }
    }

    /// The action fingerprint: a SHA-256 digest over the tool, its canonical arguments, the
    /// target, the fingerprint of everything read, the images before and after, and — for a
    /// patch with vulnerability evidence — the CRITICAL/HIGH ids of both scans. A grant
    /// redeems only for the action with this digest. The payload is left out on purpose: it may
    /// carry a timestamp (a restart), and it is bound by the grant itself.
    pub fn action_fingerprint(&self, tool: &str, arguments: &Value) -> String {
        use sha2::{Digest as _, Sha256};
        let mut doc = serde_json::json!({
            "tool": tool,
            "arguments": arguments,
            "fingerprint": self.fingerprint,
            "target": self.target,
            "images": self.images,
            "risk": self.risk,
        });
        // What the scans said is part of what is approved: a parked patch resumed after a
        // vulnerability-database update (the candidate has a new CRITICAL) asks again. The crash
        // evidence is not: it moves on (restart counts, log lines) while the action stays the same.
        if let Some(v) = self
            .evidence
            .as_ref()
            .and_then(|e| e.vulnerabilities.as_ref())
        {
            let ids = |scan: &crate::evidence::ImageScan| -> Vec<String> {
                let mut ids: Vec<String> = scan
                    .findings
                    .iter()
                    .map(|f| format!("{}:{}", f.id, f.severity))
                    .collect();
                ids.sort();
                ids
            };
            doc["scans"] = serde_json::json!({
                "current": ids(&v.current),
                "candidate": ids(&v.candidate),
                "candidate_digest": v.candidate.digest,
            });
        }
        let digest = Sha256::digest(crate::canon::canonical_json(&doc).as_bytes());
        format!("sha256:{}", hex::encode(digest))
    }

    /// The images the write will run that it changes (the ones a registry allow-list checks).
    pub fn changed_images(&self) -> impl Iterator<Item = &ImageChange> {
        self.images.iter().flatten().filter(|c| c.changes())
    }
}

/// Outcome of checking a write after it was applied (e.g. the rollout became healthy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// True when the change did what it should.
    pub passed: bool,
    /// What was observed.
    pub detail: String,
    /// For an image patch with vulnerability evidence: the re-scan of what runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Box<SecurityCheck>>,
}

impl Verification {
    /// A verification without a security check.
    pub fn new(passed: bool, detail: impl Into<String>) -> Self {
        Self {
            passed,
            detail: detail.into(),
            security: None,
        }
    }
}
