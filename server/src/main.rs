//! The `wrapsync` binary: one program for every server role.

mod cli;

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A missing `--config` is a usage error, told as clap tells one.
            if let Some(usage) = e.downcast_ref::<clap::Error>() {
                usage.exit();
            }
            eprintln!("wrapsync: {e}");
            ExitCode::FAILURE
        }
    }
}
