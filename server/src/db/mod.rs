//! The database: one connection type over SQLite (embedded default) and
//! PostgreSQL (production), chosen by the URL, with embedded migrations.
//!
//! Storage code returns [`StoreError`]; it never sees HTTP.

pub mod schema;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::path::Path;
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend; queries written once run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Why storage failed. Constraint violations are told apart because callers
/// answer them differently (a taken username is not a server fault).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("connection: {0}")]
    Connection(String),
    #[error("stored plan is unreadable: {0}")]
    Corrupt(String),
    #[error("the storage writer has stopped")]
    WriterGone,
    /// A write refused for what the data says (e.g. an actor bound to
    /// someone else), rolled back whole.
    #[error("{0}")]
    Conflict(String),
    /// A plan changed (through another process) since the document a write
    /// was computed from was read, or another process holds its row: the
    /// write is rolled back and done again on the newer document.
    #[error("the plan changed meanwhile")]
    Stale,
    /// What the write was to change is not there (any more): rolled back.
    #[error("{0}")]
    Missing(String),
}

impl StoreError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            StoreError::Db(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Which backend a URL names: `postgres://…` / `postgresql://…` or else a
/// SQLite file path (optionally `sqlite://`-prefixed). A SQLite file may be
/// encrypted (SQLCipher, see [`DatabaseKey`]); only the config says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Postgres(String),
    Sqlite(String),
    SqlCipher { path: String, key: DatabaseKey },
}

/// The key of an encrypted SQLite database (SQLCipher: AES-256 pages with
/// an HMAC each; without the key the file is noise). 64 hex digits are
/// used as the raw key; anything else is a passphrase SQLCipher stretches
/// (PBKDF2, once per connection). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseKey(String);

impl std::fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseKey(…)")
    }
}

impl DatabaseKey {
    /// The key in a file's text (one trailing newline dropped); none when
    /// empty.
    pub fn from_text(text: &str) -> Option<DatabaseKey> {
        let key = text
            .strip_suffix('\n')
            .map(|k| k.strip_suffix('\r').unwrap_or(k))
            .unwrap_or(text);
        (!key.is_empty()).then(|| DatabaseKey(key.to_string()))
    }

    /// A new random raw key, as the text of a key file.
    pub fn generate() -> String {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    /// Writes a new random key to `path`, owner-only; never replaces a file
    /// there (its database would be noise without it).
    pub fn create_file(path: &Path) -> std::io::Result<()> {
        if path.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file is already there",
            ));
        }
        crate::files::write_private(path, format!("{}\n", DatabaseKey::generate()).as_bytes())
    }

    /// The SQL literal `PRAGMA key` takes: `"x'…'"` for a raw key, else the
    /// passphrase quoted.
    fn literal(&self) -> String {
        if self.0.len() == 64 && self.0.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!("\"x'{}'\"", self.0)
        } else {
            format!("'{}'", self.0.replace('\'', "''"))
        }
    }

    /// Keys `conn` (before anything reads the file) and proves the key
    /// opens it: a wrong key, or a plain database, reads as "not a database".
    pub(crate) fn apply(&self, conn: &mut SqliteConnection, path: &str) -> Result<(), StoreError> {
        conn.batch_execute(&format!("PRAGMA key = {};", self.literal()))?;
        conn.batch_execute("SELECT count(*) FROM sqlite_master;")
            .map_err(|e| {
                StoreError::Connection(format!(
                    "{path} cannot be read with the database key ({e}): the key is wrong, or the \
                     database is not encrypted (encrypt it with `wrapsync backup` and \
                     `wrapsync restore`, see the README)"
                ))
            })
    }

    /// Writes the database `conn` has open, whole, to the new file `to`,
    /// encrypted with this key (SQLCipher's `sqlcipher_export`).
    pub fn export(&self, conn: &mut SqliteConnection, to: &Path) -> Result<(), StoreError> {
        let to = to.to_string_lossy().replace('\'', "''");
        conn.batch_execute(&format!(
            "ATTACH DATABASE '{to}' AS encrypted KEY {};
             SELECT sqlcipher_export('encrypted');
             DETACH DATABASE encrypted;",
            self.literal()
        ))?;
        Ok(())
    }
}

