//! Storage tests, each run on SQLite and on a fresh PostgreSQL database.
//! PostgreSQL must be reachable (`WRAPSYNC_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432`): these tests fail rather than skip.

use super::audit::{insert_audit, query_audit, AuditFilter, AuditRecord};
use super::plans::{self, ListQuery, Membership, PlanRow};
use super::users::{insert_session, rotate_refresh, Session};
use super::writer::Writer;
use crate::db::{self, Backend, DbConnection};
use crate::users::add_user;
use diesel::prelude::*;
use wrapsync_shared::roles::Role;
use wrapsync_test_db::PgDatabase;

/// A database for one test; a PostgreSQL one is dropped afterwards.
pub struct TestDb {
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("test.db").to_string_lossy().into_owned();
        TestDb {
            backend: Backend::Sqlite(path),
            _dir: Some(dir),
            _pg: None,
        }
    }

    pub fn postgres() -> TestDb {
        let pg = PgDatabase::create().unwrap_or_else(|e| panic!("{e}"));
        TestDb {
            backend: Backend::Postgres(pg.url()),
            _dir: None,
            _pg: Some(pg),
        }
    }

    pub fn both() -> [TestDb; 2] {
        [TestDb::sqlite(), TestDb::postgres()]
    }

    pub fn connect(&self) -> DbConnection {
        let mut conn = self.backend.connect().unwrap_or_else(|e| panic!("{e}"));
        db::migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        conn
    }
}

fn audit(action: &str) -> AuditRecord {
    AuditRecord {
        at: db::now_ms(),
        user_id: None,
        username: Some("ana".into()),
        role: Some("caregiver".into()),
        plan_id: Some("P1".into()),
        action: action.into(),
        outcome: "ok".into(),
        detail: None,
        remote: Some("127.0.0.1".into()),
        request_id: None,
    }
}

