//! Signed node-to-node requests: a short-lived EdDSA JWT in
//! `Authorization: Bearer`, binding the sender (`iss`, and `kid` to pick its
//! key), the destination node (`aud`), the method (`htm`), the path and
//! query (`htu`), a SHA-256 of the body (`bdy`), the time (`iat`, `exp`, at
//! most 5 minutes apart) and a one-time id (`jti`). The receiver refuses,
//! with `401`, a request that is unsigned, signed by a key it does not hold
//! for that peer, stale, replayed, meant for another node, or whose method,
//! path or body differ from what was signed.
//!
//! Key rotation: a node that replaced its key (`wrapsync keys rotate-node`)
//! signs with the new key and, for the grace period, puts its old key's
//! statement (`rot`: an EdDSA JWT `{typ, iss, key, iat, exp}` signed by the
//! old key) in every request. A receiver holding the old key checks the
//! statement, then the request with the new key; the node keeps the new
//! key and accepts the old one until the statement's `exp`. Only the key a
//! receiver holds as current can vouch for a successor, so a stolen old
//! key cannot rotate a peer that already moved on; a thief who rotates
//! first locks the owner out (audited refusals), and the operator resets
//! the key by hand (`peer add`), which overrides anything learnt.

use super::identity::{Identity, RotationClaims, MAX_GRACE_SECS, ROTATION_TYPE};
use super::{NodeKey, Peers};
use crate::config::DEFAULT_REPLAY_IDS_PER_PEER;
use base64::Engine;
use jsonwebtoken::{Algorithm, Header, Validation};
use parking_lot::Mutex;
use parking_lot::RwLock;
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
    /// The sender's rotation statement while its grace period lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rot: Option<String>,
}

/// A verified request: the peer that signed it and the authors it vouches
/// for.
#[derive(Debug, PartialEq)]
pub struct SignedBy {
    pub peer: String,
    pub authors: BTreeMap<String, String>,
    /// The request was signed with a new key its old one vouched for.
    pub rotation: Option<Rotation>,
}

/// A peer's key change, verified: the key held for it (`from_key`) signed
/// `statement`, naming `to_key`; `from_key` stays good until `until`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub from_key: String,
    pub to_key: String,
    pub until: i64,
    pub statement: String,
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
    #[error("the key rotation statement is refused: {0}")]
    RotationRefused(String),
    #[error("the sender has as many signed requests in force as this node remembers for it; retry when some expire")]
    TooManyPending,
}

fn body_digest(body: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// Signs this node's requests to its peers, with the identity in force
/// (swapped on a reload after a key rotation).
#[derive(Clone)]
pub struct RequestSigner {
    node_id: String,
    identity: Arc<RwLock<Arc<Identity>>>,
}

impl RequestSigner {
    pub fn new(node_id: String, key: NodeKey) -> Self {
        Self::with_identity(
            node_id,
            Identity {
                key,
                rotation: None,
            },
        )
    }

    pub fn with_identity(node_id: String, identity: Identity) -> Self {
        RequestSigner {
            node_id,
            identity: Arc::new(RwLock::new(Arc::new(identity))),
        }
    }

    /// Signs with `identity` from now on (every clone of this signer).
    pub fn replace(&self, identity: Identity) {
        *self.identity.write() = Arc::new(identity);
    }

    pub fn identity(&self) -> Arc<Identity> {
        self.identity.read().clone()
    }

    /// The public key requests are signed with now.
    pub fn public_key(&self) -> String {
        self.identity().key.public_key().to_string()
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
        let identity = self.identity();
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
            rot: identity.statement(now).map(str::to_string),
        };
        jsonwebtoken::encode(&header, &claims, identity.key.encoding_key())
            .map(|token| format!("Bearer {token}"))
            .map_err(|e| e.to_string())
    }
}

/// The longest one-time id (`jti`) a request may carry (this node's are
/// 32 hex digits): what one remembered id costs is bounded.
pub const MAX_JTI_CHARS: usize = 64;

/// The one-time ids of accepted requests, per peer, until they expire:
/// pruned by expiry on every use (not only when full), and at most `limit`
/// per peer, so one peer (signing requests that live 5 minutes, say)
/// neither grows the node's memory without bound nor pushes out another
/// peer's ids. A peer at its limit is refused (`429`) until some expire.
struct ReplayCache {
    limit: usize,
    peers: HashMap<String, PeerIds>,
}

