//! The node as a whole: configuration, storage, keys and the plan service,
//! built once at start and shared by every handler (`serve` serves it).

use crate::auth::tokens::TokenKeys;
use crate::config::Config;
use crate::db::{self, Backend, DbConnection, Pool, StoreError};
use crate::error::ApiError;
use crate::federation::{self, Federation};
use crate::plans::Plans;
use crate::start_error::StartError;
use crate::store::writer::Writer;
use std::path::Path;
use std::sync::Arc;

pub struct App {
    pub config: Config,
    pub backend: Backend,
    pub pool: Pool,
    pub writer: Writer,
    pub tokens: TokenKeys,
    pub plans: Arc<Plans>,
    /// Open change-feed streams and their fan-out.
    pub streams: std::sync::Arc<crate::streams::Streams>,
    pub federation: Arc<Federation>,
    pub metrics: crate::metrics::Metrics,
    /// Per-user, per-peer and per-address request budgets; body bytes.
    pub limits: crate::limits::RateLimits,
    /// Failed logins per account and network (password guessing).
    pub login_throttle: crate::auth::throttle::LoginThrottle,
    /// Password checks (argon2: CPU and 19 MiB each) allowed at once, one
    /// per core: a flood of logins queues here, not on the database pool.
    pub password_checks: std::sync::Arc<tokio::sync::Semaphore>,
    /// Sessions revoked lately, refused on the access path.
    pub revoked_sessions: crate::auth::sessions::RevokedSessions,
    /// Whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::forwarded::TrustedProxies,
    /// What `GET /metrics` asks for, if the operator set one.
    pub scrape_token: Option<crate::metrics::ScrapeToken>,
    /// How the access log counts repeated refusals.
    pub refusal_log: std::sync::Arc<crate::observe::RefusalLog>,
    /// The config file the node was started with, re-read on SIGHUP for
    /// its token secrets (none: reloads use the config as it was).
    pub config_path: Option<std::path::PathBuf>,
}

