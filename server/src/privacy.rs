//! Optional differential privacy for the node's reports (`dp_epsilon_per_year`).
//!
//! Suppression at the hub hides small cells; differential privacy goes
//! further and bounds what anyone can learn about one youth from everything
//! a node ever releases, whatever else they know. Each cell of a report gets
//! discrete Laplace noise at the node, before it leaves, scaled to what one
//! youth can change in the whole report (its L1 sensitivity) over the
//! privacy loss `epsilon` spent on that report. The node's yearly budget is
//! spent a twelfth per month, once: a month is released after it ends and
//! the release is kept, so resending it costs nothing and no average of
//! fresh draws can wash the noise out. The hub then suppresses on the
//! noisy counts, as on any.
//!
//! The price is accuracy: with ε = 1 a year, a month's count cells carry
//! noise of a standard deviation about 1,040 (see [`Sensitivity`]), which
//! swamps a county's figures; a statewide sum over N nodes carries √N times
//! that, and N times the upward bias of clamping small cells at zero. It
//! is off by default and meant for states that accept that trade (the
//! README has the figures).

use rand::Rng;
use wrapsync_shared::indicators::{
    AgeBand, Category, Cell, Measure, Report, Unit, DEFINITIONS, MAX_CENTS, MAX_COUNT,
};

/// Differential privacy as a node is configured for it
/// (`dp_epsilon_per_year` and the bounds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Privacy {
    /// The privacy loss the node may spend on one calendar year's months.
    pub epsilon_per_year: f64,
    pub bounds: Bounds,
}

/// How much one youth may add to a report, as the aggregator enforces when
/// privacy is on: without a bound, one family's payments or one long CANS
/// would need unbounded noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// CANS items one youth contributes to the needs-resolved rate.
    pub cans_items_per_youth: u64,
    /// Flexible funds (cents) one youth contributes in a month.
    pub flex_cents_per_youth: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            cans_items_per_youth: 10,
            flex_cents_per_youth: 500_000,
        }
    }
}

/// The most one youth changes a report (L1), apart for counts and money,
/// which get separate shares of the budget since their scales differ by
/// orders of magnitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sensitivity {
    pub counts: f64,
    pub cents: f64,
}

impl Sensitivity {
    /// A youth is in at most one cell of each indicator (one age band, one
    /// category), adding at most 1 to its value and 1 to its base, except
    /// CANS needs (up to the items bound each) and money (the cents bound
    /// over all categories, and 1 to the base of each category paid).
    pub fn of(bounds: &Bounds) -> Sensitivity {
        let mut counts = 0.0;
        for def in DEFINITIONS {
            let has_base = matches!(def.measure, Measure::Rate | Measure::Amount);
            let value = match def.unit {
                Unit::Youth => 1.0,
                Unit::Needs => bounds.cans_items_per_youth as f64,
                Unit::Cents => 0.0,
            };
            let base = match (has_base, def.unit) {
                (false, _) => 0.0,
                (true, Unit::Needs) => bounds.cans_items_per_youth as f64,
                // A youth paid in several categories is in each one's base.
                (true, Unit::Cents) => def.categories.len() as f64,
                (true, Unit::Youth) => 1.0,
            };
            counts += value + base;
        }
        Sensitivity {
            counts,
            cents: bounds.flex_cents_per_youth as f64,
        }
    }
}

/// Share of a release's epsilon spent on money; the rest is for counts.
const CENTS_SHARE: f64 = 0.1;

/// A sample of the discrete Laplace distribution, P(k) ∝ exp(-|k| / scale):
/// the difference of two geometric variables. Integer noise keeps counts
/// counts and avoids the floating-point attacks on continuous Laplace.
pub fn discrete_laplace(rng: &mut impl Rng, scale: f64) -> i64 {
    if !(scale.is_finite() && scale > 0.0) {
        return 0;
    }
    let q = (-1.0 / scale).exp();
    geometric(rng, q) - geometric(rng, q)
}

/// Failures before the first success, success probability `1 - q`.
fn geometric(rng: &mut impl Rng, q: f64) -> i64 {
    // 1 - u is in (0, 1], so its logarithm is finite.
    let u: f64 = rng.random();
    let k = ((1.0 - u).ln() / q.ln()).floor();
    if k.is_finite() {
        k.min(i64::MAX as f64 / 4.0) as i64
    } else {
        0
    }
}

