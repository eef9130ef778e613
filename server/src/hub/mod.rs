//! The state hub (`wrapsync hub`): enrolled communities send it signed,
//! de-identified reports (numbers and fixed vocabularies only); it keeps
//! each node's latest report per period (`merge`), publishes statewide and
//! per-community figures with small cells withheld (`publish`,
//! `suppress`, `linear`, `ledger`), and lists the enrolled nodes for peers to find
//! each other.
//!
//! Layers as in the node: `api` (HTTP, thin) → the sans-IO core (`merge`,
//! `publish`) and `store` (diesel, returns `StoreError`). The hub never
//! holds a record that could name a family: its tables are in `schema`.

pub mod api;
pub mod config;
pub mod csv;
pub mod dashboard;
pub mod document;
pub mod ledger;
pub mod linear;
pub mod merge;
pub mod publish;
pub mod schema;
pub mod store;
pub mod suppress;
pub mod tables;

use crate::audit::Action;
use crate::db::{self, Backend, DbConnection, Pool, StoreError};
use crate::error::ApiError;
use crate::federation::{NodeKey, Peers, Verifier};
use crate::start_error::StartError;
use actix_web::{middleware, web, HttpServer};
pub use config::HubConfig;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wrapsync_shared::hub::Publication;
use wrapsync_shared::indicators::Period;

/// The hub as a whole, built once at start and shared by every handler.
pub struct Hub {
    pub config: HubConfig,
    pub pool: Pool,
    pub key: NodeKey,
    /// The enrolled nodes, with their keys ready to check signatures.
    pub nodes: Peers,
    pub verifier: Verifier,
    pub metrics: crate::metrics::HubMetrics,
    /// What `GET /metrics` asks for, if the operator set one.
    pub scrape_token: Option<crate::metrics::ScrapeToken>,
    /// Body bytes being read, all requests together.
    pub buffered: Arc<crate::limits::BufferedBytes>,
    /// How the access log counts repeated refusals (the node's defaults).
    pub refusal_log: Arc<crate::observe::RefusalLog>,
    /// Signed requests per enrolled node (`rate_limit_per_node`).
    pub per_node: Option<crate::limits::Buckets>,
    /// Revisions per node and period (`rate_limit_revisions_per_period`).
    pub revisions: Option<crate::limits::Buckets>,
    /// Submissions and releases one at a time in this process (SQLite has
    /// one writer; on PostgreSQL a table lock serializes processes too).
    writes: Arc<Mutex<()>>,
    /// Bumped whenever a submission changes what the hub keeps.
    generation: AtomicU64,
    /// The last release of each period and the generation it was made at:
    /// the same data publishes the same figures, so it is served again.
    releases: Mutex<HashMap<Period, (u64, Arc<Publication>)>>,
}

impl Hub {
    /// Opens storage (migrating it) and loads or makes the hub's key.
    pub fn open(config: HubConfig) -> Result<Hub, StartError> {
        let backend = Backend::from_url(&config.database_url());
        let key_file = config.key_file();
        let mut also = vec![key_file.as_path()];
        also.extend(backend.sqlite_path().map(std::path::Path::new));
        if let Some(log) = &config.log_file {
            also.push(log);
        }
        crate::files::make_private(&config.data_dir, &also)
            .map_err(|e| StartError::data_dir(&config.data_dir, e))?;
        let mut conn = backend.connect()?;
        schema::migrate(&mut conn)?;
        drop(conn);
        let pool = db::pool(&backend, if backend.is_sqlite() { 4 } else { 8 })?;
        let key = NodeKey::load_or_create(&key_file).map_err(|e| StartError::KeyFile {
            path: key_file.clone(),
            reason: e.to_string(),
        })?;
        let nodes = Peers::enrolled(
            config
                .nodes
                .iter()
                .map(|n| (n.id.as_str(), n.public_key.as_str())),
        )
        .map_err(|reason| StartError::Setting {
            key: "nodes",
            reason,
        })?;
        let scrape_token =
            crate::metrics::ScrapeToken::configured(config.metrics_token_file.as_deref())?;
        Ok(Hub {
            scrape_token,
            verifier: Verifier::new(config.hub_id.clone(), db::now_ms() / 1000),
            buffered: crate::limits::BufferedBytes::new(config.max_buffered_body_bytes),
            per_node: crate::limits::Buckets::new(config.rate_limit_per_node),
            revisions: crate::limits::Buckets::new(config.rate_limit_revisions_per_period),
            config,
            pool,
            key,
            nodes,
            metrics: crate::metrics::HubMetrics::default(),
            refusal_log: Arc::new(crate::observe::RefusalLog::new(Default::default())),
            writes: Arc::new(Mutex::new(())),
            generation: AtomicU64::new(0),
            releases: Mutex::new(HashMap::new()),
        })
    }

