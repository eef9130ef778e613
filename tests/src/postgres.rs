//! PostgreSQL for test nodes: a fresh database per node (the fixture the
//! server's unit tests use too), and what it holds as `pg_dump` writes it.

use crate::{Context, HarnessError, Result};
use std::process::{Command, Stdio};
pub(crate) use wrapsync_test_db::PgDatabase;
use wrapsync_test_db::TestDbError;

impl From<TestDbError> for HarnessError {
    fn from(e: TestDbError) -> Self {
        HarnessError::new(e.to_string())
    }
}

/// Everything `database` holds, as `pg_dump` writes it (schema and data,
/// as text).
pub(crate) fn dump(database: &PgDatabase) -> Result<Vec<u8>> {
    let out = Command::new("pg_dump")
        .arg(database.url())
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .context(|| "running pg_dump".to_string())?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(HarnessError::new(format!(
            "pg_dump exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