/// Adds noise for privacy loss `epsilon` to every cell of `report`, in
/// place: values and bases, each kept within what the report's rules allow
/// (not negative, a rate's value not above its base), so the hub takes a
/// noisy report exactly as a plain one. Clamping is post-processing and
/// costs no privacy.
pub fn add_noise(report: &mut Report, epsilon: f64, bounds: &Bounds, rng: &mut impl Rng) {
    complete(report);
    let sensitivity = Sensitivity::of(bounds);
    let counts_scale = sensitivity.counts / (epsilon * (1.0 - CENTS_SHARE));
    let cents_scale = sensitivity.cents / (epsilon * CENTS_SHARE);
    for cell in &mut report.cells {
        let def = cell.indicator.definition();
        let (value_scale, value_max) = match def.unit {
            Unit::Cents => (cents_scale, MAX_CENTS),
            _ => (counts_scale, MAX_COUNT),
        };
        cell.value = shifted(cell.value, discrete_laplace(rng, value_scale), value_max);
        if let Some(base) = cell.base {
            let base = shifted(base, discrete_laplace(rng, counts_scale), MAX_COUNT);
            cell.base = Some(base);
            if def.measure == Measure::Rate {
                cell.value = cell.value.min(base);
            }
        }
    }
    // Parts within their wholes, as the hub wants (`plausibility`).
    wrapsync_shared::plausibility::conform(report);
}

/// Every cell of the vocabulary, zero where no youth is: which cells a
/// plain report holds says which age bands and categories have youth at
/// all, so a noisy one holds them all.
fn complete(report: &mut Report) {
    let present: std::collections::HashSet<_> = report
        .cells
        .iter()
        .map(|c| (c.indicator, c.age_band, c.category))
        .collect();
    for def in DEFINITIONS {
        let categories: Vec<Option<Category>> = if def.categories.is_empty() {
            vec![None]
        } else {
            def.categories.iter().copied().map(Some).collect()
        };
        let base = matches!(def.measure, Measure::Rate | Measure::Amount).then_some(0);
        for age_band in AgeBand::ALL {
            for &category in &categories {
                if !present.contains(&(def.indicator, age_band, category)) {
                    report.cells.push(Cell {
                        indicator: def.indicator,
                        age_band,
                        category,
                        value: 0,
                        base,
                    });
                }
            }
        }
    }
    report.cells.sort();
}

fn shifted(value: u64, noise: i64, max: u64) -> u64 {
    let value = i128::from(value) + i128::from(noise);
    u64::try_from(value.clamp(0, i128::from(max))).unwrap_or(0)
}

/// The epsilon one month's release spends out of a yearly budget.
pub fn monthly_epsilon(epsilon_per_year: f64) -> f64 {
    epsilon_per_year / 12.0
}

/// Relative slack in budget sums: twelve twelfths of a budget may add up
/// to a hair over it in floating point, and the twelfth month must fit.
const BUDGET_SLACK: f64 = 1e-9;

