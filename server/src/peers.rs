//! The nodes this node trusts: id, base URL and public key, from the config
//! file (`[[peers]]`) or added at run time. Only a listed peer's signature
//! is accepted. The peer vocabulary (with what a node id may be) that
//! config, storage and federation share, so none imports another for it.

use base64::Engine;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The peer's node id (what it signs as).
    pub id: String,
    /// Its base URL, e.g. `https://county-b.example.org`.
    pub url: String,
    /// Its Ed25519 public key, base64url (`GET /federation/v1/identity`).
    pub public_key: String,
}

/// A peer's key learnt from its rotation statement (see
/// `federation::signing`): it applies while the peer's configured key is
/// still `from_key`, so a key an operator sets by hand always wins.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRotation {
    pub peer_id: String,
    /// The configured key the chain of rotations started from.
    pub from_key: String,
    /// The key the peer signs with now.
    pub public_key: String,
    /// The key it signed with before, accepted until `previous_until`.
    pub previous_key: String,
    pub previous_until: i64,
    /// The statement, signed by `previous_key`, as received.
    pub statement: String,
    pub accepted_at: i64,
}

/// The keys a peer's signature is checked with.
struct PeerKeys {
    /// The key it signs with now (base64url, and ready to check).
    public_key: String,
    current: DecodingKey,
    /// A rotated-away key, until its deadline (Unix seconds).
    previous: Option<(DecodingKey, i64)>,
}

/// The peers, with their keys ready to check signatures.
#[derive(Default)]
pub struct Peers {
    by_id: HashMap<String, (Peer, PeerKeys)>,
    /// Rotations as stored, including those a configured key overrides.
    rotations: Vec<KeyRotation>,
}

impl Peers {
    /// Checks every peer (its id, its URL's scheme, its key); a bad one is
    /// a configuration error.
    pub fn new(peers: &[Peer]) -> Result<Peers, String> {
        let mut by_id = HashMap::new();
        for peer in peers {
            if !is_node_id(&peer.id) {
                return Err(format!(
                    "peer `{}`: an id is 1-64 letters, digits, - or _",
                    peer.id
                ));
            }
            if !(peer.url.starts_with("https://") || peer.url.starts_with("http://")) {
                return Err(format!("peer {}: `url` must be http(s)://…", peer.id));
            }
            let key = PeerKeys::of(&peer.id, &peer.public_key)?;
            if by_id.insert(peer.id.clone(), (peer.clone(), key)).is_some() {
                return Err(format!("peer {} is listed twice", peer.id));
            }
        }
        Ok(Peers {
            by_id,
            rotations: Vec::new(),
        })
    }

    /// These peers, with the keys they rotated to: a rotation applies while
    /// the peer's configured key is the one its chain started from; a bad
    /// stored key is skipped (logged), never fatal.
    pub fn with_rotations(mut self, rotations: Vec<KeyRotation>) -> Peers {
        for rotation in &rotations {
            let Some((peer, keys)) = self.by_id.get_mut(&rotation.peer_id) else {
                continue;
            };
            if peer.public_key != rotation.from_key {
                continue;
            }
            let learnt = decoding_key(&peer.id, &rotation.public_key)
                .and_then(|current| Ok((current, decoding_key(&peer.id, &rotation.previous_key)?)));
            match learnt {
                Ok((current, previous)) => {
                    *keys = PeerKeys {
                        public_key: rotation.public_key.clone(),
                        current,
                        previous: Some((previous, rotation.previous_until)),
                    };
                }
                Err(e) => {
                    tracing::warn!(peer = %peer.id, error = %e, "stored key rotation skipped")
                }
            }
        }
        self.rotations = rotations;
        self
    }

    /// The stored rotation of `id` that applies now, if any.
    pub fn rotation(&self, id: &str) -> Option<&KeyRotation> {
        let (peer, _) = self.by_id.get(id)?;
        self.rotations
            .iter()
            .find(|r| r.peer_id == id && r.from_key == peer.public_key)
    }

    /// Every stored rotation (the ones overridden too).
    pub fn rotations(&self) -> &[KeyRotation] {
        &self.rotations
    }

    /// The key `id` signs with now: its configured key, or the one it
    /// rotated to.
    pub fn current_key(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(|(_, keys)| keys.public_key.as_str())
    }

    /// Nodes known by id and key only, as the state hub enrolls them: their
    /// signatures are checked like a peer's; they have no URL here (`""`).
    pub fn enrolled<'a>(
        nodes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Peers, String> {
        let mut by_id = HashMap::new();
        for (id, public_key) in nodes {
            if !is_node_id(id) {
                return Err(format!(
                    "node `{id}`: an id is 1-64 letters, digits, - or _"
                ));
            }
            let key = PeerKeys::of(id, public_key)?;
            let peer = Peer {
                id: id.to_string(),
                url: String::new(),
                public_key: public_key.to_string(),
            };
            if by_id.insert(id.to_string(), (peer, key)).is_some() {
                return Err(format!("node {id} is listed twice"));
            }
        }
        Ok(Peers {
            by_id,
            rotations: Vec::new(),
        })
    }

    pub fn get(&self, id: &str) -> Option<&Peer> {
        self.by_id.get(id).map(|(peer, _)| peer)
    }

    /// The key `id` signs with now.
    pub(crate) fn key(&self, id: &str) -> Option<&DecodingKey> {
        self.by_id.get(id).map(|(_, keys)| &keys.current)
    }

    /// The key `id` rotated away from, while it is still accepted at `now`.
    pub(crate) fn previous_key(&self, id: &str, now: i64) -> Option<&DecodingKey> {
        let (_, keys) = self.by_id.get(id)?;
        keys.previous
            .as_ref()
            .filter(|(_, until)| now <= *until)
            .map(|(key, _)| key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Peer> {
        self.by_id.values().map(|(peer, _)| peer)
    }
}

impl PeerKeys {
    fn of(id: &str, public_key: &str) -> Result<PeerKeys, String> {
        Ok(PeerKeys {
            public_key: public_key.to_string(),
            current: decoding_key(id, public_key)?,
            previous: None,
        })
    }
}

/// An Ed25519 public key, base64url (32 bytes), ready to check signatures.
pub(crate) fn decoding_key(id: &str, public_key: &str) -> Result<DecodingKey, String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(public_key)
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| format!("peer {id}: public_key is not a base64url Ed25519 key"))?;
    Ok(DecodingKey::from_ed_der(&raw))
}

/// 1-64 letters, digits, `-` or `_`: what a node id (this node's or a
/// peer's) may be.
pub fn is_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
