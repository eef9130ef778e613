//! The publication played against an attacker: from what a release shows
//! (and what an earlier release of the same period showed), nothing
//! withheld may be worked out.

use super::*;
use crate::hub::linear;
use crate::hub::suppress::is_small;
use crate::hub::suppress::tests::{leak, Rng};
use crate::hub::tables::{sums, SAME_YOUTH, SUBSETS};
use std::collections::HashMap;
use wrapsync_shared::hub::SMALL_CELL_MAX;
use wrapsync_shared::indicators::{Cell, Indicator, Unit, FLEX_CATEGORIES, VOCABULARY_VERSION};

fn period() -> Period {
    Period::new(2026, 10).unwrap_or_else(|| panic!("period"))
}

/// A random count: often zero, often small, sometimes large.
fn count(rng: &mut Rng) -> u64 {
    match rng.below(5) {
        0 => 0,
        1 | 2 => 1 + rng.below(10),
        3 => 11 + rng.below(30),
        _ => rng.below(200),
    }
}

fn random_report(rng: &mut Rng) -> Report {
    let mut cells = Vec::new();
    for def in DEFINITIONS {
        for band in AgeBand::ALL {
            let categories: Vec<Option<Category>> = if def.categories.is_empty() {
                vec![None]
            } else {
                def.categories
                    .iter()
                    .filter(|_| rng.below(3) != 0)
                    .map(|c| Some(*c))
                    .collect()
            };
            for category in categories {
                if rng.below(6) == 0 {
                    continue;
                }
                let (value, base) = match def.measure {
                    Measure::Count | Measure::Median => (count(rng), None),
                    Measure::Rate => {
                        let base = count(rng);
                        (rng.below(base + 1), Some(base))
                    }
                    Measure::Amount => {
                        let youth = count(rng);
                        (youth * rng.below(50_000), Some(youth))
                    }
                };
                cells.push(Cell {
                    indicator: def.indicator,
                    age_band: band,
                    category,
                    value,
                    base,
                });
            }
        }
    }
    let report = Report {
        vocabulary: VOCABULARY_VERSION,
        period: period(),
        version: 1,
        cells,
    };
    if let Err(e) = report.validate() {
        panic!("the generator made an invalid report: {e}");
    }
    report
}

/// What a release shows of one table, at every grid position.
fn shown(publication: &Publication, indicator: Indicator, quantity: Quantity) -> Vec<Option<u64>> {
    let def = indicator.definition();
    let figures = publication
        .indicators
        .iter()
        .find(|f| f.indicator == indicator)
        .unwrap_or_else(|| panic!("{indicator:?} missing"));
    let pick = |f: &Figure| match quantity {
        Quantity::Value => f.value,
        Quantity::Base => f.base,
    };
    let mut out = Vec::new();
    let breakdowns =
        std::iter::once(&figures.statewide).chain(figures.communities.iter().map(|c| &c.figures));
    for b in breakdowns {
        out.push(pick(&b.total));
        assert_eq!(b.by_age_band.len(), AGES);
        out.extend(b.by_age_band.iter().map(|a| pick(&a.figure)));
        assert_eq!(b.by_category.len(), def.categories.len());
        out.extend(b.by_category.iter().map(|c| pick(&c.figure)));
    }
    out
}

/// The counts of people a release holds: (indicator, quantity) pairs.
fn counted() -> Vec<(Indicator, Quantity)> {
    let mut out = Vec::new();
    for def in DEFINITIONS {
        match def.measure {
            Measure::Count | Measure::Median => out.push((def.indicator, Quantity::Value)),
            Measure::Rate => {
                out.push((def.indicator, Quantity::Value));
                out.push((def.indicator, Quantity::Base));
            }
            Measure::Amount => out.push((def.indicator, Quantity::Base)),
        }
    }
    out
}

fn truth(
    reports: &[(String, Report)],
    indicator: Indicator,
    quantity: Quantity,
) -> (Grid, Vec<u64>) {
    let mut sorted = reports.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let def = indicator.definition();
    let grid = Grid {
        scopes: sorted.len() + 1,
        categories: def.categories,
    };
    let values = match quantity {
        Quantity::Value => sums(&grid, def, &sorted, |c| c.value),
        Quantity::Base => sums(&grid, def, &sorted, |c| c.base.unwrap_or(0)),
    };
    (grid, values)
}