#[derive(Default)]
struct PeerIds {
    /// `jti` → the `exp` it was accepted with.
    ids: HashMap<String, i64>,
    /// The same, in order of expiry.
    by_expiry: std::collections::BTreeSet<(i64, String)>,
}

impl PeerIds {
    /// Forgets the ids that can no longer be replayed at `now` (a request
    /// past `exp` and the skew is refused as stale anyway).
    fn prune(&mut self, now: i64) {
        while let Some((exp, _)) = self.by_expiry.first() {
            if *exp + CLOCK_SKEW_SECS >= now {
                break;
            }
            if let Some((_, jti)) = self.by_expiry.pop_first() {
                self.ids.remove(&jti);
            }
        }
    }
}

impl ReplayCache {
    fn contains(&self, peer: &str, jti: &str) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|p| p.ids.contains_key(jti))
    }

    /// Whether `peer` may have one more id remembered at `now`.
    fn has_room(&mut self, peer: &str, now: i64) -> bool {
        match self.peers.get_mut(peer) {
            None => self.limit > 0,
            Some(ids) => {
                ids.prune(now);
                ids.ids.len() < self.limit
            }
        }
    }

    /// Remembers `jti` of `peer` until `exp`; `Err` if it was seen or the
    /// peer has no room.
    fn insert(
        &mut self,
        peer: &str,
        jti: String,
        exp: i64,
        now: i64,
    ) -> Result<(), SignedRequestError> {
        if !self.peers.contains_key(peer) {
            self.peers.insert(peer.to_string(), PeerIds::default());
        }
        let Some(ids) = self.peers.get_mut(peer) else {
            return Err(SignedRequestError::TooManyPending);
        };
        ids.prune(now);
        if ids.ids.contains_key(&jti) {
            return Err(SignedRequestError::Replayed);
        }
        if ids.ids.len() >= self.limit {
            return Err(SignedRequestError::TooManyPending);
        }
        ids.by_expiry.insert((exp, jti.clone()));
        ids.ids.insert(jti, exp);
        Ok(())
    }

    #[cfg(test)]
    fn len(&self, peer: &str) -> usize {
        self.peers.get(peer).map_or(0, |p| p.ids.len())
    }
}

/// Checks signed requests meant for this node.
pub struct Verifier {
    node_id: String,
    /// Requests signed before this node started are refused: the one-time
    /// ids of earlier requests died with the previous process.
    started_at: i64,
    seen: Mutex<ReplayCache>,
}

impl Verifier {
    pub fn new(node_id: String, started_at: i64) -> Self {
        Self::with_replay_limit(node_id, started_at, DEFAULT_REPLAY_IDS_PER_PEER)
    }

    /// A verifier remembering at most `per_peer` one-time ids of each peer
    /// at once (`replay_ids_per_peer`).
    pub fn with_replay_limit(node_id: String, started_at: i64, per_peer: usize) -> Self {
        Verifier {
            node_id,
            started_at,
            seen: Mutex::new(ReplayCache {
                limit: per_peer,
                peers: HashMap::new(),
            }),
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
        self.verify_headers(authorization, peers, method, path_and_query, now)?
            .verify_body(self, body, now)
    }

    /// Every check that needs no body: the sender is a peer whose key
    /// signed the token, for this node, now, for this method and path, not
    /// seen before. What passes is a peer's request, whose body may be
    /// read; the body's digest is then checked with
    /// [`SignedHeaders::verify_body`].
    pub fn verify_headers(
        &self,
        authorization: Option<&str>,
        peers: &Peers,
        method: &str,
        path_and_query: &str,
        now: i64,
    ) -> Result<SignedHeaders, SignedRequestError> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(SignedRequestError::Unsigned)?;
        let (sender, claims, rotation) = decode_signed::<RequestClaims>(token, peers, now)?;
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
        if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_CHARS {
            return Err(SignedRequestError::Malformed(format!(
                "`jti` must be 1 to {MAX_JTI_CHARS} characters"
            )));
        }
        // Only looked at here: the id is spent once the body checks out.
        let mut seen = self.seen.lock();
        if seen.contains(&claims.iss, &claims.jti) {
            return Err(SignedRequestError::Replayed);
        }
        // A peer with as many requests in force as it may have is refused
        // before its body is read.
        if !seen.has_room(&claims.iss, now) {
            return Err(SignedRequestError::TooManyPending);
        }
        drop(seen);
        Ok(SignedHeaders { claims, rotation })
    }
}

