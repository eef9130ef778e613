//! Whether a well-formed report could be true: the rules the hub applies
//! after [`Report::validate`], and the node to what it builds before it
//! sends (issue 22: a county gone rogue sent 1,000,000 youth per cell,
//! 999,999 new enrollments against 12 youth served, and periods 2000-01
//! and 2999-12, and all were published).
//!
//! - **Periods**: from [`FIRST_PERIOD`] (the vocabulary's first month) to
//!   the current month, never beyond.
//! - **The node's population**: the youth it reports served (all age bands)
//!   is at most its ceiling (the hub's `max_youth_per_node`, or the node's
//!   own `max_youth`), and so are the youth paid flexible funds in one
//!   category.
//! - **Parts never above their wholes**, per age band, as the definitions
//!   (`DEFINITIONS`) say and the aggregator counts: every youth counted by
//!   an indicator of youth served (new enrollments, the rates' bases, the
//!   youth discharged) is among the youth served of that age band; those
//!   with a living situation at discharge are among those discharged;
//!   money is paid to some youth. (A rate's value is at most its base
//!   already: `validate`.)
//!
//! Each refusal names its rule ([`Implausible::rule`], the hub's problem
//! type) and the indicator, age band and numbers that broke it. Sans-IO: the
//! caller says what month it is.

use crate::indicators::{
    AgeBand, Category, Indicator, Measure, Period, Report, FIRST_PERIOD, VOCABULARY_VERSION,
};
use crate::problems::ProblemType;
use serde::Serialize;

/// The ceiling of youth a node may report served in a month unless the hub
/// says otherwise: above any county's wraparound enrollment (a large
/// county serves hundreds to a few thousand youth).
pub const DEFAULT_MAX_YOUTH: u64 = 10_000;

/// Which number of an indicator's cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Value,
    Base,
}

/// An indicator's value or base, summed over its categories, per age band.
pub type Figure = (Indicator, Quantity);

const SERVED: Figure = (Indicator::YouthServed, Quantity::Value);
const DISCHARGED: Figure = (Indicator::DischargeReason, Quantity::Value);

/// Every (part, whole) the definitions tie: the part's youth are all among
/// the whole's, in each age band (age is taken on the period's last day for
/// every indicator). Wholes come before the parts they bound, so
/// [`conform`] can clamp in one pass.
pub const PARTS: &[(Figure, Figure)] = &[
    (SERVED, (Indicator::NewEnrollments, Quantity::Value)),
    (SERVED, (Indicator::PlanAdoptedWithin30Days, Quantity::Base)),
    (SERVED, DISCHARGED),
    (SERVED, (Indicator::DaysInService, Quantity::Value)),
    (SERVED, (Indicator::OutOfHomePlacement, Quantity::Base)),
    (SERVED, (Indicator::PsychAdmissionAtIntake, Quantity::Base)),
    (SERVED, (Indicator::PsychAdmissionLatest, Quantity::Base)),
    (SERVED, (Indicator::ArrestAtIntake, Quantity::Base)),
    (SERVED, (Indicator::ArrestLatest, Quantity::Base)),
    (SERVED, (Indicator::RegularSchoolAttendance, Quantity::Base)),
    (SERVED, (Indicator::NaturalSupport, Quantity::Base)),
    (SERVED, (Indicator::CrisisPlanReviewed, Quantity::Base)),
    (SERVED, (Indicator::TeamMet, Quantity::Base)),
    (DISCHARGED, (Indicator::HomeAtDischarge, Quantity::Base)),
    (
        (Indicator::DaysInService, Quantity::Value),
        (Indicator::HomeAtDischarge, Quantity::Base),
    ),
];

