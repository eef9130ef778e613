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
//!   of youth who are all among another's (`SUBSETS`) where the rest of
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
use super::linear::Relation;
use super::suppress::{complete, is_small};
use serde::Serialize;
use std::collections::BTreeMap;
use wrapsync_shared::hub::{
    AgeFigure, Breakdown, CategoryFigure, CommunityFigures, Figure, IndicatorFigures, Publication,
    STABLE_NUMERATOR_MIN,
};
use wrapsync_shared::indicators::{
    AgeBand, Category, Definition, Indicator, Measure, Period, Report, DAY_BANDS, DEFINITIONS,
};

/// Which number of an indicator's cells a table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quantity {
    /// The count, numerator or cents.
    Value,
    /// The rate's denominator or the youth an amount was paid for.
    Base,
}

/// One indicator's values or bases.
type Figures = (Indicator, Quantity);

/// Numbers that count the same youth under two indicators: withheld
/// together wherever both have them (total and age bands).
const SAME_YOUTH: &[&[Figures]] = &[
    &[
        (Indicator::YouthServed, Quantity::Value),
        (Indicator::NaturalSupport, Quantity::Base),
    ],
    &[
        (Indicator::DischargeReason, Quantity::Value),
        (Indicator::DaysInService, Quantity::Value),
    ],
    &[
        (Indicator::PsychAdmissionAtIntake, Quantity::Base),
        (Indicator::ArrestAtIntake, Quantity::Base),
    ],
    &[
        (Indicator::PsychAdmissionLatest, Quantity::Base),
        (Indicator::ArrestLatest, Quantity::Base),
    ],
    &[
        (Indicator::CrisisPlanReviewed, Quantity::Base),
        (Indicator::TeamMet, Quantity::Base),
    ],
];

/// Youth counted under one indicator (the second) who are all among those
/// of another (the first): served ⊇ newly enrolled, served ⊇ those with a
/// status, intake status ⊇ a status after intake, active at the end ⊆
/// served, discharged ⊇ discharged with a status. Where both show, their
/// difference is a count of people too; the subset is withheld where it is
/// 1 to 10.
const SUBSETS: &[(Figures, Figures)] = &[
    (
        (Indicator::YouthServed, Quantity::Value),
        (Indicator::NewEnrollments, Quantity::Value),
    ),
    (
        (Indicator::YouthServed, Quantity::Value),
        (Indicator::OutOfHomePlacement, Quantity::Base),
    ),
    (
        (Indicator::YouthServed, Quantity::Value),
        (Indicator::PsychAdmissionAtIntake, Quantity::Base),
    ),
    (
        (Indicator::YouthServed, Quantity::Value),
        (Indicator::PsychAdmissionLatest, Quantity::Base),
    ),
    (
        (Indicator::YouthServed, Quantity::Value),
        (Indicator::RegularSchoolAttendance, Quantity::Base),
    ),
    (
        (Indicator::YouthServed, Quantity::Value),
        (Indicator::CrisisPlanReviewed, Quantity::Base),
    ),
    (
        (Indicator::PsychAdmissionAtIntake, Quantity::Base),
        (Indicator::PsychAdmissionLatest, Quantity::Base),
    ),
    (
        (Indicator::DischargeReason, Quantity::Value),
        (Indicator::HomeAtDischarge, Quantity::Base),
    ),
];

/// Where a number sits: the state (scope 0) or a community, and its
/// stratum: 0 the total, 1–5 the age bands, then the categories.
struct Grid {
    scopes: usize,
    categories: &'static [Category],
}

const AGES: usize = AgeBand::ALL.len();

impl Grid {
    fn strata(&self) -> usize {
        1 + AGES + self.categories.len()
    }
    fn len(&self) -> usize {
        self.scopes * self.strata()
    }
    fn index(&self, scope: usize, stratum: usize) -> usize {
        scope * self.strata() + stratum
    }
    /// Strata every table of the same youth shares: total and age bands.
    fn shared(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.scopes).flat_map(move |s| (0..=AGES).map(move |k| self.index(s, k)))
    }
    fn relations(&self) -> Vec<Relation> {
        let mut relations = Vec::new();
        for s in 0..self.scopes {
            relations.push(Relation {
                total: self.index(s, 0),
                parts: (1..=AGES).map(|k| self.index(s, k)).collect(),
            });
            if !self.categories.is_empty() {
                relations.push(Relation {
                    total: self.index(s, 0),
                    parts: (1 + AGES..self.strata())
                        .map(|k| self.index(s, k))
                        .collect(),
                });
            }
        }
        if self.scopes > 1 {
            for k in 0..self.strata() {
                relations.push(Relation {
                    total: self.index(0, k),
                    parts: (1..self.scopes).map(|s| self.index(s, k)).collect(),
                });
            }
        }
        relations
    }
}

fn age_index(band: AgeBand) -> usize {
    AgeBand::ALL
        .iter()
        .position(|b| *b == band)
        .unwrap_or(AGES - 1)
}

/// A vocabulary value as spelled on the wire.
fn spelled<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// One table: an indicator's values or bases at every grid position.
struct Table {
    indicator: Indicator,
    quantity: Quantity,
    values: Vec<u64>,
    relations: Vec<Relation>,
    hidden: Vec<bool>,
}

