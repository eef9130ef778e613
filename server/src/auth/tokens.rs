//! Access tokens: HS256 JWTs made and checked with jsonwebtoken. One pinned
//! algorithm (so `alg: none` and algorithm swaps fail), `exp`, `iat`, `iss`,
//! `aud` and `sub` required, and an explicit leeway for clock skew.
//!
//! Rotation: every token names its secret in `kid` (a fingerprint, never the
//! secret). The node signs with the current secret and also accepts the
//! previous ones it holds, each until its deadline, so swapping secrets
//! (`auth::secrets`, reloaded on SIGHUP) logs nobody out.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use wrapsync_shared::roles::Role;

/// Audience of tokens for the mobile API.
pub const AUDIENCE: &str = "wrapsync-api";
/// Seconds of clock skew tolerated on `exp` and `iat`. Set here, not left
/// to jsonwebtoken's default of 60 s: a token must die when it says it does
/// (the node's processes share one clock, and phones never check `exp`).
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    /// Login session: the device, for sync state.
    pub sid: String,
    pub name: String,
    pub role: Role,
}

/// A secret no longer signing, still accepted until `until` (Unix seconds;
/// `None`: until the operator removes it).
pub struct PreviousSecret {
    pub secret: Vec<u8>,
    pub until: Option<u64>,
}

/// The `kid` of tokens signed with `secret`: 16 hex digits of its SHA-256.
pub fn key_id(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..8])
}

struct Verifying {
    kid: String,
    key: DecodingKey,
    until: Option<u64>,
}

/// The secrets in use at one moment: one signing, all verifying.
struct Secrets {
    kid: String,
    encoding: EncodingKey,
    /// The current secret first.
    verifying: Vec<Verifying>,
}

impl Secrets {
    fn new(current: &[u8], previous: &[PreviousSecret]) -> Secrets {
        let kid = key_id(current);
        let mut verifying = vec![Verifying {
            kid: kid.clone(),
            key: DecodingKey::from_secret(current),
            until: None,
        }];
        for old in previous {
            let old_kid = key_id(&old.secret);
            if verifying.iter().all(|v| v.kid != old_kid) {
                verifying.push(Verifying {
                    kid: old_kid,
                    key: DecodingKey::from_secret(&old.secret),
                    until: old.until,
                });
            }
        }
        Secrets {
            kid,
            encoding: EncodingKey::from_secret(current),
            verifying,
        }
    }
}

/// The node's token secrets and the one validation rule set.
pub struct TokenKeys {
    secrets: RwLock<Arc<Secrets>>,
    validation: Validation,
    issuer: String,
    ttl_secs: u64,
}

impl TokenKeys {
    /// Keys signing with `secret` and accepting only it.
    pub fn new(secret: &[u8], issuer: String, ttl_secs: u64) -> Self {
        Self::with_previous(secret, &[], issuer, ttl_secs)
    }

    /// Keys signing with `current` and accepting `previous` too.
    pub fn with_previous(
        current: &[u8],
        previous: &[PreviousSecret],
        issuer: String,
        ttl_secs: u64,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        TokenKeys {
            secrets: RwLock::new(Arc::new(Secrets::new(current, previous))),
            validation,
            issuer,
            ttl_secs,
        }
    }

    /// Swaps in new secrets (a reload): tokens issued from now on carry the
    /// new current `kid`; tokens of the secrets in `previous` stay valid.
    pub fn replace(&self, current: &[u8], previous: &[PreviousSecret]) {
        *self.secrets.write() = Arc::new(Secrets::new(current, previous));
    }

    /// The `kid` new tokens carry.
    pub fn current_kid(&self) -> String {
        self.secrets.read().kid.clone()
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(
        &self,
        user_id: &str,
        username: &str,
        role: Role,
        session_id: &str,
    ) -> Result<String, String> {
        let now = unix_now();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_string(),
            exp: now + self.ttl_secs,
            iat: now,
            sid: session_id.to_string(),
            name: username.to_string(),
            role,
        };
        let secrets = self.secrets.read().clone();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(secrets.kid.clone());
        encode(&header, &claims, &secrets.encoding).map_err(|e| e.to_string())
    }

