//! The node's Ed25519 key pair: made by `wrapsync keygen` or on first start,
//! kept as PKCS#8 PEM in the data directory (readable by its owner only).
//! Its public half, with the node id, is what peers and the hub trust.

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::EncodingKey;
use std::path::Path;

pub const KEY_FILE: &str = "node_key.pem";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
    #[error("{0} is not an Ed25519 private key in PKCS#8 PEM: {1}")]
    Invalid(String, String),
    #[error("{0} exists: not replacing a node's identity (move it away first)")]
    Exists(String),
}

pub struct NodeKey {
    signing: SigningKey,
    encoding: EncodingKey,
    public_key: String,
}

impl NodeKey {
    /// A fresh random key (not yet kept anywhere).
    pub fn generate() -> Result<NodeKey, KeyError> {
        let seed: [u8; 32] = rand::random();
        NodeKey::from_signing(SigningKey::from_bytes(&seed))
    }

    fn from_signing(signing: SigningKey) -> Result<NodeKey, KeyError> {
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| KeyError::Invalid("the new key".into(), e.to_string()))?;
        let public_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(signing.verifying_key().as_bytes());
        Ok(NodeKey {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            signing,
            public_key,
        })
    }

    /// The key kept at `path`, or a new one written there if none is.
    pub fn load_or_create(path: &Path) -> Result<NodeKey, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(pem) => NodeKey::from_pem(&pem, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => NodeKey::create(path),
            Err(e) => Err(KeyError::Read(path.display().to_string(), e)),
        }
    }

    /// Writes a new key to `path`, refusing to replace one.
    pub fn create(path: &Path) -> Result<NodeKey, KeyError> {
        let name = path.display().to_string();
        if path.exists() {
            return Err(KeyError::Exists(name));
        }
        let key = NodeKey::generate()?;
        let pem = key
            .signing
            .to_pkcs8_pem(Default::default())
            .map_err(|e| KeyError::Invalid(name.clone(), e.to_string()))?;
        crate::app::write_private(path, pem.as_bytes()).map_err(|e| KeyError::Write(name, e))?;
        Ok(key)
    }

    fn from_pem(pem: &str, name: &str) -> Result<NodeKey, KeyError> {
        let signing = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| KeyError::Invalid(name.to_string(), e.to_string()))?;
        NodeKey::from_signing(signing)
    }

    /// The public key, base64url without padding (a JWK's `x`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_then_kept_private_and_reloaded_the_same() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(KEY_FILE);
        let made = NodeKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let again = NodeKey::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(made.public_key(), again.public_key());
        assert_eq!(made.public_key().len(), 43, "32 bytes, base64url");
        assert!(matches!(NodeKey::create(&path), Err(KeyError::Exists(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode());
            assert_eq!(mode.map(|m| m & 0o777).ok(), Some(0o600));
        }
        std::fs::write(&path, "not a key").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            NodeKey::load_or_create(&path),
            Err(KeyError::Invalid(..))
        ));
    }
}
