//! `wrapsync report`: a running node's plans, counted into the month's
//! cells by the CLI on the same database, with no name, date or id in what
//! it prints, and the run in the audit trail.

use serde_json::json;
use wrapsync_shared::indicators::{AgeBand, Indicator, Report};
use wrapsync_tests::users::{FACILITATOR, SUPERVISOR};
use wrapsync_tests::{deadline, wait_until, Backend, TestNode};

on_both_backends!(the_report_counts_the_plans_and_names_nobody);

fn the_report_counts_the_plans_and_names_nobody(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let mut ids = Vec::new();
    for (name, enrolled, living) in [
        ("Zebulon Quintanilla", "2026-03-02", "home"),
        ("Perpetua Oyelaran", "2026-11-04", "residential"),
        // Enrolled after November: not in its report.
        ("Ottoline Brackenridge", "2026-12-01", "home"),
    ] {
        let plan = node
            .post(
                "/v1/plans",
                &fran,
                &json!({"title": format!("{name} family"), "enrolled_on": enrolled}),
            )
            .typed::<wrapsync_shared::api::PlanDocument>(201);
        node.apply_ops(
            &fran,
            &plan.id,
            json!([
                {"op": "replace", "path": "/youth/name", "value": name},
                {"op": "replace", "path": "/youth/birth_date", "value": "2013-07-19"},
                {"op": "replace", "path": "/vision", "value": format!("{name} stays at 4417 Larkspur Hollow Rd")},
                {"op": "add", "path": "/status", "value": {"as_of": enrolled, "living": living, "school_days_missed_30d": 1}},
            ]),
        );
        ids.push(plan.id);
    }

    let printed = node
        .cli(&["report", "--period", "2026-11"])
        .unwrap_or_else(|e| panic!("{e}"));
    // The report is what goes to stdout; log lines (stderr) come with it.
    let start = printed
        .find("{\n  \"vocabulary\"")
        .unwrap_or_else(|| panic!("no report in {printed}"));
    let report: Report =
        serde_json::from_str(&printed[start..]).unwrap_or_else(|e| panic!("{e}: {printed}"));
    report.validate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.period.to_string(), "2026-11");
    let cell = |indicator: Indicator| {
        report
            .cells
            .iter()
            .find(|c| c.indicator == indicator && c.age_band == AgeBand::Age12To17)
            .map(|c| (c.value, c.base))
    };
    assert_eq!(cell(Indicator::YouthServed), Some((2, None)));
    assert_eq!(cell(Indicator::NewEnrollments), Some((1, None)));
    assert_eq!(cell(Indicator::OutOfHomePlacement), Some((1, Some(2))));
    assert_eq!(cell(Indicator::RegularSchoolAttendance), Some((2, Some(2))));
    let json_text = &printed[start..];
    for secret in ids.iter().map(String::as_str).chain([
        "Zebulon",
        "Perpetua",
        "Ottoline",
        "Larkspur",
        "2013",
        "03-02",
        "11-04",
        FACILITATOR,
    ]) {
        assert!(!json_text.contains(secret), "{secret} in {json_text}");
    }

    // One audit row for the report, naming the period and no plan.
    let sam = node.login(SUPERVISOR);
    let audited = wait_until(deadline(10), || {
        node.audit(&sam, "limit=50").entries.iter().any(|e| {
            e.action == "report.generate"
                && e.outcome == "ok"
                && e.plan.is_none()
                && e.detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("period 2026-11: 3 plans read"))
        })
    });
    assert!(audited, "{:?}", node.audit(&sam, "limit=50").entries);
}
