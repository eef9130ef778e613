//! Extractors that every handler relies on: the authenticated caller, and
//! JSON bodies read with the node's limits and clear errors.

use crate::app::App;
use crate::audit::{Principal, RefusalMark, RequestMeta};
use crate::error::ApiError;
use crate::limits::{BufferedBytes, Held};
use crate::observe::RequestId;
use crate::plans::Actor;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Who sent a request, as audit rows and limits key it. The one place the
/// client's address is worked out: through `trusted_proxies` (see
/// `forwarded`), never from a header anyone may write.
pub fn request_meta(req: &HttpRequest) -> RequestMeta {
    let remote = match req.app_data::<web::Data<App>>() {
        Some(app) => app.trusted_proxies.client(req),
        None => req.peer_addr().map(|a| a.ip()),
    };
    RequestMeta {
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
        remote: remote.map(|ip| ip.to_string()),
        refusal: req
            .extensions()
            .get::<RefusalMark>()
            .cloned()
            .unwrap_or_default(),
    }
}

/// A caller whose bearer token checked out.
pub struct AuthUser {
    pub actor: Actor,
    pub session_id: String,
    pub meta: RequestMeta,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let app = req
        .app_data::<web::Data<App>>()
        .ok_or_else(|| ApiError::Internal("no app state".into()))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let result = match token {
        None => Err("a bearer token is required"),
        Some(token) => app.tokens.verify(token.trim()),
    }
    // Ended by a reused refresh token or a disabled user (`auth::sessions`).
    .and_then(|claims| {
        if app.revoked_sessions.is_revoked(&claims.sid) {
            Err("the session has ended; log in again")
        } else {
            Ok(claims)
        }
    });
    // A refusal here is audited by `refusals::audit`, as every refusal is.
    let claims =
        result.map_err(|reason| ApiError::Unauthorized(format!("token refused: {reason}")))?;
    let actor = Actor {
        user_id: claims.sub,
        username: claims.name,
        role: claims.role,
    };
    req.extensions_mut().insert(Principal::from(&actor));
    crate::limits::admit(app.limits.per_user.as_ref(), &actor.user_id)?;
    // The body's declared bytes, before a byte is read: a refusal here
    // costs what any other token refusal costs. A body of no declared
    // length is charged piece by piece as it is read (`read_body`).
    // A length no route takes is left to the body's own `413`.
    let largest = app.config.max_sync_bytes.max(app.config.max_body_bytes);
    if let Some(bytes) = declared_length(req).filter(|b| (1..=largest).contains(b)) {
        take_user_bytes(app, &actor.user_id, bytes)?;
    }
    Ok(AuthUser {
        actor,
        session_id: claims.sid,
        meta: request_meta(req),
    })
}

/// Takes `bytes` of the user's request-body budget (`rate_limit_user_bytes`):
/// `429` with the seconds to wait when they are not there.
fn take_user_bytes(app: &App, user_id: &str, bytes: usize) -> Result<(), ApiError> {
    match app.limits.user_bytes.as_ref() {
        None => Ok(()),
        Some(budget) => budget
            .take_n(user_id, bytes as f64, std::time::Instant::now())
            .map_err(|wait| ApiError::RateLimited(crate::limits::retry_after_secs(wait))),
    }
}

/// A JSON body: `Content-Type: application/json`, no `Content-Encoding`
/// (compressed bodies could expand past any limit), at most the configured
/// size, and parse errors told apart from shape errors.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload, &["application/json"], |c, _| c.max_body_bytes);
        Box::pin(async move {
            let (_, body) = body.await?;
            parse_json_body(body).await.map(JsonBody)
        })
    }
}

/// [`parse_json`] of a whole body, off the HTTP worker when it is large
/// (see `crate::blocking`).
async fn parse_json_body<T: DeserializeOwned + Send + 'static>(
    body: web::BytesMut,
) -> Result<T, ApiError> {
    crate::blocking::read_large(body.len(), move || parse_json(&body))
        .await
        .unwrap_or_else(|| Err(ApiError::MalformedJson("unreadable JSON body".into())))
}

