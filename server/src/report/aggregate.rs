//! From plan documents (as the node renders them to JSON) to the node's
//! finest cells for one period: plain functions, no I/O, no clock.
//!
//! Each plan is one youth. A plan is read once into [`Youth`] (the few
//! dates, codes and numbers the indicators need; nothing that names
//! anyone), then counted into one [`Tally`] per period, so a pass over the
//! node's plans can fill this month's and last month's reports together.
//!
//! Reading never fails and never panics: a field that is missing, of the
//! wrong type, or a date that does not parse is as if it were not there;
//! withdrawn status snapshots, draft or withdrawn CANS and meetings not
//! held are left out. What each indicator counts is written in
//! `wrapsync_shared::indicators::DEFINITIONS`; this file follows it.

use crate::privacy::Bounds;
use serde_json::Value;
use std::collections::BTreeMap;
use time::{Date, Duration};
use wrapsync_shared::indicators::{AgeBand, Category, Cell, Indicator, Measure, Period};

/// Window of "reviewed within 90 days": the day itself and the 89 before.
const CRISIS_REVIEW_DAYS: i64 = 90;
/// Window of "met within 30 days": the day itself and the 29 before.
const MEETING_DAYS: i64 = 30;
/// Days after enrollment by which a plan is to be adopted.
const ADOPTION_DAYS: i64 = 30;

/// Living situations that place a youth out of home.
const OUT_OF_HOME: &[&str] = &["foster", "group", "residential", "detention", "psychiatric"];

/// One recorded status snapshot, reduced to what the indicators read.
#[derive(Debug, Clone, PartialEq)]
struct Status {
    as_of: Date,
    living: Option<String>,
    school_days_missed: Option<i64>,
    arrests: Option<i64>,
    psych_admissions: Option<i64>,
}

/// One final CANS: its date and its ratings by item code.
#[derive(Debug, Clone, PartialEq)]
struct Cans {
    assessed_on: Date,
    ratings: BTreeMap<String, i64>,
}

/// A flexible-funds payment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Payment {
    paid_on: Date,
    category: Category,
    cents: u64,
}

/// What the indicators need of one plan: dates, fixed codes and numbers.
/// Kept only while a report is made; never leaves the node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Youth {
    birth_date: Option<Date>,
    /// Neither date when the discharge comes before the enrollment: the
    /// dates contradict each other, and the plan counts nowhere but in
    /// flexible funds.
    enrolled_on: Option<Date>,
    discharged_on: Option<Date>,
    discharge_reason: Option<Category>,
    plan_adopted_on: Option<Date>,
    /// Recorded snapshots, by date (creation order among the same date).
    statuses: Vec<Status>,
    /// Final assessments, by date.
    cans: Vec<Cans>,
    natural_support: bool,
    payments: Vec<Payment>,
    crisis_reviewed_on: Option<Date>,
    meetings_held: Vec<Date>,
}

/// `YYYY-MM-DD`, a real date; anything else is no date.
fn date(value: &Value) -> Option<Date> {
    let text = value.as_str()?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    (text.len() == 10 && text.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| Date::parse(text, format).ok())
        .flatten()
}

/// The items of a collection (rendered as an array; anything else: none).
fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// Whether an item's status is `wanted`; a missing one is `default`, the
/// schema's first value, which the plan operations set when none is given.
fn status_is(item: &Value, default: &str, wanted: &str) -> bool {
    match &item["status"] {
        Value::Null => default == wanted,
        Value::String(status) => status == wanted,
        _ => false,
    }
}

