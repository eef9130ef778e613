//! A release as CSV: one row per figure, the same numbers and the same
//! empty cells as the JSON (a withheld number is an empty field and
//! `suppressed` is `true`).

use serde::Serialize;
use std::fmt::Write;
use wrapsync_shared::hub::{Breakdown, Figure, Publication};

/// The header row.
pub const HEADER: &str =
    "period,indicator,measure,scope,breakdown,key,value,base,rate,median,per_youth,suppressed,unstable";

fn spelled<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn field<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Renders every figure of `publication`. Every field is a number, a
/// vocabulary value or a node id (letters, digits, `-`, `_`), so none
/// needs quoting.
pub fn render(publication: &Publication) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for indicator in &publication.indicators {
        let prefix = format!(
            "{},{},{}",
            publication.period,
            spelled(&indicator.indicator),
            spelled(&indicator.measure)
        );
        let places = std::iter::once(("statewide", &indicator.statewide)).chain(
            indicator
                .communities
                .iter()
                .map(|c| (c.node.as_str(), &c.figures)),
        );
        for (scope, breakdown) in places {
            rows(&mut out, &prefix, scope, breakdown);
        }
    }
    out
}

fn rows(out: &mut String, prefix: &str, scope: &str, breakdown: &Breakdown) {
    let mut row = |kind: &str, key: String, f: &Figure| {
        let _ = writeln!(
            out,
            "{prefix},{scope},{kind},{key},{},{},{},{},{},{},{}",
            field(f.value),
            field(f.base),
            field(f.rate),
            field(f.median.map(|m| spelled(&m))),
            field(f.per_youth),
            f.suppressed,
            f.unstable
        );
    };
    row("total", String::new(), &breakdown.total);
    for a in &breakdown.by_age_band {
        row("age_band", spelled(&a.age_band), &a.figure);
    }
    for c in &breakdown.by_category {
        row("category", spelled(&c.category), &c.figure);
    }
}
