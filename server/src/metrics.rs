//! Prometheus metrics at `GET /metrics` (OpenMetrics text): requests by
//! route pattern and status, refusals by problem type, the database pool,
//! how sending to each peer and reports to the state hub goes, and how many
//! plans are held in memory. Counts, route patterns and ids of nodes only;
//! nothing about a family, never a concrete path (which holds plan ids).

use crate::start_error::StartError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The bearer token `GET /metrics` asks for when the operator sets
/// `metrics_token_file` (what Prometheus sends from its
/// `authorization.credentials_file`). Without one the metrics are open:
/// they hold counts, route patterns and node ids, nothing about a family.
/// Kept and compared as a digest, so the time a comparison takes says
/// nothing about how much of a guess was right.
#[derive(Clone)]
pub struct ScrapeToken([u8; 32]);

impl std::fmt::Debug for ScrapeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeToken(…)")
    }
}

impl ScrapeToken {
    /// The token in `path` (surrounding whitespace dropped); at least 16
    /// characters, so it cannot be guessed in a scrape interval.
    pub fn read(path: &Path) -> Result<ScrapeToken, StartError> {
        let refused = |reason: String| StartError::MetricsToken {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))?;
        let token = text.trim();
        if token.len() < 16 {
            return Err(refused("holds fewer than 16 characters".into()));
        }
        Ok(ScrapeToken(Self::digest(token)))
    }

    /// The token of `metrics_token_file`, if the config sets one.
    pub fn configured(file: Option<&Path>) -> Result<Option<ScrapeToken>, StartError> {
        file.map(Self::read).transpose()
    }

    fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    /// Lets a scrape through when no token is set or the request's
    /// `Authorization: Bearer` carries it.
    pub fn admit(
        token: Option<&ScrapeToken>,
        request: &actix_web::HttpRequest,
    ) -> Result<(), crate::error::ApiError> {
        let Some(ScrapeToken(expected)) = token else {
            return Ok(());
        };
        let offered = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(Self::digest);
        match offered {
            Some(digest) if digest == *expected => Ok(()),
            Some(_) => Err(crate::error::ApiError::Unauthorized(
                "the metrics token is wrong".into(),
            )),
            None => Err(crate::error::ApiError::Unauthorized(
                "metrics need the scrape token (Authorization: Bearer …)".into(),
            )),
        }
    }
}

/// One answered request: the route *pattern* (`/v1/plans/{id}`, or
/// `unmatched`), never the concrete path.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

/// Why a request was refused: the problem `type` code (`not-found`,
/// `unauthorized`, …) of the 4xx/5xx answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// What the HTTP middleware (`observe`) records of every request; shared by
/// the node and the hub.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Latency,
    refused: Family<ReasonLabel, Counter>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            refused: Family::default(),
        }
    }
}

impl HttpMetrics {
    /// Counts one answered request; `refused` is the problem code of a
    /// 4xx/5xx answer.
    pub fn record(
        &self,
        route: &str,
        method: &str,
        status: u16,
        elapsed: Duration,
        refused: Option<&str>,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(reason) = refused {
            self.refused
                .get_or_create(&ReasonLabel {
                    reason: reason.to_string(),
                })
                .inc();
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "Requests answered, by route pattern, method and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route pattern and method",
            self.duration.clone(),
        );
        registry.register(
            "refused_requests",
            "Requests answered 4xx or 5xx, by problem type",
            self.refused.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolStateLabel {
    pub state: &'static str,
}

/// The database read pool's connections (idle, in use, and the most it
/// opens), read at scrape time.
#[derive(Clone, Default)]
pub struct PoolMetrics {
    connections: Family<PoolStateLabel, Gauge>,
    max: Gauge,
}

impl PoolMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "db_pool_connections",
            "Open connections of the database read pool, idle or in use",
            self.connections.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "Connections the database read pool opens at most",
            self.max.clone(),
        );
    }

