//! What the state hub answers: the receipt for a node's report, the
//! published statewide and per-community figures (with suppressed cells as
//! `null`), and the node directory. Shared so that nodes, dashboards and
//! tests read exactly what the hub writes.
//!
//! Like the report, these hold numbers, node ids, URLs, public keys and
//! values of the fixed vocabularies: nothing about a family.

use crate::indicators::{AgeBand, Category, Definition, Indicator, Measure, Period, Unit};
use serde::{Deserialize, Serialize};

/// The route a node sends its [`crate::indicators::Report`] to, signed as
/// node-to-node requests are (destination: the hub's id).
pub const REPORTS_PATH: &str = "/hub/v1/reports";
/// The node directory: `GET` (public) and `POST` (an enrolled node's URL).
pub const NODES_PATH: &str = "/hub/v1/nodes";
/// The published figures: `GET …?period=YYYY-MM[&format=csv]`.
pub const INDICATORS_PATH: &str = "/hub/v1/indicators";

/// Counts from 1 to this are never published (zero may show).
pub const SMALL_CELL_MAX: u64 = 10;
/// A rate whose numerator is below this is flagged unstable.
pub const STABLE_NUMERATOR_MIN: u64 = 20;

/// What became of a submitted report. The hub keeps, per node, period and
/// vocabulary, the report with the highest version (ties: the greater
/// canonical encoding), so resending or reordering changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SubmissionOutcome {
    /// It is now the kept report (it replaced an older one, or was first).
    Stored,
    /// The very same report was already kept.
    Unchanged,
    /// A report that wins the merge was already kept; this one is dropped.
    Superseded,
}

/// `POST /hub/v1/reports`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmissionReceipt {
    pub node: String,
    pub period: Period,
    pub vocabulary: u32,
    /// The version of the report the hub keeps now.
    pub version: u64,
    /// Whether the submitted report is the one kept (`stored` or `unchanged`).
    pub kept: bool,
    pub outcome: SubmissionOutcome,
}

/// One published figure. Which fields are set depends on the measure:
/// `count`: `value`; `rate`: `value` (numerator), `base` (denominator),
/// `rate`, `unstable`; `median`: `value` (youth) and `median` (the day
/// band); `amount`: `value` (cents), `base` (youth), `per_youth` (cents).
/// A suppressed number is `null` and `suppressed` is true; a rate, median
/// or per-youth amount whose inputs are not all published is `null` too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Figure {
    pub value: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median: Option<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_youth: Option<f64>,
    /// Some number of this figure is withheld (small, or a complement).
    pub suppressed: bool,
    /// A rate whose numerator is under 20: shown, but not to be trusted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unstable: bool,
}

/// A figure for one age band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgeFigure {
    pub age_band: AgeBand,
    #[serde(flatten)]
    pub figure: Figure,
}

/// A figure for one category (reason, fund category or day band).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategoryFigure {
    pub category: Category,
    #[serde(flatten)]
    pub figure: Figure,
}

/// An indicator for one place (the state, or one community): its total and
/// its one-way breakdowns. Never a cross-tab of age by category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Breakdown {
    pub total: Figure,
    pub by_age_band: Vec<AgeFigure>,
    /// Empty for indicators without categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_category: Vec<CategoryFigure>,
}

/// One community's (node's) figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommunityFigures {
    pub node: String,
    #[serde(flatten)]
    pub figures: Breakdown,
}

/// One indicator, statewide and per community.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndicatorFigures {
    pub indicator: Indicator,
    pub title: String,
    pub measure: Measure,
    pub unit: Unit,
    pub statewide: Breakdown,
    pub communities: Vec<CommunityFigures>,
}

/// `GET /hub/v1/indicators?period=…`: every indicator for one period, from
/// the reports the hub keeps, with small cells and their complements
/// withheld.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Publication {
    pub period: Period,
    pub vocabulary: u32,
    /// The communities whose reports it sums.
    pub nodes: Vec<String>,
    pub indicators: Vec<IndicatorFigures>,
}

/// `POST /hub/v1/nodes`: where the signing node can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeRegistration {
    pub url: String,
}

/// One enrolled node in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirectoryEntry {
    pub id: String,
    /// `None` until the node registers its URL.
    pub url: Option<String>,
    pub public_key: String,
}

/// `GET /hub/v1/nodes`: every node the state office enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Directory {
    pub hub_id: String,
    pub nodes: Vec<DirectoryEntry>,
}

/// `GET /hub/v1/identity`: the hub's id (the audience of signed
/// submissions) and key, for nodes configuring it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HubIdentity {
    pub hub_id: String,
    /// The hub's Ed25519 public key, base64url.
    pub public_key: String,
    /// `EdDSA`.
    pub algorithm: String,
    /// `Ed25519`.
    pub curve: String,
}

/// `GET /hub/v1/periods`: the months some node reported, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Periods {
    pub periods: Vec<Period>,
    /// The latest *complete* month: over, and reported by enough of the
    /// enrolled communities (the hub's `complete_period_min_nodes`, a
    /// majority by default). What the dashboard opens on; `null` while no
    /// month is complete.
    #[serde(default)]
    pub latest_complete: Option<Period>,
}

/// `GET /hub/v1/vocabulary`: every indicator's written definition.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vocabulary {
    pub version: u32,
    pub indicators: &'static [Definition],
}
