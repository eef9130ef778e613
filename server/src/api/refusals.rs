//! Every refused request leaves an audit row. Handlers audit the refusals
//! they understand, naming the plan and the action (`plan.read`,
//! `peer.sync`, …); this middleware writes one for every other answer of
//! 4xx or 5xx — a bad or missing token, a rate limit, an unreadable body,
//! a bad query, an unknown route — and none for a request already audited
//! as refused (see [`RefusalMark`]). So each refusal has a row, once.
//!
//! The row holds the request id, the route *pattern* and method, the plan
//! id, the problem type and message, the caller if their token or
//! signature checked out, and the client address (each cut to its bound
//! where rows are stored, `store::audit::insert_audit`); never a header
//! value, so never a token. A refused request costs at most one row of
//! bounded size, and refusals of one kind from one source past the first
//! of an interval share one counted row (`store::writer`).

use super::extract::request_meta;
use crate::app::App;
use crate::audit::{Audit, Outcome, Principal, RefusalMark};
use crate::error::ApiError;
use crate::observe::{method_label, UNMATCHED};
use crate::store::audit::AuditRecord;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest};
use std::future::Future;

/// The middleware: `.wrap_fn(refusals::audit)`, inside `observe::request`
/// (which gives the request its id).
pub fn audit<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let mark = RefusalMark::default();
    req.extensions_mut().insert(mark.clone());
    let fut = srv.call(req);
    async move {
        let res = fut.await?;
        let status = res.status();
        if (status.is_client_error() || status.is_server_error()) && !mark.is_set() {
            let req = res.request();
            if let Some(app) = req.app_data::<web::Data<App>>() {
                app.plans.audit(record(req, status, res.response().error()));
            }
        }
        Ok(res)
    }
}

/// The audit row of a refused request nothing else audited. The caller is
/// the [`Principal`] put in the request once their token or signature
/// checked out (`AuthUser`, `api::federation`), if it did.
fn record(req: &HttpRequest, status: StatusCode, error: Option<&actix_web::Error>) -> AuditRecord {
    let meta = request_meta(req);
    let caller = req.extensions().get::<Principal>().cloned();
    let problem = error.and_then(|e| e.as_error::<ApiError>());
    let detail = match problem {
        Some(e) => format!("{}: {e}", e.code()),
        None => format!("http-{}", status.as_u16()),
    };
    let pattern = req.match_pattern();
    Audit::route(
        caller.unwrap_or(Principal::Nobody),
        method_label(req.method()),
        pattern.as_deref().unwrap_or(UNMATCHED),
    )
    .plan_opt(req.match_info().get("id"))
    .outcome(problem.map_or_else(|| outcome_of(status), |e| Outcome::of(e.problem_type())))
    .detail(detail)
    .at(&meta)
}

/// The outcome of a refusal that did not come from an [`ApiError`].
fn outcome_of(status: StatusCode) -> Outcome {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Denied,
        StatusCode::NOT_FOUND => Outcome::NotFound,
        s if s.is_server_error() => Outcome::Error,
        _ => Outcome::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_without_a_problem_get_an_outcome_by_status() {
        assert_eq!(outcome_of(StatusCode::UNAUTHORIZED).as_str(), "denied");
        assert_eq!(outcome_of(StatusCode::NOT_FOUND).as_str(), "not_found");
        assert_eq!(outcome_of(StatusCode::BAD_GATEWAY).as_str(), "error");
        assert_eq!(outcome_of(StatusCode::BAD_REQUEST).as_str(), "refused");
    }
}
