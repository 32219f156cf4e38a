//! Asking the MCP client's user about one planned write, through elicitation: a form with one
//! required boolean, `approve`, and a message holding the plan as the terminal prompt shows it
//! (escaped), its expiry and how long the question waits. Only `accept` with `approve: true`
//! approves; decline, cancel, no answer in time, a cancelled call or a failed request deny.

use std::time::{Duration, SystemTime};

use rmcp::model::{
    BooleanSchema, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
};
use rmcp::service::{ElicitationMode, ServiceError};
use rmcp::{Peer, RoleServer};
use sre_core::text::escape_untrusted;
use sre_core::{ApprovalRequest, Decision};

/// The form field an approver sets to `true` to apply the change.
pub(crate) const APPROVE_FIELD: &str = "approve";

/// Longest client name kept in "approved by".
const MAX_WHO: usize = 64;

/// True when the client declared form elicitation at `initialize`.
pub(crate) fn can_elicit(peer: &Peer<RoleServer>) -> bool {
    peer.supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
}

/// Who answered: the client's name as it gave it, escaped and cut short.
fn who(peer: &Peer<RoleServer>) -> String {
    let name = peer
        .peer_info()
        .map(|info| info.client_info.name.clone())
        .unwrap_or_default();
    let name: String = escape_untrusted(&name).chars().take(MAX_WHO).collect();
    if name.is_empty() {
        "elicitation".to_owned()
    } else {
        format!("elicitation:{name}")
    }
}

/// The question: the plan as an approver reads it (every untrusted string escaped), when it
/// expires, and how long the question waits.
pub(crate) fn question(request: &ApprovalRequest, expires_in: Duration, wait: Duration) -> String {
    let expires_at = humantime::format_rfc3339_seconds(SystemTime::now() + expires_in);
    format!(
        "{}  expires:   {expires_at} (the plan is valid for {}; this question waits {})\n\
         Set \"{APPROVE_FIELD}\" and accept to apply exactly this change. Decline, cancel or no answer changes nothing.",
        request.render(),
        humantime::format_duration(expires_in),
        humantime::format_duration(wait),
    )
}

/// The form: one required boolean.
pub(crate) fn schema() -> ElicitationSchema {
    ElicitationSchema::builder()
        .required_bool_property(APPROVE_FIELD, |b: BooleanSchema| {
            b.title("Apply this change")
                .description("true applies exactly the change described above; anything else changes nothing")
                .with_default(false)
        })
        .build()
        .unwrap_or_else(|_| ElicitationSchema::new(std::collections::BTreeMap::new()))
}

/// The decision an answer means.
pub(crate) fn read_answer(answer: &ElicitResult, by: String) -> Decision {
    match answer.action {
        ElicitationAction::Accept => {
            let approved = answer
                .content
                .as_ref()
                .and_then(|c| c.get(APPROVE_FIELD))
                .and_then(serde_json::Value::as_bool)
                == Some(true);
            if approved {
                Decision::approve(by)
            } else {
                Decision::deny(
                    by,
                    format!("the answer was accepted without \"{APPROVE_FIELD}\": true"),
                )
            }
        }
        ElicitationAction::Decline => Decision::deny(by, "declined"),
        ElicitationAction::Cancel => Decision::deny(by, "cancelled"),
        _ => Decision::deny(by, "the answer was neither accept, decline nor cancel"),
    }
}

/// Asks the client about `request`, waiting at most `wait` (or until `cancelled`); the plan
/// expires in `expires_in`.
pub(crate) async fn elicit(
    peer: &Peer<RoleServer>,
    request: &ApprovalRequest,
    expires_in: Duration,
    wait: Duration,
    cancelled: impl Future<Output = ()>,
) -> Decision {
    let by = who(peer);
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: question(request, expires_in, wait),
        requested_schema: schema(),
    };
    let asked = peer.create_elicitation_with_timeout(params, Some(wait));
    let answer = tokio::select! {
        answer = asked => answer,
        () = cancelled => {
            return Decision::deny(by, "the client cancelled the call while the question was open");
        }
    };
    match answer {
        Ok(answer) => read_answer(&answer, by),
        Err(ServiceError::Timeout { .. }) => Decision::deny(
            by,
            format!("no answer within {}", humantime::format_duration(wait)),
        ),
        Err(e) => Decision::deny(by, format!("the question could not be asked: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sre_core::plan::{Preview, Risk, Target};

    fn request() -> ApprovalRequest {
        let mut preview = Preview::new(
            "deployment shop/web: roll back",
            "- image: web:1.5.0\n+ image: web:1.4.2\u{1b}[2K",
            "deployments.apps/shop/web@resourceVersion=7",
            Risk::Medium,
        );
        preview.target = Some(Target {
            kind: "deployments.apps".into(),
            namespace: "shop".into(),
            name: "web".into(),
            resource_version: "7".into(),
        });
        ApprovalRequest {
            run_id: "mcp-0".into(),
            tool: "k8s_rollback".into(),
            call_id: "c1".into(),
            arguments: json!({"namespace": "shop", "deployment": "web"}),
            preview,
            incident: String::new(),
            writes_so_far: 0,
            rollback_on_failure: false,
        }
    }

    #[test]
    fn the_question_shows_diff_target_and_expiry_escaped() {
        let q = question(
            &request(),
            Duration::from_secs(300),
            Duration::from_secs(120),
        );
        assert!(q.contains("+ image: web:1.4.2\\e[2K"), "{q}");
        assert!(!q.contains('\u{1b}'), "{q}");
        assert!(
            q.contains("deployments.apps/shop/web@resourceVersion=7"),
            "{q}"
        );
        assert!(q.contains("expires:"), "{q}");
        assert!(q.contains("valid for 5m"), "{q}");
        assert!(q.contains("waits 2m"), "{q}");
    }

    #[test]
    fn only_accept_with_approve_true_approves() {
        let answer = |action, content: Option<serde_json::Value>| {
            let mut r = ElicitResult::new(action);
            r.content = content;
            read_answer(&r, "elicitation:test".into())
        };
        assert!(answer(ElicitationAction::Accept, Some(json!({"approve": true}))).is_approved());
        for (action, content) in [
            (ElicitationAction::Accept, Some(json!({"approve": false}))),
            (ElicitationAction::Accept, Some(json!({"approve": "true"}))),
            (ElicitationAction::Accept, Some(json!({}))),
            (ElicitationAction::Accept, None),
            (ElicitationAction::Decline, Some(json!({"approve": true}))),
            (ElicitationAction::Cancel, Some(json!({"approve": true}))),
        ] {
            let d = answer(action.clone(), content.clone());
            assert!(!d.is_approved(), "{action:?} {content:?} must deny");
        }
    }

    #[test]
    fn the_form_asks_for_one_required_boolean() {
        let s = serde_json::to_value(schema()).unwrap();
        assert_eq!(s["type"], "object");
        assert_eq!(s["required"], json!(["approve"]));
        assert_eq!(s["properties"]["approve"]["type"], "boolean");
    }
}
