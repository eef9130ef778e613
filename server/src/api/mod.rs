//! The HTTP surface. Handlers are thin: extract, authorize, call the plan
//! service or storage, map the error (see `error.rs`).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod extract;
pub mod federation;
pub mod plans;
pub mod shares;

use crate::error::ApiError;
use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpMessage, HttpResponse};
use extract::RequestId;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
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

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Prometheus metrics: node ids and counts, nothing about a family.
async fn metrics(app: web::Data<crate::app::App>) -> Result<HttpResponse, ApiError> {
    let text = app
        .metrics
        .render(app.plans.cached_count())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Gives every request an id (the caller's `X-Request-Id` if it is sane),
/// kept in the audit trail and echoed in the response.
pub fn request_id_middleware<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>
where
    S: Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    let id = extract::header_token(req.request(), "x-request-id")
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let fut = srv.call(req);
    async move {
        let mut res = fut.await?;
        if let Ok(value) = HeaderValue::from_str(&id) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
        Ok(res)
    }
}
