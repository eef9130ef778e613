//! `/v1/plans`: list, create, read, edit by ops, history. Every call that
//! touches a plan is audited, refusals included.

use super::extract::{AuthUser, JsonBody, NewPlanBody, SyncBatchBody, SyncBody};
use crate::app::App;
use crate::error::ApiError;
use crate::plans::{audit_record, PlanEntry};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use wrapsync_shared::api::{
    CreatePlanRequest, OpsRequest, OpsResponse, PlanList, SyncBatchReply, SyncBatchResult,
    MAX_SYNC_BATCH,
};
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
    body: Result<NewPlanBody<CreatePlanRequest>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let body = audited(&app, &user, None, "plan.create", body)?;
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
    let created = match body {
        NewPlanBody::Json(body) => {
            let display_name = user.actor.username.clone();
            app.plans
                .create(
                    &user.actor,
                    display_name,
                    &body.title,
                    body.enrolled_on,
                    user.meta.clone(),
                )
                .await
        }
        NewPlanBody::Document(bytes) => {
            app.plans
                .import(&user.actor, &bytes, user.meta.clone())
                .await
        }
    };
    let view = audited(&app, &user, None, "plan.create", created)?;
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, view.etag.clone()))
        .insert_header((header::LOCATION, format!("/v1/plans/{}", view.id)))
        .content_type("application/json")
        .body(view.body_for(user.actor.role)))
}

/// Passes `result` through, auditing it if it is a refusal (an unreadable
/// body, an invalid change, …) like every other refusal touching a plan.
fn audited<T>(
    app: &App,
    user: &AuthUser,
    plan: Option<&str>,
    action: &str,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    result.inspect_err(|e| {
        app.plans.audit(audit_record(
            &user.actor,
            plan,
            action,
            e.audit_outcome(),
            Some(e.to_string()),
            &user.meta,
        ));
    })
}