/// A request whose signature, sender, audience, times, method and path
/// checked out; its body is still to be read and matched.
#[derive(Debug)]
pub struct SignedHeaders {
    claims: RequestClaims,
    rotation: Option<Rotation>,
}

impl SignedHeaders {
    /// The peer that signed it (its key verified).
    pub fn peer(&self) -> &str {
        &self.claims.iss
    }

    /// The request, if `body` is what was signed and its one-time id is
    /// still unused (spending it).
    pub fn verify_body(
        self,
        verifier: &Verifier,
        body: &[u8],
        now: i64,
    ) -> Result<SignedBy, SignedRequestError> {
        let SignedHeaders { claims, rotation } = self;
        if claims.bdy != body_digest(body) {
            return Err(SignedRequestError::Mismatch("body"));
        }
        verifier
            .seen
            .lock()
            .insert(&claims.iss, claims.jti, claims.exp, now)?;
        Ok(SignedBy {
            peer: claims.iss,
            authors: claims.act,
            rotation,
        })
    }
}

/// A signed request's token that jsonwebtoken could not read or check, in
/// our words (its own name serde and base64 errors); its text is logged.
fn malformed(e: &jsonwebtoken::errors::Error) -> SignedRequestError {
    use jsonwebtoken::errors::ErrorKind;
    tracing::debug!(error = %e, "signed request's token refused");
    SignedRequestError::Malformed(
        match e.kind() {
            ErrorKind::ExpiredSignature => "the token has expired",
            ErrorKind::ImmatureSignature => "the token is not valid yet",
            ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                "nodes sign with EdDSA"
            }
            _ => "the token is not a readable JWT of a signed request",
        }
        .into(),
    )
}

/// Decodes an EdDSA JWT signed by the peer its `kid` names, with that
/// peer's key (the current one, a rotated-away one within its grace, or a
/// new one its current key vouches for in `rot`); answers the peer, the
/// claims and the rotation if one was shown (times, audience and `iss` are
/// the caller's to check).
fn decode_signed<C: serde::de::DeserializeOwned>(
    token: &str,
    peers: &Peers,
    now: i64,
) -> Result<(String, C, Option<Rotation>), SignedRequestError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| malformed(&e))?;
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
    let bad_signature = || SignedRequestError::BadSignature(sender.clone());
    match decode_with::<C>(token, key) {
        Ok(claims) => return Ok((sender, claims, None)),
        Err(e) if e.kind() != &jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            return Err(malformed(&e))
        }
        Err(_) => {}
    }
    if let Some(previous) = peers.previous_key(&sender, now) {
        if let Ok(claims) = decode_with::<C>(token, previous) {
            return Ok((sender, claims, None));
        }
    }
    let Some(statement) = rotation_statement(token) else {
        return Err(bad_signature());
    };
    let from_key = peers.current_key(&sender).unwrap_or_default().to_string();
    let rotation = verify_rotation(&statement, &sender, key, from_key, now)?;
    let new_key = crate::peers::decoding_key(&sender, &rotation.to_key)
        .map_err(SignedRequestError::RotationRefused)?;
    let claims = decode_with::<C>(token, &new_key).map_err(|_| bad_signature())?;
    Ok((sender, claims, Some(rotation)))
}

/// The claims of an EdDSA JWT signed with `key` (no claim checked here).
fn decode_with<C: serde::de::DeserializeOwned>(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
) -> Result<C, jsonwebtoken::errors::Error> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<C>(token, key, &validation).map(|data| data.claims)
}

