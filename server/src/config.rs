//! Node configuration: a TOML file, then `WRAPSYNC_<KEY>` environment
//! overrides, checked once at start and passed down (no process globals).

use crate::db::{Backend, DatabaseKey};
use crate::environment::EnvRules;
use crate::limits::{Buckets, RateLimit};
use crate::peers::is_node_id;
use crate::privacy::{Bounds, Privacy};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use wrapsync_shared::indicators::MAX_CENTS;

/// How log lines are written to stderr: `text` for people (the default),
/// `json` (one object a line, span fields such as `request_id` included)
/// for a log collector. Config key `log_format`, `WRAPSYNC_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Everything a node needs to run. Unknown keys are refused, so a typo in a
/// config file is an error rather than a silently ignored setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stable id of this node (a county or Community of Excellence).
    pub node_id: String,
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the node keeps its files (default database, generated secrets).
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL, else a SQLite file path. Default:
    /// `data_dir/node.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// A file holding the key that encrypts the SQLite database (SQLCipher;
    /// `wrapsync keys database-key` writes one). None: not encrypted.
    /// Keep it off the disk it protects (a mounted secret).
    #[serde(default)]
    pub database_key_file: Option<PathBuf>,
    /// HS256 secret for access tokens; generated and kept in `data_dir` when
    /// absent.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// Secrets whose tokens are still accepted besides `jwt_secret`'s: the
    /// one just replaced (until its tokens expire), or the next one, staged
    /// on every process before any signs with it. Never used to sign.
    /// `WRAPSYNC_JWT_PREVIOUS_SECRETS` takes them comma-separated.
    #[serde(default)]
    pub jwt_previous_secrets: Vec<String>,
    #[serde(default = "default_access_ttl")]
    pub access_token_ttl_secs: u64,
    #[serde(default = "default_refresh_ttl")]
    pub refresh_token_ttl_secs: u64,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest sync message accepted, in bytes: a device back from a long
    /// offline spell may send its whole plan, so this is larger than
    /// `max_body_bytes`.
    #[serde(default = "default_max_sync")]
    pub max_sync_bytes: usize,
    /// The most a sync message's changes, an imported plan or a handed-over
    /// plan may decode to, in bytes: compressed changes inflate, so the
    /// body caps alone do not bound memory.
    #[serde(default = "default_max_document")]
    pub max_document_bytes: usize,
    /// The most operations the same may declare: run-length encoding lets
    /// a few bytes declare millions, and loading materializes them.
    #[serde(default = "default_max_document_ops")]
    pub max_document_ops: u64,
    /// The most a plan may grow to, in bytes of its JSON as `GET
    /// /v1/plans/{id}` serves it: a write (ops, a device's or a peer's
    /// sync, an import) that would make it larger is refused (`413
    /// plan-quota`); edits that keep or shrink it still go, and the plan
    /// stays readable and syncable. Default 4 MiB, six times the heaviest
    /// realistic plan we could build (650 KB: five years of weekly meetings
    /// with 1,000-character decisions, monthly progress notes on ten
    /// outcomes, quarterly statuses and 50-item CANS), a sixteenth of
    /// `max_document_bytes`.
    #[serde(default = "default_plan_quota")]
    pub plan_quota_bytes: usize,
    /// Plans larger than this (JSON bytes) get the minimal answer to
    /// `POST /v1/plans/{id}/ops` (version and changed paths, as with
    /// `Prefer: return=minimal`) instead of the whole plan, so a write
    /// never makes the node ship megabytes. Default 256 KiB.
    #[serde(default = "default_ops_answer_plan")]
    pub ops_answer_plan_bytes: usize,
    /// Bytes of changes each user may store, through ops and syncs, as
    /// `{ per_second, burst }`: a write past the budget leaves the user in
    /// debt, and their next writes get `429` with `Retry-After` until it
    /// is paid back. Default 4 MiB/s, burst 64 MiB, so the load
    /// benchmarks (one user writing 10,000 times a second) are never
    /// throttled; a node serving only people can set it far lower
    /// (`{ per_second = 16384, burst = 4194304 }`: a day's notes in a
    /// minute, 1.4 GB a day at most).
    #[serde(default = "default_write_bytes")]
    pub write_bytes_per_user: RateLimit,
    /// Requests per authenticated user (`{ per_second, burst }`); over it,
    /// `429` with `Retry-After`. Default 10/s, burst 200: people's scale.
    /// A phone syncs all its plans in one `POST /v1/sync` every few
    /// seconds, a page load or a replica's first sync of a 60-plan caseload
    /// fits in the burst, and a person clicking never comes near 10 a
    /// second; a script firing hundreds of requests is stopped after 200.
    /// What drives one user harder (the load tool, benchmarks) sets its
    /// own (`{ per_second = 25000, burst = 50000 }`).
    #[serde(default = "default_user_rate")]
    pub rate_limit_per_user: RateLimit,
    /// Signed requests per peer node. Default 200/s, burst 400 (a healing
    /// peer sends a few dozen batched requests).
    #[serde(default = "default_peer_rate")]
    pub rate_limit_per_peer: RateLimit,
    /// Login attempts per client address, before anyone is known: what
    /// slows password guessing. Default 5/s, burst 50.
    #[serde(default = "default_login_rate")]
    pub rate_limit_login_per_ip: RateLimit,
    /// Reverse proxies (addresses or ranges, `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client; from anyone else the header is
    /// ignored. Empty (default): the connection's address is the client.
    /// `WRAPSYNC_TRUSTED_PROXIES` takes them comma-separated.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Seconds a client has to send a request's headers, and the most its
    /// body may pause; over either, `408`. Also the keep-alive of idle
    /// connections. Default 30.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// The slowest a body may arrive on average: a body must be whole
    /// within `request_timeout_secs` plus its length (declared, else the
    /// limit) at this rate, else `408` and the connection is closed, so a
    /// trickle cannot hold a request's memory for ever. Default 64 KiB/s
    /// (a slow phone link; a 32 MiB body gets 9 minutes).
    #[serde(default = "default_body_min_rate")]
    pub body_min_bytes_per_sec: u64,
    /// Body bytes all requests being read may hold together; over it,
    /// `503 busy`. What bounds the memory held bodies can pin. Default
    /// 256 MiB; at least `max_sync_bytes`.
    #[serde(default = "default_max_buffered")]
    pub max_buffered_body_bytes: usize,
    /// Body bytes per peer node (`{ per_second, burst }`), taken on the
    /// declared length once the signature's headers check out and before
    /// the body is read (pieces of a body of no declared length are taken
    /// as they come); over it, `429` with `Retry-After`. Default 16 MiB/s,
    /// burst 64 MiB; the burst must be at least `max_sync_bytes`.
    #[serde(default = "default_peer_bytes_rate")]
    pub rate_limit_peer_bytes: RateLimit,
    /// Request body bytes per signed-in user (`{ per_second, burst }`),
    /// taken on the declared length once the token checks out and before
    /// the body is read (pieces of a body of no declared length as they
    /// come); over it, `429` with `Retry-After`. Reading and parsing a
    /// body is the work no later refusal saves, so this is what bounds the
    /// CPU one member's looping phone takes from the others. Default
    /// 4 MiB/s, burst 128 MiB (a phone back from weeks offline, or a
    /// morning of large imports, never meets it); the burst must be at
    /// least `max_sync_bytes`.
    #[serde(default = "default_user_bytes_rate")]
    pub rate_limit_user_bytes: RateLimit,
    /// Plans a peer node may make here that this node never held (a
    /// replica's first changes, a handover of a plan with no replica
    /// here), per peer (`{ per_second, burst }`); over it, `429` with
    /// `Retry-After`, before the plan's message is decoded. Default one
    /// every 2 s, burst 200 (1,800 an hour: a new neighbour's shared plans
    /// arrive within the hour; a rogue one plants at most that many).
    #[serde(default = "default_peer_new_plans_rate")]
    pub rate_limit_peer_new_plans: RateLimit,
    /// One-time ids (`jti`) of signed requests remembered per peer at
    /// once, each until its request expires; a peer with this many
    /// requests in force is refused (`429`) until some expire. Default
    /// 20,000 (a peer at its whole request rate signs about 18,000 a
    /// minute and a half).
    #[serde(default = "default_replay_ids_per_peer")]
    pub replay_ids_per_peer: usize,
    /// Change-feed streams (`/v1/changes/stream`) one user may have open
    /// on a process: one more closes that user's oldest (which is told to
    /// come back in 30 s), so a dead stream left by a phone that changed
    /// networks never locks its user out. Default 8 (a phone and a few
    /// browser tabs).
    #[serde(default = "default_max_streams_per_user")]
    pub max_streams_per_user: usize,
    /// Change-feed streams a process keeps open for everyone together;
    /// over it a new stream is refused `429 rate-limited` with
    /// `Retry-After: 15`. Keep it under the process's descriptor limit.
    /// Default 4,096.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// The region (ISO 3166 code) national phone numbers written into plans
    /// are read in, before they are stored as E.164: `303-555-0123` becomes
    /// `+13035550123` with `US`. Default `US`.
    #[serde(default = "default_phone_region")]
    pub phone_region: String,
    /// Plans kept loaded in memory (least recently used are dropped).
    #[serde(default = "default_cache_plans")]
    pub cache_plans: usize,
    /// HTTP worker threads; default: one per core.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Incremental chunks after which a plan is compacted to one snapshot.
    #[serde(default = "default_compact_after")]
    pub compact_after_chunks: usize,
    /// Web origins (`https://app.example.org`) whose pages may call the API
    /// from a browser (CORS). Empty: only pages served from the node's own
    /// origin. `WRAPSYNC_CORS_ORIGINS` takes them comma-separated.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Seconds between anti-entropy passes over the plans shared with each
    /// peer (those whose heads moved since the peer confirmed them); changes
    /// are sent at once besides.
    #[serde(default = "default_federation_interval")]
    pub federation_interval_secs: u64,
    /// PEM certificates of authorities trusted for peers' HTTPS, besides
    /// the public web PKI (a state-run CA that signs county nodes).
    #[serde(default)]
    pub federation_ca_file: Option<PathBuf>,
    /// Whether a plan moved to another node (`POST /v1/plans/{id}/transfer`)
    /// stays here as a replica of the new home's, synced with it; `false`:
    /// this node deletes its copy once the new home holds the plan.
    #[serde(default = "default_true")]
    pub transfer_keeps_copy: bool,
    /// Base URL of the state hub this node reports its indicators to
    /// (`https://hub.example.org`); none: the node does not report.
    #[serde(default)]
    pub hub_url: Option<String>,
    /// The hub's node id: the audience its signed reports name. Required
    /// with `hub_url`.
    #[serde(default)]
    pub hub_id: Option<String>,
    /// Where peers reach this node (`https://county-a.example.org`). With
    /// `hub_url`, the node registers it in the hub's directory at start,
    /// where other nodes find it (`wrapsync peer add --from-hub`).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Seconds between sending this month's and last month's reports to
    /// the hub (the first goes at start).
    #[serde(default = "default_report_interval")]
    pub report_interval_secs: u64,
    /// Differential privacy for the reports (see `privacy`): the
    /// privacy loss ε this node may spend on a calendar year of months, a
    /// twelfth per month, each month released once after it ends. None:
    /// reports carry exact counts. A positive, finite number.
    #[serde(default)]
    pub dp_epsilon_per_year: Option<f64>,
    /// With privacy on, the CANS actionable items one youth counts for at
    /// most in a month (default 10): what bounds the noise CANS needs.
    #[serde(default)]
    pub dp_cans_items_per_youth: Option<u64>,
    /// With privacy on, the flexible-fund cents one youth counts for at
    /// most in a month, over all categories (default 500000, $5,000).
    #[serde(default)]
    pub dp_flex_cents_per_youth: Option<u64>,
    /// A file holding the bearer token `GET /metrics` then asks for (at
    /// least 16 characters). None: metrics are open (counts and route
    /// patterns only); keep `/metrics` off the public side of the proxy.
    #[serde(default)]
    pub metrics_token_file: Option<PathBuf>,
    /// `text` (default) or `json` log lines on stderr.
    #[serde(default)]
    pub log_format: LogFormat,
    /// A file the node appends its log lines to (created owner-only)
    /// instead of stderr. None: stderr.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// Refusals of a kind from one client address are audited and logged
    /// on their own only `refusal_rows_per_interval` times (default 1) per
    /// this many seconds (default 60); the rest of the interval are
    /// counted in one summary row and one log line (`store::audit`).
    #[serde(default = "default_refusal_interval")]
    pub refusal_interval_secs: u64,
    #[serde(default = "default_refusal_rows")]
    pub refusal_rows_per_interval: u64,
    /// Sync states one user's devices and login sessions keep, over all
    /// plans (one per device and plan); a new one past it evicts the
    /// user's least recently used, which only costs that device a fuller
    /// next round. Default 1,000 (a facilitator's 100 plans on a phone,
    /// a laptop and a tablet is 300). Peer nodes' states are not counted.
    #[serde(default = "default_sync_states_per_user")]
    pub sync_states_per_user: u64,
    /// Seconds after which a sync state nobody used is gone (the device
    /// then starts afresh). Default 30 days, as long as a refresh token.
    #[serde(default = "default_sync_state_idle")]
    pub sync_state_idle_secs: u64,
    /// The most one stored sync state may take, in bytes; past it, what the
    /// device last said it has and needs is dropped (it is asked again).
    /// Default 256 KiB (a device's Bloom filter of 200,000 changes).
    #[serde(default = "default_sync_state_max_bytes")]
    pub sync_state_max_bytes: usize,
    /// Bytes of sync states kept in memory (least recently used dropped,
    /// read back from the database when needed). Default 64 MiB.
    #[serde(default = "default_sync_state_cache_bytes")]
    pub sync_state_cache_bytes: usize,
    /// The most operations one device sync message may declare from a
    /// member who does not run plans (caregiver, youth, provider, family
    /// advocate, natural support); counted from the changes' headers and
    /// columns before anything is decoded (`413 message-too-large`).
    /// Default 50,000 (a week of a busy family's edits is a few thousand).
    #[serde(default = "default_max_sync_ops_member")]
    pub max_sync_ops_member: u64,
    /// The same for facilitators and supervisors, and for an imported
    /// plan. Default 250,000.
    #[serde(default = "default_max_sync_ops_staff")]
    pub max_sync_ops_staff: u64,
    /// The same for one plan's message from a peer node (a home's first
    /// push carries the whole plan). Default 500,000.
    #[serde(default = "default_max_peer_sync_ops")]
    pub max_peer_sync_ops: u64,
    /// All the messages of one peer batch (`/federation/v1/sync`)
    /// together; plans past it are answered `429` and come again in the
    /// peer's next pass. Default 2,000,000.
    #[serde(default = "default_max_peer_batch_ops")]
    pub max_peer_batch_ops: u64,
    /// Nodes this node trusts (`[[peers]]` with `id`, `url`, `public_key`).
    #[serde(default)]
    pub peers: Vec<crate::peers::Peer>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_access_ttl() -> u64 {
    900
}
fn default_refresh_ttl() -> u64 {
    30 * 24 * 3600
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_max_sync() -> usize {
    32 * 1024 * 1024
}
fn default_cache_plans() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}
fn default_federation_interval() -> u64 {
    30
}
fn default_report_interval() -> u64 {
    3600
}
/// 64 MiB: far above a real plan, far below what hurts a node.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 64 << 20;
fn default_max_document() -> usize {
    DEFAULT_MAX_DOCUMENT_BYTES
}
/// A million: a plan with years of notes holds tens of thousands. Rendering
/// materializes every operation (about 100 bytes each), which this bounds.
pub const DEFAULT_MAX_DOCUMENT_OPS: u64 = 1_000_000;
fn default_max_document_ops() -> u64 {
    DEFAULT_MAX_DOCUMENT_OPS
}
/// See `Config::plan_quota_bytes`.
pub const DEFAULT_PLAN_QUOTA_BYTES: usize = 4 << 20;
fn default_plan_quota() -> usize {
    DEFAULT_PLAN_QUOTA_BYTES
}
/// See `Config::sync_states_per_user`.
pub const DEFAULT_SYNC_STATES_PER_USER: u64 = 1_000;
fn default_sync_states_per_user() -> u64 {
    DEFAULT_SYNC_STATES_PER_USER
}
/// See `Config::sync_state_idle_secs`.
pub const DEFAULT_SYNC_STATE_IDLE_SECS: u64 = 30 * 24 * 3600;
fn default_sync_state_idle() -> u64 {
    DEFAULT_SYNC_STATE_IDLE_SECS
}
/// See `Config::sync_state_max_bytes`.
pub const DEFAULT_SYNC_STATE_MAX_BYTES: usize = 256 << 10;
fn default_sync_state_max_bytes() -> usize {
    DEFAULT_SYNC_STATE_MAX_BYTES
}
/// See `Config::sync_state_cache_bytes`.
pub const DEFAULT_SYNC_STATE_CACHE_BYTES: usize = 64 << 20;
fn default_sync_state_cache_bytes() -> usize {
    DEFAULT_SYNC_STATE_CACHE_BYTES
}
fn default_max_sync_ops_member() -> u64 {
    crate::limits::MessageOps::DEFAULT.member
}
fn default_max_sync_ops_staff() -> u64 {
    crate::limits::MessageOps::DEFAULT.staff
}
fn default_max_peer_sync_ops() -> u64 {
    crate::limits::MessageOps::DEFAULT.peer
}
fn default_max_peer_batch_ops() -> u64 {
    crate::limits::MessageOps::DEFAULT.peer_batch
}
fn default_ops_answer_plan() -> usize {
    256 << 10
}
fn default_write_bytes() -> RateLimit {
    RateLimit {
        per_second: f64::from(4u32 << 20),
        burst: f64::from(64u32 << 20),
    }
}
fn default_user_rate() -> RateLimit {
    RateLimit {
        per_second: 10.0,
        burst: 200.0,
    }
}
fn default_peer_rate() -> RateLimit {
    RateLimit {
        per_second: 200.0,
        burst: 400.0,
    }
}
fn default_login_rate() -> RateLimit {
    RateLimit {
        per_second: 5.0,
        burst: 50.0,
    }
}
fn default_request_timeout() -> u64 {
    30
}
fn default_body_min_rate() -> u64 {
    64 * 1024
}
fn default_max_buffered() -> usize {
    256 << 20
}
fn default_peer_bytes_rate() -> RateLimit {
    RateLimit {
        per_second: f64::from(16u32 << 20),
        burst: f64::from(64u32 << 20),
    }
}
fn default_user_bytes_rate() -> RateLimit {
    RateLimit {
        per_second: f64::from(4u32 << 20),
        burst: f64::from(128u32 << 20),
    }
}
fn default_peer_new_plans_rate() -> RateLimit {
    RateLimit {
        per_second: 0.5,
        burst: 200.0,
    }
}
/// One-time ids each peer may have in force at once, by default: a peer at
/// its whole request rate (`rate_limit_per_peer`, 200/s) signing for a
/// minute, as nodes do, has about 18,000 (60 s + 30 s of skew).
pub const DEFAULT_REPLAY_IDS_PER_PEER: usize = 20_000;
fn default_replay_ids_per_peer() -> usize {
    DEFAULT_REPLAY_IDS_PER_PEER
}
fn default_phone_region() -> String {
    wrapsync_shared::text::DEFAULT_PHONE_REGION.into()
}
fn default_max_streams_per_user() -> usize {
    8
}
fn default_max_streams() -> usize {
    4096
}
fn default_compact_after() -> usize {
    64
}
fn default_refusal_interval() -> u64 {
    crate::tally::RefusalCounting::default().interval_secs
}
fn default_refusal_rows() -> u64 {
    crate::tally::RefusalCounting::default().rows
}

