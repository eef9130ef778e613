//! `/v1/plans`: list, create, read, edit by ops, history. Every call that
//! touches a plan is audited, refusals included.

use super::extract::{AuthUser, JsonBody, NewPlanBody, SyncBatchBody, SyncBody};
use crate::app::App;
use crate::audit::{Action, Audit, Outcome};
use crate::error::ApiError;
use crate::openapi::problems::{INTERNAL, PLAN_NOT_FOUND, PLAN_QUOTA, WRITE_BUDGET};
use crate::plans::PlanEntry;
use crate::store::plans::SyncStateKey;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use wrapsync_shared::api::{
    CreatePlanRequest, History, OpsRequest, OpsResponse, PlanDocument, PlanList, SyncBatch,
    SyncBatchReply, SyncBatchResult, SyncMessage, MAX_SYNC_BATCH,
};
use wrapsync_shared::roles::Role;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Plans per page, 1–200 (default 50).
    limit: Option<i64>,
    /// `next` of the previous page.
    cursor: Option<String>,
    /// Only plans changed at or after this time (ms since the epoch).
    updated_since: Option<i64>,
}

const MAX_PAGE: i64 = 200;

/// The plans the caller may see, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/plans",
    operation_id = "list_plans",
    tag = "plans",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of plans; `next` continues.", body = PlanList),
        (status = 400, description = "`invalid-request`: `limit` outside 1–200, a `cursor` this node did not give out, or an unknown parameter."),
        (status = 500, description = INTERNAL),
    )
)]
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
    app.plans.audit(
        Audit::new(&user.actor, Action::PlanList)
            .detail(format!("{} plans", plans.len()))
            .at(&user.meta),
    );
    Ok(HttpResponse::Ok().json(PlanList { plans, next }))
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    cursor
        .split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
        .ok_or_else(|| ApiError::InvalidRequest("cursor is not one this node gave out".into()))
}

/// Starts a plan (facilitators and supervisors), from fields or from a whole saved Automerge document.
#[utoipa::path(
    post,
    path = "/v1/plans",
    operation_id = "create_plan",
    tag = "plans",
    security(("bearer" = [])),
    request_body(
        description = "Fields to start a plan, or a saved Automerge document made by any \
                       Automerge client (held to the same checks as synced changes; the caller \
                       must be on its team).",
        content(
            (CreatePlanRequest = "application/json"),
            ("application/octet-stream"),
        )
    ),
    responses(
        (status = 201, description = "The new plan, with `ETag` and `Location`.", body = PlanDocument,
            headers(("ETag" = String), ("Location" = String), ("Vary" = String))),
        (status = 400, description = "`malformed-json`, `invalid-request`: an unreadable JSON body; `malformed-document`: bytes that are not a saved Automerge document."),
        (status = 403, description = "`forbidden`: only facilitators and supervisors start plans."),
        (status = 413, description = "`document-too-large`: the document decodes to more than `max_document_bytes`; `message-too-large`: it declares more operations than the caller may import (`max_sync_ops_staff`); `plan-quota`: its JSON is larger than `plan_quota_bytes`."),
        (status = 422, description = "`invalid-op`, `schema-violation`: fields the plan schema refuses; `change-forbidden`, `schema-violation`, `unsupported-op`: a document the caller's role may not make, or that breaks the schema; `invalid-item-id`: an item whose id is not a canonical ULID or is used twice."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn create(
    app: web::Data<App>,
    user: AuthUser,
    body: Result<NewPlanBody<CreatePlanRequest>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let body = audited(&app, &user, None, Action::PlanCreate, body)?;
    if !user.actor.role.may_create_plans() {
        app.plans.audit(
            Audit::new(&user.actor, Action::PlanCreate)
                .outcome(Outcome::Denied)
                .at(&user.meta),
        );
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
    let view = audited(&app, &user, None, Action::PlanCreate, created)?;
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, view.etag_for(user.actor.role)))
        .insert_header(per_caller())
        .insert_header((header::LOCATION, format!("/v1/plans/{}", view.id)))
        .content_type("application/json")
        .body(view.body_for(user.actor.role)))
}

/// Passes `result` through, auditing it if it is a refusal (an unreadable
/// body, an invalid change, …): how a handler audits the refusals it
/// answers (see `crate::audit` for who audits what).
pub(super) fn audited<T>(
    app: &App,
    user: &AuthUser,
    plan: Option<&str>,
    action: Action,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    result.inspect_err(|e| {
        app.plans.audit(
            Audit::new(&user.actor, action)
                .plan_opt(plan)
                .refused(e)
                .at(&user.meta),
        );
    })
}

