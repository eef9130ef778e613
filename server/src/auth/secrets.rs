//! Where the access-token secrets come from, and their rotation.
//!
//! The current secret is `jwt_secret` from the config, else one generated
//! into `data_dir/jwt_secret`. Previous secrets, still accepted, are the
//! config's `jwt_previous_secrets` (until the operator removes them) and
//! those `wrapsync keys rotate-jwt` retired into `data_dir/jwt_secret.previous`
//! (one `RETIRED_AT SECRET` a line, each until its last token has expired).

use super::tokens::{PreviousSecret, LEEWAY_SECS};
use crate::config::Config;
use std::path::{Path, PathBuf};

/// The generated current secret, in `data_dir`.
pub const SECRET_FILE: &str = "jwt_secret";
/// Generated secrets retired by `rotate-jwt`, in `data_dir`.
pub const PREVIOUS_FILE: &str = "jwt_secret.previous";

/// The current secret and the previous ones still accepted.
pub fn load(config: &Config) -> Result<(Vec<u8>, Vec<PreviousSecret>), String> {
    let current = match &config.jwt_secret {
        Some(secret) => secret.clone().into_bytes(),
        None => load_or_make(&config.data_dir.join(SECRET_FILE))?,
    };
    let mut previous: Vec<PreviousSecret> = config
        .jwt_previous_secrets
        .iter()
        .map(|secret| PreviousSecret {
            secret: secret.clone().into_bytes(),
            until: None,
        })
        .collect();
    let now = super::tokens::unix_now();
    previous.extend(
        retired(&config.data_dir.join(PREVIOUS_FILE))?
            .into_iter()
            .map(|(at, secret)| PreviousSecret {
                secret,
                until: Some(at + config.access_token_ttl_secs + LEEWAY_SECS),
            })
            .filter(|p| p.until.is_some_and(|until| until >= now)),
    );
    Ok((current, previous))
}

/// Retires the generated secret (kept as previous until the tokens it
/// signed expire) and makes a new one; answers the new one's `kid`. The
/// running node takes it up on SIGHUP. A secret set in the config is the
/// operator's to rotate there.
pub fn rotate(config: &Config) -> Result<String, String> {
    if config.jwt_secret.is_some() {
        return Err(
            "jwt_secret is set in the config: rotate it there (the old value \
                    into jwt_previous_secrets, a new jwt_secret), then SIGHUP the node"
                .into(),
        );
    }
    let current_path = config.data_dir.join(SECRET_FILE);
    let current = load_or_make(&current_path)?;
    let previous_path = config.data_dir.join(PREVIOUS_FILE);
    let now = super::tokens::unix_now();
    let horizon = config.access_token_ttl_secs + LEEWAY_SECS;
    let mut lines: Vec<String> = retired(&previous_path)?
        .into_iter()
        .filter(|(at, _)| at + horizon >= now)
        .map(|(at, secret)| format!("{at} {}", String::from_utf8_lossy(&secret)))
        .collect();
    lines.push(format!("{now} {}", String::from_utf8_lossy(&current)));
    // The old secret is kept as previous before the new one replaces it: a
    // crash between the two leaves it current and previous, never lost.
    write(&previous_path, format!("{}\n", lines.join("\n")).as_bytes())?;
    let fresh = new_secret();
    write(&current_path, &fresh)?;
    Ok(super::tokens::key_id(&fresh))
}

fn new_secret() -> Vec<u8> {
    hex::encode(rand::random::<[u8; 32]>()).into_bytes()
}

fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    crate::files::write_private(path, data)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A secret kept in a file only its owner can read, made on first start.
fn load_or_make(path: &Path) -> Result<Vec<u8>, String> {
    if let Ok(secret) = std::fs::read(path) {
        if secret.len() >= 32 {
            return Ok(secret);
        }
    }
    let secret = new_secret();
    write(path, &secret)?;
    Ok(secret)
}

/// The lines of the previous-secrets file: (retired at, secret).
fn retired(path: &PathBuf) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split_once(' ')
                .and_then(|(at, secret)| {
                    Some((at.parse().ok()?, secret.trim().as_bytes().to_vec()))
                })
                .ok_or_else(|| format!("{}: a line is not `RETIRED_AT SECRET`", path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, extra: &str) -> Config {
        let text = format!(
            "node_id = \"county-a\"\ndata_dir = \"{}\"\n{extra}",
            dir.display()
        );
        let file = dir.join("node.toml");
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        Config::load(Some(&file), std::iter::empty()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rotating_keeps_the_old_secret_as_previous_until_its_tokens_expire() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = config(dir.path(), "");
        let (first, none) = load(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(none.is_empty());
        let kid = rotate(&config).unwrap_or_else(|e| panic!("{e}"));
        let (second, previous) = load(&config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(super::super::tokens::key_id(&second), kid);
        assert_ne!(first, second);
        assert_eq!(previous.len(), 1);
        assert_eq!(previous[0].secret, first);
        assert!(previous[0].until.is_some());
        // A secret retired longer ago than a token lives is dropped.
        std::fs::write(
            dir.path().join(PREVIOUS_FILE),
            format!("1000 {}\n", String::from_utf8_lossy(&first)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (_, previous) = load(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(previous.is_empty());
        std::fs::write(dir.path().join(PREVIOUS_FILE), "garbage\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(load(&config).is_err());
    }

    #[test]
    fn a_configured_secret_is_rotated_in_the_config() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = config(
            dir.path(),
            "jwt_secret = \"new-secret-of-enough-length-0123456\"\njwt_previous_secrets = [\"old-secret-of-enough-length-012345\"]\n",
        );
        assert!(rotate(&config).is_err());
        let (current, previous) = load(&config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(current, b"new-secret-of-enough-length-0123456");
        assert_eq!(previous.len(), 1);
        assert_eq!(previous[0].until, None);
    }
}