impl Backend {
    pub fn from_url(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(url.to_string())
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Backend::Sqlite(path.to_string())
        }
    }

    pub fn is_sqlite(&self) -> bool {
        !matches!(self, Backend::Postgres(_))
    }

    /// The SQLite file, or `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<&str> {
        match self {
            Backend::Postgres(_) => None,
            Backend::Sqlite(path) | Backend::SqlCipher { path, .. } => Some(path),
        }
    }

    /// Opens one connection, with SQLite set up for durability: WAL and
    /// `synchronous=FULL`, so an acknowledged commit survives power loss.
    pub fn connect(&self) -> Result<DbConnection, StoreError> {
        match self {
            Backend::Postgres(url) => PgConnection::establish(url)
                .map(DbConnection::Postgresql)
                .map_err(|e| StoreError::Connection(e.to_string())),
            Backend::Sqlite(path) | Backend::SqlCipher { path, .. } => {
                // Created owner-only before SQLite makes it with the umask's
                // mode (its `-wal` and `-shm` follow the database's).
                if !path.is_empty() && path != ":memory:" && !path.starts_with("file:") {
                    crate::files::private_file(std::path::Path::new(path))
                        .map_err(|e| StoreError::Connection(format!("{path}: {e}")))?;
                }
                let mut conn = SqliteConnection::establish(path)
                    .map_err(|e| StoreError::Connection(e.to_string()))?;
                if let Backend::SqlCipher { key, .. } = self {
                    key.apply(&mut conn, path)?;
                }
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA secure_delete = ON;
                     PRAGMA busy_timeout = 10000;",
                )
                .map_err(|e| match self {
                    Backend::Sqlite(_) => StoreError::Connection(format!(
                        "{path} cannot be opened ({e}); if it is encrypted, give its key \
                         (database_key_file)"
                    )),
                    _ => StoreError::Db(e),
                })?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// Runs one diesel expression on whichever backend `conn` is, for the few
/// statements (batch inserts, RETURNING) the multi-backend connection lacks.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}

/// Runs pending migrations for the connection's backend.
pub fn migrate(conn: &mut DbConnection) -> Result<(), StoreError> {
    let result = match conn {
        DbConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| StoreError::Connection(format!("migration failed: {e}")))
}

/// r2d2 manager that connects by [`Backend`] rather than guessing from the
/// URL the way the derived `establish` would.
pub struct Manager(pub Backend);

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        self.0.connect().map_err(|e| {
            r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(e.to_string()))
        })
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

pub type Pool = r2d2::Pool<Manager>;

/// A pool for reads (writes go through the single writer, see `store::writer`).
pub fn pool(backend: &Backend, size: u32) -> Result<Pool, StoreError> {
    r2d2::Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(10))
        .build(Manager(backend.clone()))
        .map_err(|e| StoreError::Connection(e.to_string()))
}

/// Milliseconds since the Unix epoch: how every timestamp is stored, the
/// same on both backends.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// How long `/readyz` waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the database answers `SELECT 1` on a pooled connection within
/// `timeout` (waiting for a free connection counts).
pub async fn check_ready(pool: &Pool, timeout: Duration) -> Result<(), StoreError> {
    let pool = pool.clone();
    let check = tokio::task::spawn_blocking(move || {
        let mut conn = pool
            .get_timeout(timeout)
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        conn.batch_execute("SELECT 1")?;
        Ok::<(), StoreError>(())
    });
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(StoreError::Connection(format!(
            "readiness check failed: {e}"
        ))),
        Err(_) => Err(StoreError::Connection(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// Runs synchronous diesel work on the blocking pool, never on an async
/// worker thread (inside the caller's tracing span, so its log lines keep
/// the request id).
pub async fn blocking<T: Send + 'static>(
    pool: &Pool,
    f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let pool = pool.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut conn = pool
            .get()
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        f(&mut conn)
    })
    .await
    .map_err(|e| StoreError::Connection(format!("blocking task failed: {e}")))?
}

#[cfg(test)]
mod ready_tests {
    use super::*;

    #[tokio::test]
    async fn a_database_that_answers_is_ready_and_one_that_does_not_is_not() {
        let up = pool(&Backend::Sqlite(":memory:".into()), 1).unwrap_or_else(|e| panic!("{e}"));
        assert!(check_ready(&up, READY_TIMEOUT).await.is_ok());
        // Nothing listens on port 1: connecting fails, well within the time.
        let down = r2d2::Pool::builder()
            .max_size(1)
            .build_unchecked(Manager(Backend::Postgres(
                "postgres://postgres@127.0.0.1:1/none".into(),
            )));
        let started = std::time::Instant::now();
        assert!(check_ready(&down, Duration::from_millis(500))
            .await
            .is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
