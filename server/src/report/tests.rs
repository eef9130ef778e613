//! The report service on a real node store (SQLite and PostgreSQL): which
//! plans it reads, that it leaves the cache alone, that it is audited, and
//! that no plan id leaves in it.

use super::*;
use crate::config::Config;
use crate::plans::{Actor, RequestMeta};
use crate::store::audit::{query_audit, AuditFilter};
use crate::store::tests::TestDb;
use crate::store::transfers::{self, TransferRow, PENDING};
use serde_json::json;
use wrapsync_shared::indicators::Indicator;
use wrapsync_shared::ops::Op;
use wrapsync_shared::roles::Role;

fn open(test: &TestDb, dir: &std::path::Path) -> (App, std::thread::JoinHandle<()>) {
    open_with(test, dir, &[])
}

/// A node `county-a` on `test`'s database, with more config from `extra`.
pub(super) fn open_with(
    test: &TestDb,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> (App, std::thread::JoinHandle<()>) {
    let url = match &test.backend {
        crate::db::Backend::Postgres(url) => url.clone(),
        sqlite => sqlite.sqlite_path().unwrap_or_default().to_string(),
    };
    let dir = dir.to_string_lossy();
    let env = [
        ("WRAPSYNC_NODE_ID", "county-a"),
        ("WRAPSYNC_DATA_DIR", dir.as_ref()),
        ("WRAPSYNC_DATABASE_URL", &url),
        ("WRAPSYNC_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect::<Vec<_>>();
    let config = Config::load(None, env.into_iter()).unwrap_or_else(|e| panic!("{e}"));
    App::open(config).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ops(value: serde_json::Value) -> Vec<Op> {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts a plan enrolled on `enrolled` for a youth with a distinctive
/// name; answers its id.
pub(super) async fn plan(app: &App, actor: &Actor, enrolled: &str, name: &str) -> String {
    let view = app
        .plans
        .create(
            actor,
            "Supervisor".into(),
            &format!("Plan of {name}"),
            Some(enrolled.into()),
            RequestMeta::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let entry = app
        .plans
        .get(&view.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no plan"));
    app.plans
        .apply(
            &entry,
            actor,
            None,
            ops(json!([
                {"op": "replace", "path": "/youth/name", "value": name},
                {"op": "replace", "path": "/youth/birth_date", "value": "2013-07-19"},
            ])),
            RequestMeta::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    view.id.clone()
}

pub(super) fn served(report: &Report) -> u64 {
    report
        .cells
        .iter()
        .filter(|c| c.indicator == Indicator::YouthServed)
        .map(|c| c.value)
        .sum()
}

#[test]
fn only_plans_homed_here_count_and_the_run_is_audited_once_per_report() {
    for test in TestDb::both() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (app, writer) = open(&test, dir.path());
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
        let ids = runtime().block_on(async {
            let home = plan(&app, &actor, "2026-01-10", "Zebulon Quintanilla").await;
            let new = plan(&app, &actor, "2026-11-05", "Perpetua Oyelaran").await;
            let replica = plan(&app, &actor, "2026-01-10", "Wyndham Larkspur").await;
            let leaving = plan(&app, &actor, "2026-01-10", "Ottoline Brackenridge").await;
            let (r, l) = (replica.clone(), leaving.clone());
            app.writer
                .write(move |conn| {
                    stored::set_home(conn, &r, Some("county-b"), &[])?;
                    transfers::record(
                        conn,
                        &TransferRow {
                            plan_id: l,
                            from_node: "county-a".into(),
                            to_node: "county-c".into(),
                            certificate: "x".into(),
                            state: PENDING.into(),
                            created_at: 1,
                        },
                    )
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            [home, new, replica, leaving]
        });
        drop(app);
        let _ = writer.join();

        // A node started afresh: nothing cached, every plan read from storage.
        let (app, writer) = open(&test, dir.path());
        let nov = Period::new(2026, 11).unwrap_or_else(|| panic!("period"));
        let reports = runtime()
            .block_on(generate(&app, &[nov.previous(), nov], "test"))
            .unwrap_or_else(|e| panic!("{}", describe(&e)));
        assert_eq!(app.plans.cached_count(), 0, "the pass left plans cached");
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].period, nov.previous());
        assert_eq!(served(&reports[0]), 1, "{:?}", test.backend);
        assert_eq!(served(&reports[1]), 2, "{:?}", test.backend);
        assert!(reports[1].version >= reports[0].version);
        assert!(reports[1].version > 1_700_000_000_000);
        let text = serde_json::to_string(&reports).unwrap_or_else(|e| panic!("{e}"));
        for secret in ids.iter().map(String::as_str).chain([
            "Zebulon",
            "Perpetua",
            "Wyndham",
            "Ottoline",
            "2013",
            "county-a",
            "quillfeather",
        ]) {
            assert!(!text.contains(secret), "{secret} in {text}");
        }

        let rows = {
            let mut conn = test.connect();
            query_audit(
                &mut conn,
                &AuditFilter {
                    username: Some("node:county-a".into()),
                    limit: 10,
                    ..AuditFilter::default()
                },
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(rows.len(), 2, "{rows:?}");
        for (row, period) in rows.iter().zip(["2026-11", "2026-10"]) {
            assert_eq!(row.action, "report.generate");
            assert_eq!(row.outcome, "ok");
            assert_eq!(row.plan, None);
            let detail = row.detail.clone().unwrap_or_default();
            assert!(
                detail.starts_with(&format!("period {period}: 2 plans read")),
                "{detail}"
            );
        }
        drop(app);
        let _ = writer.join();
    }
}

#[test]
fn the_month_is_taken_in_utc() {
    // 2026-11-30T23:59:59.999Z and a millisecond later.
    assert_eq!(
        period_at(1_796_083_199_999)
            .map(|p| p.to_string())
            .as_deref(),
        Some("2026-11")
    );
    assert_eq!(
        period_at(1_796_083_200_000)
            .map(|p| p.to_string())
            .as_deref(),
        Some("2026-12")
    );
}

/// A stand-in for the state hub's side of the contract: it checks the
/// signature as a hub would (the node as a known peer, the hub as the
/// audience), takes a valid `Report` and answers JSON, and refuses a
/// report for the month `refused` with a problem.
pub(super) struct FakeHub {
    pub(super) verifier: crate::federation::Verifier,
    pub(super) peers: crate::federation::Peers,
    pub(super) taken: parking_lot::Mutex<Vec<Report>>,
    pub(super) refused: std::sync::atomic::AtomicU8,
}

pub(super) async fn hub_take(
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
    hub: actix_web::web::Data<FakeHub>,
) -> actix_web::HttpResponse {
    use actix_web::HttpResponse;
    let problem = |status: u16, detail: String| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
            .content_type("application/problem+json")
            .json(json!({"type": "/problems/refused", "title": "Refused", "status": status, "detail": detail}))
    };
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let signed = hub.verifier.verify(
        authorization,
        &hub.peers,
        "POST",
        req.uri().path(),
        &body,
        now_ms() / 1000,
    );
    let sender = match signed {
        Ok(by) => by.peer,
        Err(e) => return problem(401, e.to_string()),
    };
    if req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return problem(415, "JSON only".into());
    }
    let report: Report = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(e) => return problem(422, e.to_string()),
    };
    if let Err(e) = report.validate() {
        return problem(422, e.to_string());
    }
    if report.period.month() == hub.refused.load(std::sync::atomic::Ordering::SeqCst) {
        return problem(422, "that month is closed".into());
    }
    let cells = report.cells.len();
    hub.taken.lock().push(report);
    HttpResponse::Ok().json(json!({"node": sender, "cells": cells}))
}

#[test]
fn reports_reach_the_hub_signed_and_refusals_come_back_as_errors() {
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
        refused: std::sync::atomic::AtomicU8::new(10),
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
        let http = app
            .federation
            .http_client()
            .unwrap_or_else(|e| panic!("{e}"));

        let nov = Period::new(2026, 11).unwrap_or_else(|| panic!("period"));
        let reports = generate(&app, &[nov.previous(), nov], "test")
            .await
            .unwrap_or_else(|e| panic!("{}", describe(&e)));
        let answer = send::submit(&app, &http, &reports[1])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer, json!({"node": "county-a", "cells": 0}));
        let refused = send::submit(&app, &http, &reports[0]).await;
        let refused = refused.err().unwrap_or_default();
        assert!(
            refused.contains("422") && refused.contains("that month is closed"),
            "{refused}"
        );
        assert_eq!(hub.taken.lock().clone(), vec![reports[1].clone()]);

        // The background task sends last month's and this month's reports
        // at start (and stops with the node).
        hub.taken.lock().clear();
        hub.refused.store(0, std::sync::atomic::Ordering::SeqCst);
        let task = actix_web::rt::spawn(send::run(app.clone()));
        let now = period_at(now_ms()).unwrap_or_else(|| panic!("clock"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let expected = vec![now.previous(), now];
        while hub
            .taken
            .lock()
            .iter()
            .map(|r| r.period)
            .collect::<Vec<_>>()
            != expected
        {
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
    drop(system);
    drop(app);
    let _ = writer.join();
}
