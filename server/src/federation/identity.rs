//! The node's Ed25519 key pair: made by `wrapsync keygen` or on first start,
//! kept as PKCS#8 PEM in the data directory (readable by its owner only).
//! Its public half, with the node id, is what peers and the hub trust.

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::EncodingKey;
use std::path::Path;

pub const KEY_FILE: &str = "node_key.pem";
/// The statement, signed by the node's previous key, that vouches for the
/// key in [`KEY_FILE`] (`wrapsync keys rotate-node`).
pub const ROTATION_FILE: &str = "node_key.rotation";
/// The longest grace a rotation may give its old key; a receiver refuses
/// statements asking for more.
pub const MAX_GRACE_SECS: i64 = 30 * 24 * 3600;

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
        key.write_pem(path)?;
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

    fn write_pem(&self, path: &Path) -> Result<(), KeyError> {
        let name = path.display().to_string();
        let pem = self
            .signing
            .to_pkcs8_pem(Default::default())
            .map_err(|e| KeyError::Invalid(name.clone(), e.to_string()))?;
        crate::files::write_private(path, pem.as_bytes()).map_err(|e| KeyError::Write(name, e))
    }
}

/// What a node's old key says about its new one: `iss`'s key is now `key`;
/// the old key stays good until `exp`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct RotationClaims {
    pub typ: String,
    pub iss: String,
    pub key: String,
    pub iat: i64,
    pub exp: i64,
}

/// The `typ` of a rotation statement (no other signed token has it).
pub const ROTATION_TYPE: &str = "wrapsync-key-rotation";

/// This node's key and, for a grace period after a rotation, the old key's
/// statement vouching for it (carried in every signed request).
pub struct Identity {
    pub key: NodeKey,
    pub rotation: Option<(String, RotationClaims)>,
}

impl Identity {
    /// The key in `data_dir` (made if there is none) and its rotation
    /// statement if one is there, for this key and not yet expired.
    pub fn load(data_dir: &Path, now: i64) -> Result<Identity, KeyError> {
        let key = NodeKey::load_or_create(&data_dir.join(KEY_FILE))?;
        let rotation = std::fs::read_to_string(data_dir.join(ROTATION_FILE))
            .ok()
            .and_then(|statement| {
                let claims = peek_rotation(statement.trim())?;
                (claims.key == key.public_key() && claims.exp > now)
                    .then(|| (statement.trim().to_string(), claims))
            });
        Ok(Identity { key, rotation })
    }

    /// The rotation statement to carry at `now`, while it lasts.
    pub fn statement(&self, now: i64) -> Option<&str> {
        self.rotation
            .as_ref()
            .filter(|(_, claims)| claims.exp > now)
            .map(|(statement, _)| statement.as_str())
    }
}

/// The claims of a rotation statement, unverified (what this node wrote).
fn peek_rotation(statement: &str) -> Option<RotationClaims> {
    let payload = statement.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Replaces the node key in `data_dir` with a new one and writes the old
/// key's statement for it, good for `grace_secs`; answers (old, new) public
/// keys. The old key is not kept: the statement is all it leaves.
pub fn rotate(
    data_dir: &Path,
    node_id: &str,
    grace_secs: i64,
    now: i64,
) -> Result<(String, String), KeyError> {
    let path = data_dir.join(KEY_FILE);
    let name = path.display().to_string();
    if !(1..=MAX_GRACE_SECS).contains(&grace_secs) {
        return Err(KeyError::Invalid(
            name,
            format!("the grace period must be 1 to {MAX_GRACE_SECS} seconds"),
        ));
    }
    let pem = std::fs::read_to_string(&path).map_err(|e| KeyError::Read(name.clone(), e))?;
    let old = NodeKey::from_pem(&pem, &name)?;
    let new = NodeKey::generate()?;
    let claims = RotationClaims {
        typ: ROTATION_TYPE.into(),
        iss: node_id.to_string(),
        key: new.public_key().to_string(),
        iat: now,
        exp: now + grace_secs,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(node_id.to_string());
    let statement = jsonwebtoken::encode(&header, &claims, old.encoding_key())
        .map_err(|e| KeyError::Invalid(name.clone(), e.to_string()))?;
    // The statement first: a crash before the key is replaced leaves a
    // statement for a key that is not this node's, which is ignored.
    crate::files::write_private(&data_dir.join(ROTATION_FILE), statement.as_bytes())
        .map_err(|e| KeyError::Write(name.clone(), e))?;
    let fresh = data_dir.join(format!("{KEY_FILE}.new"));
    new.write_pem(&fresh)?;
    std::fs::rename(&fresh, &path).map_err(|e| KeyError::Write(name, e))?;
    Ok((old.public_key().to_string(), new.public_key().to_string()))
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

    #[test]
    fn a_rotation_replaces_the_key_and_the_old_one_vouches_for_the_new() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let now = 1_800_000_000;
        let before = Identity::load(dir.path(), now).unwrap_or_else(|e| panic!("{e}"));
        assert!(before.rotation.is_none());
        assert!(rotate(dir.path(), "county-a", 0, now).is_err());
        let (old, new) = rotate(dir.path(), "county-a", 60, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old, before.key.public_key());
        let after = Identity::load(dir.path(), now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after.key.public_key(), new);
        assert!(after.statement(now).is_some());
        assert!(after.statement(now + 60).is_none());
        let (_, claims) = after
            .rotation
            .clone()
            .unwrap_or_else(|| panic!("no rotation"));
        assert_eq!(
            (claims.iss.as_str(), claims.key.as_str()),
            ("county-a", new.as_str())
        );
        // Expired, or not for the key in place: not carried.
        assert!(Identity::load(dir.path(), now + 61)
            .map(|i| i.rotation.is_none())
            .unwrap_or(false));
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap_or_else(|e| panic!("{e}"));
        assert!(Identity::load(dir.path(), now)
            .map(|i| i.rotation.is_none())
            .unwrap_or(false));
    }
}
