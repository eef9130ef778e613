//! The family's consent to share its plan with a peer node: one path for
//! recording and withdrawing it (the shares API, the demo), so the checks,
//! the grant row, the audit row, the outbox entry that sends the plan and
//! the plan's own consent record are always the same. The grants are what
//! is enforced; the plan document's `/consents` items naming a node mirror
//! them, written here in the same transaction as the grant, and nowhere
//! else (`check_grant_records` refuses every other change to them).

use super::{Actor, PlanEntry, Plans, RequestMeta};
use crate::audit::{Action, Audit, Outcome};
use crate::db::{now_ms, DbConnection, StoreError};
use crate::error::ApiError;
use crate::peers::Peers;
use crate::store::audit::AuditRecord;
use crate::store::consent::{self, Grant};
use serde_json::{json, Value as Json};
use wrapsync_shared::ops::Op;
use wrapsync_shared::roles::Role;

/// Who may speak for the family: record and withdraw its consent.
pub const MAY_SHARE: &[Role] = &[Role::Facilitator, Role::Caregiver, Role::Supervisor];

/// A change to the grants, stored in the transaction that writes the
/// plan's mirror of it.
#[derive(Clone)]
pub(crate) enum ConsentChange {
    Grant(Grant),
    Revoke { node: String, by: String, at: i64 },
}

/// A write of the consent record: the grant change, and the audit row the
/// request gets (`plan.share`, `plan.unshare`) in place of `plan.ops`.
pub(crate) struct ConsentRecord {
    pub change: ConsentChange,
    pub audit: AuditRecord,
}

impl ConsentChange {
    fn node(&self) -> &str {
        match self {
            ConsentChange::Grant(grant) => &grant.node_id,
            ConsentChange::Revoke { node, .. } => node,
        }
    }

    /// Stores the grant side. A revocation with no live grant left (another
    /// request withdrew it meanwhile) rolls the whole write back.
    pub(crate) fn store(&self, conn: &mut DbConnection, plan: &str) -> Result<(), StoreError> {
        match self {
            ConsentChange::Grant(grant) => consent::grant(conn, grant),
            ConsentChange::Revoke { node, by, at } => {
                if consent::revoke(conn, plan, node, by, *at)? {
                    Ok(())
                } else {
                    Err(StoreError::Missing(format!("no live grant to {node}")))
                }
            }
        }
    }

    /// The ops that make `plan`'s consent record say what this change
    /// does: the item naming the node set active (added if there is none)
    /// or marked revoked. `granted_by` is the member who recorded it, when
    /// they are on the team.
    fn mirror_ops(&self, plan: &Json, granted_by: Option<&str>) -> Vec<Op> {
        let node = self.node();
        let items: Vec<&Json> = plan["consents"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|item| item["grantee"].as_str() == Some(node))
                    .collect()
            })
            .unwrap_or_default();
        let set = |id: &str, field: &str, value: Json| Op {
            op: "replace".into(),
            path: format!("/consents/{id}/{field}"),
            value: Some(value),
            from: None,
        };
        match self {
            ConsentChange::Grant(grant) => {
                let record = json!({
                    "scope": mirror_scope(&grant.scope),
                    "status": "active",
                    "granted_on": date_of(grant.granted_at),
                    "expires_on": grant.expires_at.map(date_of),
                    "granted_by": granted_by,
                    "revoked_on": Json::Null,
                });
                match items.first().and_then(|item| item["id"].as_str()) {
                    Some(id) => record
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(field, value)| set(id, field, value.clone()))
                        .collect(),
                    None => {
                        let mut item = json!({"grantee": node});
                        for (field, value) in record.as_object().into_iter().flatten() {
                            if !value.is_null() {
                                item[field] = value.clone();
                            }
                        }
                        vec![Op {
                            op: "add".into(),
                            path: "/consents".into(),
                            value: Some(item),
                            from: None,
                        }]
                    }
                }
            }
            ConsentChange::Revoke { at, .. } => items
                .iter()
                .filter(|item| item["status"].as_str() != Some("revoked"))
                .filter_map(|item| item["id"].as_str())
                .flat_map(|id| {
                    [
                        set(id, "status", json!("revoked")),
                        set(id, "revoked_on", json!(date_of(*at))),
                    ]
                })
                .collect(),
        }
    }
}

/// `422 home-authority`: a replica's people record and withdraw no consent;
/// the family's consent lives at the plan's home, with its grants.
fn at_home_only(view: &super::PlanView) -> ApiError {
    ApiError::HomeAuthority(format!(
        "the family's consent to share this plan is recorded at its home, {}",
        view.home.as_deref().unwrap_or("another node")
    ))
}

/// The plan schema's scope for a grant's (`full` is the whole plan).
fn mirror_scope(scope: &str) -> &str {
    match scope {
        "full" => "full_plan",
        other => other,
    }
}