/// What the node takes from `WRAPSYNC_*` variables: every key but the
/// `[[peers]]` tables (see `environment`).
pub const ENV: EnvRules = EnvRules {
    file_only: &["peers"],
    lists: &["cors_origins", "jwt_previous_secrets", "trusted_proxies"],
    fractions: &["dp_epsilon_per_year"],
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The TOML table of config file `path` (empty without one), before the
/// environment's overrides: the node's and the hub's config alike.
pub(crate) fn read_table(path: Option<&Path>) -> Result<toml::Table, ConfigError> {
    let Some(path) = path else {
        return Ok(toml::Table::new());
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Invalid(e.to_string()))
}

impl Config {
    /// Reads `path` (if given) and applies `WRAPSYNC_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = read_table(path)?;
        ENV.apply::<Config>(&mut table, env)
            .map_err(ConfigError::Invalid)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        wrapsync_shared::text::set_phone_region(&self.phone_region)
            .map_err(ConfigError::Invalid)?;
        if !is_node_id(&self.node_id) {
            return Err(ConfigError::Invalid(
                "node_id must be 1-64 letters, digits, - or _".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        if self.access_token_ttl_secs == 0 || self.cache_plans == 0 {
            return Err(ConfigError::Invalid(
                "ttl and cache sizes must be positive".into(),
            ));
        }
        for (key, limit) in [
            ("rate_limit_per_user", self.rate_limit_per_user),
            ("rate_limit_per_peer", self.rate_limit_per_peer),
            ("rate_limit_login_per_ip", self.rate_limit_login_per_ip),
            ("rate_limit_peer_bytes", self.rate_limit_peer_bytes),
            ("rate_limit_user_bytes", self.rate_limit_user_bytes),
            ("rate_limit_peer_new_plans", self.rate_limit_peer_new_plans),
            ("write_bytes_per_user", self.write_bytes_per_user),
        ] {
            if Buckets::new(limit).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "{key}: per_second must be positive and burst at least 1"
                )));
            }
        }
        if self.replay_ids_per_peer == 0 {
            return Err(ConfigError::Invalid(
                "replay_ids_per_peer must be positive".into(),
            ));
        }
        if self.plan_quota_bytes == 0 {
            return Err(ConfigError::Invalid(
                "plan_quota_bytes must be positive".into(),
            ));
        }
        if self.sync_states_per_user == 0
            || self.sync_state_idle_secs == 0
            || self.sync_state_max_bytes < 1024
            || self.max_sync_ops_member == 0
            || self.max_sync_ops_staff == 0
            || self.max_peer_sync_ops == 0
            || self.max_peer_batch_ops < self.max_peer_sync_ops
        {
            return Err(ConfigError::Invalid(
                "sync_states_per_user, sync_state_idle_secs and the max_*_ops limits must be \
                 positive, sync_state_max_bytes at least 1024, and max_peer_batch_ops at least \
                 max_peer_sync_ops"
                    .into(),
            ));
        }
        if self.refusal_interval_secs == 0 || self.refusal_rows_per_interval == 0 {
            return Err(ConfigError::Invalid(
                "refusal_interval_secs and refusal_rows_per_interval must be positive".into(),
            ));
        }
        if self.request_timeout_secs == 0 || self.body_min_bytes_per_sec == 0 {
            return Err(ConfigError::Invalid(
                "request_timeout_secs and body_min_bytes_per_sec must be positive".into(),
            ));
        }
        // A body the size limits allow must be able to get through.
        let largest = self.max_sync_bytes.max(self.max_body_bytes);
        if self.max_buffered_body_bytes < largest
            || self.rate_limit_peer_bytes.burst < largest as f64
            || self.rate_limit_user_bytes.burst < largest as f64
        {
            return Err(ConfigError::Invalid(
                "max_buffered_body_bytes, rate_limit_peer_bytes.burst and \
                 rate_limit_user_bytes.burst must be at least max_sync_bytes"
                    .into(),
            ));
        }
        crate::peers::Peers::new(&self.peers).map_err(ConfigError::Invalid)?;
        crate::forwarded::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ConfigError::Invalid(format!("trusted_proxies: {e}")))?;
        if let Some(bad) = self.cors_origins.iter().find(|o| !is_origin(o)) {
            return Err(ConfigError::Invalid(format!(
                "cors_origins: `{bad}` is not an origin like https://app.example.org"
            )));
        }
        self.check_hub()?;
        self.check_privacy()
    }

    /// ε must be a positive, finite number, the bounds positive; bounds
    /// without ε would do nothing, which is refused like any dead setting.
    fn check_privacy(&self) -> Result<(), ConfigError> {
        let Some(epsilon) = self.dp_epsilon_per_year else {
            if self.dp_cans_items_per_youth.is_some() || self.dp_flex_cents_per_youth.is_some() {
                return Err(ConfigError::Invalid(
                    "dp_cans_items_per_youth and dp_flex_cents_per_youth need dp_epsilon_per_year"
                        .into(),
                ));
            }
            return Ok(());
        };
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "dp_epsilon_per_year must be a positive number, not {epsilon}"
            )));
        }
        if self.dp_cans_items_per_youth == Some(0) {
            return Err(ConfigError::Invalid(
                "dp_cans_items_per_youth must be at least 1".into(),
            ));
        }
        match self.dp_flex_cents_per_youth {
            Some(0) => Err(ConfigError::Invalid(
                "dp_flex_cents_per_youth must be at least 1".into(),
            )),
            Some(cents) if cents > MAX_CENTS => Err(ConfigError::Invalid(format!(
                "dp_flex_cents_per_youth must be at most {MAX_CENTS} (what a report cell holds)"
            ))),
            _ => Ok(()),
        }
    }

    /// Operations per message by route and role (`limits::MessageOps`).
    pub fn message_ops(&self) -> crate::limits::MessageOps {
        crate::limits::MessageOps {
            member: self.max_sync_ops_member,
            staff: self.max_sync_ops_staff,
            peer: self.max_peer_sync_ops,
            peer_batch: self.max_peer_batch_ops,
        }
    }

    /// How refusals are counted in the audit trail and the log.
    pub fn refusal_counting(&self) -> crate::tally::RefusalCounting {
        crate::tally::RefusalCounting {
            interval_secs: self.refusal_interval_secs,
            rows: self.refusal_rows_per_interval,
        }
    }

    /// Differential privacy as configured; `None` when it is off.
    pub fn privacy(&self) -> Option<Privacy> {
        let defaults = Bounds::default();
        self.dp_epsilon_per_year.map(|epsilon_per_year| Privacy {
            epsilon_per_year,
            bounds: Bounds {
                cans_items_per_youth: self
                    .dp_cans_items_per_youth
                    .unwrap_or(defaults.cans_items_per_youth),
                flex_cents_per_youth: self
                    .dp_flex_cents_per_youth
                    .unwrap_or(defaults.flex_cents_per_youth),
            },
        })
    }

    /// A hub needs both its URL and its id; an id alone means nothing.
    fn check_hub(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!(
                    "public_url: `{url}` must be http(s)://…"
                )));
            }
        }
        match (&self.hub_url, &self.hub_id) {
            (None, None) => Ok(()),
            (Some(url), Some(id)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::Invalid(format!(
                        "hub_url: `{url}` must be http(s)://…"
                    )));
                }
                if !is_node_id(id) {
                    return Err(ConfigError::Invalid(
                        "hub_id must be 1-64 letters, digits, - or _".into(),
                    ));
                }
                if self.report_interval_secs == 0 {
                    return Err(ConfigError::Invalid(
                        "report_interval_secs must be positive".into(),
                    ));
                }
                Ok(())
            }
            _ => Err(ConfigError::Invalid(
                "hub_url and hub_id go together: set both to report to a hub, neither not to"
                    .into(),
            )),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("node.db").to_string_lossy().into_owned())
    }

    /// The database, with its key read from `database_key_file` when set.
    pub fn backend(&self) -> Result<Backend, ConfigError> {
        let backend = Backend::from_url(&self.database_url());
        let Some(file) = &self.database_key_file else {
            return Ok(backend);
        };
        let Backend::Sqlite(path) = backend else {
            return Err(ConfigError::Invalid(
                "database_key_file encrypts a SQLite database; PostgreSQL is encrypted at rest \
                 by its own storage"
                    .into(),
            ));
        };
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Read(file.clone(), e))?;
        let key = DatabaseKey::from_text(&text).ok_or_else(|| {
            ConfigError::Invalid(format!("database_key_file {} is empty", file.display()))
        })?;
        Ok(Backend::SqlCipher { path, key })
    }

    /// The issuer every token of this node carries.
    pub fn issuer(&self) -> String {
        format!("wrapsync:{}", self.node_id)
    }
}

