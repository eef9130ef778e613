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
use crate::db::now_ms;
use crate::error::ApiError;
use crate::observe::{method_label, UNMATCHED};
use crate::plans::{Actor, RefusalMark};
use crate::store::audit::AuditRecord;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest};
use std::future::Future;

/// Who made a request, once their token or signature checked out: kept
/// with the request so a refusal after that still names them.
#[derive(Debug, Clone)]
pub struct Caller {
    user_id: Option<String>,
    username: String,
    role: String,
}

impl Caller {
    pub fn user(actor: &Actor) -> Self {
        Caller {
            user_id: Some(actor.user_id.clone()),
            username: actor.username.clone(),
            role: actor.role.to_string(),
        }
    }

    /// The signed-in user's id (none for a peer).
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// A peer node, named as `plans::peer_audit` names it.
    pub fn peer(node: &str) -> Self {
        Caller {
            user_id: None,
            username: format!("peer:{node}"),
            role: "peer".into(),
        }
    }
}

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

/// The audit row of a refused request nothing else audited.
fn record(req: &HttpRequest, status: StatusCode, error: Option<&actix_web::Error>) -> AuditRecord {
    let meta = request_meta(req);
    let caller = req.extensions().get::<Caller>().cloned();
    let problem = error.and_then(|e| e.as_error::<ApiError>());
    let detail = match problem {
        Some(e) => format!("{}: {e}", e.code()),
        None => format!("http-{}", status.as_u16()),
    };
    AuditRecord {
        at: now_ms(),
        user_id: caller.as_ref().and_then(|c| c.user_id.clone()),
        username: caller.as_ref().map(|c| c.username.clone()),
        role: caller.map(|c| c.role),
        plan_id: req.match_info().get("id").map(str::to_string),
        action: format!(
            "{} {}",
            method_label(req.method()),
            req.match_pattern().as_deref().unwrap_or(UNMATCHED)
        ),
        outcome: problem
            .map_or_else(|| outcome_of(status), ApiError::audit_outcome)
            .into(),
        detail: Some(detail),
        remote: meta.remote,
        request_id: meta.request_id,
    }
}

/// The outcome of a refusal that did not come from an [`ApiError`].
fn outcome_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "denied",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "error",
        _ => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_without_a_problem_get_an_outcome_by_status() {
        assert_eq!(outcome_of(StatusCode::UNAUTHORIZED), "denied");
        assert_eq!(outcome_of(StatusCode::NOT_FOUND), "not_found");
        assert_eq!(outcome_of(StatusCode::BAD_GATEWAY), "error");
        assert_eq!(outcome_of(StatusCode::BAD_REQUEST), "refused");
    }
}
