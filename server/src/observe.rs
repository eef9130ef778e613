//! What every request leaves behind, in one place for the node and the hub:
//! an id (the caller's `X-Request-Id` if well formed, else a new ULID),
//! echoed in the response and held in a tracing span so every log line of
//! the request carries it (the audit trail keeps the same id, from
//! [`RequestId`]); one access log line; and the HTTP metrics.
//!
//! Only the route *pattern* is logged or labelled, never the concrete path
//! (it holds plan ids), the query string, a body or a header value. So a
//! line costs a bounded size, and a refused client cannot make lines
//! faster than [`RefusalLog`] lets it: one per kind, source and interval,
//! plus one line counting the rest.

use crate::config::LogFormat;
use crate::error::ApiError;
use crate::forwarded::TrustedProxies;
use crate::metrics::HttpMetrics;
use crate::tally::{RefusalCounting, Seen, Tally};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest};
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;
use tracing::Instrument;

/// The request id given to (or made for) every request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A header holding an identifier the client chose (request id, device id):
/// 1–64 letters, digits, `-` or `_`, else ignored.
pub fn header_token(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
}

/// Sets up logging once at start, filtered by `WRAPSYNC_LOG` (default
/// `info`), to stderr or appended to `file` (created owner-only: log lines
/// name users and plans). A second call (a test that already set one up)
/// changes nothing.
pub fn init_logging(format: LogFormat, file: Option<&std::path::Path>) -> std::io::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WRAPSYNC_LOG")
        .unwrap_or_else(|_| "info".into());
    let writer = match file {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("log_file {}: {e}", path.display()))
            })?;
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Arc::new(file))
        }
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}

/// What makes refusals "of a kind from a source" in the log: the client
/// address, route pattern, method and status (all bounded but the
/// address, which [`crate::tally::MAX_SOURCES`] bounds).
type LogKind = (Option<IpAddr>, String, &'static str, u16);

/// The access log's refusal counting, shared by every worker: the first
/// refusals of a kind from a source in an interval get their line, the
/// rest one `refusals repeated` line with their count, written by the
/// first request after the interval ends (the node's stop writes none:
/// the audit trail keeps the exact count).
pub struct RefusalLog {
    tally: parking_lot::Mutex<Tally<LogKind>>,
    /// When the next interval closes (`i64::MAX`: none open), read
    /// without the lock by every request.
    next_close: AtomicI64,
}

impl RefusalLog {
    pub fn new(counting: RefusalCounting) -> Self {
        let interval_ms =
            i64::try_from(counting.interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        RefusalLog {
            tally: parking_lot::Mutex::new(Tally::new(interval_ms, counting.rows, |k| {
                (None, k.1.clone(), k.2, k.3)
            })),
            next_close: AtomicI64::new(i64::MAX),
        }
    }

    fn see(&self, kind: LogKind, now_ms: i64, request_id: &str) -> Seen {
        let mut tally = self.tally.lock();
        let seen = tally.see(kind, now_ms, Some(request_id));
        self.next_close
            .store(tally.next_close().unwrap_or(i64::MAX), Ordering::Relaxed);
        seen
    }

    /// Writes the count lines of the intervals over by `now_ms`.
    fn close(&self, now_ms: i64) {
        if now_ms < self.next_close.load(Ordering::Relaxed) {
            return;
        }
        let mut tally = self.tally.lock();
        for closed in tally.close(now_ms, false) {
            let (remote, route, method, status) = closed.kind;
            tracing::info!(
                target: "wrapsync::access",
                remote = remote.map(|ip| ip.to_string()),
                method,
                route = %route,
                status,
                repeated = closed.counted,
                first_request_id = closed.first,
                "refusals repeated"
            );
        }
        self.next_close
            .store(tally.next_close().unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The middleware: `.wrap_fn(move |req, srv| observe::request(req, srv, &http, &log, proxies))`,
/// with the node's `trusted_proxies` (the hub has none: its direct peer is
/// the client).
pub fn request<S, B>(
    req: ServiceRequest,
    srv: &S,
    metrics: &HttpMetrics,
    log: &std::sync::Arc<RefusalLog>,
    proxies: Option<&TrustedProxies>,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let started = Instant::now();
    let id = header_token(req.request(), "x-request-id")
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // The client as the audit trail names it (behind a trusted proxy, the
    // address it forwarded), so the log counts refusals per real source.
    let remote = match proxies {
        Some(proxies) => proxies.client(req.request()),
        None => req.peer_addr().map(|a| a.ip()),
    };
    let method = method_label(req.method());
    // At error level the span is on whenever any line is logged, so a
    // warning still carries the request id under `WRAPSYNC_LOG=warn`.
    let span = tracing::error_span!("request", request_id = %id);
    let fut = span.in_scope(|| srv.call(req));
    let metrics = metrics.clone();
    let log = log.clone();
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
        let now = crate::db::now_ms();
        log.close(now);
        let counted = refused.is_some()
            && log.see((remote, route.clone(), method, status.as_u16()), now, &id) == Seen::Counted;
        if !counted {
            tracing::info!(
                target: "wrapsync::access",
                method,
                route = %route,
                status = status.as_u16(),
                refused = refused.as_deref(),
                duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
                "request"
            );
        }
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
        let log = std::sync::Arc::new(RefusalLog::new(RefusalCounting::default()));
        let app = test::init_service(
            App::new()
                .wrap_fn(move |req, srv| request(req, srv, &http, &log, None))
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
