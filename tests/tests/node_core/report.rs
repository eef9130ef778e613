//! `wrapsync report`: a running node's plans, counted into the month's
//! cells by the CLI on the same database, with no name, date or id in what
//! it prints, and the run in the audit trail; with differential privacy
//! on, a past month's noisy release, made once and kept, within the
//! year's budget.

use serde_json::json;
use std::collections::BTreeMap;
use wrapsync_shared::indicators::{AgeBand, Indicator, Period, Report, DEFINITIONS};
use wrapsync_tests::users::{FACILITATOR, SUPERVISOR};
use wrapsync_tests::{deadline, wait_until, Backend, TestNode};

on_both_backends!(
    the_report_counts_the_plans_and_names_nobody,
    with_privacy_a_past_month_is_released_once_noisy_and_within_the_budget
);

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
        "2013-",
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

/// The report `wrapsync report` printed (log lines may come around it).
pub(crate) fn printed_report(printed: &str) -> Report {
    let start = printed
        .find("{\n  \"vocabulary\"")
        .unwrap_or_else(|| panic!("no report in {printed}"));
    serde_json::Deserializer::from_str(&printed[start..])
        .into_iter::<Report>()
        .next()
        .unwrap_or_else(|| panic!("no report in {printed}"))
        .unwrap_or_else(|e| panic!("{e}: {printed}"))
}

/// The month it is now (UTC), from the system clock.
fn this_month() -> Period {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Julian day number of today: 1970-01-01 is day 2,440,588.
    let today = i32::try_from(secs / 86_400).unwrap() + 2_440_588;
    let mut month = Period::new(2020, 1).unwrap();
    while month.next().first_day().to_julian_day() <= today {
        month = month.next();
    }
    month
}

/// Sets (or with `None` removes) one key of the node's config file; the
/// CLI reads it afresh on each run.
fn set_config(node: &TestNode, key: &str, value: Option<toml::Value>) {
    let path = node.config_path();
    let mut config: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    match value {
        Some(value) => config.insert(key.into(), value),
        None => config.remove(key),
    };
    std::fs::write(path, toml::to_string(&config).unwrap()).unwrap();
}

type Key = (
    Indicator,
    AgeBand,
    Option<wrapsync_shared::indicators::Category>,
);

fn by_key(report: &Report) -> BTreeMap<Key, (u64, Option<u64>)> {
    report
        .cells
        .iter()
        .map(|c| ((c.indicator, c.age_band, c.category), (c.value, c.base)))
        .collect()
}

fn with_privacy_a_past_month_is_released_once_noisy_and_within_the_budget(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let this = this_month();
    let last = this.previous();
    // Long enrolled, so counted in every month the test asks for.
    let long_ago = format!("{}-01-15", this.year() - 3);
    for (name, enrolled) in [
        ("Zebulon Quintanilla", long_ago.as_str()),
        ("Perpetua Oyelaran", long_ago.as_str()),
        ("Wyndham Larkspur", long_ago.as_str()),
        ("Ottoline Brackenridge", &last.first_day().to_string()),
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
                {"op": "replace", "path": "/youth/birth_date", "value": "2013-07-19"},
                {"op": "add", "path": "/status", "value": {"as_of": enrolled, "living": "home", "school_days_missed_30d": 1}},
            ]),
        );
    }
    let report = |period: Period| node.cli(&["report", "--period", &period.to_string()]);

    // Without privacy: the exact counts of last month.
    let plain = printed_report(&report(last).unwrap());
    let served: u64 = plain
        .cells
        .iter()
        .filter(|c| c.indicator == Indicator::YouthServed)
        .map(|c| c.value)
        .sum();
    assert_eq!(served, 4);

    set_config(&node, "dp_epsilon_per_year", Some(toml::Value::Float(1.0)));
    let printed = report(last).unwrap();
    let noisy = printed_report(&printed);
    noisy.validate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(noisy.period, last);
    for cell in &noisy.cells {
        if let (Some(base), Indicator::YouthServed | Indicator::NewEnrollments) =
            (cell.base, cell.indicator)
        {
            panic!("a count with a base: {cell:?} ({base})");
        }
    }
    // Every cell of the vocabulary, each once: which cells are there says
    // nothing.
    let cells = by_key(&noisy);
    let vocabulary: usize = DEFINITIONS
        .iter()
        .map(|d| d.categories.len().max(1) * AgeBand::ALL.len())
        .sum();
    assert_eq!((cells.len(), noisy.cells.len()), (vocabulary, vocabulary));
    // Noise: many cells are not what the exact counts say (zeros mostly
    // stay zeros, clamped, and every count is then held within the count
    // it is part of, as the hub's plausibility rules demand, which pulls
    // more of them back to zero: 50 to 82 of 270 moved in twelve runs).
    let exact = by_key(&plain);
    let moved = cells
        .iter()
        .filter(|(key, (value, base))| {
            let (v, b) = exact.get(key).copied().unwrap_or((0, base.map(|_| 0)));
            (v, b) != (*value, *base)
        })
        .count();
    assert!(moved >= vocabulary / 10, "{moved} of {vocabulary} moved");
    let secret = ["Zebulon", "Perpetua", "Wyndham", "Ottoline", "2013-"];
    let json_text = serde_json::to_string(&noisy).unwrap();
    assert!(secret.iter().all(|s| !json_text.contains(s)), "{json_text}");

    // Asked again: the very same report, version included.
    let again = printed_report(&report(last).unwrap());
    assert_eq!(again, noisy);

    // This month is not over: refused.
    let refused = report(this).unwrap_err().to_string();
    assert!(
        refused.contains(&format!("{this} is not over yet")),
        "{refused}"
    );

    // The budget: a month two years back spends 1/12 of that year's 1;
    // lowered to 0.09, the year has 0.0067 left and the next month
    // (0.0075) is refused, while the month released stands.
    let old = Period::new(this.year() - 2, 5).unwrap();
    let released = printed_report(&report(old).unwrap());
    set_config(&node, "dp_epsilon_per_year", Some(toml::Value::Float(0.09)));
    let refused = report(old.next()).unwrap_err().to_string();
    assert!(
        refused.contains(&format!("the privacy budget for {} is spent", old.year())),
        "{refused}"
    );
    assert_eq!(printed_report(&report(old).unwrap()), released);
    assert_eq!(printed_report(&report(last).unwrap()), noisy);

    // Audited: the releases with what they spent and left, the refusal.
    let sam = node.login(SUPERVISOR);
    let rows = || {
        node.audit(&sam, "limit=100")
            .entries
            .into_iter()
            .filter(|e| e.action == "report.generate" && e.plan.is_none())
            .map(|e| (e.outcome, e.detail.unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let expected = [
        ("ok".to_string(), format!("period {last}: 4 plans read, 0 unreadable; released with differential privacy: epsilon 0.083333 spent, 0.916667 of 1 left for {} (cli)", last.year())),
        ("refused".to_string(), format!("period {}: not released: the privacy budget for {} is spent: epsilon 0.083333 of dp_epsilon_per_year = 0.09 already went on released months, and a month needs 0.0075 (cli)", old.next(), old.year())),
    ];
    let audited = wait_until(deadline(10), || {
        let rows = rows();
        expected.iter().all(|e| rows.contains(e))
    });
    assert!(audited, "{:#?}", rows());
    // One plain report, two releases, one refusal: nothing for the
    // releases shown again.
    assert_eq!(rows().len(), 4, "{:#?}", rows());
}
