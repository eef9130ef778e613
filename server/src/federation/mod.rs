//! Node to node: each node's Ed25519 identity, the peers it trusts, and
//! requests between them signed by the sender and checked by the receiver
//! exactly as hostile input from a phone is.

pub mod identity;
pub mod outbound;
pub mod peers;
pub mod signing;
pub mod transfer;

pub use identity::NodeKey;
pub use peers::{Peer, Peers};
pub use signing::{RequestSigner, SignedBy, SignedRequestError, Verifier};

use crate::config::Config;
use crate::db::{now_ms, StoreError};
use parking_lot::RwLock;
use std::sync::Arc;

/// This node's identity and its peers.
pub struct Federation {
    pub key: Arc<NodeKey>,
    pub signer: RequestSigner,
    pub verifier: Verifier,
    config_peers: Vec<Peer>,
    peers: RwLock<Arc<Peers>>,
    pub outbound: outbound::Outbound,
    /// Authorities trusted for peers' HTTPS beyond the web PKI.
    roots: Vec<reqwest::Certificate>,
}

/// The authorities in `federation_ca_file`, besides the web PKI's.
fn roots(config: &Config) -> Result<Vec<reqwest::Certificate>, String> {
    let Some(path) = &config.federation_ca_file else {
        return Ok(Vec::new());
    };
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
        .map_err(|e| format!("federation_ca_file {}: {e}", path.display()))
}

impl Federation {
    /// A blocking client trusting what [`Federation::http_client`] trusts,
    /// for the command line.
    pub fn blocking_client(config: &Config) -> Result<reqwest::blocking::Client, String> {
        roots(config)?
            .into_iter()
            .fold(reqwest::blocking::Client::builder(), |builder, root| {
                builder.add_root_certificate(root)
            })
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())
    }

    /// Loads the node key from `data_dir` (making it on first start) and
    /// the peers of the config file and of `stored` (added at run time).
    pub fn open(config: &Config, stored: Vec<Peer>) -> Result<Federation, StoreError> {
        let key = NodeKey::load_or_create(&config.data_dir.join(identity::KEY_FILE))
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        let key = Arc::new(key);
        let roots = roots(config).map_err(StoreError::Connection)?;
        let federation = Federation {
            signer: RequestSigner::new(config.node_id.clone(), key.clone()),
            verifier: Verifier::new(config.node_id.clone(), now_ms() / 1000),
            key,
            config_peers: config.peers.clone(),
            peers: RwLock::new(Arc::new(Peers::default())),
            outbound: outbound::Outbound::default(),
            roots,
        };
        federation
            .set_stored(stored)
            .map_err(StoreError::Connection)?;
        Ok(federation)
    }

    /// The client for requests to peers: HTTPS by rustls, trusting the web
    /// PKI and `federation_ca_file`.
    pub fn http_client(&self) -> Result<reqwest::Client, crate::error::ApiError> {
        self.roots
            .iter()
            .fold(reqwest::Client::builder(), |builder, root| {
                builder.add_root_certificate(root.clone())
            })
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| crate::error::ApiError::Internal(e.to_string()))
    }

    /// The peers now (the config file's and those added at run time).
    pub fn peers(&self) -> Arc<Peers> {
        self.peers.read().clone()
    }

    /// Whether `id` comes from the config file (and so cannot be changed at
    /// run time).
    pub fn is_configured(&self, id: &str) -> bool {
        self.config_peers.iter().any(|p| p.id == id)
    }

    /// Replaces the peers added at run time; a stored peer with the id of a
    /// configured one is ignored.
    pub fn set_stored(&self, stored: Vec<Peer>) -> Result<(), String> {
        let all: Vec<Peer> = self
            .config_peers
            .iter()
            .cloned()
            .chain(stored.into_iter().filter(|p| !self.is_configured(&p.id)))
            .collect();
        *self.peers.write() = Arc::new(Peers::new(&all)?);
        Ok(())
    }
}
