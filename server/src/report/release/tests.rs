//! Releases on a real node store (SQLite and PostgreSQL): once per month,
//! after it ends, stored and repeated, the year's budget summed and
//! refused when spent, every release and refusal audited.

use super::super::tests::{open_with, plan, runtime, served};
use super::*;
use crate::plans::Actor;
use crate::store::audit::{query_audit, AuditFilter};
use crate::store::tests::TestDb;
use diesel::prelude::*;
use wrapsync_shared::indicators::DEFINITIONS;
use wrapsync_shared::roles::Role;

fn period(text: &str) -> Period {
    text.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// 2026-12-15T00:00:00Z: November 2026 is over, December is not.
const MID_DECEMBER: i64 = 1_797_292_800_000;

/// The cells a noisy report holds: every one of the vocabulary.
fn vocabulary_size() -> usize {
    DEFINITIONS
        .iter()
        .map(|d| d.categories.len().max(1) * wrapsync_shared::indicators::AgeBand::ALL.len())
        .sum()
}

fn node_rows(test: &TestDb) -> Vec<wrapsync_shared::api::AuditEntry> {
    let mut conn = test.connect();
    query_audit(
        &mut conn,
        &AuditFilter {
            username: Some("node:county-a".into()),
            limit: 100,
            ..AuditFilter::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_month_is_released_once_after_it_ends_within_the_years_budget() {
    for test in TestDb::both() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let open = |epsilon: &str| {
            open_with(
                &test,
                dir.path(),
                &[("WRAPSYNC_DP_EPSILON_PER_YEAR", epsilon)],
            )
        };
        let (app, writer) = open("1.2");
        assert_eq!(
            period_at(MID_DECEMBER).map(|p| p.to_string()).as_deref(),
            Some("2026-12")
        );
        let user = {
            let mut conn = test.connect();
            crate::users::add_user(
                &mut conn,
                "quillfeather",
                "Q",
                Role::Supervisor,
                "a long password",
            )
            .unwrap_or_else(|e| panic!("{e:?}"))
        };
        let actor = Actor {
            user_id: user.id,
            username: "quillfeather".into(),
            role: Role::Supervisor,
        };
        let privacy = app
            .config
            .privacy()
            .unwrap_or_else(|| panic!("privacy is on"));
        assert_eq!(privacy.epsilon_per_year, 1.2);
        assert_eq!(privacy.bounds, privacy::Bounds::default());
        let rt = runtime();
        let nov = period("2026-11");
        let first = rt.block_on(async {
            for (i, enrolled) in ["2026-01-10", "2026-02-11", "2026-11-05"]
                .iter()
                .enumerate()
            {
                plan(&app, &actor, enrolled, &format!("Youth {i}")).await;
            }
            release(&app, &privacy, nov, "test", MID_DECEMBER).await
        });
        let first = first.unwrap_or_else(|e| panic!("{}", super::super::describe(&e)));
        first.validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.period, nov);
        assert_eq!(first.cells.len(), vocabulary_size());
        let plain = rt
            .block_on(generate(&app, &[nov], "test"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(served(&plain[0]), 3);
        assert_ne!(first.cells, plain[0].cells, "noise");

        // Asked again (by the pass, the CLI, after a restart): the same
        // report, nothing more spent.
        let again = rt
            .block_on(release(
                &app,
                &privacy,
                nov,
                "test",
                MID_DECEMBER + 86_400_000,
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, first);
        let spent = |conn: &mut crate::db::DbConnection| {
            dp_releases::spent(conn, 2026).unwrap_or_else(|e| panic!("{e}"))
        };
        assert!((spent(&mut test.connect()) - 0.1).abs() < 1e-12);
        let text = app
            .metrics
            .render(crate::metrics::Scrape {
                plans_cached: 0,
                pool: &app.pool,
                peer_successes: vec![],
                now_ms: 0,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let shown = text
            .lines()
            .find_map(|l| l.strip_prefix("wrapsync_dp_epsilon_spent{year=\"2026\"} "))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(shown.is_some_and(|v| (v - 0.1).abs() < 1e-12), "{text}");

        // This month and later ones are not over: refused, nothing spent.
        for month in ["2026-12", "2027-01"] {
            let refused = rt.block_on(release(&app, &privacy, period(month), "test", MID_DECEMBER));
            match refused {
                Err(ApiError::InvalidRequest(why)) => {
                    assert!(
                        why.contains("after it ends") && why.contains("2026-11"),
                        "{why}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        let oct = rt
            .block_on(release(
                &app,
                &privacy,
                period("2026-10"),
                "test",
                MID_DECEMBER,
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(oct.cells, first.cells);
        assert!((spent(&mut test.connect()) - 0.2).abs() < 1e-12);
        drop(app);
        let _ = writer.join();

        // The budget lowered to 0.2: the months released stand (and are
        // sent again), but a third month (0.2 / 12 more) is refused.
        let (app, writer) = open("0.2");
        let privacy = app
            .config
            .privacy()
            .unwrap_or_else(|| panic!("privacy is on"));
        let again = rt
            .block_on(release(&app, &privacy, nov, "test", MID_DECEMBER))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, first);
        match rt.block_on(release(
            &app,
            &privacy,
            period("2026-09"),
            "test",
            MID_DECEMBER,
        )) {
            Err(e @ ApiError::PrivacyBudgetSpent(_)) => {
                let why = e.to_string();
                assert!(
                    why.contains("budget for 2026 is spent") && why.contains("0.2"),
                    "{why}"
                );
                assert_eq!(e.problem().status, 409);
                assert_eq!(e.problem().kind, "/problems/privacy-budget-spent");
            }
            other => panic!("{other:?}"),
        }
        // Another year's budget is its own.
        rt.block_on(release(
            &app,
            &privacy,
            period("2025-09"),
            "test",
            MID_DECEMBER,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!((spent(&mut test.connect()) - 0.2).abs() < 1e-12);
        drop(app);
        let _ = writer.join();

        // Audited: each release with what it spent and left, the refusal;
        // asking again for a stored release reads no plan and adds no row.
        let rows = node_rows(&test);
        let details: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.action == "report.generate")
            .map(|r| (r.outcome.clone(), r.detail.clone().unwrap_or_default()))
            .collect();
        let has = |outcome: &str, start: &str, end: &str| {
            details
                .iter()
                .any(|(o, d)| o == outcome && d.starts_with(start) && d.ends_with(end))
        };
        assert!(
            has(
                "ok",
                "period 2026-11: 3 plans read, 0 unreadable; released with differential privacy",
                "epsilon 0.1 spent, 1.1 of 1.2 left for 2026 (test)"
            ),
            "{details:?}"
        );
        assert!(
            has(
                "ok",
                "period 2026-10: 3 plans read",
                "epsilon 0.1 spent, 1 of 1.2 left for 2026 (test)"
            ),
            "{details:?}"
        );
        assert!(
            has(
                "refused",
                "period 2026-09: not released: the privacy budget for 2026 is spent",
                "(test)"
            ),
            "{details:?}"
        );
        assert!(
            has("ok", "period 2025-09: 3 plans read", "left for 2025 (test)"),
            "{details:?}"
        );
        // Three releases, one refusal, one plain report.
        assert_eq!(details.len(), 5, "{details:?}");

        // The ledger cannot be rewritten: the database refuses.
        let mut conn = test.connect();
        use crate::db::schema::dp_releases as t;
        assert!(
            diesel::delete(t::table).execute(&mut conn).is_err(),
            "{:?}",
            test.backend
        );
        assert!(diesel::update(t::table)
            .set(t::epsilon.eq(0.0))
            .execute(&mut conn)
            .is_err());
        assert!((spent(&mut conn) - 0.2).abs() < 1e-12);
    }
}

#[test]
fn a_year_holds_twelve_releases_and_the_last_fits() {
    let test = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // A budget that does not divide evenly into twelfths in binary.
    let (app, writer) = open_with(
        &test,
        dir.path(),
        &[("WRAPSYNC_DP_EPSILON_PER_YEAR", "0.7")],
    );
    let privacy = app
        .config
        .privacy()
        .unwrap_or_else(|| panic!("privacy is on"));
    let rt = runtime();
    for month in 1..=12 {
        let p = Period::new(2025, month).unwrap_or_else(|| panic!("period"));
        let report = rt
            .block_on(release(&app, &privacy, p, "test", MID_DECEMBER))
            .unwrap_or_else(|e| panic!("{month}: {e}"));
        assert_eq!(report.cells.len(), vocabulary_size());
    }
    let spent = dp_releases::spent(&mut test.connect(), 2025).unwrap_or_else(|e| panic!("{e}"));
    assert!((spent - 0.7).abs() < 1e-12, "{spent}");
    drop(app);
    let _ = writer.join();
}

#[test]
fn with_privacy_the_pass_sends_last_months_release_only_and_the_same_each_time() {
    use super::super::send;
    use super::super::tests::{hub_take, FakeHub};
    let test = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let hub_url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let (app, writer) = open_with(
        &test,
        dir.path(),
        &[
            ("WRAPSYNC_HUB_URL", &hub_url),
            ("WRAPSYNC_HUB_ID", "state-hub"),
            ("WRAPSYNC_DP_EPSILON_PER_YEAR", "1"),
            // A pass a second, so the test sees several.
            ("WRAPSYNC_REPORT_INTERVAL_SECS", "1"),
        ],
    );
    let hub = actix_web::web::Data::new(FakeHub {
        verifier: crate::federation::Verifier::new("state-hub".into(), now_ms() / 1000),
        peers: crate::federation::Peers::new(&[crate::federation::Peer {
            id: "county-a".into(),
            url: "http://county-a.invalid".into(),
            public_key: app.federation.public_key(),
        }])
        .unwrap_or_else(|e| panic!("{e}")),
        taken: parking_lot::Mutex::new(Vec::new()),
        refused: std::sync::atomic::AtomicU8::new(0),
    });
    let app = actix_web::web::Data::new(app);
    let system = actix_web::rt::System::new();
    system.block_on(async {
        let data = hub.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .route(send::REPORTS_PATH, actix_web::web::post().to(hub_take))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap_or_else(|e| panic!("{e}"))
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let task = actix_web::rt::spawn(send::run(app.clone()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while hub.taken.lock().len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                hub.taken.lock()
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        app.plans.stop_streams();
        let _ = task.await;
        handle.stop(true).await;
    });
    let taken = hub.taken.lock().clone();
    let last = period_at(now_ms())
        .unwrap_or_else(|| panic!("clock"))
        .previous();
    assert!(taken.iter().all(|r| *r == taken[0]), "{taken:?}");
    assert_eq!(taken[0].period, last);
    assert_eq!(taken[0].cells.len(), vocabulary_size());
    let mut conn = test.connect();
    let stored = dp_releases::get(&mut conn, &last.to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no release stored"));
    assert_eq!(parse(&stored).ok(), Some(taken[0].clone()));
    let spent = dp_releases::spent(&mut conn, i32::from(last.year())).unwrap_or_default();
    assert!((spent - 1.0 / 12.0).abs() < 1e-12, "{spent}");
    drop(system);
    drop(app);
    let _ = writer.join();
}

#[test]
fn releasable_means_over() {
    let nov = period("2026-11");
    assert!(releasable(nov.previous(), nov));
    assert!(releasable(period("2025-12"), nov));
    assert!(!releasable(nov, nov));
    assert!(!releasable(nov.next(), nov));
}

#[test]
fn epsilons_read_plainly() {
    assert_eq!(number(1.0 / 12.0), "0.083333");
    assert_eq!(number(1.2 - 0.1), "1.1");
    assert_eq!(number(1.0), "1");
    assert_eq!(number(0.0), "0");
    assert_eq!(number(12.5), "12.5");
}
