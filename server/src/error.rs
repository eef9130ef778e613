//! The one error type of the node: what went wrong, as the domain (plans,
//! federation, reports) and the API both say it. Each variant has a stable
//! `type` (a [`ProblemType`], `/problems/<code>`) that clients may match
//! on; the `detail` is for people. It knows nothing of HTTP: its status
//! codes, headers and `application/problem+json` body are `api::problem`'s.

use crate::db::StoreError;
use wrapsync_shared::plan::PlanError;
use wrapsync_shared::problems::ProblemType;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("unknown username or wrong password")]
    InvalidCredentials,
    #[error("the refresh token is unknown, used, expired or revoked")]
    InvalidRefreshToken,
    #[error("{0}")]
    Forbidden(String),
    /// Also what a member of another family gets: never a hint that it exists.
    #[error("no such resource")]
    NotFound,
    #[error("{error}")]
    Plan {
        error: PlanError,
        op_index: Option<usize>,
    },
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// Automerge bytes that would decode past `max_document_bytes` or
    /// declare more than `max_document_ops` operations (compression and
    /// run-length encoding: the wire size says little). Says which.
    #[error("{0}")]
    DocumentTooLarge(String),
    /// A write that would make a plan larger than `plan_quota_bytes`
    /// (growth only: edits that keep or shrink it still go). Says by how
    /// much.
    #[error("{0}")]
    PlanQuota(String),
    /// A message declaring more operations than its route allows its
    /// sender (`max_sync_ops_member`, `max_sync_ops_staff`,
    /// `max_peer_sync_ops`), refused from its headers and columns before
    /// anything is decoded. Says which.
    #[error("{0}")]
    MessageTooLarge(String),
    /// A sync message describing its sender (Bloom filter, heads, needs)
    /// at more length than the plan's size calls for; nothing is kept.
    #[error("{0}")]
    SyncStateTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Conflict(String),
    /// The node a plan was to move to refused it; the plan stays here.
    #[error("the other node refused the plan: {0}")]
    TransferRefused(String),
    /// Changes that arrived by sync and were refused whole: by role, by
    /// schema, or because their actor belongs to someone else.
    #[error("changes refused: {0}")]
    RefusedChanges(PlanError),
    /// A change to the roster or the family's consent record by someone not
    /// of the plan's home (a peer's member, a replica's team): only the
    /// home's own people change who is on the team and what was consented.
    #[error("{0}")]
    HomeAuthority(String),
    /// Bytes that are not an Automerge sync message.
    #[error("not a readable Automerge sync message: {0}")]
    MalformedSync(String),
    /// Bytes that are not a saved Automerge document.
    #[error("not a readable Automerge document: {0}")]
    MalformedDocument(String),
    /// A hub submission that is not a report: unknown fields, unknown
    /// vocabulary values, negative or non-integer counts.
    #[error("not a report: {0}")]
    InvalidReport(String),
    /// A well-formed report that breaks the report rules
    /// (`Report::validate`): absurd counts, wrong categories, duplicates.
    #[error("report refused: {0}")]
    ReportRefused(String),
    /// A valid report that cannot be true (`wrapsync_shared::plausibility`):
    /// `rule` is its problem type (`report-over-ceiling`, …), the detail
    /// names the indicator, age band and numbers.
    #[error("report refused as implausible: {detail}")]
    ReportImplausible { rule: ProblemType, detail: String },
    /// A node revising one period faster than the hub's
    /// `rate_limit_revisions_per_period`; `Retry-After` says when.
    #[error("{detail}")]
    RevisionsLimited { detail: String, retry_after: u64 },
    /// A differentially private release that would spend more of the
    /// year's privacy budget (`dp_epsilon_per_year`) than is left.
    #[error("{0}")]
    PrivacyBudgetSpent(String),
    /// The database did not answer a trivial query in time (`/readyz`).
    #[error("the database is not answering")]
    NotReady,
    /// The client's body stopped arriving for `request_timeout_secs`, or
    /// took longer than its size allows (`body_min_bytes_per_sec`).
    #[error("{0}")]
    RequestTimeout(String),
    /// The bodies being read already hold `max_buffered_body_bytes`: not
    /// the caller's fault, and over in a moment; `Retry-After: 1`.
    #[error("the server is reading too many request bodies; retry")]
    Busy,
    /// Over a rate limit; `Retry-After` says how many seconds to wait.
    #[error("too many requests: retry in {0} s")]
    RateLimited(u64),
    /// Other processes sharing the database kept changing the plan while
    /// this one tried to store a change (see `Plans::retrying`); retry.
    #[error("the plan kept changing through other processes; retry")]
    Contended,
    /// Details go to the log, never to the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The problem type the client is answered with: the one mapping from
    /// errors to the stable codes clients match on.
    pub fn problem_type(&self) -> ProblemType {
        match self {
            ApiError::MalformedJson(_) => ProblemType::MalformedJson,
            ApiError::InvalidRequest(_) => ProblemType::InvalidRequest,
            ApiError::Unauthorized(_) => ProblemType::Unauthorized,
            ApiError::InvalidCredentials => ProblemType::InvalidCredentials,
            ApiError::InvalidRefreshToken => ProblemType::InvalidRefreshToken,
            ApiError::Forbidden(_) => ProblemType::Forbidden,
            ApiError::NotFound => ProblemType::NotFound,
            ApiError::Plan { error, .. } => error.problem_type(),
            ApiError::PayloadTooLarge(_) => ProblemType::PayloadTooLarge,
            ApiError::DocumentTooLarge(_) => ProblemType::DocumentTooLarge,
            ApiError::PlanQuota(_) => ProblemType::PlanQuota,
            ApiError::MessageTooLarge(_) => ProblemType::MessageTooLarge,
            ApiError::SyncStateTooLarge(_) => ProblemType::SyncStateTooLarge,
            ApiError::UnsupportedMediaType(_) => ProblemType::UnsupportedMediaType,
            ApiError::Conflict(_) => ProblemType::Conflict,
            ApiError::TransferRefused(_) => ProblemType::TransferRefused,
            ApiError::MalformedSync(_) => ProblemType::MalformedSyncMessage,
            ApiError::MalformedDocument(_) => ProblemType::MalformedDocument,
            ApiError::RefusedChanges(PlanError::Forbidden(_)) => ProblemType::ChangeForbidden,
            ApiError::RefusedChanges(error) => error.problem_type(),
            ApiError::HomeAuthority(_) => ProblemType::HomeAuthority,
            ApiError::InvalidReport(_) => ProblemType::InvalidReport,
            ApiError::ReportRefused(_) => ProblemType::ReportRefused,
            ApiError::ReportImplausible { rule, .. } => *rule,
            ApiError::RevisionsLimited { .. } => ProblemType::ReportRevisionsLimited,
            ApiError::PrivacyBudgetSpent(_) => ProblemType::PrivacyBudgetSpent,
            ApiError::NotReady => ProblemType::NotReady,
            ApiError::RequestTimeout(_) => ProblemType::RequestTimeout,
            ApiError::RateLimited(_) => ProblemType::RateLimited,
            ApiError::Busy => ProblemType::Busy,
            ApiError::Contended => ProblemType::Contended,
            ApiError::Internal(_) => ProblemType::Internal,
        }
    }

    /// The problem type's slug, for logs and audit rows.
    pub fn code(&self) -> &'static str {
        self.problem_type().as_str()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Stale => ApiError::Contended,
            StoreError::Missing(_) => ApiError::NotFound,
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<PlanError> for ApiError {
    fn from(error: PlanError) -> Self {
        ApiError::Plan {
            error,
            op_index: None,
        }
    }
}
