//! `wrapsync peer …`: the peers added at run time
//! (`wrapsync_server::federation::added`).

use super::{database, private_data_dir, BoxError};
use clap::Subcommand;
use wrapsync_server::config::Config;
use wrapsync_server::db;
use wrapsync_server::federation::{added, Peer};

#[derive(Subcommand)]
pub enum PeerCommand {
    /// Add a peer, or replace one's URL or key: given here, or (with
    /// --from-hub) as the hub's node directory lists it.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long, required_unless_present = "from_hub")]
        url: Option<String>,
        /// Its public key, from its `GET /federation/v1/identity` (base64url,
        /// so it may start with `-`).
        #[arg(long, required_unless_present = "from_hub", allow_hyphen_values = true)]
        public_key: Option<String>,
        /// Take its URL and key from the directory of the hub this node
        /// reports to (`hub_url`): trust the hub, over HTTPS, to vouch.
        #[arg(long, conflicts_with_all = ["url", "public_key"])]
        from_hub: bool,
    },
    /// List every peer (config file and added).
    List,
    Remove {
        #[arg(long)]
        id: String,
    },
}

impl PeerCommand {
    pub fn run(self, config: &Config) -> Result<(), BoxError> {
        private_data_dir(&config.data_dir)?;
        let mut conn = database(config)?;
        match self {
            PeerCommand::Add {
                id,
                url,
                public_key,
                from_hub,
            } => {
                added::addable(config, &id)?;
                let peer = match (from_hub, url, public_key) {
                    (true, _, _) => added::from_hub(config, &id)?,
                    (false, Some(url), Some(public_key)) => Peer {
                        id,
                        url,
                        public_key,
                    },
                    _ => return Err("give --url and --public-key, or --from-hub".into()),
                };
                added::add(&mut conn, config, &peer, db::now_ms())?;
                eprintln!("added peer {} at {}", peer.id, peer.url);
            }
            PeerCommand::List => {
                for (peer, source) in added::list(&mut conn, config)? {
                    println!("{}\t{}\t{}\t{source}", peer.id, peer.url, peer.public_key);
                }
            }
            PeerCommand::Remove { id } => {
                added::remove(&mut conn, &id)?;
                eprintln!("removed peer {id}");
            }
        }
        Ok(())
    }
}
