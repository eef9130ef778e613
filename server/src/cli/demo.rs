//! `wrapsync demo`: a thin call into `wrapsync_server::demo`.

use super::BoxError;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct Demo {
    #[arg(long, default_value = "wrapsync-demo")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
}

impl Demo {
    pub fn run(self) -> Result<(), BoxError> {
        wrapsync_server::demo::run(&self.dir, self.base_port)
    }
}
