//! Moves of a plan's home between nodes (see `federation::transfer`).

use crate::db::schema::plan_transfers;
use crate::db::{DbConnection, StoreError};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Insertable, PartialEq)]
#[diesel(table_name = plan_transfers)]
pub struct TransferRow {
    pub plan_id: String,
    pub from_node: String,
    pub to_node: String,
    /// The old home's signed word (`signing::verify_transfer`).
    pub certificate: String,
    /// `pending` until the new home acknowledged the plan, then `done`.
    pub state: String,
    /// When the move was certified (ms); the same on both nodes.
    pub created_at: i64,
}

pub const PENDING: &str = "pending";
pub const DONE: &str = "done";

/// Records a move, once: recording it again changes nothing.
pub fn record(conn: &mut DbConnection, row: &TransferRow) -> Result<(), StoreError> {
    let known = plan_transfers::table
        .find((&row.plan_id, row.created_at))
        .select(plan_transfers::plan_id)
        .first::<String>(conn)
        .optional()?;
    if known.is_none() {
        diesel::insert_into(plan_transfers::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn set_state(
    conn: &mut DbConnection,
    plan: &str,
    created_at: i64,
    state: &str,
) -> Result<(), StoreError> {
    diesel::update(plan_transfers::table.find((plan, created_at)))
        .set(plan_transfers::state.eq(state))
        .execute(conn)?;
    Ok(())
}

/// A plan's moves, oldest first: the chain of certificates a replica holder
/// follows from the home it knows to the home now.
pub fn for_plan(conn: &mut DbConnection, plan: &str) -> Result<Vec<TransferRow>, StoreError> {
    Ok(plan_transfers::table
        .filter(plan_transfers::plan_id.eq(plan))
        .order(plan_transfers::created_at)
        .load(conn)?)
}

/// Moves away from `node` that the new home has not acknowledged yet.
pub fn pending_from(conn: &mut DbConnection, node: &str) -> Result<Vec<TransferRow>, StoreError> {
    Ok(plan_transfers::table
        .filter(plan_transfers::from_node.eq(node))
        .filter(plan_transfers::state.eq(PENDING))
        .order(plan_transfers::created_at)
        .load(conn)?)
}
