//! The state operators' dashboard at the hub's `GET /`: a static page
//! (`dashboard/`, compiled into the binary) that draws every indicator from
//! the hub's public JSON, plus the two small reads it needs besides the
//! publication: which months have reports, and what each indicator means.

use super::{store, Hub};
use crate::error::ApiError;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use wrapsync_shared::indicators::{DEFINITIONS, VOCABULARY_VERSION};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The page loads only its own script and style, and talks only to the hub.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page))
        .route("/dashboard.js", web::get().to(script))
        .route("/dashboard.css", web::get().to(style))
        .route("/hub/v1/periods", web::get().to(periods))
        .route("/hub/v1/vocabulary", web::get().to(vocabulary));
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /hub/v1/periods`: the months some node reported, oldest first.
async fn periods(hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    let periods = hub
        .blocking(|conn| store::periods(conn, VOCABULARY_VERSION))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "periods": periods })))
}

/// `GET /hub/v1/vocabulary`: every indicator's written definition.
async fn vocabulary() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "version": VOCABULARY_VERSION,
        "indicators": DEFINITIONS,
    }))
}