/// Why a report cannot be true. Its [`Implausible::rule`] is stable; the
/// message names the indicator, age band and numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Implausible {
    #[error("period {period} is before {first}, the first month vocabulary {vocabulary} covers")]
    PeriodTooEarly {
        period: Period,
        first: Period,
        vocabulary: u32,
    },
    #[error("period {period} has not begun (the current month is {current})")]
    PeriodInFuture { period: Period, current: Period },
    #[error(
        "{} counts {count} youth{}, over this node's ceiling of {ceiling} youth",
        spelled(indicator),
        category.map(|c| format!(" in {}", spelled(&c))).unwrap_or_default()
    )]
    OverCeiling {
        indicator: Indicator,
        category: Option<Category>,
        count: u64,
        ceiling: u64,
    },
    #[error(
        "{} of {} (age band {}) is {part_count}, more than the {whole_count} of {} \
         {} it is part of",
        quantity(part.1),
        spelled(&part.0),
        spelled(age_band),
        quantity(whole.1),
        spelled(&whole.0)
    )]
    PartOverWhole {
        part: Figure,
        whole: Figure,
        age_band: AgeBand,
        part_count: u64,
        whole_count: u64,
    },
    #[error(
        "flex_funds (age band {}, {}) pays {cents} cents to no youth",
        spelled(age_band),
        spelled(category)
    )]
    AmountWithoutYouth {
        age_band: AgeBand,
        category: Category,
        cents: u64,
    },
}

impl Implausible {
    /// The rule broken: the hub's problem type.
    pub fn rule(&self) -> ProblemType {
        match self {
            Implausible::PeriodTooEarly { .. } => ProblemType::ReportPeriodTooEarly,
            Implausible::PeriodInFuture { .. } => ProblemType::ReportPeriodInFuture,
            Implausible::OverCeiling { .. } => ProblemType::ReportOverCeiling,
            Implausible::PartOverWhole { .. } => ProblemType::ReportPartOverWhole,
            Implausible::AmountWithoutYouth { .. } => ProblemType::ReportAmountWithoutYouth,
        }
    }
}

/// A vocabulary value as on the wire (`youth_served`, `6-11`).
fn spelled<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn quantity(q: Quantity) -> &'static str {
    match q {
        Quantity::Value => "the value",
        Quantity::Base => "the base",
    }
}

/// Whether `period` may be reported when the current month is `current`:
/// not before the vocabulary's first month, not after `current`.
pub fn check_period(period: Period, current: Period) -> Result<(), Implausible> {
    if period < FIRST_PERIOD {
        return Err(Implausible::PeriodTooEarly {
            period,
            first: FIRST_PERIOD,
            vocabulary: VOCABULARY_VERSION,
        });
    }
    if period > current {
        return Err(Implausible::PeriodInFuture { period, current });
    }
    Ok(())
}

fn band_index(band: AgeBand) -> usize {
    AgeBand::ALL.iter().position(|b| *b == band).unwrap_or(0)
}

/// `figure` per age band (in [`AgeBand::ALL`]'s order), summed over its
/// categories; a cell not sent counts 0.
pub fn per_band(report: &Report, (indicator, q): Figure) -> [u64; 5] {
    let mut sums = [0u64; 5];
    for cell in report.cells.iter().filter(|c| c.indicator == indicator) {
        let n = match q {
            Quantity::Value => cell.value,
            Quantity::Base => cell.base.unwrap_or(0),
        };
        let sum = &mut sums[band_index(cell.age_band)];
        *sum = sum.saturating_add(n);
    }
    sums
}