impl App {
    /// Opens storage (migrating it), loads or makes the token secret.
    pub fn open(config: Config) -> Result<(App, std::thread::JoinHandle<()>), StartError> {
        let backend = config.backend()?;
        let mut also: Vec<&Path> = backend.sqlite_path().map(Path::new).into_iter().collect();
        also.extend(config.log_file.as_deref());
        crate::files::make_private(&config.data_dir, &also)
            .map_err(|e| StartError::data_dir(&config.data_dir, e))?;
        let mut conn = backend.connect()?;
        db::migrate(&mut conn)?;
        let stored_peers = crate::store::peers::list(&mut conn)?;
        // Read before serving: a restarted process must not accept a
        // revoked session's tokens for its first poll's worth of time.
        let revoked_sessions =
            crate::auth::sessions::RevokedSessions::new(config.access_token_ttl_secs);
        let now = db::now_ms();
        revoked_sessions.refresh(
            crate::store::users::recently_revoked(&mut conn, revoked_sessions.since(now))?,
            now,
        );
        let trusted_proxies = crate::forwarded::TrustedProxies::parse(&config.trusted_proxies)
            .map_err(|reason| StartError::Setting {
                key: "trusted_proxies",
                reason,
            })?;
        let rotations = crate::store::peers::rotations(&mut conn)?;
        drop(conn);
        let pool = db::pool(&backend, if backend.is_sqlite() { 4 } else { 8 })?;
        let (writer, writer_thread) = Writer::start(&backend, config.refusal_counting())?;
        let (secret, previous) =
            crate::auth::secrets::load(&config).map_err(StartError::TokenSecret)?;
        let tokens = TokenKeys::with_previous(
            &secret,
            &previous,
            config.issuer(),
            config.access_token_ttl_secs,
        );
        let federation = Arc::new(Federation::open(&config, stored_peers, rotations)?);
        let scrape_token =
            crate::metrics::ScrapeToken::configured(config.metrics_token_file.as_deref())?;
        let plans = Arc::new(
            Plans::new(
                config.node_id.clone(),
                pool.clone(),
                writer.clone(),
                config.cache_plans,
                config.compact_after_chunks,
            )
            .with_document_bounds(config.max_document_bytes, config.max_document_ops)
            .with_quotas(config.plan_quota_bytes, config.write_bytes_per_user)
            .with_sync_limits(
                config.sync_states_per_user,
                config.sync_state_idle_secs,
                config.sync_state_max_bytes,
                config.sync_state_cache_bytes,
                config.message_ops(),
            )
            // PostgreSQL may be shared by several processes of the node (see
            // `cluster`); a SQLite file has one.
            .with_known_nodes(federation.is_node(config.node_id.clone()))
            .with_shared(!backend.is_sqlite()),
        );
        let limits = crate::limits::RateLimits {
            per_user: crate::limits::Buckets::new(config.rate_limit_per_user),
            per_peer: crate::limits::Buckets::new(config.rate_limit_per_peer),
            login_per_ip: crate::limits::Buckets::new(config.rate_limit_login_per_ip),
            peer_bytes: crate::limits::Buckets::new(config.rate_limit_peer_bytes),
            user_bytes: crate::limits::Buckets::new(config.rate_limit_user_bytes),
            peer_new_plans: crate::limits::Buckets::new(config.rate_limit_peer_new_plans),
            buffered: crate::limits::BufferedBytes::new(config.max_buffered_body_bytes),
        };
        let streams = std::sync::Arc::new(crate::streams::Streams::new(
            config.max_streams_per_user,
            config.max_streams,
        ));
        let mut metrics = crate::metrics::Metrics::new(&federation.outbound.metrics);
        metrics.register_streams(&streams.metrics);
        let refusal_log =
            std::sync::Arc::new(crate::observe::RefusalLog::new(config.refusal_counting()));
        Ok((
            App {
                config,
                backend,
                pool,
                writer,
                tokens,
                plans,
                streams,
                metrics,
                limits,
                login_throttle: crate::auth::throttle::LoginThrottle::new(),
                password_checks: std::sync::Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                )),
                revoked_sessions,
                trusted_proxies,
                federation,
                scrape_token,
                refusal_log,
                config_path: None,
            },
            writer_thread,
        ))
    }

    /// The peers now. On a database other processes share (PostgreSQL),
    /// those added or removed at run time are read afresh first, so a peer
    /// removed through one process is refused by every other one from the
    /// next request on (one read of a small table).
    pub async fn peers(&self) -> Result<Arc<federation::Peers>, ApiError> {
        self.federation
            .current_peers(&self.pool, !self.backend.is_sqlite())
            .await
    }

    /// The parts of the node federation works with.
    pub fn federated(&self) -> federation::Context {
        federation::Context {
            node_id: self.config.node_id.clone(),
            plans: self.plans.clone(),
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            federation: self.federation.clone(),
            shared: !self.backend.is_sqlite(),
            keeps_copy: self.config.transfer_keeps_copy,
        }
    }

    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        Ok(db::blocking(&self.pool, f).await?)
    }
}

impl App {
    /// Takes up rotated keys without a restart (SIGHUP): the token secrets
    /// from the config file (re-read) and `data_dir`, and the node key with
    /// its rotation statement. What fails to load leaves the keys in force.
    pub fn reload_keys(&self) -> Result<(), String> {
        let config = match &self.config_path {
            Some(path) => Config::load(Some(path), std::env::vars()).map_err(|e| e.to_string())?,
            None => self.config.clone(),
        };
        let (secret, previous) = crate::auth::secrets::load(&config)?;
        let public_key = self.federation.reload_identity(&self.config.data_dir)?;
        self.tokens.replace(&secret, &previous);
        tracing::info!(
            token_kid = %self.tokens.current_kid(),
            previous_token_secrets = previous.len(),
            node_public_key = %public_key,
            "keys reloaded"
        );
        Ok(())
    }
}
