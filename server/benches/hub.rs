//! The hub's core at state scale: merging 100 nodes × 24 periods of
//! reports, and publishing one period of 100 communities (sums, measures,
//! primary and complementary suppression with the linear audit), first
//! and second release.
//!
//! `cargo bench -p wrapsync-server --bench hub`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use wrapsync_server::hub::merge::HubState;
use wrapsync_server::hub::publish::{publish, Ledger};
use wrapsync_shared::indicators::{
    AgeBand, Cell, Measure, Period, Report, DEFINITIONS, VOCABULARY_VERSION,
};

const NODES: usize = 100;
const PERIODS: usize = 24;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    /// A county-sized count: zero, small or tens.
    fn count(&mut self) -> u64 {
        match self.below(4) {
            0 => 0,
            1 => 1 + self.below(10),
            _ => self.below(80),
        }
    }
}

fn report(rng: &mut Rng, period: Period, version: u64) -> Report {
    let mut cells = Vec::new();
    for def in DEFINITIONS {
        for age_band in AgeBand::ALL {
            let categories: Vec<_> = if def.categories.is_empty() {
                vec![None]
            } else {
                def.categories.iter().map(|c| Some(*c)).collect()
            };
            for category in categories {
                let (value, base) = match def.measure {
                    Measure::Count | Measure::Median => (rng.count(), None),
                    Measure::Rate => {
                        let base = rng.count();
                        (rng.below(base + 1), Some(base))
                    }
                    Measure::Amount => {
                        let youth = rng.count();
                        (youth * rng.below(40_000), Some(youth))
                    }
                };
                if value == 0 && base.unwrap_or(0) == 0 {
                    continue;
                }
                cells.push(Cell {
                    indicator: def.indicator,
                    age_band,
                    category,
                    value,
                    base,
                });
            }
        }
    }
    Report {
        vocabulary: VOCABULARY_VERSION,
        period,
        version,
        cells,
    }
}

fn submissions() -> Vec<(String, Report)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut period = Period::new(2025, 1).unwrap();
    let mut out = Vec::new();
    for _ in 0..PERIODS {
        for n in 0..NODES {
            out.push((format!("county-{n:03}"), report(&mut rng, period, 1)));
        }
        period = period.next();
    }
    out
}

fn bench(c: &mut Criterion) {
    let all = submissions();
    let cells: usize = all.iter().map(|(_, r)| r.cells.len()).sum();
    eprintln!(
        "{} reports, {cells} cells ({} per report)",
        all.len(),
        cells / all.len()
    );
    let mut group = c.benchmark_group("hub");
    group.sample_size(10);
    group.bench_function("merge 100 nodes x 24 periods", |b| {
        b.iter(|| {
            let mut state = HubState::default();
            for (node, report) in &all {
                state.merge(node, report);
            }
            black_box(state)
        })
    });
    let mut merged = HubState::default();
    for (node, report) in &all {
        merged.merge(node, report);
    }
    group.bench_function("merge the same 2,400 again (all unchanged)", |b| {
        b.iter_batched(
            || merged.clone(),
            |mut state| {
                for (node, report) in &all {
                    state.merge(node, report);
                }
                black_box(state)
            },
            BatchSize::LargeInput,
        )
    });
    let period = Period::new(2026, 12).unwrap();
    let reports = merged.period(period, VOCABULARY_VERSION);
    assert_eq!(reports.len(), NODES);
    group.bench_function("publish a period of 100 communities", |b| {
        b.iter(|| {
            black_box(publish(
                period,
                VOCABULARY_VERSION,
                &reports,
                &Ledger::default(),
            ))
        })
    });
    let (publication, entries) = publish(period, VOCABULARY_VERSION, &reports, &Ledger::default());
    let (mut figures, mut withheld) = (0, 0);
    for indicator in &publication.indicators {
        let places = std::iter::once(&indicator.statewide)
            .chain(indicator.communities.iter().map(|c| &c.figures));
        for b in places {
            let all = std::iter::once(&b.total)
                .chain(b.by_age_band.iter().map(|a| &a.figure))
                .chain(b.by_category.iter().map(|c| &c.figure));
            for f in all {
                figures += 1;
                withheld += usize::from(f.suppressed);
            }
        }
    }
    eprintln!("one period: {figures} figures, {withheld} withheld");
    let ledger = Ledger::from_entries(entries);
    group.bench_function("publish it again against the ledger", |b| {
        b.iter(|| black_box(publish(period, VOCABULARY_VERSION, &reports, &ledger)))
    });
    group.finish();
}

/// The same through storage: SQLite with `synchronous=FULL`, one
/// transaction (and fsync) per submission, as the hub runs.
fn store(c: &mut Criterion) {
    use wrapsync_server::db::Backend;
    use wrapsync_server::hub::{schema, store};
    let period = Period::new(2026, 12).unwrap();
    let month: Vec<(String, Report)> = submissions()
        .into_iter()
        .filter(|(_, r)| r.period == period)
        .collect();
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db").to_string_lossy().into_owned();
        let mut conn = Backend::Sqlite(path).connect().unwrap();
        schema::migrate(&mut conn).unwrap();
        (dir, conn)
    };
    let make = |reports: &[(String, Report)], earlier: &[_]| {
        let ledger = Ledger::from_entries(<[_]>::to_vec(earlier));
        publish(period, VOCABULARY_VERSION, reports, &ledger)
    };
    let mut group = c.benchmark_group("hub store (SQLite)");
    group.sample_size(10);
    group.bench_function("submit a period of 100 reports", |b| {
        b.iter_batched(
            fresh,
            |(dir, mut conn)| {
                for (node, report) in &month {
                    store::submit(&mut conn, node, report).unwrap();
                }
                (dir, conn)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("release it (load, publish, record the ledger)", |b| {
        b.iter_batched(
            || {
                let (dir, mut conn) = fresh();
                for (node, report) in &month {
                    store::submit(&mut conn, node, report).unwrap();
                }
                (dir, conn)
            },
            |(dir, mut conn)| {
                let release = store::release(&mut conn, period, VOCABULARY_VERSION, make).unwrap();
                (dir, conn, release)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench, store);
criterion_main!(benches);