/// The plan and the caller's role on it, or `404` (audited) when they are
/// not on its team — the same answer as for a plan that does not exist.
pub(super) async fn authorized(
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
    let JsonBody(body) = audited(&app, &user, Some(&id), "plan.ops", body)?;
    let applied = app
        .plans
        .apply(
            &entry,
            &user.actor,
            body.base_version,
            body.ops,
            user.meta.clone(),
        )
        .await;
    let (view, results) = audited(&app, &user, Some(&id), "plan.ops", applied)?;
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

/// One round of the Automerge sync protocol (see `plans::sync`).
pub async fn sync(
    app: web::Data<App>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<String>,
    body: Result<SyncBody, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let device = device_key(&req, &user);
    let (message, binary) = match body {
        Ok(SyncBody::Json(message)) => (Ok(message), false),
        // An empty body: the device has nothing to say and asks for the node's.
        Ok(SyncBody::Binary(message)) => (Ok((!message.is_empty()).then_some(message)), true),
        Err(e) => (Err(e), false),
    };
    let reply = sync_round(&app, &user, &device, &id, message).await?;
    Ok(match (binary, reply) {
        (true, Some(reply)) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(reply),
        (true, None) => HttpResponse::NoContent().finish(),
        (false, reply) => HttpResponse::Ok().json(serde_json::json!({
            "message": reply.map(|r| base64::engine::general_purpose::STANDARD.encode(r)),
        })),
    })
}

/// One round for many plans (`SyncBatch`): each plan's round is checked,
/// run and audited exactly as if it came alone; one plan's refusal is
/// reported in its entry and does not affect the others.
pub async fn sync_batch(
    app: web::Data<App>,
    user: AuthUser,
    req: HttpRequest,
    body: Result<SyncBatchBody, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let SyncBatchBody { batch, cbor } = audited(&app, &user, None, "plan.sync", body)?;
    if batch.plans.len() > MAX_SYNC_BATCH {
        return Err(ApiError::InvalidRequest(format!(
            "at most {MAX_SYNC_BATCH} plans per request"
        )));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = batch.plans.iter().find(|item| !seen.insert(&item.plan)) {
        return Err(ApiError::InvalidRequest(format!(
            "plan {} appears twice",
            twice.plan
        )));
    }
    let device = device_key(&req, &user);
    let (app, user, device) = (&app, &user, &device);
    // A few plans at a time: enough to keep both cores busy, few enough
    // that one device's batch cannot starve everyone else's requests.
    let plans: Vec<SyncBatchResult> = futures_util::stream::iter(batch.plans)
        .map(|item| async move {
            let mut result = SyncBatchResult {
                plan: item.plan,
                message: None,
                changes: None,
                heads: None,
                problem: None,
            };
            let outcome =
                match (item.have, item.message) {
                    (Some(_), Some(_)) => Err(ApiError::InvalidRequest(
                        "send `message` or `have`, not both".into(),
                    )),
                    (Some(have), None) => catch_up_round(app, user, &result.plan, &have).await.map(
                        |(changes, heads)| {
                            result.changes = changes;
                            result.heads = Some(heads);
                        },
                    ),
                    (None, message) => sync_round(app, user, device, &result.plan, Ok(message))
                        .await
                        .map(|message| result.message = message),
                };
            result.problem = outcome.err().map(|e| e.problem());
            result
        })
        .buffered(4)
        .collect()
        .await;
    let reply = SyncBatchReply { plans };
    if cbor {
        let mut body = Vec::new();
        ciborium::into_writer(&reply, &mut body).map_err(|e| ApiError::Internal(e.to_string()))?;
        return Ok(HttpResponse::Ok()
            .content_type("application/cbor")
            .body(body));
    }
    Ok(HttpResponse::Ok().json(reply))
}

/// The changes of a plan after `have` and its heads now, for a device with
/// no changes of its own to send (see `SyncBatchItem::have`).
async fn catch_up_round(
    app: &App,
    user: &AuthUser,
    id: &str,
    have: &[String],
) -> Result<(Option<Vec<u8>>, Vec<String>), ApiError> {
    let (entry, role) = authorized(app, user, id, "plan.sync").await?;
    let checked = if !role.hidden_sections().is_empty() {
        Err(ApiError::Forbidden(format!(
            "a {role} sees part of this plan; read it with GET /v1/plans/{{id}}"
        )))
    } else {
        have.iter()
            .map(|h| h.parse())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ApiError::InvalidRequest("`have` holds a malformed head".into()))
    };
    let have = audited(app, user, Some(id), "plan.sync", checked)?;
    let result = app
        .plans
        .changes_after(&entry, &user.actor, &have, user.meta.clone())
        .await;
    audited(app, user, Some(id), "plan.sync", result)
}

/// A sync round on one plan for one device, refusals audited.
async fn sync_round(
    app: &App,
    user: &AuthUser,
    device: &str,
    id: &str,
    message: Result<Option<Vec<u8>>, ApiError>,
) -> Result<Option<Vec<u8>>, ApiError> {
    let (entry, role) = authorized(app, user, id, "plan.sync").await?;
    if !role.hidden_sections().is_empty() {
        // An Automerge document cannot be synced in part: a role that may
        // not see every section reads the plan through GET instead.
        let refused = ApiError::Forbidden(format!(
            "a {role} sees part of this plan; read it with GET /v1/plans/{{id}}"
        ));
        return audited(app, user, Some(id), "plan.sync", Err(refused));
    }
    let message = audited(app, user, Some(id), "plan.sync", message)?;
    let result = app
        .plans
        .sync(
            &entry,
            &user.actor,
            device,
            message.as_deref(),
            user.meta.clone(),
        )
        .await;
    audited(app, user, Some(id), "plan.sync", result)
}

/// Whose sync state a round uses: the `Device-Id` header if the app sends
/// one, else the login session; always scoped to the user, so one person's
/// device id cannot touch another's state.
fn device_key(req: &HttpRequest, user: &AuthUser) -> String {
    let device = super::extract::header_token(req, "device-id").map_or_else(
        || format!("session:{}", user.session_id),
        |d| format!("device:{d}"),
    );
    format!("{}/{device}", user.actor.user_id)
}
