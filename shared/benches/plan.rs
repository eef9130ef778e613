//! What a busy plan costs the node: applying one edit to a plan that already
//! has 2,000 changes, and loading such a plan from storage (one snapshot, or
//! a snapshot plus the incremental chunks written since the last
//! compaction) and rendering it to the JSON the API serves.
//!
//! Run with `cargo bench -p wrapsync-shared --bench plan`. Kept short
//! (10 samples, ~3 s each) to fit a 2-core machine.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Duration;
use wrapsync_shared::automerge::transaction::CommitOptions;
use wrapsync_shared::automerge::Automerge;
use wrapsync_shared::ops::{apply_ops, summarize, Editor, Op, OpResult};
use wrapsync_shared::plan::{init_plan, render};
use wrapsync_shared::roles::Role;

/// Changes in the plan under test: a family two years into wraparound with
/// weekly edits by several team members.
const HISTORY: usize = 2_000;
/// Incremental chunks written since the last snapshot.
const CHUNKS: usize = 50;

/// Deterministic, time-ordered item ids, so every run builds the same plan.
fn id_source(start: u64) -> impl FnMut() -> String {
    let mut n = start;
    move || {
        n += 1;
        ulid::Ulid::from_parts(1_700_000_000_000 + n, u128::from(n)).to_string()
    }
}

fn op(op: &str, path: &str, value: Value) -> Op {
    Op {
        op: op.into(),
        path: path.into(),
        value: Some(value),
        from: None,
    }
}

fn facilitator() -> Editor {
    Editor {
        role: Role::Facilitator,
        member_id: None,
    }
}

/// Applies `ops` as one change, as the node does for one request. Answers
/// the ops' results and whether a change was made (setting a field to the
/// value it already holds makes none).
fn edit(
    doc: &mut Automerge,
    ops: &[Op],
    ids: &mut dyn FnMut() -> String,
    time: i64,
) -> (Vec<OpResult>, bool) {
    let mut tx = doc.transaction();
    match apply_ops(&mut tx, ops, &facilitator(), ids) {
        Ok(results) => {
            let (hash, _) = tx.commit_with(
                CommitOptions::default()
                    .with_message(summarize(ops))
                    .with_time(time),
            );
            (results, hash.is_some())
        }
        Err(e) => panic!("bench setup edit {ops:?} refused: {e:?}"),
    }
}

fn added_id(results: &[OpResult]) -> String {
    match results.first().and_then(|r| r.id.clone()) {
        Some(id) => id,
        None => panic!("an add answered no id"),
    }
}

/// Builds a plan change by change, an hour apart.
struct History<'a> {
    doc: Automerge,
    ids: &'a mut dyn FnMut() -> String,
    changes: usize,
    time: i64,
}

impl History<'_> {
    fn edit(&mut self, ops: &[Op]) -> Vec<OpResult> {
        self.time += 3_600;
        let (results, changed) = edit(&mut self.doc, ops, self.ids, self.time);
        self.changes += usize::from(changed);
        results
    }
}

