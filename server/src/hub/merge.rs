//! The hub's state as a CRDT: per (node, period, vocabulary), the report
//! that is greatest by (version, canonical encoding). A maximum in a total
//! order is commutative, associative and idempotent, so resent, reordered
//! and replayed submissions all leave the same state. Sans-IO: storage
//! (`hub::store`) asks [`decide`] what to keep.

use std::collections::BTreeMap;
use wrapsync_shared::hub::SubmissionOutcome;
use wrapsync_shared::indicators::{Period, Report};

/// The report in canonical form: cells in their natural order. Two reports
/// with the same cells in another order are the same report.
pub fn canonical(report: &Report) -> Report {
    let mut cells = report.cells.clone();
    cells.sort_unstable();
    Report {
        cells,
        ..report.clone()
    }
}

/// The bytes that break ties between reports of the same version.
pub fn encoding(report: &Report) -> Vec<u8> {
    serde_json::to_vec(&canonical(report)).unwrap_or_default()
}

/// What the hub does with `incoming` when it keeps `kept` (if any) for the
/// same node, period and vocabulary.
pub fn decide(kept: Option<&Report>, incoming: &Report) -> SubmissionOutcome {
    let Some(kept) = kept else {
        return SubmissionOutcome::Stored;
    };
    let order = kept.version.cmp(&incoming.version).then_with(|| {
        // The usual tie is a resend: the same cells, found without
        // encoding either report.
        let (kept, incoming) = (canonical(kept), canonical(incoming));
        if kept == incoming {
            std::cmp::Ordering::Equal
        } else {
            encoding(&kept).cmp(&encoding(&incoming))
        }
    });
    match order {
        std::cmp::Ordering::Less => SubmissionOutcome::Stored,
        std::cmp::Ordering::Equal => SubmissionOutcome::Unchanged,
        std::cmp::Ordering::Greater => SubmissionOutcome::Superseded,
    }
}

/// Which reports are kept: the key of the merge.
pub type ReportKey = (String, Period, u32);

/// The merged state in memory: what the store keeps, for tests and the
/// benchmark.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HubState {
    pub reports: BTreeMap<ReportKey, Report>,
}

impl HubState {
    /// Merges one node's (already validated) report.
    pub fn merge(&mut self, node: &str, report: &Report) -> SubmissionOutcome {
        let key = (node.to_string(), report.period, report.vocabulary);
        let outcome = decide(self.reports.get(&key), report);
        if outcome == SubmissionOutcome::Stored {
            self.reports.insert(key, canonical(report));
        }
        outcome
    }

    /// The kept reports of one period and vocabulary, by node id.
    pub fn period(&self, period: Period, vocabulary: u32) -> Vec<(String, Report)> {
        self.reports
            .iter()
            .filter(|((_, p, v), _)| *p == period && *v == vocabulary)
            .map(|((node, _, _), report)| (node.clone(), report.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wrapsync_shared::indicators::{AgeBand, Cell, Indicator, VOCABULARY_VERSION};

    fn report(period: Period, version: u64, served: u64) -> Report {
        Report {
            vocabulary: VOCABULARY_VERSION,
            period,
            version,
            cells: vec![
                Cell {
                    indicator: Indicator::YouthServed,
                    age_band: AgeBand::Age6To11,
                    category: None,
                    value: served,
                    base: None,
                },
                Cell {
                    indicator: Indicator::NewEnrollments,
                    age_band: AgeBand::Age12To17,
                    category: None,
                    value: 4,
                    base: None,
                },
            ],
        }
    }

    /// Every ordering of `items`, by Heap's algorithm.
    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        fn heap<T: Clone>(k: usize, items: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
            if k <= 1 {
                out.push(items.clone());
                return;
            }
            for i in 0..k {
                heap(k - 1, items, out);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                items.swap(j, k - 1);
            }
        }
        let mut out = Vec::new();
        heap(items.len(), &mut items.to_vec(), &mut out);
        out
    }

    fn submissions() -> Vec<(&'static str, Report)> {
        let oct = Period::new(2026, 10).unwrap_or_else(|| panic!("period"));
        let nov = oct.next();
        let mut reordered = report(oct, 2, 30);
        reordered.cells.reverse();
        vec![
            ("county-a", report(oct, 1, 20)),
            ("county-a", report(oct, 2, 30)),
            // Same version, other content: the tie is broken by encoding.
            ("county-a", report(oct, 2, 31)),
            // The same report with its cells in another order.
            ("county-a", reordered),
            ("county-b", report(oct, 1, 12)),
            ("county-a", report(nov, 1, 25)),
        ]
    }

    fn merged(order: &[(&str, Report)]) -> HubState {
        let mut state = HubState::default();
        for (node, report) in order {
            state.merge(node, report);
        }
        state
    }

    #[test]
    fn every_order_of_the_submissions_leaves_the_same_state() {
        let all = submissions();
        let expected = merged(&all);
        let orders = permutations(&all);
        assert_eq!(orders.len(), 720);
        for order in orders {
            assert_eq!(merged(&order), expected, "{order:?}");
        }
        let oct = Period::new(2026, 10).unwrap_or_else(|| panic!("period"));
        let kept = &expected.reports[&("county-a".to_string(), oct, VOCABULARY_VERSION)];
        assert_eq!((kept.version, kept.cells.len()), (2, 2));
        assert!(kept.cells.iter().any(|c| c.value == 31));
    }

    #[test]
    fn duplicates_and_replays_change_nothing() {
        let all = submissions();
        let expected = merged(&all);
        // Each submission sent up to three times, in a scrambled order,
        // with the whole sequence replayed at the end.
        let mut seed = 0x5EED_u64;
        for _ in 0..200 {
            let mut sent = Vec::new();
            for s in &all {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                for _ in 0..=(seed >> 62) % 3 {
                    sent.push(s.clone());
                }
            }
            for i in (1..sent.len()).rev() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                sent.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let mut state = merged(&sent);
            assert_eq!(state, expected);
            for (node, report) in &sent {
                let outcome = state.merge(node, report);
                assert_ne!(
                    outcome,
                    SubmissionOutcome::Stored,
                    "a replay stored something"
                );
            }
            assert_eq!(state, expected);
        }
    }

    #[test]
    fn merging_states_is_associative() {
        // Merge two halves separately, then one into the other, either way.
        let all = submissions();
        let expected = merged(&all);
        for split in 0..=all.len() {
            let (left, right) = all.split_at(split);
            for (first, second) in [(left, right), (right, left)] {
                let mut state = merged(first);
                for (key, report) in merged(second).reports {
                    state.merge(&key.0, &report);
                }
                assert_eq!(state, expected, "split at {split}");
            }
        }
    }

    #[test]
    fn outcomes_say_what_happened() {
        let oct = Period::new(2026, 10).unwrap_or_else(|| panic!("period"));
        let mut state = HubState::default();
        assert_eq!(
            state.merge("a", &report(oct, 1, 20)),
            SubmissionOutcome::Stored
        );
        assert_eq!(
            state.merge("a", &report(oct, 1, 20)),
            SubmissionOutcome::Unchanged
        );
        assert_eq!(
            state.merge("a", &report(oct, 3, 20)),
            SubmissionOutcome::Stored
        );
        assert_eq!(
            state.merge("a", &report(oct, 2, 99)),
            SubmissionOutcome::Superseded
        );
    }
}