/// A new plan: JSON fields to start one, or a whole saved Automerge
/// document (`application/octet-stream`) made by any Automerge client.
pub enum NewPlanBody<T> {
    Json(T),
    Document(Vec<u8>),
}

impl<T: DeserializeOwned + Send + 'static> FromRequest for NewPlanBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(
            req,
            payload,
            &["application/json", "application/octet-stream"],
            |c, content_type| match content_type {
                "application/octet-stream" => c.max_sync_bytes,
                _ => c.max_body_bytes,
            },
        );
        Box::pin(async move {
            let (content_type, body) = body.await?;
            if content_type == "application/octet-stream" {
                return Ok(NewPlanBody::Document(body.to_vec()));
            }
            parse_json_body(body).await.map(NewPlanBody::Json)
        })
    }
}

/// A sync round's message: base64 in JSON (`{"message":"…"|null}`) or raw
/// bytes (`application/octet-stream`); answered in the same form.
pub enum SyncBody {
    Json(Option<Vec<u8>>),
    Binary(Vec<u8>),
}

impl FromRequest for SyncBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(
            req,
            payload,
            &["application/json", "application/octet-stream"],
            |c, _| c.max_sync_bytes,
        );
        Box::pin(async move {
            let (content_type, body) = body.await?;
            if content_type == "application/octet-stream" {
                return Ok(SyncBody::Binary(body.to_vec()));
            }
            let json: wrapsync_shared::api::SyncMessage = parse_json_body(body).await?;
            Ok(SyncBody::Json(json.message))
        })
    }
}

/// `POST /v1/sync`'s body, in CBOR or JSON; `cbor` says which to answer in.
pub struct SyncBatchBody {
    pub batch: wrapsync_shared::api::SyncBatch,
    pub cbor: bool,
}

impl FromRequest for SyncBatchBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(
            req,
            payload,
            &["application/json", "application/cbor"],
            |c, _| c.max_sync_bytes,
        );
        Box::pin(async move {
            let (content_type, body) = body.await?;
            let cbor = content_type == "application/cbor";
            let len = body.len();
            let parse = move || {
                if cbor {
                    ciborium::from_reader(&body[..]).map_err(|e| {
                        tracing::debug!(error = %e, "unreadable CBOR sync batch");
                        ApiError::InvalidRequest("the body is not a CBOR sync batch".into())
                    })
                } else {
                    parse_json(&body)
                }
            };
            let batch = crate::blocking::read_large(len, parse)
                .await
                .unwrap_or_else(|| Err(ApiError::InvalidRequest("unreadable sync batch".into())))?;
            Ok(SyncBatchBody { batch, cbor })
        })
    }
}

/// Reads a request body of one of `types`, refusing compressed and
/// oversized bodies before reading more than the limit, under the node's
/// [`BodyRules`]. Answers the (lowercased) content type and the bytes.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    types: &'static [&'static str],
    limit: fn(&crate::config::Config, &str) -> usize,
) -> impl Future<Output = Result<(String, web::BytesMut), ApiError>> {
    let checked = check_headers(req, types).and_then(|content_type| {
        let app = req
            .app_data::<web::Data<App>>()
            .ok_or_else(|| ApiError::Internal("no app state".into()))?;
        let rules = BodyRules::node(app, limit(&app.config, &content_type));
        Ok((content_type, rules))
    });
    let declared = declared_length(req);
    // A signed-in caller's declared length was charged by `AuthUser`;
    // pieces of a body of no declared length are charged as they come.
    let chunked_budget = match (declared, req.extensions().get::<Principal>()) {
        (None, Some(caller)) => caller
            .user_id()
            .map(str::to_string)
            .zip(req.app_data::<web::Data<App>>().cloned()),
        _ => None,
    };
    let payload = payload.take();
    async move {
        let (content_type, rules) = checked?;
        let body = read_stream(payload, declared, &rules, |bytes| match &chunked_budget {
            Some((user_id, app)) => take_user_bytes(app, user_id, bytes),
            None => Ok(()),
        })
        .await?;
        Ok((content_type, body))
    }
}

