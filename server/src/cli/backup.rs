//! `wrapsync backup` and `wrapsync restore`: a SQLite node's files,
//! snapshotted and put back (`wrapsync_server::backup`).

use super::BoxError;
use clap::Args;
use std::path::PathBuf;
use wrapsync_server::config::Config;

#[derive(Args)]
pub struct Backup {
    /// The snapshot to write; never overwritten.
    #[arg(long)]
    pub out: PathBuf,
}

impl Backup {
    pub fn run(self, config: &Config) -> Result<(), BoxError> {
        for file in wrapsync_server::backup::backup(config, &self.out)? {
            eprintln!("wrote {}", file.display());
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct Restore {
    /// The snapshot `wrapsync backup` wrote.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace the node's existing database, key and secret.
    #[arg(long)]
    pub force: bool,
}

impl Restore {
    pub fn run(self, config: &Config) -> Result<(), BoxError> {
        for file in wrapsync_server::backup::restore(config, &self.from, self.force)? {
            eprintln!("installed {}", file.display());
        }
        Ok(())
    }
}
