//! The node's indicator report for the state hub: de-identified counts
//! made from the plans homed at this node ([`aggregate`]), and sending
//! them to the hub ([`send`]).
//!
//! Only numbers and fixed vocabularies leave (`wrapsync_shared::indicators`
//! types cannot hold anything else); suppression of small cells is the
//! hub's, on the statewide figures.
//!
//! Returns [`ApiError`] like the plan service it reads through.

pub mod aggregate;
pub mod release;
pub mod send;

use crate::app::App;
use crate::audit::{Action, Audit, Outcome, Principal};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::privacy;
use crate::store::audit::{insert_audit, AuditRecord};
use crate::store::plans as stored;
use aggregate::{Tally, Youth};
use wrapsync_shared::indicators::{Period, Report, VOCABULARY_VERSION};

/// Plans loaded from storage at once: bounds the memory a pass over
/// thousands of plans holds.
const BATCH: usize = 64;

/// Makes this node's reports for `periods` with exact counts, reading
/// every plan homed here once for all of them. With differential privacy
/// on, what is shown or sent goes through [`release::report_for`] instead. `trigger` says who asked (`cli`, `schedule`), for
/// the audit trail.
///
/// The aggregator reads every plan, and that read is audited like any
/// other, but with one row per report (action `report.generate`, the
/// period and how many plans were read in `detail`, no plan id) rather
/// than one per plan: what it takes from each plan is the same fixed set
/// of fields, and a row per plan per hour would bury every other access.
/// The rows are stored before the reports are handed back.
pub async fn generate(
    app: &App,
    periods: &[Period],
    trigger: &str,
) -> Result<Vec<Report>, ApiError> {
    if periods.is_empty() {
        // No report, so no read (and nothing to audit).
        return Ok(Vec::new());
    }
    let made = tally(app, periods, None).await;
    let now = now_ms();
    let records: Vec<AuditRecord> = periods
        .iter()
        .map(|period| {
            let (outcome, detail) = match &made {
                Ok((_, read)) => (
                    Outcome::Ok,
                    format!(
                        "period {period}: {} plans read, {} unreadable ({trigger})",
                        read.read, read.unreadable
                    ),
                ),
                Err(e) => (
                    Outcome::Error,
                    format!("period {period}: {} ({trigger})", describe(e)),
                ),
            };
            audit_record(&app.config.node_id, now, outcome, detail)
        })
        .collect();
    app.writer
        .write(move |conn| insert_audit(conn, &records))
        .await?;
    let (reports, _) = made?;
    Ok(reports)
}

/// One pass over the home plans, a [`Tally`] per period (each youth's
/// contribution bounded by `bounds`, if given).
async fn tally(
    app: &App,
    periods: &[Period],
    bounds: Option<privacy::Bounds>,
) -> Result<(Vec<Report>, crate::plans::BatchRead), ApiError> {
    let current = period_at(now_ms()).ok_or_else(|| {
        ApiError::Internal("the clock is outside the years a period spans".into())
    })?;
    for period in periods {
        // The hub refuses these; nothing is read for them.
        wrapsync_shared::plausibility::check_period(*period, current)
            .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    }
    let me = app.config.node_id.clone();
    let ids = app
        .blocking(move |conn| stored::home_plan_ids(conn, &me))
        .await?;
    let mut tallies: Vec<Tally> = periods
        .iter()
        .map(|p| match bounds {
            Some(bounds) => Tally::bounded(*p, bounds),
            None => Tally::new(*p),
        })
        .collect();
    let mut total = crate::plans::BatchRead::default();
    for batch in ids.chunks(BATCH) {
        let read = app
            .plans
            .read_each(batch.to_vec(), |plan| {
                let youth = Youth::from_plan(plan);
                for tally in &mut tallies {
                    tally.add(&youth);
                }
            })
            .await?;
        total.read += read.read;
        total.unreadable += read.unreadable;
    }
    // Milliseconds since the epoch: a later report replaces an earlier one.
    let version = u64::try_from(now_ms()).unwrap_or_default();
    let reports = tallies
        .iter()
        .map(|tally| Report {
            vocabulary: VOCABULARY_VERSION,
            period: tally.period(),
            version,
            cells: tally.cells(),
        })
        .collect::<Vec<_>>();
    for report in &reports {
        report.validate().map_err(|e| {
            ApiError::Internal(format!("the report for {} is invalid: {e}", report.period))
        })?;
        // Never a report the hub would refuse as implausible (the ceiling
        // is the hub's to set, and not known here).
        wrapsync_shared::plausibility::check_counts(report, u64::MAX).map_err(|e| {
            ApiError::Internal(format!(
                "the report for {} is implausible ({}): {e}",
                report.period,
                e.rule()
            ))
        })?;
    }
    Ok((reports, total))
}

/// The audit row of one report: the node itself read its plans.
fn audit_record(node_id: &str, at: i64, outcome: Outcome, detail: String) -> AuditRecord {
    Audit::new(Principal::Node(node_id.to_string()), Action::ReportGenerate)
        .outcome(outcome)
        .detail(detail)
        .at_ms(at)
}

/// An error as an operator needs to read it (an internal error's cause is
/// kept from HTTP clients, not from the node's own log or CLI).
pub fn describe(error: &ApiError) -> String {
    match error {
        ApiError::Internal(cause) => cause.clone(),
        other => other.to_string(),
    }
}

/// The month `now_ms` falls in (UTC).
pub fn period_at(now_ms: i64) -> Option<Period> {
    let at = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)).ok()?;
    Period::of(at.date())
}

#[cfg(test)]
mod tests;
