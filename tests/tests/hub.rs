#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The state hub against a real `wrapsync hub` process: the test plays two
//! or three enrolled county nodes, signing their reports as nodes do, and
//! an outsider. Each test runs on SQLite and on PostgreSQL.

use reqwest::Method;
use serde_json::{json, Value};
use wrapsync_shared::hub::{Directory, Publication, SubmissionOutcome, SubmissionReceipt};
use wrapsync_shared::indicators::{
    AgeBand, Cell, Indicator, Period, Report, MAX_COUNT, VOCABULARY_VERSION,
};
use wrapsync_tests::{unix_now, Backend, NodeSigner, TestHub, HUB_ID};

const REPORTS: &str = "/hub/v1/reports";

fn period() -> Period {
    Period::new(2026, 10).unwrap()
}

fn counts(indicator: Indicator, values: [u64; 3]) -> Vec<Cell> {
    [AgeBand::Age0To5, AgeBand::Age6To11, AgeBand::Age12To17]
        .into_iter()
        .zip(values)
        .map(|(age_band, value)| Cell {
            indicator,
            age_band,
            category: None,
            value,
            base: None,
        })
        .collect()
}

fn report(version: u64, enrollments: [u64; 3], served: [u64; 3]) -> Report {
    let mut cells = counts(Indicator::NewEnrollments, enrollments);
    cells.extend(counts(Indicator::YouthServed, served));
    cells.push(Cell {
        indicator: Indicator::TeamMet,
        age_band: AgeBand::Age12To17,
        category: None,
        value: 30,
        base: Some(45),
    });
    Report {
        vocabulary: VOCABULARY_VERSION,
        period: period(),
        version,
        cells,
    }
}

fn body(report: &Report) -> Vec<u8> {
    serde_json::to_vec(report).unwrap()
}

fn submit(hub: &TestHub, node: &NodeSigner, report: &Report) -> SubmissionReceipt {
    hub.post_signed(Some(node), REPORTS, &body(report))
        .typed(200)
}

fn release(hub: &TestHub) -> Publication {
    hub.get(&format!("/hub/v1/indicators?period={}", period()))
        .typed(200)
}

fn nodes() -> [NodeSigner; 3] {
    ["county-a", "county-b", "county-c"].map(|id| NodeSigner::new(id).unwrap())
}

/// The submissions of one test: county-a corrects its report (version 2),
/// and the others report once.
fn submissions() -> Vec<(usize, Report)> {
    vec![
        (0, report(1, [3, 25, 40], [30, 60, 90])),
        (0, report(2, [4, 25, 40], [30, 61, 90])),
        (1, report(1, [30, 31, 50], [44, 50, 70])),
        (2, report(1, [20, 22, 60], [35, 36, 80])),
    ]
}

