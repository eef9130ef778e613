//! Peers added at run time, changed straight in the database (`wrapsync
//! peer`), so it works with the node stopped: the rules are checked
//! against the config alone. A running node sees such a change when it
//! restarts; `/v1/admin/peers` changes its peers at once.

use crate::config::Config;
use crate::db::{DbConnection, StoreError};
use crate::federation::{Federation, Peer, Peers};
use crate::store::peers as stored;

/// Why a peer could not be added, found or removed.
#[derive(Debug, thiserror::Error)]
pub enum PeerChangeError {
    /// This node, or a peer of the config file (changed there).
    #[error("{0} is this node or in its config file")]
    NotAddable(String),
    /// A bad id, URL or key.
    #[error("{0}")]
    Invalid(String),
    #[error("no added peer {0}")]
    NotAdded(String),
    /// The hub's directory could not vouch for the peer.
    #[error("{0}")]
    Directory(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a peer comes from: the config file or the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Config,
    Added,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Config => "config",
            Source::Added => "added",
        })
    }
}

/// Refuses `id` if it is this node or a peer of the config file: those are
/// changed in the file, never shadowed by a row.
pub fn addable(config: &Config, id: &str) -> Result<(), PeerChangeError> {
    if id == config.node_id || config.peers.iter().any(|p| p.id == id) {
        return Err(PeerChangeError::NotAddable(id.to_string()));
    }
    Ok(())
}

/// Adds `peer`, or replaces the URL or key of one added before.
pub fn add(
    conn: &mut DbConnection,
    config: &Config,
    peer: &Peer,
    now_ms: i64,
) -> Result<(), PeerChangeError> {
    addable(config, &peer.id)?;
    Peers::new(std::slice::from_ref(peer)).map_err(PeerChangeError::Invalid)?;
    stored::put(conn, peer, now_ms)?;
    Ok(())
}

/// Every peer: the config file's first, then those added.
pub fn list(conn: &mut DbConnection, config: &Config) -> Result<Vec<(Peer, Source)>, StoreError> {
    let configured = config.peers.iter().map(|p| (p.clone(), Source::Config));
    let added = stored::list(conn)?.into_iter().map(|p| (p, Source::Added));
    Ok(configured.chain(added).collect())
}

/// Stops trusting a peer added at run time.
pub fn remove(conn: &mut DbConnection, id: &str) -> Result<(), PeerChangeError> {
    if !stored::remove(conn, id)? {
        return Err(PeerChangeError::NotAdded(id.to_string()));
    }
    Ok(())
}

/// Peer `id` as the directory of the hub this node reports to lists it
/// (`GET {hub_url}/hub/v1/nodes`): the hub, over HTTPS, vouches for its URL
/// and key.
pub fn from_hub(config: &Config, id: &str) -> Result<Peer, PeerChangeError> {
    let directory = |e: String| PeerChangeError::Directory(e);
    let hub_url = config
        .hub_url
        .as_deref()
        .ok_or_else(|| directory("--from-hub needs hub_url in the config".into()))?;
    let http = Federation::blocking_client(config).map_err(directory)?;
    let url = format!(
        "{}{}",
        hub_url.trim_end_matches('/'),
        wrapsync_shared::hub::NODES_PATH
    );
    let listed: wrapsync_shared::hub::Directory = http
        .get(&url)
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .map_err(|e| directory(e.to_string()))?;
    let entry = listed
        .nodes
        .into_iter()
        .find(|n| n.id == id)
        .ok_or_else(|| directory(format!("the hub's directory has no node {id}")))?;
    let url = entry
        .url
        .ok_or_else(|| directory(format!("{id} has not registered its URL with the hub yet")))?;
    Ok(Peer {
        id: entry.id,
        url,
        public_key: entry.public_key,
    })
}
