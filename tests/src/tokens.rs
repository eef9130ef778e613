//! Crafting access tokens the node must refuse: expired, forged, `alg: none`.
//! We learn the real claims from a token the node issued, so the tests do not
//! hard-code what the server puts in them beyond the contract.

use crate::{Context, HarnessError, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

/// The claims (payload) of a JWT, read without checking its signature.
pub fn decode_claims(token: &str) -> Result<Map<String, Value>> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| HarnessError::new(format!("not a JWT: {token}")))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context(|| "decoding the JWT payload".to_string())?;
    serde_json::from_slice(&bytes).context(|| "parsing the JWT payload".to_string())
}

/// Signs `claims` with HS256 and `secret` (the bytes of the configured
/// `jwt_secret` string).
pub fn sign_hs256(claims: &Map<String, Value>, secret: &str) -> Result<String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .context(|| "signing a JWT".to_string())
}

/// An unsigned token (`{"alg":"none"}`, empty signature) carrying `claims`.
pub fn forge_alg_none(claims: &Map<String, Value>) -> String {
    let header = json!({ "alg": "none", "typ": "JWT" }).to_string();
    let payload = Value::Object(claims.clone()).to_string();
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}
