//! The nodes this node trusts: id, base URL and public key, from the config
//! file (`[[peers]]`). Only a listed peer's signature is accepted.

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

/// The peers, with their keys ready to check signatures.
#[derive(Default)]
pub struct Peers {
    by_id: HashMap<String, (Peer, DecodingKey)>,
}

impl Peers {
    /// Checks every peer (its id, its URL's scheme, its key); a bad one is
    /// a configuration error.
    pub fn new(peers: &[Peer]) -> Result<Peers, String> {
        let mut by_id = HashMap::new();
        for peer in peers {
            if !crate::config::is_node_id(&peer.id) {
                return Err(format!(
                    "peer `{}`: an id is 1-64 letters, digits, - or _",
                    peer.id
                ));
            }
            if !(peer.url.starts_with("https://") || peer.url.starts_with("http://")) {
                return Err(format!("peer {}: `url` must be http(s)://…", peer.id));
            }
            let key = decoding_key(&peer.id, &peer.public_key)?;
            if by_id.insert(peer.id.clone(), (peer.clone(), key)).is_some() {
                return Err(format!("peer {} is listed twice", peer.id));
            }
        }
        Ok(Peers { by_id })
    }

    /// Nodes known by id and key only, as the state hub enrolls them: their
    /// signatures are checked like a peer's; they have no URL here (`""`).
    pub fn enrolled<'a>(
        nodes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Peers, String> {
        let mut by_id = HashMap::new();
        for (id, public_key) in nodes {
            if !crate::config::is_node_id(id) {
                return Err(format!(
                    "node `{id}`: an id is 1-64 letters, digits, - or _"
                ));
            }
            let key = decoding_key(id, public_key)?;
            let peer = Peer {
                id: id.to_string(),
                url: String::new(),
                public_key: public_key.to_string(),
            };
            if by_id.insert(id.to_string(), (peer, key)).is_some() {
                return Err(format!("node {id} is listed twice"));
            }
        }
        Ok(Peers { by_id })
    }

    pub fn get(&self, id: &str) -> Option<&Peer> {
        self.by_id.get(id).map(|(peer, _)| peer)
    }

    pub(crate) fn key(&self, id: &str) -> Option<&DecodingKey> {
        self.by_id.get(id).map(|(_, key)| key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Peer> {
        self.by_id.values().map(|(peer, _)| peer)
    }
}

/// An Ed25519 public key, base64url (32 bytes), ready to check signatures.
fn decoding_key(id: &str, public_key: &str) -> Result<DecodingKey, String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(public_key)
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| format!("peer {id}: public_key is not a base64url Ed25519 key"))?;
    Ok(DecodingKey::from_ed_der(&raw))
}
