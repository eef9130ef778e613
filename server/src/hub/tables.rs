//! The tables a release is made of, and what each withholds.
//!
//! Each indicator's numbers (and, for rates and amounts, its bases) form a
//! table over a grid of places (the state, each community) and strata
//! (total, age bands, categories), tied by the relations a reader can add
//! up: age bands → total, categories → total, communities → state.
//! [`withhold`] applies the suppression rules of `hub::publish` to all of
//! them at once, since some count the same youth.

use super::ledger::Ledger;
use super::linear::Relation;
use super::suppress::{complete, is_small};
use serde::Serialize;
use wrapsync_shared::indicators::{
    AgeBand, Category, Cell, Definition, Indicator, Measure, Report, DEFINITIONS,
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
pub(super) type Figures = (Indicator, Quantity);

/// Numbers that count the same youth under two indicators: withheld
/// together wherever both have them (total and age bands).
pub(super) const SAME_YOUTH: &[&[Figures]] = &[
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
pub(super) const SUBSETS: &[(Figures, Figures)] = &[
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
pub(super) struct Grid {
    pub(super) scopes: usize,
    pub(super) categories: &'static [Category],
}

pub(super) const AGES: usize = AgeBand::ALL.len();

impl Grid {
    pub(super) fn strata(&self) -> usize {
        1 + AGES + self.categories.len()
    }
    pub(super) fn len(&self) -> usize {
        self.scopes * self.strata()
    }
    pub(super) fn index(&self, scope: usize, stratum: usize) -> usize {
        scope * self.strata() + stratum
    }
    /// Strata every table of the same youth shares: total and age bands.
    pub(super) fn shared(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.scopes).flat_map(move |s| (0..=AGES).map(move |k| self.index(s, k)))
    }
    pub(super) fn relations(&self) -> Vec<Relation> {
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

pub(super) fn age_index(band: AgeBand) -> usize {
    AgeBand::ALL
        .iter()
        .position(|b| *b == band)
        .unwrap_or(AGES - 1)
}

/// A vocabulary value as spelled on the wire.
pub(super) fn spelled<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// One table: an indicator's values or bases at every grid position.
pub(super) struct Table {
    pub(super) indicator: Indicator,
    pub(super) quantity: Quantity,
    pub(super) values: Vec<u64>,
    pub(super) relations: Vec<Relation>,
    pub(super) hidden: Vec<bool>,
}

pub(super) fn sums(
    grid: &Grid,
    def: &Definition,
    reports: &[(String, Report)],
    pick: fn(&Cell) -> u64,
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

pub(super) fn figure_key(
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

/// Every table of the release with what it withholds: primary
/// suppression, what is forced (earlier releases, small complements of
/// rates and of larger groups), complements, and the same youth withheld
/// together under every indicator that counts them.
pub(super) fn withhold(
    reports: &[(String, Report)],
    scope_names: &[String],
    ledger: &Ledger,
) -> Vec<Table> {
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
                Quantity::Value => sums(&grid, def, reports, |c| c.value),
                Quantity::Base => sums(&grid, def, reports, |c| c.base.unwrap_or(0)),
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
                let bases = sums(&grid, def, reports, |c| c.base.unwrap_or(0));
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
                    Quantity::Value => sums(&whole_grid, whole_def, reports, |c| c.value),
                    Quantity::Base => {
                        sums(&whole_grid, whole_def, reports, |c| c.base.unwrap_or(0))
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

    tables
}
