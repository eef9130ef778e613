//! `/v1/admin`: node operations for supervisors. Peers: the nodes this
//! node trusts, beside those in its config file. Adding a peer shares
//! nothing by itself; a plan goes to a peer only with a family's consent.

use super::extract::{AuthUser, JsonBody};
use crate::app::App;
use crate::audit::{Action, Audit, Outcome};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::federation::{Peer, Peers};
use crate::openapi::problems::INTERNAL;
use crate::store::audit::insert_audit;
use crate::store::peers as stored;
use actix_web::{web, HttpResponse};
use wrapsync_shared::api::{PeerEntry, PeerList};
use wrapsync_shared::roles::Role;

fn supervisor(app: &App, user: &AuthUser, action: Action) -> Result<(), ApiError> {
    if user.actor.role == Role::Supervisor {
        return Ok(());
    }
    app.plans.audit(
        Audit::new(&user.actor, action)
            .outcome(Outcome::Denied)
            .at(&user.meta),
    );
    Err(ApiError::Forbidden(
        "node administration is for supervisors".into(),
    ))
}

fn listed(app: &App, peer: &Peer) -> PeerEntry {
    let source = if app.federation.is_configured(&peer.id) {
        "config"
    } else {
        "admin"
    };
    PeerEntry {
        id: peer.id.clone(),
        url: peer.url.clone(),
        public_key: peer.public_key.clone(),
        source: source.into(),
        status: app.federation.outbound.status(&peer.id),
    }
}

/// The nodes this node trusts, from its config file and added at run time, and how sending to each goes.
#[utoipa::path(
    get,
    path = "/v1/admin/peers",
    operation_id = "list_peers",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every peer.", body = PeerList),
        (status = 403, description = "`forbidden`: node administration is for supervisors."),
    )
)]
pub async fn peers(app: web::Data<App>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    supervisor(&app, &user, Action::PeerList)?;
    let peers = app.peers().await?;
    let mut all: Vec<&Peer> = peers.all().collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(HttpResponse::Ok().json(PeerList {
        peers: all.into_iter().map(|p| listed(&app, p)).collect(),
    }))
}

/// Trusts another node (stored; survives a restart). Shares nothing by itself.
#[utoipa::path(
    post,
    path = "/v1/admin/peers",
    tag = "admin",
    security(("bearer" = [])),
    request_body = Peer,
    responses(
        (status = 201, description = "The peer as listed.", body = PeerEntry),
        (status = 400, description = "`malformed-json`, `invalid-request`: an unreadable body, this node's own id, or a URL or key that is not well-formed."),
        (status = 403, description = "`forbidden`: node administration is for supervisors."),
        (status = 409, description = "`conflict`: the peer is in the config file; change it there."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn add_peer(
    app: web::Data<App>,
    user: AuthUser,
    body: Result<JsonBody<Peer>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    supervisor(&app, &user, Action::PeerAdd)?;
    let JsonBody(peer) = body?;
    check_peer(&app, &peer)?;
    let audit = Audit::new(&user.actor, Action::PeerAdd)
        .detail(format!("{} at {}", peer.id, peer.url))
        .at(&user.meta);
    let kept = peer.clone();
    let all = app
        .writer
        .write(move |conn| {
            stored::put(conn, &kept, now_ms())?;
            insert_audit(conn, &[audit])?;
            stored::list(conn)
        })
        .await?;
    app.federation.set_stored(all).map_err(ApiError::Internal)?;
    Ok(HttpResponse::Created().json(listed(&app, &peer)))
}

/// Stops trusting a peer added at run time.
#[utoipa::path(
    post,
    path = "/v1/admin/peers/{id}/remove",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The peer's node id.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "`forbidden`: node administration is for supervisors."),
        (status = 404, description = "`not-found`: no peer of that id was added at run time."),
        (status = 409, description = "`conflict`: the peer is in the config file; remove it there."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn remove_peer(
    app: web::Data<App>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    supervisor(&app, &user, Action::PeerRemove)?;
    if app.federation.is_configured(&id) {
        return Err(ApiError::Conflict(format!(
            "peer {id} is in the config file; remove it there"
        )));
    }
    let audit = Audit::new(&user.actor, Action::PeerRemove)
        .detail(id.to_string())
        .at(&user.meta);
    let gone = id.to_string();
    let (removed, all) = app
        .writer
        .write(move |conn| {
            let removed = stored::remove(conn, &gone)?;
            if removed {
                insert_audit(conn, &[audit])?;
            }
            Ok((removed, stored::list(conn)?))
        })
        .await?;
    app.federation.set_stored(all).map_err(ApiError::Internal)?;
    if !removed {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A peer worth storing: a node id, an http(s) URL, an Ed25519 key; not
/// this node, not one from the config file.
pub fn check_peer(app: &App, peer: &Peer) -> Result<(), ApiError> {
    if peer.id == app.config.node_id {
        return Err(ApiError::InvalidRequest(
            "a node is not its own peer".into(),
        ));
    }
    if app.federation.is_configured(&peer.id) {
        return Err(ApiError::Conflict(format!(
            "peer {} is in the config file; change it there",
            peer.id
        )));
    }
    Peers::new(std::slice::from_ref(peer)).map_err(ApiError::InvalidRequest)?;
    Ok(())
}