/// The `rot` claim of a token whose signature is not yet known good: only
/// ever checked on its own before the token is.
fn rotation_statement(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Rot {
        rot: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Rot>(&bytes).ok()?.rot
}

/// Checks that `sender`'s current key (`key`, base64url `from_key`) signed
/// `statement`, naming a successor, and that the statement is in force.
fn verify_rotation(
    statement: &str,
    sender: &str,
    key: &jsonwebtoken::DecodingKey,
    from_key: String,
    now: i64,
) -> Result<Rotation, SignedRequestError> {
    let refused = |why: &str| SignedRequestError::RotationRefused(why.to_string());
    let header = jsonwebtoken::decode_header(statement).map_err(|e| {
        tracing::debug!(error = %e, "rotation statement unreadable");
        refused("not a readable JWT")
    })?;
    if header.alg != Algorithm::EdDSA || header.kid.as_deref() != Some(sender) {
        return Err(refused("not an EdDSA statement by the sender"));
    }
    let claims: RotationClaims = decode_with(statement, key).map_err(|_| {
        refused(&format!(
            "not signed by the key this node holds for `{sender}`"
        ))
    })?;
    if claims.typ != ROTATION_TYPE || claims.iss != sender {
        return Err(refused("not a key rotation of the sender"));
    }
    if claims.iat > now + CLOCK_SKEW_SECS
        || claims.exp <= claims.iat
        || claims.exp - claims.iat > MAX_GRACE_SECS
    {
        return Err(refused("its times are out of bounds"));
    }
    if claims.exp < now {
        return Err(refused("its grace period is over"));
    }
    Ok(Rotation {
        from_key,
        to_key: claims.key,
        until: claims.exp,
        statement: statement.to_string(),
    })
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
    /// The SHA-256 of the family's live grants the handover carries
    /// ([`wrapsync_shared::api::grants_digest`]): the old home's signature over them, so the new
    /// home believes only the grants the old home gave. A digest, not the
    /// grants: the certificate is shown to every replica holder, which
    /// must not learn who else the plan is shared with. Absent from
    /// certificates of releases before issue 22 (their grants are not
    /// believed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gdg: Option<String>,
}

/// A verified move of a plan's home.
#[derive(Debug, PartialEq)]
pub struct Move {
    pub from: String,
    pub to: String,
    /// When it was certified (Unix seconds).
    pub at: i64,
    /// The digest of the grants the old home signed with it, if any.
    pub grants: Option<String>,
}

impl RequestSigner {
    /// Certifies that `plan` moves from this node to `to`, signing the
    /// digest of the grants that go with it (`grants`, see
    /// [`wrapsync_shared::api::grants_digest`]).
    pub fn certify_transfer(
        &self,
        plan: &str,
        to: &str,
        grants: Option<String>,
        now: i64,
    ) -> Result<String, String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.node_id.clone());
        let claims = TransferClaims {
            iss: self.node_id.clone(),
            sub: plan.to_string(),
            home: to.to_string(),
            iat: now,
            gdg: grants,
        };
        jsonwebtoken::encode(&header, &claims, self.identity().key.encoding_key())
            .map_err(|e| e.to_string())
    }

    /// The home's signed word that the family consented to share `plan`
    /// with node `to` (`by`: who recorded it, `name@node`; `until`: the
    /// grant's expiry, Unix seconds): what a node needs before it makes a
    /// replica of a plan it never held.
    pub fn certify_consent(
        &self,
        plan: &str,
        to: &str,
        by: &str,
        until: Option<i64>,
        now: i64,
    ) -> Result<String, String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.node_id.clone());
        let claims = ConsentClaims {
            typ: CONSENT_TYPE.into(),
            iss: self.node_id.clone(),
            sub: plan.to_string(),
            aud: to.to_string(),
            by: by.to_string(),
            iat: now,
            until,
        };
        jsonwebtoken::encode(&header, &claims, self.identity().key.encoding_key())
            .map_err(|e| e.to_string())
    }
}

/// The `typ` of a consent statement.
pub const CONSENT_TYPE: &str = "wrapsync-consent";

/// A home's statement that a family consented to share a plan with one
/// node. It rides with the transfer certificates of a push (the
/// `Wrapsync-Transfers` header, a batch item's `transfers`), where
/// releases before issue 22 skip what is not a certificate.
#[derive(Debug, Serialize, Deserialize)]
struct ConsentClaims {
    typ: String,
    iss: String,
    /// The plan.
    sub: String,
    /// The node the family consented to share it with.
    aud: String,
    /// Who recorded the consent, `name@node`.
    by: String,
    iat: i64,
    /// When the consent ends (Unix seconds), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
}

/// A verified consent statement.
#[derive(Debug, PartialEq)]
pub struct Consent {
    pub home: String,
    pub to: String,
    pub by: String,
    pub until: Option<i64>,
}

/// The consent statement among `statements` (comma-separated, as a push
/// carries them) by which `home` shares `plan` with `me`, live at `now`
/// (Unix seconds), if one verifies.
pub fn find_consent(
    statements: &str,
    peers: &Peers,
    plan: &str,
    home: &str,
    me: &str,
    now: i64,
) -> Option<Consent> {
    statements
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .take(MAX_STATEMENTS)
        .find_map(|statement| {
            verify_consent(statement, peers, plan, now)
                .ok()
                .filter(|c| c.home == home && c.to == me)
        })
}