fn sums(
    grid: &Grid,
    def: &Definition,
    reports: &[(String, Report)],
    pick: fn(&wrapsync_shared::indicators::Cell) -> u64,
) -> Vec<u64> {
    let mut values = vec![0u64; grid.len()];
    for (n, (_, report)) in reports.iter().enumerate() {
        for cell in report.cells.iter().filter(|c| c.indicator == def.indicator) {
            let v = pick(cell);
            let mut strata = vec![0, 1 + age_index(cell.age_band)];
            if let Some(c) = cell.category {
                if let Some(i) = grid.categories.iter().position(|x| *x == c) {
                    strata.push(1 + AGES + i);
                }
            }
            for scope in [0, n + 1] {
                for &k in &strata {
                    let i = grid.index(scope, k);
                    values[i] = values[i].saturating_add(v);
                }
            }
        }
    }
    values
}

fn figure_key(
    indicator: Indicator,
    quantity: Quantity,
    scope: &str,
    grid: &Grid,
    stratum: usize,
) -> String {
    let stratum = if stratum == 0 {
        "total".to_string()
    } else if stratum <= AGES {
        format!("age:{}", spelled(&AgeBand::ALL[stratum - 1]))
    } else {
        format!("category:{}", spelled(&grid.categories[stratum - 1 - AGES]))
    };
    let quantity = match quantity {
        Quantity::Value => "value",
        Quantity::Base => "base",
    };
    format!("{}|{scope}|{stratum}|{quantity}", spelled(&indicator))
}

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

    // Every table, with primary suppression and what is forced.
    let mut tables: Vec<Table> = Vec::new();
    for def in DEFINITIONS {
        let grid = grid_of(def);
        let quantities: &[Quantity] = match def.measure {
            Measure::Count | Measure::Median => &[Quantity::Value],
            Measure::Rate => &[Quantity::Value, Quantity::Base],
            // The cents follow the youth they were paid for (below).
            Measure::Amount => &[Quantity::Base],
        };
        for &quantity in quantities {
            let values = match quantity {
                Quantity::Value => sums(&grid, def, &reports, |c| c.value),
                Quantity::Base => sums(&grid, def, &reports, |c| c.base.unwrap_or(0)),
            };
            let mut forced: Vec<bool> = (0..grid.len())
                .map(|i| {
                    let (scope, stratum) = (i / grid.strata(), i % grid.strata());
                    let key =
                        figure_key(def.indicator, quantity, &scope_names[scope], &grid, stratum);
                    ledger.keeps_withheld(&key, values[i])
                })
                .collect();
            if def.measure == Measure::Rate && quantity == Quantity::Value {
                let bases = sums(&grid, def, &reports, |c| c.base.unwrap_or(0));
                for (i, f) in forced.iter_mut().enumerate() {
                    *f |= is_small(bases[i].saturating_sub(values[i]));
                }
            }
            for (whole, _) in SUBSETS
                .iter()
                .filter(|(_, part)| *part == (def.indicator, quantity))
            {
                let whole_def = whole.0.definition();
                let whole_grid = grid_of(whole_def);
                let whole_values = match whole.1 {
                    Quantity::Value => sums(&whole_grid, whole_def, &reports, |c| c.value),
                    Quantity::Base => {
                        sums(&whole_grid, whole_def, &reports, |c| c.base.unwrap_or(0))
                    }
                };
                for scope in 0..grid.scopes {
                    for k in 0..=AGES {
                        let i = grid.index(scope, k);
                        let rest =
                            whole_values[whole_grid.index(scope, k)].saturating_sub(values[i]);
                        forced[i] |= is_small(rest);
                    }
                }
            }
            let relations = grid.relations();
            let mut hidden: Vec<bool> = values
                .iter()
                .zip(&forced)
                .map(|(&v, &f)| f || is_small(v))
                .collect();
            complete(&values, &relations, &mut hidden);
            tables.push(Table {
                indicator: def.indicator,
                quantity,
                values,
                relations,
                hidden,
            });
        }
    }

    // The same youth counted twice are withheld together; each addition
    // may call for more complements, so until nothing moves.
    loop {
        let mut changed = false;
        for family in SAME_YOUTH {
            let members: Vec<usize> = family
                .iter()
                .filter_map(|(ind, q)| {
                    tables
                        .iter()
                        .position(|t| t.indicator == *ind && t.quantity == *q)
                })
                .collect();
            let Some(&first) = members.first() else {
                continue;
            };
            let grid = grid_of(tables[first].indicator.definition());
            let shared: Vec<usize> = grid.shared().collect();
            for &i_shared in &shared {
                let stratum = i_shared % grid.strata();
                let scope = i_shared / grid.strata();
                let any = members.iter().any(|&m| {
                    let g = grid_of(tables[m].indicator.definition());
                    tables[m].hidden[g.index(scope, stratum)]
                });
                if !any {
                    continue;
                }
                for &m in &members {
                    let g = grid_of(tables[m].indicator.definition());
                    let i = g.index(scope, stratum);
                    if !tables[m].hidden[i] {
                        tables[m].hidden[i] = true;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
        for table in &mut tables {
            complete(&table.values, &table.relations, &mut table.hidden);
        }
    }

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