/// What is left of a year's `budget` after `spent` and a release spending
/// `epsilon`, or `None` if that release does not fit: the budget is spent.
pub fn left_after(budget: f64, spent: f64, epsilon: f64) -> Option<f64> {
    let after = spent + epsilon;
    (after <= budget * (1.0 + BUDGET_SLACK)).then(|| (budget - after).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use wrapsync_shared::indicators::{Indicator, Period, VOCABULARY_VERSION};

    #[test]
    fn discrete_laplace_has_the_variance_its_scale_promises() {
        let mut rng = StdRng::seed_from_u64(7);
        let scale = 5.0;
        let n = 200_000;
        let samples: Vec<i64> = (0..n).map(|_| discrete_laplace(&mut rng, scale)).collect();
        let mean = samples.iter().sum::<i64>() as f64 / n as f64;
        let variance = samples
            .iter()
            .map(|s| (*s as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        // Var = 2q / (1 - q)^2 with q = exp(-1/scale).
        let q = (-1.0f64 / scale).exp();
        let expected = 2.0 * q / (1.0 - q).powi(2);
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert!(
            (variance / expected - 1.0).abs() < 0.03,
            "{variance} vs {expected}"
        );
        assert!(samples.iter().any(|s| *s < 0) && samples.iter().any(|s| *s > 0));
    }

    #[test]
    fn a_yearly_budget_pays_for_twelve_months_and_no_more() {
        for budget in [1.0, 0.1, 3.0, 0.7, 1e-6, 1234.5] {
            let month = monthly_epsilon(budget);
            let mut spent = 0.0;
            for _ in 0..12 {
                let left = left_after(budget, spent, month);
                assert!(left.is_some(), "{budget}: {spent} spent");
                spent += month;
            }
            assert_eq!(left_after(budget, spent, month), None, "{budget}");
            assert!(left_after(budget, spent, 0.0).is_some_and(|l| l < month * 1e-6));
        }
        // What is left, after one month of a budget of 1.2.
        let left = left_after(1.2, 0.0, monthly_epsilon(1.2)).unwrap_or(-1.0);
        assert!((left - 1.1).abs() < 1e-12, "{left}");
    }

    #[test]
    fn a_budget_lowered_during_the_year_refuses_once_what_was_spent_reaches_it() {
        // A month released under 1 a year spent 1/12; lowered to 0.09, the
        // next month (0.0075) would pass it, lowered to 0.1 it fits.
        let spent = monthly_epsilon(1.0);
        assert_eq!(left_after(0.09, spent, monthly_epsilon(0.09)), None);
        assert!(left_after(0.1, spent, monthly_epsilon(0.1)).is_some());
        // Already over a lowered budget: nothing fits, not even a little.
        assert_eq!(left_after(0.05, spent, 1e-12), None);
    }

    #[test]
    fn the_default_bounds_give_the_sensitivity_the_readme_states() {
        let s = Sensitivity::of(&Bounds::default());
        assert_eq!((s.counts, s.cents), (55.0, 500_000.0));
        // ε = 1 a year: a month spends 1/12, 90 % of it on counts; the
        // discrete Laplace variance is 2q / (1 - q)^2, q = exp(-1/scale).
        let scale = s.counts / (monthly_epsilon(1.0) * (1.0 - CENTS_SHARE));
        let q = (-1.0 / scale).exp();
        let sd = (2.0 * q).sqrt() / (1.0 - q);
        assert!((scale - 733.3).abs() < 0.1, "{scale}");
        assert!((sd - 1037.0).abs() < 1.0, "{sd}");
        let cents_scale = s.cents / (monthly_epsilon(1.0) * CENTS_SHARE);
        assert!((cents_scale - 60_000_000.0).abs() < 1.0, "{cents_scale}");
    }

    #[test]
    fn no_noise_for_a_nonsense_scale() {
        let mut rng = StdRng::seed_from_u64(1);
        for scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(discrete_laplace(&mut rng, scale), 0);
        }
    }

    #[test]
    fn sensitivity_counts_every_indicator_a_youth_can_be_in() {
        let bounds = Bounds {
            cans_items_per_youth: 10,
            flex_cents_per_youth: 100,
        };
        let s = Sensitivity::of(&bounds);
        // 4 counts without a base, 11 rates of youth, CANS needs at 10 + 10,
        // and the youth that money was paid for, in each of 9 categories.
        assert_eq!(s.counts, 4.0 + 2.0 * 11.0 + 20.0 + 9.0);
        assert_eq!(s.cents, 100.0);
    }

    fn report() -> Report {
        Report {
            vocabulary: VOCABULARY_VERSION,
            period: Period::new(2026, 10).expect("a period"),
            version: 1,
            cells: vec![
                Cell {
                    indicator: Indicator::YouthServed,
                    age_band: AgeBand::Age6To11,
                    category: None,
                    value: 40,
                    base: None,
                },
                Cell {
                    indicator: Indicator::TeamMet,
                    age_band: AgeBand::Age6To11,
                    category: None,
                    value: 3,
                    base: Some(4),
                },
                Cell {
                    indicator: Indicator::FlexFunds,
                    age_band: AgeBand::Age12To17,
                    category: Some(wrapsync_shared::indicators::Category::Housing),
                    value: 120_000,
                    base: Some(2),
                },
            ],
        }
    }

    #[test]
    fn a_noisy_report_still_keeps_every_rule_of_a_report() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut changed = false;
        for _ in 0..500 {
            let mut noisy = report();
            add_noise(&mut noisy, 0.1, &Bounds::default(), &mut rng);
            noisy.validate().expect("a valid report");
            changed |= noisy
                .cells
                .iter()
                .any(|c| c.value != 0 && !report().cells.contains(c));
            // Every cell of the vocabulary, so absence says nothing.
            assert_eq!(noisy.cells.len(), 270);
        }
        assert!(changed, "the noise does something");
    }

    #[test]
    fn more_budget_means_less_noise() {
        let spread = |epsilon: f64| {
            let mut rng = StdRng::seed_from_u64(11);
            (0..2000)
                .map(|_| {
                    let mut noisy = report();
                    add_noise(&mut noisy, epsilon, &Bounds::default(), &mut rng);
                    let served = noisy
                        .cells
                        .iter()
                        .find(|c| {
                            c.indicator == Indicator::YouthServed && c.age_band == AgeBand::Age6To11
                        })
                        .map_or(0, |c| c.value);
                    (served as f64 - 40.0).abs()
                })
                .sum::<f64>()
        };
        assert!(spread(1000.0) < spread(1.0));
    }
}
