//! [`TestNode`]: one real `wrapsync node` process with its own data directory
//! and database, its users already added, killed (and its PostgreSQL database
//! dropped) when the test lets go of it.

use crate::accounts::{TestUser, USERS};
use crate::postgres::PgDatabase;
use crate::process::{binary, command, wait_exit, Process};
use crate::{deadline, random_token, Context, HarnessError, Result};
use serde::Serialize;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use tempfile::TempDir;

/// Which storage the node under test uses. Tests that touch storage run on
/// both; PostgreSQL being unreachable fails them rather than skipping them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The node id every test node gets; tokens carry `iss = "wrapsync:<id>"`.
const NODE_ID: &str = "county-test";
/// How long a CLI command (`migrate`, `user add`) may take.
const CLI_SECS: u64 = 60;

/// The config file the harness writes; `Option`s left out fall back to the
/// node's defaults, which the tests then rely on (e.g. `max_body_bytes`).
#[derive(Serialize)]
struct NodeConfig {
    node_id: String,
    listen: String,
    data_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    jwt_secret: String,
    /// More settings, as the config file takes them.
    #[serde(flatten)]
    extra: toml::Table,
}

/// The per-user rate limit test nodes get: tests drive one user far
/// harder than a person (hundreds of calls a second, a whole route matrix
/// with one token), past the node's default of a person's scale, which
/// `security_matrix`'s `a_user_bursting_meets_the_default_rate_limit`
/// tests on its own. The node's old default, 25,000/s, burst 50,000.
fn test_user_rate() -> toml::Value {
    let mut limit = toml::Table::new();
    limit.insert("per_second".into(), 25_000.0.into());
    limit.insert("burst".into(), 50_000.0.into());
    toml::Value::Table(limit)
}

/// Where the node keeps its data.
enum Database {
    /// The default SQLite file in the data directory.
    Sqlite(PathBuf),
    Postgres(PgDatabase),
    /// Another process's database (see [`TestNode::sibling`]): its URL;
    /// dropped with that process's node, not this one.
    Shared(String),
}

/// One wrapsync node under test. See the crate docs.
pub struct TestNode {
    // Field order matters for Drop: the process dies before its database is
    // dropped and its directory removed.
    process: Option<Process>,
    pub(crate) http: reqwest::blocking::Client,
    backend: Backend,
    binary: PathBuf,
    node_id: String,
    config_path: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    jwt_secret: String,
    database: Database,
    _dir: TempDir,
}

impl TestNode {
    /// Starts a node with [`USERS`] added; panics (with the node's log) if it
    /// cannot.
    #[track_caller]
    pub fn spawn(backend: Backend) -> Self {
        match Self::try_spawn(backend) {
            Ok(node) => node,
            Err(e) => panic!("cannot start a test node: {e}"),
        }
    }

    /// [`TestNode::spawn`], reporting failure instead of panicking.
    pub fn try_spawn(backend: Backend) -> Result<Self> {
        Self::try_spawn_with(backend, toml::Table::new())
    }

    /// [`TestNode::spawn`] with more config settings (`extra`).
    #[track_caller]
    pub fn spawn_with(backend: Backend, extra: toml::Table) -> Self {
        match Self::try_spawn_with(backend, extra) {
            Ok(node) => node,
            Err(e) => panic!("cannot start a test node: {e}"),
        }
    }

    /// [`TestNode::spawn_with`], reporting failure instead of panicking.
    /// Unless `extra` sets it, the node gets `test_user_rate()` as its
    /// `rate_limit_per_user`.
    pub fn try_spawn_with(backend: Backend, mut extra: toml::Table) -> Result<Self> {
        extra
            .entry("rate_limit_per_user")
            .or_insert_with(test_user_rate);
        Self::try_spawn_with_node_defaults(backend, extra)
    }

    /// A node with `extra` over the node's own defaults, the per-user rate
    /// limit included: what a test of the defaults starts.
    #[track_caller]
    pub fn spawn_with_node_defaults(backend: Backend, extra: toml::Table) -> Self {
        match Self::try_spawn_with_node_defaults(backend, extra) {
            Ok(node) => node,
            Err(e) => panic!("cannot start a test node: {e}"),
        }
    }

