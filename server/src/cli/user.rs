//! `wrapsync user …`: the node's users, added, disabled and enabled.

use super::{database, private_data_dir, BoxError};
use clap::Subcommand;
use wrapsync_server::config::Config;
use wrapsync_server::db;
use wrapsync_shared::roles::Role;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; the password comes from --password or WRAPSYNC_PASSWORD.
    Add {
        #[arg(long)]
        username: String,
        /// facilitator, family_advocate, caregiver, youth, provider, natural_support or supervisor
        #[arg(long)]
        role: Role,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, env = "WRAPSYNC_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Disable a user: they can no longer log in or refresh, and every
    /// session of theirs ends; a running node refuses their access tokens
    /// within a second or two.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Let a disabled user log in again (their old sessions stay ended).
    Enable {
        #[arg(long)]
        username: String,
    },
}

impl UserCommand {
    pub fn run(self, config: &Config) -> Result<(), BoxError> {
        match self {
            UserCommand::Add {
                username,
                role,
                display_name,
                password,
            } => {
                private_data_dir(&config.data_dir)?;
                let mut conn = database(config)?;
                let display_name = display_name.unwrap_or_else(|| username.clone());
                let user = wrapsync_server::users::add_user(
                    &mut conn,
                    &username,
                    &display_name,
                    role,
                    &password,
                )?;
                eprintln!("added {} ({})", user.username, user.role);
                Ok(())
            }
            UserCommand::Disable { username } => set_disabled(config, &username, true),
            UserCommand::Enable { username } => set_disabled(config, &username, false),
        }
    }
}

/// Disables or enables `username`; disabling ends their sessions.
fn set_disabled(config: &Config, username: &str, disabled: bool) -> Result<(), BoxError> {
    let mut conn = database(config)?;
    let (user, ended) =
        wrapsync_server::store::users::set_disabled(&mut conn, username, disabled, db::now_ms())?
            .ok_or_else(|| format!("no user `{username}`"))?;
    if disabled {
        eprintln!("disabled {}; ended {ended} session(s)", user.username);
    } else {
        eprintln!("enabled {}", user.username);
    }
    Ok(())
}
