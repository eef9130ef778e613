//! What a run measured: latencies in HDR histograms (one per request kind,
//! merged across connections at the end), errors by status, and the summary
//! printed for people and as one JSON line for scripts.

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Latencies are kept in microseconds, up to an hour, 3 significant digits.
const MAX_MICROS: u64 = 3_600_000_000;

/// The kinds of request a scenario mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /v1/plans/{id}`.
    Read,
    /// `GET /v1/plans` (the first page).
    List,
    /// `POST /v1/plans/{id}/ops`.
    Ops,
    /// One round of `POST /v1/plans/{id}/sync`.
    Sync,
    /// `POST /v1/auth/refresh`.
    Refresh,
    /// `POST /v1/auth/login` (argon2 on the node).
    Login,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Read,
        Kind::List,
        Kind::Ops,
        Kind::Sync,
        Kind::Refresh,
        Kind::Login,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::List => "list",
            Kind::Ops => "ops",
            Kind::Sync => "sync",
            Kind::Refresh => "refresh",
            Kind::Login => "login",
        }
    }
}

/// One connection's tally, merged into the run's at the end so the hot
/// path never shares a lock.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of successful (2xx) requests, from due time to full body.
    ok_latency: [Histogram<u64>; 6],
    /// Latency of every answered or failed request, errors included.
    all_latency: Histogram<u64>,
    pub sent: u64,
    pub ok: u64,
    /// By HTTP status (`"409"`) or transport failure (`"timeout"`).
    pub errors: BTreeMap<String, u64>,
    /// Due requests never sent because the run ended while a connection was
    /// still behind: the node did not keep up with the rate.
    pub unsent: u64,
    /// Successful requests of the warm-up, left out of the percentiles.
    pub warming: u64,
}

fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).map_err(|e| format!("histogram: {e}"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Stats {
    pub fn new() -> Result<Stats, String> {
        Ok(Stats {
            ok_latency: [
                histogram()?,
                histogram()?,
                histogram()?,
                histogram()?,
                histogram()?,
                histogram()?,
            ],
            all_latency: histogram()?,
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            unsent: 0,
            warming: 0,
        })
    }

    /// A request that got a 2xx answer `latency` after it was due.
    pub fn record_ok(&mut self, kind: Kind, latency: Duration) {
        self.sent += 1;
        self.ok += 1;
        self.ok_latency[kind as usize].saturating_record(micros(latency));
        self.all_latency.saturating_record(micros(latency));
    }

    /// A request that failed; `why` is its status or transport failure.
    pub fn record_error(&mut self, why: String, latency: Duration) {
        self.sent += 1;
        *self.errors.entry(why).or_default() += 1;
        self.all_latency.saturating_record(micros(latency));
    }

    pub fn merge(&mut self, other: &Stats) -> Result<(), String> {
        for (mine, theirs) in self.ok_latency.iter_mut().zip(&other.ok_latency) {
            mine.add(theirs)
                .map_err(|e| format!("merging histograms: {e}"))?;
        }
        self.all_latency
            .add(&other.all_latency)
            .map_err(|e| format!("merging histograms: {e}"))?;
        self.sent += other.sent;
        self.ok += other.ok;
        self.unsent += other.unsent;
        self.warming += other.warming;
        for (why, n) in &other.errors {
            *self.errors.entry(why.clone()).or_default() += n;
        }
        Ok(())
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The successful requests of every kind together.
    fn ok_all(&self) -> Result<Histogram<u64>, String> {
        let mut all = histogram()?;
        for h in &self.ok_latency {
            all.add(h).map_err(|e| format!("merging histograms: {e}"))?;
        }
        Ok(all)
    }
}

/// The run as configured, for the summary.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub scenario: &'static str,
    pub url: String,
    pub rate: f64,
    pub duration: Duration,
    pub connections: usize,
    pub plans: usize,
    pub scheduled: u64,
    /// From the first due time until the last answer.
    pub elapsed: Duration,
}

const QUANTILES: [(&str, f64); 4] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99_9", 0.999),
];

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    let mut out = Map::new();
    out.insert("count".into(), json!(h.len()));
    for (name, q) in QUANTILES {
        out.insert(format!("{name}_ms"), json!(ms(h.value_at_quantile(q))));
    }
    out.insert("max_ms".into(), json!(ms(h.max())));
    out.insert("mean_ms".into(), json!(h.mean().round() / 1000.0));
    Value::Object(out)
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (n as f64 / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// The one-line JSON summary (stdout), for scripts and CI to compare runs.
pub fn summary_json(info: &RunInfo, stats: &Stats) -> Result<Value, String> {
    let mut by_kind = Map::new();
    for kind in Kind::ALL {
        let h = &stats.ok_latency[kind as usize];
        if !h.is_empty() {
            by_kind.insert(kind.name().into(), latency_json(h));
        }
    }
    Ok(json!({
        "scenario": info.scenario,
        "url": info.url,
        "target_rps": info.rate,
        "duration_s": info.duration.as_secs_f64(),
        "connections": info.connections,
        "plans": info.plans,
        "scheduled": info.scheduled,
        "sent": stats.sent,
        "ok": stats.ok,
        "errors": stats.errors,
        "unsent": stats.unsent,
        "warmup_ok": stats.warming,
        "elapsed_s": (info.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "achieved_rps": rate(stats.sent, info.elapsed),
        "ok_rps": rate(stats.ok, info.elapsed),
        "latency": latency_json(&stats.ok_all()?),
        "latency_all_outcomes": latency_json(&stats.all_latency),
        "latency_by_kind": by_kind,
    }))
}

/// The summary for a person (stderr).
pub fn summary_text(info: &RunInfo, stats: &Stats) -> Result<String, String> {
    let mut out = String::new();
    let w = |e: std::fmt::Error| e.to_string();
    writeln!(
        out,
        "wrapsync-load: {} against {} at {} req/s for {:.1} s over {} connection(s), {} plan(s)",
        info.scenario,
        info.url,
        info.rate,
        info.duration.as_secs_f64(),
        info.connections,
        info.plans
    )
    .map_err(w)?;
    writeln!(
        out,
        "  scheduled {}, sent {}, ok {} (+{} in the warm-up, not in the percentiles), errors {}, unsent (node fell behind) {}",
        info.scheduled,
        stats.sent,
        stats.ok,
        stats.warming,
        stats.error_count(),
        stats.unsent
    )
    .map_err(w)?;
    writeln!(
        out,
        "  achieved {:.1} req/s (ok {:.1} req/s) in {:.2} s",
        rate(stats.sent, info.elapsed),
        rate(stats.ok, info.elapsed),
        info.elapsed.as_secs_f64()
    )
    .map_err(w)?;
    if !stats.errors.is_empty() {
        let list: Vec<String> = stats
            .errors
            .iter()
            .map(|(why, n)| format!("{why} ×{n}"))
            .collect();
        writeln!(out, "  errors: {}", list.join(", ")).map_err(w)?;
    }
    writeln!(
        out,
        "  latency of ok requests from their scheduled time, ms:\n  {:<8}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "", "count", "p50", "p90", "p99", "p99.9", "max"
    )
    .map_err(w)?;
    let all = stats.ok_all()?;
    let mut rows = vec![("all", &all)];
    for kind in Kind::ALL {
        let h = &stats.ok_latency[kind as usize];
        if !h.is_empty() {
            rows.push((kind.name(), h));
        }
    }
    for (name, h) in rows {
        write!(out, "  {name:<8}{:>8}", h.len()).map_err(w)?;
        for (_, q) in QUANTILES {
            write!(out, "{:>10.3}", ms(h.value_at_quantile(q))).map_err(w)?;
        }
        writeln!(out, "{:>10.3}", ms(h.max())).map_err(w)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Stats {
        match Stats::new() {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn connections_merge_into_one_tally() {
        let mut a = stats();
        for ms in 1..=100 {
            a.record_ok(Kind::Read, Duration::from_millis(ms));
        }
        let mut b = stats();
        b.record_ok(Kind::Ops, Duration::from_secs(2));
        b.record_error("409".into(), Duration::from_millis(3));
        b.record_error("409".into(), Duration::from_millis(3));
        b.unsent = 7;
        assert!(a.merge(&b).is_ok());
        assert_eq!((a.sent, a.ok, a.unsent, a.error_count()), (103, 101, 7, 2));
        let info = RunInfo {
            scenario: "mixed",
            url: "http://127.0.0.1:1".into(),
            rate: 100.0,
            duration: Duration::from_secs(1),
            connections: 2,
            plans: 1,
            scheduled: 110,
            elapsed: Duration::from_secs(1),
        };
        let Ok(j) = summary_json(&info, &a) else {
            panic!("summary")
        };
        assert_eq!(j["errors"]["409"], 2);
        assert_eq!(j["achieved_rps"], 103.0);
        assert_eq!(j["latency"]["count"], 101);
        let p50 = j["latency"]["p50_ms"].as_f64().unwrap_or_default();
        assert!((50.0..=51.1).contains(&p50), "{p50}");
        let max = j["latency"]["max_ms"].as_f64().unwrap_or_default();
        assert!((1999.0..=2002.0).contains(&max), "{max}");
        assert_eq!(j["latency_by_kind"]["ops"]["count"], 1);
        assert_eq!(j["latency_all_outcomes"]["count"], 103);
        let text = summary_text(&info, &a).unwrap_or_default();
        assert!(text.contains("409 ×2"), "{text}");
        assert!(text.contains("read"), "{text}");
    }

    #[test]
    fn an_empty_run_reports_no_percentiles() {
        let j = summary_json(
            &RunInfo {
                scenario: "read",
                url: String::new(),
                rate: 1.0,
                duration: Duration::from_secs(1),
                connections: 1,
                plans: 1,
                scheduled: 1,
                elapsed: Duration::ZERO,
            },
            &stats(),
        );
        assert!(matches!(j, Ok(ref v) if v["latency"] == json!({"count": 0})));
    }
}
