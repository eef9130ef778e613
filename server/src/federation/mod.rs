//! Node to node: each node's Ed25519 identity, the peers it trusts, and
//! requests between them signed by the sender and checked by the receiver
//! exactly as hostile input from a phone is.

pub mod identity;
pub mod peers;
pub mod signing;

pub use identity::NodeKey;
pub use peers::{Peer, Peers};
pub use signing::{RequestSigner, SignedRequestError, Verifier};

use crate::config::Config;
use crate::db::{now_ms, StoreError};
use std::sync::Arc;

/// This node's identity and its peers, built once at start.
pub struct Federation {
    pub key: Arc<NodeKey>,
    pub signer: RequestSigner,
    pub verifier: Verifier,
    pub peers: Peers,
}

impl Federation {
    /// Loads the node key from `data_dir` (making it on first start).
    pub fn open(config: &Config) -> Result<Federation, StoreError> {
        let key = NodeKey::load_or_create(&config.data_dir.join(identity::KEY_FILE))
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        let key = Arc::new(key);
        let peers = Peers::new(&config.peers).map_err(StoreError::Connection)?;
        Ok(Federation {
            signer: RequestSigner::new(config.node_id.clone(), key.clone()),
            verifier: Verifier::new(config.node_id.clone(), now_ms() / 1000),
            key,
            peers,
        })
    }
}
