//! The audit trail (HIPAA §164.312(b)): who touched which plan, how, with
//! what outcome, when and from where. Append-only: the database itself
//! refuses UPDATE and DELETE on it.

use crate::db::schema::audit_log;
use crate::db::{DbConnection, StoreError};
use crate::tally::RefusalCounting;
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

/// Longest name a row keeps (user, user id, role, outcome, address, request
/// id): usernames are at most 64 characters, `peer:<node id>` 69, but the
/// username a failed login tried is whatever the caller sent.
pub const MAX_NAME: usize = 80;

/// Longest action a row keeps (`<METHOD> <route pattern>` at most).
pub const MAX_ACTION: usize = 160;

/// At most `max` characters of `text`.
pub fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl AuditRecord {
    /// The record with every text cut to its bound. Applied where every
    /// row is stored ([`insert_audit`]) and where refusals are queued
    /// (`Writer::audit`), so no caller can forget it: a row costs at most
    /// about 1 KB whatever the request held.
    pub fn bounded(&self) -> AuditRecord {
        let cut_opt = |text: &Option<String>, max| text.as_deref().map(|t| cut(t, max));
        AuditRecord {
            at: self.at,
            user_id: cut_opt(&self.user_id, MAX_NAME),
            username: cut_opt(&self.username, MAX_NAME),
            role: cut_opt(&self.role, MAX_NAME),
            plan_id: cut_opt(&self.plan_id, MAX_PLAN_ID),
            action: cut(&self.action, MAX_ACTION),
            outcome: cut(&self.outcome, MAX_NAME),
            detail: cut_opt(&self.detail, MAX_DETAIL),
            remote: cut_opt(&self.remote, MAX_NAME),
            request_id: cut_opt(&self.request_id, MAX_NAME),
        }
    }
}

/// Stores `records`, each cut to the bounds above.
pub fn insert_audit(conn: &mut DbConnection, records: &[AuditRecord]) -> Result<(), StoreError> {
    let records: Vec<AuditRecord> = records.iter().map(AuditRecord::bounded).collect();
    // SQLite caps bound parameters per statement; 10 columns × 500 rows fits.
    for chunk in records.chunks(500) {
        let insert = diesel::insert_into(audit_log::table).values(chunk);
        crate::on_backend!(conn, |c| insert.execute(c))?;
    }
    Ok(())
}

/// What makes two refusals "of a kind from a source": the client address,
/// the action (route pattern or handler action), the outcome, and the
/// caller whose token or signature checked out. Never the username a
/// failed login tried, nor a plan id: the caller chooses those freely.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RefusalKind {
    remote: Option<String>,
    action: String,
    outcome: String,
    /// `(user_id, username, role)` of a verified caller.
    caller: Option<(Option<String>, Option<String>, String)>,
}

/// The outcomes of a refusal (`audit::Outcome::of`); others (`ok`,
/// `accepted`) are never counted.
pub const REFUSALS: &[&str] = &["denied", "refused", "not_found", "error"];

/// Starts the summary rows' detail: `repeated 41 more times …`.
pub const REPEATED: &str = "repeated ";

/// The refusals of the trail, counted per [`RefusalCounting`]; kept by the
/// writer thread, with time passed in.
pub struct RefusalTrail {
    interval_secs: u64,
    tally: crate::tally::Tally<RefusalKind>,
}

impl RefusalTrail {
    pub fn new(counting: RefusalCounting) -> Self {
        let interval_ms =
            i64::try_from(counting.interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        RefusalTrail {
            interval_secs: counting.interval_secs,
            tally: crate::tally::Tally::new(interval_ms, counting.rows, |kind| RefusalKind {
                remote: None,
                ..kind.clone()
            }),
        }
    }

    /// `record` if it is to be stored on its own: anything not refused,
    /// and the first refusals of their kind in an interval.
    pub fn admit(&mut self, record: AuditRecord, now_ms: i64) -> Option<AuditRecord> {
        if !REFUSALS.contains(&record.outcome.as_str()) {
            return Some(record);
        }
        // A role is set only for a caller who proved who they are.
        let caller = record
            .role
            .clone()
            .map(|role| (record.user_id.clone(), record.username.clone(), role));
        let kind = RefusalKind {
            remote: record.remote.clone(),
            action: record.action.clone(),
            outcome: record.outcome.clone(),
            caller,
        };
        match self.tally.see(kind, now_ms, record.request_id.as_deref()) {
            crate::tally::Seen::Record => Some(record),
            crate::tally::Seen::Counted => None,
        }
    }

    /// The summary rows of the intervals closed by `now_ms` (of all, with
    /// `all`: the node is stopping).
    pub fn summaries(&mut self, now_ms: i64, all: bool) -> Vec<AuditRecord> {
        let interval = self.interval_secs;
        self.tally
            .close(now_ms, all)
            .into_iter()
            .map(|closed| {
                let (user_id, username, role) = match closed.kind.caller {
                    Some((user_id, username, role)) => (user_id, username, Some(role)),
                    None => (None, None, None),
                };
                let after = closed
                    .first
                    .map_or_else(String::new, |id| format!(" after request {id}"));
                AuditRecord {
                    at: now_ms,
                    user_id,
                    username,
                    role,
                    plan_id: None,
                    action: closed.kind.action,
                    outcome: closed.kind.outcome,
                    detail: Some(format!(
                        "{REPEATED}{} more times within {interval} s{after} (from {})",
                        closed.counted, closed.opened_at
                    )),
                    remote: closed.kind.remote,
                    request_id: None,
                }
            })
            .collect()
    }

    /// When the next summary may be due.
    pub fn next_close(&self) -> Option<i64> {
        self.tally.next_close()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(remote: &str, request_id: &str) -> AuditRecord {
        AuditRecord {
            at: 0,
            user_id: None,
            username: Some("x".repeat(1_000_000)),
            role: None,
            plan_id: Some("P".repeat(10_000)),
            action: "auth.login".into(),
            outcome: "denied".into(),
            detail: Some("é".repeat(100_000)),
            remote: Some(remote.into()),
            request_id: Some(request_id.into()),
        }
    }

    #[test]
    fn every_text_is_cut_on_character_boundaries() {
        let row = refusal("127.0.0.1", "r1").bounded();
        assert_eq!(row.username.map(|u| u.len()), Some(MAX_NAME));
        assert_eq!(row.plan_id.map(|p| p.len()), Some(MAX_PLAN_ID));
        assert_eq!(row.detail.map(|d| d.chars().count()), Some(MAX_DETAIL));
    }

    #[test]
    fn refusals_past_the_first_of_an_interval_come_out_as_one_counted_row() {
        let mut trail = RefusalTrail::new(RefusalCounting::default());
        let kept: Vec<_> = (0..50)
            .filter_map(|i| trail.admit(refusal("10.0.0.1", &format!("r{i}")), i))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].request_id.as_deref(), Some("r0"));
        // Another source is another kind; a success is never counted.
        assert!(trail.admit(refusal("10.0.0.2", "s0"), 1).is_some());
        let ok = AuditRecord {
            outcome: "ok".into(),
            ..refusal("10.0.0.1", "ok")
        };
        assert!(trail.admit(ok, 2).is_some());
        assert!(trail.summaries(59_999, false).is_empty());
        let rows = trail.summaries(60_000, false);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let detail = rows[0].detail.clone().unwrap_or_default();
        assert!(
            detail.starts_with("repeated 49 more times within 60 s after request r0"),
            "{detail}"
        );
        assert_eq!(rows[0].remote.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            (rows[0].username.as_deref(), rows[0].request_id.as_deref()),
            (None, None)
        );
    }
}
