//! Small synthetic plans, one or more per indicator, with the edges the
//! definitions draw (first and last day of the month, windows, withdrawn
//! and draft records).

use super::*;
use serde_json::json;
use wrapsync_shared::indicators::{Report, VOCABULARY_VERSION};

/// November 2026: 1st to 30th.
fn nov() -> Period {
    Period::new(2026, 11).unwrap_or_else(|| panic!("period"))
}

/// A plan of a youth born `birth` (12 on 30 Nov 2026 for "2014-05-01"),
/// enrolled `enrolled`, discharged `discharged`.
fn plan(birth: Option<&str>, enrolled: Option<&str>, discharged: Option<&str>) -> Value {
    json!({
        "title": "Plan",
        "youth": {"name": "Someone", "birth_date": birth},
        "enrollment": {"enrolled_on": enrolled, "discharged_on": discharged, "phase": "implementation"},
        "team": [], "strategies": [], "meetings": [], "cans": [], "status": [],
        "crisis_plan": {},
    })
}

/// Enrolled long before November, still enrolled, aged 12.
fn enrolled() -> Value {
    plan(Some("2014-05-01"), Some("2026-01-10"), None)
}

fn with(mut plan: Value, key: &str, value: Value) -> Value {
    plan[key] = value;
    plan
}

/// `(value, base)` of one cell, `None` if the report has no such cell.
fn cell(
    cells: &[Cell],
    indicator: Indicator,
    band: AgeBand,
    category: Option<Category>,
) -> Option<(u64, Option<u64>)> {
    cells
        .iter()
        .find(|c| c.indicator == indicator && c.age_band == band && c.category == category)
        .map(|c| (c.value, c.base))
}

/// Summed over age bands and categories.
fn total(cells: &[Cell], indicator: Indicator) -> (u64, Option<u64>) {
    cells
        .iter()
        .filter(|c| c.indicator == indicator)
        .fold((0, None), |(v, b), c| {
            (v + c.value, c.base.map(|x| x + b.unwrap_or(0)).or(b))
        })
}

fn run(plans: &[Value]) -> Vec<Cell> {
    aggregate(plans, nov())
}

const TEEN: AgeBand = AgeBand::Age12To17;

#[test]
fn served_means_enrolled_by_the_last_day_and_not_discharged_before_the_first() {
    let plans = [
        // Discharged on the first day of the month: served.
        plan(Some("2014-05-01"), Some("2026-03-01"), Some("2026-11-01")),
        // Enrolled on the last day of the month: served.
        plan(Some("2014-05-01"), Some("2026-11-30"), None),
        // Still enrolled: served.
        enrolled(),
        // Discharged the day before the month: not served.
        plan(Some("2014-05-01"), Some("2026-03-01"), Some("2026-10-31")),
        // Enrolled the day after: not served.
        plan(Some("2014-05-01"), Some("2026-12-01"), None),
        // No enrollment date, or one that does not parse: not served.
        plan(Some("2014-05-01"), None, None),
        plan(Some("2014-05-01"), Some("2026-11-31"), None),
        // Discharged before enrolled: the dates contradict, not served.
        plan(Some("2014-05-01"), Some("2026-11-10"), Some("2026-11-02")),
    ];
    let cells = run(&plans);
    assert_eq!(
        cell(&cells, Indicator::YouthServed, TEEN, None),
        Some((3, None))
    );
    assert_eq!(total(&cells, Indicator::YouthServed), (3, None));
}

#[test]
fn new_enrollments_are_those_enrolled_in_the_month() {
    let plans = [
        plan(Some("2014-05-01"), Some("2026-11-01"), None),
        plan(Some("2014-05-01"), Some("2026-11-30"), None),
        plan(Some("2014-05-01"), Some("2026-10-31"), None),
        plan(Some("2014-05-01"), Some("2026-12-01"), None),
    ];
    let cells = run(&plans);
    assert_eq!(total(&cells, Indicator::NewEnrollments), (2, None));
}

#[test]
fn age_is_full_years_on_the_last_day_and_unknown_without_a_birth_date() {
    let at = |birth: Option<&str>| {
        let cells = run(&[plan(birth, Some("2026-01-10"), None)]);
        cells
            .iter()
            .find(|c| c.indicator == Indicator::YouthServed)
            .map(|c| c.age_band)
    };
    // Turns 6 on the period's last day; turns 6 the day after.
    assert_eq!(at(Some("2020-11-30")), Some(AgeBand::Age6To11));
    assert_eq!(at(Some("2020-12-01")), Some(AgeBand::Age0To5));
    assert_eq!(at(Some("2008-11-30")), Some(AgeBand::Age18To21));
    assert_eq!(at(Some("2004-11-30")), Some(AgeBand::Unknown)); // 22
    assert_eq!(at(Some("2004-12-01")), Some(AgeBand::Age18To21)); // 21
    assert_eq!(at(None), Some(AgeBand::Unknown));
    assert_eq!(at(Some("30/11/2020")), Some(AgeBand::Unknown));
    assert_eq!(at(Some("2027-01-01")), Some(AgeBand::Unknown)); // not born yet
}

