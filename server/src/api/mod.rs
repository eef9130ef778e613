//! The HTTP surface. Handlers are thin: extract, authorize, call the plan
//! service or storage, map the error (see `error.rs`).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod document;
pub mod extract;
pub mod federation;
pub mod json;
pub mod plans;
mod problem;
pub mod refusals;
pub mod schema;
pub mod shares;

use crate::error::ApiError;
use crate::openapi::Routes;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

/// Every route of a node, registered through [`Routes`] so that the
/// OpenAPI document can be checked against them.
pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

/// Registers the node's routes and answers what it registered.
pub fn register(cfg: &mut web::ServiceConfig) -> Vec<(Method, &'static str)> {
    let mut routes = Routes::new(cfg);
    routes
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics)
        .get("/openapi.json", document::node_document)
        .get("/federation/v1/identity", federation::identity)
        .post("/federation/v1/sync", federation::sync_batch)
        .post("/federation/v1/plans/{id}/sync", federation::plan_sync)
        .post(
            "/federation/v1/plans/{id}/transfer",
            federation::plan_transfer,
        )
        .post("/v1/auth/login", auth::login)
        .post("/v1/auth/refresh", auth::refresh)
        .get("/v1/schema", schema::schema)
        .get("/v1/plans", plans::list)
        .post("/v1/plans", plans::create)
        .get("/v1/plans/{id}", plans::read)
        .post("/v1/plans/{id}/ops", plans::ops)
        .get("/v1/plans/{id}/history", plans::history)
        .post("/v1/plans/{id}/sync", plans::sync)
        .post("/v1/sync", plans::sync_batch)
        .get("/v1/admin/peers", admin::peers)
        .post("/v1/admin/peers", admin::add_peer)
        .post("/v1/admin/peers/{id}/remove", admin::remove_peer)
        .get("/v1/plans/{id}/shares", shares::list)
        .post("/v1/plans/{id}/shares", shares::grant)
        .post("/v1/plans/{id}/shares/{node}/revoke", shares::revoke)
        .post("/v1/plans/{id}/transfer", shares::transfer)
        .get("/v1/changes", changes::page)
        .get("/v1/changes/stream", changes::stream)
        .get("/v1/audit", audit::list);
    routes
        .config()
        .app_data(web::QueryConfig::default().error_handler(|e, _| query_refused(e).into()))
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()))
        .default_service(web::to(not_found));
    routes.served()
}

/// Liveness: the process answers. Never touches the database.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "`{\"status\":\"ok\"}`", content_type = "application/json"))
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database answers a trivial query in time (else 503
/// `not-ready`), so a load balancer stops sending requests it would fail.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`{\"status\":\"ready\"}`", content_type = "application/json"),
        (status = 503, description = "`not-ready`: the database did not answer `SELECT 1` within 2 s."),
    )
)]
pub(crate) async fn readyz(app: web::Data<crate::app::App>) -> Result<HttpResponse, ApiError> {
    ready(&app.pool).await
}

/// The readiness answer for a node or hub reading from `pool`.
pub async fn ready(pool: &crate::db::Pool) -> Result<HttpResponse, ApiError> {
    crate::db::check_ready(pool, crate::db::READY_TIMEOUT)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "not ready");
            ApiError::NotReady
        })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

/// Prometheus metrics: node ids and counts, nothing about a family.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text.", content_type = "application/openmetrics-text"),
        (status = 401, description = "`unauthorized`: `metrics_token_file` is set and the request does not carry its token."),
        (status = 500, description = "`internal`: the metrics could not be rendered."),
    )
)]
pub(crate) async fn metrics(
    app: web::Data<crate::app::App>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    crate::metrics::ScrapeToken::admit(app.scrape_token.as_ref(), &request)?;
    let text = app
        .metrics
        .render(crate::metrics::Scrape {
            plans_cached: app.plans.cached_count(),
            pool: &app.pool,
            peer_successes: app.federation.outbound.last_successes(),
            now_ms: crate::db::now_ms(),
        })
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// A query string the route cannot read, in our words: serde's account of
/// which of our parameters is wrong (as for JSON bodies), without actix's
/// framing.
pub fn query_refused(e: actix_web::error::QueryPayloadError) -> ApiError {
    let reason = match e {
        actix_web::error::QueryPayloadError::Deserialize(e) => e.to_string(),
        _ => "unreadable".into(),
    };
    ApiError::InvalidRequest(format!(
        "the query string is not what this route takes: {reason}"
    ))
}

/// Whether the request's `If-None-Match` names `etag` (or `*`): the
/// answer it holds is still current, so a `304` will do.
pub fn still_fresh(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(actix_web::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}