/// The plan and the caller's role on it, or `404` (audited) when they are
/// not on its team — the same answer as for a plan that does not exist.
pub(super) async fn authorized(
    app: &App,
    user: &AuthUser,
    id: &str,
    action: Action,
) -> Result<(Arc<PlanEntry>, Role), ApiError> {
    let entry = app.plans.get(id).await?;
    let found = entry.and_then(|e| e.view().role_of(&user.actor).map(|role| (e, role)));
    match found {
        Some(found) => Ok(found),
        None => {
            app.plans.audit(
                Audit::new(&user.actor, action)
                    .plan(id)
                    .outcome(Outcome::NotFound)
                    .at(&user.meta),
            );
            Err(ApiError::NotFound)
        }
    }
}

/// One plan at its current version, as the caller's role may see it.
#[utoipa::path(
    get,
    path = "/v1/plans/{id}",
    operation_id = "read_plan",
    tag = "plans",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The plan's id."),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier read: `304` if the plan is unchanged."),
    ),
    responses(
        (status = 200, description = "The plan as the caller's role sees it; the `ETag` is that representation's (`Vary: Authorization`).", body = PlanDocument, headers(("ETag" = String), ("Vary" = String))),
        (status = 304, description = "Unchanged since the `ETag` sent (an `ETag` of the same representation).", headers(("ETag" = String), ("Vary" = String))),
        (status = 404, description = PLAN_NOT_FOUND),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn read(
    app: web::Data<App>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (entry, role) = authorized(&app, &user, &id, Action::PlanRead).await?;
    let view = entry.view();
    app.plans.audit(
        Audit::new(&user.actor, Action::PlanRead)
            .plan(&id)
            .at(&user.meta),
    );
    let etag = view.etag_for(role);
    if super::still_fresh(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header(per_caller())
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header(per_caller())
        .content_type("application/json")
        .body(view.body_for(role)))
}

/// `Vary: Authorization`: the body depends on who asks (their role's view
/// of the plan, their plans, their history), so no cache may hand one
/// caller's answer to another.
pub(super) fn per_caller() -> (header::HeaderName, &'static str) {
    (header::VARY, "Authorization")
}

/// Edits a plan by JSON Patch-shaped ops, all or nothing.
#[utoipa::path(
    post,
    path = "/v1/plans/{id}/ops",
    operation_id = "edit_plan",
    tag = "plans",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The plan's id."),
        ("Prefer" = Option<String>, Header, description = "`return=minimal` (RFC 7240): answer the version and the changed paths, not the plan."),
    ),
    request_body = OpsRequest,
    responses(
        (status = 200, description = "The plan after the ops as the caller's role sees it, and what each op produced. Minimal \
            (no `plan`; `changed` lists the paths written) when asked with `Prefer: return=minimal` \
            or when the plan is larger than `ops_answer_plan_bytes` (256 KiB by default); \
            `Preference-Applied: return=minimal` then says so.", body = OpsResponse,
            headers(("ETag" = String), ("Vary" = String), ("Preference-Applied" = Option<String>))),
        (status = 400, description = "`malformed-json`, `invalid-request`: an unreadable body, or a `base_version` entry that is not a change hash."),
        (status = 403, description = "`forbidden`: a field the caller's role may not change, any path in a section the caller's role does not see (the same answer whether or not the item exists), or a plan homed at another node (edited by its home's team)."),
        (status = 404, description = PLAN_NOT_FOUND),
        (status = 409, description = "`test-failed`: a `test` op did not hold; `unknown-version`: `base_version` names changes this node has never seen."),
        (status = 413, description = PLAN_QUOTA),
        (status = 422, description = "`invalid-op`, `unsupported-op`, `schema-violation`, `no-such-item`: an op the plan refuses (`op_index` says which); `invalid-item-id`: a new item's id that is not a canonical ULID or is already used anywhere in the plan; `home-authority`: a roster (`/team`) or consent (`/consents`) change on a replica, or by a person of another node: only the plan's home changes those; or a change to a consent naming a node, which mirrors the family's grant and changes only through `/v1/plans/{id}/shares`."),
        (status = 429, description = WRITE_BUDGET),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn ops(
    app: web::Data<App>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<String>,
    body: Result<JsonBody<OpsRequest>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let (entry, role) = authorized(&app, &user, &id, Action::PlanOps).await?;
    let JsonBody(body) = audited(&app, &user, Some(&id), Action::PlanOps, body)?;
    // What each op writes (`test` nothing), for a minimal answer.
    let written: Vec<Option<String>> = body
        .ops
        .iter()
        .map(|op| (op.op != "test").then(|| op.path.clone()))
        .collect();
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
    let (view, results) = audited(&app, &user, Some(&id), Action::PlanOps, applied)?;
    if prefers_minimal(&req) || view.size() > app.config.ops_answer_plan_bytes {
        let changed = written
            .into_iter()
            .zip(&results)
            .filter_map(|(path, result)| match (path, &result.id) {
                (Some(path), Some(id)) => Some(format!("{path}/{id}")),
                (path, _) => path,
            })
            .collect();
        return Ok(HttpResponse::Ok()
            .insert_header((header::ETAG, view.etag_for(role)))
            .insert_header(per_caller())
            .insert_header(("Preference-Applied", "return=minimal"))
            .json(OpsResponse {
                id: view.id.clone(),
                version: view.version.clone(),
                plan: serde_json::Value::Null,
                results,
                changed: Some(changed),
            }));
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, view.etag_for(role)))
        .insert_header(per_caller())
        .json(OpsResponse {
            id: view.id.clone(),
            version: view.version.clone(),
            plan: view.plan_for(role),
            results,
            changed: None,
        }))
}

