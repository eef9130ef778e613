//! Signed node-to-node requests: a short-lived EdDSA JWT in
//! `Authorization: Bearer`, binding the sender (`iss`, and `kid` to pick its
//! key), the destination node (`aud`), the method (`htm`), the path and
//! query (`htu`), a SHA-256 of the body (`bdy`), the time (`iat`, `exp`, at
//! most 5 minutes apart) and a one-time id (`jti`). The receiver refuses,
//! with `401`, a request that is unsigned, signed by a key it does not hold
//! for that peer, stale, replayed, meant for another node, or whose method,
//! path or body differ from what was signed.

use super::{NodeKey, Peers};
use base64::Engine;
use jsonwebtoken::{Algorithm, Header, Validation};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Longest life of a signed request, and how far clocks may disagree.
pub const MAX_AGE_SECS: i64 = 300;
pub const CLOCK_SKEW_SECS: i64 = 30;

#[derive(Debug, Serialize, Deserialize)]
struct RequestClaims {
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
    htm: String,
    htu: String,
    bdy: String,
    /// Who made the changes the body carries: Automerge actor (hex) →
    /// the sender's username for that person. Signed with the rest, so the
    /// receiver can attribute each change and check it against that
    /// person's role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    act: BTreeMap<String, String>,
}

/// A verified request: the peer that signed it and the authors it vouches
/// for.
#[derive(Debug, PartialEq)]
pub struct SignedBy {
    pub peer: String,
    pub authors: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignedRequestError {
    #[error("node requests must be signed (Authorization: Bearer <EdDSA JWT>)")]
    Unsigned,
    #[error("the request signature is malformed: {0}")]
    Malformed(String),
    #[error("node `{0}` is not a peer of this node")]
    UnknownPeer(String),
    #[error("the signature does not verify with the key this node holds for `{0}`")]
    BadSignature(String),
    #[error("the signed request is expired, too long-lived or from the future")]
    Stale,
    #[error("the signed request is meant for another node")]
    WrongAudience,
    #[error("the signed request was already used")]
    Replayed,
    #[error("the request differs from what was signed ({0})")]
    Mismatch(&'static str),
}

fn body_digest(body: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// Signs this node's requests to its peers.
#[derive(Clone)]
pub struct RequestSigner {
    node_id: String,
    key: Arc<NodeKey>,
}

impl RequestSigner {
    pub fn new(node_id: String, key: Arc<NodeKey>) -> Self {
        RequestSigner { node_id, key }
    }

    /// The `Authorization` value for `method path_and_query` with `body`,
    /// to node `destination`, valid for a minute from `now` (Unix seconds).
    pub fn sign(
        &self,
        destination: &str,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        authors: BTreeMap<String, String>,
        now: i64,
    ) -> Result<String, String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.node_id.clone());
        let claims = RequestClaims {
            iss: self.node_id.clone(),
            aud: destination.to_string(),
            iat: now,
            exp: now + 60,
            jti: hex::encode(rand::random::<[u8; 16]>()),
            htm: method.to_ascii_uppercase(),
            htu: path_and_query.to_string(),
            bdy: body_digest(body),
            act: authors,
        };
        jsonwebtoken::encode(&header, &claims, self.key.encoding_key())
            .map(|token| format!("Bearer {token}"))
            .map_err(|e| e.to_string())
    }
}

/// Checks signed requests meant for this node.
pub struct Verifier {
    node_id: String,
    /// Requests signed before this node started are refused: the one-time
    /// ids of earlier requests died with the previous process.
    started_at: i64,
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl Verifier {
    pub fn new(node_id: String, started_at: i64) -> Self {
        Verifier {
            node_id,
            started_at,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The peer that signed the request, if every check holds.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        peers: &Peers,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now: i64,
    ) -> Result<SignedBy, SignedRequestError> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(SignedRequestError::Unsigned)?;
        let (sender, claims) = decode_signed::<RequestClaims>(token, peers)?;
        if claims.iss != sender {
            return Err(SignedRequestError::Malformed(
                "`iss` and `kid` differ".into(),
            ));
        }
        if claims.aud != self.node_id {
            return Err(SignedRequestError::WrongAudience);
        }
        let fresh = claims.iat <= now + CLOCK_SKEW_SECS
            && claims.exp >= now - CLOCK_SKEW_SECS
            && claims.exp > claims.iat
            && claims.exp - claims.iat <= MAX_AGE_SECS
            && claims.iat >= self.started_at - CLOCK_SKEW_SECS;
        if !fresh {
            return Err(SignedRequestError::Stale);
        }
        if !claims.htm.eq_ignore_ascii_case(method) {
            return Err(SignedRequestError::Mismatch("method"));
        }
        if claims.htu != path_and_query {
            return Err(SignedRequestError::Mismatch("path"));
        }
        if claims.bdy != body_digest(body) {
            return Err(SignedRequestError::Mismatch("body"));
        }
        let mut seen = self.seen.lock();
        if seen.len() > 10_000 {
            seen.retain(|_, exp| *exp + CLOCK_SKEW_SECS >= now);
        }
        if seen
            .insert((claims.iss.clone(), claims.jti), claims.exp)
            .is_some()
        {
            return Err(SignedRequestError::Replayed);
        }
        Ok(SignedBy {
            peer: claims.iss,
            authors: claims.act,
        })
    }
}

/// Decodes an EdDSA JWT signed by the peer its `kid` names, with that
/// peer's key; answers the peer and the claims (times, audience and `iss`
/// are the caller's to check).
fn decode_signed<C: serde::de::DeserializeOwned>(
    token: &str,
    peers: &Peers,
) -> Result<(String, C), SignedRequestError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| SignedRequestError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::EdDSA {
        return Err(SignedRequestError::Malformed(
            "nodes sign with EdDSA".into(),
        ));
    }
    let sender = header
        .kid
        .ok_or_else(|| SignedRequestError::Malformed("no `kid`".into()))?;
    let key = peers
        .key(&sender)
        .ok_or_else(|| SignedRequestError::UnknownPeer(sender.clone()))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<C>(token, key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                SignedRequestError::BadSignature(sender.clone())
            }
            _ => SignedRequestError::Malformed(e.to_string()),
        })?
        .claims;
    Ok((sender, claims))
}

