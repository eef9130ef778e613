//! Small-cell suppression of one table of counts tied by additive
//! relations (age bands sum to the total, categories sum to the total,
//! communities sum to the state).
//!
//! Primary suppression withholds every count from 1 to
//! [`SMALL_CELL_MAX`] (zero may show) and whatever the caller forces
//! (successive releases, rates' complements). Complementary suppression then
//! withholds more until nothing withheld can be worked out:
//! - every relation has no withheld member or at least two;
//! - where a relation's total is shown, its withheld parts do not sum to a
//!   small count (1 to 10: the group they form would be revealed);
//! - no combination of relations isolates a withheld cell ([`linear`]).
//!
//! Complements are the smallest non-zero shown members, so the least
//! information is lost; ties go to the lowest index, so the result is a
//! function of the table alone.

use super::linear::{self, Relation};
use wrapsync_shared::hub::SMALL_CELL_MAX;

/// A count that must not be published: 1 to 10 people.
pub fn is_small(value: u64) -> bool {
    (1..=SMALL_CELL_MAX).contains(&value)
}

/// The cells of `values` to withhold, starting from `forced` (at least
/// those stay withheld). Monotone: a cell withheld in `forced` stays so.
pub fn suppress(values: &[u64], relations: &[Relation], forced: &[bool]) -> Vec<bool> {
    let mut hidden: Vec<bool> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| is_small(v) || forced.get(i).copied().unwrap_or(false))
        .collect();
    complete(values, relations, &mut hidden);
    hidden
}

/// Adds complements to `hidden` until every rule in the module doc holds.
pub fn complete(values: &[u64], relations: &[Relation], hidden: &mut [bool]) {
    loop {
        let mut changed = false;
        for relation in relations {
            changed |= protect(values, relation, hidden);
        }
        if changed {
            continue;
        }
        // The relations hold one by one; now chains of them. Each
        // determined cell gets a complement in one of its relations, unless
        // one chosen in this round already sits in them.
        let determined = linear::determined(hidden, relations);
        if determined.is_empty() {
            return;
        }
        let mut chosen = Vec::new();
        for cell in determined {
            let around: Vec<&Relation> = relations
                .iter()
                .filter(|r| r.members().any(|m| m == cell))
                .collect();
            if around
                .iter()
                .any(|r| r.members().any(|m| chosen.contains(&m)))
            {
                continue;
            }
            let complement = around
                .iter()
                .filter_map(|r| smallest_shown(values, r.members(), hidden))
                .min_by_key(|&m| (values[m] == 0, values[m], m))
                .or_else(|| {
                    // Every relation around it is withheld but for zeros:
                    // widen to any relation with a withheld member.
                    relations
                        .iter()
                        .filter(|r| r.members().any(|m| hidden[m]))
                        .filter_map(|r| smallest_shown(values, r.members(), hidden))
                        .min_by_key(|&m| (values[m] == 0, values[m], m))
                });
            if let Some(m) = complement {
                hidden[m] = true;
                chosen.push(m);
            }
        }
        if chosen.is_empty() {
            // Nothing left to withhold: everything already is.
            return;
        }
    }
}

/// Makes one relation safe on its own; answers whether it withheld more.
fn protect(values: &[u64], relation: &Relation, hidden: &mut [bool]) -> bool {
    let withheld = relation.members().filter(|&m| hidden[m]).count();
    if withheld == 1 {
        if let Some(m) = smallest_shown(values, relation.members(), hidden) {
            hidden[m] = true;
            return true;
        }
        return false;
    }
    if withheld >= 2 && !hidden[relation.total] {
        let sum: u64 = relation
            .parts
            .iter()
            .filter(|&&p| hidden[p])
            .map(|&p| values[p])
            .sum();
        if is_small(sum) {
            let part = smallest_shown(values, relation.parts.iter().copied(), hidden);
            hidden[part.unwrap_or(relation.total)] = true;
            return true;
        }
    }
    false
}