/// The counts' rules (no period rule): the population within `max_youth`,
/// parts within their wholes, money paid to someone. A valid report
/// ([`Report::validate`]) is assumed.
pub fn check_counts(report: &Report, max_youth: u64) -> Result<(), Implausible> {
    let served: u64 = per_band(report, SERVED)
        .iter()
        .fold(0u64, |a, n| a.saturating_add(*n));
    if served > max_youth {
        return Err(Implausible::OverCeiling {
            indicator: Indicator::YouthServed,
            category: None,
            count: served,
            ceiling: max_youth,
        });
    }
    for (whole, part) in PARTS {
        let (wholes, parts) = (per_band(report, *whole), per_band(report, *part));
        for (k, band) in AgeBand::ALL.iter().enumerate() {
            if parts[k] > wholes[k] {
                return Err(Implausible::PartOverWhole {
                    part: *part,
                    whole: *whole,
                    age_band: *band,
                    part_count: parts[k],
                    whole_count: wholes[k],
                });
            }
        }
    }
    // Youth paid flexible funds need not be served in the month (a payment
    // after discharge counts), so only the ceiling bounds them.
    let mut paid: std::collections::BTreeMap<Category, u64> = Default::default();
    for cell in report.cells.iter() {
        let def = cell.indicator.definition();
        if def.measure != Measure::Amount {
            continue;
        }
        let base = cell.base.unwrap_or(0);
        if let Some(category) = cell.category {
            if cell.value > 0 && base == 0 {
                return Err(Implausible::AmountWithoutYouth {
                    age_band: cell.age_band,
                    category,
                    cents: cell.value,
                });
            }
            let youth = paid.entry(category).or_default();
            *youth = youth.saturating_add(base);
            if *youth > max_youth {
                return Err(Implausible::OverCeiling {
                    indicator: cell.indicator,
                    category: Some(category),
                    count: *youth,
                    ceiling: max_youth,
                });
            }
        }
    }
    Ok(())
}

/// Every rule: [`check_period`] against `current`, then [`check_counts`].
pub fn check(report: &Report, max_youth: u64, current: Period) -> Result<(), Implausible> {
    check_period(report.period, current)?;
    check_counts(report, max_youth)
}

