//! From the kept reports of one period to the published figures: sums per
//! community and statewide, each as a total and by age band and by
//! category, with the measure applied, and with small cells and their
//! complements withheld (`suppress`).
//!
//! What a reader could combine is treated as one table:
//! - each indicator's numbers (and, for rates and amounts, its bases) form
//!   a table whose relations are age bands → total, categories → total,
//!   communities → state;
//! - numbers that count the same youth under two indicators (youth served
//!   and natural supports' base; youth discharged by reason and by days in
//!   service; the bases two rates share) are withheld together wherever
//!   they coincide;
//! - a rate's numerator is withheld where its complement (base minus
//!   numerator: those *without* the outcome) is a small count, and a count
//!   of youth who are all among another's (`tables::SUBSETS`) where the rest of
//!   the larger one is;
//! - a figure whose value moved by 1 to 10 since a release of the same
//!   period published it is withheld (the [`Ledger`]), so two releases
//!   cannot be subtracted to find a small group; and one an earlier
//!   release withheld stays withheld until it moves by more than 10, so
//!   the pattern of a release cannot be undone by the next.
//!
//! Sans-IO: the caller loads the reports and the ledger and records what
//! this answers as newly published.

pub use super::ledger::{Ledger, LedgerEntry};
pub use super::tables::Quantity;
use super::tables::{age_index, figure_key, sums, withhold, Grid, Table, AGES};
use std::collections::BTreeMap;
use wrapsync_shared::hub::{
    AgeFigure, Breakdown, CategoryFigure, CommunityFigures, Figure, IndicatorFigures, Publication,
    STABLE_NUMERATOR_MIN,
};
use wrapsync_shared::indicators::{
    AgeBand, Category, Definition, Measure, Period, Report, DAY_BANDS, DEFINITIONS,
};

