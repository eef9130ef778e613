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

/// Sets (or, with `None`, removes) one top-level key of `node`'s config.
fn set_config(node: &TestNode, key: &str, value: Option<&str>) {
    let path = node.config_path();
    let mut config: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    match value {
        Some(value) => config.insert(key.into(), value.into()),
        None => config.remove(key),
    };
    std::fs::write(path, toml::to_string(&config).unwrap()).unwrap();
}

/// Whether `needle` occurs in the bytes of any of `files` that exist.
fn found_in(files: &[std::path::PathBuf], needle: &str) -> bool {
    files.iter().filter(|f| f.exists()).any(|f| {
        std::fs::read(f)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    })
}

/// The database file and its log.
fn with_log(database: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut log = database.as_os_str().to_owned();
    log.push("-wal");
    vec![database.to_path_buf(), log.into()]
}

/// Encryption at rest (SQLCipher): an existing node is encrypted by
/// restoring its plain backup once a key is set; then neither the database,
/// its log nor its backups show anything without the key, the node refuses
/// to start without it or with another, and with it everything is there.
#[test]
fn an_encrypted_node_is_unreadable_without_its_key() {
    const TITLE: &str = "Family Quillfeather";
    let mut node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, TITLE).id;
    let parent = node.data_dir().parent().unwrap().to_path_buf();
    let plain = parent.join("plain.db");
    node.cli(&["backup", "--out", &plain.to_string_lossy()])
        .unwrap();
    assert!(node.stop().success());
    let database = node.db_path().unwrap().to_path_buf();
    // What the check looks for is there to be found in a plain database.
    assert!(found_in(std::slice::from_ref(&plain), FACILITATOR));
    assert!(found_in(std::slice::from_ref(&plain), TITLE));

    // The key lives outside the data directory, as a mounted secret would.
    let key_file = parent.join("secrets").join("database.key");
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    set_config(
        &node,
        "database_key_file",
        Some(&key_file.to_string_lossy()),
    );
    node.cli(&["keys", "database-key"]).unwrap();
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64, "a raw 256-bit key in hex");
    assert!(
        node.cli(&["keys", "database-key"]).is_err(),
        "a key is never overwritten"
    );
    // The plain database is not silently used with a key set.
    let refused = node.try_start().unwrap_err().to_string();
    assert!(
        refused.contains("cannot be read with the database key"),
        "{refused}"
    );

    node.cli(&["restore", "--from", &plain.to_string_lossy(), "--force"])
        .unwrap();
    node.start();
    let fran = node.login(FACILITATOR);
    assert_eq!(node.read_plan(&fran, &plan).plan["title"], TITLE);
    node.apply_ops(
        &fran,
        &plan,
        json!([{ "op": "replace", "path": "/vision", "value": "Written encrypted" }]),
    );
    let encrypted = parent.join("encrypted.db");
    node.cli(&["backup", "--out", &encrypted.to_string_lossy()])
        .unwrap();
    assert!(node.stop().success());

    let mut files = with_log(&database);
    files.push(encrypted.clone());
    for needle in [FACILITATOR, TITLE, "SQLite format 3"] {
        assert!(!found_in(&files, needle), "{needle:?} readable at rest");
    }

    // Without the key, or with another, the node does not start.
    set_config(&node, "database_key_file", None);
    let refused = node.try_start().unwrap_err().to_string();
    assert!(refused.contains("database_key_file"), "{refused}");
    let wrong = parent.join("secrets").join("wrong.key");
    std::fs::write(&wrong, "a passphrase that is not the key").unwrap();
    set_config(&node, "database_key_file", Some(&wrong.to_string_lossy()));
    let refused = node.try_start().unwrap_err().to_string();
    assert!(
        refused.contains("cannot be read with the database key"),
        "{refused}"
    );
    // An encrypted backup does not restore into a node without its key.
    set_config(&node, "database_key_file", None);
    let refused = node
        .cli(&["restore", "--from", &encrypted.to_string_lossy(), "--force"])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("restores only into a node with its key"),
        "{refused}"
    );

    // With the key, the encrypted backup restores as it is.
    set_config(
        &node,
        "database_key_file",
        Some(&key_file.to_string_lossy()),
    );
    std::fs::remove_dir_all(node.data_dir()).unwrap();
    std::fs::create_dir_all(node.data_dir()).unwrap();
    node.cli(&["restore", "--from", &encrypted.to_string_lossy()])
        .unwrap();
    assert!(!found_in(&with_log(&database), FACILITATOR));
    node.start();
    let fran = node.login(FACILITATOR);
    let restored = node.read_plan(&fran, &plan).plan;
    assert_eq!(restored["title"], TITLE);
    assert_eq!(restored["vision"], "Written encrypted");
}
