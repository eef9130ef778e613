//! What the state measures, and the report a node sends the hub.
//!
//! The report's types hold numbers and values of fixed vocabularies only:
//! no string, no id, no date finer than a month. They cannot carry an
//! identifier, whatever the code that fills them does; the hub refuses
//! anything else (`deny_unknown_fields`, then [`Report::validate`]).
//!
//! A node sends only its finest cells (indicator × age band × category);
//! totals are sums the hub makes, so no two cells can disagree.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Version of this vocabulary. A report names the version it was made
/// with; the hub keeps reports of different versions apart.
pub const VOCABULARY_VERSION: u32 = 1;

/// Largest count of youth (or assessment items) a cell may hold: far
/// above any state's enrolment, so a larger one is a bug or an attack.
pub const MAX_COUNT: u64 = 1_000_000;
/// Largest sum of money (cents) a cell may hold: $100 million.
pub const MAX_CENTS: u64 = 10_000_000_000;
/// Most cells one report may hold (indicators × age bands × categories
/// is well under this).
pub const MAX_CELLS: usize = 2_000;

/// The first month this vocabulary's definitions apply to: a report of an
/// earlier period is refused (`plausibility`), however a node came by it.
pub const FIRST_PERIOD: Period = Period {
    year: 2020,
    month: 1,
};

/// A calendar month, `YYYY-MM` on the wire: the finest time a report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    year: u16,
    month: u8,
}