    /// [`TestNode::spawn_with_node_defaults`], reporting failure instead
    /// of panicking.
    pub fn try_spawn_with_node_defaults(backend: Backend, mut extra: toml::Table) -> Result<Self> {
        let node_id = match extra.remove("node_id") {
            Some(toml::Value::String(id)) => id,
            _ => NODE_ID.to_string(),
        };
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("wrapsync-test-")
            .tempdir()
            .context(|| "creating a temp dir".to_string())?;
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir).context(|| format!("creating {}", data_dir.display()))?;
        let database = match backend {
            Backend::Sqlite => Database::Sqlite(data_dir.join("node.db")),
            Backend::Postgres => Database::Postgres(PgDatabase::create()?),
        };
        let jwt_secret = random_token(48);
        let config = NodeConfig {
            node_id: node_id.clone(),
            listen: "127.0.0.1:0".to_string(),
            data_dir: data_dir.to_string_lossy().into_owned(),
            // SQLite: rely on the documented default, data_dir/node.db.
            database_url: match &database {
                Database::Sqlite(_) => None,
                Database::Postgres(db) => Some(db.url()),
                Database::Shared(url) => Some(url.clone()),
            },
            jwt_secret: jwt_secret.clone(),
            extra,
        };
        let config_path = dir.path().join("wrapsync.toml");
        let text = toml::to_string(&config).context(|| "serialising the config".to_string())?;
        fs::write(&config_path, text).context(|| format!("writing {}", config_path.display()))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context(|| "building the HTTP client".to_string())?;
        let mut node = TestNode {
            process: None,
            http,
            backend,
            binary,
            node_id,
            log_path: dir.path().join("node.log"),
            config_path,
            data_dir,
            jwt_secret,
            database,
            _dir: dir,
        };
        node.run_cli(&["migrate"], None)?;
        for user in USERS {
            node.add_user(user)?;
        }
        node.try_start()?;
        Ok(node)
    }

    /// A second `wrapsync node` process of this node, as an operator runs
    /// several behind a load balancer: the same config (node id, keys,
    /// secret, data directory, PostgreSQL database) in a copy of its file,
    /// its own port and log. Keep this node alive as long as the sibling:
    /// its data directory and database go with it. PostgreSQL only.
    #[track_caller]
    pub fn sibling(&self) -> TestNode {
        match self.try_sibling() {
            Ok(node) => node,
            Err(e) => panic!("cannot start a sibling process: {e}"),
        }
    }

    /// [`TestNode::sibling`], reporting failure instead of panicking.
    pub fn try_sibling(&self) -> Result<TestNode> {
        let url = match &self.database {
            Database::Postgres(db) => db.url(),
            Database::Shared(url) => url.clone(),
            Database::Sqlite(_) => {
                return Err(HarnessError::new(
                    "a SQLite node runs as one process: siblings share PostgreSQL",
                ))
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("wrapsync-sibling-")
            .tempdir()
            .context(|| "creating a temp dir".to_string())?;
        let config_path = dir.path().join("wrapsync.toml");
        fs::copy(&self.config_path, &config_path)
            .context(|| format!("copying {}", self.config_path.display()))?;
        let mut node = TestNode {
            process: None,
            http: self.http.clone(),
            backend: self.backend,
            binary: self.binary.clone(),
            node_id: self.node_id.clone(),
            log_path: dir.path().join("node.log"),
            config_path,
            data_dir: self.data_dir.clone(),
            jwt_secret: self.jwt_secret.clone(),
            database: Database::Shared(url),
            _dir: dir,
        };
        node.try_start()?;
        Ok(node)
    }

    /// Runs `wrapsync user add` for `user` (password through the
    /// environment, as the contract prefers).
    pub fn add_user(&self, user: &TestUser) -> Result<()> {
        self.run_cli(
            &[
                "user",
                "add",
                "--username",
                user.username,
                "--role",
                user.role.as_str(),
                "--display-name",
                user.display_name,
            ],
            Some(&user.password()),
        )
        .map(drop)
    }

    /// Runs `wrapsync user add` for a user made up by a test, with
    /// `password` (load runs sign many users in with one).
    pub fn add_user_with_password(&self, username: &str, role: &str, password: &str) -> Result<()> {
        self.run_cli(
            &["user", "add", "--username", username, "--role", role],
            Some(password),
        )
        .map(drop)
    }

    /// Runs `wrapsync <args>` on this node's config (`--config` goes right
    /// after the subcommand words) and answers what it printed.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        self.run_cli(args, None)
    }

    fn run_cli(&self, args: &[&str], password: Option<&str>) -> Result<String> {
        let what = format!("wrapsync {}", args.join(" "));
        let out_path = self._dir.path().join("cli.out");
        let out = File::create(&out_path).context(|| format!("creating {}", out_path.display()))?;
        let err = out
            .try_clone()
            .context(|| format!("opening {}", out_path.display()))?;
        let mut cmd = command(&self.binary);
        // Subcommand words first, then the config, then the rest: the
        // contract puts `--config` right after the subcommand.
        let words = args.iter().take_while(|a| !a.starts_with("--")).count();
        cmd.args(&args[..words])
            .arg("--config")
            .arg(&self.config_path)
            .args(&args[words..])
            .stdout(out)
            .stderr(err);
        if let Some(password) = password {
            cmd.env("WRAPSYNC_PASSWORD", password);
        }
        let mut child = cmd.spawn().context(|| format!("starting {what}"))?;
        let status = wait_exit(&mut child, deadline(CLI_SECS))?;
        let output = fs::read_to_string(&out_path).unwrap_or_default();
        match status {
            Some(status) if status.success() => Ok(output),
            Some(status) => Err(HarnessError::new(format!(
                "{what} exited with {status}:\n{output}"
            ))),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(HarnessError::new(format!(
                    "{what} did not finish within {CLI_SECS}s:\n{output}"
                )))
            }
        }
    }

    /// Starts the node again on the same data (after [`TestNode::kill`] or
    /// [`TestNode::stop`]); panics with the log if it does not come up.
    #[track_caller]
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!(
                "cannot start the node: {e}\n--- node log ---\n{}",
                self.log()
            );
        }
    }

    /// [`TestNode::start`], reporting failure instead of panicking.
    pub fn try_start(&mut self) -> Result<()> {
        if self.process.is_some() {
            return Err(HarnessError::new("the node is already running"));
        }
        let process = Process::start(&self.binary, &self.config_path, &self.log_path)
            .map_err(|e| HarnessError::new(format!("{e}\n--- node log ---\n{}", self.log())))?;
        self.process = Some(process);
        Ok(())
    }

    /// Kills the node with SIGKILL, as a power cut would, and waits for it.
    #[track_caller]
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            if let Err(e) = process.kill() {
                panic!("{e}");
            }
        }
    }

    /// Asks the node to stop (SIGTERM) and waits for it to exit; answers its
    /// exit status. Panics if it does not exit in time.
    #[track_caller]
    pub fn stop(&mut self) -> ExitStatus {
        let Some(process) = self.process.take() else {
            panic!("stop: the node is not running");
        };
        match process.terminate() {
            Ok(status) => status,
            Err(e) => panic!("{e}\n--- node log ---\n{}", self.log()),
        }
    }

    /// Sends `signal` (`HUP`, `TERM`, …) to the running node and returns at
    /// once (see [`TestNode::wait_exit`]).
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let Some(process) = &self.process else {
            panic!("signal: the node is not running");
        };
        if let Err(e) = crate::process::send_signal(&process.child, signal) {
            panic!("{e}");
        }
    }

    /// Waits up to `secs` for the node (sent SIGTERM with
    /// [`TestNode::signal`]) to exit; answers its status, `None` if it is
    /// still running (it is then killed).
    pub fn wait_exit(&mut self, secs: u64) -> Option<ExitStatus> {
        let mut process = self.process.take()?;
        crate::process::wait_exit(&mut process.child, crate::deadline(secs))
            .ok()
            .flatten()
    }

    /// SIGKILL, then start again on the same data directory and database.
    #[track_caller]
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// Whether the node process is (supposed to be) running.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// The node's base URL, e.g. `http://127.0.0.1:41234` (it changes on
    /// restart: the node listens on port 0).
    pub fn url(&self) -> &str {
        match &self.process {
            Some(process) => &process.url,
            None => panic!("the node is not running"),
        }
    }

    /// The node's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.child.id())
    }

    /// The node id announced in the listening line.
    pub fn announced_node_id(&self) -> &str {
        self.process.as_ref().map_or("", |p| p.node_id.as_str())
    }

    /// The node id written in the config.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The storage this node runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The node's `data_dir` (generated files live here).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The TOML config the node runs with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The SQLite file, for SQLite nodes.
    pub fn db_path(&self) -> Option<&Path> {
        match &self.database {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) | Database::Shared(_) => None,
        }
    }

    /// The database as the node sees it: a file path or a postgres URL.
    pub fn database_url(&self) -> String {
        match &self.database {
            Database::Sqlite(path) => path.to_string_lossy().into_owned(),
            Database::Postgres(db) => db.url(),
            Database::Shared(url) => url.clone(),
        }
    }

    /// The JWT secret the harness put in the config, for crafting tokens.
    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }

    /// Everything the node wrote to stderr so far, across restarts.
    pub fn log(&self) -> String {
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        // The tail is what explains a failure; keep panic messages readable.
        let start = log.len().saturating_sub(8000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(log.len());
        log[start..].to_string()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // Explicit, though field order would do it: kill before the
        // database is dropped.
        self.process.take();
    }
}
