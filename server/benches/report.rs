//! What the node's report costs once its plans are rendered: reading 5,000
//! plans (as the node renders them to JSON) into the facts the indicators
//! need and counting them into one period's cells, and the same for two
//! periods at once (what the hourly pass to the hub makes). Loading the
//! plans from storage is measured by the `plan` bench of the shared crate.
//!
//! Run with `cargo bench -p wrapsync-server --bench report`. Kept short
//! (10 samples) to fit a 2-core machine.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Duration;
use wrapsync_server::report::aggregate::{aggregate, Tally, Youth};
use wrapsync_shared::indicators::Period;

/// Flexible-fund categories the synthetic plans pay for.
const CATEGORIES: [&str; 4] = ["housing", "transportation", "respite", "education"];

/// Plans on a large county node.
const PLANS: usize = 5_000;

/// A plan a year or two into wraparound, varied by `n`: a dozen team
/// members, several strategies (some flex, paid), monthly meetings,
/// quarterly CANS and status snapshots.
fn plan(n: usize) -> Value {
    let day = |month: usize, d: usize| format!("2026-{:02}-{:02}", month % 12 + 1, d % 28 + 1);
    let id = |k: usize| format!("01J{:023}", n * 1_000 + k);
    let living = ["home", "kin", "foster", "group", "residential", "home"];
    let team: Vec<Value> = (0..12)
        .map(|k| {
            json!({"id": id(k), "name": format!("Member {k}"), "role": if k == 3 { "natural_support" } else { "provider" },
                   "support": if k % 5 == 0 { "informal" } else { "formal" }, "phone": "555-0100",
                   "status": if k == 7 { "left" } else { "active" }})
        })
        .collect();
    let strategies: Vec<Value> = (0..8)
        .map(|k| {
            json!({"id": id(100 + k), "description": "A strategy in the family's words", "kind": if k % 2 == 0 { "flex" } else { "formal" },
                   "flex": {"category": CATEGORIES[k % CATEGORIES.len()], "amount_cents": 2_500 * (k + 1),
                            "status": if k % 3 == 0 { "approved" } else { "paid" }, "paid_on": day(n + k, n + k)},
                   "steps": [{"id": id(200 + k), "description": "A step", "status": "open"}]})
        })
        .collect();
    let meetings: Vec<Value> = (0..12)
        .map(|k| json!({"id": id(300 + k), "held_on": day(k, n), "status": if k % 4 == 0 { "scheduled" } else { "held" }, "place": "Home"}))
        .collect();
    let cans: Vec<Value> = (0..4)
        .map(|k| {
            let ratings: serde_json::Map<String, Value> = (0..40)
                .map(|item| (format!("item{item}"), json!((item + n + k) % 4)))
                .collect();
            json!({"id": id(400 + k), "assessed_on": day(k * 3 + n % 3, n), "status": if k == 2 { "draft" } else { "final" }, "ratings": ratings})
        })
        .collect();
    let status: Vec<Value> = (0..4)
        .map(|k| {
            json!({"id": id(500 + k), "as_of": day(k * 3 + n % 3, n + 1), "living": living[(n + k) % living.len()],
                   "school_days_missed_30d": (n + k) % 6, "arrests_30d": (n + k) % 5 / 4, "psych_admissions_180d": (n * k) % 3 / 2,
                   "status": "recorded"})
        })
        .collect();
    let discharged = n.is_multiple_of(7).then(|| day(10, n));
    json!({
        "schema_version": 1,
        "title": format!("Plan {n}"),
        "youth": {"name": format!("Youth {n}"), "birth_date": format!("{}-{:02}-{:02}", 2005 + n % 20, n % 12 + 1, n % 28 + 1)},
        "enrollment": {"enrolled_on": format!("2025-{:02}-{:02}", n % 12 + 1, n % 28 + 1), "phase": "implementation",
                       "plan_adopted_on": format!("2025-{:02}-{:02}", n % 12 + 1, (n + 20) % 28 + 1),
                       "discharged_on": discharged, "discharge_reason": "completed"},
        "vision": "The family's vision in their own words",
        "team": team, "strategies": strategies, "meetings": meetings, "cans": cans, "status": status,
        "crisis_plan": {"reviewed_on": day(n, n), "prevention": "Free text"},
    })
}

fn report(c: &mut Criterion) {
    let plans: Vec<Value> = (0..PLANS).map(plan).collect();
    let november = Period::new(2026, 11).unwrap_or_else(|| panic!("period"));
    let cells = aggregate(&plans, november);
    assert!(cells.len() > 40, "the synthetic plans fill too few cells");

    let mut group = c.benchmark_group("report");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("aggregate_5000_plans_one_period", |b| {
        b.iter(|| black_box(aggregate(black_box(&plans), november)))
    });
    group.bench_function("aggregate_5000_plans_two_periods", |b| {
        b.iter(|| {
            let mut tallies = [Tally::new(november.previous()), Tally::new(november)];
            for plan in &plans {
                let youth = Youth::from_plan(plan);
                for tally in &mut tallies {
                    tally.add(&youth);
                }
            }
            black_box(tallies.map(|t| t.cells()))
        })
    });
    group.finish();
}

criterion_group!(benches, report);
criterion_main!(benches);
