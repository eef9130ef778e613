//! What the node acknowledged survives a SIGKILL; a SIGTERM stops it cleanly.

use crate::audit::all_audit;
use crate::{add_member, item, items};
use serde_json::json;
use std::collections::BTreeSet;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, SUPERVISOR};
use wrapsync_tests::{deadline, wait_until, Backend, TestNode};

on_both_backends!(
    acknowledged_writes_survive_kill_9,
    sigterm_stops_the_node_cleanly_and_keeps_its_data,
);

const WRITES_PER_WRITER: usize = 10;

fn acknowledged_writes_survive_kill_9(backend: Backend) {
    let mut node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let sam = node.login(SUPERVISOR);
    let plan = node.create_plan(&fran, "Durable family").id;
    let other = node.create_plan(&sam, "Another family").id;
    add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));

    // Two people write to the same plan at once; every acknowledged add
    // must survive.
    let writer = |token: &str, who: &str| {
        (0..WRITES_PER_WRITER)
            .map(|i| {
                let reply = node.apply_ops(
                    token,
                    &plan,
                    json!([{ "op": "add", "path": "/strengths", "value": { "statement": format!("{who} {i}") } }]),
                );
                let id = reply.results[0].id.clone().expect("an id");
                (id, format!("{who} {i}"))
            })
            .collect::<Vec<_>>()
    };
    let (by_fran, by_carla) = std::thread::scope(|s| {
        let a = s.spawn(|| writer(&fran, "fran"));
        let b = s.spawn(|| writer(&carla, "carla"));
        (
            a.join().expect("fran's writer"),
            b.join().expect("carla's writer"),
        )
    });
    let history_before = node.history(&fran, &plan).changes.len();
    let last = node.apply_ops(
        &fran,
        &plan,
        json!([{ "op": "replace", "path": "/vision", "value": "Written just before the crash" }]),
    );
    // SIGKILL straight after the acknowledgement: no graceful anything.
    node.restart();

    let old_carla = carla;
    let fran = node.login(FACILITATOR);
    let sam = node.login(SUPERVISOR);
    let doc = node.read_plan(&fran, &plan);
    assert_eq!(
        doc.version, last.version,
        "the acknowledged version survives"
    );
    assert_eq!(doc.plan, last.plan);
    assert_eq!(doc.plan["vision"], "Written just before the crash");
    assert_eq!(items(&doc.plan, "strengths").len(), 2 * WRITES_PER_WRITER);
    for (id, statement) in by_fran.iter().chain(&by_carla) {
        assert_eq!(
            &item(&doc.plan, "strengths", id)["statement"],
            statement.as_str()
        );
    }
    assert_eq!(node.history(&fran, &plan).changes.len(), history_before + 1);
    let all: BTreeSet<String> = node
        .list_all_plans(&sam)
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(all, BTreeSet::from([plan.clone(), other]));
    if let Some(db) = node.db_path() {
        assert!(
            db.is_file(),
            "the default SQLite file {} exists",
            db.display()
        );
    }

    // Writes are audited in the same transaction as the write itself.
    let ops_ok = all_audit(&node, &sam, &format!("plan={plan}"))
        .into_iter()
        .filter(|e| e.action == "plan.ops" && e.outcome == "ok")
        .count();
    assert!(
        ops_ok > 2 * WRITES_PER_WRITER,
        "{ops_ok} audited writes for {} acknowledged ones",
        2 * WRITES_PER_WRITER + 2
    );

    // And the node carries on from there.
    let next = node.post_ops(
        &fran,
        &plan,
        Some(&last.version),
        json!([{ "op": "replace", "path": "/mission", "value": "After the crash" }]),
    );
    next.assert_status(200);
    node.restart();
    let doc = node.read_plan(&node.login(FACILITATOR), &plan);
    assert_eq!(doc.plan["mission"], "After the crash");
    assert_eq!(doc.plan["vision"], "Written just before the crash");

    // Access tokens are signed with the configured secret, so one issued
    // before the crash still works.
    node.get("/v1/plans", &old_carla).assert_status(200);
}