/// A plan with `HISTORY` changes: a team, needs, outcomes and strategies
/// set up first, then a long tail of the everyday edits — vision and
/// mission rewrites, need statuses, outcome progress, meetings.
fn busy_plan(ids: &mut dyn FnMut() -> String) -> Automerge {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    if let Err(e) = init_plan(&mut tx, "Rivera family") {
        panic!("init_plan: {e}");
    }
    tx.commit();
    let mut h = History {
        doc,
        ids,
        changes: 1,
        time: 1_700_000_000,
    };
    let roles = [
        "caregiver",
        "youth",
        "family_advocate",
        "provider",
        "natural_support",
        "provider",
    ];
    for (i, role) in roles.iter().enumerate() {
        h.edit(&[op(
            "add",
            "/team",
            json!({"name": format!("Member {i}"), "role": role}),
        )]);
    }
    let domains = ["home", "school", "health", "safety", "social"];
    let mut needs = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..10 {
        let need = added_id(&h.edit(&[op(
            "add",
            "/needs",
            json!({"domain": domains[i % domains.len()],
                   "statement": format!("Need {i}: mornings go calmly"),
                   "priority": 1 + i % 5}),
        )]));
        let outcome = added_id(&h.edit(&[op(
            "add",
            "/outcomes",
            json!({"statement": format!("Outcome {i}"), "needs": [need],
                   "indicator": "days per week", "baseline": 1, "target": 5}),
        )]));
        needs.push(need);
        outcomes.push(outcome);
    }
    for i in 0..5 {
        h.edit(&[op(
            "add",
            "/strategies",
            json!({"description": format!("Strategy {i}"), "kind": "informal",
                   "steps": [{"description": "Call the school"}, {"description": "Plan the week"}]}),
        )]);
    }
    let mut i = 0usize;
    while h.changes < HISTORY {
        let edit = match i % 6 {
            0 | 3 => op(
                "replace",
                "/vision",
                json!(format!(
                    "Revision {i}: we stay together at home and the kids go to school every day"
                )),
            ),
            1 => op(
                "add",
                &format!("/outcomes/{}/progress", outcomes[i % outcomes.len()]),
                json!({"on": "2026-01-15", "value": i % 7, "note": "Weekly check-in"}),
            ),
            2 => op(
                "replace",
                &format!("/needs/{}/status", needs[i % needs.len()]),
                json!(if i.is_multiple_of(4) { "met" } else { "active" }),
            ),
            4 => op(
                "replace",
                "/mission",
                json!(format!("Mission {i}: the team meets every other Tuesday")),
            ),
            _ => op(
                "add",
                "/meetings",
                json!({"held_on": "2026-02-03", "place": "Family home",
                       "decisions": format!("Meeting {i}")}),
            ),
        };
        h.edit(&[edit]);
        i += 1;
    }
    h.doc
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

fn benches(c: &mut Criterion) {
    let mut ids = id_source(0);
    let base = busy_plan(&mut ids);
    assert_eq!(base.get_changes(&[]).len(), HISTORY);
    let snapshot = base.save();

    // One snapshot and the changes written after it, one chunk per change,
    // as the node appends them between compactions.
    let mut grown = base.clone();
    let mut chunked = snapshot.clone();
    for i in 0..CHUNKS {
        let heads = grown.get_heads();
        let ops = [op(
            "replace",
            "/vision",
            json!(format!("After snapshot {i}")),
        )];
        edit(&mut grown, &ops, &mut ids, 1_800_000_000 + i as i64);
        chunked.extend(grown.save_after(&heads));
    }
    match Automerge::load(&chunked) {
        Ok(doc) if doc.get_heads() == grown.get_heads() => {}
        Ok(_) => panic!("snapshot + chunks loaded to other heads"),
        Err(e) => panic!("snapshot + chunks do not load: {e}"),
    }
    let rendered = serde_json::to_vec(&render(&base)).unwrap_or_default();
    eprintln!(
        "plan: {HISTORY} changes, snapshot {} bytes, snapshot + {CHUNKS} chunks {} bytes, JSON {} bytes",
        snapshot.len(),
        chunked.len(),
        rendered.len()
    );

    let mut group = c.benchmark_group("plan_2000_changes");
    let outcome = render(&base)["outcomes"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let replace = [op("replace", "/vision", json!("We stay together"))];
    let add = [op(
        "add",
        &format!("/outcomes/{outcome}/progress"),
        json!({"on": "2026-03-01", "value": 4, "note": "Good week"}),
    )];
    for (name, ops) in [("apply_replace", &replace), ("apply_add", &add)] {
        let mut bench_ids = id_source(1_000_000);
        group.bench_function(name, |b| {
            b.iter_batched(
                || base.clone(),
                |mut doc| {
                    edit(&mut doc, ops, &mut bench_ids, 1_900_000_000);
                    doc
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("render_json", |b| {
        b.iter(|| serde_json::to_vec(&render(black_box(&base))))
    });
    group.bench_function("load_snapshot", |b| {
        b.iter(|| Automerge::load(black_box(&snapshot)))
    });
    group.bench_function("load_snapshot_render_json", |b| {
        b.iter(|| {
            Automerge::load(black_box(&snapshot)).map(|doc| serde_json::to_vec(&render(&doc)))
        })
    });
    group.bench_function("load_snapshot_plus_50_chunks", |b| {
        b.iter(|| Automerge::load(black_box(&chunked)))
    });
    group.bench_function("load_snapshot_plus_50_chunks_render_json", |b| {
        b.iter(|| Automerge::load(black_box(&chunked)).map(|doc| serde_json::to_vec(&render(&doc))))
    });
    group.finish();
}

criterion_group! {
    name = plan;
    config = config();
    targets = benches
}
criterion_main!(plan);
