//! The hub's configuration: a TOML file, then `WRAPSYNC_<KEY>` environment
//! overrides, checked once at start (the node's conventions, its own keys).

use crate::config::ConfigError;
use crate::environment::EnvRules;
use crate::peers::is_node_id;
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
    /// The most youth it may report served in a month (and paid flexible
    /// funds in one category); default the hub's `max_youth_per_node`.
    #[serde(default)]
    pub max_youth: Option<u64>,
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
    pub log_format: crate::config::LogFormat,
    /// A file the hub appends its log lines to (created owner-only)
    /// instead of stderr. None: stderr.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// The communities enrolled (`[[nodes]]` with `id`, `public_key`,
    /// optionally `max_youth`).
    #[serde(default)]
    pub nodes: Vec<EnrolledNode>,
    /// The most youth a node may report served in a month, unless its
    /// `[[nodes]]` entry says `max_youth`; more is refused (`422
    /// report-over-ceiling`). Default 10,000.
    #[serde(default = "default_max_youth")]
    pub max_youth_per_node: u64,
    /// Signed requests (reports and URL registrations) per enrolled node
    /// (`{ per_second, burst }`), taken once the signature's headers check
    /// out and before the body is read; over it, `429 rate-limited` with
    /// `Retry-After`. Default 0.02/s (72 an hour), burst 60 (a node sends
    /// two reports an hour; the demo backfills 24 months at once).
    #[serde(default = "default_node_rate")]
    pub rate_limit_per_node: crate::limits::RateLimit,
    /// Revisions of one period by one node (`{ per_second, burst }`): a
    /// report that replaces the kept one with other cells; over it, `429
    /// report-revisions-limited`. Default one per 10 minutes, burst 6 (a
    /// node revises this month and last month once an hour).
    #[serde(default = "default_revision_rate")]
    pub rate_limit_revisions_per_period: crate::limits::RateLimit,
    /// How many enrolled nodes must have reported a month, once it is
    /// over, for it to be *complete*: the dashboard opens on the latest
    /// complete month. Default: a majority of the enrolled nodes.
    #[serde(default)]
    pub complete_period_min_nodes: Option<usize>,
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

fn default_max_youth() -> u64 {
    wrapsync_shared::plausibility::DEFAULT_MAX_YOUTH
}

fn default_node_rate() -> crate::limits::RateLimit {
    crate::limits::RateLimit {
        per_second: 0.02,
        burst: 60.0,
    }
}

fn default_revision_rate() -> crate::limits::RateLimit {
    crate::limits::RateLimit {
        per_second: 1.0 / 600.0,
        burst: 6.0,
    }
}

/// What the hub takes from `WRAPSYNC_*` variables: every key but the
/// `[[nodes]]` tables (see `environment`).
pub const ENV: EnvRules = EnvRules {
    file_only: &["nodes"],
    lists: &[],
    fractions: &[],
};

impl HubConfig {
    /// Reads `path` (if given) and applies `WRAPSYNC_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<HubConfig, ConfigError> {
        let mut table = crate::config::read_table(path)?;
        ENV.apply::<HubConfig>(&mut table, env)
            .map_err(ConfigError::Invalid)?;
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
        for (key, limit) in [
            ("rate_limit_per_node", self.rate_limit_per_node),
            (
                "rate_limit_revisions_per_period",
                self.rate_limit_revisions_per_period,
            ),
        ] {
            if crate::limits::Buckets::new(limit).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "{key}: per_second must be positive and burst at least 1"
                )));
            }
        }
        if self.max_youth_per_node == 0
            || self.nodes.iter().any(|n| n.max_youth == Some(0))
            || self.complete_period_min_nodes == Some(0)
        {
            return Err(ConfigError::Invalid(
                "max_youth_per_node, max_youth and complete_period_min_nodes must be positive"
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

    /// The most youth `node` may report served in a month.
    pub fn max_youth(&self, node: &str) -> u64 {
        self.nodes
            .iter()
            .find(|n| n.id == node)
            .and_then(|n| n.max_youth)
            .unwrap_or(self.max_youth_per_node)
    }

    /// How many enrolled nodes make a month complete (at least 1).
    pub fn complete_quorum(&self) -> usize {
        self.complete_period_min_nodes
            .unwrap_or(self.nodes.len() / 2 + 1)
            .max(1)
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
        assert_eq!(config.max_youth("county-a"), 10_000);
        assert_eq!(config.complete_quorum(), 1);
        let limited = write(&format!(
            "hub_id = \"state\"\ndata_dir = \"/tmp/h\"\nmax_youth_per_node = 500\ncomplete_period_min_nodes = 2\n\
             rate_limit_per_node = {{ per_second = 1.0, burst = 5.0 }}\n\
             [[nodes]]\nid = \"county-a\"\npublic_key = \"{KEY}\"\nmax_youth = 40\n"
        ));
        let limited = HubConfig::load(Some(limited.path()), std::iter::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(limited.max_youth("county-a"), 40);
        assert_eq!(limited.max_youth("county-z"), 500);
        assert_eq!(limited.complete_quorum(), 2);
        assert_eq!(limited.rate_limit_per_node.burst, 5.0);
        for bad in [
            "hub_id = \"state\"\ndata_dir = \"/x\"\nnode_id = \"a\"\n".to_string(),
            "hub_id = \"st ate\"\ndata_dir = \"/x\"\n".to_string(),
            "hub_id = \"state\"\ndata_dir = \"/x\"\n[[nodes]]\nid = \"a\"\npublic_key = \"nope\"\n"
                .to_string(),
            format!("hub_id = \"state\"\ndata_dir = \"/x\"\n[[nodes]]\nid = \"a\"\npublic_key = \"{KEY}\"\n[[nodes]]\nid = \"a\"\npublic_key = \"{KEY}\"\n"),
            format!("hub_id = \"state\"\ndata_dir = \"/x\"\n[[nodes]]\nid = \"a\"\npublic_key = \"{KEY}\"\nurl = \"http://a\"\n"),
            "hub_id = \"state\"\ndata_dir = \"/x\"\nmax_youth_per_node = 0\n".to_string(),
            "hub_id = \"state\"\ndata_dir = \"/x\"\nrate_limit_per_node = { per_second = 0.0, burst = 5.0 }\n".to_string(),
        ] {
            let file = write(&bad);
            assert!(HubConfig::load(Some(file.path()), std::iter::empty()).is_err(), "{bad}");
        }
    }
}