/// The shown member to withhold next: the smallest non-zero one, else the
/// smallest (a zero); ties to the lowest index.
fn smallest_shown(
    values: &[u64],
    members: impl Iterator<Item = usize>,
    hidden: &[bool],
) -> Option<usize> {
    members
        .filter(|&m| !hidden[m])
        .min_by_key(|&m| (values[m] == 0, values[m], m))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny deterministic generator (xorshift), so attacker tests need
    /// no extra crate and replay by seed.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// The attacker: what a reader of the published table can work out.
    /// Answers a description of the first leak found.
    pub(crate) fn leak(values: &[u64], relations: &[Relation], hidden: &[bool]) -> Option<String> {
        if let Some(cell) = linear::determined(hidden, relations).first() {
            return Some(format!(
                "cell {cell} ({}) follows from the relations",
                values[*cell]
            ));
        }
        for r in relations {
            let withheld: Vec<usize> = r.members().filter(|&m| hidden[m]).collect();
            if withheld.len() == 1 {
                return Some(format!("relation {r:?} has one unknown"));
            }
            if !hidden[r.total] && !withheld.is_empty() {
                let shown: u64 = r
                    .parts
                    .iter()
                    .filter(|&&p| !hidden[p])
                    .map(|&p| values[p])
                    .sum();
                // The sum of the withheld parts, from what is published,
                // bounds each of them.
                let bound = values[r.total].saturating_sub(shown);
                if is_small(bound) {
                    return Some(format!("relation {r:?}: withheld parts sum to {bound}"));
                }
            }
        }
        None
    }

    /// A random table with a total, `rows` × `cols` cells and both margins:
    /// like a community × age band table with its state row.
    pub(crate) fn random_grid(
        rng: &mut Rng,
        rows: usize,
        cols: usize,
    ) -> (Vec<u64>, Vec<Relation>) {
        // Layout: (rows + 1) × (cols + 1), row 0 and column 0 the margins.
        let width = cols + 1;
        let mut values = vec![0u64; (rows + 1) * width];
        for r in 1..=rows {
            for c in 1..=cols {
                values[r * width + c] = match rng.below(4) {
                    0 => 0,
                    1 => 1 + rng.below(10),
                    _ => rng.below(60),
                };
            }
        }
        for r in 1..=rows {
            values[r * width] = (1..=cols).map(|c| values[r * width + c]).sum();
        }
        for c in 0..=cols {
            values[c] = (1..=rows).map(|r| values[r * width + c]).sum();
        }
        let mut relations = Vec::new();
        for r in 0..=rows {
            relations.push(Relation {
                total: r * width,
                parts: (1..=cols).map(|c| r * width + c).collect(),
            });
        }
        for c in 0..=cols {
            relations.push(Relation {
                total: c,
                parts: (1..=rows).map(|r| r * width + c).collect(),
            });
        }
        (values, relations)
    }

    #[test]
    fn a_lone_small_cell_gets_the_smallest_complement() {
        // 40 = 5 + 12 + 23: 5 is small, 12 is the smallest complement.
        let values = [40, 5, 12, 23];
        let relations = [Relation {
            total: 0,
            parts: vec![1, 2, 3],
        }];
        assert_eq!(
            suppress(&values, &relations, &[]),
            vec![false, true, true, false]
        );
        // Zeros show and are never chosen while a non-zero cell is left.
        let values = [30, 0, 4, 26];
        assert_eq!(
            suppress(&values, &relations, &[]),
            vec![false, false, true, true]
        );
    }

    #[test]
    fn withheld_parts_never_sum_to_a_small_group() {
        // 3 and 4 are both small, but together they are 7 people: a third
        // cell must go.
        let values = [60, 3, 4, 20, 33];
        let relations = [Relation {
            total: 0,
            parts: vec![1, 2, 3, 4],
        }];
        let hidden = suppress(&values, &relations, &[]);
        assert_eq!(hidden, vec![false, true, true, true, false]);
        assert_eq!(leak(&values, &relations, &hidden), None);
    }

    #[test]
    fn the_attacker_recovers_nothing_from_random_tables() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let rows = 1 + rng.below(6) as usize;
            let cols = 1 + rng.below(6) as usize;
            let (values, relations) = random_grid(&mut rng, rows, cols);
            let hidden = suppress(&values, &relations, &[]);
            for (i, &v) in values.iter().enumerate() {
                assert!(
                    !is_small(v) || hidden[i],
                    "seed {seed}: small cell {i} shown"
                );
            }
            if let Some(leak) = leak(&values, &relations, &hidden) {
                panic!("seed {seed}: {leak}\nvalues {values:?}\nhidden {hidden:?}");
            }
        }
    }
}