/// The old home's signed word that a plan moved: the new home shows it to
/// nodes still holding a replica homed at the old one, which follow the
/// move on the old home's word alone (it is the only node that may give
/// the plan away). It does not expire: a replica may hear of the move late.
#[derive(Debug, Serialize, Deserialize)]
struct TransferClaims {
    iss: String,
    /// The plan.
    sub: String,
    /// Its new home.
    home: String,
    iat: i64,
}

/// A verified move of a plan's home.
#[derive(Debug, PartialEq)]
pub struct Move {
    pub from: String,
    pub to: String,
    /// When it was certified (Unix seconds).
    pub at: i64,
}

impl RequestSigner {
    /// Certifies that `plan` moves from this node to `to`.
    pub fn certify_transfer(&self, plan: &str, to: &str, now: i64) -> Result<String, String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.node_id.clone());
        let claims = TransferClaims {
            iss: self.node_id.clone(),
            sub: plan.to_string(),
            home: to.to_string(),
            iat: now,
        };
        jsonwebtoken::encode(&header, &claims, self.key.encoding_key()).map_err(|e| e.to_string())
    }
}

/// Checks a transfer certificate for `plan`, signed by the peer it names
/// as the old home.
pub fn verify_transfer(
    certificate: &str,
    peers: &Peers,
    plan: &str,
) -> Result<Move, SignedRequestError> {
    let (from, claims) = decode_signed::<TransferClaims>(certificate, peers)?;
    if claims.iss != from {
        return Err(SignedRequestError::Malformed(
            "`iss` and `kid` differ".into(),
        ));
    }
    if claims.sub != plan {
        return Err(SignedRequestError::Mismatch("plan"));
    }
    Ok(Move {
        from,
        to: claims.home,
        at: claims.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::Peer;

    const NOW: i64 = 1_800_000_000;

    fn node(id: &str) -> (RequestSigner, Peer) {
        let key = Arc::new(NodeKey::generate().unwrap_or_else(|e| panic!("{e}")));
        let peer = Peer {
            id: id.into(),
            url: format!("http://{id}.example"),
            public_key: key.public_key().to_string(),
        };
        (RequestSigner::new(id.into(), key), peer)
    }

    #[test]
    fn a_peer_request_verifies_once_and_every_tampering_is_refused() {
        let (b, peer_b) = node("county-b");
        let (mallory, _) = node("county-m");
        let peers = Peers::new(&[peer_b]).unwrap_or_else(|e| panic!("{e}"));
        let a = Verifier::new("county-a".into(), NOW - 100);
        let path = "/federation/v1/plans/P1/sync";
        let sign = |signer: &RequestSigner, to: &str, at: i64| {
            signer
                .sign(to, "POST", path, b"hello", BTreeMap::new(), at)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let check = |auth: &str, method: &str, p: &str, body: &[u8]| {
            a.verify(Some(auth), &peers, method, p, body, NOW)
        };

        let good = sign(&b, "county-a", NOW);
        assert_eq!(
            check(&good, "POST", path, b"hello").map(|s| s.peer),
            Ok("county-b".into())
        );
        assert_eq!(
            check(&good, "POST", path, b"hello"),
            Err(SignedRequestError::Replayed)
        );

        use SignedRequestError::*;
        assert_eq!(
            a.verify(None, &peers, "POST", path, b"", NOW),
            Err(Unsigned)
        );
        assert!(matches!(
            check("Bearer nonsense", "POST", path, b"hello"),
            Err(Malformed(_))
        ));
        let other = sign(&b, "county-a", NOW);
        assert_eq!(
            check(&other, "GET", path, b"hello"),
            Err(Mismatch("method"))
        );
        let other = sign(&b, "county-a", NOW);
        assert_eq!(
            check(&other, "POST", "/federation/v1/plans/P2/sync", b"hello"),
            Err(Mismatch("path"))
        );
        let other = sign(&b, "county-a", NOW);
        assert_eq!(check(&other, "POST", path, b"hellO"), Err(Mismatch("body")));
        assert_eq!(
            check(&sign(&b, "county-c", NOW), "POST", path, b"hello"),
            Err(WrongAudience)
        );
        assert_eq!(
            check(&sign(&b, "county-a", NOW - 400), "POST", path, b"hello"),
            Err(Stale)
        );
        assert_eq!(
            check(&sign(&b, "county-a", NOW + 120), "POST", path, b"hello"),
            Err(Stale)
        );
        // Signed before this node started (the replay memory is gone).
        let early = Verifier::new("county-a".into(), NOW + 1000);
        let fresh = sign(&b, "county-a", NOW);
        assert_eq!(
            early.verify(Some(&fresh), &peers, "POST", path, b"hello", NOW),
            Err(Stale)
        );
        // An unknown node, and a known node's name with another key.
        assert_eq!(
            check(&sign(&mallory, "county-a", NOW), "POST", path, b"hello"),
            Err(UnknownPeer("county-m".into()))
        );
        let forged = RequestSigner::new(
            "county-b".into(),
            Arc::new(NodeKey::generate().unwrap_or_else(|e| panic!("{e}"))),
        );
        assert_eq!(
            check(&sign(&forged, "county-a", NOW), "POST", path, b"hello"),
            Err(BadSignature("county-b".into()))
        );
        // A token with alg none or HS256 is not accepted.
        let none = format!(
            "Bearer {}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(r#"{"alg":"none","kid":"county-b"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iss":"county-b"}"#)
        );
        assert!(matches!(
            check(&none, "POST", path, b"hello"),
            Err(Malformed(_))
        ));
    }

    #[test]
    fn peer_ids_urls_and_keys_are_checked_when_loaded() {
        let (_, mut peer) = node("county-b");
        peer.public_key = "not-a-key".into();
        assert!(Peers::new(&[peer]).is_err());
        let (_, peer) = node("county-b");
        assert!(Peers::new(&[peer.clone(), peer.clone()]).is_err());
        for (id, url) in [
            ("county b", "http://b.example"),
            ("county-b", "ftp://b.example"),
        ] {
            let bad = Peer {
                id: id.into(),
                url: url.into(),
                ..peer.clone()
            };
            assert!(Peers::new(&[bad]).is_err(), "{id} at {url}");
        }
    }

    #[test]
    fn a_transfer_certificate_verifies_only_for_its_plan_and_its_signer() {
        let (a, peer_a) = node("county-a");
        let (mallory, peer_m) = node("county-m");
        let peers = Peers::new(&[peer_a]).unwrap_or_else(|e| panic!("{e}"));
        let cert = a
            .certify_transfer("P1", "county-b", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_transfer(&cert, &peers, "P1"),
            Ok(Move {
                from: "county-a".into(),
                to: "county-b".into(),
                at: NOW
            })
        );
        assert_eq!(
            verify_transfer(&cert, &peers, "P2"),
            Err(SignedRequestError::Mismatch("plan"))
        );
        // Mallory signing as county-a (its own key, county-a's kid).
        let forged = RequestSigner::new("county-a".into(), mallory.key.clone())
            .certify_transfer("P1", "county-m", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_transfer(&forged, &peers, "P1"),
            Err(SignedRequestError::BadSignature("county-a".into()))
        );
        let unknown = mallory
            .certify_transfer("P1", "county-m", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_transfer(&unknown, &peers, "P1"),
            Err(SignedRequestError::UnknownPeer(peer_m.id))
        );
        assert!(verify_transfer("not a jwt", &peers, "P1").is_err());
    }
}