/// How a body may be read: its size limit, how long it may pause and take
/// in all, and the pool of bytes every body being read draws from.
pub struct BodyRules {
    pub limit: usize,
    /// The longest pause between two pieces.
    pub idle: Duration,
    /// The slowest average pace (bytes per second) past `idle`.
    pub min_rate: u64,
    pub buffered: Arc<BufferedBytes>,
}

impl BodyRules {
    /// The node's rules for a body of at most `limit` bytes.
    pub fn node(app: &App, limit: usize) -> Self {
        BodyRules {
            limit,
            idle: Duration::from_secs(app.config.request_timeout_secs),
            min_rate: app.config.body_min_bytes_per_sec,
            buffered: app.limits.buffered.clone(),
        }
    }
}

/// The `Content-Length` the client declared (none: chunked, or no body).
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
}

/// `413` for a declared length over `limit`, before a byte is read.
pub fn check_length(declared: Option<usize>, limit: usize) -> Result<(), ApiError> {
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    Ok(())
}

/// Reads `payload` under `rules`. A declared length over the limit is
/// refused before anything is read. The body holds its bytes of the shared
/// pool while it is read (its declared length up front, else each piece as
/// it comes): a full pool is `503 busy`. actix times out only the headers
/// (`client_request_timeout`), so each piece must come within `idle` of the
/// last, and the whole within `idle` plus its length (declared, else the
/// limit) at `min_rate`: else `408`, the body is dropped, and actix closes
/// a connection whose body is unread. `take` is told the size of each
/// piece of a body of no declared length (a byte budget counted as it
/// streams; a declared one is the caller's to take first).
pub async fn read_stream(
    mut payload: Payload,
    declared: Option<usize>,
    rules: &BodyRules,
    mut take: impl FnMut(usize) -> Result<(), ApiError>,
) -> Result<web::BytesMut, ApiError> {
    check_length(declared, rules.limit)?;
    let mut held = Held::default();
    let expected = declared.unwrap_or(rules.limit);
    if declared.is_some() && !rules.buffered.reserve(&mut held, expected) {
        return Err(ApiError::Busy);
    }
    let allowed = rules.idle + Duration::from_secs_f64(expected as f64 / rules.min_rate as f64);
    let deadline = tokio::time::Instant::now() + allowed;
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    loop {
        let wait = (tokio::time::Instant::now() + rules.idle).min(deadline);
        let chunk = match tokio::time::timeout_at(wait, payload.next()).await {
            Ok(Some(chunk)) => chunk.map_err(|e| {
                tracing::debug!(error = %e, "request body unreadable");
                ApiError::InvalidRequest("the body could not be read".into())
            })?,
            Ok(None) => return Ok(body),
            Err(_) if wait == deadline => {
                return Err(ApiError::RequestTimeout(format!(
                    "the request body did not arrive within {} s (its length at {} bytes/s, \
                     after {} s)",
                    allowed.as_secs(),
                    rules.min_rate,
                    rules.idle.as_secs()
                )))
            }
            Err(_) => {
                return Err(ApiError::RequestTimeout(format!(
                    "the request body stopped arriving for {} s",
                    rules.idle.as_secs()
                )))
            }
        };
        if body.len() + chunk.len() > rules.limit {
            return Err(ApiError::PayloadTooLarge(rules.limit));
        }
        if declared.is_none() {
            take(chunk.len())?;
            if !rules.buffered.reserve(&mut held, chunk.len()) {
                return Err(ApiError::Busy);
            }
        }
        body.extend_from_slice(&chunk);
    }
}

/// The body's content type if it is one of `types` and not compressed.
pub fn check_headers(req: &HttpRequest, types: &[&str]) -> Result<String, ApiError> {
    if let Some(encoding) = req.headers().get(header::CONTENT_ENCODING) {
        if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(ApiError::UnsupportedMediaType(
                "compressed request bodies are not accepted".into(),
            ));
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !types.contains(&essence.as_str()) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the body as {}",
            types.join(" or ")
        )));
    }
    Ok(essence)
}

/// Syntax errors and duplicate keys are `malformed-json`; well-formed JSON
/// of the wrong shape (including an array where an object belongs, which
/// serde's derived structs would otherwise accept) is `invalid-request`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    super::json::parse_object(body, ApiError::InvalidRequest)
}
