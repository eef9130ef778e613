//! Recording a family's consent to share its plan with a peer node: one
//! path for the shares API and for anything else that records consent
//! (the demo), so the checks, the audit row and the outbox entry that
//! sends the plan are always the same.

use super::{audit_record, Actor, PlanEntry, Plans, RequestMeta};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::peers::Peers;
use crate::store::consent::{self, Grant};
use wrapsync_shared::roles::Role;

/// Who may speak for the family: record and withdraw its consent.
pub const MAY_SHARE: &[Role] = &[Role::Facilitator, Role::Caregiver, Role::Supervisor];

impl Plans {
    /// Records `actor`'s consent, for the family, to share `entry` with
    /// `node` (one of `peers`) until `expires_at` (ms), audited, and puts
    /// the plan in the outbox so it is sent promptly. Refusals are audited
    /// too: `404` when `actor` may not see the plan, `403` when their role
    /// may not speak for the family, `400` for an unknown peer or a past
    /// expiry.
    pub async fn share(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        peers: &Peers,
        node: &str,
        expires_at: Option<i64>,
        meta: &RequestMeta,
    ) -> Result<Grant, ApiError> {
        let now = now_ms();
        let checked = match entry.view().role_of(actor) {
            None => Err(ApiError::NotFound),
            Some(role) if !MAY_SHARE.contains(&role) => Err(ApiError::Forbidden(
                "a facilitator, caregiver or supervisor records a family's consent".into(),
            )),
            Some(_) if peers.get(node).is_none() => Err(ApiError::InvalidRequest(format!(
                "`{node}` is not a peer of this node"
            ))),
            Some(_) if expires_at.is_some_and(|at| at <= now) => {
                Err(ApiError::InvalidRequest("`expires_at` is past".into()))
            }
            Some(_) => Ok(()),
        };
        if let Err(e) = checked {
            self.audit(audit_record(
                actor,
                Some(&entry.id),
                "plan.share",
                e.audit_outcome(),
                Some(e.to_string()),
                meta,
            ));
            return Err(e);
        }
        let grant = Grant {
            plan_id: entry.id.clone(),
            node_id: node.to_string(),
            scope: "full".into(),
            granted_by: actor.user_id.clone(),
            granted_at: now,
            expires_at,
            revoked_by: None,
            revoked_at: None,
        };
        let audit = audit_record(
            actor,
            Some(&entry.id),
            "plan.share",
            "ok",
            Some(format!("with {node}")),
            meta,
        );
        let kept = grant.clone();
        self.writer
            .write(move |conn| {
                consent::grant(conn, &kept)?;
                // In the change log, so the outbox sends the plan to the peer.
                crate::store::plans::record_change(conn, &kept.plan_id, kept.granted_at)?;
                crate::store::audit::insert_audit(conn, &[audit])
            })
            .await?;
        self.notify_changed();
        Ok(grant)
    }
}
