//! `/v1/plans`: list, create, read, edit by ops, history. Every call that
//! touches a plan is audited, refusals included.

use super::extract::{AuthUser, JsonBody};
use crate::app::App;
use crate::error::ApiError;
use crate::plans::{audit_record, PlanEntry};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::sync::Arc;
use wrapsync_shared::api::{CreatePlanRequest, OpsRequest, OpsResponse, PlanList};
use wrapsync_shared::roles::Role;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
    updated_since: Option<i64>,
}

const MAX_PAGE: i64 = 200;

pub async fn list(
    app: web::Data<App>,
    user: AuthUser,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let after = params.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut plans = app
        .plans
        .list(&user.actor, params.updated_since, after, limit + 1)
        .await?;
    let next = if plans.len() as i64 > limit {
        plans.truncate(limit as usize);
        plans.last().map(|p| format!("{}.{}", p.updated_at, p.id))
    } else {
        None
    };
    app.plans.audit(audit_record(
        &user.actor,
        None,
        "plan.list",
        "ok",
        Some(format!("{} plans", plans.len())),
        &user.meta,
    ));
    Ok(HttpResponse::Ok().json(PlanList { plans, next }))
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    cursor
        .split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
        .ok_or_else(|| ApiError::InvalidRequest("cursor is not one this node gave out".into()))
}

pub async fn create(
    app: web::Data<App>,
    user: AuthUser,
    body: Result<JsonBody<CreatePlanRequest>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let body = audited_body(&app, &user, None, "plan.create", body)?;
    if !user.actor.role.may_create_plans() {
        app.plans.audit(audit_record(
            &user.actor,
            None,
            "plan.create",
            "denied",
            None,
            &user.meta,
        ));
        return Err(ApiError::Forbidden(
            "only facilitators and supervisors start plans".into(),
        ));
    }
    let display_name = user.actor.username.clone();
    let result = app
        .plans
        .create(
            &user.actor,
            display_name,
            &body.title,
            body.enrolled_on,
            user.meta.clone(),
        )
        .await;
    match result {
        Ok(view) => Ok(HttpResponse::Created()
            .insert_header((header::ETAG, view.etag.clone()))
            .insert_header((header::LOCATION, format!("/v1/plans/{}", view.id)))
            .content_type("application/json")
            .body(view.body_for(user.actor.role))),
        Err(e) => {
            app.plans.audit(audit_record(
                &user.actor,
                None,
                "plan.create",
                e.audit_outcome(),
                Some(e.to_string()),
                &user.meta,
            ));
            Err(e)
        }
    }
}

/// The parsed body, or the refusal of an unreadable one (malformed,
/// oversized, compressed), audited like any other refusal.
fn audited_body<T>(
    app: &App,
    user: &AuthUser,
    plan: Option<&str>,
    action: &str,
    body: Result<JsonBody<T>, ApiError>,
) -> Result<T, ApiError> {
    body.map(|JsonBody(body)| body).map_err(|e| {
        app.plans.audit(audit_record(
            &user.actor,
            plan,
            action,
            e.audit_outcome(),
            Some(e.to_string()),
            &user.meta,
        ));
        e
    })
}

/// The plan and the caller's role on it, or `404` (audited) when they are
/// not on its team — the same answer as for a plan that does not exist.
async fn authorized(
    app: &App,
    user: &AuthUser,
    id: &str,
    action: &str,
) -> Result<(Arc<PlanEntry>, Role), ApiError> {
    let entry = app.plans.get(id).await?;
    let found = entry.and_then(|e| e.view().role_of(&user.actor).map(|role| (e, role)));
    match found {
        Some(found) => Ok(found),
        None => {
            app.plans.audit(audit_record(
                &user.actor,
                Some(id),
                action,
                "not_found",
                None,
                &user.meta,
            ));
            Err(ApiError::NotFound)
        }
    }
}

pub async fn read(
    app: web::Data<App>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (entry, role) = authorized(&app, &user, &id, "plan.read").await?;
    let view = entry.view();
    app.plans.audit(audit_record(
        &user.actor,
        Some(&id),
        "plan.read",
        "ok",
        None,
        &user.meta,
    ));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == view.etag || t.trim() == "*")
        });
    if fresh {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, view.etag.clone()))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, view.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .content_type("application/json")
        .body(view.body_for(role)))
}

pub async fn ops(
    app: web::Data<App>,
    user: AuthUser,
    id: web::Path<String>,
    body: Result<JsonBody<OpsRequest>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let (entry, role) = authorized(&app, &user, &id, "plan.ops").await?;
    let body = audited_body(&app, &user, Some(&id), "plan.ops", body)?;
    let summary = wrapsync_shared::ops::summarize(&body.ops);
    match app
        .plans
        .apply(
            &entry,
            &user.actor,
            body.base_version,
            body.ops,
            user.meta.clone(),
        )
        .await
    {
        Ok((view, results)) => {
            let mut plan = view.plan.clone();
            if let Some(obj) = plan.as_object_mut() {
                for section in role.hidden_sections() {
                    obj.remove(*section);
                }
            }
            Ok(HttpResponse::Ok()
                .insert_header((header::ETAG, view.etag.clone()))
                .json(OpsResponse {
                    id: view.id.clone(),
                    version: view.version.clone(),
                    plan,
                    results,
                }))
        }
        Err(e) => {
            let detail = format!("{summary}: {e}");
            app.plans.audit(audit_record(
                &user.actor,
                Some(&id),
                "plan.ops",
                e.audit_outcome(),
                Some(detail),
                &user.meta,
            ));
            Err(e)
        }
    }
}

pub async fn history(
    app: web::Data<App>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (entry, _) = authorized(&app, &user, &id, "plan.history").await?;
    let changes = app.plans.history(&entry).await?;
    app.plans.audit(audit_record(
        &user.actor,
        Some(&id),
        "plan.history",
        "ok",
        None,
        &user.meta,
    ));
    Ok(HttpResponse::Ok().json(wrapsync_shared::api::History {
        id: id.into_inner(),
        changes,
    }))
}