/// Every way the attacker can get at a withheld count of one release.
fn attack(reports: &[(String, Report)], publication: &Publication) -> Result<(), String> {
    for (indicator, quantity) in counted() {
        let (grid, values) = truth(reports, indicator, quantity);
        let seen = shown(publication, indicator, quantity);
        let hidden: Vec<bool> = seen.iter().map(Option::is_none).collect();
        for (i, s) in seen.iter().enumerate() {
            if let Some(v) = s {
                if *v != values[i] {
                    return Err(format!(
                        "{indicator:?} {quantity:?} [{i}] shows {v}, is {}",
                        values[i]
                    ));
                }
                if is_small(*v) {
                    return Err(format!("{indicator:?} {quantity:?} [{i}] shows small {v}"));
                }
            }
        }
        if let Some(found) = leak(&values, &grid.relations(), &hidden) {
            return Err(format!("{indicator:?} {quantity:?}: {found}"));
        }
    }
    // The same youth under two indicators: shown under one, withheld under
    // the other, would give the withheld one away.
    for family in SAME_YOUTH {
        let seen: Vec<(Grid, Vec<Option<u64>>)> = family
            .iter()
            .map(|(ind, q)| (truth(reports, *ind, *q).0, shown(publication, *ind, *q)))
            .collect();
        let first = &seen[0].0;
        for scope in 0..first.scopes {
            for k in 0..=AGES {
                let states: Vec<bool> = seen
                    .iter()
                    .map(|(g, s)| s[g.index(scope, k)].is_some())
                    .collect();
                if states.iter().any(|&x| x) && states.iter().any(|&x| !x) {
                    return Err(format!("{family:?}: shown and withheld at ({scope}, {k})"));
                }
            }
        }
    }
    // A rate's complement (base − numerator) is a count of people too.
    for def in DEFINITIONS.iter().filter(|d| d.measure == Measure::Rate) {
        let num = shown(publication, def.indicator, Quantity::Value);
        let den = shown(publication, def.indicator, Quantity::Base);
        for (i, (n, d)) in num.iter().zip(&den).enumerate() {
            if let (Some(n), Some(d)) = (n, d) {
                if is_small(d - n) {
                    return Err(format!(
                        "{:?} [{i}]: complement {} shown",
                        def.indicator,
                        d - n
                    ));
                }
            }
        }
    }
    // Nor the rest of a larger group beside a subset of it.
    for ((whole, wq), (part, pq)) in SUBSETS {
        let (wg, _) = truth(reports, *whole, *wq);
        let (pg, _) = truth(reports, *part, *pq);
        let (w, p) = (
            shown(publication, *whole, *wq),
            shown(publication, *part, *pq),
        );
        for scope in 0..wg.scopes {
            for k in 0..=AGES {
                if let (Some(w), Some(p)) = (w[wg.index(scope, k)], p[pg.index(scope, k)]) {
                    if is_small(w.saturating_sub(p)) {
                        return Err(format!(
                            "{whole:?} ⊇ {part:?} at ({scope}, {k}): {w} and {p}"
                        ));
                    }
                }
            }
        }
    }
    // Rates, medians and amounts only where their counts show.
    for figures in &publication.indicators {
        let all = std::iter::once(&figures.statewide)
            .chain(figures.communities.iter().map(|c| &c.figures));
        for b in all {
            let every = std::iter::once(&b.total)
                .chain(b.by_age_band.iter().map(|a| &a.figure))
                .chain(b.by_category.iter().map(|c| &c.figure));
            for f in every {
                if f.rate.is_some() && (f.value.is_none() || f.base.is_none()) {
                    return Err(format!(
                        "{:?}: a rate without its counts",
                        figures.indicator
                    ));
                }
                if f.median.is_some() && f.value.is_none() {
                    return Err(format!(
                        "{:?}: a median of a withheld count",
                        figures.indicator
                    ));
                }
                if figures.unit == Unit::Cents && f.value.is_some() && f.base.is_none() {
                    return Err(format!("{:?}: cents of withheld youth", figures.indicator));
                }
                if f.suppressed
                    != (f.value.is_none()
                        || (f.base.is_none()
                            && figures.measure != Measure::Count
                            && figures.measure != Measure::Median))
                {
                    return Err(format!(
                        "{:?}: `suppressed` disagrees with the nulls: {f:?}",
                        figures.indicator
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A release's numbers of one table by place (community name or `*`,
/// stratum): what it shows, and what is true.
fn by_place(
    reports: &[(String, Report)],
    publication: &Publication,
    indicator: Indicator,
    quantity: Quantity,
) -> HashMap<(String, usize), (Option<u64>, u64)> {
    let seen = shown(publication, indicator, quantity);
    let (grid, values) = truth(reports, indicator, quantity);
    let names: Vec<String> = std::iter::once("*".to_string())
        .chain(publication.nodes.iter().cloned())
        .collect();
    (0..seen.len())
        .map(|i| {
            let place = (names[i / grid.strata()].clone(), i % grid.strata());
            (place, (seen[i], values[i]))
        })
        .collect()
}

/// Across two releases of a period: a figure shown in both moved by zero
/// or more than 10; one withheld first and shown next moved by more than
/// 10 (else showing it would undo the first release's pattern).
fn attack_across(
    before: (&[(String, Report)], &Publication),
    after: (&[(String, Report)], &Publication),
) -> Result<(), String> {
    for (indicator, quantity) in counted() {
        let a = by_place(before.0, before.1, indicator, quantity);
        let b = by_place(after.0, after.1, indicator, quantity);
        for (place, (shown_before, was)) in &a {
            let Some((Some(now), _)) = b.get(place) else {
                continue;
            };
            let leaked = match shown_before {
                Some(shown) => is_small(shown.abs_diff(*now)),
                None => was.abs_diff(*now) <= SMALL_CELL_MAX,
            };
            if leaked {
                return Err(format!(
                    "{indicator:?} {quantity:?} {place:?}: {shown_before:?} (truly {was}), then {now}"
                ));
            }
        }
        // The changes between the releases obey the same relations: where
        // a change is known (shown both times) it is a constant, and no
        // combination may isolate an unknown change of 1 to 10.
        if before.1.nodes == after.1.nodes {
            let (grid, was) = truth(before.0, indicator, quantity);
            let (_, now) = truth(after.0, indicator, quantity);
            let first = shown(before.1, indicator, quantity);
            let second = shown(after.1, indicator, quantity);
            let unknown: Vec<bool> = first
                .iter()
                .zip(&second)
                .map(|(a, b)| a.is_none() || b.is_none())
                .collect();
            for cell in linear::determined(&unknown, &grid.relations()) {
                if is_small(was[cell].abs_diff(now[cell])) {
                    return Err(format!(
                        "{indicator:?} {quantity:?} [{cell}]: its change ({} to {}) follows from the two releases",
                        was[cell], now[cell]
                    ));
                }
            }
        }
    }
    Ok(())
}

fn reports(rng: &mut Rng, nodes: usize) -> Vec<(String, Report)> {
    (0..nodes)
        .map(|n| (format!("county-{n}"), random_report(rng)))
        .collect()
}

#[test]
fn the_attacker_recovers_nothing_from_random_releases() {
    for seed in 1..=120u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let nodes = 1 + rng.below(4) as usize;
        let reports = reports(&mut rng, nodes);
        let (publication, _) = publish(period(), VOCABULARY_VERSION, &reports, &Ledger::default());
        if let Err(e) = attack(&reports, &publication) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn two_releases_of_a_period_give_nothing_away_between_them() {
    for seed in 1..=120u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let nodes = 2 + rng.below(3) as usize;
        let mut reports = reports(&mut rng, nodes);
        let earlier = reports.clone();
        let (first, entries) = publish(period(), VOCABULARY_VERSION, &reports, &Ledger::default());
        let ledger = Ledger::from_entries(entries);
        // A community corrects its report: a few cells move by a little
        // (the group that moved is small), or one more community reports.
        if rng.below(3) == 0 {
            reports.push((format!("county-late-{seed}"), random_report(&mut rng)));
        } else {
            let n = rng.below(reports.len() as u64) as usize;
            let report = &mut reports[n].1;
            report.version += 1;
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(report.cells.len() as u64) as usize;
                let cell = &mut report.cells[i];
                let step = 1 + rng.below(5);
                cell.value += step;
                if let Some(base) = cell.base.as_mut() {
                    *base += step;
                }
            }
        }
        let (second, _) = publish(period(), VOCABULARY_VERSION, &reports, &ledger);
        if let Err(e) = attack(&reports, &second) {
            panic!("seed {seed}, second release: {e}");
        }
        if let Err(e) = attack_across((&earlier, &first), (&reports, &second)) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn a_small_cell_is_withheld_with_its_complement_and_releases_are_stable() {
    let cell = |indicator, age_band, value| Cell {
        indicator,
        age_band,
        category: None,
        value,
        base: None,
    };
    let report = |cells| Report {
        vocabulary: VOCABULARY_VERSION,
        period: period(),
        version: 1,
        cells,
    };
    let reports = vec![
        (
            "county-a".to_string(),
            report(vec![
                cell(Indicator::NewEnrollments, AgeBand::Age0To5, 4),
                cell(Indicator::NewEnrollments, AgeBand::Age6To11, 25),
                cell(Indicator::NewEnrollments, AgeBand::Age12To17, 40),
            ]),
        ),
        (
            "county-b".to_string(),
            report(vec![
                cell(Indicator::NewEnrollments, AgeBand::Age0To5, 30),
                cell(Indicator::NewEnrollments, AgeBand::Age6To11, 31),
                cell(Indicator::NewEnrollments, AgeBand::Age12To17, 50),
            ]),
        ),
    ];
    let (publication, entries) =
        publish(period(), VOCABULARY_VERSION, &reports, &Ledger::default());
    attack(&reports, &publication).unwrap_or_else(|e| panic!("{e}"));
    let new = publication
        .indicators
        .iter()
        .find(|f| f.indicator == Indicator::NewEnrollments)
        .unwrap_or_else(|| panic!("missing"));
    let a = &new.communities[0].figures;
    assert_eq!(a.total.value, Some(69));
    assert_eq!(a.by_age_band[0].figure.value, None);
    assert!(a.by_age_band[0].figure.suppressed);
    // Its complement in county-a's age bands is the smallest other: 25.
    assert_eq!(a.by_age_band[1].figure.value, None);
    assert_eq!(a.by_age_band[2].figure.value, Some(40));
    // And the age bands' state rows are protected too.
    assert_eq!(new.statewide.total.value, Some(180));
    let json = serde_json::to_value(&a.by_age_band[0]).unwrap_or_default();
    assert_eq!(json["value"], serde_json::Value::Null);
    assert_eq!(json["suppressed"], serde_json::Value::Bool(true));

    // Publishing again from the same reports shows the same.
    let ledger = Ledger::from_entries(entries);
    let (again, _) = publish(period(), VOCABULARY_VERSION, &reports, &ledger);
    assert_eq!(again, publication);
}

#[test]
fn measures_are_applied() {
    let mut hist = BTreeMap::new();
    hist.insert(0, 3);
    hist.insert(2, 3);
    hist.insert(5, 30);
    assert_eq!(median_band(&hist), Some(DAY_BANDS[5]));
    hist.insert(1, 40);
    assert_eq!(median_band(&hist), Some(DAY_BANDS[1]));
    assert_eq!(median_band(&BTreeMap::new()), None);
    assert!(FLEX_CATEGORIES.contains(&Category::Housing));
    let reports = vec![(
        "county-a".to_string(),
        Report {
            vocabulary: VOCABULARY_VERSION,
            period: period(),
            version: 1,
            cells: vec![
                Cell {
                    indicator: Indicator::TeamMet,
                    age_band: AgeBand::Age6To11,
                    category: None,
                    value: 30,
                    base: Some(60),
                },
                Cell {
                    indicator: Indicator::CrisisPlanReviewed,
                    age_band: AgeBand::Age6To11,
                    category: None,
                    value: 15,
                    base: Some(40),
                },
                Cell {
                    indicator: Indicator::FlexFunds,
                    age_band: AgeBand::Age6To11,
                    category: Some(Category::Housing),
                    value: 1_200_000,
                    base: Some(40),
                },
            ],
        },
    )];
    let (publication, _) = publish(period(), VOCABULARY_VERSION, &reports, &Ledger::default());
    let find = |i| {
        publication
            .indicators
            .iter()
            .find(|f| f.indicator == i)
            .unwrap_or_else(|| panic!("missing"))
    };
    // 15 of 40 shows, flagged unstable (a numerator under 20).
    let crisis = &find(Indicator::CrisisPlanReviewed).statewide.total;
    assert_eq!(
        (crisis.value, crisis.base, crisis.rate),
        (Some(15), Some(40), Some(0.375))
    );
    assert!(crisis.unstable);
    let team = &find(Indicator::TeamMet).statewide.total;
    assert_eq!(
        (team.value, team.base, team.rate),
        (Some(30), Some(60), Some(0.5))
    );
    assert!(!team.unstable);
    let flex = &find(Indicator::FlexFunds).statewide.total;
    assert_eq!(
        (flex.value, flex.base, flex.per_youth),
        (Some(1_200_000), Some(40), Some(30_000.0))
    );
}
