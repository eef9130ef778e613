//! `/v1/audit`: the audit trail, for supervisors.

use super::extract::AuthUser;
use crate::app::App;
use crate::audit::{Action, Audit, Outcome};
use crate::error::ApiError;
use crate::openapi::problems::INTERNAL;
use crate::store::audit::{query_audit, AuditFilter};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use wrapsync_shared::api::AuditPage;
use wrapsync_shared::roles::Role;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only rows about this plan.
    plan: Option<String>,
    /// Only rows of this username.
    user: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    limit: Option<i64>,
    /// `next` of the previous page.
    cursor: Option<i64>,
}

/// The audit trail, newest first (supervisors).
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "list_audit",
    tag = "admin",
    security(("bearer" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "A page of audit rows; `next` continues.", body = AuditPage),
        (status = 400, description = "`invalid-request`: `limit` outside 1–1000, or an unknown or malformed parameter."),
        (status = 403, description = "`forbidden`: the audit trail is for supervisors."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn list(
    app: web::Data<App>,
    user: AuthUser,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    if user.actor.role != Role::Supervisor {
        app.plans.audit(
            Audit::new(&user.actor, Action::AuditRead)
                .outcome(Outcome::Denied)
                .at(&user.meta),
        );
        return Err(ApiError::Forbidden(
            "the audit trail is for supervisors".into(),
        ));
    }
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidRequest("limit must be 1 to 1000".into()));
    }
    let params = params.into_inner();
    let filter = AuditFilter {
        plan_id: params.plan.clone(),
        username: params.user.clone(),
        before: params.cursor,
        limit: limit + 1,
    };
    let mut entries = app.blocking(move |conn| query_audit(conn, &filter)).await?;
    let next = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id.to_string())
    } else {
        None
    };
    let detail = format!("plan={:?} user={:?}", params.plan, params.user);
    app.plans.audit(
        Audit::new(&user.actor, Action::AuditRead)
            .detail(detail)
            .at(&user.meta),
    );
    Ok(HttpResponse::Ok().json(AuditPage { entries, next }))
}