#[test]
fn plan_adoption_is_judged_on_the_thirtieth_day_after_enrollment() {
    let adopted = |enrolled: &str, adopted: Option<&str>, discharged: Option<&str>| {
        let mut p = plan(Some("2014-05-01"), Some(enrolled), discharged);
        p["enrollment"]["plan_adopted_on"] = json!(adopted);
        p
    };
    let plans = [
        // Deadline 2026-11-01, adopted that day: yes.
        adopted("2026-10-02", Some("2026-11-01"), None),
        // Deadline 2026-11-30, adopted the day after: no.
        adopted("2026-10-31", Some("2026-12-01"), None),
        // Deadline 2026-11-15, never adopted: no.
        adopted("2026-10-16", None, None),
        // Deadline 2026-10-31: another month's cohort.
        adopted("2026-10-01", Some("2026-10-05"), None),
        // Discharged before the deadline: not in the cohort.
        adopted("2026-10-16", None, Some("2026-11-14")),
        // Discharged on the deadline: in it.
        adopted("2026-10-16", Some("2026-10-20"), Some("2026-11-15")),
    ];
    let cells = run(&plans);
    assert_eq!(
        cell(&cells, Indicator::PlanAdoptedWithin30Days, TEEN, None),
        Some((2, Some(4)))
    );
}

#[test]
fn discharges_give_days_in_service_and_reasons() {
    let discharged = |enrolled: &str, on: &str, reason: Option<&str>| {
        let mut p = plan(Some("2014-05-01"), Some(enrolled), Some(on));
        p["enrollment"]["discharge_reason"] = json!(reason);
        p
    };
    let plans = [
        // 29 days: band 0.
        discharged("2026-10-03", "2026-11-01", Some("completed")),
        // 30 days: band 30.
        discharged("2026-10-31", "2026-11-30", Some("completed")),
        // 800 days: the last band; no reason given counts as other.
        discharged("2024-09-01", "2026-11-10", None),
        // Enrolled and discharged the same day: 0 days.
        discharged("2026-11-05", "2026-11-05", Some("dropped_out")),
        // Discharged in October: not this month's.
        discharged("2026-01-01", "2026-10-31", Some("moved")),
    ];
    let cells = run(&plans);
    let days = |band| cell(&cells, Indicator::DaysInService, TEEN, Some(band));
    assert_eq!(days(Category::Days0), Some((2, None)));
    assert_eq!(days(Category::Days30), Some((1, None)));
    assert_eq!(days(Category::Days720Plus), Some((1, None)));
    assert_eq!(total(&cells, Indicator::DaysInService), (4, None));
    let reason = |r| cell(&cells, Indicator::DischargeReason, TEEN, Some(r));
    assert_eq!(reason(Category::Completed), Some((2, None)));
    assert_eq!(reason(Category::Other), Some((1, None)));
    assert_eq!(reason(Category::DroppedOut), Some((1, None)));
    assert_eq!(reason(Category::Moved), None);
}

fn status(id: &str, as_of: &str, fields: Value) -> Value {
    let mut s = json!({"id": id, "as_of": as_of, "status": "recorded"});
    if let (Some(s), Some(fields)) = (s.as_object_mut(), fields.as_object()) {
        s.extend(fields.clone());
    }
    s
}

#[test]
fn home_at_discharge_reads_the_last_status_by_discharge() {
    let discharged = |statuses: Value| {
        with(
            plan(Some("2014-05-01"), Some("2026-01-10"), Some("2026-11-20")),
            "status",
            statuses,
        )
    };
    let plans = [
        // Home, then a later withdrawn "group": home.
        discharged(json!([
            status("a", "2026-01-10", json!({"living": "foster"})),
            status("b", "2026-11-20", json!({"living": "home"})),
            status(
                "c",
                "2026-11-20",
                json!({"living": "group", "status": "withdrawn"})
            ),
        ])),
        // Foster by discharge; home only after it: not home.
        discharged(json!([
            status("a", "2026-01-10", json!({"living": "foster"})),
            status("b", "2026-11-21", json!({"living": "home"})),
        ])),
        // The last status by discharge gives no living situation: not in the base.
        discharged(json!([
            status("a", "2026-01-10", json!({"living": "home"})),
            status("b", "2026-11-19", json!({"arrests_30d": 0})),
        ])),
        // No status at all: not in the base.
        discharged(json!([])),
    ];
    let cells = run(&plans);
    assert_eq!(
        cell(&cells, Indicator::HomeAtDischarge, TEEN, None),
        Some((1, Some(2)))
    );
}

#[test]
fn out_of_home_placement_looks_at_every_status_during_enrollment() {
    let served = |statuses: Value| with(enrolled(), "status", statuses);
    let plans = [
        served(json!([
            status("a", "2026-01-10", json!({"living": "home"})),
            status("b", "2026-06-01", json!({"living": "residential"})),
            status("c", "2026-11-01", json!({"living": "home"})),
        ])),
        // Kin and home are not out of home.
        served(json!([
            status("a", "2026-01-10", json!({"living": "kin"})),
            status("b", "2026-11-03", json!({"living": "home"})),
        ])),
        // Detention before enrollment and after the period: not during it.
        served(json!([
            status("a", "2025-12-01", json!({"living": "detention"})),
            status("b", "2026-02-01", json!({"living": "home"})),
            status("c", "2026-12-02", json!({"living": "detention"})),
        ])),
        // A withdrawn placement does not count.
        served(json!([
            status("a", "2026-02-01", json!({"living": "home"})),
            status(
                "b",
                "2026-03-01",
                json!({"living": "group", "status": "withdrawn"})
            ),
        ])),
        // No living situation recorded: not in the base.
        served(json!([status(
            "a",
            "2026-02-01",
            json!({"arrests_30d": 1})
        )])),
    ];
    let cells = run(&plans);
    assert_eq!(
        cell(&cells, Indicator::OutOfHomePlacement, TEEN, None),
        Some((1, Some(4)))
    );
}

