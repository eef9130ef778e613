//! The OpenAPI 3 documents a node and a hub serve at `GET /openapi.json`,
//! generated from the handlers' `#[utoipa::path]` attributes and the shared
//! API types, so a client generated from them speaks the API as it is.
//!
//! Each handler lists its own errors; what an extractor refuses for every
//! route alike (a bad token, a rate limit, an unreadable body) is added here
//! by [`problems`], and every error is `application/problem+json`. The
//! tests hold each document to the routes actually registered ([`Routes`]).

pub mod problems;
mod routes;

pub use routes::Routes;

use actix_web::HttpResponse;
use problems::{HubProblems, NodeProblems};
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

/// The hub's API: `/hub/v1`, the dashboard and the operations routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wrapsync state hub",
        description = "The state hub: de-identified indicator reports from enrolled nodes, \
                       published with small cells suppressed, and the node directory. \
                       Errors are RFC 9457 problem documents with a stable `type`."
    ),
    paths(
        crate::api::healthz,
        crate::hub::api::readyz,
        crate::hub::api::metrics,
        hub_document,
        crate::hub::api::identity,
        crate::hub::api::submit,
        crate::hub::api::indicators,
        crate::hub::api::directory,
        crate::hub::api::register_url,
        crate::hub::dashboard::periods,
        crate::hub::dashboard::vocabulary,
        crate::hub::dashboard::page,
        crate::hub::dashboard::script,
        crate::hub::dashboard::style,
    ),
    components(schemas(wrapsync_shared::api::Problem)),
    modifiers(&HubProblems),
    tags(
        (name = "hub", description = "Reports from nodes, publications, the node directory."),
        (name = "dashboard", description = "The state operators' dashboard (a static page)."),
        (name = "operations", description = "Health, readiness, metrics, this document."),
    )
)]
pub struct HubApi;

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
    json(DOCUMENT.get_or_init(|| render(NodeApi::openapi())))
}

/// The hub's document, made once.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3).", content_type = "application/json"))
)]
pub async fn hub_document() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    json(DOCUMENT.get_or_init(|| render(HubApi::openapi())))
}

fn render(document: utoipa::openapi::OpenApi) -> String {
    document.to_pretty_json().unwrap_or_default()
}

fn json(body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string())
}

#[cfg(test)]
mod tests;
