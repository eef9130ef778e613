//! Crafting access tokens the node must refuse: expired, forged, `alg: none`,
//! signed under another algorithm, with a header that lies, with a flipped
//! signature.
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
    sign_hmac(&Header::new(Algorithm::HS256), claims, secret)
}

/// Signs `claims` with `secret` under `header` and its HMAC algorithm
/// (`HS256`, `HS384`, `HS512`): a real signature, so a node that pins
/// another algorithm or a key pair refuses it only for the algorithm.
pub fn sign_hmac(header: &Header, claims: &Map<String, Value>, secret: &str) -> Result<String> {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret.as_bytes()))
        .context(|| "signing a JWT".to_string())
}

/// `token` with its header replaced by `header` (payload and signature
/// kept): a header that names another algorithm or key than was used.
pub fn with_header(token: &str, header: &Value) -> String {
    let rest = token.split_once('.').map_or("", |(_, rest)| rest);
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// `token` with the last byte of its signature flipped (decoded, so the
/// signature is still well-formed base64url and only wrong).
pub fn flip_signature(token: &str) -> Result<String> {
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| HarnessError::new(format!("not a JWT: {token}")))?;
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .context(|| "decoding a JWT signature".to_string())?;
    let last = bytes
        .last_mut()
        .ok_or_else(|| HarnessError::new("an empty JWT signature".to_string()))?;
    *last ^= 0x01;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes)))
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
