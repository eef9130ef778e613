//! Differentially private releases (`dp_epsilon_per_year`): with privacy
//! on, a month's report leaves only as its release, made once, after the
//! month ends, and kept.
//!
//! The first time a month is asked for (by the send pass or by `wrapsync
//! report`), its counts are made with each youth's contribution bounded,
//! noised for a twelfth of the yearly budget ([`privacy::add_noise`], with
//! the operating system's randomness) and stored with what it spent
//! (`store::dp_releases`); every later send repeats that stored report, so
//! nobody can average fresh draws of noise away, and resending costs no
//! budget. A month still running is refused: its counts would change, and
//! each change would need a release of its own. Before a month is released,
//! what the releases of its year already spent is summed; a release that
//! would pass `dp_epsilon_per_year` is refused ([`ApiError::PrivacyBudgetSpent`])
//! and audited. Within a year that only happens when the budget was lowered
//! after months were released: a year holds twelve months of a twelfth each.
//!
//! Each release is audited (`report.generate`, the plans read and the
//! epsilon spent and left) in the transaction that stores it.

use super::{audit_record, generate, period_at, tally};
use crate::app::App;
use crate::audit::Outcome;
use crate::db::now_ms;
use crate::error::ApiError;
use crate::metrics::YearLabel;
use crate::privacy::{self, left_after, monthly_epsilon, Privacy};
use crate::store::audit::insert_audit;
use crate::store::dp_releases::{self, ReleaseRow};
use wrapsync_shared::indicators::{Period, Report};

/// The report of `period` to show or send: with privacy on, the month's
/// release (made the first time it is asked for); with it off, a report
/// of exact counts made afresh.
pub async fn report_for(app: &App, period: Period, trigger: &str) -> Result<Report, ApiError> {
    match app.config.privacy() {
        Some(privacy) => release(app, &privacy, period, trigger, now_ms()).await,
        None => generate(app, &[period], trigger)
            .await?
            .pop()
            .ok_or_else(|| ApiError::Internal(format!("no report was made for {period}"))),
    }
}

/// Whether `period` may be released at `now`: only once it is over.
pub fn releasable(period: Period, now: Period) -> bool {
    period < now
}

/// What one attempt to store a release came to.
enum Stored {
    Released {
        spent: f64,
    },
    /// Another process released the month first: its release stands.
    Kept(ReleaseRow),
    Refused {
        spent: f64,
    },
}