#[test]
fn intake_and_latest_statuses_give_admissions_and_arrests() {
    let served = |statuses: Value| with(enrolled(), "status", statuses);
    let plans = [
        // Admitted and arrested at intake, neither at the latest.
        served(json!([
            status(
                "a",
                "2026-01-10",
                json!({"psych_admissions_180d": 1, "arrests_30d": 2})
            ),
            status(
                "b",
                "2026-11-15",
                json!({"psych_admissions_180d": 0, "arrests_30d": 0})
            ),
        ])),
        // Only an intake status: counts at intake, not at the latest.
        served(json!([status(
            "a",
            "2026-01-10",
            json!({"psych_admissions_180d": 0, "arrests_30d": 1})
        )])),
        // The latest by the period's end is the October one, not December's.
        served(json!([
            status(
                "a",
                "2026-01-10",
                json!({"psych_admissions_180d": 0, "arrests_30d": 0})
            ),
            status(
                "b",
                "2026-10-01",
                json!({"psych_admissions_180d": 2, "arrests_30d": 1})
            ),
            status(
                "c",
                "2026-12-01",
                json!({"psych_admissions_180d": 0, "arrests_30d": 0})
            ),
        ])),
        // The intake is the earliest, whatever order they were entered in;
        // a withdrawn earlier one does not count.
        served(json!([
            status("a", "2026-09-01", json!({"psych_admissions_180d": 0})),
            status("b", "2026-02-01", json!({"psych_admissions_180d": 3})),
            status(
                "c",
                "2026-01-01",
                json!({"psych_admissions_180d": 0, "status": "withdrawn"})
            ),
        ])),
    ];
    let cells = run(&plans);
    let rate = |i| cell(&cells, i, TEEN, None);
    assert_eq!(rate(Indicator::PsychAdmissionAtIntake), Some((2, Some(4))));
    assert_eq!(rate(Indicator::PsychAdmissionLatest), Some((1, Some(3))));
    // The fourth plan's statuses record no arrests.
    assert_eq!(rate(Indicator::ArrestAtIntake), Some((2, Some(3))));
    assert_eq!(rate(Indicator::ArrestLatest), Some((1, Some(2))));
}

#[test]
fn a_youth_is_counted_once_even_with_two_snapshots_in_the_month() {
    let p = with(
        enrolled(),
        "status",
        json!([
            status(
                "a",
                "2026-11-02",
                json!({"school_days_missed_30d": 9, "living": "home"})
            ),
            status(
                "b",
                "2026-11-20",
                json!({"school_days_missed_30d": 2, "living": "home"})
            ),
        ]),
    );
    let cells = run(&[p]);
    assert_eq!(
        cell(&cells, Indicator::YouthServed, TEEN, None),
        Some((1, None))
    );
    // The latest status: 2 days missed is regular attendance.
    assert_eq!(
        cell(&cells, Indicator::RegularSchoolAttendance, TEEN, None),
        Some((1, Some(1)))
    );
    assert_eq!(
        cell(&cells, Indicator::OutOfHomePlacement, TEEN, None),
        Some((0, Some(1)))
    );
}

#[test]
fn school_attendance_needs_days_missed_on_the_latest_status() {
    let served = |statuses: Value| with(enrolled(), "status", statuses);
    let plans = [
        served(json!([status(
            "a",
            "2026-11-02",
            json!({"school_days_missed_30d": 3})
        )])),
        served(json!([status(
            "a",
            "2026-11-02",
            json!({"school_days_missed_30d": 0})
        )])),
        // The latest does not record it: not in the base.
        served(json!([
            status("a", "2026-10-02", json!({"school_days_missed_30d": 0})),
            status("b", "2026-11-02", json!({"living": "home"})),
        ])),
    ];
    let cells = run(&plans);
    assert_eq!(
        cell(&cells, Indicator::RegularSchoolAttendance, TEEN, None),
        Some((1, Some(2)))
    );
}

fn cans(id: &str, on: &str, state: Option<&str>, ratings: Value) -> Value {
    json!({"id": id, "assessed_on": on, "status": state, "ratings": ratings})
}

#[test]
fn cans_needs_resolved_compares_the_first_final_with_the_last_reassessment_in_the_month() {
    let assessed = |list: Value| with(enrolled(), "cans", list);
    let plans = [
        // Three actionable items first; on reassessment two fell to 0–1.
        // The draft in between and the withdrawn one are ignored.
        assessed(json!([
            cans(
                "a",
                "2026-02-01",
                Some("final"),
                json!({"adj1": 3, "adj2": 2, "adj3": 2, "adj4": 1})
            ),
            cans(
                "b",
                "2026-11-03",
                Some("draft"),
                json!({"adj1": 3, "adj2": 3, "adj3": 3})
            ),
            cans(
                "c",
                "2026-11-10",
                Some("final"),
                json!({"adj1": 0, "adj2": 1, "adj3": 2})
            ),
            cans(
                "d",
                "2026-11-12",
                Some("withdrawn"),
                json!({"adj1": 3, "adj2": 3, "adj3": 3})
            ),
        ])),
        // A draft first assessment is not the first: the baseline is the
        // first final one, and no status means final (the schema default).
        assessed(json!([
            cans("a", "2026-01-15", Some("draft"), json!({"x": 3})),
            cans("b", "2026-02-15", None, json!({"x": 2, "y": 3})),
            cans("c", "2026-11-20", Some("final"), json!({"x": 1})),
        ])),
        // Not reassessed this month.
        assessed(json!([
            cans("a", "2026-02-01", Some("final"), json!({"x": 3})),
            cans("b", "2026-10-01", Some("final"), json!({"x": 0})),
        ])),
        // Only a draft reassessment this month.
        assessed(json!([
            cans("a", "2026-02-01", Some("final"), json!({"x": 3})),
            cans("b", "2026-11-01", Some("draft"), json!({"x": 0})),
        ])),
    ];
    let cells = run(&plans);
    // Items: 3 + 2 actionable; resolved 2 + 1 (y not rated again).
    assert_eq!(
        cell(&cells, Indicator::CansNeedsResolved, TEEN, None),
        Some((3, Some(5)))
    );
}

