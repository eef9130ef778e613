//! The hub's storage: kept reports and their cells, the release ledger and
//! the node directory. Synchronous diesel, run on the blocking pool;
//! returns [`StoreError`], never HTTP.

use super::merge;
use super::publish::LedgerEntry;
use super::schema::{hub_audit, hub_cells, hub_ledger, hub_nodes, hub_reports};
use crate::db::{DbConnection, StoreError};
use diesel::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use wrapsync_shared::hub::{SubmissionOutcome, SubmissionReceipt};
use wrapsync_shared::indicators::{Cell, Period, Report};

/// A vocabulary value as spelled on the wire (and in the tables).
fn spelled<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn parsed<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| StoreError::Corrupt(format!("unknown vocabulary value {text:?}")))
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Conflict(format!("{n} is too large to keep")))
}

fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
}

fn vocabulary(v: u32) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Conflict(format!("vocabulary {v} is out of range")))
}

/// On PostgreSQL, serializes submissions and releases across hub
/// processes for the rest of the transaction (SQLite has one writer).
fn lock(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(c) = conn {
        diesel::sql_query("LOCK TABLE hub_reports IN SHARE ROW EXCLUSIVE MODE").execute(c)?;
    }
    Ok(())
}

/// The report kept for `node`, `period` and `vocabulary`, if any.
pub fn kept_report(
    conn: &mut DbConnection,
    node: &str,
    period: Period,
    vocab: u32,
) -> Result<Option<Report>, StoreError> {
    let version: Option<i64> = hub_reports::table
        .filter(hub_reports::node_id.eq(node))
        .filter(hub_reports::period.eq(period.to_string()))
        .filter(hub_reports::vocabulary.eq(vocabulary(vocab)?))
        .select(hub_reports::version)
        .first(conn)
        .optional()?;
    let Some(version) = version else {
        return Ok(None);
    };
    let rows: Vec<CellRow> = hub_cells::table
        .filter(hub_cells::node_id.eq(node))
        .filter(hub_cells::period.eq(period.to_string()))
        .filter(hub_cells::vocabulary.eq(vocabulary(vocab)?))
        .select(CELL_COLUMNS)
        .load(conn)?;
    let cells = rows
        .into_iter()
        .map(|row| cell(&row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(merge::canonical(&Report {
        vocabulary: vocab,
        period,
        version: to_u64(version)?,
        cells,
    })))
}

type CellRow = (String, String, String, String, i64, Option<i64>);
const CELL_COLUMNS: (
    hub_cells::node_id,
    hub_cells::indicator,
    hub_cells::age_band,
    hub_cells::category,
    hub_cells::value,
    hub_cells::base,
) = (
    hub_cells::node_id,
    hub_cells::indicator,
    hub_cells::age_band,
    hub_cells::category,
    hub_cells::value,
    hub_cells::base,
);

fn cell((_, indicator, age_band, category, value, base): &CellRow) -> Result<Cell, StoreError> {
    Ok(Cell {
        indicator: parsed(indicator)?,
        age_band: parsed(age_band)?,
        category: if category.is_empty() {
            None
        } else {
            Some(parsed(category)?)
        },
        value: to_u64(*value)?,
        base: base.map(to_u64).transpose()?,
    })
}

/// Merges `node`'s validated `report` into what the hub keeps, in one
/// transaction: it replaces the kept one only if it is greater by
/// (version, canonical encoding).
pub fn submit(
    conn: &mut DbConnection,
    node: &str,
    report: &Report,
) -> Result<SubmissionReceipt, StoreError> {
    match submit_limited(conn, node, report, || Ok(()))? {
        Submitted::Receipt(receipt) => Ok(receipt),
        Submitted::TooSoon(_) => Err(StoreError::Conflict("a revision too soon".into())),
    }
}

/// What [`submit_limited`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    Receipt(SubmissionReceipt),
    /// A revision `may_revise` refused: nothing was stored; retry after.
    TooSoon(std::time::Duration),
}

