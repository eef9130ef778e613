//! Access tokens: HS256 JWTs made and checked with jsonwebtoken. One pinned
//! algorithm (so `alg: none` and algorithm swaps fail), `exp`, `iat`, `iss`,
//! `aud` and `sub` required, and an explicit leeway for clock skew.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use wrapsync_shared::roles::Role;

/// Audience of tokens for the mobile API.
pub const AUDIENCE: &str = "wrapsync-api";
/// Seconds of clock skew tolerated between phones and the node.
pub const LEEWAY_SECS: u64 = 30;

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

/// The node's signing key and the one validation rule set.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl_secs: u64,
}

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: String, ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer,
            ttl_secs,
        }
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
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| e.to_string())
    }

    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| e.to_string())?;
        if data.claims.iat > unix_now() + LEEWAY_SECS {
            return Err("token issued in the future".into());
        }
        Ok(data.claims)
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
}