/// The most statements a push's list is searched through.
const MAX_STATEMENTS: usize = 32;

/// Checks a consent statement for `plan`, signed by the home it names,
/// in force at `now`.
pub fn verify_consent(
    statement: &str,
    peers: &Peers,
    plan: &str,
    now: i64,
) -> Result<Consent, SignedRequestError> {
    let (home, claims, _) = decode_signed::<ConsentClaims>(statement, peers, now)?;
    if claims.typ != CONSENT_TYPE || claims.iss != home {
        return Err(SignedRequestError::Malformed(
            "not a consent statement of its signer".into(),
        ));
    }
    if claims.sub != plan {
        return Err(SignedRequestError::Mismatch("plan"));
    }
    if claims.iat > now + CLOCK_SKEW_SECS || claims.until.is_some_and(|until| until <= now) {
        return Err(SignedRequestError::Stale);
    }
    match claims.by.split_once('@') {
        Some((name, node)) if !name.is_empty() && !node.is_empty() => {}
        _ => {
            return Err(SignedRequestError::Malformed(
                "the consent must name who recorded it as name@node".into(),
            ))
        }
    }
    Ok(Consent {
        home,
        to: claims.aud,
        by: claims.by,
        until: claims.until,
    })
}

/// Checks a transfer certificate for `plan`, signed by the peer it names
/// as the old home.
pub fn verify_transfer(
    certificate: &str,
    peers: &Peers,
    plan: &str,
) -> Result<Move, SignedRequestError> {
    let now = crate::db::now_ms() / 1000;
    let (from, claims, _) = decode_signed::<TransferClaims>(certificate, peers, now)?;
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
        grants: claims.gdg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::Peer;

    const NOW: i64 = 1_800_000_000;

    fn node(id: &str) -> (RequestSigner, Peer) {
        let key = NodeKey::generate().unwrap_or_else(|e| panic!("{e}"));
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
            NodeKey::generate().unwrap_or_else(|e| panic!("{e}")),
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
    fn the_headers_are_checked_without_the_body_and_the_body_after() {
        let (b, peer_b) = node("county-b");
        let peers = Peers::new(&[peer_b]).unwrap_or_else(|e| panic!("{e}"));
        let a = Verifier::new("county-a".into(), NOW - 100);
        let path = "/federation/v1/sync";
        let auth = b
            .sign("county-a", "POST", path, b"body", BTreeMap::new(), NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        let headers = |auth: &str| a.verify_headers(Some(auth), &peers, "POST", path, NOW);
        let checked = headers(&auth).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked.peer(), "county-b");
        // A body other than the one signed does not spend the id...
        assert_eq!(
            checked.verify_body(&a, b"other", NOW),
            Err(SignedRequestError::Mismatch("body"))
        );
        let checked = headers(&auth).unwrap_or_else(|e| panic!("{e}"));
        assert!(checked.verify_body(&a, b"body", NOW).is_ok());
        // ...the signed one does, and a replay is refused from its headers.
        assert_eq!(
            headers(&auth).map(|h| h.peer().to_string()),
            Err(SignedRequestError::Replayed)
        );
        assert_eq!(
            a.verify_headers(None, &peers, "POST", path, NOW)
                .map(|h| h.peer().to_string()),
            Err(SignedRequestError::Unsigned)
        );
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
    fn a_new_key_is_taken_on_the_old_keys_word_and_the_old_key_holds_only_through_its_grace() {
        use crate::federation::identity::{self, Identity};
        use crate::peers::KeyRotation;
        let load =
            |dir: &std::path::Path| Identity::load(dir, NOW).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let before = load(dir.path());
        let peer_a = Peer {
            id: "county-a".into(),
            url: "http://a.example".into(),
            public_key: before.key.public_key().to_string(),
        };
        let (old_key, new_key) =
            identity::rotate(dir.path(), "county-a", 60, NOW).unwrap_or_else(|e| panic!("{e}"));
        let old = RequestSigner::with_identity("county-a".into(), before);
        let new = RequestSigner::with_identity("county-a".into(), load(dir.path()));
        let bare = RequestSigner::with_identity(
            "county-a".into(),
            Identity {
                key: load(dir.path()).key,
                rotation: None,
            },
        );
        let b = Verifier::new("county-b".into(), NOW - 100);
        let path = "/federation/v1/sync";
        let check = |signer: &RequestSigner, peers: &Peers, at: i64| {
            let auth = signer
                .sign("county-b", "POST", path, b"x", BTreeMap::new(), at)
                .unwrap_or_else(|e| panic!("{e}"));
            b.verify(Some(&auth), peers, "POST", path, b"x", at)
        };
        use SignedRequestError::*;
        // B holds the old key: the statement carries the new one in.
        let holding_old =
            Peers::new(std::slice::from_ref(&peer_a)).unwrap_or_else(|e| panic!("{e}"));
        let rotation = check(&new, &holding_old, NOW)
            .map(|s| s.rotation)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no rotation"));
        assert_eq!(
            (
                rotation.from_key.as_str(),
                rotation.to_key.as_str(),
                rotation.until
            ),
            (old_key.as_str(), new_key.as_str(), NOW + 60)
        );
        assert_eq!(
            check(&bare, &holding_old, NOW),
            Err(BadSignature("county-a".into()))
        );
        assert!(check(&old, &holding_old, NOW).is_ok());
        // Past its grace the statement is not carried, so it proves nothing.
        assert_eq!(
            check(&new, &holding_old, NOW + 61),
            Err(BadSignature("county-a".into()))
        );
        // B learnt the new key: it holds, and the old one until the deadline.
        let learnt = Peers::new(std::slice::from_ref(&peer_a))
            .unwrap_or_else(|e| panic!("{e}"))
            .with_rotations(vec![KeyRotation {
                peer_id: "county-a".into(),
                from_key: old_key.clone(),
                public_key: new_key.clone(),
                previous_key: old_key.clone(),
                previous_until: NOW + 60,
                statement: rotation.statement.clone(),
                accepted_at: NOW,
            }]);
        assert_eq!(learnt.current_key("county-a"), Some(new_key.as_str()));
        assert_eq!(check(&new, &learnt, NOW).map(|s| s.rotation), Ok(None));
        assert!(check(&bare, &learnt, NOW + 61).is_ok());
        assert!(check(&old, &learnt, NOW + 60).is_ok());
        assert_eq!(
            check(&old, &learnt, NOW + 61),
            Err(BadSignature("county-a".into()))
        );
        // An operator who sets the key by hand overrides what was learnt.
        let reset = Peers::new(&[Peer {
            public_key: new_key.clone(),
            ..peer_a.clone()
        }])
        .unwrap_or_else(|e| panic!("{e}"))
        .with_rotations(learnt.rotations().to_vec());
        assert!(reset.rotation("county-a").is_none());
        assert!(check(&old, &reset, NOW).is_err());
        // A statement another key signed for county-a moves nothing.
        let mallory = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        load(mallory.path());
        identity::rotate(mallory.path(), "county-a", 60, NOW).unwrap_or_else(|e| panic!("{e}"));
        let forged = RequestSigner::with_identity("county-a".into(), load(mallory.path()));
        assert!(matches!(
            check(&forged, &holding_old, NOW),
            Err(RotationRefused(_))
        ));
        assert!(matches!(
            check(&forged, &learnt, NOW),
            Err(RotationRefused(_))
        ));
    }

    #[test]
    fn a_transfer_certificate_verifies_only_for_its_plan_and_its_signer() {
        let (a, peer_a) = node("county-a");
        let (mallory, peer_m) = node("county-m");
        let peers = Peers::new(&[peer_a]).unwrap_or_else(|e| panic!("{e}"));
        let cert = a
            .certify_transfer("P1", "county-b", Some("digest".into()), NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_transfer(&cert, &peers, "P1"),
            Ok(Move {
                from: "county-a".into(),
                to: "county-b".into(),
                at: NOW,
                grants: Some("digest".into()),
            })
        );
        assert_eq!(
            verify_transfer(&cert, &peers, "P2"),
            Err(SignedRequestError::Mismatch("plan"))
        );
        // Mallory signing as county-a (its own key, county-a's kid).
        let forged = RequestSigner {
            node_id: "county-a".into(),
            identity: mallory.identity.clone(),
        }
        .certify_transfer("P1", "county-m", None, NOW)
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_transfer(&forged, &peers, "P1"),
            Err(SignedRequestError::BadSignature("county-a".into()))
        );
        let unknown = mallory
            .certify_transfer("P1", "county-m", None, NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_transfer(&unknown, &peers, "P1"),
            Err(SignedRequestError::UnknownPeer(peer_m.id))
        );
        assert!(verify_transfer("not a jwt", &peers, "P1").is_err());
    }

    #[test]
    fn one_time_ids_are_pruned_by_expiry_and_bounded_per_peer() {
        let (b, peer_b) = node("county-b");
        let (c, peer_c) = node("county-c");
        let peers = Peers::new(&[peer_b, peer_c]).unwrap_or_else(|e| panic!("{e}"));
        let a = Verifier::with_replay_limit("county-a".into(), NOW - 100, 3);
        let path = "/federation/v1/sync";
        let send = |signer: &RequestSigner, at: i64| {
            let auth = signer
                .sign("county-a", "POST", path, b"x", BTreeMap::new(), at)
                .unwrap_or_else(|e| panic!("{e}"));
            a.verify(Some(&auth), &peers, "POST", path, b"x", at)
                .map(|s| s.peer)
        };
        for _ in 0..3 {
            assert!(send(&b, NOW).is_ok());
        }
        // County-b's ids fill its share: refused until some expire...
        assert_eq!(send(&b, NOW), Err(SignedRequestError::TooManyPending));
        // ...which does not touch county-c's.
        assert!(send(&c, NOW).is_ok());
        assert_eq!(a.seen.lock().len("county-b"), 3);
        // Signed for a minute; gone once past it and the skew, without the
        // cache being full.
        assert!(send(&b, NOW + 91).is_ok());
        assert_eq!(a.seen.lock().len("county-b"), 1);
        assert!(send(&c, NOW + 91).is_ok());
        assert_eq!(a.seen.lock().len("county-c"), 1);
        // An overlong one-time id is refused, not remembered.
        let mut claims = serde_json::json!({
            "iss": "county-b", "aud": "county-a", "iat": NOW + 91, "exp": NOW + 151,
            "jti": "j".repeat(MAX_JTI_CHARS + 1), "htm": "POST", "htu": path,
            "bdy": body_digest(b"x"),
        });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("county-b".into());
        let long = jsonwebtoken::encode(&header, &claims, b.identity().key.encoding_key())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            a.verify(
                Some(&format!("Bearer {long}")),
                &peers,
                "POST",
                path,
                b"x",
                NOW + 91
            ),
            Err(SignedRequestError::Malformed(_))
        ));
        claims["jti"] = "".into();
        let empty = jsonwebtoken::encode(&header, &claims, b.identity().key.encoding_key())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            a.verify(
                Some(&format!("Bearer {empty}")),
                &peers,
                "POST",
                path,
                b"x",
                NOW + 91
            ),
            Err(SignedRequestError::Malformed(_))
        ));
    }

    #[test]
    fn a_consent_statement_verifies_only_for_its_plan_node_and_signer_while_live() {
        let (b, peer_b) = node("county-b");
        let (mallory, peer_m) = node("county-m");
        let peers = Peers::new(&[peer_b, peer_m]).unwrap_or_else(|e| panic!("{e}"));
        let sign = |s: &RequestSigner, to: &str, by: &str, until: Option<i64>| {
            s.certify_consent("P1", to, by, until, NOW)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let good = sign(&b, "county-a", "carla@county-b", Some(NOW + 10));
        let found = |list: &str, now: i64| {
            find_consent(list, &peers, "P1", "county-b", "county-a", now).map(|c| c.by)
        };
        assert_eq!(found(&good, NOW), Some("carla@county-b".into()));
        // Among transfer certificates, as a push carries it.
        let cert = b
            .certify_transfer("P1", "county-a", None, NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            found(&format!("{cert},{good}"), NOW),
            Some("carla@county-b".into())
        );
        assert!(verify_transfer(&good, &peers, "P1").is_err());
        assert!(verify_consent(&cert, &peers, "P1", NOW).is_err());
        // Expired; for another node; another plan; signed by another peer;
        // by a plain name.
        assert_eq!(found(&good, NOW + 10), None);
        assert_eq!(
            found(&sign(&b, "county-c", "carla@county-b", None), NOW),
            None
        );
        assert!(verify_consent(&good, &peers, "P2", NOW).is_err());
        assert_eq!(
            found(&sign(&mallory, "county-a", "m@county-m", None), NOW),
            None
        );
        assert_eq!(found(&sign(&b, "county-a", "carla", None), NOW), None);
        assert_eq!(found("garbage,,", NOW), None);
    }
}
