//! A county gone rogue against the state hub (issue 22, finding 4): it
//! signs with its real enrolled key and sends reports that cannot be true
//! (a million youth in a cell, a 100 % arrest rate on a base of 10⁶,
//! 999,999 new enrollments against 12 youth served, periods 2000-01 and
//! 2999-12), floods the hub, and revises a month again and again. Each
//! absurd report is refused with the rule it breaks, audited, and changes
//! nothing published; the dashboard keeps opening on the latest complete
//! month; the flood gets `429` while another county is still served.

use wrapsync_shared::hub::{Periods, Publication, SubmissionOutcome, SubmissionReceipt};
use wrapsync_shared::indicators::{AgeBand, Cell, Indicator, Period, Report, VOCABULARY_VERSION};
use wrapsync_tests::{Backend, NodeSigner, TestHub};

const REPORTS: &str = "/hub/v1/reports";

/// The month before this one (UTC): over, so it can be complete.
fn last_month() -> Period {
    let today = time::OffsetDateTime::now_utc().date();
    Period::of(today)
        .map(Period::previous)
        .unwrap_or_else(|| panic!("the clock is off"))
}

fn cell(indicator: Indicator, age_band: AgeBand, value: u64, base: Option<u64>) -> Cell {
    Cell {
        indicator,
        age_band,
        category: None,
        value,
        base,
    }
}

/// A report that could be true: `served` youth aged 6-11 and 40 aged
/// 12-17, some newly enrolled, most of whose teams met.
fn honest(period: Period, version: u64, served: u64) -> Report {
    Report {
        vocabulary: VOCABULARY_VERSION,
        period,
        version,
        cells: vec![
            cell(Indicator::YouthServed, AgeBand::Age6To11, served, None),
            cell(Indicator::YouthServed, AgeBand::Age12To17, 40, None),
            cell(
                Indicator::NewEnrollments,
                AgeBand::Age6To11,
                served / 4,
                None,
            ),
            cell(Indicator::NewEnrollments, AgeBand::Age12To17, 12, None),
            cell(Indicator::TeamMet, AgeBand::Age12To17, 25, Some(36)),
            cell(Indicator::ArrestLatest, AgeBand::Age12To17, 4, Some(30)),
        ],
    }
}

fn body(report: &Report) -> Vec<u8> {
    serde_json::to_vec(report).unwrap()
}

fn submit(hub: &TestHub, node: &NodeSigner, report: &Report) -> SubmissionReceipt {
    hub.post_signed(Some(node), REPORTS, &body(report))
        .typed(200)
}

fn release(hub: &TestHub, period: Period) -> Publication {
    hub.get(&format!("/hub/v1/indicators?period={period}"))
        .typed(200)
}

fn periods(hub: &TestHub) -> Periods {
    hub.get("/hub/v1/periods").typed(200)
}

fn statewide(publication: &Publication, indicator: Indicator) -> Option<u64> {
    publication
        .indicators
        .iter()
        .find(|i| i.indicator == indicator)
        .and_then(|i| i.statewide.total.value)
}

fn counties() -> [NodeSigner; 3] {
    ["county-a", "county-b", "county-c"].map(|id| NodeSigner::new(id).unwrap())
}

/// Each absurd report of the finding is refused with a problem naming its
/// rule and where it broke it, is audited, and changes nothing: the
/// published figures and the month the dashboard opens on stay.
fn absurd_reports_are_refused_and_change_nothing(backend: Backend) {
    let [a, b, c] = counties();
    let hub = TestHub::spawn(backend, &[&a, &b, &c]);
    let month = last_month();
    submit(&hub, &a, &honest(month, 1, 60));
    submit(&hub, &c, &honest(month, 1, 80));
    // This month: county-b alone so far (not over, not complete).
    submit(&hub, &b, &honest(month.next(), 1, 12));
    let before = release(&hub, month);
    assert_eq!(statewide(&before, Indicator::YouthServed), Some(100 + 120));
    let offered = periods(&hub);
    assert_eq!(
        offered.latest_complete,
        Some(month),
        "the dashboard opens on the latest complete month: {offered:?}"
    );

    let refusals: Vec<(Report, &str, &str)> = vec![
        // A million youth in one cell.
        (
            Report {
                cells: vec![cell(
                    Indicator::YouthServed,
                    AgeBand::Age6To11,
                    1_000_000,
                    None,
                )],
                ..honest(month, 2, 12)
            },
            "report-over-ceiling",
            "youth_served counts 1000000 youth",
        ),
        // A 100 % arrest rate on a base of 10⁶, with 12 youth served.
        (
            {
                let mut r = honest(month, 3, 12);
                r.cells.push(cell(
                    Indicator::ArrestLatest,
                    AgeBand::Age6To11,
                    1_000_000,
                    Some(1_000_000),
                ));
                r
            },
            "report-part-over-whole",
            "the base of arrest_latest (age band 6-11) is 1000000, more than the 12",
        ),
        // 999,999 new enrollments against 12 youth served.
        (
            {
                let mut r = honest(month, 4, 12);
                r.cells[2].value = 999_999;
                r
            },
            "report-part-over-whole",
            "new_enrollments (age band 6-11) is 999999, more than the 12",
        ),
        (
            honest(Period::new(2000, 1).unwrap(), 5, 12),
            "report-period-too-early",
            "2000-01",
        ),
        (
            honest(Period::new(2999, 12).unwrap(), 6, 12),
            "report-period-in-future",
            "2999-12",
        ),
    ];
    for (report, rule, detail) in &refusals {
        assert!(report.validate().is_ok(), "a valid report: {rule}");
        let refused = hub.post_signed(Some(&b), REPORTS, &body(report));
        refused.assert_problem(422, rule);
        let said = refused.json["detail"].as_str().unwrap_or_default();
        assert!(said.contains(detail), "{rule}: {said}");
    }

    // Nothing of them is published or offered.
    assert_eq!(release(&hub, month), before);
    let after = periods(&hub);
    assert_eq!(after, offered, "the months offered moved");
    for period in ["2000-01", "2999-12"] {
        let empty: Publication = hub
            .get(&format!("/hub/v1/indicators?period={period}"))
            .typed(200);
        assert!(empty.nodes.is_empty(), "{period}: {:?}", empty.nodes);
    }
    // Each refusal is in the hub's audit trail, with its rule and node.
    let stored = String::from_utf8_lossy(&hub.stored_bytes().unwrap()).into_owned();
    for (_, rule, _) in &refusals {
        assert!(stored.contains(rule), "{rule} is not audited");
    }
    assert!(stored.contains("report.submit"));

    // county-b's own plausible report still goes.
    let receipt = submit(&hub, &b, &honest(month, 7, 20));
    assert_eq!(receipt.outcome, SubmissionOutcome::Stored);
    assert_eq!(
        statewide(&release(&hub, month), Indicator::YouthServed),
        Some(100 + 120 + 60)
    );
}