impl Youth {
    /// Reads a rendered plan (`plans::view`, `wrapsync_shared::plan::render`).
    pub fn from_plan(plan: &Value) -> Youth {
        let enrollment = &plan["enrollment"];
        let (enrolled_on, discharged_on) = match (
            date(&enrollment["enrolled_on"]),
            date(&enrollment["discharged_on"]),
        ) {
            (Some(enrolled), Some(discharged)) if discharged < enrolled => (None, None),
            dates => dates,
        };
        let mut statuses: Vec<Status> = items(&plan["status"])
            .filter(|s| status_is(s, "recorded", "recorded"))
            .filter_map(|s| {
                Some(Status {
                    as_of: date(&s["as_of"])?,
                    living: s["living"].as_str().map(str::to_string),
                    school_days_missed: s["school_days_missed_30d"].as_i64(),
                    arrests: s["arrests_30d"].as_i64(),
                    psych_admissions: s["psych_admissions_180d"].as_i64(),
                })
            })
            .collect();
        statuses.sort_by_key(|s| s.as_of);
        let mut cans: Vec<Cans> = items(&plan["cans"])
            .filter(|c| status_is(c, "final", "final"))
            .filter_map(|c| {
                let ratings = c["ratings"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(code, rating)| Some((code.clone(), rating.as_i64()?)))
                    .collect();
                Some(Cans {
                    assessed_on: date(&c["assessed_on"])?,
                    ratings,
                })
            })
            .collect();
        cans.sort_by_key(|c| c.assessed_on);
        let natural_support = items(&plan["team"])
            .filter(|m| status_is(m, "active", "active"))
            // The family itself is not its own support (the plan marks
            // caregivers and the youth `natural` by default).
            .filter(|m| m["role"] != "caregiver" && m["role"] != "youth")
            .any(|m| {
                m["role"] == "natural_support"
                    || m["support"] == "informal"
                    || m["support"] == "natural"
            });
        let payments = items(&plan["strategies"])
            .map(|s| &s["flex"])
            .filter(|flex| status_is(flex, "requested", "paid"))
            .filter_map(|flex| {
                Some(Payment {
                    paid_on: date(&flex["paid_on"])?,
                    category: flex["category"]
                        .as_str()
                        .and_then(Category::from_schema)
                        .filter(|c| wrapsync_shared::indicators::FLEX_CATEGORIES.contains(c))
                        .unwrap_or(Category::Other),
                    cents: flex["amount_cents"].as_u64()?,
                })
            })
            .collect();
        let meetings_held = items(&plan["meetings"])
            .filter(|m| status_is(m, "scheduled", "held"))
            .filter_map(|m| date(&m["held_on"]))
            .collect();
        Youth {
            birth_date: date(&plan["youth"]["birth_date"]),
            enrolled_on,
            discharged_on,
            discharge_reason: enrollment["discharge_reason"]
                .as_str()
                .and_then(Category::from_schema)
                .filter(|c| wrapsync_shared::indicators::DISCHARGE_CATEGORIES.contains(c)),
            plan_adopted_on: date(&enrollment["plan_adopted_on"]),
            statuses,
            cans,
            natural_support,
            payments,
            crisis_reviewed_on: date(&plan["crisis_plan"]["reviewed_on"]),
            meetings_held,
        }
    }

    /// Full years at `day`; `None` without a birth date.
    fn age_on(&self, day: Date) -> Option<i32> {
        let birth = self.birth_date?;
        let before_birthday = (day.month(), day.day()) < (birth.month(), birth.day());
        Some(day.year() - birth.year() - i32::from(before_birthday))
    }

    /// Enrolled on or before the last day, not discharged before the first.
    fn served(&self, period: Period) -> bool {
        self.enrolled_on.is_some_and(|e| e <= period.last_day())
            && self.discharged_on.is_none_or(|d| d >= period.first_day())
    }

    /// Enrolled on or before the last day, not discharged on or before it.
    fn active_at_end(&self, period: Period) -> bool {
        let last = period.last_day();
        self.enrolled_on.is_some_and(|e| e <= last) && self.discharged_on.is_none_or(|d| d > last)
    }

    /// Enrollment and discharge dates, if the discharge falls in the period.
    fn discharged_in(&self, period: Period) -> Option<(Date, Date)> {
        let discharged = self.discharged_on.filter(|d| in_period(*d, period))?;
        Some((self.enrolled_on?, discharged))
    }

    /// Recorded snapshots dated by `day`.
    fn statuses_by(&self, day: Date) -> &[Status] {
        let n = self.statuses.partition_point(|s| s.as_of <= day);
        &self.statuses[..n]
    }
}

fn in_period(day: Date, period: Period) -> bool {
    (period.first_day()..=period.last_day()).contains(&day)
}

/// `days` days ending on `last` (both ends included).
fn within(day: Date, last: Date, days: i64) -> bool {
    let first = last
        .checked_sub(Duration::days(days - 1))
        .unwrap_or(Date::MIN);
    (first..=last).contains(&day)
}

/// One period's cells as they fill: `(value, base)` per indicator, age
/// band and category.
#[derive(Debug, Clone)]
pub struct Tally {
    period: Period,
    /// What one youth may add, when privacy is on (the noise is scaled to
    /// it); `None`: every item and cent counts.
    bounds: Option<Bounds>,
    cells: BTreeMap<(Indicator, AgeBand, Option<Category>), (u64, u64)>,
}