/// `scheme://host[:port]`, nothing after: what a browser sends as `Origin`.
fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '*', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        file
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_keys_are_refused() {
        let file = write("node_id = \"county-a\"\ndata_dir = \"/tmp/x\"\nmax_body_bytes = 2048\n");
        let env = vec![
            ("WRAPSYNC_MAX_BODY_BYTES".to_string(), "4096".to_string()),
            (
                "WRAPSYNC_PASSWORD".to_string(),
                "not a config key".to_string(),
            ),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let config = Config::load(Some(file.path()), env.into_iter());
        let config = config.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.max_body_bytes, 4096);
        assert_eq!(config.database_url(), "/tmp/x/node.db");

        // The pool and a peer's byte budget must hold the largest body.
        for small in [
            "max_buffered_body_bytes = 1000000\n",
            "rate_limit_peer_bytes = { per_second = 1.0, burst = 1000000.0 }\n",
            "body_min_bytes_per_sec = 0\n",
        ] {
            let file = write(&format!("node_id = \"a\"\ndata_dir = \"/tmp/x\"\n{small}"));
            assert!(
                Config::load(Some(file.path()), std::iter::empty()).is_err(),
                "{small}"
            );
        }

        let file = write("node_id = \"a\"\ndata_dir = \"/tmp/x\"\nmax_bodybytes = 1\n");
        assert!(Config::load(Some(file.path()), std::iter::empty()).is_err());
        let file = write("node_id = \"bad id!\"\ndata_dir = \"/tmp/x\"\n");
        assert!(Config::load(Some(file.path()), std::iter::empty()).is_err());
    }

    #[test]
    fn logs_are_text_unless_json_is_asked_for() {
        let file = write("node_id = \"county-a\"\ndata_dir = \"/tmp/x\"\n");
        let load = |env: Vec<(String, String)>| Config::load(Some(file.path()), env.into_iter());
        let text = load(vec![]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text.log_format, LogFormat::Text);
        let json = load(vec![("WRAPSYNC_LOG_FORMAT".into(), "json".into())]);
        let json = json.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json.log_format, LogFormat::Json);
        assert!(load(vec![("WRAPSYNC_LOG_FORMAT".into(), "xml".into())]).is_err());
    }

    #[test]
    fn a_hub_needs_its_url_and_its_id() {
        let load = |extra: &str| {
            let file = write(&format!(
                "node_id = \"county-a\"\ndata_dir = \"/tmp/x\"\n{extra}"
            ));
            Config::load(Some(file.path()), std::iter::empty())
        };
        let none = load("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((none.hub_url, none.report_interval_secs), (None, 3600));
        let both = load("hub_url = \"https://hub.example.org\"\nhub_id = \"state\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(both.hub_id.as_deref(), Some("state"));
        for bad in [
            "hub_url = \"https://hub.example.org\"\n",
            "hub_id = \"state\"\n",
            "hub_url = \"hub.example.org\"\nhub_id = \"state\"\n",
            "hub_url = \"https://hub.example.org\"\nhub_id = \"a hub\"\n",
            "hub_url = \"https://h\"\nhub_id = \"s\"\nreport_interval_secs = 0\n",
        ] {
            assert!(load(bad).is_err(), "{bad}");
        }
        let env = [(
            "WRAPSYNC_REPORT_INTERVAL_SECS".to_string(),
            "60".to_string(),
        )];
        let file = write("node_id = \"county-a\"\ndata_dir = \"/tmp/x\"\n");
        let config =
            Config::load(Some(file.path()), env.into_iter()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.report_interval_secs, 60);
    }

    #[test]
    fn privacy_needs_a_positive_epsilon_and_takes_bounds_only_with_it() {
        let load = |extra: &str, env: &[(&str, &str)]| {
            let file = write(&format!(
                "node_id = \"county-a\"\ndata_dir = \"/tmp/x\"\n{extra}"
            ));
            let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            Config::load(Some(file.path()), env.collect::<Vec<_>>().into_iter())
        };
        let off = load("", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(off.privacy(), None);
        let on = load("dp_epsilon_per_year = 1.5\n", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            on.privacy(),
            Some(Privacy {
                epsilon_per_year: 1.5,
                bounds: Bounds::default()
            })
        );
        // A whole number is a number too; the bounds override the defaults.
        let bounded = load(
            "dp_epsilon_per_year = 2\ndp_cans_items_per_youth = 4\ndp_flex_cents_per_youth = 90000\n",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            bounded.privacy(),
            Some(Privacy {
                epsilon_per_year: 2.0,
                bounds: Bounds {
                    cans_items_per_youth: 4,
                    flex_cents_per_youth: 90_000
                }
            })
        );
        // From the environment, fractions included.
        let env = load(
            "",
            &[
                ("WRAPSYNC_DP_EPSILON_PER_YEAR", "0.25"),
                ("WRAPSYNC_DP_CANS_ITEMS_PER_YOUTH", "6"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            env.privacy()
                .map(|p| (p.epsilon_per_year, p.bounds.cans_items_per_youth)),
            Some((0.25, 6))
        );
        for bad in [
            "dp_epsilon_per_year = 0.0\n",
            "dp_epsilon_per_year = -1.0\n",
            "dp_epsilon_per_year = nan\n",
            "dp_epsilon_per_year = inf\n",
            "dp_epsilon_per_year = \"1\"\n",
            "dp_epsilon_per_year = 1.0\ndp_cans_items_per_youth = 0\n",
            "dp_epsilon_per_year = 1.0\ndp_flex_cents_per_youth = 0\n",
            "dp_epsilon_per_year = 1.0\ndp_flex_cents_per_youth = 10000000001\n",
            "dp_cans_items_per_youth = 5\n",
            "dp_flex_cents_per_youth = 5\n",
        ] {
            assert!(load(bad, &[]).is_err(), "{bad}");
        }
        for bad in ["nan", "-0.5", "0", "one"] {
            assert!(
                load("", &[("WRAPSYNC_DP_EPSILON_PER_YEAR", bad)]).is_err(),
                "{bad}"
            );
        }
    }
}