    /// Sets the figures from the pool as it is now.
    pub fn set(&self, pool: &crate::db::Pool) {
        let state = pool.state();
        let idle = i64::from(state.idle_connections);
        let open = i64::from(state.connections);
        self.connections
            .get_or_create(&PoolStateLabel { state: "idle" })
            .set(idle);
        self.connections
            .get_or_create(&PoolStateLabel { state: "in_use" })
            .set(open.saturating_sub(idle));
        self.max.set(i64::from(pool.max_size()));
    }
}

/// The hub's metrics: its HTTP figures and database pool.
pub struct HubMetrics {
    registry: Registry,
    pub http: HttpMetrics,
    pool: PoolMetrics,
}

impl Default for HubMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wrapsync");
        let http = HttpMetrics::default();
        http.register(&mut registry);
        let pool = PoolMetrics::default();
        pool.register(&mut registry);
        HubMetrics {
            registry,
            http,
            pool,
        }
    }
}

impl HubMetrics {
    /// The OpenMetrics text, with the pool read now.
    pub fn render(&self, pool: &crate::db::Pool) -> Result<String, std::fmt::Error> {
        self.pool.set(pool);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: String,
}

impl PeerLabel {
    pub fn of(peer: &str) -> Self {
        PeerLabel {
            peer: peer.to_string(),
        }
    }
}

/// Per-peer federation figures, updated by the outbound loop.
#[derive(Clone, Default)]
pub struct PeerMetrics {
    pub reachable: Family<PeerLabel, Gauge>,
    pub last_success_seconds: Family<PeerLabel, Gauge>,
    pub plans_behind: Family<PeerLabel, Gauge>,
    pub failures: Family<PeerLabel, Counter>,
    pub plans_sent: Family<PeerLabel, Counter>,
    /// Seconds since the last completed pass, set at scrape time.
    pub sync_lag_seconds: Family<PeerLabel, Gauge>,
}

/// A calendar year, for the privacy budget spent on its months.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct YearLabel {
    pub year: i32,
}

/// How sending reports to the state hub goes, updated by `report::send`
/// (and the privacy budget spent, by `report::release`).
#[derive(Clone, Default)]
pub struct ReportMetrics {
    pub last_success_seconds: Gauge,
    pub last_failure_seconds: Gauge,
    pub failures: Counter,
    pub cells: Gauge,
    pub privacy_spent: Family<YearLabel, Gauge<f64, AtomicU64>>,
}

/// The figures read at scrape time rather than kept up to date.
pub struct Scrape<'a> {
    pub plans_cached: usize,
    pub pool: &'a crate::db::Pool,
    /// Each peer's last completed pass (Unix milliseconds), if any.
    pub peer_successes: Vec<(String, i64)>,
    pub now_ms: i64,
}

pub struct Metrics {
    registry: Registry,
    plans_cached: Gauge,
    peers: PeerMetrics,
    pool: PoolMetrics,
    pub http: HttpMetrics,
    pub report: ReportMetrics,
    /// Whether this process runs the node's background work (`cluster`).
    pub leader: Gauge,
}

