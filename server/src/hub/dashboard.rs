//! The state operators' dashboard at the hub's `GET /`: a static page
//! (`dashboard/`, compiled into the binary) that draws every indicator from
//! the hub's public JSON, plus the two small reads it needs besides the
//! publication: which months have reports, and what each indicator means.

use super::{store, Hub};
use crate::error::ApiError;
use crate::openapi::problems::INTERNAL;
use crate::openapi::Routes;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use wrapsync_shared::hub::{Periods, Vocabulary};
use wrapsync_shared::indicators::{DEFINITIONS, VOCABULARY_VERSION};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The page loads only its own script and style, and talks only to the hub.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes, among the hub's (`hub::api::register`).
pub fn routes(routes: &mut Routes) {
    routes
        .get("/", page)
        .get("/dashboard.js", script)
        .get("/dashboard.css", style)
        .get("/hub/v1/periods", periods)
        .get("/hub/v1/vocabulary", vocabulary);
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The dashboard page.
#[utoipa::path(
    get,
    path = "/",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard.", content_type = "text/html"))
)]
pub(crate) async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// The dashboard's script.
#[utoipa::path(
    get,
    path = "/dashboard.js",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's script.", content_type = "text/javascript"))
)]
pub(crate) async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The dashboard's style sheet.
#[utoipa::path(
    get,
    path = "/dashboard.css",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's style sheet.", content_type = "text/css"))
)]
pub(crate) async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /hub/v1/periods`: the months some node reported, oldest first.
#[utoipa::path(
    get,
    path = "/hub/v1/periods",
    tag = "hub",
    responses(
        (status = 200, description = "The months with reports.", body = Periods),
        (status = 500, description = INTERNAL),
    )
)]
pub(crate) async fn periods(hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    let periods = hub
        .blocking(|conn| store::periods(conn, VOCABULARY_VERSION))
        .await?;
    Ok(HttpResponse::Ok().json(Periods { periods }))
}

/// `GET /hub/v1/vocabulary`: every indicator's written definition.
#[utoipa::path(
    get,
    path = "/hub/v1/vocabulary",
    tag = "hub",
    responses((status = 200, description = "The indicators' definitions.", body = Vocabulary))
)]
pub(crate) async fn vocabulary() -> HttpResponse {
    HttpResponse::Ok().json(Vocabulary {
        version: VOCABULARY_VERSION,
        indicators: DEFINITIONS,
    })
}
