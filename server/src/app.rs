//! The node as a whole: configuration, storage, keys and the plan service,
//! built once at start and shared by every handler; and `run`, which serves
//! a bound listener until a shutdown signal, then drains.

use crate::api;
use crate::auth::tokens::TokenKeys;
use crate::config::Config;
use crate::db::{self, Backend, DbConnection, Pool, StoreError};
use crate::error::ApiError;
use crate::federation::Federation;
use crate::plans::Plans;
use crate::store::writer::Writer;
use actix_web::http::header;
use actix_web::{middleware, web, HttpServer};
use std::net::TcpListener;
use std::path::Path;

pub struct App {
    pub config: Config,
    pub backend: Backend,
    pub pool: Pool,
    pub writer: Writer,
    pub tokens: TokenKeys,
    pub plans: Plans,
    /// Open change-feed streams and their fan-out.
    pub streams: std::sync::Arc<crate::streams::Streams>,
    pub federation: Federation,
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
    pub trusted_proxies: crate::api::forwarded::TrustedProxies,
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
    pub fn open(config: Config) -> Result<(App, std::thread::JoinHandle<()>), StoreError> {
        let backend = config
            .backend()
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        let mut also: Vec<&Path> = backend.sqlite_path().map(Path::new).into_iter().collect();
        also.extend(config.log_file.as_deref());
        crate::files::make_private(&config.data_dir, &also)
            .map_err(|e| StoreError::Connection(format!("{}: {e}", config.data_dir.display())))?;
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
        let trusted_proxies = crate::api::forwarded::TrustedProxies::parse(&config.trusted_proxies)
            .map_err(StoreError::Connection)?;
        let rotations = crate::store::peers::rotations(&mut conn)?;
        drop(conn);
        let pool = db::pool(&backend, if backend.is_sqlite() { 4 } else { 8 })?;
        let (writer, writer_thread) = Writer::start(&backend, config.refusal_counting())?;
        let (secret, previous) =
            crate::auth::secrets::load(&config).map_err(StoreError::Connection)?;
        let tokens = TokenKeys::with_previous(
            &secret,
            &previous,
            config.issuer(),
            config.access_token_ttl_secs,
        );
        let federation = Federation::open(&config, stored_peers, rotations)?;
        let scrape_token =
            crate::metrics::ScrapeToken::configured(config.metrics_token_file.as_deref())
                .map_err(StoreError::Connection)?;
        let plans = Plans::new(
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
        .with_shared(!backend.is_sqlite());
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
    pub async fn peers(&self) -> Result<std::sync::Arc<crate::federation::Peers>, ApiError> {
        if !self.backend.is_sqlite() {
            let stored = self.blocking(crate::store::peers::list).await?;
            self.federation
                .set_stored(stored)
                .map_err(ApiError::Internal)?;
        }
        Ok(self.federation.peers())
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

pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Serves `app` on `listener` until SIGINT/SIGTERM; then open change-feed
/// streams end, in-flight requests finish, and queued audit records are
/// flushed.
pub async fn run(listener: TcpListener, app: App) -> std::io::Result<()> {
    serve(listener, web::Data::new(app), stop_signal()).await
}

/// [`run`], until `stop` completes instead of until a signal. Whoever else
/// holds a handle to `app` must let go of it for the writer thread to end.
pub async fn serve(
    listener: TcpListener,
    app: web::Data<App>,
    stop: impl std::future::Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let workers = app
        .config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let data = app.clone();
    let origins = app.config.cors_origins.clone();
    let request_timeout = std::time::Duration::from_secs(app.config.request_timeout_secs);
    let server = HttpServer::new(move || {
        let http = data.metrics.http.clone();
        let log = data.refusal_log.clone();
        actix_web::App::new()
            .app_data(data.clone())
            // Innermost: sees every refusal, after `observe` gave the
            // request its id.
            .wrap_fn(api::refusals::audit)
            .wrap(cors(&origins))
            // Every answer of a node may describe a family (a plan list's
            // titles, a history, an audit page, a refusal naming a plan):
            // no shared cache may keep it unless a handler says otherwise
            // (a plan read revalidates: `private, no-cache`).
            .wrap(
                middleware::DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add((actix_web::http::header::CACHE_CONTROL, "no-store")),
            )
            .wrap_fn(move |req, srv| crate::observe::request(req, srv, &http, &log))
            .configure(api::routes)
    })
    .workers(workers)
    // Headers must arrive within the timeout (else 408), a closing client
    // gets a few seconds to acknowledge, and idle connections are closed
    // after the same time. Bodies are timed in `api::extract`.
    .client_request_timeout(request_timeout)
    .client_disconnect_timeout(std::time::Duration::from_secs(5))
    .keep_alive(request_timeout)
    .shutdown_timeout(30)
    .disable_signals()
    .listen(listener)?
    .run();
    // One process of those sharing the database runs the background work.
    let cluster = crate::cluster::start(
        &app.backend,
        app.plans.bell(),
        app.plans.stopping(),
        app.metrics.leader.clone(),
    )?;
    let (outbound, report) = (app.clone(), app.clone());
    actix_web::rt::spawn(crate::cluster::while_leading(cluster.leader(), move || {
        crate::federation::outbound::run(outbound.clone())
    }));
    actix_web::rt::spawn(crate::cluster::while_leading(cluster.leader(), move || {
        crate::report::send::run(report.clone())
    }));
    actix_web::rt::spawn(reload_on_hangup(app.clone()));
    actix_web::rt::spawn(read_revoked_sessions(app.clone()));
    actix_web::rt::spawn(crate::streams::run(app.clone()));
    let handle = server.handle();
    let stopping = app.clone();
    actix_web::rt::spawn(async move {
        stop.await;
        tracing::info!("stopping: finishing in-flight requests");
        stopping.plans.stop_streams();
        // Hold no handle to the app while waiting: the writer thread ends
        // only once every handle is gone.
        drop(stopping);
        handle.stop(true).await;
    });
    server.await?;
    drop(cluster);
    app.writer.flush().await;
    Ok(())
}

/// Keeps `revoked_sessions` current with the database, where this and
/// every other process (and `wrapsync user disable`) revoke sessions. A
/// failed read keeps the set as it was and is tried again.
async fn read_revoked_sessions(app: web::Data<App>) {
    let mut stopping = app.plans.stopping();
    let mut tick = tokio::time::interval(crate::auth::sessions::POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        let now = db::now_ms();
        let since = app.revoked_sessions.since(now);
        match app
            .blocking(move |conn| crate::store::users::recently_revoked(conn, since))
            .await
        {
            Ok(read) => app.revoked_sessions.refresh(read, now),
            Err(e) => tracing::warn!(error = %e, "cannot read revoked sessions"),
        }
    }
}

/// Lets the configured web origins call the API from a browser; with none
/// configured, cross-origin calls get no CORS headers and browsers block them.
fn cors(origins: &[String]) -> actix_cors::Cors {
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::IF_MATCH,
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static("device-id"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(600)
        // Answer other origins without CORS headers (the browser blocks
        // them) rather than with an error: same-origin pages send `Origin`
        // too.
        .block_on_origin_mismatch(false)
}

/// Reloads the keys on every SIGHUP, for the node's life.
async fn reload_on_hangup(app: web::Data<App>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: keys reload only on restart");
            return;
        };
        while hangups.recv().await.is_some() {
            if let Err(e) = app.reload_keys() {
                tracing::error!(error = %e, "keys not reloaded: the keys in force are kept");
            }
            // Peer keys other processes on this database learnt meanwhile.
            let stored = app
                .blocking(|conn| {
                    Ok((
                        crate::store::peers::list(conn)?,
                        crate::store::peers::rotations(conn)?,
                    ))
                })
                .await;
            let reloaded = stored
                .map_err(|e| e.to_string())
                .and_then(|(peers, rotations)| {
                    app.federation.set_stored_and_rotations(peers, rotations)
                });
            if let Err(e) = reloaded {
                tracing::error!(error = %e, "peers not reloaded: the peers in force are kept");
            }
        }
    }
    #[cfg(not(unix))]
    drop(app);
}

/// SIGINT or SIGTERM.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
