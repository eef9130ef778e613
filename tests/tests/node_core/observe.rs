//! Observability: every request has an id (echoed, or made), kept in the
//! audit trail and on every log line of the request; `/metrics` counts
//! requests by route pattern and status and refusals by problem type,
//! never a concrete plan id; `/readyz` checks the database.

use crate::audit::all_audit;
use crate::NO_SUCH_ID;
use reqwest::Method;
use wrapsync_tests::users::{FACILITATOR, SUPERVISOR};
use wrapsync_tests::{deadline, wait_until, Backend, TestNode};

on_both_backends!(ready_when_the_database_answers);

fn ready_when_the_database_answers(backend: Backend) {
    let node = TestNode::spawn(backend);
    let reply = node.get_anon("/readyz");
    reply.assert_status(200);
    assert_eq!(reply.json["status"], "ready", "{}", reply.text());
    node.get_anon("/healthz").assert_status(200);
}

/// The series of `name` in the metrics text whose labels hold every one of
/// `labels` (`key="value"`), with its value.
fn series<'a>(text: &'a str, name: &str, labels: &[&str]) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
        .collect()
}

#[test]
fn requests_have_ids_and_show_in_the_metrics_by_route_pattern() {
    let mut extra = toml::Table::new();
    extra.insert("log_format".into(), "json".into());
    let node = TestNode::spawn_with(Backend::Sqlite, extra);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Observed family");

    // A well-formed id is echoed and kept in the audit trail.
    let reply = node.send(
        node.request(Method::GET, &format!("/v1/plans/{}", plan.id))
            .bearer_auth(&fran)
            .header("X-Request-Id", "e2e-read-1"),
    );
    reply.assert_status(200);
    assert_eq!(reply.header("x-request-id"), Some("e2e-read-1"));
    // None, or a malformed one: a new id is made.
    let made = node.get_anon("/healthz");
    let made = made.header("x-request-id").unwrap_or_default();
    assert_eq!(made.len(), 26, "a ULID: {made}");
    let reply = node.send(
        node.request(Method::GET, "/healthz")
            .header("X-Request-Id", "has spaces and;semicolons"),
    );
    let replaced = reply.header("x-request-id").unwrap_or_default();
    assert!(replaced.len() == 26 && replaced != made, "{replaced}");

    // Refusals: 404 on a route, 404 on no route, 401.
    node.get(&format!("/v1/plans/{NO_SUCH_ID}"), &fran)
        .assert_problem(404, "not-found");
    node.get_anon("/no/such/route")
        .assert_problem(404, "not-found");
    node.send(
        node.request(Method::GET, "/v1/plans")
            .header("X-Request-Id", "e2e-anon-1"),
    )
    .assert_problem(401, "unauthorized");

    // JSON logs: the access line of the refusal names its route pattern and
    // carries its request id; no concrete path.
    let log = node.log();
    let access = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["span"]["request_id"] == "e2e-anon-1" && l["fields"]["message"] == "request");
    let access = access.unwrap_or_else(|| panic!("no access line for e2e-anon-1 in {log}"));
    assert_eq!(access["fields"]["route"], "/v1/plans");
    assert_eq!(access["fields"]["status"], 401);
    assert!(!log.contains(&format!("/v1/plans/{}", plan.id)), "{log}");

    let supervisor = node.login(SUPERVISOR);
    assert!(
        wait_until(deadline(30), || {
            all_audit(&node, &supervisor, "")
                .iter()
                .any(|e| e.request_id.as_deref() == Some("e2e-read-1"))
        }),
        "the read is audited with the request's id"
    );

    let text = node.get_anon("/metrics").assert_status(200).text();
    let count = |labels: &[&str]| -> f64 {
        series(&text, "wrapsync_http_requests_total", labels)
            .iter()
            .map(|(_, v)| v)
            .sum()
    };
    let plan_route = r#"route="/v1/plans/{id}""#;
    assert!(count(&[plan_route, r#"status="200""#]) >= 1.0, "{text}");
    assert!(count(&[plan_route, r#"status="404""#]) >= 1.0, "{text}");
    assert!(count(&[r#"route="/v1/plans""#, r#"method="GET""#, r#"status="401""#]) >= 1.0);
    assert!(
        count(&[
            r#"route="/v1/plans""#,
            r#"method="POST""#,
            r#"status="201""#
        ]) >= 1.0
            || count(&[
                r#"route="/v1/plans""#,
                r#"method="POST""#,
                r#"status="200""#
            ]) >= 1.0
    );
    assert!(
        count(&[r#"route="unmatched""#, r#"status="404""#]) >= 1.0,
        "{text}"
    );
    assert!(!series(
        &text,
        "wrapsync_http_request_duration_seconds_count",
        &[plan_route]
    )
    .is_empty());
    let refused = |reason: &str| -> f64 {
        series(
            &text,
            "wrapsync_refused_requests_total",
            &[&format!("reason=\"{reason}\"")],
        )
        .first()
        .map_or(0.0, |(_, v)| *v)
    };
    assert!(refused("not-found") >= 2.0, "{text}");
    assert!(refused("unauthorized") >= 1.0, "{text}");
    assert!(!series(&text, "wrapsync_db_pool_connections", &[r#"state="idle""#]).is_empty());
    assert!(!series(
        &text,
        "wrapsync_db_pool_connections",
        &[r#"state="in_use""#]
    )
    .is_empty());
    for id in [plan.id.as_str(), NO_SUCH_ID, "e2e-read-1"] {
        assert!(!text.contains(id), "{id} in the metrics: {text}");
    }
}

/// `sql` run by `psql` on the server's `postgres` database.
fn psql(sql: &str) {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-d", "postgres", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn not_ready_while_the_database_refuses_connections_and_ready_again_after() {
    let node = TestNode::spawn(Backend::Postgres);
    node.get_anon("/readyz").assert_status(200);
    let url = node.database_url();
    let name = url.rsplit('/').next().expect("a database name");
    // Cut the node off: no new connections, and the open ones ended.
    psql(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ));
    let started = std::time::Instant::now();
    node.get_anon("/readyz").assert_problem(503, "not-ready");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    node.get_anon("/healthz").assert_status(200);
    psql(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"));
    assert!(
        wait_until(deadline(30), || node.get_anon("/readyz").status == 200),
        "ready again once the database takes connections"
    );
    let text = node.get_anon("/metrics").text();
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"wrapsync_refused_requests_total{reason="not-ready"} "#)),
        "{text}"
    );
}

/// With `metrics_token_file` set, `/metrics` answers only the scraper that
/// carries the token: none or a wrong one is `401 unauthorized`.
#[test]
fn metrics_with_a_token_file_need_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics.token");
    let token = "scrape-7d1f0c9a2b4e6f80";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut extra = toml::Table::new();
    extra.insert(
        "metrics_token_file".into(),
        token_file.to_string_lossy().as_ref().into(),
    );
    let node = TestNode::spawn_with(Backend::Sqlite, extra);
    let fran = node.login(FACILITATOR);
    for auth in [
        None,
        Some("Bearer scrape-wrong-guess-0000"),
        Some(fran.as_str()),
    ] {
        let mut request = node.request(Method::GET, "/metrics");
        if let Some(auth) = auth {
            let value = if auth.starts_with("Bearer ") {
                auth.to_string()
            } else {
                format!("Bearer {auth}")
            };
            request = request.header("authorization", value);
        }
        let reply = node.send(request);
        reply.assert_status(401);
        assert_eq!(
            reply.json["type"],
            "/problems/unauthorized",
            "{}",
            reply.text()
        );
    }
    let reply = node.send(
        node.request(Method::GET, "/metrics")
            .header("authorization", format!("Bearer {token}")),
    );
    reply.assert_status(200);
    assert!(reply.text().contains("wrapsync_http_requests_total"));
    // Health and readiness stay open for the load balancer.
    node.get_anon("/readyz").assert_status(200);
}
