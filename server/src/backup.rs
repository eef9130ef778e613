//! `wrapsync backup` and `wrapsync restore` for a SQLite node.
//!
//! A backup is what a restore needs to bring the node back as itself: the
//! database, taken with `VACUUM INTO` (one read transaction, so a
//! consistent snapshot while the node keeps serving; WAL readers do not
//! block the writer), and beside it the node's Ed25519 key (its identity
//! to peers and the hub) and token secret (so sessions survive), each with
//! the backup's name and a suffix. All three are secrets: written owner-only.
//!
//! PostgreSQL is backed up with its own tools; these commands print them.

use crate::auth::secrets::{PREVIOUS_FILE, SECRET_FILE};
use crate::config::Config;
use crate::db::{Backend, DatabaseKey, DbConnection};
use crate::federation::identity::{KEY_FILE, ROTATION_FILE};
use diesel::{Connection, RunQueryDsl};
use std::path::{Path, PathBuf};

/// The files kept beside the database, by their name in `data_dir` and the
/// suffix their copy gets after the backup's name.
/// A key rotation's statement and retired token secrets go too: restored
/// within their grace, they still vouch and verify.
const SIDE_FILES: &[(&str, &str)] = &[
    (KEY_FILE, ".node_key.pem"),
    (ROTATION_FILE, ".node_key.rotation"),
    (SECRET_FILE, ".jwt_secret"),
    (PREVIOUS_FILE, ".jwt_secret.previous"),
];

/// What went wrong, for the command line.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    /// PostgreSQL: the command to run instead.
    #[error("this node stores its data in PostgreSQL; use its tools:\n  {0}")]
    UsePostgresTools(String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("database: {0}")]
    Database(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(path.to_path_buf(), e)
}

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Owner-only, as the node keeps its own files.
fn restrict(path: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    Ok(())
}

/// The SQLite database of `config` (with its key, if encrypted), or the
/// PostgreSQL command (`postgres` built from `url`) as the error.
fn sqlite_backend(
    config: &Config,
    postgres: impl Fn(&str) -> String,
) -> Result<(PathBuf, Backend), BackupError> {
    let backend = config
        .backend()
        .map_err(|e| BackupError::Refused(e.to_string()))?;
    match &backend {
        Backend::Postgres(url) => Err(BackupError::UsePostgresTools(postgres(url))),
        Backend::Sqlite(path) | Backend::SqlCipher { path, .. } => {
            Ok((PathBuf::from(path), backend.clone()))
        }
    }
}

/// Snapshots the running (or stopped) node of `config` into `out`, and
/// copies its key and token secret beside it. Answers the files written.
pub fn backup(config: &Config, out: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let (database, backend) = sqlite_backend(config, |url| {
        format!("pg_dump --format=custom --file={} '{url}'", out.display())
    })?;
    if out.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists; a backup never overwrites",
            out.display()
        )));
    }
    if !database.exists() {
        return Err(BackupError::Refused(format!(
            "no database at {}",
            database.display()
        )));
    }
    let partial = beside(out, ".partial");
    let _ = std::fs::remove_file(&partial);
    // Made owner-only before `VACUUM INTO` fills it (it takes an empty file).
    crate::files::private_file(&partial).map_err(io(&partial))?;
    let mut conn = backend
        .connect()
        .map_err(|e| BackupError::Database(e.to_string()))?;
    let DbConnection::Sqlite(sqlite) = &mut conn else {
        return Err(BackupError::Database("not a SQLite connection".into()));
    };
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(partial.to_string_lossy().into_owned())
        .execute(sqlite)
        .map_err(|e| BackupError::Database(e.to_string()))?;
    restrict(&partial)?;
    std::fs::rename(&partial, out).map_err(io(out))?;
    let mut written = vec![out.to_path_buf()];
    for (name, suffix) in SIDE_FILES {
        let from = config.data_dir.join(name);
        if from.exists() {
            let to = beside(out, suffix);
            std::fs::copy(&from, &to).map_err(io(&to))?;
            restrict(&to)?;
            written.push(to);
        }
    }
    Ok(written)
}

/// How a backup opened: read as the node's database is (same key, or both
/// plain), or plain where the node encrypts.
enum Found {
    AsNode,
    Plain(diesel::SqliteConnection),
}