fn sigterm_stops_the_node_cleanly_and_keeps_its_data(backend: Backend) {
    let mut node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Graceful family").id;
    let written = node.apply_ops(
        &fran,
        &plan,
        json!([{ "op": "replace", "path": "/vision", "value": "Calm shutdowns" }]),
    );
    // A read whose audit row is still queued when the stop begins.
    node.read_plan(&fran, &plan);
    let status = node.stop();
    assert!(status.success(), "SIGTERM is a clean exit, got {status}");
    assert!(!node.is_running());

    node.start();
    let fran = node.login(FACILITATOR);
    let doc = node.read_plan(&fran, &plan);
    assert_eq!(doc.version, written.version);
    assert_eq!(doc.plan["vision"], "Calm shutdowns");
    // A graceful stop flushes the queued read audits.
    let sam = node.login(SUPERVISOR);
    let reads = |node: &TestNode| {
        all_audit(node, &sam, &format!("plan={plan}"))
            .into_iter()
            .filter(|e| e.action == "plan.read" && e.outcome == "ok")
            .count()
    };
    assert!(
        wait_until(deadline(30), || reads(&node) >= 2),
        "both reads (before the stop and after the start) are audited"
    );
}

/// `wrapsync backup` while the node serves writes, then `wrapsync restore`
/// into an emptied data dir: the node comes back as itself (same key), with
/// the plans and audit trail as of the backup and nothing later.
#[test]
fn a_backup_taken_while_serving_restores_the_node() {
    let mut node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let sam = node.login(SUPERVISOR);
    let mut plans = BTreeSet::new();
    for n in 0..3 {
        let plan = node.create_plan(&fran, &format!("Family {n}")).id;
        node.apply_ops(
            &fran,
            &plan,
            json!([{ "op": "replace", "path": "/vision", "value": format!("Vision {n}") }]),
        );
        plans.insert(plan);
    }
    let identity = node.get_anon("/federation/v1/identity").json["public_key"].clone();
    let audited = all_audit(&node, &sam, "");
    assert!(!audited.is_empty());

    // Writes go on while the backup is taken.
    let out = node.data_dir().parent().unwrap().join("backup.db");
    let out_arg = out.to_string_lossy().into_owned();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let plan = plans.first().unwrap();
            for n in 0..20 {
                node.apply_ops(
                    &fran,
                    plan,
                    json!([{ "op": "replace", "path": "/mission", "value": format!("m{n}") }]),
                );
            }
        });
        node.cli(&["backup", "--out", &out_arg]).unwrap();
        writer.join().unwrap();
    });
    assert!(out.exists());
    // A backup never overwrites.
    assert!(node.cli(&["backup", "--out", &out_arg]).is_err());
    let later = node.create_plan(&fran, "After the backup").id;
    assert!(node.stop().success());

    // Restore refuses an existing database without --force, and a file
    // that is not a node database at all.
    let refused = node.cli(&["restore", "--from", &out_arg]).unwrap_err();
    assert!(refused.to_string().contains("--force"), "{refused}");
    let junk = node.data_dir().parent().unwrap().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let refused = node
        .cli(&["restore", "--from", &junk.to_string_lossy(), "--force"])
        .unwrap_err();
    assert!(
        refused.to_string().contains("not a wrapsync node backup"),
        "{refused}"
    );

    // A fresh data dir: nothing of the old node left.
    std::fs::remove_dir_all(node.data_dir()).unwrap();
    std::fs::create_dir_all(node.data_dir()).unwrap();
    node.cli(&["restore", "--from", &out_arg]).unwrap();
    node.start();

    assert_eq!(
        node.get_anon("/federation/v1/identity").json["public_key"],
        identity,
        "the node key came back with the backup"
    );
    let fran = node.login(FACILITATOR);
    let listed: BTreeSet<String> = node
        .list_all_plans(&fran)
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed, plans, "the plans at the backup, not {later}");
    for (n, plan) in plans.iter().enumerate() {
        assert_eq!(
            node.read_plan(&fran, plan).plan["vision"],
            format!("Vision {n}")
        );
    }
    let sam = node.login(SUPERVISOR);
    let restored: BTreeSet<(i64, String, String)> = all_audit(&node, &sam, "")
        .into_iter()
        .map(|e| (e.id, e.action, e.outcome))
        .collect();
    for e in &audited {
        assert!(
            restored.contains(&(e.id, e.action.clone(), e.outcome.clone())),
            "audit entry {e:?} survives the restore"
        );
    }
}
