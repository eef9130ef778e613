//! Prometheus metrics at `GET /metrics` (OpenMetrics text): how sending to
//! each peer and reports to the state hub goes, and how many plans are held
//! in memory. Counts and ids of nodes only; nothing about a family.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

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

pub struct Metrics {
    registry: Registry,
    plans_cached: Gauge,
    pub report: ReportMetrics,
}

impl Metrics {
    pub fn new(peers: &PeerMetrics) -> Metrics {
        let mut registry = Registry::with_prefix("wrapsync");
        let plans_cached = Gauge::default();
        registry.register("plans_cached", "Plans held in memory", plans_cached.clone());
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
            report,
        }
    }

    /// The OpenMetrics text, with the figures read at scrape time set.
    pub fn render(&self, plans_cached: usize) -> Result<String, std::fmt::Error> {
        self.plans_cached
            .set(i64::try_from(plans_cached).unwrap_or(i64::MAX));
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
        let text = metrics.render(3).unwrap_or_else(|e| panic!("{e}"));
        for line in [
            "wrapsync_hub_report_last_success_seconds 1795000000",
            "wrapsync_hub_report_last_failure_seconds 0",
            "wrapsync_hub_report_failures_total 1",
            "wrapsync_hub_report_cells 0",
            "wrapsync_plans_cached 3",
            "wrapsync_dp_epsilon_spent{year=\"2026\"} 0.25",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
    }
}