/// Refuses `file` unless it is a SQLite database that wrapsync migrated and
/// that the node of `backend` can read: with its key, or plain (which the
/// restore then encrypts).
fn check_is_node_database(file: &Path, backend: &Backend) -> Result<Found, BackupError> {
    let not_ours = |why: String| {
        BackupError::Refused(format!(
            "{} is not a wrapsync node backup: {why}",
            file.display()
        ))
    };
    let url = format!("file:{}?mode=ro", file.display());
    let open = |key: Option<&DatabaseKey>| -> Result<diesel::SqliteConnection, String> {
        let mut conn = diesel::SqliteConnection::establish(&url).map_err(|e| e.to_string())?;
        if let Some(key) = key {
            key.apply(&mut conn, &file.display().to_string())
                .map_err(|e| e.to_string())?;
        }
        check_migrated(&mut conn)?;
        Ok(conn)
    };
    match backend {
        Backend::SqlCipher { key, .. } => match open(Some(key)) {
            Ok(_) => Ok(Found::AsNode),
            Err(keyed) => open(None).map(Found::Plain).map_err(|_| not_ours(keyed)),
        },
        _ => open(None).map(|_| Found::AsNode).map_err(|e| {
            not_ours(format!(
                "{e} (an encrypted backup restores only into a node with its key)"
            ))
        }),
    }
}

/// Whether `conn`'s database has wrapsync's migrations and passes SQLite's
/// quick check.
fn check_migrated(conn: &mut diesel::SqliteConnection) -> Result<(), String> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let applied: Vec<Count> =
        diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
            .load(conn)
            .map_err(|e| e.to_string())?;
    if applied.first().is_none_or(|c| c.n == 0) {
        return Err("no migrations applied".into());
    }
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        quick_check: String,
    }
    let check: Vec<Check> = diesel::sql_query("PRAGMA quick_check")
        .load(conn)
        .map_err(|e| e.to_string())?;
    match check.first() {
        Some(c) if c.quick_check == "ok" => Ok(()),
        other => Err(format!(
            "damaged ({})",
            other.map_or("no answer", |c| c.quick_check.as_str())
        )),
    }
}

/// Installs the backup `from` as the database of the (stopped) node of
/// `config`, with the key and secret found beside it. Refuses when the node
/// already has a database (or key) unless `force`. Answers the files
/// written.
pub fn restore(config: &Config, from: &Path, force: bool) -> Result<Vec<PathBuf>, BackupError> {
    let (database, backend) = sqlite_backend(config, |url| {
        format!(
            "pg_restore --clean --if-exists --dbname='{url}' {}",
            from.display()
        )
    })?;
    let found = check_is_node_database(from, &backend)?;
    let mut replacing = vec![database.clone()];
    for (name, suffix) in SIDE_FILES {
        if beside(from, suffix).exists() {
            replacing.push(config.data_dir.join(name));
        }
    }
    if !force {
        if let Some(there) = replacing.iter().find(|p| p.exists()) {
            return Err(BackupError::Refused(format!(
                "{} exists: stop the node and give --force to replace it",
                there.display()
            )));
        }
    }
    crate::files::private_dir(&config.data_dir).map_err(io(&config.data_dir))?;
    let partial = beside(&database, ".restoring");
    let _ = std::fs::remove_file(&partial);
    match (found, &backend) {
        // A plain backup restored into a node with a key: encrypted on
        // the way in (how a node starts encrypting its data).
        (Found::Plain(mut conn), Backend::SqlCipher { key, .. }) => {
            key.export(&mut conn, &partial)
                .map_err(|e| BackupError::Database(e.to_string()))?;
        }
        _ => {
            std::fs::copy(from, &partial).map_err(io(&partial))?;
        }
    }
    restrict(&partial)?;
    // The old log must not be replayed over the restored database.
    for suffix in ["-wal", "-shm"] {
        let stale = beside(&database, suffix);
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(io(&stale))?;
        }
    }
    std::fs::rename(&partial, &database).map_err(io(&database))?;
    let mut written = vec![database];
    for (name, suffix) in SIDE_FILES {
        let copy = beside(from, suffix);
        if copy.exists() {
            let to = config.data_dir.join(name);
            std::fs::copy(&copy, &to).map_err(io(&to))?;
            restrict(&to)?;
            written.push(to);
        }
    }
    Ok(written)
}