#[test]
fn natural_support_needs_an_active_natural_or_informal_member() {
    let team = |members: Value| with(enrolled(), "team", members);
    let plans = [
        team(json!([{"id": "a", "name": "Gran", "role": "natural_support", "status": "active"}])),
        team(json!([{"id": "a", "name": "Coach", "role": "provider", "support": "informal"}])),
        team(json!([
            {"id": "a", "name": "Pastor", "role": "natural_support", "status": "left"},
            {"id": "b", "name": "Therapist", "role": "provider", "support": "formal"},
        ])),
        team(json!([])),
        team(json!([
            {"id": "a", "name": "Mum", "role": "caregiver", "support": "natural"},
            {"id": "b", "name": "Kid", "role": "youth", "support": "natural"},
        ])),
    ];
    let cells = run(&plans);
    assert_eq!(
        cell(&cells, Indicator::NaturalSupport, TEEN, None),
        Some((2, Some(5)))
    );
}

fn flex(category: &str, cents: u64, state: &str, paid_on: Option<&str>) -> Value {
    json!({"id": "s", "kind": "flex", "description": "x",
           "flex": {"category": category, "amount_cents": cents, "status": state, "paid_on": paid_on}})
}

#[test]
fn flexible_funds_are_what_was_paid_in_the_month_by_category() {
    let plans = [
        with(
            enrolled(),
            "strategies",
            json!([
                flex("housing", 50_000, "paid", Some("2026-11-01")),
                flex("housing", 25_000, "paid", Some("2026-11-30")),
                flex("respite", 10_000, "paid", Some("2026-11-15")),
                // Not paid, or paid in another month: not counted.
                flex("housing", 99_999, "approved", Some("2026-11-15")),
                flex("housing", 99_999, "paid", Some("2026-10-31")),
                flex("housing", 99_999, "paid", None),
            ]),
        ),
        with(
            enrolled(),
            "strategies",
            json!([flex("housing", 20_000, "paid", Some("2026-11-05"))]),
        ),
        // A discharged youth's late payment still counts: money spent.
        with(
            plan(Some("2014-05-01"), Some("2026-01-10"), Some("2026-10-01")),
            "strategies",
            json!([flex("unknown_category", 700, "paid", Some("2026-11-05"))]),
        ),
    ];
    let cells = run(&plans);
    let flex = |c| cell(&cells, Indicator::FlexFunds, TEEN, Some(c));
    assert_eq!(flex(Category::Housing), Some((95_000, Some(2))));
    assert_eq!(flex(Category::Respite), Some((10_000, Some(1))));
    assert_eq!(flex(Category::Other), Some((700, Some(1))));
}

#[test]
fn crisis_plan_review_counts_the_ninety_days_up_to_the_last_day() {
    let reviewed = |on: Option<&str>| {
        let mut p = enrolled();
        p["crisis_plan"]["reviewed_on"] = json!(on);
        p
    };
    let plans = [
        reviewed(Some("2026-09-02")), // the 90th day back
        reviewed(Some("2026-09-01")), // the 91st
        reviewed(Some("2026-11-30")),
        reviewed(Some("2026-12-01")), // after the period
        reviewed(None),
        // Discharged on the last day: not active at the end.
        {
            let mut p = plan(Some("2014-05-01"), Some("2026-01-10"), Some("2026-11-30"));
            p["crisis_plan"]["reviewed_on"] = json!("2026-11-01");
            p
        },
    ];
    let cells = run(&plans);
    assert_eq!(
        cell(&cells, Indicator::CrisisPlanReviewed, TEEN, None),
        Some((2, Some(5)))
    );
}

#[test]
fn team_met_counts_meetings_held_in_the_thirty_days_up_to_the_last_day() {
    let met = |meetings: Value| with(enrolled(), "meetings", meetings);
    let plans = [
        met(json!([{"id": "a", "held_on": "2026-11-01", "status": "held"}])), // 30th day back
        met(json!([{"id": "a", "held_on": "2026-10-31", "status": "held"}])), // 31st
        // Scheduled (or with no status: scheduled) or cancelled: not held.
        met(json!([
            {"id": "a", "held_on": "2026-11-20", "status": "scheduled"},
            {"id": "b", "held_on": "2026-11-21"},
            {"id": "c", "held_on": "2026-11-22", "status": "cancelled"},
        ])),
        // Two meetings: the youth counts once.
        met(json!([
            {"id": "a", "held_on": "2026-11-10", "status": "held"},
            {"id": "b", "held_on": "2026-11-24", "status": "held"},
        ])),
        // Enrolled the last day, no meeting yet: in the base.
        plan(Some("2014-05-01"), Some("2026-11-30"), None),
    ];
    let cells = run(&plans);
    assert_eq!(
        cell(&cells, Indicator::TeamMet, TEEN, None),
        Some((2, Some(5)))
    );
}

