//! The one error type of the HTTP layer, mapped to `application/problem+json`
//! in one place. Each variant has a stable `type` (a [`ProblemType`],
//! `/problems/<code>`) that clients may match on; the `detail` is for people.

use crate::db::StoreError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use wrapsync_shared::api::Problem;
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

    fn title(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "Malformed JSON",
            ApiError::InvalidRequest(_) => "Invalid request",
            ApiError::Unauthorized(_) => "Authentication required",
            ApiError::InvalidCredentials => "Invalid credentials",
            ApiError::InvalidRefreshToken => "Invalid refresh token",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound => "Not found",
            ApiError::Plan { error, .. } => match error {
                PlanError::InvalidOp(_) => "Invalid operation",
                PlanError::Unsupported(_) => "Unsupported operation",
                PlanError::Schema { .. } => "Plan schema violation",
                PlanError::NoSuchItem(_) => "No such item",
                PlanError::Forbidden(_) => "Forbidden",
                PlanError::TestFailed(_) => "Test failed",
                PlanError::UnknownVersion(_) => "Unknown version",
                PlanError::InvalidItemId { .. } => "Invalid item id",
                PlanError::UnsafeText { .. } => "Unsafe text",
                PlanError::InvalidPhone { .. } => "Invalid phone number",
            },
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::DocumentTooLarge(_) => "Document too large",
            ApiError::PlanQuota(_) => "Plan quota reached",
            ApiError::MessageTooLarge(_) => "Message too large",
            ApiError::SyncStateTooLarge(_) => "Sync state too large",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::Conflict(_) => "Conflict",
            ApiError::TransferRefused(_) => "Transfer refused",
            ApiError::MalformedSync(_) => "Malformed sync message",
            ApiError::MalformedDocument(_) => "Malformed document",
            ApiError::RefusedChanges(_) => "Changes refused",
            ApiError::HomeAuthority(_) => "Changed only at the plan's home",
            ApiError::InvalidReport(_) => "Invalid report",
            ApiError::ReportRefused(_) => "Report refused",
            ApiError::ReportImplausible { .. } => "Implausible report",
            ApiError::RevisionsLimited { .. } => "Too many revisions",
            ApiError::PrivacyBudgetSpent(_) => "Privacy budget spent",
            ApiError::NotReady => "Not ready",
            ApiError::RequestTimeout(_) => "Request timeout",
            ApiError::RateLimited(_) => "Too many requests",
            ApiError::Busy => "Busy",
            ApiError::Contended => "Contended",
            ApiError::Internal(_) => "Internal error",
        }
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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::InvalidRequest(_)
            | ApiError::MalformedSync(_)
            | ApiError::MalformedDocument(_)
            | ApiError::InvalidReport(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_)
            | ApiError::InvalidCredentials
            | ApiError::InvalidRefreshToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Plan { error, .. } => match error {
                PlanError::Forbidden(_) => StatusCode::FORBIDDEN,
                PlanError::TestFailed(_) | PlanError::UnknownVersion(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            ApiError::PayloadTooLarge(_)
            | ApiError::DocumentTooLarge(_)
            | ApiError::PlanQuota(_)
            | ApiError::MessageTooLarge(_)
            | ApiError::SyncStateTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_)
            | ApiError::TransferRefused(_)
            | ApiError::PrivacyBudgetSpent(_) => StatusCode::CONFLICT,
            ApiError::RefusedChanges(_)
            | ApiError::HomeAuthority(_)
            | ApiError::ReportRefused(_)
            | ApiError::ReportImplausible { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotReady | ApiError::Contended | ApiError::Busy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(_) | ApiError::RevisionsLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if self.status_code() == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::RateLimited(secs)
        | ApiError::RevisionsLimited {
            retry_after: secs, ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let ApiError::Contended | ApiError::Busy = self {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        response.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

impl ApiError {
    /// The problem document that tells a client what went wrong (logging
    /// the cause of an internal error, which the client is not told).
    pub fn problem(&self) -> Problem {
        if let ApiError::Internal(cause) = self {
            tracing::error!(%cause, "internal error");
        }
        let status = self.status_code();
        Problem {
            kind: self.problem_type().type_uri(),
            title: self.title().to_string(),
            status: status.as_u16(),
            detail: match self {
                ApiError::Internal(_) => None,
                other => Some(other.to_string()),
            },
            op_index: match self {
                ApiError::Plan { op_index, .. } => *op_index,
                _ => None,
            },
        }
    }
}