/// One node's flood of submissions gets `429` once past its burst (before
/// its bodies are read), while another node's report is still taken.
fn a_flood_from_one_node_is_limited_and_others_are_served(backend: Backend) {
    let [a, b, c] = counties();
    let hub = TestHub::spawn(backend, &[&a, &b, &c]);
    let month = last_month();
    let report = body(&honest(month, 1, 30));
    let (mut taken, mut limited) = (0, 0);
    for _ in 0..90 {
        let reply = hub.post_signed(Some(&b), REPORTS, &report);
        match reply.status {
            200 => taken += 1,
            429 => {
                reply.assert_problem(429, "rate-limited");
                assert!(reply.header("retry-after").is_some());
                limited += 1;
            }
            other => panic!("HTTP {other}: {}", reply.text()),
        }
    }
    assert!(limited > 0, "a flood of 90 was never limited");
    // The default burst is 60, refilled at 0.02 a second.
    assert!(taken < 70, "{taken} of the flood were taken");
    // Registering a URL counts against the same node's limit.
    hub.post_signed(
        Some(&b),
        "/hub/v1/nodes",
        br#"{"url":"https://county-b.example.org"}"#,
    )
    .assert_problem(429, "rate-limited");
    // The other counties are served.
    assert_eq!(
        submit(&hub, &a, &honest(month, 1, 50)).outcome,
        SubmissionOutcome::Stored
    );
    assert_eq!(
        submit(&hub, &c, &honest(month, 1, 70)).outcome,
        SubmissionOutcome::Stored
    );
    assert_eq!(
        release(&hub, month).nodes,
        ["county-a", "county-b", "county-c"]
    );
}

/// A node may revise a month a few times at once, then once in a while:
/// past that, a revision is refused (`429 report-revisions-limited`),
/// audited, and the last one taken stays published. A resend, or a new
/// version with the same figures, is not a revision.
fn revisions_of_a_period_are_rate_limited(backend: Backend) {
    let [a, b, c] = counties();
    let hub = TestHub::spawn(backend, &[&a, &b, &c]);
    let month = last_month();
    submit(&hub, &a, &honest(month, 1, 50));
    assert_eq!(
        submit(&hub, &b, &honest(month, 1, 30)).outcome,
        SubmissionOutcome::Stored
    );
    // Six revisions are taken (the default burst)…
    for version in 2..=7 {
        let receipt = submit(&hub, &b, &honest(month, version, 30 + version));
        assert_eq!(receipt.outcome, SubmissionOutcome::Stored, "v{version}");
    }
    let published = release(&hub, month);
    assert_eq!(statewide(&published, Indicator::YouthServed), Some(90 + 77));
    // …the next is refused, and changes nothing.
    let refused = hub.post_signed(Some(&b), REPORTS, &body(&honest(month, 8, 99)));
    refused.assert_problem(429, "report-revisions-limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(release(&hub, month), published);
    // The same figures under a new version, and a resend, still go.
    assert_eq!(
        submit(&hub, &b, &honest(month, 9, 37)).outcome,
        SubmissionOutcome::Stored
    );
    assert_eq!(
        submit(&hub, &b, &honest(month, 9, 37)).outcome,
        SubmissionOutcome::Unchanged
    );
    // Another month of the same node, and another node, are not limited.
    assert_eq!(
        submit(&hub, &b, &honest(month.previous(), 1, 30)).outcome,
        SubmissionOutcome::Stored
    );
    assert_eq!(
        submit(&hub, &a, &honest(month, 2, 51)).outcome,
        SubmissionOutcome::Stored
    );
    let stored = String::from_utf8_lossy(&hub.stored_bytes().unwrap()).into_owned();
    assert!(stored.contains("report-revisions-limited"));
}

on_both_backends!(
    absurd_reports_are_refused_and_change_nothing,
    a_flood_from_one_node_is_limited_and_others_are_served,
    revisions_of_a_period_are_rate_limited,
);
