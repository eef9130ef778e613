//! Successive releases of a period: every number each release published
//! or withheld, so a later release can be checked against them. Without
//! it, two releases could be subtracted to find a small group (a figure
//! shown as 50, then as 53), or a later release could show what an
//! earlier one withheld.

use super::suppress::is_small;
use std::collections::HashMap;
use wrapsync_shared::hub::SMALL_CELL_MAX;

/// What earlier releases of a period published, and what they withheld:
/// figure key → values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub published: HashMap<String, Vec<u64>>,
    pub withheld: HashMap<String, Vec<u64>>,
}

impl Ledger {
    pub fn from_entries(entries: impl IntoIterator<Item = LedgerEntry>) -> Ledger {
        let mut ledger = Ledger::default();
        ledger.record(entries);
        ledger
    }

    pub fn record(&mut self, entries: impl IntoIterator<Item = LedgerEntry>) {
        for entry in entries {
            let map = if entry.withheld {
                &mut self.withheld
            } else {
                &mut self.published
            };
            let values = map.entry(entry.figure).or_default();
            if !values.contains(&entry.value) {
                values.push(entry.value);
            }
        }
    }

    /// Whether `value` for `figure` must stay withheld: it differs by a
    /// small count from a value an earlier release published (the
    /// difference would reveal a small group), or it is within a small
    /// count of a value an earlier release withheld (showing it now would
    /// give that value away, or nearly).
    pub fn keeps_withheld(&self, figure: &str, value: u64) -> bool {
        self.published
            .get(figure)
            .is_some_and(|old| old.iter().any(|&w| is_small(w.abs_diff(value))))
            || self
                .withheld
                .get(figure)
                .is_some_and(|old| old.iter().any(|&w| w.abs_diff(value) <= SMALL_CELL_MAX))
    }
}

/// One number of a release, published or withheld: recorded so later
/// releases of the period are checked against it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LedgerEntry {
    /// `indicator|scope|stratum|quantity`, scope `*` for the state: node
    /// ids and vocabulary values only.
    pub figure: String,
    pub value: u64,
    pub withheld: bool,
}
