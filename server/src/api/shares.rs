//! `/v1/plans/{id}/shares`: a family's consent to share its plan with
//! another node (a move, a placement elsewhere), recorded and withdrawn by
//! the people who may speak for it: facilitators, caregivers, supervisors.
//! While a grant is live the plan syncs with that node; a revocation or
//! expiry stops that from then on. What the other node already holds stays
//! there, under its own records duty. With a grant, the plan can also move
//! its home to that node (`transfer`: the family moved).

use super::extract::{AuthUser, JsonBody};
use super::plans::{audited, authorized, per_caller};
use crate::app::App;
use crate::audit::{Action, Audit};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::openapi::problems::{INTERNAL, PLAN_NOT_FOUND};
use crate::store::consent::{self, Grant};
use actix_web::{web, HttpResponse};
use wrapsync_shared::api::{Share, ShareList, ShareRequest, Transfer, TransferRequest};
use wrapsync_shared::roles::Role;

/// The plan section a sharing grant belongs to, for [`Role::sees`].
const CONSENTS: &str = "/consents";

fn view(grant: &Grant, now: i64) -> Share {
    Share {
        node: grant.node_id.clone(),
        scope: grant.scope.clone(),
        granted_at: grant.granted_at,
        expires_at: grant.expires_at,
        revoked_at: grant.revoked_at,
        live: grant.is_live(now),
    }
}

/// The family's consents to share this plan, live or not.
#[utoipa::path(
    get,
    path = "/v1/plans/{id}/shares",
    operation_id = "list_shares",
    tag = "shares",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plan's id.")),
    responses(
        (status = 200, description = "Every grant, to roles that see the plan's consents; to others, none.", body = ShareList,
            headers(("Vary" = String))),
        (status = 404, description = PLAN_NOT_FOUND),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn list(
    app: web::Data<App>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, role) = authorized(&app, &user, &id, Action::PlanShares).await?;
    let plan = id.to_string();
    // A grant is the family's consent: shown only to roles that see the
    // plan's consents.
    let grants = if role.sees(CONSENTS) {
        app.blocking(move |conn| consent::for_plan(conn, &plan))
            .await?
    } else {
        Vec::new()
    };
    let now = now_ms();
    app.plans.audit(
        Audit::new(&user.actor, Action::PlanShares)
            .plan(&id)
            .at(&user.meta),
    );
    Ok(HttpResponse::Ok()
        .insert_header(per_caller())
        .json(ShareList {
            shares: grants.iter().map(|g| view(g, now)).collect(),
        }))
}

/// Records the family's consent to share this plan with a peer node.
#[utoipa::path(
    post,
    path = "/v1/plans/{id}/shares",
    operation_id = "grant_share",
    tag = "shares",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plan's id.")),
    request_body = ShareRequest,
    responses(
        (status = 201, description = "The grant.", body = Share),
        (status = 400, description = "`malformed-json`, `invalid-request`: an unreadable body, a node that is not a peer, or an `expires_at` in the past."),
        (status = 403, description = "`forbidden`: only a facilitator, caregiver or supervisor records a family's consent."),
        (status = 404, description = PLAN_NOT_FOUND),
        (status = 422, description = "`home-authority`: the plan is a replica; the family's consent is recorded at its home."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn grant(
    app: web::Data<App>,
    user: AuthUser,
    id: web::Path<String>,
    body: Result<JsonBody<ShareRequest>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let (entry, _) = authorized(&app, &user, &id, Action::PlanShare).await?;
    let JsonBody(body) = audited(&app, &user, Some(&id), Action::PlanShare, body)?;
    let grant = app
        .plans
        .share(
            &entry,
            &user.actor,
            &*app.peers().await?,
            &body.node,
            body.expires_at,
            &user.meta,
        )
        .await?;
    Ok(HttpResponse::Created().json(view(&grant, grant.granted_at)))
}

/// Withdraws the family's consent: the plan no longer syncs with that node.
#[utoipa::path(
    post,
    path = "/v1/plans/{id}/shares/{node}/revoke",
    operation_id = "revoke_share",
    tag = "shares",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The plan's id."),
        ("node" = String, Path, description = "The peer node's id."),
    ),
    responses(
        (status = 204, description = "Revoked."),
        (status = 403, description = "`forbidden`: only a facilitator, caregiver or supervisor withdraws a family's consent."),
        (status = 404, description = "`not-found`: no such plan, not on its team, or no live grant to that node."),
        (status = 422, description = "`home-authority`: the plan is a replica; the family's consent is withdrawn at its home."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn revoke(
    app: web::Data<App>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, node) = path.into_inner();
    let (entry, role) = authorized(&app, &user, &id, Action::PlanUnshare).await?;
    app.plans
        .unshare(&entry, &user.actor, role, &node, &user.meta)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Moves the plan's home to a node the family consented to share it with
/// (facilitators and supervisors): `200` once the new home holds it, `202`
/// while it cannot be reached (this node keeps trying).
#[utoipa::path(
    post,
    path = "/v1/plans/{id}/transfer",
    operation_id = "transfer_plan",
    tag = "shares",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The plan's id.")),
    request_body = TransferRequest,
    responses(
        (status = 200, description = "Moved: the new home holds the plan.", body = Transfer),
        (status = 202, description = "Pending: the new home could not be reached yet; this node keeps trying.", body = Transfer),
        (status = 400, description = "`malformed-json`, `invalid-request`: an unreadable body, or a node that is not a peer."),
        (status = 403, description = "`forbidden`: only a facilitator or supervisor moves a plan, or a field of the roster the caller may not change."),
        (status = 404, description = PLAN_NOT_FOUND),
        (status = 409, description = "`conflict`: no live consent to share with that node, or a plan homed elsewhere; `transfer-refused`: the other node refused it (the plan stays)."),
        (status = 422, description = "`invalid-op`, `schema-violation`: the roster could not be qualified for the move."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn transfer(
    app: web::Data<App>,
    user: AuthUser,
    id: web::Path<String>,
    body: Result<JsonBody<TransferRequest>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let (entry, role) = authorized(&app, &user, &id, Action::PlanTransfer).await?;
    let action = Action::PlanTransfer;
    let JsonBody(body) = audited(&app, &user, Some(&id), action, body)?;
    if !matches!(role, Role::Facilitator | Role::Supervisor) {
        let e = ApiError::Forbidden("a facilitator or supervisor moves a plan".into());
        return audited(&app, &user, Some(&id), action, Err(e));
    }
    let cx = app.federated();
    let started =
        crate::federation::transfer::start(&cx, entry, &user.actor, &body.node, user.meta.clone())
            .await;
    let transfer = audited(&app, &user, Some(&id), action, started)?;
    Ok(if transfer.state == "done" {
        HttpResponse::Ok().json(transfer)
    } else {
        HttpResponse::Accepted().json(transfer)
    })
}
