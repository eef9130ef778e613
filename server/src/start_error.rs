//! What stops a node or the hub at start, naming the setting or the file to
//! fix. `App::open`, `Hub::open` and `Federation::open` answer it; `main`
//! prints it and exits 1. Not an `ApiError`: nobody is being answered yet.

use crate::config::ConfigError;
use crate::db::StoreError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration as read (a file it names that cannot be read, an
    /// invalid value): the message names the setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting whose value cannot work with what is stored (peers added
    /// at run time, enrolled nodes, proxies).
    #[error("{key}: {reason}")]
    Setting { key: &'static str, reason: String },
    /// `data_dir`, or a file in it, that cannot be kept private to the
    /// service's user.
    #[error("{}: {reason}", path.display())]
    DataDir { path: PathBuf, reason: String },
    /// The database cannot be reached, migrated or read.
    #[error(transparent)]
    Database(#[from] StoreError),
    /// The node's or hub's Ed25519 key cannot be read, made or used; the
    /// reason names the file.
    #[error("{reason}")]
    KeyFile { path: PathBuf, reason: String },
    /// `federation_ca_file` cannot be read or holds no certificate.
    #[error("federation_ca_file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    /// The access-token secrets (`data_dir/jwt_secret` and the previous
    /// ones) cannot be read or made; the reason names the file.
    #[error("{0}")]
    TokenSecret(String),
    /// `metrics_token_file` cannot be read or is too short to be secret.
    #[error("metrics_token_file {}: {reason}", path.display())]
    MetricsToken { path: PathBuf, reason: String },
}

impl StartError {
    /// `dir` could not be made private (see `files::make_private`).
    pub fn data_dir(dir: &std::path::Path, error: impl std::fmt::Display) -> StartError {
        StartError::DataDir {
            path: dir.to_path_buf(),
            reason: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::config::Config;
    use std::path::Path;

    /// Why a node in `dir` with `extra` settings does not start.
    fn refusal(dir: &Path, extra: &str) -> StartError {
        let file = dir.join("node.toml");
        let text = format!(
            "node_id = \"county-a\"\ndata_dir = \"{}\"\n{extra}",
            dir.display()
        );
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        let config =
            Config::load(Some(&file), std::iter::empty()).unwrap_or_else(|e| panic!("{e}"));
        match App::open(config) {
            Ok(_) => panic!("the node started with {extra}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_missing_metrics_token_file_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.path().join("no-token");
        let error = refusal(
            dir.path(),
            &format!("metrics_token_file = \"{}\"", missing.display()),
        );
        assert!(
            matches!(&error, StartError::MetricsToken { path, .. } if *path == missing),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.starts_with("metrics_token_file "), "{message}");
        assert!(
            message.contains(&missing.display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn a_federation_ca_file_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let error = refusal(
            dir.path(),
            &format!("federation_ca_file = \"{}\"", ca.display()),
        );
        assert!(
            matches!(&error, StartError::CaFile { path, .. } if *path == ca),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with("federation_ca_file "),
            "{error}"
        );
    }
}