    /// How a signed body is read: at most `max_body_bytes`, pausing at
    /// most 30 s, at `body_min_bytes_per_sec` at least.
    pub fn body_rules(&self) -> crate::api::extract::BodyRules {
        crate::api::extract::BodyRules {
            limit: self.config.max_body_bytes,
            idle: std::time::Duration::from_secs(30),
            min_rate: self.config.body_min_bytes_per_sec,
            buffered: self.buffered.clone(),
        }
    }

    /// Runs `f` on the blocking pool, never on an async worker.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        Ok(db::blocking(&self.pool, f).await?)
    }

    /// [`Hub::blocking`], holding the hub's write lock.
    pub async fn writing<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let writes = self.writes.clone();
        self.blocking(move |conn| {
            let _guard = writes.lock();
            f(conn)
        })
        .await
    }

    /// Records that `node`'s report for `period` was refused with `error`
    /// (audit row and a warning); a failure to record is logged, and the
    /// refusal stands.
    pub async fn refused(&self, node: &str, period: Period, error: &ApiError) {
        let detail = error.to_string();
        tracing::warn!(node = %node, period = %period, problem = error.code(), %detail,
            "report refused");
        let row = store::AuditRow {
            at: db::now_ms(),
            node_id: node.to_string(),
            action: Action::ReportSubmit.as_str().into(),
            outcome: error.code().to_string(),
            period: period.to_string(),
            detail,
        };
        if let Err(e) = self.writing(move |conn| store::audit(conn, &row)).await {
            tracing::error!(error = %e, "the hub's audit row of a refusal was not stored");
        }
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The release of `period` now: the last one if nothing changed since,
    /// else a new one, recorded in the ledger.
    pub async fn release(&self, period: Period) -> Result<Arc<Publication>, ApiError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((made_at, release)) = self.releases.lock().get(&period) {
            if *made_at == generation {
                return Ok(release.clone());
            }
        }
        let vocabulary = wrapsync_shared::indicators::VOCABULARY_VERSION;
        let enrolled: Vec<String> = self.config.nodes.iter().map(|n| n.id.clone()).collect();
        let publication = self
            .writing(move |conn| {
                store::release(conn, period, vocabulary, |reports, earlier| {
                    // A node the state office no longer enrolls is no longer
                    // published (its reports stay, should it return).
                    let reports: Vec<_> = reports
                        .iter()
                        .filter(|(node, _)| enrolled.iter().any(|id| id == node))
                        .cloned()
                        .collect();
                    let ledger = publish::Ledger::from_entries(earlier.iter().cloned());
                    publish::publish(period, vocabulary, &reports, &ledger)
                })
            })
            .await?;
        let publication = Arc::new(publication);
        // Only periods with reports are kept: asking for every other month
        // of the millennium costs no memory.
        if !publication.nodes.is_empty() {
            self.releases
                .lock()
                .insert(period, (generation, publication.clone()));
        }
        Ok(publication)
    }
}

/// Serves `hub` on `listener` until `stop` completes; in-flight requests
/// finish first.
pub async fn serve(
    listener: TcpListener,
    hub: web::Data<Hub>,
    stop: impl std::future::Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let workers = hub
        .config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let data = hub.clone();
    let server = HttpServer::new(move || {
        let http = data.metrics.http.clone();
        let log = data.refusal_log.clone();
        actix_web::App::new()
            .app_data(data.clone())
            .wrap(middleware::DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .wrap_fn(move |req, srv| crate::observe::request(req, srv, &http, &log, None))
            .configure(api::routes)
    })
    .workers(workers)
    .shutdown_timeout(30)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        stop.await;
        tracing::info!("stopping: finishing in-flight requests");
        handle.stop(true).await;
    });
    server.await
}
