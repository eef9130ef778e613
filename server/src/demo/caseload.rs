//! The demo's caseload: besides its six hand-written families, each county
//! serves dozens of generated ones, enrolled over the last two years, so the
//! state hub has figures worth showing (with six families, every cell
//! would be suppressed). Everything is invented, from a seed per county, and
//! dated relative to today so the demo always looks current.

use super::op;
use crate::app::App;
use crate::error::ApiError;
use crate::plans::{Actor, RequestMeta};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use time::{Date, Duration};
use wrapsync_shared::ops::Op;

/// Generated families per county.
pub const FAMILIES: usize = 250;

const FIRST: &[&str] = &[
    "Ash", "Bay", "Cove", "Dale", "Eden", "Fern", "Glen", "Hale", "Isle", "Jay", "Kit", "Lane",
    "Moss", "Nell", "Onyx", "Pike", "Rue", "Sol", "Tate", "Vale", "Wren", "Zane",
];
const SYLLABLES: &[&str] = &[
    "bar", "cel", "dun", "far", "gil", "hol", "kes", "lor", "mar", "nor", "pel", "quin", "ros",
    "sel", "tor", "vin", "wyn",
];
const CANS_ITEMS: &[&str] = &[
    "ls.school_attendance",
    "ls.family_functioning",
    "bh.anxiety",
    "bh.depression",
    "bh.anger_control",
    "cg.supervision",
];
const OUT_OF_HOME: &[&str] = &["foster", "group", "residential", "psychiatric", "detention"];
const FLEX: &[&str] = &[
    "housing",
    "utilities",
    "transportation",
    "education",
    "recreation",
    "basic_needs",
    "respite",
];
const REASONS: &[&str] = &[
    "completed",
    "completed",
    "completed",
    "transitioned",
    "dropped_out",
    "moved",
    "placed",
];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn day(date: Date) -> String {
    date.to_string()
}

/// An invented surname of two syllables.
fn surname(rng: &mut StdRng) -> String {
    let word = format!("{}{}", pick(rng, SYLLABLES), pick(rng, SYLLABLES));
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or(word)
}

/// Creates the generated families of the county with seed `seed` at
/// `app`: started by `facilitator`, filled in by `supervisor` (who alone may
/// record a payment).
pub async fn seed(
    app: &App,
    facilitator: &Actor,
    supervisor: &Actor,
    seed: u64,
) -> Result<(), ApiError> {
    let mut rng = StdRng::seed_from_u64(0x5EED_0000 + seed);
    let today = time::OffsetDateTime::now_utc().date();
    for _ in 0..FAMILIES {
        let family = Family::generate(&mut rng, today);
        let view = app
            .plans
            .create(
                facilitator,
                facilitator.username.clone(),
                &format!("{} family plan", family.surname),
                Some(day(family.enrolled)),
                RequestMeta::default(),
            )
            .await?;
        let entry = app
            .plans
            .get(&view.id)
            .await?
            .ok_or_else(|| ApiError::Internal("demo plan vanished".into()))?;
        app.plans
            .apply(
                &entry,
                supervisor,
                None,
                family.ops(&mut rng, today),
                RequestMeta::default(),
            )
            .await?;
    }
    Ok(())
}

struct Family {
    surname: String,
    youth: String,
    born: Date,
    enrolled: Date,
    /// Discharge date and reason, if discharged by today.
    discharged: Option<(Date, &'static str)>,
}

impl Family {
    fn generate(rng: &mut StdRng, today: Date) -> Family {
        let surname = surname(rng);
        let youth = pick(rng, FIRST).to_string();
        let age_days = rng.random_range(4 * 365..20 * 365);
        let enrolled = today - Duration::days(rng.random_range(5..730));
        let stay = Duration::days(rng.random_range(60..560));
        let discharged = (enrolled + stay < today && rng.random_bool(0.8))
            .then(|| (enrolled + stay, pick(rng, REASONS)));
        Family {
            surname,
            youth,
            born: today - Duration::days(age_days),
            enrolled,
            discharged,
        }
    }