impl Tally {
    /// Exact counts: every actionable item and every cent paid.
    pub fn new(period: Period) -> Tally {
        Tally {
            period,
            bounds: None,
            cells: BTreeMap::new(),
        }
    }

    /// Counts for a differentially private release: one youth adds at most
    /// `bounds.cans_items_per_youth` CANS items (value and base) and
    /// `bounds.flex_cents_per_youth` cents over all categories, so what one
    /// youth can change is what `privacy::Sensitivity` says.
    pub fn bounded(period: Period, bounds: Bounds) -> Tally {
        Tally {
            bounds: Some(bounds),
            ..Tally::new(period)
        }
    }

    pub fn period(&self) -> Period {
        self.period
    }

    fn count(&mut self, indicator: Indicator, band: AgeBand, category: Option<Category>) {
        self.add_to(indicator, band, category, 1, 0);
    }

    /// One more youth (or item) in the base, and in the value if `hit`.
    fn rate(&mut self, indicator: Indicator, band: AgeBand, hit: bool) {
        self.add_to(indicator, band, None, u64::from(hit), 1);
    }

    fn add_to(
        &mut self,
        indicator: Indicator,
        band: AgeBand,
        category: Option<Category>,
        value: u64,
        base: u64,
    ) {
        let cell = self.cells.entry((indicator, band, category)).or_default();
        cell.0 = cell.0.saturating_add(value);
        cell.1 = cell.1.saturating_add(base);
    }

    /// Counts one youth into every cell they belong to, once each.
    pub fn add(&mut self, youth: &Youth) {
        let period = self.period;
        let last = period.last_day();
        let band = AgeBand::of_age(youth.age_on(last));
        if youth.served(period) {
            self.count(Indicator::YouthServed, band, None);
            self.rate(Indicator::NaturalSupport, band, youth.natural_support);
            self.served_statuses(youth, youth.statuses_by(last), band);
        }
        if youth.enrolled_on.is_some_and(|e| in_period(e, period)) {
            self.count(Indicator::NewEnrollments, band, None);
        }
        if let Some(enrolled) = youth.enrolled_on {
            let deadline = enrolled
                .checked_add(Duration::days(ADOPTION_DAYS))
                .unwrap_or(Date::MAX);
            let still_enrolled = youth.discharged_on.is_none_or(|d| d >= deadline);
            if in_period(deadline, period) && still_enrolled {
                let adopted = youth.plan_adopted_on.is_some_and(|a| a <= deadline);
                self.rate(Indicator::PlanAdoptedWithin30Days, band, adopted);
            }
        }
        if let Some((enrolled, discharged)) = youth.discharged_in(period) {
            let days = (discharged - enrolled).whole_days();
            self.count(
                Indicator::DaysInService,
                band,
                Some(Category::days_band(days)),
            );
            let reason = youth.discharge_reason.unwrap_or(Category::Other);
            self.count(Indicator::DischargeReason, band, Some(reason));
            if let Some(last_status) = youth.statuses_by(discharged).last() {
                if let Some(living) = &last_status.living {
                    self.rate(Indicator::HomeAtDischarge, band, living == "home");
                }
            }
        }
        if youth.active_at_end(period) {
            let reviewed = youth
                .crisis_reviewed_on
                .is_some_and(|r| within(r, last, CRISIS_REVIEW_DAYS));
            self.rate(Indicator::CrisisPlanReviewed, band, reviewed);
            let met = youth
                .meetings_held
                .iter()
                .any(|m| within(*m, last, MEETING_DAYS));
            self.rate(Indicator::TeamMet, band, met);
        }
        self.cans(youth, band);
        self.payments(youth, band);
    }

