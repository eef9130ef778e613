//! A fresh PostgreSQL database per test, created on the server named by
//! `WRAPSYNC_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`, user
//! postgres with trust auth) and dropped with its handle. The one fixture
//! the server's storage tests and the end-to-end tests share, so parallel
//! tests never share state and no test leaves a database behind.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

/// Why a test database could not be made or dropped: the suites need
/// PostgreSQL and fail rather than skip without it.
#[derive(Debug, thiserror::Error)]
pub enum TestDbError {
    #[error(
        "PostgreSQL at {server} (WRAPSYNC_TEST_PG) is needed for the PostgreSQL tests: {source}"
    )]
    Unreachable {
        server: String,
        source: diesel::ConnectionError,
    },
    #[error("{sql}: {source}")]
    Statement {
        sql: String,
        source: diesel::result::Error,
    },
}

/// One test's database, dropped (with any connections still open to it)
/// when this is.
pub struct PgDatabase {
    server: String,
    name: String,
}

impl PgDatabase {
    /// A new, empty database with a random name; the schema is the
    /// caller's to migrate (a node does it itself on start).
    pub fn create() -> Result<PgDatabase, TestDbError> {
        let server = std::env::var("WRAPSYNC_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!(
            "wrapsync_test_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let database = PgDatabase { server, name };
        database.administer(&format!("CREATE DATABASE \"{}\"", database.name))?;
        Ok(database)
    }

    /// The URL a node or a connection uses to reach this database.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Runs `sql` in the server's `postgres` database, where databases are
    /// made and dropped; the connection is bounded so a server that is down
    /// fails fast.
    fn administer(&self, sql: &str) -> Result<(), TestDbError> {
        let admin_url = format!("{}/postgres?connect_timeout=10", self.server);
        let mut admin =
            PgConnection::establish(&admin_url).map_err(|source| TestDbError::Unreachable {
                server: self.server.clone(),
                source,
            })?;
        admin
            .batch_execute(sql)
            .map_err(|source| TestDbError::Statement {
                sql: sql.to_string(),
                source,
            })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // WITH (FORCE): a killed node's connections may linger a moment.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = self.administer(&sql) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}