    /// The plan's content: team, enrollment, statuses every 90 days, CANS
    /// at intake and each reassessment, monthly meetings, the crisis plan's
    /// review and maybe flexible funds.
    fn ops(&self, rng: &mut StdRng, today: Date) -> Vec<Op> {
        let end = self.discharged.map_or(today, |(on, _)| on);
        let mut ops = vec![
            op(
                "replace",
                "/youth/name",
                json!(format!("{} {}", self.youth, self.surname)),
            ),
            op("replace", "/youth/birth_date", json!(day(self.born))),
            op(
                "add",
                "/team",
                json!({"name": format!("Caregiver {}", self.surname), "role": "caregiver", "support": "natural"}),
            ),
            op(
                "add",
                "/team",
                json!({"name": format!("{} {}", self.youth, self.surname), "role": "youth", "support": "natural"}),
            ),
        ];
        if rng.random_bool(0.6) {
            ops.push(op("add", "/team", json!({"name": format!("Neighbor of the {}s", self.surname), "role": "natural_support", "support": "informal"})));
        }
        let adopted = self.enrolled + Duration::days(rng.random_range(10..50));
        if adopted <= end {
            ops.push(op(
                "replace",
                "/enrollment/plan_adopted_on",
                json!(day(adopted)),
            ));
        }
        // Statuses and CANS every 90 days; things tend to get better.
        let out_of_home_at_intake = rng.random_bool(0.2);
        let mut ratings: Vec<i64> = CANS_ITEMS.iter().map(|_| rng.random_range(0..=3)).collect();
        let mut on = self.enrolled;
        let mut first = true;
        while on <= end {
            let better = !first && rng.random_bool(0.6);
            let living = if (first && out_of_home_at_intake) || (!first && rng.random_bool(0.08)) {
                pick(rng, OUT_OF_HOME)
            } else if rng.random_bool(0.1) {
                "kin"
            } else {
                "home"
            };
            let arrest_odds = if first { 0.2 } else { 0.07 };
            let psych_odds = if first { 0.3 } else { 0.1 };
            ops.push(op("add", "/status", json!({
                "as_of": day(on),
                "living": living,
                "school_days_missed_30d": if better { rng.random_range(0..4) } else { rng.random_range(0..12) },
                "arrests_30d": i64::from(rng.random_bool(arrest_odds)),
                "psych_admissions_180d": i64::from(rng.random_bool(psych_odds)),
                "er_visits_180d": rng.random_range(0..3),
            })));
            if !first {
                for rating in &mut ratings {
                    if rng.random_bool(0.45) {
                        *rating = (*rating - 1).max(0);
                    }
                }
            }
            let cans: serde_json::Map<String, serde_json::Value> = CANS_ITEMS
                .iter()
                .zip(&ratings)
                .map(|(item, rating)| (item.to_string(), json!(rating)))
                .collect();
            ops.push(op(
                "add",
                "/cans",
                json!({"assessed_on": day(on), "ratings": cans, "status": "final"}),
            ));
            first = false;
            on += Duration::days(90);
        }
        // Monthly meetings, most of them held.
        let mut on = self.enrolled + Duration::days(rng.random_range(3..20));
        while on <= end.min(today) {
            let status = if rng.random_bool(0.85) {
                "held"
            } else {
                "cancelled"
            };
            ops.push(op(
                "add",
                "/meetings",
                json!({"held_on": day(on), "status": status}),
            ));
            on += Duration::days(rng.random_range(24..40));
        }
        let reviewed = end - Duration::days(rng.random_range(0..150));
        if reviewed >= self.enrolled {
            ops.push(op(
                "replace",
                "/crisis_plan/reviewed_on",
                json!(day(reviewed)),
            ));
        }
        if rng.random_bool(0.45) {
            let span = (end - self.enrolled).whole_days().max(1);
            let paid = self.enrolled + Duration::days(rng.random_range(0..span));
            ops.push(op("add", "/strategies", json!({
                "description": "Flexible funds",
                "kind": "flex",
                "status": "done",
                "flex": {"category": pick(rng, FLEX), "amount_cents": rng.random_range(20..400) * 500, "status": "paid", "paid_on": day(paid)},
            })));
        }
        match self.discharged {
            Some((on, reason)) => {
                ops.push(op("replace", "/enrollment/phase", json!("closed")));
                ops.push(op("replace", "/enrollment/discharged_on", json!(day(on))));
                ops.push(op("replace", "/enrollment/discharge_reason", json!(reason)));
            }
            None => ops.push(op("replace", "/enrollment/phase", json!("implementation"))),
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_dated_sensibly_and_the_same_from_the_same_seed() {
        let today = time::macros::date!(2026 - 11 - 23);
        let mut rng = StdRng::seed_from_u64(1);
        let families: Vec<Family> = (0..200)
            .map(|_| Family::generate(&mut rng, today))
            .collect();
        for f in &families {
            assert!(f.enrolled < today && f.born < f.enrolled);
            if let Some((on, _)) = f.discharged {
                assert!(f.enrolled < on && on < today);
            }
        }
        assert!(families.iter().any(|f| f.discharged.is_some()));
        assert!(families.iter().any(|f| f.discharged.is_none()));
        let mut again = StdRng::seed_from_u64(1);
        assert_eq!(
            Family::generate(&mut again, today).surname,
            families[0].surname
        );
    }
}