#[test]
fn malformed_plans_are_read_as_far_as_they_go_and_never_panic() {
    let plans = [
        json!(null),
        json!([1, 2, 3]),
        json!("plan"),
        json!({}),
        json!({"youth": 5, "enrollment": "yes", "status": {"a": 1}, "cans": "x"}),
        json!({
            "youth": {"birth_date": 20140501},
            "enrollment": {"enrolled_on": "2026-01-10", "discharged_on": 3, "discharge_reason": "abducted"},
            "status": [null, 1, {"as_of": "2026-13-01", "living": "home"},
                       {"as_of": "2026-02-01", "living": 7, "arrests_30d": "two", "status": 4},
                       {"as_of": "+2026-02-01", "living": "home"}],
            "cans": [{"assessed_on": "2026-02-01", "ratings": [3]},
                     {"assessed_on": "2026-11-02", "ratings": {"x": "3", "y": -7, "z": 1.5}}],
            "team": [{"role": ["natural_support"]}, "x"],
            "strategies": [{"flex": {"status": "paid", "paid_on": "2026-11-02", "amount_cents": -5}},
                           {"flex": "paid"}, {"flex": {"status": "paid", "paid_on": "2026-11-02", "amount_cents": 1e3}}],
            "crisis_plan": {"reviewed_on": ["2026-11-01"]},
            "meetings": [{"held_on": "2026-11-10", "status": ["held"]}, {"held_on": null, "status": "held"}],
        }),
        // Dates at the far edges of the calendar.
        plan(Some("9999-12-31"), Some("9999-12-31"), None),
        plan(Some("0001-01-01"), Some("0001-01-01"), Some("9999-12-31")),
    ];
    let cells = run(&plans);
    // The one well-formed enrollment of 2026 is served (no known age, an
    // unreadable discharge date ignored); so is the one from year 1.
    assert_eq!(
        cell(&cells, Indicator::YouthServed, AgeBand::Unknown, None),
        Some((2, None))
    );
    // Nothing else of the junk is counted.
    assert_eq!(total(&cells, Indicator::OutOfHomePlacement), (0, None));
    assert_eq!(total(&cells, Indicator::FlexFunds), (0, None));
    assert_eq!(total(&cells, Indicator::TeamMet).0, 0);
    assert_eq!(total(&cells, Indicator::NaturalSupport).0, 0);
    assert_eq!(total(&cells, Indicator::CansNeedsResolved), (0, None));
    report(cells).validate().unwrap_or_else(|e| panic!("{e}"));
}

fn report(cells: Vec<Cell>) -> Report {
    Report {
        vocabulary: VOCABULARY_VERSION,
        period: nov(),
        version: 1,
        cells,
    }
}

/// Plans made the way the node makes them (operations on an Automerge
/// document, then rendered), so the reading above matches the real shape.
mod rendered {
    use super::*;
    use wrapsync_shared::automerge::Automerge;
    use wrapsync_shared::ops::{apply_ops, Editor, Op};
    use wrapsync_shared::plan::{init_plan, render};
    use wrapsync_shared::roles::Role;

    pub(super) fn make(ops: Value) -> Value {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        init_plan(&mut tx, "Plan of the Quintanilla-Moreau family")
            .unwrap_or_else(|e| panic!("{e}"));
        let ops: Vec<Op> = serde_json::from_value(ops).unwrap_or_else(|e| panic!("{e}"));
        let editor = Editor {
            role: Role::Supervisor,
            member_id: None,
        };
        let mut n = 0u64;
        let mut ids = || {
            n += 1;
            ulid::Ulid::from_parts(1_700_000_000_000 + n, u128::from(n)).to_string()
        };
        apply_ops(&mut tx, &ops, &editor, &mut ids).unwrap_or_else(|e| panic!("{:?}", e.error));
        tx.commit();
        render(&doc)
    }
}

/// A plan full of distinctive identifying text.
fn identifying_plan(n: usize) -> Value {
    rendered::make(json!([
        {"op": "replace", "path": "/youth/name", "value": format!("Zebulon Quintanilla-Moreau {n}")},
        {"op": "replace", "path": "/youth/birth_date", "value": "2013-07-19"},
        {"op": "replace", "path": "/enrollment/enrolled_on", "value": "2026-06-23"},
        {"op": "replace", "path": "/enrollment/plan_adopted_on", "value": "2026-07-08"},
        {"op": "replace", "path": "/vision", "value": "Zebulon lives at 4417 Larkspur Hollow Rd with Grandma Perpetua"},
        {"op": "replace", "path": "/mission", "value": "Keep Zebulon at Wyndham-Oakes Middle School"},
        {"op": "replace", "path": "/crisis_plan/reviewed_on", "value": "2026-11-17"},
        {"op": "add", "path": "/team", "value": {"name": "Perpetua Quintanilla", "role": "natural_support",
            "phone": "719-555-0142", "email": "perpetua.q@example.org", "user": "pquintanilla"}},
        {"op": "add", "path": "/needs", "value": {"domain": "home", "statement": "Eviction notice from Larkspur Hollow landlord"}},
        {"op": "add", "path": "/strategies", "value": {"kind": "flex", "description": "Rent for Larkspur Hollow",
            "flex": {"category": "housing", "amount_cents": 123_456, "status": "paid",
                     "approved_by": "Supervisor Oyelaran-Fitzwilliam", "paid_on": "2026-11-03"}}},
        {"op": "add", "path": "/meetings", "value": {"held_on": "2026-11-14", "status": "held",
            "place": "Wyndham-Oakes library", "decisions": "Zebulon joins the robotics club"}},
        {"op": "add", "path": "/cans", "value": {"assessed_on": "2026-06-25", "status": "final",
            "ratings": {"adjustment_to_trauma": 3, "school_behavior": 2}}},
        {"op": "add", "path": "/cans", "value": {"assessed_on": "2026-11-05", "status": "final",
            "ratings": {"adjustment_to_trauma": 1, "school_behavior": 2}}},
        {"op": "add", "path": "/status", "value": {"as_of": "2026-06-23", "living": "kin",
            "school_days_missed_30d": 7, "arrests_30d": 1, "psych_admissions_180d": 1}},
        {"op": "add", "path": "/status", "value": {"as_of": "2026-11-12", "living": "home",
            "school_days_missed_30d": 1, "arrests_30d": 0, "psych_admissions_180d": 0}},
    ]))
}