#[test]
fn migrations_create_every_column_diesel_knows() {
    use crate::db::schema::*;
    for test in TestDb::both() {
        let mut conn = test.connect();
        // Selecting every column of every table fails if a migration and
        // schema.rs disagree on a name or a type.
        users::table
            .select(users::all_columns)
            .load::<(String, String, String, String, String, i64, bool)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        sessions::table
            .select(sessions::all_columns)
            .load::<(String, String, String, i64, i64, bool, Option<i64>, String)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        plans::table
            .select(plans::all_columns)
            .load::<(String, String, String, String, i64, i64, Option<String>)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        plan_chunks::table
            .select(plan_chunks::all_columns)
            .load::<(i64, String, bool, Vec<u8>, i64)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        plan_members::table
            .select(plan_members::all_columns)
            .load::<(String, String, String, String)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        actors::table
            .select(actors::all_columns)
            .load::<(String, String, i64)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        audit_log::table
            .select(audit_log::id)
            .load::<i64>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        consent_grants::table
            .select(consent_grants::all_columns)
            .load::<(
                String,
                String,
                String,
                String,
                i64,
                Option<i64>,
                Option<String>,
                Option<i64>,
            )>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        peers::table
            .select(peers::all_columns)
            .load::<(String, String, String, i64)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        peer_cursors::table
            .select(peer_cursors::all_columns)
            .load::<(String, i64, i64)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        dp_releases::table
            .select(dp_releases::all_columns)
            .load::<(String, i32, f64, String, i64)>(&mut conn)
            .unwrap_or_else(|e| panic!("{e}"));
        // Migrating twice is a no-op.
        db::migrate(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_audit_log_refuses_update_and_delete_in_the_database_itself() {
    use crate::db::schema::audit_log;
    for test in TestDb::both() {
        let mut conn = test.connect();
        insert_audit(&mut conn, &[audit("plan.read"), audit("plan.ops")])
            .unwrap_or_else(|e| panic!("{e}"));
        let update = diesel::update(audit_log::table)
            .set(audit_log::outcome.eq("tampered"))
            .execute(&mut conn);
        assert!(
            update.is_err(),
            "{:?}: UPDATE must be refused",
            test.backend
        );
        let delete = diesel::delete(audit_log::table).execute(&mut conn);
        assert!(
            delete.is_err(),
            "{:?}: DELETE must be refused",
            test.backend
        );
        let rows = query_audit(
            &mut conn,
            &AuditFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap_or_default();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.outcome == "ok"));
        assert_eq!(rows[0].action, "plan.ops", "newest first");
    }
}

fn plan_row(id: &str, updated_at: i64) -> PlanRow {
    PlanRow {
        id: id.into(),
        title: format!("plan {id}"),
        phase: "engagement".into(),
        heads: String::new(),
        created_at: updated_at,
        updated_at,
        home_node: None,
    }
}

#[test]
fn compaction_deletes_only_the_chunks_the_snapshot_includes() {
    for test in TestDb::both() {
        let mut conn = test.connect();
        plans::insert_plan(&mut conn, &plan_row("P1", 1)).unwrap_or_else(|e| panic!("{e}"));
        let a = plans::append_chunk(&mut conn, "P1", b"a", true, 1).unwrap_or_default();
        let b = plans::append_chunk(&mut conn, "P1", b"b", false, 2).unwrap_or_default();
        let c = plans::append_chunk(&mut conn, "P1", b"c", false, 3).unwrap_or_default();
        assert!(a < b && b < c);
        // A chunk written meanwhile (c) is not in the snapshot and survives.
        let snap = plans::compact(&mut conn, "P1", b"ab", &[a, b], 4).unwrap_or_default();
        let left = plans::chunks_after(&mut conn, "P1", 0).unwrap_or_default();
        assert_eq!(left, vec![(c, b"c".to_vec()), (snap, b"ab".to_vec())]);
        assert_eq!(
            plans::chunk_seqs(&mut conn, "P1").unwrap_or_default(),
            vec![c, snap]
        );
    }
}

#[test]
fn refresh_tokens_rotate_once_and_reuse_revokes_the_session() {
    use crate::store::users::{recently_revoked, set_disabled, Refreshed};
    for test in TestDb::both() {
        let mut conn = test.connect();
        let user = add_user(&mut conn, "ana", "Ana", Role::Caregiver, "long enough pw")
            .unwrap_or_else(|e| panic!("{e}"));
        let session = |id: &str, hash: &str| Session {
            id: id.into(),
            user_id: user.id.clone(),
            refresh_hash: hash.into(),
            created_at: 0,
            expires_at: i64::MAX,
            revoked: false,
            revoked_at: None,
        };
        for (id, hash) in [("S1", "h1"), ("S2", "k1")] {
            insert_session(&mut conn, &session(id, hash)).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut rotate = |sid: Option<&str>, old: &str, new: &'static str, now| {
            rotate_refresh(&mut conn, sid, old, |_| new.to_string(), now)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let rotated = Refreshed::Rotated("S1".into(), user.id.clone());
        // A token from before tokens named their session, found by hash.
        assert_eq!(rotate(None, "h1", "h2", 1), rotated);
        assert_eq!(rotate(None, "h1", "h3", 1), Refreshed::Refused);
        assert_eq!(rotate(Some("S1"), "h2", "h3", 1), rotated);
        // A token the session never gave out (made up from its id): only
        // refused, the session goes on.
        assert_eq!(rotate(Some("S1"), "guess", "h4", 2), Refreshed::Refused);
        // h2 again: reuse, and the whole session ends with it.
        assert_eq!(
            rotate(Some("S1"), "h2", "h4", 5),
            Refreshed::Reused("S1".into(), user.id.clone())
        );
        assert_eq!(rotate(Some("S1"), "h3", "h4", 6), Refreshed::Refused);
        assert_eq!(rotate(Some("nope"), "h3", "h4", 6), Refreshed::Refused);
        assert_eq!(
            recently_revoked(&mut conn, 5).unwrap_or_default(),
            vec![("S1".to_string(), 5)]
        );
        assert!(recently_revoked(&mut conn, 6)
            .unwrap_or_default()
            .is_empty());
        // Disabling ends the user's other sessions too.
        let (disabled, ended) = set_disabled(&mut conn, "ana", true, 7)
            .unwrap_or_default()
            .unwrap_or_else(|| panic!("ana is there"));
        assert!(disabled.disabled);
        assert_eq!(ended, 1);
        assert_eq!(
            recently_revoked(&mut conn, 7).unwrap_or_default(),
            vec![("S2".to_string(), 7)]
        );
        assert!(set_disabled(&mut conn, "nobody", true, 7)
            .unwrap_or_default()
            .is_none());
        assert!(matches!(
            add_user(&mut conn, "ana", "Ana again", Role::Youth, "long enough pw"),
            Err(crate::users::UserError::Taken(_))
        ));
    }
}

#[test]
fn plan_lists_show_members_their_plans_and_supervisors_all() {
    for test in TestDb::both() {
        let mut conn = test.connect();
        for (id, at) in [("P1", 10), ("P2", 20), ("P3", 30)] {
            plans::insert_plan(&mut conn, &plan_row(id, at)).unwrap_or_else(|e| panic!("{e}"));
        }
        let ana = |plan: &str| {
            vec![Membership {
                username: "ana".into(),
                member_id: format!("M-{plan}"),
                role: Role::Caregiver,
            }]
        };
        plans::set_members(&mut conn, "P1", &ana("P1")).unwrap_or_else(|e| panic!("{e}"));
        plans::set_members(&mut conn, "P3", &ana("P3")).unwrap_or_else(|e| panic!("{e}"));
        let list = |conn: &mut DbConnection, username: Option<&str>, since, after, limit| {
            plans::list_plans(
                conn,
                &ListQuery {
                    username,
                    updated_since: since,
                    after,
                    limit,
                },
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|row| (row.id, row.role))
            .collect::<Vec<_>>()
        };
        assert_eq!(
            list(&mut conn, Some("ana"), None, None, 10),
            vec![
                ("P1".into(), Some("caregiver".into())),
                ("P3".into(), Some("caregiver".into()))
            ]
        );
        assert_eq!(list(&mut conn, Some("bo"), None, None, 10), vec![]);
        assert_eq!(list(&mut conn, None, None, None, 10).len(), 3);
        assert_eq!(list(&mut conn, None, Some(20), None, 10).len(), 2);
        assert_eq!(
            list(&mut conn, None, None, Some((20, "P2".into())), 10),
            vec![("P3".into(), None)]
        );
        assert_eq!(
            list(&mut conn, None, None, None, 1),
            vec![("P1".into(), None)]
        );
        // Leaving the roster removes access.
        plans::set_members(&mut conn, "P3", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list(&mut conn, Some("ana"), None, None, 10).len(), 1);
    }
}

#[test]
fn the_writer_commits_concurrent_writes_and_isolates_a_failing_one() {
    for test in TestDb::both() {
        drop(test.connect());
        let (writer, thread) =
            Writer::start(&test.backend, Default::default()).unwrap_or_else(|e| panic!("{e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let results = runtime.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..40 {
                let writer = writer.clone();
                tasks.push(async move {
                    writer
                        .write(move |conn| {
                            if i == 7 {
                                // Duplicate primary key: this write fails alone.
                                plans::insert_plan(conn, &plan_row("P0", 0))?;
                            }
                            plans::insert_plan(conn, &plan_row(&format!("P{i}"), i))
                        })
                        .await
                });
            }
            futures_util::future::join_all(tasks).await
        });
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
        assert!(results[7].is_err());
        drop(writer);
        let _ = thread.join();
        let mut conn = test.connect();
        let stored = plans::list_plans(
            &mut conn,
            &ListQuery {
                username: None,
                updated_since: None,
                after: None,
                limit: 100,
            },
        )
        .unwrap_or_default();
        assert_eq!(stored.len(), 39, "{:?}", test.backend);
    }
}

/// A user's sync states stop at the cap, the least recently used going
/// first; peers' are not counted; states unused past the idle time read
/// as none and go when a new state is stored.
#[test]
fn sync_states_are_capped_per_user_and_expire() {
    use crate::db::schema::sync_states;
    for test in TestDb::both() {
        let mut conn = test.connect();
        plans::insert_plan(&mut conn, &plan_row("P1", 1)).unwrap_or_else(|e| panic!("{e}"));
        let limits = plans::SyncStateLimits {
            per_user: 3,
            idle_ms: 1_000_000,
        };
        let save = |conn: &mut DbConnection, device: &str, now: i64| {
            plans::save_sync_state(conn, &key(device), "P1", b"s", now, limits)
                .unwrap_or_else(|e| panic!("{e}"));
        };
        let held = |conn: &mut DbConnection| -> Vec<String> {
            sync_states::table
                .order(sync_states::device_id.asc())
                .select(sync_states::device_id)
                .load(conn)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        for (i, device) in ["u1/device:a", "u1/device:b", "u1/device:c"]
            .iter()
            .enumerate()
        {
            save(&mut conn, device, 10 + i as i64);
        }
        save(&mut conn, "peer:county-b", 10);
        save(&mut conn, "u2/session:s", 10);
        // `a` is used again: `b` is now the least recently used.
        save(&mut conn, "u1/device:a", 20);
        save(&mut conn, "u1/device:d", 21);
        assert_eq!(
            held(&mut conn),
            [
                "peer:county-b",
                "u1/device:a",
                "u1/device:c",
                "u1/device:d",
                "u2/session:s"
            ]
        );
        for i in 0..50 {
            save(&mut conn, &format!("u1/device:x{i}"), 30 + i);
        }
        let owned: i64 = sync_states::table
            .filter(sync_states::owner.eq("u1"))
            .count()
            .get_result(&mut conn)
            .unwrap_or_default();
        assert_eq!(owned, 3);
        // Unused past the idle time: read as none, gone at the next new state.
        let later = 10 + limits.idle_ms + 1;
        let load = |conn: &mut DbConnection, device: &str, now: i64| {
            plans::load_sync_state(conn, &key(device), "P1", limits, now)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(load(&mut conn, "u2/session:s", 11).is_some());
        assert!(load(&mut conn, "u2/session:s", later).is_none());
        save(&mut conn, "u3/device:new", later);
        let left = held(&mut conn);
        assert!(!left.contains(&"u2/session:s".to_string()), "{left:?}");
        assert!(!left.contains(&"peer:county-b".to_string()), "{left:?}");
        assert!(left.contains(&"u3/device:new".to_string()), "{left:?}");
        assert_eq!(key("u1/device:a").owner(), Some("u1"));
        assert_eq!(key("u2/session:s").owner(), Some("u2"));
        assert_eq!(key("peer:county-b").owner(), None);
        assert_eq!(key("out:county-b").owner(), None);
        for stored in [
            "u1/device:a",
            "u2/session:s",
            "peer:county-b",
            "out:county-b",
        ] {
            assert_eq!(key(stored).stored(), stored);
        }
    }

    /// The key a stored `device_id` was written from.
    fn key(stored: &str) -> plans::SyncStateKey {
        use plans::SyncStateKey::*;
        let owned = |s: &str| s.to_string();
        match stored.split_once('/') {
            Some((user, rest)) => match rest.split_once(':') {
                Some(("device", device)) => Device {
                    user: owned(user),
                    device: owned(device),
                },
                Some(("session", session)) => Session {
                    user: owned(user),
                    session: owned(session),
                },
                _ => panic!("{stored}"),
            },
            None => match stored.split_once(':') {
                Some(("peer", peer)) => PeerHere(owned(peer)),
                Some(("out", peer)) => PeerThere(owned(peer)),
                _ => panic!("{stored}"),
            },
        }
    }
}
