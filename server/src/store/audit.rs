//! The audit trail (HIPAA §164.312(b)): who touched which plan, how, with
//! what outcome, when and from where. Append-only: the database itself
//! refuses UPDATE and DELETE on it.

use crate::db::schema::audit_log;
use crate::db::{DbConnection, StoreError};
use diesel::prelude::*;
use wrapsync_shared::api::AuditEntry;

/// One audit row before it is stored.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRecord {
    pub at: i64,
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub role: Option<String>,
    pub plan_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub remote: Option<String>,
    pub request_id: Option<String>,
}

/// Longest plan id a row keeps: ids are 26-character ULIDs, but one a
/// caller made up (in a path) could be kilobytes, and a refusal must not
/// cost more to record than a fixed amount.
pub const MAX_PLAN_ID: usize = 64;

/// Longest detail a row keeps: a refusal's message can quote what the
/// caller sent (serde quotes a string of the wrong type whole).
pub const MAX_DETAIL: usize = 300;

/// At most `max` characters of `text`.
pub fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

pub fn insert_audit(conn: &mut DbConnection, records: &[AuditRecord]) -> Result<(), StoreError> {
    // SQLite caps bound parameters per statement; 10 columns × 500 rows fits.
    for chunk in records.chunks(500) {
        let insert = diesel::insert_into(audit_log::table).values(chunk);
        crate::on_backend!(conn, |c| insert.execute(c))?;
    }
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub plan_id: Option<String>,
    pub username: Option<String>,
    /// Only rows with an id below this (paging newest first).
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Queryable)]
struct Row {
    id: i64,
    at: i64,
    username: Option<String>,
    role: Option<String>,
    plan_id: Option<String>,
    action: String,
    outcome: String,
    detail: Option<String>,
    remote: Option<String>,
    request_id: Option<String>,
}

/// Newest first.
pub fn query_audit(
    conn: &mut DbConnection,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut query = audit_log::table
        .select((
            audit_log::id,
            audit_log::at,
            audit_log::username,
            audit_log::role,
            audit_log::plan_id,
            audit_log::action,
            audit_log::outcome,
            audit_log::detail,
            audit_log::remote,
            audit_log::request_id,
        ))
        .order(audit_log::id.desc())
        .limit(filter.limit)
        .into_boxed();
    if let Some(plan) = &filter.plan_id {
        query = query.filter(audit_log::plan_id.eq(plan.clone()));
    }
    if let Some(user) = &filter.username {
        query = query.filter(audit_log::username.eq(user.clone()));
    }
    if let Some(before) = filter.before {
        query = query.filter(audit_log::id.lt(before));
    }
    let rows: Vec<Row> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            at: r.at,
            user: r.username,
            role: r.role,
            plan: r.plan_id,
            action: r.action,
            outcome: r.outcome,
            detail: r.detail,
            remote: r.remote,
            request_id: r.request_id,
        })
        .collect())
}
