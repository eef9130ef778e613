//! How an [`ApiError`] answers over HTTP: its status, title, headers and
//! `application/problem+json` body, mapped here in one place. The error
//! itself (`crate::error`) knows nothing of HTTP, so the domain that
//! returns it does not either.

use crate::error::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use wrapsync_shared::api::Problem;
use wrapsync_shared::plan::PlanError;

impl ApiError {
    /// The problem's `title`: the same for every error of a type.
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
