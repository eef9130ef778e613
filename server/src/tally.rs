//! Counting repeated refusals instead of recording each (sans-IO: time comes
//! in as an argument). The first `rows` refusals of a kind from a source
//! in an interval are recorded on their own; the rest of that interval are
//! only counted, and the count comes out once when the interval closes. So
//! what a refused client makes the node store or log grows with the number
//! of sources and intervals, not with the number of requests. Used for the
//! audit trail (`store::writer`) and the access log (`observe`).

use std::collections::HashMap;
use std::hash::Hash;

/// Open intervals kept before new sources share one: a client with many
/// addresses (an IPv6 prefix) costs memory only up to this.
pub const MAX_SOURCES: usize = 10_000;

/// How refusals are counted in the trail (config `refusal_interval_secs`,
/// `refusal_rows_per_interval`): the first `rows` refusals of a kind from
/// a source in `interval_secs` get their own rows, with their request ids;
/// the rest of the interval are counted in one summary row written when
/// the interval closes (the trail is append-only, so never updated in
/// place). The row's detail says `repeated N more times …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalCounting {
    pub interval_secs: u64,
    pub rows: u64,
}

impl Default for RefusalCounting {
    fn default() -> Self {
        RefusalCounting {
            interval_secs: 60,
            rows: 1,
        }
    }
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Record it on its own.
    Record,
    /// Counted: it comes out in the interval's [`Closed`] summary.
    Counted,
}

/// An interval that closed with refusals counted in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed<K> {
    pub kind: K,
    /// Refusals counted (not recorded on their own) in the interval.
    pub counted: u64,
    /// When the interval opened (its first refusal), Unix milliseconds.
    pub opened_at: i64,
    /// What the interval's first refusal was recorded with (its request id).
    pub first: Option<String>,
}

struct Window {
    opened_at: i64,
    seen: u64,
    first: Option<String>,
}

/// Open intervals by kind of refusal. `K` holds the source.
pub struct Tally<K> {
    interval_ms: i64,
    rows: u64,
    /// The kind a refusal is counted under once [`MAX_SOURCES`] are open:
    /// `K` without its source, so that kinds stay few.
    anonymous: fn(&K) -> K,
    windows: HashMap<K, Window>,
}

impl<K: Hash + Eq + Clone> Tally<K> {
    /// `rows` refusals of a kind per `interval_ms` are recorded on their
    /// own (at least one: the first always is).
    pub fn new(interval_ms: i64, rows: u64, anonymous: fn(&K) -> K) -> Self {
        Tally {
            interval_ms: interval_ms.max(1),
            rows: rows.max(1),
            anonymous,
            windows: HashMap::new(),
        }
    }

    /// Notes one refusal of `kind` at `now_ms`; `first` names it (its
    /// request id) should it open an interval.
    pub fn see(&mut self, kind: K, now_ms: i64, first: Option<&str>) -> Seen {
        let kind = if self.windows.len() >= MAX_SOURCES && !self.windows.contains_key(&kind) {
            (self.anonymous)(&kind)
        } else {
            kind
        };
        let window = self.windows.entry(kind).or_insert_with(|| Window {
            opened_at: now_ms,
            seen: 0,
            first: first.map(str::to_string),
        });
        window.seen += 1;
        if window.seen <= self.rows {
            Seen::Record
        } else {
            Seen::Counted
        }
    }

    /// Ends the intervals over by `now_ms` (every one with `all`); answers
    /// those that counted refusals.
    pub fn close(&mut self, now_ms: i64, all: bool) -> Vec<Closed<K>> {
        let interval = self.interval_ms;
        let rows = self.rows;
        let mut closed = Vec::new();
        self.windows.retain(|kind, window| {
            if !all && now_ms < window.opened_at + interval {
                return true;
            }
            if window.seen > rows {
                closed.push(Closed {
                    kind: kind.clone(),
                    counted: window.seen - rows,
                    opened_at: window.opened_at,
                    first: window.first.take(),
                });
            }
            false
        });
        closed
    }

    /// When the next interval closes, if any is open.
    pub fn next_close(&self) -> Option<i64> {
        self.windows
            .values()
            .map(|w| w.opened_at + self.interval_ms)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(rows: u64) -> Tally<(Option<u32>, &'static str)> {
        Tally::new(1000, rows, |(_, kind)| (None, kind))
    }

    #[test]
    fn the_first_of_an_interval_is_recorded_and_the_rest_counted_once() {
        let mut t = tally(1);
        assert_eq!(t.see((Some(1), "login"), 0, Some("r0")), Seen::Record);
        for at in 1..100 {
            assert_eq!(t.see((Some(1), "login"), at, Some("r")), Seen::Counted);
        }
        // Another kind, another source: their own first rows.
        assert_eq!(t.see((Some(1), "other"), 5, None), Seen::Record);
        assert_eq!(t.see((Some(2), "login"), 5, None), Seen::Record);
        assert_eq!(t.next_close(), Some(1000));
        assert!(t.close(999, false).is_empty());
        let closed = t.close(1000, false);
        assert_eq!(
            closed,
            vec![Closed {
                kind: (Some(1), "login"),
                counted: 99,
                opened_at: 0,
                first: Some("r0".into()),
            }]
        );
        assert_eq!(t.next_close(), Some(1005));
        assert!(
            t.close(1005, false).is_empty(),
            "uncounted intervals end silently"
        );
        assert_eq!(t.next_close(), None);
        assert_eq!(t.see((Some(1), "login"), 1000, None), Seen::Record);
    }

    #[test]
    fn rows_per_interval_are_recorded_before_counting() {
        let mut t = tally(3);
        let seen: Vec<Seen> = (0..5).map(|at| t.see((Some(1), "x"), at, None)).collect();
        assert_eq!(seen.iter().filter(|s| **s == Seen::Record).count(), 3);
        assert_eq!(t.close(0, true)[0].counted, 2);
    }

    #[test]
    fn sources_beyond_the_cap_share_one_interval() {
        let mut t = tally(1);
        for source in 0..MAX_SOURCES as u32 {
            t.see((Some(source), "login"), 0, None);
        }
        assert_eq!(t.see((Some(u32::MAX), "login"), 0, None), Seen::Record);
        assert_eq!(t.see((Some(u32::MAX - 1), "login"), 0, None), Seen::Counted);
        assert_eq!(t.windows.len(), MAX_SOURCES + 1);
        let closed = t.close(0, true);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].kind, (None, "login"));
    }
}