#[test]
fn rendered_plans_are_read_as_the_node_renders_them() {
    let plan = identifying_plan(1);
    let cells = run(&[plan]);
    let one = Some((1, Some(1)));
    for indicator in [
        Indicator::NaturalSupport,
        Indicator::RegularSchoolAttendance,
        Indicator::PsychAdmissionAtIntake,
        Indicator::ArrestAtIntake,
        Indicator::CrisisPlanReviewed,
        Indicator::TeamMet,
    ] {
        assert_eq!(cell(&cells, indicator, TEEN, None), one, "{indicator:?}");
    }
    assert_eq!(
        cell(&cells, Indicator::PsychAdmissionLatest, TEEN, None),
        Some((0, Some(1)))
    );
    assert_eq!(
        cell(&cells, Indicator::CansNeedsResolved, TEEN, None),
        Some((1, Some(2)))
    );
    assert_eq!(
        cell(&cells, Indicator::FlexFunds, TEEN, Some(Category::Housing)),
        Some((123_456, Some(1)))
    );
}

#[test]
fn a_report_carries_no_name_date_address_note_or_id_of_the_plans() {
    let plans: Vec<Value> = (0..12).map(identifying_plan).collect();
    let cells = run(&plans);
    assert!(!cells.is_empty());
    let report = report(cells);
    report.validate().unwrap_or_else(|e| panic!("{e}"));
    let text = serde_json::to_string(&report).unwrap_or_else(|e| panic!("{e}"));
    let mut secrets: Vec<String> = [
        "Zebulon",
        "Quintanilla",
        "Moreau",
        "Perpetua",
        "Larkspur",
        "4417",
        "Wyndham",
        "Oakes",
        "Oyelaran",
        "719-555",
        "7195550142",
        "example.org",
        "pquintanilla",
        "robotics",
        "Eviction",
        "2013",
        "07-19",
        "06-23",
        "07-08",
        "11-17",
        "11-14",
        "11-03",
        "adjustment_to_trauma",
        "school_behavior",
        "Plan of the",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every item id of every plan.
    for plan in &plans {
        for collection in ["team", "needs", "strategies", "meetings", "cans", "status"] {
            for item in items(&plan[collection]) {
                secrets.extend(item["id"].as_str().map(str::to_string));
            }
        }
    }
    assert_eq!(secrets.len(), 25 + 12 * 8);
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "{secret} leaked: {text}");
    }
    // Only the vocabulary's words: every string in it is an indicator, a
    // band, a category or the period.
    let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed["period"], "2026-11");
    for c in parsed["cells"].as_array().into_iter().flatten() {
        for (key, value) in c.as_object().into_iter().flatten() {
            assert!(
                ["indicator", "age_band", "category", "value", "base"].contains(&key.as_str()),
                "{key}"
            );
            assert!(value.is_string() || value.is_u64(), "{value}");
        }
    }
}

#[test]
fn a_tally_per_period_matches_aggregate() {
    let plans: Vec<Value> = (0..3).map(identifying_plan).collect();
    let october = nov().previous();
    let (mut a, mut b) = (Tally::new(october), Tally::new(nov()));
    for plan in &plans {
        let youth = Youth::from_plan(plan);
        a.add(&youth);
        b.add(&youth);
    }
    assert_eq!(a.cells(), aggregate(&plans, october));
    assert_eq!(b.cells(), run(&plans));
    assert_ne!(a.cells(), b.cells());
}

// Contribution bounds (differential privacy on).

fn bounded(plans: &[Value], bounds: Bounds) -> Vec<Cell> {
    let mut tally = Tally::bounded(nov(), bounds);
    for plan in plans {
        tally.add(&Youth::from_plan(plan));
    }
    tally.cells()
}

const BOUNDS: Bounds = Bounds {
    cans_items_per_youth: 3,
    flex_cents_per_youth: 100_000,
};

#[test]
fn bounded_a_youth_counts_at_most_so_many_cans_items_the_same_ones_each_time() {
    // Five actionable items (codes a..e), then a, c and e resolved; the
    // 1-rated item is not actionable and takes no place.
    let plans = [with(
        enrolled(),
        "cans",
        json!([
            cans(
                "x",
                "2026-02-01",
                Some("final"),
                json!({"a": 3, "b": 2, "c": 2, "d": 3, "e": 2, "aa": 1})
            ),
            cans(
                "y",
                "2026-11-10",
                Some("final"),
                json!({"a": 0, "b": 2, "c": 1, "d": 3, "e": 0, "aa": 0})
            ),
        ]),
    )];
    assert_eq!(
        cell(&run(&plans), Indicator::CansNeedsResolved, TEEN, None),
        Some((3, Some(5)))
    );
    // Bounded: the first three by code (a, b, c), of which a and c resolved.
    assert_eq!(
        cell(
            &bounded(&plans, BOUNDS),
            Indicator::CansNeedsResolved,
            TEEN,
            None
        ),
        Some((2, Some(3)))
    );
    // A youth under the bound counts whole.
    let few = Bounds {
        cans_items_per_youth: 5,
        ..BOUNDS
    };
    assert_eq!(
        cell(
            &bounded(&plans, few),
            Indicator::CansNeedsResolved,
            TEEN,
            None
        ),
        Some((3, Some(5)))
    );
}

