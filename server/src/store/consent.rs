//! Consent grants: which plans may sync with which peer nodes, until when.

use crate::db::schema::consent_grants;
use crate::db::{DbConnection, StoreError};
use diesel::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Queryable, Serialize, PartialEq)]
pub struct Grant {
    pub plan_id: String,
    pub node_id: String,
    pub scope: String,
    pub granted_by: String,
    pub granted_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<i64>,
}

impl Grant {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// Grants (or renews) sharing `plan` with `node`, replacing any earlier
/// grant or revocation.
pub fn grant(conn: &mut DbConnection, grant: &Grant) -> Result<(), StoreError> {
    use crate::db::schema::peer_plan_heads;
    diesel::delete(consent_grants::table.find((&grant.plan_id, &grant.node_id))).execute(conn)?;
    // Whatever the node confirmed before (an earlier grant), the plan is
    // sent to it afresh.
    diesel::delete(peer_plan_heads::table.find((&grant.node_id, &grant.plan_id))).execute(conn)?;
    diesel::insert_into(consent_grants::table)
        .values((
            consent_grants::plan_id.eq(&grant.plan_id),
            consent_grants::node_id.eq(&grant.node_id),
            consent_grants::scope.eq(&grant.scope),
            consent_grants::granted_by.eq(&grant.granted_by),
            consent_grants::granted_at.eq(grant.granted_at),
            consent_grants::expires_at.eq(grant.expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Revokes a live grant; answers whether there was one.
pub fn revoke(
    conn: &mut DbConnection,
    plan: &str,
    node: &str,
    by: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        consent_grants::table
            .find((plan, node))
            .filter(consent_grants::revoked_at.is_null()),
    )
    .set((
        consent_grants::revoked_by.eq(by),
        consent_grants::revoked_at.eq(now),
    ))
    .execute(conn)?;
    Ok(updated > 0)
}

pub fn for_plan(conn: &mut DbConnection, plan: &str) -> Result<Vec<Grant>, StoreError> {
    Ok(consent_grants::table
        .filter(consent_grants::plan_id.eq(plan))
        .order(consent_grants::node_id)
        .load(conn)?)
}

pub fn find(conn: &mut DbConnection, plan: &str, node: &str) -> Result<Option<Grant>, StoreError> {
    Ok(consent_grants::table
        .find((plan, node))
        .first(conn)
        .optional()?)
}

/// Ends every live grant of a plan (it moved: its new home honors them).
pub fn end_all(conn: &mut DbConnection, plan: &str, now: i64) -> Result<(), StoreError> {
    diesel::update(
        consent_grants::table
            .filter(consent_grants::plan_id.eq(plan))
            .filter(consent_grants::revoked_at.is_null()),
    )
    .set(consent_grants::revoked_at.eq(now))
    .execute(conn)?;
    Ok(())
}
