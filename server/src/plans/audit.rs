//! The audit rows of what people and peer nodes do with plans.

use super::Actor;
use super::RequestMeta;
use crate::db::now_ms;
use crate::store::audit::AuditRecord;

/// An audit row for something `actor` did.
pub fn audit_record(
    actor: &Actor,
    plan: Option<&str>,
    action: &str,
    outcome: &str,
    detail: Option<String>,
    meta: &RequestMeta,
) -> AuditRecord {
    meta.refusal.note(outcome);
    AuditRecord {
        at: now_ms(),
        user_id: Some(actor.user_id.clone()),
        username: Some(actor.username.clone()),
        role: Some(actor.role.to_string()),
        plan_id: plan.map(str::to_string),
        action: action.to_string(),
        outcome: outcome.to_string(),
        detail,
        remote: meta.remote.clone(),
        request_id: meta.request_id.clone(),
    }
}

/// An audit record of something a peer node did (or was refused).
pub fn peer_audit(
    peer: &str,
    plan: Option<&str>,
    action: &str,
    outcome: &str,
    detail: Option<String>,
    meta: &RequestMeta,
) -> AuditRecord {
    meta.refusal.note(outcome);
    AuditRecord {
        at: now_ms(),
        user_id: None,
        username: Some(format!("peer:{peer}")),
        role: Some("peer".into()),
        plan_id: plan.map(str::to_string),
        action: action.to_string(),
        outcome: outcome.to_string(),
        detail,
        remote: meta.remote.clone(),
        request_id: meta.request_id.clone(),
    }
}
