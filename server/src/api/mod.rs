//! The HTTP surface. Handlers are thin: extract, authorize, call the plan
//! service or storage, map the error (see `error.rs`).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod extract;
pub mod federation;
pub mod plans;
pub mod refusals;
pub mod shares;

use crate::error::ApiError;
use actix_web::{web, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .service(
            web::scope("/federation/v1")
                .route("/identity", web::get().to(federation::identity))
                .route("/sync", web::post().to(federation::sync_batch))
                .route("/plans/{id}/sync", web::post().to(federation::plan_sync))
                .route(
                    "/plans/{id}/transfer",
                    web::post().to(federation::plan_transfer),
                ),
        )
        .service(
            web::scope("/v1")
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/plans", web::get().to(plans::list))
                .route("/plans", web::post().to(plans::create))
                .route("/plans/{id}", web::get().to(plans::read))
                .route("/plans/{id}/ops", web::post().to(plans::ops))
                .route("/plans/{id}/history", web::get().to(plans::history))
                .route("/plans/{id}/sync", web::post().to(plans::sync))
                .route("/sync", web::post().to(plans::sync_batch))
                .route("/admin/peers", web::get().to(admin::peers))
                .route("/admin/peers", web::post().to(admin::add_peer))
                .route(
                    "/admin/peers/{id}/remove",
                    web::post().to(admin::remove_peer),
                )
                .route("/plans/{id}/shares", web::get().to(shares::list))
                .route("/plans/{id}/shares", web::post().to(shares::grant))
                .route(
                    "/plans/{id}/shares/{node}/revoke",
                    web::post().to(shares::revoke),
                )
                .route("/plans/{id}/transfer", web::post().to(shares::transfer))
                .route("/changes", web::get().to(changes::page))
                .route("/changes/stream", web::get().to(changes::stream))
                .route("/audit", web::get().to(audit::list)),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| ApiError::InvalidRequest(e.to_string()).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()))
        .default_service(web::to(not_found));
}

/// Liveness: the process answers. Never touches the database.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database answers a trivial query in time (else 503
/// `not-ready`), so a load balancer stops sending requests it would fail.
async fn readyz(app: web::Data<crate::app::App>) -> Result<HttpResponse, ApiError> {
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
async fn metrics(app: web::Data<crate::app::App>) -> Result<HttpResponse, ApiError> {
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