/// Whether the request asks for `return=minimal` (RFC 7240: preferences
/// are comma-separated, in one or several `Prefer` headers, with optional
/// parameters after `;`, case-insensitive).
fn prefers_minimal(req: &HttpRequest) -> bool {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.split(';').next())
        .any(|p| {
            p.trim().split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("return")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("minimal")
            })
        })
}

/// Who changed what in a plan, and when.
#[utoipa::path(
    get,
    path = "/v1/plans/{id}/history",
    operation_id = "plan_history",
    tag = "plans",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plan's id.")),
    responses(
        (status = 200, description = "Every change the caller's role may know of, oldest first (a role that does not see some sections gets only the changes summarised as touching sections it sees).", body = History,
            headers(("Vary" = String))),
        (status = 404, description = PLAN_NOT_FOUND),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn history(
    app: web::Data<App>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (entry, role) = authorized(&app, &user, &id, Action::PlanHistory).await?;
    let changes = app.plans.history(&entry, role).await?;
    app.plans.audit(
        Audit::new(&user.actor, Action::PlanHistory)
            .plan(&id)
            .at(&user.meta),
    );
    Ok(HttpResponse::Ok()
        .insert_header(per_caller())
        .json(History {
            id: id.into_inner(),
            changes,
        }))
}

/// One round of the Automerge sync protocol (see `plans::sync`).
#[utoipa::path(
    post,
    path = "/v1/plans/{id}/sync",
    operation_id = "sync_plan",
    tag = "sync",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The plan's id."),
        ("Device-Id" = Option<String>, Header, description = "The device (1–64 letters, digits, `-`, `_`) whose sync state the round uses; else the login session."),
    ),
    request_body(
        description = "The device's Automerge sync message: base64 in JSON, or raw bytes (an empty body: no message).",
        content(
            (SyncMessage = "application/json"),
            ("application/octet-stream"),
        )
    ),
    responses(
        (status = 200, description = "The node's next message, in the form the request came in.", content(
            (SyncMessage = "application/json"),
            ("application/octet-stream"),
        )),
        (status = 204, description = "Raw bytes only: the node has nothing to say."),
        (status = 400, description = "`malformed-json`, `invalid-request`: an unreadable body or a `message` that is not base64; `malformed-sync-message`: not an Automerge sync message."),
        (status = 403, description = "`forbidden`: the caller's role sees only part of this plan, which cannot be synced (read it with GET)."),
        (status = 404, description = PLAN_NOT_FOUND),
        (status = 413, description = "`document-too-large`: the message's changes decode to more than `max_document_bytes`; `message-too-large`: they declare more operations than the caller's role may send in one message (`max_sync_ops_member`, `max_sync_ops_staff`), counted before decoding; `sync-state-too-large`: its Bloom filter, heads or needs describe more changes than the plan's size calls for; `plan-quota`: they would grow the plan past `plan_quota_bytes` (refused whole; the plan and the sync state stay as they were)."),
        (status = 422, description = "`change-forbidden`, `schema-violation`, `unsupported-op`: changes refused whole (role, schema, or another person's actor); `invalid-item-id`: a new item whose id is not a canonical ULID or is already used in the plan; `home-authority`: roster or consent changes on a replica, or by a person of another node, or to a consent naming a node (it mirrors the family's grant: `/v1/plans/{id}/shares`)."),
        (status = 429, description = WRITE_BUDGET),
        (status = 500, description = INTERNAL),
    )
)]
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
        (false, message) => HttpResponse::Ok().json(SyncMessage { message }),
    })
}