/// [`submit`], asking `may_revise` before a report replaces a kept one of
/// the same period with other cells (a revision); a refusal stores
/// nothing. A first report, a resend and a new version with the same
/// cells are not revisions.
pub fn submit_limited(
    conn: &mut DbConnection,
    node: &str,
    report: &Report,
    may_revise: impl FnOnce() -> Result<(), std::time::Duration>,
) -> Result<Submitted, StoreError> {
    conn.transaction(|conn| {
        lock(conn)?;
        let kept = kept_report(conn, node, report.period, report.vocabulary)?;
        let outcome = merge::decide(kept.as_ref(), report);
        if let (Some(kept), SubmissionOutcome::Stored) = (&kept, outcome) {
            if kept.cells != merge::canonical(report).cells {
                if let Err(wait) = may_revise() {
                    return Ok(Submitted::TooSoon(wait));
                }
            }
        }
        let version = match (&kept, outcome) {
            (Some(kept), SubmissionOutcome::Superseded) => kept.version,
            _ => report.version,
        };
        if outcome == SubmissionOutcome::Stored {
            let (period, vocab) = (report.period.to_string(), vocabulary(report.vocabulary)?);
            diesel::delete(
                hub_cells::table
                    .filter(hub_cells::node_id.eq(node))
                    .filter(hub_cells::period.eq(&period))
                    .filter(hub_cells::vocabulary.eq(vocab)),
            )
            .execute(conn)?;
            diesel::delete(
                hub_reports::table
                    .filter(hub_reports::node_id.eq(node))
                    .filter(hub_reports::period.eq(&period))
                    .filter(hub_reports::vocabulary.eq(vocab)),
            )
            .execute(conn)?;
            diesel::insert_into(hub_reports::table)
                .values((
                    hub_reports::node_id.eq(node),
                    hub_reports::period.eq(&period),
                    hub_reports::vocabulary.eq(vocab),
                    hub_reports::version.eq(to_i64(report.version)?),
                ))
                .execute(conn)?;
            let rows = report
                .cells
                .iter()
                .map(|c| {
                    Ok((
                        hub_cells::node_id.eq(node),
                        hub_cells::period.eq(&period),
                        hub_cells::vocabulary.eq(vocab),
                        hub_cells::indicator.eq(spelled(&c.indicator)),
                        hub_cells::age_band.eq(spelled(&c.age_band)),
                        hub_cells::category.eq(c.category.map(|c| spelled(&c)).unwrap_or_default()),
                        hub_cells::value.eq(to_i64(c.value)?),
                        hub_cells::base.eq(c.base.map(to_i64).transpose()?),
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            for chunk in rows.chunks(1000) {
                let insert = diesel::insert_into(hub_cells::table).values(chunk);
                crate::on_backend!(conn, |c| insert.execute(c))?;
            }
        }
        Ok(Submitted::Receipt(SubmissionReceipt {
            node: node.to_string(),
            period: report.period,
            vocabulary: report.vocabulary,
            version,
            kept: outcome != SubmissionOutcome::Superseded,
            outcome,
        }))
    })
}

/// One row of the hub's audit trail: what it refused from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub at: i64,
    pub node_id: String,
    /// `report.submit`.
    pub action: String,
    /// The problem code (`report-over-ceiling`, `report-revisions-limited`).
    pub outcome: String,
    pub period: String,
    pub detail: String,
}

/// Records `row` (its detail cut to the audit's length).
pub fn audit(conn: &mut DbConnection, row: &AuditRow) -> Result<(), StoreError> {
    let cut = |s: &str, n| crate::store::audit::cut(s, n);
    diesel::insert_into(hub_audit::table)
        .values((
            hub_audit::at.eq(row.at),
            hub_audit::node_id.eq(cut(&row.node_id, 80)),
            hub_audit::action.eq(cut(&row.action, 160)),
            hub_audit::outcome.eq(cut(&row.outcome, 80)),
            hub_audit::period.eq(cut(&row.period, 16)),
            hub_audit::detail.eq(cut(&row.detail, crate::store::audit::MAX_DETAIL)),
        ))
        .execute(conn)?;
    Ok(())
}

/// The audit trail, oldest first.
pub fn audit_rows(conn: &mut DbConnection) -> Result<Vec<AuditRow>, StoreError> {
    let rows: Vec<(i64, String, String, String, String, String)> = hub_audit::table
        .order(hub_audit::id)
        .select((
            hub_audit::at,
            hub_audit::node_id,
            hub_audit::action,
            hub_audit::outcome,
            hub_audit::period,
            hub_audit::detail,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(at, node_id, action, outcome, period, detail)| AuditRow {
            at,
            node_id,
            action,
            outcome,
            period,
            detail,
        })
        .collect())
}

/// For each period of vocabulary `vocab`, the nodes that reported it.
pub fn period_nodes(
    conn: &mut DbConnection,
    vocab: u32,
) -> Result<BTreeMap<Period, Vec<String>>, StoreError> {
    let rows: Vec<(String, String)> = hub_reports::table
        .filter(hub_reports::vocabulary.eq(vocabulary(vocab)?))
        .select((hub_reports::period, hub_reports::node_id))
        .load(conn)?;
    let mut periods: BTreeMap<Period, Vec<String>> = BTreeMap::new();
    for (period, node) in rows {
        let period: Period = period
            .parse()
            .map_err(|e: String| StoreError::Corrupt(format!("a stored period: {e}")))?;
        periods.entry(period).or_default().push(node);
    }
    Ok(periods)
}

/// Every kept report of a period in one vocabulary, by node id.
pub fn period_reports(
    conn: &mut DbConnection,
    period: Period,
    vocab: u32,
) -> Result<Vec<(String, Report)>, StoreError> {
    let heads: Vec<(String, i64)> = hub_reports::table
        .filter(hub_reports::period.eq(period.to_string()))
        .filter(hub_reports::vocabulary.eq(vocabulary(vocab)?))
        .select((hub_reports::node_id, hub_reports::version))
        .load(conn)?;
    let rows: Vec<CellRow> = hub_cells::table
        .filter(hub_cells::period.eq(period.to_string()))
        .filter(hub_cells::vocabulary.eq(vocabulary(vocab)?))
        .select(CELL_COLUMNS)
        .load(conn)?;
    let mut reports: BTreeMap<String, Report> = BTreeMap::new();
    for (node, version) in heads {
        reports.insert(
            node,
            Report {
                vocabulary: vocab,
                period,
                version: to_u64(version)?,
                cells: Vec::new(),
            },
        );
    }
    for row in rows {
        let parsed = cell(&row)?;
        if let Some(report) = reports.get_mut(&row.0) {
            report.cells.push(parsed);
        }
    }
    Ok(reports
        .into_iter()
        .map(|(node, report)| (node, merge::canonical(&report)))
        .collect())
}

/// What earlier releases of a period published and withheld.
pub fn ledger(
    conn: &mut DbConnection,
    period: Period,
    vocab: u32,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let rows: Vec<(String, i64, bool)> = hub_ledger::table
        .filter(hub_ledger::period.eq(period.to_string()))
        .filter(hub_ledger::vocabulary.eq(vocabulary(vocab)?))
        .select((hub_ledger::figure, hub_ledger::value, hub_ledger::withheld))
        .load(conn)?;
    rows.into_iter()
        .map(|(figure, value, withheld)| {
            Ok(LedgerEntry {
                figure,
                value: to_u64(value)?,
                withheld,
            })
        })
        .collect()
}

/// Publishes `period` from what the hub keeps now: loads the reports and
/// the ledger, lets `make` build the release, and records its numbers in
/// the ledger, all in one transaction (so two releases never race past
/// each other's ledger entries).
pub fn release<T>(
    conn: &mut DbConnection,
    period: Period,
    vocab: u32,
    make: impl FnOnce(&[(String, Report)], &[LedgerEntry]) -> (T, Vec<LedgerEntry>),
) -> Result<T, StoreError> {
    conn.transaction(|conn| {
        lock(conn)?;
        let reports = period_reports(conn, period, vocab)?;
        let earlier = ledger(conn, period, vocab)?;
        let (release, entries) = make(&reports, &earlier);
        if reports.is_empty() {
            // Nothing reported: all zeros, nothing to protect. Recording
            // them would let anyone grow the ledger by asking for periods.
            return Ok(release);
        }
        let known: HashSet<(&str, u64, bool)> = earlier
            .iter()
            .map(|e| (e.figure.as_str(), e.value, e.withheld))
            .collect();
        let (period, vocab) = (period.to_string(), vocabulary(vocab)?);
        let rows = entries
            .iter()
            .filter(|e| !known.contains(&(e.figure.as_str(), e.value, e.withheld)))
            .map(|e| {
                Ok((
                    hub_ledger::period.eq(&period),
                    hub_ledger::vocabulary.eq(vocab),
                    hub_ledger::figure.eq(&e.figure),
                    hub_ledger::value.eq(to_i64(e.value)?),
                    hub_ledger::withheld.eq(e.withheld),
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for chunk in rows.chunks(1000) {
            let insert = diesel::insert_into(hub_ledger::table).values(chunk);
            crate::on_backend!(conn, |c| insert.execute(c))?;
        }
        Ok(release)
    })
}

/// Records where an enrolled node can be reached (replacing its old URL).
pub fn register_node(
    conn: &mut DbConnection,
    id: &str,
    url: &str,
    public_key: &str,
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        diesel::delete(hub_nodes::table.find(id)).execute(conn)?;
        diesel::insert_into(hub_nodes::table)
            .values((
                hub_nodes::id.eq(id),
                hub_nodes::url.eq(url),
                hub_nodes::public_key.eq(public_key),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// Every registered URL: node id → (url, the key it registered with).
pub fn node_urls(
    conn: &mut DbConnection,
) -> Result<BTreeMap<String, (String, String)>, StoreError> {
    let rows: Vec<(String, String, String)> = hub_nodes::table
        .select((hub_nodes::id, hub_nodes::url, hub_nodes::public_key))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, url, key)| (id, (url, key)))
        .collect())
}

/// The periods some node reported in vocabulary `vocab`, oldest first.
pub fn periods(conn: &mut DbConnection, vocab: u32) -> Result<Vec<Period>, StoreError> {
    let texts: Vec<String> = hub_reports::table
        .filter(hub_reports::vocabulary.eq(vocabulary(vocab)?))
        .select(hub_reports::period)
        .distinct()
        .order(hub_reports::period)
        .load(conn)?;
    texts
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|e: String| StoreError::Corrupt(format!("a stored period: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::merge::HubState;
    use crate::hub::publish::{publish, Ledger};
    use crate::hub::schema::migrate;
    use crate::store::tests::TestDb;
    use wrapsync_shared::indicators::{AgeBand, Indicator, VOCABULARY_VERSION};

    fn connect(db: &TestDb) -> DbConnection {
        let mut conn = db.backend.connect().unwrap_or_else(|e| panic!("{e}"));
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        // Migrating twice is a no-op.
        migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        conn
    }

    fn report(version: u64, values: &[u64]) -> Report {
        Report {
            vocabulary: VOCABULARY_VERSION,
            period: Period::new(2026, 10).unwrap_or_else(|| panic!("period")),
            version,
            cells: values
                .iter()
                .zip(AgeBand::ALL)
                .map(|(&value, age_band)| Cell {
                    indicator: Indicator::TeamMet,
                    age_band,
                    category: None,
                    value,
                    base: Some(value + 12),
                })
                .collect(),
        }
    }

    #[test]
    fn only_revisions_ask_and_a_refused_one_stores_nothing() {
        for db in TestDb::both() {
            let mut conn = connect(&db);
            let asked = std::cell::Cell::new(0);
            let send = |conn: &mut DbConnection, r: &Report, allow: bool| {
                submit_limited(conn, "county-b", r, || {
                    asked.set(asked.get() + 1);
                    if allow {
                        Ok(())
                    } else {
                        Err(std::time::Duration::from_secs(600))
                    }
                })
                .unwrap_or_else(|e| panic!("{e}"))
            };
            // A first report, a resend and the same cells again under a
            // new version are not revisions.
            assert!(matches!(
                send(&mut conn, &report(1, &[20]), false),
                Submitted::Receipt(_)
            ));
            assert!(matches!(
                send(&mut conn, &report(1, &[20]), false),
                Submitted::Receipt(_)
            ));
            assert!(matches!(
                send(&mut conn, &report(2, &[20]), false),
                Submitted::Receipt(_)
            ));
            assert_eq!(asked.get(), 0);
            // Other cells are: refused, nothing stored.
            assert_eq!(
                send(&mut conn, &report(3, &[25]), false),
                Submitted::TooSoon(std::time::Duration::from_secs(600))
            );
            assert_eq!(asked.get(), 1);
            let period = report(1, &[]).period;
            let kept = kept_report(&mut conn, "county-b", period, VOCABULARY_VERSION)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(kept.map(|k| k.version), Some(2));
            assert!(matches!(
                send(&mut conn, &report(3, &[25]), true),
                Submitted::Receipt(_)
            ));
            // Refusals are audited.
            let row = AuditRow {
                at: 1,
                node_id: "county-b".into(),
                action: "report.submit".into(),
                outcome: "report-over-ceiling".into(),
                period: "2026-10".into(),
                detail: "x".repeat(1000),
            };
            audit(&mut conn, &row).unwrap_or_else(|e| panic!("{e}"));
            let rows = audit_rows(&mut conn).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].outcome, "report-over-ceiling");
            assert!(rows[0].detail.len() <= 310, "the detail is cut");
        }
    }

    #[test]
    fn the_store_keeps_what_the_merge_keeps_and_releases_are_recorded() {
        for db in TestDb::both() {
            let mut conn = connect(&db);
            hub_nodes::table
                .select(hub_nodes::all_columns)
                .load::<(String, String, String)>(&mut conn)
                .unwrap_or_else(|e| panic!("{e}"));
            hub_ledger::table
                .select(hub_ledger::all_columns)
                .load::<(String, i32, String, i64, bool)>(&mut conn)
                .unwrap_or_else(|e| panic!("{e}"));
            let submissions = [
                ("county-a", report(1, &[20, 30])),
                ("county-a", report(2, &[20, 31, 5])),
                ("county-a", report(2, &[20, 32])),
                ("county-b", report(1, &[40, 41, 42, 0, 7])),
                ("county-a", report(1, &[99])),
            ];
            let mut memory = HubState::default();
            for (node, r) in &submissions {
                let receipt = submit(&mut conn, node, r).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(receipt.outcome, memory.merge(node, r), "{node} {r:?}");
            }
            for (node, r) in submissions.iter().rev() {
                submit(&mut conn, node, r).unwrap_or_else(|e| panic!("{e}"));
            }
            let period = submissions[0].1.period;
            let stored = period_reports(&mut conn, period, VOCABULARY_VERSION)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(stored, memory.period(period, VOCABULARY_VERSION));

            let make = |reports: &[(String, Report)], earlier: &[LedgerEntry]| {
                let ledger = Ledger::from_entries(earlier.iter().cloned());
                publish(period, VOCABULARY_VERSION, reports, &ledger)
            };
            let first = release(&mut conn, period, VOCABULARY_VERSION, make)
                .unwrap_or_else(|e| panic!("{e}"));
            let recorded = ledger(&mut conn, period, VOCABULARY_VERSION)
                .unwrap_or_else(|e| panic!("{e}"))
                .len();
            assert!(recorded > 0);
            let second = release(&mut conn, period, VOCABULARY_VERSION, make)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(first, second);
            let again = ledger(&mut conn, period, VOCABULARY_VERSION)
                .unwrap_or_else(|e| panic!("{e}"))
                .len();
            assert_eq!(recorded, again, "the same release records nothing new");

            register_node(&mut conn, "county-a", "https://a.example", "KEY")
                .unwrap_or_else(|e| panic!("{e}"));
            register_node(&mut conn, "county-a", "https://a2.example", "KEY")
                .unwrap_or_else(|e| panic!("{e}"));
            let urls = node_urls(&mut conn).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(urls["county-a"].0, "https://a2.example");
        }
    }
}
