//! `GET /v1/schema`: the plan schema versions this node knows, each as a
//! JSON Schema generated from its declaration (`wrapsync_shared::schema`),
//! so apps in any language can validate plans and generate their types.
//! Public, and made once: it depends only on the code, so an answer costs
//! a clone of the bytes, and `If-None-Match` a comparison.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use wrapsync_shared::schema::json_schema::plan_schema;
use wrapsync_shared::schema::{versions, CURRENT};

/// The body of `GET /v1/schema`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SchemaDocument {
    /// The version new plans are created at.
    pub current: i64,
    /// Every version this node knows, oldest first.
    pub versions: Vec<SchemaVersion>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SchemaVersion {
    pub version: i64,
    /// JSON Schema (draft 2020-12) of a plan at this version as the API
    /// renders it; `x-identifying` marks what identifies a person.
    #[schema(value_type = Object)]
    pub json_schema: serde_json::Value,
}

/// The versions this node advertises (also in its federation identity).
pub fn plan_schema_versions() -> Vec<i64> {
    versions::declared().collect()
}

/// The document's bytes and their `ETag`, made on first use.
fn document() -> &'static (Bytes, String) {
    static DOCUMENT: OnceLock<(Bytes, String)> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let document = SchemaDocument {
            current: CURRENT,
            versions: versions::declared()
                .filter_map(|version| {
                    Some(SchemaVersion {
                        version,
                        json_schema: plan_schema(version)?,
                    })
                })
                .collect(),
        };
        let body = serde_json::to_vec(&document).unwrap_or_default();
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
        (Bytes::from(body), etag)
    })
}

/// The plan schema versions this node knows, as JSON Schema.
#[utoipa::path(
    get,
    path = "/v1/schema",
    operation_id = "plan_schema",
    tag = "plans",
    params(("If-None-Match" = Option<String>, Header, description = "The `ETag` of an earlier answer: `304` if it still holds.")),
    responses(
        (status = 200, description = "`current` and every version's JSON Schema; cacheable for a day.", body = SchemaDocument, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the `ETag` sent.", headers(("ETag" = String))),
    )
)]
pub async fn schema(req: HttpRequest) -> HttpResponse {
    let (body, etag) = document();
    let cache = (header::CACHE_CONTROL, "public, max-age=86400");
    if super::still_fresh(&req, etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag.as_str()))
            .insert_header(cache)
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header(cache)
        .content_type("application/json")
        .body(body.clone())
}
