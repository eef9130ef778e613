//! The hub's configuration: a TOML file, then `WRAPSYNC_<KEY>` environment
//! overrides, checked once at start (the node's conventions, its own keys).

use crate::config::{is_node_id, ConfigError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A community the state office enrolled: only these may submit reports
/// or register a URL.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrolledNode {
    /// The node id it signs as.
    pub id: String,
    /// Its Ed25519 public key, base64url (its `GET /federation/v1/identity`).
    pub public_key: String,
}

/// Everything a hub needs to run. Unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The hub's id: what nodes name as the destination of their signed
    /// requests.
    pub hub_id: String,
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the hub keeps its files (default database and key).
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL, else a SQLite file path. Default:
    /// `data_dir/hub.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// The hub's Ed25519 key (PKCS#8 PEM), made on first start. Default:
    /// `data_dir/hub_key.pem`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes (a report of the most cells
    /// allowed is about 200 KB of JSON).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The slowest a body may arrive on average (the node's setting of
    /// the same name): whole within 30 s plus its length at this rate, else
    /// `408`. Default 64 KiB/s.
    #[serde(default = "default_body_min_rate")]
    pub body_min_bytes_per_sec: u64,
    /// Body bytes all requests being read may hold together; over it,
    /// `503 busy`. Default 64 MiB; at least `max_body_bytes`.
    #[serde(default = "default_max_buffered")]
    pub max_buffered_body_bytes: usize,
    /// HTTP worker threads; default: one per core.
    #[serde(default)]
    pub workers: Option<usize>,
    /// A file holding the bearer token `GET /metrics` then asks for (at
    /// least 16 characters). None: metrics are open (counts and route
    /// patterns only); keep `/metrics` off the public side of the proxy.
    #[serde(default)]
    pub metrics_token_file: Option<PathBuf>,
    /// `text` (default) or `json` log lines on stderr.
    #[serde(default)]
    pub log_format: crate::observe::LogFormat,
    /// A file the hub appends its log lines to (created owner-only)
    /// instead of stderr. None: stderr.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// The communities enrolled (`[[nodes]]` with `id`, `public_key`).
    #[serde(default)]
    pub nodes: Vec<EnrolledNode>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}

fn default_max_body() -> usize {
    512 * 1024
}

fn default_body_min_rate() -> u64 {
    64 * 1024
}

fn default_max_buffered() -> usize {
    64 << 20
}

/// The keys that environment variables may override.
const KEYS: &[&str] = &[
    "hub_id",
    "listen",
    "data_dir",
    "database_url",
    "key_file",
    "max_body_bytes",
    "body_min_bytes_per_sec",
    "max_buffered_body_bytes",
    "workers",
    "log_format",
    "log_file",
    "metrics_token_file",
];

impl HubConfig {
    /// Reads `path` (if given) and applies `WRAPSYNC_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<HubConfig, ConfigError> {
        let mut table = crate::config::read_table(path)?;
        for (name, value) in env {
            let Some(key) = name.strip_prefix("WRAPSYNC_").map(str::to_ascii_lowercase) else {
                continue;
            };
            if KEYS.contains(&key.as_str()) {
                table.insert(key, crate::config::env_value(value));
            }
        }
        let config: HubConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !is_node_id(&self.hub_id) {
            return Err(ConfigError::Invalid(
                "hub_id must be 1-64 letters, digits, - or _".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        if self.body_min_bytes_per_sec == 0 || self.max_buffered_body_bytes < self.max_body_bytes {
            return Err(ConfigError::Invalid(
                "body_min_bytes_per_sec must be positive and max_buffered_body_bytes at least \
                 max_body_bytes"
                    .into(),
            ));
        }
        if self.nodes.iter().any(|n| n.id == self.hub_id) {
            return Err(ConfigError::Invalid(
                "a node cannot have the hub's id".into(),
            ));
        }
        crate::federation::Peers::enrolled(
            self.nodes
                .iter()
                .map(|n| (n.id.as_str(), n.public_key.as_str())),
        )
        .map_err(ConfigError::Invalid)?;
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("hub.db").to_string_lossy().into_owned())
    }

    pub fn key_file(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("hub_key.pem"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        file
    }

    const KEY: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn a_hub_config_is_checked_and_overridden() {
        let file = write(&format!(
            "hub_id = \"state\"\ndata_dir = \"/tmp/h\"\n[[nodes]]\nid = \"county-a\"\npublic_key = \"{KEY}\"\n"
        ));
        let env = vec![("WRAPSYNC_MAX_BODY_BYTES".to_string(), "4096".to_string())];
        let config =
            HubConfig::load(Some(file.path()), env.into_iter()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.max_body_bytes, 4096);
        assert_eq!(config.database_url(), "/tmp/h/hub.db");
        assert_eq!(config.key_file(), PathBuf::from("/tmp/h/hub_key.pem"));
        assert_eq!(config.nodes.len(), 1);
        for bad in [
            "hub_id = \"state\"\ndata_dir = \"/x\"\nnode_id = \"a\"\n".to_string(),
            "hub_id = \"st ate\"\ndata_dir = \"/x\"\n".to_string(),
            "hub_id = \"state\"\ndata_dir = \"/x\"\n[[nodes]]\nid = \"a\"\npublic_key = \"nope\"\n"
                .to_string(),
            format!("hub_id = \"state\"\ndata_dir = \"/x\"\n[[nodes]]\nid = \"a\"\npublic_key = \"{KEY}\"\n[[nodes]]\nid = \"a\"\npublic_key = \"{KEY}\"\n"),
            format!("hub_id = \"state\"\ndata_dir = \"/x\"\n[[nodes]]\nid = \"a\"\npublic_key = \"{KEY}\"\nurl = \"http://a\"\n"),
        ] {
            let file = write(&bad);
            assert!(HubConfig::load(Some(file.path()), std::iter::empty()).is_err(), "{bad}");
        }
    }
}
