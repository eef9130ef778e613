//! Diesel's view of the hub's tables, the same on SQLite and PostgreSQL
//! (`migrations_hub/<backend>` keep them in step; a test checks).

diesel::table! {
    hub_nodes (id) {
        id -> Text,
        url -> Text,
        public_key -> Text,
    }
}

diesel::table! {
    hub_reports (node_id, period, vocabulary) {
        node_id -> Text,
        period -> Text,
        vocabulary -> Integer,
        version -> BigInt,
    }
}

diesel::table! {
    hub_cells (node_id, period, vocabulary, indicator, age_band, category) {
        node_id -> Text,
        period -> Text,
        vocabulary -> Integer,
        indicator -> Text,
        age_band -> Text,
        category -> Text,
        value -> BigInt,
        base -> Nullable<BigInt>,
    }
}

diesel::table! {
    hub_ledger (period, vocabulary, figure, value, withheld) {
        period -> Text,
        vocabulary -> Integer,
        figure -> Text,
        value -> BigInt,
        withheld -> Bool,
    }
}

diesel::table! {
    hub_audit (id) {
        id -> BigInt,
        at -> BigInt,
        node_id -> Text,
        action -> Text,
        outcome -> Text,
        period -> Text,
        detail -> Text,
    }
}

use crate::db::{DbConnection, StoreError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_hub/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_hub/postgres");

/// Runs the hub's pending migrations (its own set: a hub's database holds
/// none of a node's tables).
pub fn migrate(conn: &mut DbConnection) -> Result<(), StoreError> {
    let result = match conn {
        DbConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| StoreError::Connection(format!("migration failed: {e}")))
}