/// Makes a noisy report (differential privacy) keep the parts' rules:
/// every part is cut to its whole (categories largest first), a rate's
/// value to its base, and cents paid to no youth to 0. Post-processing of
/// released numbers, so it costs no privacy. The ceiling is the hub's and
/// is not applied.
pub fn conform(report: &mut Report) {
    for (whole, part) in PARTS {
        let wholes = per_band(report, *whole);
        let parts = per_band(report, *part);
        for (k, band) in AgeBand::ALL.iter().enumerate() {
            let mut excess = parts[k].saturating_sub(wholes[k]);
            while excess > 0 {
                // The largest cell of the part in this band gives first.
                let Some(cell) = report
                    .cells
                    .iter_mut()
                    .filter(|c| c.indicator == part.0 && c.age_band == *band)
                    .max_by_key(|c| match part.1 {
                        Quantity::Value => c.value,
                        Quantity::Base => c.base.unwrap_or(0),
                    })
                else {
                    break;
                };
                let n = match part.1 {
                    Quantity::Value => &mut cell.value,
                    Quantity::Base => match cell.base.as_mut() {
                        Some(base) => base,
                        None => break,
                    },
                };
                if *n == 0 {
                    break;
                }
                let cut = excess.min(*n);
                *n -= cut;
                excess -= cut;
            }
        }
    }
    for cell in &mut report.cells {
        let measure = cell.indicator.definition().measure;
        match (measure, cell.base) {
            (Measure::Rate, Some(base)) => cell.value = cell.value.min(base),
            (Measure::Amount, Some(0)) => cell.value = 0,
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::indicators::{Cell, FLEX_CATEGORIES};

    fn cell(indicator: Indicator, band: AgeBand, value: u64, base: Option<u64>) -> Cell {
        Cell {
            indicator,
            age_band: band,
            category: None,
            value,
            base,
        }
    }

    fn report(cells: Vec<Cell>) -> Report {
        Report {
            vocabulary: VOCABULARY_VERSION,
            period: Period::new(2026, 10).unwrap(),
            version: 1,
            cells,
        }
    }

    const B: AgeBand = AgeBand::Age6To11;

    /// A report that keeps every rule: 12 youth served aged 6-11.
    fn honest() -> Report {
        report(vec![
            cell(Indicator::YouthServed, B, 12, None),
            cell(Indicator::NewEnrollments, B, 3, None),
            cell(Indicator::TeamMet, B, 8, Some(10)),
            cell(Indicator::NaturalSupport, B, 5, Some(12)),
            Cell {
                category: Some(Category::Completed),
                ..cell(Indicator::DischargeReason, B, 2, None)
            },
            Cell {
                category: Some(Category::Days90),
                ..cell(Indicator::DaysInService, B, 2, None)
            },
            cell(Indicator::HomeAtDischarge, B, 1, Some(2)),
            Cell {
                category: Some(Category::Housing),
                ..cell(Indicator::FlexFunds, B, 50_000, Some(3))
            },
        ])
    }

    fn rule(report: &Report) -> Result<(), &'static str> {
        check(report, DEFAULT_MAX_YOUTH, Period::new(2026, 12).unwrap())
            .map_err(|e| e.rule().as_str())
    }

    #[test]
    fn an_honest_report_is_plausible() {
        let r = honest();
        assert!(r.validate().is_ok());
        assert_eq!(rule(&r), Ok(()));
        // The current month may be reported; so may the vocabulary's first.
        let now = Period::new(2026, 12).unwrap();
        assert_eq!(check_period(now, now), Ok(()));
        assert_eq!(check_period(FIRST_PERIOD, now), Ok(()));
        assert_eq!(rule(&report(vec![])), Ok(()));
    }

    #[test]
    fn periods_before_the_vocabulary_or_after_this_month_are_refused() {
        let now = Period::new(2026, 12).unwrap();
        let too_early = check_period(Period::new(2000, 1).unwrap(), now).unwrap_err();
        assert_eq!(too_early.rule().as_str(), "report-period-too-early");
        assert!(too_early.to_string().contains("2000-01"), "{too_early}");
        assert_eq!(
            check_period(FIRST_PERIOD.previous(), now).map_err(|e| e.rule().as_str()),
            Err("report-period-too-early")
        );
        for future in [now.next(), Period::new(2999, 12).unwrap()] {
            let e = check_period(future, now).unwrap_err();
            assert_eq!(e.rule().as_str(), "report-period-in-future");
            assert!(e.to_string().contains(&future.to_string()), "{e}");
        }
    }

    #[test]
    fn the_population_is_bounded_by_the_ceiling() {
        // 1,000,000 youth in one cell, or spread over the bands.
        let mut huge = honest();
        huge.cells[0].value = 1_000_000;
        let e = check(&huge, DEFAULT_MAX_YOUTH, Period::new(2026, 12).unwrap()).unwrap_err();
        assert_eq!(e.rule().as_str(), "report-over-ceiling");
        assert!(e.to_string().contains("youth_served counts 1000000"), "{e}");
        let spread = report(
            AgeBand::ALL
                .iter()
                .map(|b| cell(Indicator::YouthServed, *b, 2_001, None))
                .collect(),
        );
        assert_eq!(rule(&spread), Err("report-over-ceiling"));
        // A node's own ceiling applies.
        assert!(check_counts(&honest(), 12).is_ok());
        assert_eq!(
            check_counts(&honest(), 11).map_err(|e| e.rule().as_str()),
            Err("report-over-ceiling")
        );
        // Youth paid flexible funds in one category, over all bands.
        let paid = report(
            AgeBand::ALL
                .iter()
                .map(|b| Cell {
                    category: Some(Category::Housing),
                    ..cell(Indicator::FlexFunds, *b, 100, Some(2_001))
                })
                .collect(),
        );
        assert_eq!(rule(&paid), Err("report-over-ceiling"));
    }

    #[test]
    fn no_part_is_above_its_whole() {
        // Every tie of the definitions, broken one at a time by one youth.
        for (whole, part) in PARTS {
            let mut r = honest();
            let wholes = per_band(&r, *whole);
            let k = band_index(B);
            let over = wholes[k] + 1;
            let def = part.0.definition();
            r.cells.retain(|c| c.indicator != part.0);
            let base_needed = matches!(def.measure, Measure::Rate | Measure::Amount);
            let (value, base) = match part.1 {
                Quantity::Value => (over, base_needed.then_some(over)),
                Quantity::Base => (0, Some(over)),
            };
            r.cells.push(Cell {
                category: def.categories.first().copied(),
                ..cell(part.0, B, value, base)
            });
            assert!(r.validate().is_ok(), "{part:?}");
            let e = check(&r, DEFAULT_MAX_YOUTH, Period::new(2026, 12).unwrap()).unwrap_err();
            assert_eq!(
                e.rule().as_str(),
                "report-part-over-whole",
                "{part:?} of {whole:?}"
            );
            assert!(e.to_string().contains("6-11"), "{e}");
        }
        // The finding's: 999,999 new enrollments against 12 youth served,
        // and a 100 % arrest rate on a base of 1,000,000.
        let mut r = honest();
        r.cells[1].value = 999_999;
        let e = check_counts(&r, DEFAULT_MAX_YOUTH).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the value of new_enrollments (age band 6-11) is 999999, more than the 12 of \
             the value youth_served it is part of"
        );
        let mut r = honest();
        r.cells
            .push(cell(Indicator::ArrestLatest, B, 1_000_000, Some(1_000_000)));
        assert_eq!(
            check_counts(&r, DEFAULT_MAX_YOUTH).map_err(|e| e.rule().as_str()),
            Err("report-part-over-whole")
        );
        // A part in one band is not bounded by another band's whole.
        let r = report(vec![
            cell(Indicator::YouthServed, AgeBand::Age0To5, 50, None),
            cell(Indicator::NewEnrollments, B, 1, None),
        ]);
        assert_eq!(rule(&r), Err("report-part-over-whole"));
    }

    #[test]
    fn money_is_paid_to_someone() {
        let r = report(vec![Cell {
            category: Some(Category::Respite),
            ..cell(Indicator::FlexFunds, B, 10_000, Some(0))
        }]);
        assert_eq!(rule(&r), Err("report-amount-without-youth"));
        assert_eq!(
            ProblemType::parse("report-amount-without-youth"),
            Some(ProblemType::ReportAmountWithoutYouth)
        );
    }

    #[test]
    fn conform_makes_a_noisy_report_keep_the_rules() {
        // Noise gone wild: everything above what it is part of.
        let mut r = report(vec![cell(Indicator::YouthServed, B, 5, None)]);
        for (_, part) in PARTS {
            let def = part.0.definition();
            let base = matches!(def.measure, Measure::Rate | Measure::Amount).then_some(900);
            for category in def
                .categories
                .iter()
                .take(3)
                .map(Some)
                .chain(def.categories.is_empty().then_some(None::<&Category>))
            {
                if r.cells
                    .iter()
                    .any(|c| c.indicator == part.0 && c.category == category.copied())
                {
                    continue;
                }
                r.cells.push(Cell {
                    category: category.copied(),
                    ..cell(part.0, B, 700, base)
                });
            }
        }
        for category in FLEX_CATEGORIES.iter().take(2) {
            r.cells.push(Cell {
                category: Some(*category),
                ..cell(Indicator::FlexFunds, B, 9_000, Some(0))
            });
        }
        assert!(r.validate().is_ok());
        assert!(check_counts(&r, DEFAULT_MAX_YOUTH).is_err());
        conform(&mut r);
        assert!(r.validate().is_ok());
        assert_eq!(check_counts(&r, DEFAULT_MAX_YOUTH), Ok(()));
        // What was within its bounds is left alone.
        let mut h = honest();
        conform(&mut h);
        assert_eq!(h, honest());
    }
}
