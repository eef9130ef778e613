//! What the OpenAPI 3 documents a node and a hub serve at `GET
//! /openapi.json` share. Each document is generated beside its handlers
//! (`api::document`, `hub::document`) from their `#[utoipa::path]`
//! attributes and the shared API types, so a client generated from them
//! speaks the API as it is.
//!
//! Each handler lists its own errors; what an extractor refuses for every
//! route alike (a bad token, a rate limit, an unreadable body) is added here
//! by [`problems`], and every error is `application/problem+json`. The
//! tests hold each document to the routes actually registered ([`Routes`]).

pub mod problems;
mod routes;

pub use routes::Routes;

use actix_web::HttpResponse;

/// A document as the JSON it is served as.
pub fn render(document: utoipa::openapi::OpenApi) -> String {
    document.to_pretty_json().unwrap_or_default()
}

/// The answer to `GET /openapi.json`.
pub fn json(body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string())
}

#[cfg(test)]
mod tests;
