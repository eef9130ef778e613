//! The node's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` attributes (see `openapi` for what every document
//! shares, and for the test that holds it to the routes served).

use crate::openapi::problems::NodeProblems;
use actix_web::HttpResponse;
use std::sync::OnceLock;
use utoipa::OpenApi;

/// The node's API: `/v1`, `/federation/v1` and the operations routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wrapsync node",
        description = "A county node: family plans as Automerge documents (`/v1`), \
                       node-to-node federation (`/federation/v1`) and operations. \
                       Errors are RFC 9457 problem documents with a stable `type`."
    ),
    paths(
        crate::api::healthz,
        crate::api::readyz,
        crate::api::metrics,
        node_document,
        crate::api::auth::login,
        crate::api::auth::refresh,
        crate::api::schema::schema,
        crate::api::plans::list,
        crate::api::plans::create,
        crate::api::plans::read,
        crate::api::plans::ops,
        crate::api::plans::history,
        crate::api::plans::sync,
        crate::api::plans::sync_batch,
        crate::api::shares::list,
        crate::api::shares::grant,
        crate::api::shares::revoke,
        crate::api::shares::transfer,
        crate::api::changes::page,
        crate::api::changes::stream,
        crate::api::audit::list,
        crate::api::admin::peers,
        crate::api::admin::add_peer,
        crate::api::admin::remove_peer,
        crate::api::federation::identity,
        crate::api::federation::sync_batch,
        crate::api::federation::plan_sync,
        crate::api::federation::plan_transfer,
    ),
    components(schemas(wrapsync_shared::api::Problem)),
    modifiers(&NodeProblems),
    tags(
        (name = "auth", description = "Log in and refresh tokens."),
        (name = "plans", description = "Family plans: list, start, read, edit, history."),
        (name = "sync", description = "The Automerge sync protocol for offline-first devices."),
        (name = "shares", description = "A family's consent to share a plan with another node, and moving it there."),
        (name = "changes", description = "Which plans changed, as pages or Server-Sent Events."),
        (name = "admin", description = "Node administration (supervisors)."),
        (name = "federation", description = "What other nodes call, signed by them."),
        (name = "operations", description = "Health, readiness, metrics, this document."),
    )
)]
pub struct NodeApi;

/// The node's document, made once: it depends only on the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3).", content_type = "application/json"))
)]
pub async fn node_document() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    crate::openapi::json(DOCUMENT.get_or_init(|| crate::openapi::render(NodeApi::openapi())))
}