#[test]
fn bounded_a_youths_flexible_funds_are_scaled_to_the_bound_over_all_categories() {
    let plans = [
        // 1,500.00 paid: scaled by 2/3, the mix of categories kept.
        with(
            enrolled(),
            "strategies",
            json!([
                flex("housing", 90_000, "paid", Some("2026-11-01")),
                flex("housing", 30_000, "paid", Some("2026-11-20")),
                flex("respite", 30_000, "paid", Some("2026-11-15")),
            ]),
        ),
        // Under the bound: whole.
        with(
            enrolled(),
            "strategies",
            json!([flex("housing", 40_000, "paid", Some("2026-11-05"))]),
        ),
        // Three categories in thirds: rounded down, never over the bound.
        with(
            enrolled(),
            "strategies",
            json!([
                flex("utilities", 100_000, "paid", Some("2026-11-02")),
                flex("health", 100_000, "paid", Some("2026-11-02")),
                flex("education", 100_000, "paid", Some("2026-11-02")),
            ]),
        ),
    ];
    let plain = run(&plans);
    assert_eq!(
        cell(&plain, Indicator::FlexFunds, TEEN, Some(Category::Housing)),
        Some((160_000, Some(2)))
    );
    let cells = bounded(&plans, BOUNDS);
    let flex = |c| cell(&cells, Indicator::FlexFunds, TEEN, Some(c));
    assert_eq!(flex(Category::Housing), Some((80_000 + 40_000, Some(2))));
    assert_eq!(flex(Category::Respite), Some((20_000, Some(1))));
    for c in [Category::Utilities, Category::Health, Category::Education] {
        assert_eq!(flex(c), Some((33_333, Some(1))), "{c:?}");
    }
}

#[test]
fn bounds_change_nothing_else() {
    let plans: Vec<Value> = (0..12).map(identifying_plan).collect();
    let plain = run(&plans);
    let cells = bounded(&plans, Bounds::default());
    assert_eq!(plain, cells);
}

/// A youth in as many cells as one youth can be: discharged in the month
/// (or still enrolled at its end), many statuses, a long CANS, payments
/// in every category, big ones.
fn heavy(discharged: Option<&str>) -> Value {
    let mut plan = plan(Some("2014-05-01"), Some("2026-10-20"), discharged);
    plan["enrollment"]["discharge_reason"] = json!("placed");
    plan["enrollment"]["plan_adopted_on"] = json!("2026-11-01");
    plan["crisis_plan"]["reviewed_on"] = json!("2026-11-10");
    plan["team"] =
        json!([{"id": "t", "name": "Gran", "role": "natural_support", "status": "active"}]);
    plan["meetings"] = json!([{"id": "m", "held_on": "2026-11-09", "status": "held"}]);
    let worst = json!({"living": "residential", "school_days_missed_30d": 9, "arrests_30d": 2, "psych_admissions_180d": 1});
    plan["status"] = json!([
        status("s1", "2026-10-20", worst.clone()),
        status("s2", "2026-11-05", worst.clone()),
        status(
            "s3",
            "2026-11-08",
            json!({"living": "home", "school_days_missed_30d": 0})
        ),
    ]);
    let first: serde_json::Map<String, Value> =
        (0..40).map(|i| (format!("item{i:02}"), json!(3))).collect();
    let later: serde_json::Map<String, Value> =
        (0..40).map(|i| (format!("item{i:02}"), json!(0))).collect();
    plan["cans"] = json!([
        cans("c1", "2026-10-21", Some("final"), Value::Object(first)),
        cans("c2", "2026-11-07", Some("final"), Value::Object(later)),
    ]);
    plan["strategies"] = Value::Array(
        wrapsync_shared::indicators::FLEX_CATEGORIES
            .iter()
            .map(|c| {
                let name = serde_json::to_value(c).unwrap_or_else(|e| panic!("{e}"));
                let name = name.as_str().unwrap_or_else(|| panic!("{c:?}"));
                flex(name, 7_654_321, "paid", Some("2026-11-06"))
            })
            .collect(),
    );
    plan
}

/// L1 distance of two sets of cells, apart for counts and cents (as
/// `privacy::Sensitivity` has it).
fn distance(a: &[Cell], b: &[Cell]) -> (u64, u64) {
    let key = |c: &Cell| (c.indicator, c.age_band, c.category);
    let keys: std::collections::BTreeSet<_> = a.iter().chain(b).map(key).collect();
    let find = |cells: &[Cell], k| {
        cells
            .iter()
            .find(|c| key(c) == k)
            .map_or((0, 0), |c| (c.value, c.base.unwrap_or(0)))
    };
    let (mut counts, mut cents) = (0, 0);
    for k in keys {
        let ((va, ba), (vb, bb)) = (find(a, k), find(b, k));
        counts += ba.abs_diff(bb);
        if k.0.definition().unit == wrapsync_shared::indicators::Unit::Cents {
            cents += va.abs_diff(vb);
        } else {
            counts += va.abs_diff(vb);
        }
    }
    (counts, cents)
}

