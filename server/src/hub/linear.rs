//! Which withheld cells an attacker can still work out from the published
//! ones: a withheld cell is determined when some combination of the
//! published additive relations (total = sum of parts) isolates it. Exact
//! linear algebra over the prime field GF(2^61 − 1), so there is no
//! rounding to get wrong; relation coefficients are ±1, so a rank found
//! there is the rational rank except with negligible chance.

/// One additive relation over cell indices: `total = Σ parts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub total: usize,
    pub parts: Vec<usize>,
}

impl Relation {
    /// Every cell the relation ties together, the total first.
    pub fn members(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.total).chain(self.parts.iter().copied())
    }
}

const P: u64 = (1 << 61) - 1;

fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P {
        s - P
    } else {
        s
    }
}

fn mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    let folded = (product & u128::from(P)) + (product >> 61);
    let folded = u64::try_from(folded).unwrap_or(0);
    if folded >= P {
        folded - P
    } else {
        folded
    }
}

fn neg(a: u64) -> u64 {
    if a == 0 {
        0
    } else {
        P - a
    }
}

fn inverse(a: u64) -> u64 {
    // Fermat: a^(P-2).
    let (mut base, mut exp, mut acc) = (a, P - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    acc
}

/// The withheld cells (`hidden[i]`) whose value the published cells and
/// `relations` determine, in index order. Published cells are constants;
/// only the withheld ones are unknowns.
pub fn determined(hidden: &[bool], relations: &[Relation]) -> Vec<usize> {
    let unknowns: Vec<usize> = (0..hidden.len()).filter(|&i| hidden[i]).collect();
    if unknowns.is_empty() {
        return Vec::new();
    }
    let mut column = vec![usize::MAX; hidden.len()];
    for (c, &i) in unknowns.iter().enumerate() {
        column[i] = c;
    }
    let width = unknowns.len();
    let mut rows: Vec<Vec<u64>> = relations
        .iter()
        .filter(|r| r.members().any(|i| hidden.get(i) == Some(&true)))
        .map(|r| {
            let mut row = vec![0u64; width];
            for (k, i) in r.members().enumerate() {
                if hidden.get(i) == Some(&true) {
                    let coefficient = if k == 0 { 1 } else { P - 1 };
                    row[column[i]] = add(row[column[i]], coefficient);
                }
            }
            row
        })
        .collect();
    // Reduced row echelon form.
    let mut pivots: Vec<(usize, usize)> = Vec::new();
    let mut next = 0;
    for col in 0..width {
        let Some(found) = (next..rows.len()).find(|&r| rows[r][col] != 0) else {
            continue;
        };
        rows.swap(next, found);
        let scale = inverse(rows[next][col]);
        for v in rows[next].iter_mut() {
            *v = mul(*v, scale);
        }
        let pivot_row = rows[next].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r == next || row[col] == 0 {
                continue;
            }
            let factor = neg(row[col]);
            for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                if *p != 0 {
                    *v = add(*v, mul(factor, *p));
                }
            }
        }
        pivots.push((next, col));
        next += 1;
        if next == rows.len() {
            break;
        }
    }
    // A cell is determined when its pivot row names no other unknown.
    let mut out: Vec<usize> = pivots
        .into_iter()
        .filter(|&(r, col)| rows[r].iter().enumerate().all(|(c, &v)| c == col || v == 0))
        .map(|(_, col)| unknowns[col])
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(total: usize, parts: &[usize]) -> Relation {
        Relation {
            total,
            parts: parts.to_vec(),
        }
    }

    #[test]
    fn a_lone_unknown_is_determined_and_a_pair_is_not() {
        let r = [rel(0, &[1, 2, 3])];
        assert_eq!(determined(&[false, true, false, false], &r), vec![1]);
        assert!(determined(&[false, true, true, false], &r).is_empty());
        assert_eq!(determined(&[true, false, false, false], &r), vec![0]);
    }

    #[test]
    fn chains_of_relations_are_followed() {
        // t = a + b, a = c + d: with b and c published, hiding {a, d, t}
        // leaves t - a known and a - d known: nothing isolated.
        let r = [rel(0, &[1, 2]), rel(1, &[3, 4])];
        assert!(determined(&[true, true, false, false, true], &r).is_empty());
        // Also hiding nothing in the first relation but a: a follows from
        // it, then d from the second.
        let hidden = [false, true, false, false, true];
        assert_eq!(determined(&hidden, &r), vec![1, 4]);
    }

    #[test]
    fn field_arithmetic_inverts() {
        for a in [1u64, 2, 3, 12345, P - 1, P - 2] {
            assert_eq!(mul(a, inverse(a)), 1, "{a}");
        }
        assert_eq!(add(P - 1, 1), 0);
        assert_eq!(neg(0), 0);
    }
}