/// `YYYY-MM-DD` (UTC) of a time in ms.
fn date_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

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
        let view = entry.view();
        let checked = match view.role_of(actor) {
            None => Err(ApiError::NotFound),
            Some(role) if !MAY_SHARE.contains(&role) => Err(ApiError::Forbidden(
                "a facilitator, caregiver or supervisor records a family's consent".into(),
            )),
            Some(_) if view.home.is_some() => Err(at_home_only(&view)),
            Some(_) if peers.get(node).is_none() => Err(ApiError::InvalidRequest(format!(
                "`{node}` is not a peer of this node"
            ))),
            Some(_) if expires_at.is_some_and(|at| at <= now) => {
                Err(ApiError::InvalidRequest("`expires_at` is past".into()))
            }
            Some(_) => Ok(()),
        };
        if let Err(e) = checked {
            self.audit(
                Audit::new(actor, Action::PlanShare)
                    .plan(&entry.id)
                    .refused(&e)
                    .at(meta),
            );
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
        let audit = Audit::new(actor, Action::PlanShare)
            .plan(&entry.id)
            .detail(format!("with {node}"))
            .at(meta);
        self.record_consent(
            entry,
            actor,
            ConsentChange::Grant(grant.clone()),
            audit,
            meta,
        )
        .await?;
        Ok(grant)
    }

    /// Withdraws the family's consent to share `entry` with `node`: the
    /// plan no longer syncs with it, and its consent record says revoked.
    /// `403` (audited) for a role that may not speak for the family, `404`
    /// when there is no live grant to `node`. The caller has checked that
    /// `actor` may see the plan.
    pub async fn unshare(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        role: Role,
        node: &str,
        meta: &RequestMeta,
    ) -> Result<(), ApiError> {
        if !MAY_SHARE.contains(&role) {
            self.audit(
                Audit::new(actor, Action::PlanUnshare)
                    .plan(&entry.id)
                    .outcome(Outcome::Denied)
                    .at(meta),
            );
            return Err(ApiError::Forbidden(
                "a facilitator, caregiver or supervisor withdraws a family's consent".into(),
            ));
        }
        if entry.view().home.is_some() {
            let e = at_home_only(&entry.view());
            self.audit(
                Audit::new(actor, Action::PlanUnshare)
                    .plan(&entry.id)
                    .refused(&e)
                    .at(meta),
            );
            return Err(e);
        }
        let now = now_ms();
        let (plan, peer) = (entry.id.clone(), node.to_string());
        let live = self
            .blocking(move |conn| {
                Ok(consent::for_plan(conn, &plan)?
                    .iter()
                    .any(|g| g.node_id == peer && g.revoked_at.is_none()))
            })
            .await?;
        if !live {
            return Err(ApiError::NotFound);
        }
        let audit = Audit::new(actor, Action::PlanUnshare)
            .plan(&entry.id)
            .detail(format!("with {node}"))
            .at(meta);
        let change = ConsentChange::Revoke {
            node: node.to_string(),
            by: actor.user_id.clone(),
            at: now,
        };
        // Withdrawn meanwhile by someone else: `404` from the write.
        self.record_consent(entry, actor, change, audit, meta).await
    }

    /// Stores `change` and the plan's mirror of it in one transaction,
    /// with `audit`, and puts the plan in the outbox (a plan homed here:
    /// the callers refuse a replica).
    async fn record_consent(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        change: ConsentChange,
        audit: AuditRecord,
        meta: &RequestMeta,
    ) -> Result<(), ApiError> {
        let view = entry.view();
        let granted_by = view.member(&actor.username).map(|m| m.member_id.as_str());
        let ops = change.mirror_ops(&view.plan, granted_by);
        if ops.is_empty() {
            // Nothing in the record to change (a grant made before the
            // record mirrored them, withdrawn): the grant alone.
            let plan = entry.id.clone();
            self.writer
                .write(move |conn| {
                    change.store(conn, &plan)?;
                    // In the change log, so the outbox sends the plan to the peer.
                    crate::store::plans::record_change(conn, &plan, now_ms())?;
                    crate::store::audit::insert_audit(conn, &[audit])
                })
                .await?;
            self.notify_changed();
            return Ok(());
        }
        let record = ConsentRecord { change, audit };
        super::retrying(|| self.apply_once(entry, actor, None, &ops, meta, Some(&record)))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(node: &str) -> ConsentChange {
        ConsentChange::Grant(Grant {
            plan_id: "p".into(),
            node_id: node.into(),
            scope: "full".into(),
            granted_by: "u".into(),
            granted_at: 1_764_633_600_000, // 2025-12-02
            expires_at: None,
            revoked_by: None,
            revoked_at: None,
        })
    }

    #[test]
    fn a_first_grant_adds_the_record_and_a_later_one_renews_it() {
        let plan = json!({"consents": [
            {"id": "01A", "grantee": "county-school", "scope": "summary"}
        ]});
        let ops = grant("county-b").mirror_ops(&plan, Some("01M"));
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].path, "/consents");
        assert_eq!(
            ops[0].value,
            Some(
                json!({"grantee": "county-b", "scope": "full_plan", "status": "active",
                "granted_on": "2025-12-02", "granted_by": "01M"})
            )
        );
        let plan = json!({"consents": [
            {"id": "01B", "grantee": "county-b", "scope": "full_plan", "status": "revoked",
             "revoked_on": "2025-11-01"}
        ]});
        let ops = grant("county-b").mirror_ops(&plan, None);
        assert!(ops.iter().all(|op| op.path.starts_with("/consents/01B/")));
        let status = ops.iter().find(|op| op.path.ends_with("/status"));
        assert_eq!(
            status.and_then(|op| op.value.clone()),
            Some(json!("active"))
        );
        let revoked = ops.iter().find(|op| op.path.ends_with("/revoked_on"));
        assert_eq!(revoked.and_then(|op| op.value.clone()), Some(Json::Null));
    }

    #[test]
    fn a_revocation_marks_every_live_record_of_the_node() {
        let plan = json!({"consents": [
            {"id": "01A", "grantee": "county-b", "status": "active"},
            {"id": "01B", "grantee": "county-b", "status": "revoked"},
            {"id": "01C", "grantee": "county-c", "status": "active"}
        ]});
        let revoke = ConsentChange::Revoke {
            node: "county-b".into(),
            by: "u".into(),
            at: 1_764_633_600_000,
        };
        let paths: Vec<String> = revoke
            .mirror_ops(&plan, None)
            .into_iter()
            .map(|op| op.path)
            .collect();
        assert_eq!(paths, ["/consents/01A/status", "/consents/01A/revoked_on"]);
    }
}
