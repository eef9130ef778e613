//! A fresh PostgreSQL database per test node, made and dropped with `psql`.

use crate::{random_token, Context, HarnessError, Result};
use std::process::{Command, Stdio};

/// A fresh PostgreSQL database for one node, dropped with it.
pub(crate) struct PgDatabase {
    name: String,
}

impl PgDatabase {
    pub(crate) fn create() -> Result<Self> {
        let name = format!("wrapsync_t_{}", random_token(20).to_ascii_lowercase());
        psql(&format!("CREATE DATABASE \"{name}\"")).context(|| {
            "PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth) is needed for the \
             PostgreSQL tests and could not create a database"
                .to_string()
        })?;
        Ok(PgDatabase { name })
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Everything the database holds, as `pg_dump` writes it (schema and
    /// data, as text).
    pub(crate) fn dump(&self) -> Result<Vec<u8>> {
        let out = Command::new("pg_dump")
            .arg(self.url())
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
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // WITH (FORCE): a killed node's connections may linger a moment.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = psql(&sql) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

fn psql(sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .context(|| "running psql".to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::new(format!(
            "psql -c {sql:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