    /// The indicators read from status snapshots, for a youth served.
    fn served_statuses(&mut self, youth: &Youth, statuses: &[Status], band: AgeBand) {
        let last = self.period.last_day();
        let enrolled = youth.enrolled_on.unwrap_or(Date::MIN);
        let end = youth.discharged_on.map_or(last, |d| d.min(last));
        let during: Vec<&str> = statuses
            .iter()
            .filter(|s| (enrolled..=end).contains(&s.as_of))
            .filter_map(|s| s.living.as_deref())
            .collect();
        if !during.is_empty() {
            let placed = during.iter().any(|l| OUT_OF_HOME.contains(l));
            self.rate(Indicator::OutOfHomePlacement, band, placed);
        }
        let Some(intake) = statuses.first() else {
            return;
        };
        if let Some(n) = intake.psych_admissions {
            self.rate(Indicator::PsychAdmissionAtIntake, band, n > 0);
        }
        if let Some(n) = intake.arrests {
            self.rate(Indicator::ArrestAtIntake, band, n > 0);
        }
        let latest = statuses.last().unwrap_or(intake);
        if let Some(missed) = latest.school_days_missed {
            self.rate(Indicator::RegularSchoolAttendance, band, missed <= 2);
        }
        if statuses.len() > 1 {
            if let Some(n) = latest.psych_admissions {
                self.rate(Indicator::PsychAdmissionLatest, band, n > 0);
            }
            if let Some(n) = latest.arrests {
                self.rate(Indicator::ArrestLatest, band, n > 0);
            }
        }
    }

    /// Items actionable at the first final CANS, and of those the ones
    /// resolved at the youth's last reassessment in the period.
    fn cans(&mut self, youth: &Youth, band: AgeBand) {
        let Some((first, later)) = youth.cans.split_first() else {
            return;
        };
        let Some(reassessment) = later
            .iter()
            .rev()
            .find(|c| in_period(c.assessed_on, self.period))
        else {
            return;
        };
        // Bounded: the first items by code, the same ones at every
        // reassessment, so the rate stays the rate of a fixed set.
        let most = self.bounds.map_or(usize::MAX, |b| {
            usize::try_from(b.cans_items_per_youth).unwrap_or(usize::MAX)
        });
        let (mut actionable, mut resolved) = (0u64, 0u64);
        for (code, _) in first
            .ratings
            .iter()
            .filter(|(_, rating)| (2..=3).contains(*rating))
            .take(most)
        {
            actionable += 1;
            if reassessment
                .ratings
                .get(code)
                .is_some_and(|r| (0..=1).contains(r))
            {
                resolved += 1;
            }
        }
        if actionable > 0 {
            self.add_to(
                Indicator::CansNeedsResolved,
                band,
                None,
                resolved,
                actionable,
            );
        }
    }

    /// Cents paid in the period by category; the youth once per category.
    fn payments(&mut self, youth: &Youth, band: AgeBand) {
        let mut by_category: BTreeMap<Category, u64> = BTreeMap::new();
        for payment in &youth.payments {
            if in_period(payment.paid_on, self.period) {
                let cents = by_category.entry(payment.category).or_default();
                *cents = cents.saturating_add(payment.cents);
            }
        }
        if let Some(bounds) = self.bounds {
            clip(&mut by_category, bounds.flex_cents_per_youth);
        }
        for (category, cents) in by_category {
            self.add_to(Indicator::FlexFunds, band, Some(category), cents, 1);
        }
    }

    /// The cells that hold anything, in a stable order; counts carry no
    /// base, rates and amounts do (as `Report::validate` wants).
    pub fn cells(&self) -> Vec<Cell> {
        self.cells
            .iter()
            .filter(|(_, (value, base))| *value > 0 || *base > 0)
            .map(|(&(indicator, age_band, category), &(value, base))| {
                let measure = indicator.definition().measure;
                Cell {
                    indicator,
                    age_band,
                    category,
                    value,
                    base: matches!(measure, Measure::Rate | Measure::Amount).then_some(base),
                }
            })
            .collect()
    }
}

/// Scales one youth's cents by category down, in proportion, so they add
/// up to at most `most` (rounded down: never over): the mix of categories
/// stays what was paid.
fn clip(by_category: &mut BTreeMap<Category, u64>, most: u64) {
    let total: u128 = by_category.values().map(|c| u128::from(*c)).sum();
    if total <= u128::from(most) {
        return;
    }
    for cents in by_category.values_mut() {
        let scaled = u128::from(*cents) * u128::from(most) / total;
        *cents = u64::try_from(scaled).unwrap_or(most);
    }
}

/// The node's finest cells for `period` from its plans (rendered JSON),
/// each plan counted as one youth, once per cell.
pub fn aggregate<'a>(plans: impl IntoIterator<Item = &'a Value>, period: Period) -> Vec<Cell> {
    let mut tally = Tally::new(period);
    for plan in plans {
        tally.add(&Youth::from_plan(plan));
    }
    tally.cells()
}

#[cfg(test)]
mod tests;
