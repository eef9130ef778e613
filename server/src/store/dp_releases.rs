//! The differentially private releases of this node's monthly reports and
//! the privacy budget they spent (see `report::release`). One row per
//! month, never changed or deleted (the database refuses both): the row is
//! both the report every later send repeats and the ledger entry of what
//! it cost.

use crate::db::schema::dp_releases;
use crate::db::{DbConnection, StoreError};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Insertable, PartialEq)]
#[diesel(table_name = dp_releases)]
pub struct ReleaseRow {
    /// `YYYY-MM`.
    pub period: String,
    /// The period's year: whose budget the release spent.
    pub year: i32,
    /// The privacy loss the release spent.
    pub epsilon: f64,
    /// The noisy `Report`, JSON, exactly as sent.
    pub report: String,
    pub created_at: i64,
}

/// Keeps other processes on the same database (a `wrapsync report` beside
/// the running node) from releasing until this transaction ends, so two
/// releases cannot both pass the budget check on PostgreSQL, where reads
/// do not block writers. SQLite needs nothing: one writer at a time, and a
/// write on a stale read fails rather than commits.
pub fn lock(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(c) = conn {
        c.batch_execute("LOCK TABLE dp_releases IN SHARE ROW EXCLUSIVE MODE")?;
    }
    Ok(())
}

/// The release of `period`, if it was made.
pub fn get(conn: &mut DbConnection, period: &str) -> Result<Option<ReleaseRow>, StoreError> {
    Ok(dp_releases::table
        .find(period)
        .first::<ReleaseRow>(conn)
        .optional()?)
}

/// The privacy loss already spent on releases of `year`'s months.
pub fn spent(conn: &mut DbConnection, year: i32) -> Result<f64, StoreError> {
    // At most twelve rows: summed here, which keeps the SQL the same on
    // both backends (their SUM of a double differs in diesel's types).
    let spent: Vec<f64> = dp_releases::table
        .filter(dp_releases::year.eq(year))
        .select(dp_releases::epsilon)
        .load(conn)?;
    Ok(spent.iter().sum())
}

/// Stores a release; a second one for the same month is a unique violation.
pub fn insert(conn: &mut DbConnection, row: &ReleaseRow) -> Result<(), StoreError> {
    diesel::insert_into(dp_releases::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}
