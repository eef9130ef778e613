//! The command line: one module per command group, each a thin call into
//! the library. Every command but `demo` reads one config file, given once
//! as the global `--config` (or `WRAPSYNC_CONFIG`), before or after the
//! command's words.

mod backup;
#[cfg(feature = "demo")]
mod demo;
mod hub;
mod keys;
mod node;
mod peer;
mod report;
mod user;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use wrapsync_server::config::Config;
use wrapsync_server::config::LogFormat;
use wrapsync_server::observe::init_logging;

pub type BoxError = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(
    name = "wrapsync",
    version,
    about = "Federated sync server for wraparound family team plans"
)]
pub struct Cli {
    /// The node's (for `hub`, the hub's) config file; every command but
    /// `demo`, which writes its own, needs one.
    #[arg(long, global = true, env = "WRAPSYNC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a county node.
    Node,
    /// Run the state hub: enrolled nodes' de-identified reports in,
    /// statewide figures with small cells withheld out.
    Hub,
    /// Create or upgrade the node's database, then exit.
    Migrate,
    /// Snapshot a SQLite node, running or not, into `--out` (never
    /// overwritten), with its key and token secret beside it
    /// (`OUT.node_key.pem`, `OUT.jwt_secret`). On PostgreSQL, prints the
    /// `pg_dump` command to use and fails.
    Backup(backup::Backup),
    /// Install a backup as the database (and key, secret) of a stopped
    /// SQLite node. Refuses to replace existing files without `--force`.
    Restore(backup::Restore),
    /// Make the node's Ed25519 key (data_dir/node_key.pem) and print its id
    /// and public key, for the operators of its peers. Never replaces a key.
    Keygen,
    /// Manage the peers added at run time (the config file's `[[peers]]`
    /// are edited there). A running node sees changes made here when it
    /// restarts; `/v1/admin/peers` changes them at once.
    #[command(subcommand)]
    Peer(peer::PeerCommand),
    /// Rotate the node's keys; a running node takes them up on SIGHUP.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage the node's users.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Make this node's indicator report for one month from the plans homed
    /// here and print it (JSON); with --send, also submit it to the hub
    /// (`hub_url`) and print the hub's answer. With `dp_epsilon_per_year`
    /// set: the month's differentially private release, made (spending
    /// budget) the first time and the same stored report after; only a
    /// month that is over.
    Report(report::Report),
    /// Run three seeded demo nodes (county-a, -b, -c) on SQLite under DIR, on
    /// ports BASE_PORT, +1 and +2, peers sharing some plans; describe them in
    /// DIR/demo.json.
    #[cfg(feature = "demo")]
    Demo(demo::Demo),
}

impl Cli {
    /// Runs the command. The node and the hub log as their config says;
    /// the commands that do one thing and exit log text to stderr.
    pub fn run(self) -> Result<(), BoxError> {
        let config = ConfigFile(self.config);
        if !matches!(self.command, Command::Node | Command::Hub) {
            init_logging(LogFormat::Text, None)?;
        }
        match self.command {
            Command::Node => node::serve(&config),
            Command::Hub => hub::serve(&config),
            Command::Migrate => node::migrate(&config.node()?),
            Command::Backup(backup) => backup.run(&config.node()?),
            Command::Restore(restore) => restore.run(&config.node()?),
            Command::Keygen => keys::keygen(&config.node()?),
            Command::Peer(command) => command.run(&config.node()?),
            Command::Keys(command) => command.run(&config.node()?),
            Command::User(command) => command.run(&config.node()?),
            Command::Report(report) => report.run(config.node()?),
            #[cfg(feature = "demo")]
            Command::Demo(demo) => demo.run(),
        }
    }
}

/// The `--config` given, read when a command needs it.
struct ConfigFile(Option<PathBuf>);

impl ConfigFile {
    /// The path; without one, the usage error clap gives for a missing
    /// required argument.
    fn path(&self) -> Result<&Path, clap::Error> {
        self.0.as_deref().ok_or_else(|| {
            <Cli as clap::CommandFactory>::command().error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "the following required argument was not provided: --config <FILE> \
                 (or WRAPSYNC_CONFIG)",
            )
        })
    }

    /// The node's config: the file, then the `WRAPSYNC_*` environment.
    fn node(&self) -> Result<Config, BoxError> {
        Ok(Config::load(Some(self.path()?), std::env::vars())?)
    }
}

/// Makes `dir` (0700) for a command, warning if it was wider (the node
/// narrows it too at start, but the command got there first).
fn private_data_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(had) = wrapsync_server::files::private_dir(dir)? {
        tracing::warn!(path = %dir.display(), mode = format!("{had:o}"),
            "others could read the data directory: made owner-only; find out who read it");
    }
    Ok(())
}

/// The node's database, made or upgraded to this binary's schema.
fn database(config: &Config) -> Result<wrapsync_server::db::DbConnection, BoxError> {
    let mut conn = config.backend()?.connect()?;
    wrapsync_server::db::migrate(&mut conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
