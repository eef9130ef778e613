//! The hub's OpenAPI document, generated from its handlers'
//! `#[utoipa::path]` attributes (see `openapi` for what every document
//! shares, and for the test that holds it to the routes served).

use crate::openapi::problems::HubProblems;
use actix_web::HttpResponse;
use std::sync::OnceLock;
use utoipa::OpenApi;

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
    crate::openapi::json(DOCUMENT.get_or_init(|| crate::openapi::render(HubApi::openapi())))
}
