//! Node to node: each node's Ed25519 identity, the peers it trusts, and
//! requests between them signed by the sender and checked by the receiver
//! exactly as hostile input from a phone is.

pub mod added;
pub mod identity;
pub mod inbound;
pub mod outbound;
pub mod signing;
pub mod transfer;

/// The peer vocabulary, where federation's users have long found it.
pub use crate::peers::{KeyRotation, Peer, Peers};
pub use identity::NodeKey;
pub use signing::{RequestSigner, SignedBy, SignedRequestError, Verifier};

use crate::config::Config;
use crate::db::{now_ms, DbConnection, Pool, StoreError};
use crate::error::ApiError;
use crate::plans::Plans;
use crate::start_error::StartError;
use crate::store::writer::Writer;
use parking_lot::RwLock;
use std::sync::Arc;

/// An error with its causes: "error sending request" alone does not tell
/// an operator that the peer's certificate is not trusted.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// What federation works with: the plan service, storage and this node's
/// federation state, rather than the whole `App` (which sits above
/// federation and lends it these). Cheap to clone: handles and `Arc`s.
#[derive(Clone)]
pub struct Context {
    pub node_id: String,
    pub plans: Arc<Plans>,
    pub pool: Pool,
    pub writer: Writer,
    pub federation: Arc<Federation>,
    /// Other processes share the database (PostgreSQL): see [`Federation::current_peers`].
    pub shared: bool,
    /// `transfer_keeps_copy`: a plan handed over stays here as a replica.
    pub keeps_copy: bool,
}

impl Context {
    /// The peers now (see [`Federation::current_peers`]).
    pub async fn peers(&self) -> Result<Arc<Peers>, ApiError> {
        self.federation.current_peers(&self.pool, self.shared).await
    }

    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        Ok(crate::db::blocking(&self.pool, f).await?)
    }
}

/// This node's identity and its peers.
pub struct Federation {
    pub signer: RequestSigner,
    pub verifier: Verifier,
    config_peers: Vec<Peer>,
    /// The peers added at run time, as last set.
    stored_peers: RwLock<Vec<Peer>>,
    /// Shared with the plan service, which asks whether a name is a node
    /// (`Federation::is_node`).
    peers: Arc<RwLock<Arc<Peers>>>,
    pub outbound: outbound::Outbound,
    /// Authorities trusted for peers' HTTPS beyond the web PKI.
    roots: Vec<reqwest::Certificate>,
}

/// The authorities in `federation_ca_file`, besides the web PKI's.
fn roots(config: &Config) -> Result<Vec<reqwest::Certificate>, StartError> {
    let Some(path) = &config.federation_ca_file else {
        return Ok(Vec::new());
    };
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
        .map_err(|reason| StartError::CaFile {
            path: path.clone(),
            reason,
        })
}