impl Metrics {
    pub fn new(peers: &PeerMetrics) -> Metrics {
        let mut registry = Registry::with_prefix("wrapsync");
        let plans_cached = Gauge::default();
        registry.register("plans_cached", "Plans held in memory", plans_cached.clone());
        let leader = Gauge::default();
        registry.register(
            "background_leader",
            "Whether this process runs the node's background work (1) or another process sharing its database does (0)",
            leader.clone(),
        );
        registry.register(
            "peer_reachable",
            "Whether the last attempt to send to the peer reached it (1) or not (0)",
            peers.reachable.clone(),
        );
        registry.register(
            "peer_last_success_seconds",
            "When a pass to the peer last completed (Unix seconds)",
            peers.last_success_seconds.clone(),
        );
        registry.register(
            "peer_plans_behind",
            "Shared plans not yet sent to the peer in the current or failed pass",
            peers.plans_behind.clone(),
        );
        registry.register(
            "peer_failures",
            "Passes to the peer that failed",
            peers.failures.clone(),
        );
        registry.register(
            "peer_plans_sent",
            "Plan sync sessions with the peer that completed",
            peers.plans_sent.clone(),
        );
        registry.register(
            "peer_sync_lag_seconds",
            "Seconds since a pass to the peer last completed (peers never reached are absent)",
            peers.sync_lag_seconds.clone(),
        );
        let http = HttpMetrics::default();
        http.register(&mut registry);
        let pool = PoolMetrics::default();
        pool.register(&mut registry);
        let report = ReportMetrics::default();
        registry.register(
            "hub_report_last_success_seconds",
            "When reports last reached the state hub (Unix seconds)",
            report.last_success_seconds.clone(),
        );
        registry.register(
            "hub_report_last_failure_seconds",
            "When a pass sending reports to the state hub last failed (Unix seconds; the log says why)",
            report.last_failure_seconds.clone(),
        );
        registry.register(
            "hub_report_failures",
            "Passes sending reports to the state hub that failed",
            report.failures.clone(),
        );
        registry.register(
            "hub_report_cells",
            "Cells in the reports last sent to the state hub",
            report.cells.clone(),
        );
        registry.register(
            "dp_epsilon_spent",
            "Privacy loss (epsilon) spent on the released months of a year, out of dp_epsilon_per_year",
            report.privacy_spent.clone(),
        );
        Metrics {
            registry,
            plans_cached,
            peers: peers.clone(),
            pool,
            http,
            report,
            leader,
        }
    }

    /// Adds the change-feed streams' figures (`crate::streams`).
    pub fn register_streams(&mut self, streams: &crate::streams::StreamMetrics) {
        streams.register(&mut self.registry);
    }

    /// The OpenMetrics text, with the figures read at scrape time set.
    pub fn render(&self, scrape: Scrape<'_>) -> Result<String, std::fmt::Error> {
        self.plans_cached
            .set(i64::try_from(scrape.plans_cached).unwrap_or(i64::MAX));
        self.pool.set(scrape.pool);
        // A peer removed since drops out rather than lagging forever.
        self.peers.sync_lag_seconds.clear();
        for (peer, last_success_ms) in &scrape.peer_successes {
            self.peers
                .sync_lag_seconds
                .get_or_create(&PeerLabel::of(peer))
                .set(scrape.now_ms.saturating_sub(*last_success_ms).max(0) / 1000);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporting_to_the_hub_shows_in_the_metrics() {
        let metrics = Metrics::new(&PeerMetrics::default());
        metrics.report.last_success_seconds.set(1_795_000_000);
        metrics.report.failures.inc();
        metrics
            .report
            .privacy_spent
            .get_or_create(&YearLabel { year: 2026 })
            .set(0.25);
        let pool = crate::db::pool(&crate::db::Backend::Sqlite(":memory:".into()), 2)
            .unwrap_or_else(|e| panic!("{e}"));
        let _held = pool.get().unwrap_or_else(|e| panic!("{e}"));
        let text = metrics
            .render(Scrape {
                plans_cached: 3,
                pool: &pool,
                peer_successes: vec![("county-b".into(), 1_795_000_000_000)],
                now_ms: 1_795_000_042_500,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        for line in [
            "wrapsync_hub_report_last_success_seconds 1795000000",
            "wrapsync_hub_report_last_failure_seconds 0",
            "wrapsync_hub_report_failures_total 1",
            "wrapsync_hub_report_cells 0",
            "wrapsync_plans_cached 3",
            "wrapsync_dp_epsilon_spent{year=\"2026\"} 0.25",
            "wrapsync_peer_sync_lag_seconds{peer=\"county-b\"} 42",
            "wrapsync_db_pool_connections{state=\"in_use\"} 1",
            "wrapsync_db_pool_max_connections 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
    }
}
