//! [`TestHub`]: one real `wrapsync hub` process with its own data directory
//! and database, and [`NodeSigner`], which signs requests as an enrolled
//! node does (the same claims `federation::signing` checks).

use crate::node::Backend;
use crate::postgres::PgDatabase;
use crate::process::{binary, Process};
use crate::{Context, HarnessError, Reply, Result};
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::blocking::RequestBuilder;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::PathBuf;
use tempfile::TempDir;

/// The hub id every test hub gets.
pub const HUB_ID: &str = "state-hub";

/// A node's Ed25519 identity, signing requests to the hub (or to peers).
pub struct NodeSigner {
    pub id: String,
    encoding: EncodingKey,
    pub public_key: String,
}

impl NodeSigner {
    /// A fresh random key for node `id`.
    pub fn new(id: &str) -> Result<Self> {
        let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let der = signing
            .to_pkcs8_der()
            .context(|| "encoding a test key".to_string())?;
        Ok(NodeSigner {
            id: id.to_string(),
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(signing.verifying_key().as_bytes()),
        })
    }

    /// Node `id`'s key as kept in a `node_key.pem` (PKCS#8 PEM).
    pub fn from_pem(id: &str, pem: &str) -> Result<Self> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| HarnessError::new(format!("not a node key: {e}")))?;
        let der = signing
            .to_pkcs8_der()
            .context(|| "encoding a test key".to_string())?;
        Ok(NodeSigner {
            id: id.to_string(),
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(signing.verifying_key().as_bytes()),
        })
    }

    /// The `Authorization` value for `method path` with `body`, to `aud`,
    /// issued at `iat` (Unix seconds), valid for a minute.
    pub fn sign(&self, aud: &str, method: &str, path: &str, body: &[u8], iat: i64) -> String {
        let claims = self.claims(aud, method, path, body, iat);
        format!("Bearer {}", self.sign_claims(&self.id, &claims))
    }

    /// The claims [`NodeSigner::sign`] signs, for tests that alter them
    /// and sign them with [`NodeSigner::sign_claims`].
    pub fn claims(
        &self,
        aud: &str,
        method: &str,
        path: &str,
        body: &[u8],
        iat: i64,
    ) -> Map<String, Value> {
        let claims = json!({
            "iss": self.id, "aud": aud, "iat": iat, "exp": iat + 60,
            "jti": format!("{:032x}", rand::random::<u128>()),
            "htm": method, "htu": path,
            "bdy": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(body)),
        });
        match claims {
            Value::Object(claims) => claims,
            _ => Map::new(),
        }
    }

    /// `claims` signed with this key (EdDSA) under key id `kid`: the bare
    /// token, without `Bearer `.
    pub fn sign_claims(&self, kid: &str, claims: &Map<String, Value>) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_string());
        match jsonwebtoken::encode(&header, claims, &self.encoding) {
            Ok(token) => token,
            Err(e) => panic!("signing a test request: {e}"),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[derive(Serialize)]
struct HubConfigFile {
    hub_id: String,
    listen: String,
    data_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    nodes: Vec<Value>,
}

/// One `wrapsync hub` under test, killed (and its database dropped) when
/// dropped.
pub struct TestHub {
    process: Option<Process>,
    http: reqwest::blocking::Client,
    backend: Backend,
    binary: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    _database: Option<PgDatabase>,
    _dir: TempDir,
}

impl TestHub {
    /// Starts a hub that has enrolled `nodes`; panics with its log if it
    /// cannot.
    #[track_caller]
    pub fn spawn(backend: Backend, nodes: &[&NodeSigner]) -> Self {
        match Self::try_spawn(backend, nodes) {
            Ok(hub) => hub,
            Err(e) => panic!("cannot start a test hub: {e}"),
        }
    }

    /// [`TestHub::spawn`], reporting failure instead of panicking.
    pub fn try_spawn(backend: Backend, nodes: &[&NodeSigner]) -> Result<Self> {
        let nodes: Vec<(&str, &str)> = nodes
            .iter()
            .map(|n| (n.id.as_str(), n.public_key.as_str()))
            .collect();
        Self::try_spawn_enrolling(backend, &nodes)
    }

    /// Starts a hub that has enrolled the nodes `(id, public key)` (real
    /// nodes: their `GET /federation/v1/identity`).
    #[track_caller]
    pub fn spawn_enrolling(backend: Backend, nodes: &[(&str, &str)]) -> Self {
        match Self::try_spawn_enrolling(backend, nodes) {
            Ok(hub) => hub,
            Err(e) => panic!("cannot start a test hub: {e}"),
        }
    }

    fn try_spawn_enrolling(backend: Backend, nodes: &[(&str, &str)]) -> Result<Self> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("wrapsync-hub-test-")
            .tempdir()
            .context(|| "creating a temp dir".to_string())?;
        let data_dir = dir.path().join("data");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create()?),
        };
        let config = HubConfigFile {
            hub_id: HUB_ID.to_string(),
            listen: "127.0.0.1:0".to_string(),
            data_dir: data_dir.to_string_lossy().into_owned(),
            database_url: database.as_ref().map(PgDatabase::url),
            nodes: nodes
                .iter()
                .map(|(id, key)| json!({"id": id, "public_key": key}))
                .collect(),
        };
        let config_path = dir.path().join("hub.toml");
        let text = toml::to_string(&config).context(|| "serialising the config".to_string())?;
        fs::write(&config_path, text).context(|| format!("writing {}", config_path.display()))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context(|| "building the HTTP client".to_string())?;
        let mut hub = TestHub {
            process: None,
            http,
            backend,
            binary,
            log_path: dir.path().join("hub.log"),
            config_path,
            _database: database,
            _dir: dir,
        };
        hub.try_start()?;
        Ok(hub)
    }

    fn try_start(&mut self) -> Result<()> {
        if self.process.is_some() {
            return Err(HarnessError::new("the hub is already running"));
        }
        let process = Process::start_as(&self.binary, "hub", &self.config_path, &self.log_path)
            .map_err(|e| HarnessError::new(format!("{e}\n--- hub log ---\n{}", self.log())))?;
        self.process = Some(process);
        Ok(())
    }

    /// Keeps only the nodes `ids` enrolled in the config file and restarts
    /// the hub on the same data (the state office withdrew the others).
    #[track_caller]
    pub fn enroll_only(&mut self, ids: &[&str]) {
        let text = fs::read_to_string(&self.config_path).unwrap_or_else(|e| panic!("{e}"));
        let mut config: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
        if let Some(toml::Value::Array(nodes)) = config.get_mut("nodes") {
            nodes.retain(|n| {
                n.get("id")
                    .and_then(|id| id.as_str())
                    .is_some_and(|id| ids.contains(&id))
            });
        }
        fs::write(&self.config_path, config.to_string()).unwrap_or_else(|e| panic!("{e}"));
        self.restart();
    }

    /// Sets `key` in the config file and restarts the hub on the same data.
    #[track_caller]
    pub fn configure(&mut self, key: &str, value: toml::Value) {
        let text = fs::read_to_string(&self.config_path).unwrap_or_else(|e| panic!("{e}"));
        let mut config: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
        config.insert(key.to_string(), value);
        fs::write(&self.config_path, config.to_string()).unwrap_or_else(|e| panic!("{e}"));
        self.restart();
    }

    /// SIGKILL, then start again on the same data.
    #[track_caller]
    pub fn restart(&mut self) {
        if let Some(process) = self.process.take() {
            if let Err(e) = process.kill() {
                panic!("{e}");
            }
        }
        if let Err(e) = self.try_start() {
            panic!("cannot restart the hub: {e}");
        }
    }

    /// Every byte the hub stores: each file under its data directory
    /// (the SQLite database with its WAL, the key) and, on PostgreSQL, a
    /// `pg_dump` of its database.
    pub fn stored_bytes(&self) -> Result<Vec<u8>> {
        fn read_all(dir: &std::path::Path, out: &mut Vec<u8>) -> Result<()> {
            let entries = fs::read_dir(dir).context(|| format!("listing {}", dir.display()))?;
            for entry in entries {
                let path = entry.context(|| "a directory entry".to_string())?.path();
                if path.is_dir() {
                    read_all(&path, out)?;
                } else {
                    out.extend(fs::read(&path).context(|| format!("reading {}", path.display()))?);
                }
            }
            Ok(())
        }
        let mut bytes = Vec::new();
        read_all(&self._dir.path().join("data"), &mut bytes)?;
        if let Some(database) = &self._database {
            bytes.extend(crate::postgres::dump(database)?);
        }
        Ok(bytes)
    }

    /// The storage this hub runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The hub's base URL.
    pub fn url(&self) -> &str {
        match &self.process {
            Some(process) => &process.url,
            None => panic!("the hub is not running"),
        }
    }

    /// Everything the hub wrote to stderr so far (the tail).
    pub fn log(&self) -> String {
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = log.len().saturating_sub(8000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(log.len());
        log[start..].to_string()
    }

    /// A request to `path` on this hub.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url()))
    }

    /// Sends a request built with [`TestHub::request`].
    #[track_caller]
    pub fn send(&self, request: RequestBuilder) -> Reply {
        match Reply::read(request) {
            Ok(reply) => reply,
            Err(e) => panic!("{e}\n--- hub log ---\n{}", self.log()),
        }
    }

    /// `POST path` with `body` as JSON, signed by `signer` for this hub
    /// (or unsigned with `None`).
    #[track_caller]
    pub fn post_signed(&self, signer: Option<&NodeSigner>, path: &str, body: &[u8]) -> Reply {
        let mut request = self
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signer) = signer {
            request = request.header(
                "authorization",
                signer.sign(HUB_ID, "POST", path, body, unix_now()),
            );
        }
        self.send(request)
    }

    /// `GET path` (the hub's reads are public).
    #[track_caller]
    pub fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path))
    }
}