/// One round for many plans (`SyncBatch`): each plan's round is checked,
/// run and audited exactly as if it came alone; one plan's refusal is
/// reported in its entry and does not affect the others.
#[utoipa::path(
    post,
    path = "/v1/sync",
    operation_id = "sync_plans",
    tag = "sync",
    security(("bearer" = [])),
    params(("Device-Id" = Option<String>, Header, description = "As for `POST /v1/plans/{id}/sync`.")),
    request_body(
        description = "At most 500 plans; messages base64 in JSON, byte strings in CBOR.",
        content(
            (SyncBatch = "application/json"),
            (SyncBatch = "application/cbor"),
        )
    ),
    responses(
        (status = 200, description = "One entry per plan, in the order asked, in the request's format; a plan's refusal is the `problem` of its entry.", content(
            (SyncBatchReply = "application/json"),
            (SyncBatchReply = "application/cbor"),
        )),
        (status = 400, description = "`malformed-json`, `invalid-request`: an unreadable body, more than 500 plans, or a plan listed twice."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn sync_batch(
    app: web::Data<App>,
    user: AuthUser,
    req: HttpRequest,
    body: Result<SyncBatchBody, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let SyncBatchBody { batch, cbor } = audited(&app, &user, None, Action::PlanSync, body)?;
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
    // What the messages declare, added up from their headers before any
    // round runs: past twice the role's limit on one, the rest wait.
    let admission = app
        .plans
        .device_batch_admission(
            &user.actor,
            batch.plans.iter().map(|item| item.message.as_deref()),
        )
        .await;
    let (app, user, device) = (&app, &user, &device);
    // A few plans at a time: enough to keep both cores busy, few enough
    // that one device's batch cannot starve everyone else's requests.
    let plans: Vec<SyncBatchResult> =
        futures_util::stream::iter(batch.plans.into_iter().zip(admission))
            .map(|(item, admitted)| async move {
                let mut result = SyncBatchResult {
                    plan: item.plan,
                    message: None,
                    changes: None,
                    heads: None,
                    problem: None,
                };
                let outcome = match admitted {
                    Err(e) => audited(app, user, Some(&result.plan), Action::PlanSync, Err(e)),
                    Ok(()) => match (item.have, item.message) {
                        (Some(_), Some(_)) => Err(ApiError::InvalidRequest(
                            "send `message` or `have`, not both".into(),
                        )),
                        (Some(have), None) => catch_up_round(app, user, &result.plan, &have)
                            .await
                            .map(|(changes, heads)| {
                                result.changes = changes;
                                result.heads = Some(heads);
                            }),
                        (None, message) => sync_round(app, user, device, &result.plan, Ok(message))
                            .await
                            .map(|message| result.message = message),
                    },
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
    let (entry, _) = authorized(app, user, id, Action::PlanSync).await?;
    let checked = app.plans.device_sync(&entry, &user.actor).and_then(|sync| {
        have.iter()
            .map(|h| h.parse())
            .collect::<Result<Vec<_>, _>>()
            .map(|have| (sync, have))
            .map_err(|_| ApiError::InvalidRequest("`have` holds a malformed head".into()))
    });
    let (sync, have) = audited(app, user, Some(id), Action::PlanSync, checked)?;
    let result = sync.changes_after(&have, user.meta.clone()).await;
    audited(app, user, Some(id), Action::PlanSync, result)
}

/// A sync round on one plan for one device, refusals audited.
async fn sync_round(
    app: &App,
    user: &AuthUser,
    device: &SyncStateKey,
    id: &str,
    message: Result<Option<Vec<u8>>, ApiError>,
) -> Result<Option<Vec<u8>>, ApiError> {
    let (entry, _) = authorized(app, user, id, Action::PlanSync).await?;
    let sync = audited(
        app,
        user,
        Some(id),
        Action::PlanSync,
        app.plans.device_sync(&entry, &user.actor),
    )?;
    let message = audited(app, user, Some(id), Action::PlanSync, message)?;
    let result = sync
        .round(device, message.as_deref(), user.meta.clone())
        .await;
    audited(app, user, Some(id), Action::PlanSync, result)
}

/// Whose sync state a round uses: the `Device-Id` header if the app sends
/// one, else the login session; always scoped to the user, so one person's
/// device id cannot touch another's state.
fn device_key(req: &HttpRequest, user: &AuthUser) -> SyncStateKey {
    let user_id = user.actor.user_id.clone();
    match crate::observe::header_token(req, "device-id") {
        Some(device) => SyncStateKey::Device {
            user: user_id,
            device: device.to_string(),
        },
        None => SyncStateKey::Session {
            user: user_id,
            session: user.session_id.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::prefers_minimal;
    use actix_web::test::TestRequest;

    #[test]
    fn return_minimal_is_found_among_other_preferences() {
        let asks = |values: &[&str]| {
            let mut req = TestRequest::default();
            for v in values {
                req = req.append_header(("Prefer", *v));
            }
            prefers_minimal(&req.to_http_request())
        };
        assert!(asks(&["return=minimal"]));
        assert!(asks(&["respond-async, Return = \"Minimal\"; x=1"]));
        assert!(asks(&["wait=5", "return=minimal"]));
        assert!(!asks(&[]));
        assert!(!asks(&["return=representation"]));
        assert!(!asks(&["minimal"]));
    }
}