#[test]
fn bounded_one_youth_changes_a_report_by_no_more_than_the_sensitivity() {
    let others: Vec<Value> = (0..6).map(identifying_plan).collect();
    let sensitivity = crate::privacy::Sensitivity::of(&Bounds::default());
    for youth in [heavy(None), heavy(Some("2026-11-20"))] {
        let with_youth: Vec<Value> = others.iter().cloned().chain([youth.clone()]).collect();
        let (counts, cents) = distance(
            &bounded(&others, Bounds::default()),
            &bounded(&with_youth, Bounds::default()),
        );
        assert!(counts > 15, "the youth is in many cells: {counts}");
        assert!(counts as f64 <= sensitivity.counts, "{counts}");
        // Clipped to the bound, rounded down in each of nine categories.
        assert!(
            cents as f64 <= sensitivity.cents && cents as f64 > sensitivity.cents - 9.0,
            "{cents}"
        );
        // Unbounded, the same youth moves the report far more.
        let (counts, cents) = distance(&run(&others), &run(&with_youth));
        assert!(counts as f64 > sensitivity.counts || cents as f64 > sensitivity.cents);
    }
}

/// The node never builds a report the hub would refuse as implausible:
/// random caseloads (dates around the month, discharges, statuses, CANS,
/// payments, meetings, junk), counted exactly and with differential
/// privacy's noise, keep every rule of `wrapsync_shared::plausibility`.
#[test]
fn the_reports_a_node_builds_are_plausible() {
    use rand::{Rng, SeedableRng};
    use wrapsync_shared::plausibility::{check, check_counts, DEFAULT_MAX_YOUTH};
    let mut rng = rand::rngs::StdRng::seed_from_u64(22);
    let day = |rng: &mut rand::rngs::StdRng| -> Option<String> {
        // Mostly around November 2026, sometimes missing or junk.
        match rng.random_range(0..20) {
            0 => None,
            1 => Some("junk".into()),
            _ => {
                let start = Date::from_calendar_date(2025, time::Month::June, 1)
                    .unwrap_or_else(|e| panic!("{e}"));
                let date = start + Duration::days(rng.random_range(0..600));
                Some(date.to_string())
            }
        }
    };
    let living = [
        "home",
        "kin",
        "foster",
        "group",
        "residential",
        "detention",
        "psychiatric",
    ];
    let reasons = [
        "completed",
        "transitioned",
        "dropped_out",
        "moved",
        "placed",
        "other",
    ];
    let current = Period::new(2026, 12).unwrap_or_else(|| panic!("period"));
    for round in 0..12 {
        let plans: Vec<Value> = (0..rng.random_range(1..300))
            .map(|_| {
                let birth = day(&mut rng).map(|d| format!("20{}", &d[2..]));
                let mut p = plan(birth.as_deref(), day(&mut rng).as_deref(), None);
                if rng.random_bool(0.4) {
                    p["enrollment"]["discharged_on"] = json!(day(&mut rng));
                    p["enrollment"]["discharge_reason"] =
                        json!(reasons[rng.random_range(0..reasons.len())]);
                }
                p["enrollment"]["plan_adopted_on"] = json!(day(&mut rng));
                let statuses: Vec<Value> = (0..rng.random_range(0..4))
                    .map(|i| {
                        status(
                            &format!("s{i}"),
                            &day(&mut rng).unwrap_or_default(),
                            json!({
                                "living": living[rng.random_range(0..living.len())],
                                "school_days_missed_30d": rng.random_range(0..10),
                                "arrests_30d": rng.random_range(0..2),
                                "psych_admissions_180d": rng.random_range(0..2),
                            }),
                        )
                    })
                    .collect();
                p["status"] = json!(statuses);
                let cans_list: Vec<Value> = (0..rng.random_range(0..3))
                    .map(|i| {
                        let ratings: serde_json::Map<String, Value> = (0..rng.random_range(0..30))
                            .map(|k| (format!("item{k}"), json!(rng.random_range(0..4))))
                            .collect();
                        cans(
                            &format!("c{i}"),
                            &day(&mut rng).unwrap_or_default(),
                            Some("final"),
                            Value::Object(ratings),
                        )
                    })
                    .collect();
                p["cans"] = json!(cans_list);
                let payments: Vec<Value> = (0..rng.random_range(0..3))
                    .map(|_| {
                        flex(
                            ["housing", "respite", "other"][rng.random_range(0..3)],
                            rng.random_range(0..200_000),
                            "paid",
                            day(&mut rng).as_deref(),
                        )
                    })
                    .collect();
                p["strategies"] = json!(payments);
                p["crisis_plan"]["reviewed_on"] = json!(day(&mut rng));
                p["meetings"] = json!([{"held_on": day(&mut rng), "status": "held"}]);
                if rng.random_bool(0.3) {
                    p["team"] = json!([{"role": "natural_support", "status": "active"}]);
                }
                p
            })
            .collect();
        for period in [current.previous().previous(), current.previous(), current] {
            let mut report = Report {
                vocabulary: VOCABULARY_VERSION,
                period,
                version: 1,
                cells: aggregate(&plans, period),
            };
            report.validate().unwrap_or_else(|e| panic!("{e}"));
            if let Err(e) = check(&report, DEFAULT_MAX_YOUTH, current) {
                panic!("round {round}, {period}: {} {e}", e.rule());
            }
            // With privacy's noise (a small epsilon: wild noise), the
            // counts' rules still hold (the ceiling is the hub's).
            crate::privacy::add_noise(
                &mut report,
                0.05,
                &crate::privacy::Bounds::default(),
                &mut rng,
            );
            report.validate().unwrap_or_else(|e| panic!("{e}"));
            if let Err(e) = check_counts(&report, u64::MAX) {
                panic!("noisy, round {round}, {period}: {} {e}", e.rule());
            }
        }
    }
}