fn reports_merge_in_any_order_and_publish_suppressed(backend: Backend) {
    let [a, b, c] = nodes();
    let signers = [&a, &b, &c];
    let all = submissions();

    // In order, each once.
    let first = TestHub::spawn(backend, &signers);
    for (i, (n, r)) in all.iter().enumerate() {
        let receipt = submit(&first, signers[*n], r);
        assert_eq!(receipt.outcome, SubmissionOutcome::Stored, "submission {i}");
        assert!(receipt.kept);
        assert_eq!(receipt.node, signers[*n].id);
    }
    // A resend changes nothing; county-a's older version is superseded.
    let again = submit(&first, &a, &all[1].1);
    assert_eq!(
        (again.outcome, again.kept),
        (SubmissionOutcome::Unchanged, true)
    );
    let old = submit(&first, &a, &all[0].1);
    assert_eq!(
        (old.outcome, old.kept, old.version),
        (SubmissionOutcome::Superseded, false, 2)
    );
    let published = release(&first);

    // Reversed, every submission twice, on another hub.
    let second = TestHub::spawn(backend, &signers);
    for (n, r) in all.iter().rev().chain(all.iter()) {
        submit(&second, signers[*n], r);
    }
    assert_eq!(release(&second), published);

    // What is published: county-a's 4 new enrollments aged 0-5 are
    // withheld, and so is their smallest complement (25, aged 6-11).
    assert_eq!(published.nodes, ["county-a", "county-b", "county-c"]);
    let new = published
        .indicators
        .iter()
        .find(|f| f.indicator == Indicator::NewEnrollments)
        .unwrap();
    let county_a = &new.communities[0];
    assert_eq!(county_a.node, "county-a");
    assert_eq!(county_a.figures.total.value, Some(69));
    let young = &county_a.figures.by_age_band[0].figure;
    assert_eq!((young.value, young.suppressed), (None, true));
    let complement = &county_a.figures.by_age_band[1].figure;
    assert_eq!((complement.value, complement.suppressed), (None, true));
    assert_eq!(county_a.figures.by_age_band[2].figure.value, Some(40));
    assert_eq!(new.statewide.total.value, Some(69 + 111 + 102));
    // On the wire: `null` and `"suppressed": true`, never the number.
    let raw = first.get(&format!("/hub/v1/indicators?period={}", period()));
    let text = raw.text();
    let wire: Value = raw.json.clone();
    let a_wire = &wire["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["indicator"] == "new_enrollments")
        .unwrap()["communities"][0];
    assert_eq!(a_wire["by_age_band"][0]["value"], Value::Null);
    assert_eq!(a_wire["by_age_band"][0]["suppressed"], json!(true));
    assert!(
        !text.contains("\"value\":4,"),
        "a small count on the wire: {text}"
    );
    // A rate with its numerator under 20 would be flagged; 30 of 45 is not.
    let team = published
        .indicators
        .iter()
        .find(|f| f.indicator == Indicator::TeamMet)
        .unwrap();
    assert_eq!(team.statewide.total.value, Some(90));
    assert_eq!(team.statewide.total.base, Some(135));
    assert!(!team.statewide.total.unstable);

    // CSV, by parameter or by Accept, with the same empty cells.
    let csv = first.get(&format!(
        "/hub/v1/indicators?period={}&format=csv",
        period()
    ));
    csv.assert_status(200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let text = csv.text();
    assert!(text.starts_with("period,indicator,measure,scope,breakdown,key,value,base"));
    assert!(text.contains("2026-10,new_enrollments,count,county-a,age_band,0-5,,,,,,true,false"));
    assert!(text.contains("2026-10,new_enrollments,count,county-a,total,,69,,,,,false,false"));
    let accepted = first.send(
        first
            .request(
                Method::GET,
                &format!("/hub/v1/indicators?period={}", period()),
            )
            .header("accept", "text/csv"),
    );
    assert_eq!(accepted.text(), text);

    // A period with no reports publishes zeros, and nonsense is refused.
    let empty: Publication = first.get("/hub/v1/indicators?period=2026-01").typed(200);
    assert!(empty.nodes.is_empty());
    first
        .get("/hub/v1/indicators?period=2026-13")
        .assert_problem(400, "invalid-request");
    first
        .get("/hub/v1/indicators")
        .assert_problem(400, "invalid-request");

    // What the hub keeps survives a restart, and publishes the same.
    let mut first = first;
    first.restart();
    assert_eq!(release(&first), published);

    // A second release of the period: county-b corrects its report, three
    // more youth aged 12-17. Showing 53 after 50 (and 114 after 111, 285
    // after 282) would reveal a group of three: those figures are now
    // withheld, with complements; what did not move still shows.
    let correction = report(2, [30, 31, 53], [44, 50, 70]);
    assert_eq!(
        submit(&first, &b, &correction).outcome,
        SubmissionOutcome::Stored
    );
    let next = release(&first);
    let new = next
        .indicators
        .iter()
        .find(|f| f.indicator == Indicator::NewEnrollments)
        .unwrap();
    let county_b = &new.communities[1].figures;
    assert_eq!(county_b.by_age_band[2].figure.value, None);
    assert_eq!(county_b.total.value, None);
    assert_eq!(new.statewide.total.value, None);
    assert_eq!(new.statewide.by_age_band[2].figure.value, None);
    assert_eq!(county_b.by_age_band[0].figure.value, Some(30));
    // And what the first release withheld stays withheld.
    let county_a = &new.communities[0].figures;
    assert_eq!(county_a.by_age_band[0].figure.value, None);
    assert_eq!(county_a.by_age_band[1].figure.value, None);
}

#[test]
fn reports_merge_in_any_order_and_publish_suppressed_sqlite() {
    reports_merge_in_any_order_and_publish_suppressed(Backend::Sqlite);
}

#[test]
fn reports_merge_in_any_order_and_publish_suppressed_postgres() {
    reports_merge_in_any_order_and_publish_suppressed(Backend::Postgres);
}

fn only_enrolled_nodes_submit_and_only_reports_are_taken(backend: Backend) {
    let [a, b, _] = nodes();
    let mallory = NodeSigner::new("county-m").unwrap();
    let hub = TestHub::spawn(backend, &[&a, &b]);
    let good = body(&report(1, [12, 25, 40], [30, 60, 90]));

    // Unsigned, an outsider, an outsider using an enrolled name, stale,
    // another hub's, and a replay: 401.
    hub.post_signed(None, REPORTS, &good)
        .assert_problem(401, "unauthorized");
    hub.post_signed(Some(&mallory), REPORTS, &good)
        .assert_problem(401, "unauthorized");
    // county-a's name, another key.
    let impostor = NodeSigner::new("county-a").unwrap();
    hub.post_signed(Some(&impostor), REPORTS, &good)
        .assert_problem(401, "unauthorized");
    let send_with = |authorization: String, body: &[u8]| {
        hub.send(
            hub.request(Method::POST, REPORTS)
                .header("content-type", "application/json")
                .header("authorization", authorization)
                .body(body.to_vec()),
        )
    };
    send_with(
        a.sign(HUB_ID, "POST", REPORTS, &good, unix_now() - 600),
        &good,
    )
    .assert_problem(401, "unauthorized");
    send_with(
        a.sign("other-hub", "POST", REPORTS, &good, unix_now()),
        &good,
    )
    .assert_problem(401, "unauthorized");
    let once = a.sign(HUB_ID, "POST", REPORTS, &good, unix_now());
    send_with(once.clone(), &good).assert_status(200);
    send_with(once, &good).assert_problem(401, "unauthorized");
    // Signed for one body, sent with another.
    let other = body(&report(2, [12, 25, 41], [30, 60, 90]));
    send_with(a.sign(HUB_ID, "POST", REPORTS, &good, unix_now()), &other)
        .assert_problem(401, "unauthorized");

    // Not a report: 400 with a problem type saying so.
    let v = |s: &str| s.as_bytes().to_vec();
    for bad in [
        v(r#"{"vocabulary":1,"period":"2026-10","version":3,"cells":[],"family":"Ada Lovelace"}"#),
        v(
            r#"{"vocabulary":1,"period":"2026-10","version":3,"cells":[{"indicator":"youth_served","age_band":"6-11","value":3,"note":"x"}]}"#,
        ),
        v(
            r#"{"vocabulary":1,"period":"2026-10","version":3,"cells":[{"indicator":"names","age_band":"6-11","value":3}]}"#,
        ),
        v(
            r#"{"vocabulary":1,"period":"2026-10","version":3,"cells":[{"indicator":"youth_served","age_band":"6-11","value":-3}]}"#,
        ),
        v(r#"{"vocabulary":1,"period":"2026-10-04","version":3,"cells":[]}"#),
        v(r#"[1,2,3]"#),
    ] {
        hub.post_signed(Some(&b), REPORTS, &bad)
            .assert_problem(400, "invalid-report");
    }
    hub.post_signed(Some(&b), REPORTS, b"{not json")
        .assert_problem(400, "malformed-json");
    // A report that breaks the rules: 422.
    let mut absurd = report(3, [12, 25, 40], [30, 60, 90]);
    absurd.cells[0].value = MAX_COUNT + 1;
    hub.post_signed(Some(&b), REPORTS, &body(&absurd))
        .assert_problem(422, "report-refused");
    let mut over = report(3, [12, 25, 40], [30, 60, 90]);
    over.cells.last_mut().unwrap().value = 50; // 50 of 45
    hub.post_signed(Some(&b), REPORTS, &body(&over))
        .assert_problem(422, "report-refused");
    let mut foreign = report(3, [12, 25, 40], [30, 60, 90]);
    foreign.vocabulary = 99;
    hub.post_signed(Some(&b), REPORTS, &body(&foreign))
        .assert_problem(422, "report-refused");
    // Not JSON, or too large.
    hub.send(
        hub.request(Method::POST, REPORTS)
            .header("content-type", "text/plain")
            .header(
                "authorization",
                b.sign(HUB_ID, "POST", REPORTS, &good, unix_now()),
            )
            .body(good.clone()),
    )
    .assert_problem(415, "unsupported-media-type");
    let huge = vec![b' '; 600 * 1024];
    hub.post_signed(Some(&b), REPORTS, &huge)
        .assert_problem(413, "payload-too-large");

    // None of that was kept: only county-a's one good report is.
    let published = release(&hub);
    assert_eq!(published.nodes, ["county-a"]);

    // The directory: every enrolled node and its key; a URL once the node
    // registered it (signed); outsiders cannot.
    let register = |signer: &NodeSigner, url: &str| {
        hub.post_signed(
            Some(signer),
            "/hub/v1/nodes",
            json!({ "url": url }).to_string().as_bytes(),
        )
    };
    register(&a, "https://county-a.example.org/").assert_status(200);
    register(&mallory, "https://evil.example").assert_problem(401, "unauthorized");
    register(&b, "javascript:alert(1)").assert_problem(400, "invalid-request");
    hub.post_signed(
        Some(&b),
        "/hub/v1/nodes",
        json!({ "url": "https://b.example", "name": "x" })
            .to_string()
            .as_bytes(),
    )
    .assert_problem(400, "invalid-request");
    let directory: Directory = hub.get("/hub/v1/nodes").typed(200);
    assert_eq!(directory.hub_id, HUB_ID);
    let listed: Vec<(String, Option<String>, String)> = directory
        .nodes
        .into_iter()
        .map(|n| (n.id, n.url, n.public_key))
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "county-a".to_string(),
                Some("https://county-a.example.org".to_string()),
                a.public_key.clone()
            ),
            ("county-b".to_string(), None, b.public_key.clone()),
        ]
    );
    let identity = hub.get("/hub/v1/identity");
    identity.assert_status(200);
    assert_eq!(identity.json["hub_id"], HUB_ID);
    hub.get("/hub/v1/nothing").assert_problem(404, "not-found");
}

#[test]
fn only_enrolled_nodes_submit_and_only_reports_are_taken_sqlite() {
    only_enrolled_nodes_submit_and_only_reports_are_taken(Backend::Sqlite);
}

#[test]
fn only_enrolled_nodes_submit_and_only_reports_are_taken_postgres() {
    only_enrolled_nodes_submit_and_only_reports_are_taken(Backend::Postgres);
}

/// A community the state office withdraws is no longer published; its
/// reports stay, should it be enrolled again.
#[test]
fn a_withdrawn_node_is_no_longer_published() {
    let nodes = nodes();
    let mut hub = TestHub::spawn(Backend::Sqlite, &[&nodes[0], &nodes[1], &nodes[2]]);
    for (i, report) in submissions() {
        submit(&hub, &nodes[i], &report);
    }
    assert_eq!(release(&hub).nodes, ["county-a", "county-b", "county-c"]);
    hub.enroll_only(&["county-a", "county-b"]);
    let published = release(&hub);
    assert_eq!(published.nodes, ["county-a", "county-b"]);
    assert!(published
        .indicators
        .iter()
        .all(|i| i.communities.iter().all(|c| c.node != "county-c")));
    // It can no longer submit either.
    let refused = hub.post_signed(
        Some(&nodes[2]),
        REPORTS,
        &body(&report(9, [1, 1, 1], [1, 1, 1])),
    );
    assert_eq!(refused.status, 401);
}

/// `GET /openapi.json` on a real hub: an OpenAPI 3 document, public, whose
/// routes the hub really serves, and none of a node's.
#[test]
fn the_hub_serves_its_openapi_document() {
    let hub = TestHub::spawn(Backend::Sqlite, &[]);
    let document = wrapsync_tests::openapi_document(&hub.get("/openapi.json"));
    let paths = document["paths"].as_object().expect("paths");
    for path in [REPORTS, "/hub/v1/indicators", "/hub/v1/nodes"] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(!paths.keys().any(|p| p.starts_with("/v1/")));
    wrapsync_tests::assert_documented_paths_exist(&document, |path| hub.get(path));
    hub.get("/hub/v1/no-such-route")
        .assert_problem(404, "not-found");
}

/// With `metrics_token_file` set, the hub's `/metrics` answers only the
/// scraper carrying the token (`401 unauthorized` without it or with a
/// wrong one); liveness and readiness stay open.
#[test]
fn the_hubs_metrics_with_a_token_file_need_its_token() {
    let mut hub = TestHub::spawn(Backend::Sqlite, &[]);
    hub.get("/metrics").assert_status(200);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics.token");
    let token = "hub-scrape-5e0b9c1d7a3f2468";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    hub.configure(
        "metrics_token_file",
        token_file.to_string_lossy().as_ref().into(),
    );
    hub.get("/metrics").assert_problem(401, "unauthorized");
    let wrong = hub
        .request(Method::GET, "/metrics")
        .bearer_auth("hub-scrape-wrong-000000");
    hub.send(wrong).assert_problem(401, "unauthorized");
    let right = hub.send(hub.request(Method::GET, "/metrics").bearer_auth(token));
    right.assert_status(200);
    assert!(right.text().contains("# EOF"), "{}", right.text());
    hub.get("/healthz").assert_status(200);
    hub.get("/readyz").assert_status(200);
}