/// The publication of `period` from the kept `reports` (node id, report;
/// any order) and what earlier releases of it published; and the numbers
/// it publishes, for the ledger.
pub fn publish(
    period: Period,
    vocabulary: u32,
    reports: &[(String, Report)],
    ledger: &Ledger,
) -> (Publication, Vec<LedgerEntry>) {
    let mut reports = reports.to_vec();
    reports.sort_by(|a, b| a.0.cmp(&b.0));
    let scope_names: Vec<String> = std::iter::once("*".to_string())
        .chain(reports.iter().map(|(node, _)| node.clone()))
        .collect();
    let grid_of = |def: &Definition| Grid {
        scopes: reports.len() + 1,
        categories: def.categories,
    };

    let tables = withhold(&reports, &scope_names, ledger);

    // The figures.
    let mut entries = Vec::new();
    let mut indicators = Vec::new();
    for def in DEFINITIONS {
        let grid = grid_of(def);
        let table = |q: Quantity| {
            tables
                .iter()
                .find(|t| t.indicator == def.indicator && t.quantity == q)
        };
        let value_table = table(Quantity::Value);
        let base_table = table(Quantity::Base);
        for t in [value_table, base_table].into_iter().flatten() {
            for (i, (&v, &h)) in t.values.iter().zip(&t.hidden).enumerate() {
                let (scope, stratum) = (i / grid.strata(), i % grid.strata());
                entries.push(LedgerEntry {
                    figure: figure_key(
                        def.indicator,
                        t.quantity,
                        &scope_names[scope],
                        &grid,
                        stratum,
                    ),
                    value: v,
                    withheld: h,
                });
            }
        }
        let cents =
            (def.measure == Measure::Amount).then(|| sums(&grid, def, &reports, |c| c.value));
        let histograms = (def.measure == Measure::Median).then(|| histograms(&grid, def, &reports));
        let figure = |i: usize, stratum: usize| -> Figure {
            let shown = |t: Option<&Table>| t.and_then(|t| (!t.hidden[i]).then_some(t.values[i]));
            let withheld = |t: Option<&Table>| t.is_some_and(|t| t.hidden[i]);
            let suppressed = withheld(value_table) || withheld(base_table);
            match def.measure {
                Measure::Count => Figure {
                    value: shown(value_table),
                    ..empty(suppressed)
                },
                Measure::Rate => {
                    let (num, den) = (shown(value_table), shown(base_table));
                    let rate = match (num, den) {
                        (Some(n), Some(d)) if d > 0 => Some(n as f64 / d as f64),
                        _ => None,
                    };
                    Figure {
                        value: num,
                        base: den,
                        rate,
                        unstable: rate.is_some() && num.is_some_and(|n| n < STABLE_NUMERATOR_MIN),
                        ..empty(suppressed)
                    }
                }
                Measure::Median => {
                    let value = shown(value_table);
                    let median = match (&histograms, value) {
                        (Some(h), Some(n)) if n > 0 && stratum <= AGES => median_band(&h[i]),
                        _ => None,
                    };
                    Figure {
                        value,
                        median,
                        ..empty(suppressed)
                    }
                }
                Measure::Amount => {
                    let youth = shown(base_table);
                    let cents = cents.as_ref().and_then(|c| youth.map(|_| c[i]));
                    let per_youth = match (cents, youth) {
                        (Some(c), Some(y)) if y > 0 => Some(c as f64 / y as f64),
                        _ => None,
                    };
                    Figure {
                        value: cents,
                        base: youth,
                        per_youth,
                        ..empty(suppressed)
                    }
                }
            }
        };
        let breakdown = |scope: usize| Breakdown {
            total: figure(grid.index(scope, 0), 0),
            by_age_band: AgeBand::ALL
                .iter()
                .enumerate()
                .map(|(a, band)| AgeFigure {
                    age_band: *band,
                    figure: figure(grid.index(scope, 1 + a), 1 + a),
                })
                .collect(),
            by_category: def
                .categories
                .iter()
                .enumerate()
                .map(|(c, category)| CategoryFigure {
                    category: *category,
                    figure: figure(grid.index(scope, 1 + AGES + c), 1 + AGES + c),
                })
                .collect(),
        };
        indicators.push(IndicatorFigures {
            indicator: def.indicator,
            title: def.title.to_string(),
            measure: def.measure,
            unit: def.unit,
            statewide: breakdown(0),
            communities: (1..grid.scopes)
                .map(|s| CommunityFigures {
                    node: scope_names[s].clone(),
                    figures: breakdown(s),
                })
                .collect(),
        });
    }
    let publication = Publication {
        period,
        vocabulary,
        nodes: reports.iter().map(|(node, _)| node.clone()).collect(),
        indicators,
    };
    (publication, entries)
}

fn empty(suppressed: bool) -> Figure {
    Figure {
        value: None,
        base: None,
        rate: None,
        median: None,
        per_youth: None,
        suppressed,
        unstable: false,
    }
}

/// Youth per day band at each total and age-band position.
fn histograms(
    grid: &Grid,
    def: &Definition,
    reports: &[(String, Report)],
) -> Vec<BTreeMap<usize, u64>> {
    let mut out = vec![BTreeMap::new(); grid.len()];
    for (n, (_, report)) in reports.iter().enumerate() {
        for cell in report.cells.iter().filter(|c| c.indicator == def.indicator) {
            let Some(band) = cell
                .category
                .and_then(|c| DAY_BANDS.iter().position(|b| *b == c))
            else {
                continue;
            };
            for scope in [0, n + 1] {
                for k in [0, 1 + age_index(cell.age_band)] {
                    *out[grid.index(scope, k)].entry(band).or_insert(0) += cell.value;
                }
            }
        }
    }
    out
}

/// The band holding the middle youth (the lower middle for an even count).
fn median_band(histogram: &BTreeMap<usize, u64>) -> Option<Category> {
    let n: u64 = histogram.values().sum();
    if n == 0 {
        return None;
    }
    let middle = n.div_ceil(2);
    let mut seen = 0;
    for (&band, &count) in histogram {
        seen += count;
        if seen >= middle {
            return DAY_BANDS.get(band).copied();
        }
    }
    None
}

#[cfg(test)]
#[path = "publish_tests.rs"]
mod tests;