impl Federation {
    /// A blocking client trusting what [`Federation::http_client`] trusts,
    /// for the command line.
    pub fn blocking_client(config: &Config) -> Result<reqwest::blocking::Client, String> {
        roots(config)
            .map_err(|e| e.to_string())?
            .into_iter()
            .fold(reqwest::blocking::Client::builder(), |builder, root| {
                builder.add_root_certificate(root)
            })
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())
    }

    /// Loads the node key from `data_dir` (making it on first start) and
    /// the peers of the config file and of `stored` (added at run time),
    /// with the peer keys learnt from rotations.
    pub fn open(
        config: &Config,
        stored: Vec<Peer>,
        rotations: Vec<KeyRotation>,
    ) -> Result<Federation, StartError> {
        let identity =
            identity::Identity::load(&config.data_dir, now_ms() / 1000).map_err(|e| {
                StartError::KeyFile {
                    path: config.data_dir.join(identity::KEY_FILE),
                    reason: e.to_string(),
                }
            })?;
        let roots = roots(config)?;
        let federation = Federation {
            signer: RequestSigner::with_identity(config.node_id.clone(), identity),
            verifier: Verifier::with_replay_limit(
                config.node_id.clone(),
                now_ms() / 1000,
                config.replay_ids_per_peer,
            ),
            config_peers: config.peers.clone(),
            stored_peers: RwLock::new(Vec::new()),
            peers: Arc::new(RwLock::new(Arc::new(
                Peers::default().with_rotations(rotations),
            ))),
            outbound: outbound::Outbound::default(),
            roots,
        };
        federation
            .set_stored(stored)
            .map_err(|reason| StartError::Setting {
                key: "peers",
                reason,
            })?;
        Ok(federation)
    }

    /// This node's public key now (after a rotation, the new one).
    pub fn public_key(&self) -> String {
        self.signer.public_key()
    }

    /// Signs with the key and rotation statement now in `data_dir` (after
    /// `wrapsync keys rotate-node`); answers the public key.
    pub fn reload_identity(&self, data_dir: &std::path::Path) -> Result<String, String> {
        let identity =
            identity::Identity::load(data_dir, now_ms() / 1000).map_err(|e| e.to_string())?;
        let public_key = identity.key.public_key().to_string();
        self.signer.replace(identity);
        Ok(public_key)
    }

    /// Takes `rotation` of `peer` into the peers in force; answers the
    /// row to store, or `None` if it was already known (many requests may
    /// carry the same statement at once).
    pub fn accept_rotation(
        &self,
        peer: &str,
        rotation: &signing::Rotation,
        now: i64,
    ) -> Result<Option<KeyRotation>, String> {
        let mut peers = self.peers.write();
        let stored = self.stored_peers.read().clone();
        if peers.current_key(peer) == Some(rotation.to_key.as_str()) {
            return Ok(None);
        }
        let from_key = match peers.rotation(peer) {
            Some(earlier) => earlier.from_key.clone(),
            None => peers
                .get(peer)
                .map(|p| p.public_key.clone())
                .unwrap_or_default(),
        };
        let row = KeyRotation {
            peer_id: peer.to_string(),
            from_key,
            public_key: rotation.to_key.clone(),
            previous_key: rotation.from_key.clone(),
            previous_until: rotation.until,
            statement: rotation.statement.clone(),
            accepted_at: now,
        };
        let rotations: Vec<KeyRotation> = peers
            .rotations()
            .iter()
            .filter(|r| r.peer_id != peer)
            .cloned()
            .chain([row.clone()])
            .collect();
        *peers = Arc::new(Peers::new(&self.all_peers(stored))?.with_rotations(rotations));
        Ok(Some(row))
    }

    fn all_peers(&self, stored: Vec<Peer>) -> Vec<Peer> {
        self.config_peers
            .iter()
            .cloned()
            .chain(stored.into_iter().filter(|p| !self.is_configured(&p.id)))
            .collect()
    }

    /// The client for requests to peers: HTTPS by rustls, trusting the web
    /// PKI and `federation_ca_file`.
    pub fn http_client(&self) -> Result<reqwest::Client, ApiError> {
        self.roots
            .iter()
            .fold(reqwest::Client::builder(), |builder, root| {
                builder.add_root_certificate(root.clone())
            })
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The peers now. On a database other processes share (`shared`:
    /// PostgreSQL), those added or removed at run time are read afresh
    /// first, so a peer removed through one process is refused by every
    /// other one from the next request on (one read of a small table).
    pub async fn current_peers(&self, pool: &Pool, shared: bool) -> Result<Arc<Peers>, ApiError> {
        if shared {
            let stored = crate::db::blocking(pool, crate::store::peers::list).await?;
            self.set_stored(stored).map_err(ApiError::Internal)?;
        }
        Ok(self.peers())
    }

    /// The peers now (the config file's and those added at run time).
    pub fn peers(&self) -> Arc<Peers> {
        self.peers.read().clone()
    }

    /// Whether `name` is a node this one knows: itself (`own`) or a peer,
    /// as the peers stand when it is asked. What a plan's consent record
    /// keeps for the grants (`Plans::with_known_nodes`).
    pub fn is_node(&self, own: String) -> impl Fn(&str) -> bool + Send + Sync + 'static {
        let peers = self.peers.clone();
        move |name: &str| name == own || peers.read().get(name).is_some()
    }

    /// Whether `id` comes from the config file (and so cannot be changed at
    /// run time).
    pub fn is_configured(&self, id: &str) -> bool {
        self.config_peers.iter().any(|p| p.id == id)
    }

    /// Replaces the peers added at run time; a stored peer with the id of a
    /// configured one is ignored.
    pub fn set_stored(&self, stored: Vec<Peer>) -> Result<(), String> {
        let rotations = self.peers.read().rotations().to_vec();
        self.set_stored_and_rotations(stored, rotations)
    }

    /// Replaces the peers added at run time and the keys learnt from
    /// rotations, as another process sharing the database may have stored
    /// them (a reload).
    pub fn set_stored_and_rotations(
        &self,
        stored: Vec<Peer>,
        rotations: Vec<KeyRotation>,
    ) -> Result<(), String> {
        let mut peers = self.peers.write();
        *peers = Arc::new(Peers::new(&self.all_peers(stored.clone()))?.with_rotations(rotations));
        *self.stored_peers.write() = stored;
        Ok(())
    }
}