/// `period`'s differentially private report at `now_ms`: the stored
/// release if the month has one, else a new release if the month is over
/// and the year's budget allows it.
pub async fn release(
    app: &App,
    privacy: &Privacy,
    period: Period,
    trigger: &str,
    now_ms: i64,
) -> Result<Report, ApiError> {
    let now = period_at(now_ms).ok_or_else(|| {
        ApiError::Internal("the clock is outside the years a period spans".into())
    })?;
    if !releasable(period, now) {
        return Err(ApiError::InvalidRequest(format!(
            "with differential privacy on, a month is released once, after it ends: \
             {period} is not over yet (UTC); the latest month that can be released is {}",
            now.previous()
        )));
    }
    let key = period.to_string();
    let year = i32::from(period.year());
    let (stored, spent) = app
        .blocking(move |conn| {
            Ok((
                dp_releases::get(conn, &key)?,
                dp_releases::spent(conn, year)?,
            ))
        })
        .await?;
    show_spent(app, year, spent);
    if let Some(row) = stored {
        return parse(&row);
    }
    let budget = privacy.epsilon_per_year;
    let epsilon = monthly_epsilon(budget);
    if left_after(budget, spent, epsilon).is_none() {
        let refusal = over_budget(year, spent, budget, epsilon);
        let detail = format!("period {period}: not released: {refusal} ({trigger})");
        let record = audit_record(&app.config.node_id, now_ms, Outcome::Refused, detail);
        app.writer
            .write(move |conn| insert_audit(conn, &[record]))
            .await?;
        return Err(refusal);
    }

    let read = match tally(app, &[period], Some(privacy.bounds)).await {
        Ok(made) => made,
        Err(e) => {
            let detail = format!("period {period}: {} ({trigger})", super::describe(&e));
            let record = audit_record(&app.config.node_id, now_ms, Outcome::Error, detail);
            app.writer
                .write(move |conn| insert_audit(conn, &[record]))
                .await?;
            return Err(e);
        }
    };
    let (reports, counted) = read;
    let mut report = reports
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal(format!("no report was made for {period}")))?;
    // The thread's generator: ChaCha seeded from the operating system.
    privacy::add_noise(&mut report, epsilon, &privacy.bounds, &mut rand::rng());
    report.validate().map_err(|e| {
        ApiError::Internal(format!("the noisy report for {period} is invalid: {e}"))
    })?;
    let row = ReleaseRow {
        period: period.to_string(),
        year,
        epsilon,
        report: serde_json::to_string(&report)
            .map_err(|e| ApiError::Internal(format!("the report for {period}: {e}")))?,
        created_at: now_ms,
    };
    let read_detail = format!(
        "period {period}: {} plans read, {} unreadable",
        counted.read, counted.unreadable
    );
    let node = app.config.node_id.clone();
    let trigger = trigger.to_string();
    let store = {
        let (node, read_detail, trigger) = (node.clone(), read_detail.clone(), trigger.clone());
        move |conn: &mut crate::db::DbConnection| {
            dp_releases::lock(conn)?;
            let audit = |conn: &mut _, outcome: Outcome, what: String| {
                let detail = format!("{read_detail}; {what} ({trigger})");
                insert_audit(conn, &[audit_record(&node, now_ms, outcome, detail)])
            };
            if let Some(existing) = dp_releases::get(conn, &row.period)? {
                audit(
                    conn,
                    Outcome::Ok,
                    "released meanwhile by another pass or process: that release stands, nothing spent"
                        .into(),
                )?;
                return Ok(Stored::Kept(existing));
            }
            let spent = dp_releases::spent(conn, year)?;
            let Some(left) = left_after(budget, spent, epsilon) else {
                let refusal = over_budget(year, spent, budget, epsilon);
                audit(conn, Outcome::Refused, format!("not released: {refusal}"))?;
                return Ok(Stored::Refused { spent });
            };
            dp_releases::insert(conn, &row)?;
            audit(
                conn,
                Outcome::Ok,
                format!(
                    "released with differential privacy: epsilon {} spent, {} of {} left for {year}",
                    number(epsilon),
                    number(left),
                    number(budget)
                ),
            )?;
            Ok(Stored::Released {
                spent: spent + epsilon,
            })
        }
    };
    match app.writer.write(store).await {
        Ok(Stored::Released { spent }) => {
            show_spent(app, year, spent);
            tracing::info!(%period, epsilon, spent, budget, "reports: month released with differential privacy");
            Ok(report)
        }
        Ok(Stored::Kept(existing)) => parse(&existing),
        Ok(Stored::Refused { spent }) => {
            show_spent(app, year, spent);
            Err(over_budget(year, spent, budget, epsilon))
        }
        Err(e) => {
            // Rolled back with its audit row: the read is recorded apart.
            let detail = format!("{read_detail}; not released: {e} ({trigger})");
            let record = audit_record(&node, now_ms, Outcome::Error, detail);
            app.writer
                .write(move |conn| insert_audit(conn, &[record]))
                .await?;
            Err(e.into())
        }
    }
}

fn over_budget(year: i32, spent: f64, budget: f64, epsilon: f64) -> ApiError {
    ApiError::PrivacyBudgetSpent(format!(
        "the privacy budget for {year} is spent: epsilon {} of dp_epsilon_per_year = {} \
         already went on released months, and a month needs {}",
        number(spent),
        number(budget),
        number(epsilon)
    ))
}

fn parse(row: &ReleaseRow) -> Result<Report, ApiError> {
    let mut report: Report = serde_json::from_str(&row.report).map_err(|e| {
        ApiError::Internal(format!(
            "the stored release of {} is unreadable: {e}",
            row.period
        ))
    })?;
    // A release stored before the hub's plausibility rules is made to keep
    // them as it is read (post-processing: no privacy spent).
    wrapsync_shared::plausibility::conform(&mut report);
    Ok(report)
}

/// An epsilon as people read it: six decimals at most, no trailing zeros.
fn number(x: f64) -> String {
    let text = format!("{x:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.into()
    }
}

fn show_spent(app: &App, year: i32, spent: f64) {
    app.metrics
        .report
        .privacy_spent
        .get_or_create(&YearLabel { year })
        .set(spent);
}

#[cfg(test)]
mod tests;