impl Period {
    pub fn new(year: u16, month: u8) -> Option<Period> {
        ((2000..=2999).contains(&year) && (1..=12).contains(&month))
            .then_some(Period { year, month })
    }
    pub fn year(self) -> u16 {
        self.year
    }
    pub fn month(self) -> u8 {
        self.month
    }
    /// The first day of the month.
    pub fn first_day(self) -> time::Date {
        // Valid by construction: 1 ≤ month ≤ 12, year in range.
        time::Date::from_calendar_date(
            i32::from(self.year),
            time::Month::try_from(self.month).unwrap_or(time::Month::January),
            1,
        )
        .unwrap_or(time::Date::MIN)
    }
    /// The last day of the month.
    pub fn last_day(self) -> time::Date {
        self.next()
            .first_day()
            .previous_day()
            .unwrap_or(time::Date::MIN)
    }
    pub fn next(self) -> Period {
        if self.month == 12 {
            Period {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Period {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
    pub fn previous(self) -> Period {
        if self.month == 1 {
            Period {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Period {
                year: self.year,
                month: self.month - 1,
            }
        }
    }
    /// The month `date` falls in.
    pub fn of(date: time::Date) -> Option<Period> {
        Period::new(u16::try_from(date.year()).ok()?, u8::from(date.month()))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Period, String> {
        let bad = || format!("not a period (YYYY-MM): {s:?}");
        let (year, month) = s.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year = year.parse().map_err(|_| bad())?;
        let month = month.parse().map_err(|_| bad())?;
        Period::new(year, month).ok_or_else(bad)
    }
}

/// `YYYY-MM`, as [`Period`] (de)serializes.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Period {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^2[0-9]{3}-(0[1-9]|1[0-2])$"))
            .examples(["2026-10"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Period {}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Period, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Every indicator the state reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    YouthServed,
    NewEnrollments,
    PlanAdoptedWithin30Days,
    DaysInService,
    DischargeReason,
    HomeAtDischarge,
    OutOfHomePlacement,
    PsychAdmissionAtIntake,
    PsychAdmissionLatest,
    ArrestAtIntake,
    ArrestLatest,
    RegularSchoolAttendance,
    CansNeedsResolved,
    NaturalSupport,
    FlexFunds,
    CrisisPlanReviewed,
    TeamMet,
}

/// Age at the last day of the period, in the bands the state uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AgeBand {
    #[serde(rename = "0-5")]
    Age0To5,
    #[serde(rename = "6-11")]
    Age6To11,
    #[serde(rename = "12-17")]
    Age12To17,
    #[serde(rename = "18-21")]
    Age18To21,
    /// No birth date on the plan, or outside 0–21.
    #[serde(rename = "unknown")]
    Unknown,
}

impl AgeBand {
    pub const ALL: [AgeBand; 5] = [
        AgeBand::Age0To5,
        AgeBand::Age6To11,
        AgeBand::Age12To17,
        AgeBand::Age18To21,
        AgeBand::Unknown,
    ];

    /// The band of someone of `years` full years.
    pub fn of_age(years: Option<i32>) -> AgeBand {
        match years {
            Some(0..=5) => AgeBand::Age0To5,
            Some(6..=11) => AgeBand::Age6To11,
            Some(12..=17) => AgeBand::Age12To17,
            Some(18..=21) => AgeBand::Age18To21,
            _ => AgeBand::Unknown,
        }
    }
}

/// The breakdown an indicator may have besides age: discharge reasons,
/// flexible-fund categories, or 30-day bands of days in service (from
/// which the hub finds the statewide median).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    // Discharge reasons (the schema's `DISCHARGE_REASONS`).
    Completed,
    Transitioned,
    DroppedOut,
    Moved,
    Placed,
    // Flexible-fund categories (the schema's `FLEX_CATEGORIES`).
    Housing,
    Utilities,
    Transportation,
    Education,
    Recreation,
    BasicNeeds,
    Health,
    Respite,
    /// In both lists.
    Other,
    // Days in service: `Days0` is 0–29 days, `Days30` 30–59, …;
    // `Days720Plus` is 720 days or more.
    Days0,
    Days30,
    Days60,
    Days90,
    Days120,
    Days150,
    Days180,
    Days210,
    Days240,
    Days270,
    Days300,
    Days330,
    Days360,
    Days390,
    Days420,
    Days450,
    Days480,
    Days510,
    Days540,
    Days570,
    Days600,
    Days630,
    Days660,
    Days690,
    Days720Plus,
}

pub const DISCHARGE_CATEGORIES: &[Category] = &[
    Category::Completed,
    Category::Transitioned,
    Category::DroppedOut,
    Category::Moved,
    Category::Placed,
    Category::Other,
];

pub const FLEX_CATEGORIES: &[Category] = &[
    Category::Housing,
    Category::Utilities,
    Category::Transportation,
    Category::Education,
    Category::Recreation,
    Category::BasicNeeds,
    Category::Health,
    Category::Respite,
    Category::Other,
];

/// 30-day bands, in order; band `i` starts at `30 * i` days.
pub const DAY_BANDS: &[Category] = &[
    Category::Days0,
    Category::Days30,
    Category::Days60,
    Category::Days90,
    Category::Days120,
    Category::Days150,
    Category::Days180,
    Category::Days210,
    Category::Days240,
    Category::Days270,
    Category::Days300,
    Category::Days330,
    Category::Days360,
    Category::Days390,
    Category::Days420,
    Category::Days450,
    Category::Days480,
    Category::Days510,
    Category::Days540,
    Category::Days570,
    Category::Days600,
    Category::Days630,
    Category::Days660,
    Category::Days690,
    Category::Days720Plus,
];

impl Category {
    /// The band of a stay of `days` days.
    pub fn days_band(days: i64) -> Category {
        let index = usize::try_from(days.max(0) / 30).unwrap_or(usize::MAX);
        DAY_BANDS[index.min(DAY_BANDS.len() - 1)]
    }

    /// The discharge reason or flex category spelled as in the plan schema.
    pub fn from_schema(value: &str) -> Option<Category> {
        serde_json::from_value(serde_json::Value::String(value.to_string())).ok()
    }
}

/// How the hub turns an indicator's cells into a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// `value` youth; no base.
    Count,
    /// `value` of `base`: a proportion.
    Rate,
    /// Youth per day band; the figure is the median band.
    Median,
    /// `value` cents spent on `base` youth (total, and per youth).
    Amount,
}

/// What an indicator's `value` and `base` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Youth,
    /// CANS items rated actionable (2 or 3).
    Needs,
    Cents,
}

/// An indicator's written definition.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Definition {
    pub indicator: Indicator,
    pub title: &'static str,
    pub definition: &'static str,
    pub numerator: &'static str,
    /// `None` for counts.
    pub denominator: Option<&'static str>,
    pub measure: Measure,
    pub unit: Unit,
    /// The categories its cells are broken down by (empty: none).
    pub categories: &'static [Category],
}

/// "Served in the period": enrolled on or before its last day and not
/// discharged before its first. "Active at the end": enrolled on or before
/// the last day and not discharged on or before it. A plan with no
/// enrollment date, or discharged before it was enrolled, is neither.
/// Statuses are the plan's recorded status snapshots (withdrawn ones
/// ignored); "intake" is the earliest, "latest" the last one dated by the
/// period's end; a snapshot is read as a whole (a field it leaves out is
/// not looked up in an earlier one). "Out of home" is foster care, a group
/// home, residential treatment, detention or a psychiatric hospital (not
/// home, kin or `other`). "The N days up to" a day include it. Age is full
/// years on the period's last day. Items with a status count only with
/// the status that makes them so (CANS `final`, meetings `held`, flex
/// requests `paid`, team members `active`); a missing status is the
/// schema's first value, as the plan operations set it.
pub const DEFINITIONS: &[Definition] = &[
    Definition {
        indicator: Indicator::YouthServed,
        title: "Youth served",
        definition: "Youth served in the period, each counted once.",
        numerator: "youth served in the period",
        denominator: None,
        measure: Measure::Count,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::NewEnrollments,
        title: "New enrollments",
        definition: "Youth whose enrollment date falls in the period.",
        numerator: "youth enrolled in the period",
        denominator: None,
        measure: Measure::Count,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::PlanAdoptedWithin30Days,
        title: "Plan adopted within 30 days",
        definition: "Of the youth whose 30th day after enrollment falls in the period and \
                     who were not discharged before it, the share whose plan was adopted \
                     by that day.",
        numerator: "of those, youth with a plan adopted within 30 days of enrollment",
        denominator: Some(
            "youth whose 30th day after enrollment falls in the period, still enrolled then",
        ),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::DaysInService,
        title: "Days in service",
        definition: "Days from enrollment to discharge of the youth discharged in the period, \
                     counted in 30-day bands; the figure is the median band.",
        numerator: "youth discharged in the period, by 30-day band of days in service",
        denominator: None,
        measure: Measure::Median,
        unit: Unit::Youth,
        categories: DAY_BANDS,
    },
    Definition {
        indicator: Indicator::DischargeReason,
        title: "Discharge reasons",
        definition: "Youth discharged in the period, by the reason recorded (none \
                     recorded counts as other).",
        numerator: "youth discharged in the period for this reason",
        denominator: Some("youth discharged in the period"),
        measure: Measure::Count,
        unit: Unit::Youth,
        categories: DISCHARGE_CATEGORIES,
    },
    Definition {
        indicator: Indicator::HomeAtDischarge,
        title: "Living at home at discharge",
        definition: "Of the youth discharged in the period whose last status recorded by \
                     discharge gives their living situation, the share living at home.",
        numerator: "of those, youth living at home",
        denominator: Some(
            "youth discharged in the period whose last status gives a living situation",
        ),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::OutOfHomePlacement,
        title: "Out-of-home placement during enrollment",
        definition: "Of the youth served in the period with a living situation recorded \
                     during enrollment (to the period's end), the share with any such status \
                     that places them out of home.",
        numerator: "of those, youth with any out-of-home status",
        denominator: Some("youth served with a living situation recorded during enrollment"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::PsychAdmissionAtIntake,
        title: "Psychiatric admission in the 180 days before intake",
        definition: "Of the youth served in the period whose intake status records \
                     psychiatric admissions, the share with one in the prior 180 days.",
        numerator: "of those, youth with an admission at intake",
        denominator: Some("youth served whose intake status records admissions"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::PsychAdmissionLatest,
        title: "Psychiatric admission in the prior 180 days, latest status",
        definition: "Of the youth served in the period whose latest status is not their \
                     intake and records psychiatric admissions, the share with one in the \
                     prior 180 days.",
        numerator: "of those, youth with an admission at the latest status",
        denominator: Some("youth served with a later status than intake recording admissions"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::ArrestAtIntake,
        title: "Arrest or detention in the 30 days before intake",
        definition: "Of the youth served in the period whose intake status records \
                     arrests, the share with one in the prior 30 days.",
        numerator: "of those, youth with an arrest at intake",
        denominator: Some("youth served whose intake status records arrests"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::ArrestLatest,
        title: "Arrest or detention in the prior 30 days, latest status",
        definition: "Of the youth served in the period whose latest status is not their \
                     intake and records arrests, the share with one in the prior 30 days.",
        numerator: "of those, youth with an arrest at the latest status",
        denominator: Some("youth served with a later status than intake recording arrests"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::RegularSchoolAttendance,
        title: "Regular school attendance",
        definition: "Of the youth served in the period whose latest status records school \
                     days missed, the share who missed 2 days or fewer in 30.",
        numerator: "of those, youth who missed at most 2 days",
        denominator: Some("youth served whose latest status records school days missed"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::CansNeedsResolved,
        title: "CANS actionable needs resolved",
        definition: "Items rated actionable (2 or 3) on the first final CANS of youth \
                     reassessed in the period (a later final CANS dated in it; the last \
                     such), and of those, the ones rated 0 or 1 on the reassessment.",
        numerator: "actionable items resolved at reassessment",
        denominator: Some("items actionable at the first assessment"),
        measure: Measure::Rate,
        unit: Unit::Needs,
        categories: &[],
    },
    Definition {
        indicator: Indicator::NaturalSupport,
        title: "Teams with a natural or informal support",
        definition: "Of the youth served in the period, the share whose team has an active \
                     member other than the youth and caregivers in the natural support role or \
                     giving informal or natural support.",
        numerator: "of those, youth whose team has such a member",
        denominator: Some("youth served in the period"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::FlexFunds,
        title: "Flexible funds spent",
        definition: "Flexible funds paid in the period (cents, by the day paid), by \
                     category, and the youth they were paid for, once per category whether \
                     or not still enrolled; per youth is the first over the second.",
        numerator: "cents paid in the period",
        denominator: Some("youth with a payment in the period in the category"),
        measure: Measure::Amount,
        unit: Unit::Cents,
        categories: FLEX_CATEGORIES,
    },
    Definition {
        indicator: Indicator::CrisisPlanReviewed,
        title: "Crisis plan reviewed within 90 days",
        definition: "Of the youth active at the end of the period, the share whose crisis \
                     plan was reviewed in the 90 days up to that day.",
        numerator: "of those, youth whose crisis plan was reviewed",
        denominator: Some("youth active at the end of the period"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
    Definition {
        indicator: Indicator::TeamMet,
        title: "Team met within 30 days",
        definition: "Of the youth active at the end of the period, the share whose team held \
                     a meeting (status held) in the 30 days up to that day.",
        numerator: "of those, youth whose team met",
        denominator: Some("youth active at the end of the period"),
        measure: Measure::Rate,
        unit: Unit::Youth,
        categories: &[],
    },
];

impl Indicator {
    pub fn definition(self) -> &'static Definition {
        // Every indicator has exactly one entry (a unit test checks).
        DEFINITIONS
            .iter()
            .find(|d| d.indicator == self)
            .unwrap_or(&DEFINITIONS[0])
    }
}

/// One cell: an indicator for one age band and, where the indicator has
/// them, one category. For a `DischargeReason` cell, `base` is left out
/// (the hub sums the reasons); for rates and amounts it is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Cell {
    pub indicator: Indicator,
    pub age_band: AgeBand,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    pub value: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
}

/// A node's indicators for one period. The sending node is the one that
/// signed the submission; `version` orders a node's reports of the same
/// period (a later one replaces an earlier one at the hub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub vocabulary: u32,
    pub period: Period,
    pub version: u64,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("vocabulary version {0} is not known here (this side speaks {VOCABULARY_VERSION})")]
    UnknownVocabulary(u32),
    #[error("too many cells ({0}, at most {MAX_CELLS})")]
    TooManyCells(usize),
    #[error("{0:?} has no category {1:?}")]
    WrongCategory(Indicator, Option<Category>),
    #[error("{0:?} cell needs a base")]
    MissingBase(Indicator),
    #[error("{0:?} cell has a base it must not have")]
    UnexpectedBase(Indicator),
    #[error("{0:?} cell holds an absurd count ({1})")]
    Absurd(Indicator, u64),
    #[error("{0:?} cell counts more ({1}) than its base ({2})")]
    ValueOverBase(Indicator, u64, u64),
    #[error("{0:?} cell appears twice for the same age band and category")]
    Duplicate(Indicator),
}

impl Report {
    /// Every rule a report must keep beyond its types: known vocabulary,
    /// categories that belong to their indicator, bases where rates need
    /// them, counts within reason and no cell given twice.
    pub fn validate(&self) -> Result<(), ReportError> {
        if self.vocabulary != VOCABULARY_VERSION {
            return Err(ReportError::UnknownVocabulary(self.vocabulary));
        }
        if self.cells.len() > MAX_CELLS {
            return Err(ReportError::TooManyCells(self.cells.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for cell in &self.cells {
            let def = cell.indicator.definition();
            let category_ok = match cell.category {
                None => def.categories.is_empty(),
                Some(c) => def.categories.contains(&c),
            };
            if !category_ok {
                return Err(ReportError::WrongCategory(cell.indicator, cell.category));
            }
            let wants_base = matches!(def.measure, Measure::Rate | Measure::Amount);
            match (wants_base, cell.base) {
                (true, None) => return Err(ReportError::MissingBase(cell.indicator)),
                (false, Some(_)) => return Err(ReportError::UnexpectedBase(cell.indicator)),
                _ => {}
            }
            let value_max = if def.unit == Unit::Cents {
                MAX_CENTS
            } else {
                MAX_COUNT
            };
            if cell.value > value_max {
                return Err(ReportError::Absurd(cell.indicator, cell.value));
            }
            if let Some(base) = cell.base {
                if base > MAX_COUNT {
                    return Err(ReportError::Absurd(cell.indicator, base));
                }
                if def.measure == Measure::Rate && cell.value > base {
                    return Err(ReportError::ValueOverBase(cell.indicator, cell.value, base));
                }
            }
            if !seen.insert((cell.indicator, cell.age_band, cell.category)) {
                return Err(ReportError::Duplicate(cell.indicator));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_indicator_is_defined_once() {
        let all: Vec<Indicator> = DEFINITIONS.iter().map(|d| d.indicator).collect();
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), unique.len());
        for def in DEFINITIONS {
            assert_eq!(def.indicator.definition().indicator, def.indicator);
        }
        assert_eq!(all.len(), 17);
    }

    #[test]
    fn schema_vocabularies_map_onto_categories() {
        for reason in crate::schema::DISCHARGE_REASONS {
            let c = Category::from_schema(reason).expect(reason);
            assert!(DISCHARGE_CATEGORIES.contains(&c), "{reason}");
        }
        for category in crate::schema::FLEX_CATEGORIES {
            let c = Category::from_schema(category).expect(category);
            assert!(FLEX_CATEGORIES.contains(&c), "{category}");
        }
    }

    #[test]
    fn periods_parse_strictly_and_step() {
        let p: Period = "2026-12".parse().unwrap();
        assert_eq!(p.to_string(), "2026-12");
        assert_eq!(p.next().to_string(), "2027-01");
        assert_eq!(p.next().previous(), p);
        assert_eq!(p.last_day().to_string(), "2026-12-31");
        assert_eq!("2026-02".parse::<Period>().unwrap().last_day().day(), 28);
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-01",
            "2026-01-01",
            "x",
            "",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::from_str::<Period>("\"2025-07\"").unwrap(),
            Period::new(2025, 7).unwrap()
        );
    }

    #[test]
    fn day_bands_cover_every_stay() {
        assert_eq!(Category::days_band(0), Category::Days0);
        assert_eq!(Category::days_band(29), Category::Days0);
        assert_eq!(Category::days_band(30), Category::Days30);
        assert_eq!(Category::days_band(719), Category::Days690);
        assert_eq!(Category::days_band(100_000), Category::Days720Plus);
        assert_eq!(Category::days_band(-5), Category::Days0);
    }

    fn cell(indicator: Indicator, value: u64, base: Option<u64>) -> Cell {
        Cell {
            indicator,
            age_band: AgeBand::Age6To11,
            category: None,
            value,
            base,
        }
    }

    fn report(cells: Vec<Cell>) -> Report {
        Report {
            vocabulary: VOCABULARY_VERSION,
            period: Period::new(2026, 10).unwrap(),
            version: 1,
            cells,
        }
    }

    #[test]
    fn validation_refuses_what_the_types_allow_but_the_rules_do_not() {
        assert!(report(vec![cell(Indicator::YouthServed, 3, None)])
            .validate()
            .is_ok());
        let cases = [
            cell(Indicator::YouthServed, 3, Some(4)),
            cell(Indicator::TeamMet, 3, None),
            cell(Indicator::TeamMet, 5, Some(4)),
            cell(Indicator::YouthServed, MAX_COUNT + 1, None),
            Cell {
                category: Some(Category::Housing),
                ..cell(Indicator::YouthServed, 1, None)
            },
            cell(Indicator::DischargeReason, 1, None),
        ];
        for bad in cases {
            assert!(report(vec![bad]).validate().is_err(), "{bad:?}");
        }
        let twice = cell(Indicator::YouthServed, 3, None);
        assert_eq!(
            report(vec![twice, twice]).validate(),
            Err(ReportError::Duplicate(Indicator::YouthServed))
        );
        let mut other = report(vec![]);
        other.vocabulary = 99;
        assert!(other.validate().is_err());
    }

    #[test]
    fn unknown_fields_and_values_are_refused() {
        let good = r#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[{"indicator":"youth_served","age_band":"6-11","value":3}]}"#;
        assert!(serde_json::from_str::<Report>(good).is_ok());
        for bad in [
            r#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[],"name":"Ada"}"#,
            r#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[{"indicator":"youth_served","age_band":"6-11","value":3,"note":"x"}]}"#,
            r#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[{"indicator":"names","age_band":"6-11","value":3}]}"#,
            r#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[{"indicator":"youth_served","age_band":"6-11","value":-3}]}"#,
            r#"{"vocabulary":1,"period":"2026-10-04","version":1,"cells":[]}"#,
        ] {
            assert!(serde_json::from_str::<Report>(bad).is_err(), "{bad}");
        }
    }
}
