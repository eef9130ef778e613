//! What every request leaves behind, in one place for the node and the hub:
//! an id (the caller's `X-Request-Id` if well formed, else a new ULID),
//! echoed in the response and held in a tracing span so every log line of
//! the request carries it (the audit trail keeps the same id, from
//! [`RequestId`]); one access log line; and the HTTP metrics.
//!
//! Only the route *pattern* is logged or labelled, never the concrete path
//! (it holds plan ids), the query string, a body or a header value.

use crate::api::extract::{header_token, RequestId};
use crate::error::ApiError;
use crate::metrics::HttpMetrics;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpMessage;
use std::future::Future;
use std::time::Instant;
use tracing::Instrument;

/// How log lines are written to stderr: `text` for people (the default),
/// `json` (one object a line, span fields such as `request_id` included)
/// for a log collector. Config key `log_format`, `WRAPSYNC_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Sets up logging once at start, filtered by `WRAPSYNC_LOG` (default
/// `info`). A second call (a test that already set one up) changes nothing.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WRAPSYNC_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The middleware: `.wrap_fn(move |req, srv| observe::request(req, srv, &http))`.
pub fn request<S, B>(
    req: ServiceRequest,
    srv: &S,
    metrics: &HttpMetrics,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let started = Instant::now();
    let id = header_token(req.request(), "x-request-id")
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = method_label(req.method());
    // At error level the span is on whenever any line is logged, so a
    // warning still carries the request id under `WRAPSYNC_LOG=warn`.
    let span = tracing::error_span!("request", request_id = %id);
    let fut = span.in_scope(|| srv.call(req));
    let metrics = metrics.clone();
    async move {
        let result = fut.await;
        let (route, status, error) = match &result {
            Ok(res) => (
                res.request().match_pattern(),
                res.status(),
                res.response().error(),
            ),
            Err(e) => (None, e.as_response_error().status_code(), Some(e)),
        };
        let route = route.unwrap_or_else(|| UNMATCHED.to_string());
        let refused = refusal_reason(status, error);
        let elapsed = started.elapsed();
        metrics.record(&route, method, status.as_u16(), elapsed, refused.as_deref());
        tracing::info!(
            target: "wrapsync::access",
            method,
            route = %route,
            status = status.as_u16(),
            duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            "request"
        );
        let mut res = result?;
        if let Ok(value) = HeaderValue::from_str(&id) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
        Ok(res)
    }
    .instrument(span)
}

/// The method as a label, from a fixed set (a made-up method is `other`).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Why a 4xx/5xx answer refused: its problem `type` code when it came
/// from an [`ApiError`] (every answer of ours does), else `http-<status>`.
fn refusal_reason(status: StatusCode, error: Option<&actix_web::Error>) -> Option<String> {
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    Some(
        error
            .and_then(|e| e.as_error::<ApiError>())
            .map(|e| e.code().to_string())
            .unwrap_or_else(|| format!("http-{}", status.as_u16())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test, web, App, HttpResponse};

    async fn plan(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
        if path.as_str() == "missing" {
            return Err(ApiError::NotFound);
        }
        Ok(HttpResponse::Ok().finish())
    }

    #[actix_web::test]
    async fn requests_are_counted_by_route_pattern_and_refusal() {
        let metrics = crate::metrics::Metrics::new(&crate::metrics::PeerMetrics::default());
        let http = metrics.http.clone();
        let app = test::init_service(
            App::new()
                .wrap_fn(move |req, srv| request(req, srv, &http))
                .route("/v1/plans/{id}", web::get().to(plan))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::NotFound)
                })),
        )
        .await;
        let sent = test::TestRequest::get()
            .uri("/v1/plans/01HZZPLANID?token=secret")
            .insert_header(("x-request-id", "abc-123"))
            .to_request();
        let res = test::call_service(&app, sent).await;
        assert_eq!(
            res.headers().get("x-request-id").map(|v| v.as_bytes()),
            Some(&b"abc-123"[..])
        );
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/v1/plans/missing")
                .insert_header(("x-request-id", "not ok!"))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let made = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(made.len(), 26, "a ULID, not the malformed id: {made}");
        test::call_service(&app, test::TestRequest::get().uri("/nowhere").to_request()).await;
        let pool = crate::db::pool(&crate::db::Backend::Sqlite(":memory:".into()), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let text = metrics
            .render(crate::metrics::Scrape {
                plans_cached: 0,
                pool: &pool,
                peer_successes: vec![],
                now_ms: 0,
            })
            .unwrap_or_else(|e| panic!("{e}"));
        for line in [
            "wrapsync_http_requests_total{route=\"/v1/plans/{id}\",method=\"GET\",status=\"200\"} 1",
            "wrapsync_http_requests_total{route=\"/v1/plans/{id}\",method=\"GET\",status=\"404\"} 1",
            "wrapsync_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
            "wrapsync_refused_requests_total{reason=\"not-found\"} 2",
            "wrapsync_http_request_duration_seconds_count{route=\"/v1/plans/{id}\",method=\"GET\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
        assert!(
            !text.contains("01HZZPLANID") && !text.contains("missing") && !text.contains("secret")
        );
    }
}