    /// The claims of a token signed with the secret its `kid` names (one
    /// the node holds and has not retired); a token without `kid` (issued
    /// before tokens carried one) must be the current secret's.
    pub fn verify(&self, token: &str) -> Result<Claims, &'static str> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|e| refusal(&e))?
            .kid;
        let secrets = self.secrets.read().clone();
        let now = unix_now();
        let key = match kid {
            None => secrets.verifying.first(),
            Some(kid) => secrets
                .verifying
                .iter()
                .find(|v| v.kid == kid && v.until.is_none_or(|until| now <= until)),
        }
        .ok_or("the token's signing key is unknown or retired")?;
        let data = decode::<Claims>(token, &key.key, &self.validation).map_err(|e| refusal(&e))?;
        if data.claims.iat > unix_now() + LEEWAY_SECS {
            return Err("the token is issued in the future");
        }
        Ok(data.claims)
    }
}

/// Why a token was refused, in our words: the library's text (serde and
/// base64 messages naming what it expected) is for the log, not a client.
fn refusal(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    tracing::debug!(error = %e, "token refused");
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
            "the token was not issued for this node"
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token is not signed with the node's algorithm"
        }
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
        _ => "the token is malformed",
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "wrapsync:test".into(),
            60,
        )
    }

    #[test]
    fn a_token_round_trips() {
        let keys = keys();
        let token = keys
            .issue("u1", "ana", Role::Caregiver, "s1")
            .unwrap_or_default();
        let claims = keys.verify(&token).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.role, Role::Caregiver);
    }

    #[test]
    fn alg_none_other_keys_and_other_issuers_are_refused() {
        let keys = keys();
        let token = keys
            .issue("u1", "ana", Role::Caregiver, "s1")
            .unwrap_or_default();
        let payload = token.split('.').nth(1).unwrap_or_default();
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{none}.{payload}.")).is_err());
        let other = TokenKeys::new(
            b"another secret of enough length!!",
            "wrapsync:test".into(),
            60,
        );
        assert!(other.verify(&token).is_err());
        let foreign = TokenKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "wrapsync:other".into(),
            60,
        );
        assert!(foreign.verify(&token).is_err());
    }

    #[test]
    fn after_a_rotation_old_tokens_hold_until_their_secret_is_retired() {
        let (old, new) = (
            b"0123456789abcdef0123456789abcdef",
            b"fedcba9876543210fedcba9876543210",
        );
        let keys = TokenKeys::new(old, "wrapsync:test".into(), 60);
        let before = keys
            .issue("u1", "ana", Role::Caregiver, "s1")
            .unwrap_or_default();
        let header = |t: &str| jsonwebtoken::decode_header(t).ok().and_then(|h| h.kid);
        assert_eq!(header(&before), Some(key_id(old)));
        let previous = |until| {
            [PreviousSecret {
                secret: old.to_vec(),
                until,
            }]
        };
        keys.replace(new, &previous(None));
        let after = keys
            .issue("u1", "ana", Role::Caregiver, "s2")
            .unwrap_or_default();
        assert_eq!(header(&after), Some(key_id(new)));
        assert!(keys.verify(&before).is_ok());
        assert!(keys.verify(&after).is_ok());
        // Past its deadline, or gone from the set, the old secret is refused.
        keys.replace(new, &previous(Some(unix_now() - 1)));
        assert!(keys.verify(&before).is_err());
        keys.replace(new, &[]);
        assert!(keys.verify(&before).is_err());
        assert!(keys.verify(&after).is_ok());
        // A `kid` may not steer a token to a key it was not signed with.
        let mut claims =
            serde_json::to_value(keys.verify(&after).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_default();
        claims["sub"] = "someone-else".into();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key_id(new));
        let forged = encode(&header, &claims, &EncodingKey::from_secret(old)).unwrap_or_default();
        assert!(keys.verify(&forged).is_err());
        // No kid: only the current secret.
        let bare = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(new),
        )
        .unwrap_or_default();
        assert!(keys.verify(&bare).is_ok());
        let bare_old = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(old),
        )
        .unwrap_or_default();
        assert!(keys.verify(&bare_old).is_err());
    }
}
