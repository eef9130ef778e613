//! `wrapsync keygen` and `wrapsync keys …`: the node's Ed25519 key, its
//! token secret and its database key, made and rotated.

use super::{private_data_dir, BoxError};
use clap::Subcommand;
use wrapsync_server::config::Config;
use wrapsync_server::db::{self, DatabaseKey};
use wrapsync_server::federation::{identity, NodeKey};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Retire the generated access-token secret (`data_dir/jwt_secret`;
    /// its tokens stay valid until they expire) and make a new one; prints
    /// the new `kid`.
    RotateJwt,
    /// Replace the node's Ed25519 key; the old key signs a statement for the
    /// new one, which the node shows its peers and the hub for the grace
    /// period (they switch to the new key on it and accept the old one until
    /// it ends). Prints the node id, the old and the new public key.
    RotateNode {
        /// How long peers still accept the old key (at most 30 days).
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        grace_secs: i64,
    },
    /// Write a new random key for encrypting the SQLite database to the
    /// config's `database_key_file` (owner-only; never overwrites). A new
    /// node then starts encrypted; an existing node's data is encrypted by
    /// restoring a backup taken before the key was set.
    DatabaseKey,
}

/// Makes the node key and prints its id and public key (JSON).
pub fn keygen(config: &Config) -> Result<(), BoxError> {
    private_data_dir(&config.data_dir)?;
    let path = config.data_dir.join(identity::KEY_FILE);
    let key = NodeKey::create(&path)?;
    eprintln!("wrote {}", path.display());
    println!(
        "{}",
        serde_json::json!({ "node_id": config.node_id, "public_key": key.public_key() })
    );
    Ok(())
}

impl KeysCommand {
    pub fn run(self, config: &Config) -> Result<(), BoxError> {
        match self {
            KeysCommand::RotateJwt => {
                private_data_dir(&config.data_dir)?;
                let kid = wrapsync_server::auth::secrets::rotate(config)?;
                eprintln!("new token secret written; send SIGHUP to the node to sign with it");
                println!("{}", serde_json::json!({ "kid": kid }));
            }
            KeysCommand::RotateNode { grace_secs } => {
                let (old, new) = identity::rotate(
                    &config.data_dir,
                    &config.node_id,
                    grace_secs,
                    db::now_ms() / 1000,
                )?;
                eprintln!("new node key written; send SIGHUP to the node to sign with it");
                println!(
                    "{}",
                    serde_json::json!({
                        "node_id": config.node_id,
                        "old_public_key": old,
                        "public_key": new,
                        "grace_secs": grace_secs,
                    })
                );
            }
            KeysCommand::DatabaseKey => {
                let out = config
                    .database_key_file
                    .as_deref()
                    .ok_or("set database_key_file in the config to where the key goes")?;
                DatabaseKey::create_file(out).map_err(|e| format!("{}: {e}", out.display()))?;
                eprintln!(
                    "wrote {}; keep a copy apart from the backups",
                    out.display()
                );
            }
        }
        Ok(())
    }
}
