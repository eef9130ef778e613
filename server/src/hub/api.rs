//! `/hub/v1`: what nodes and the public call. Submissions and URL
//! registrations are signed by an enrolled node exactly as node-to-node
//! requests are (`federation::signing`, destination: the hub's id);
//! publications and the directory are public. Handlers are thin: read,
//! verify, call the core or the store, map the error.

use super::{store, Hub};
use crate::api::extract::{check_headers, declared_length, read_stream};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::federation::{SignedBy, SignedRequestError};
use crate::openapi::problems::INTERNAL;
use crate::openapi::Routes;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use wrapsync_shared::hub::{
    Directory, DirectoryEntry, HubIdentity, NodeRegistration, Publication, SubmissionOutcome,
    SubmissionReceipt, INDICATORS_PATH, NODES_PATH, REPORTS_PATH,
};
use wrapsync_shared::indicators::{Period, Report};

/// Every route of a hub, the dashboard's included, registered through
/// [`Routes`] so that the OpenAPI document can be checked against them.
pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

/// Registers the hub's routes and answers what it registered.
pub fn register(cfg: &mut web::ServiceConfig) -> Vec<(Method, &'static str)> {
    let mut routes = Routes::new(cfg);
    super::dashboard::routes(&mut routes);
    routes
        .get("/healthz", crate::api::healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics)
        .get("/openapi.json", super::document::hub_document)
        .get("/hub/v1/identity", identity)
        .post(REPORTS_PATH, submit)
        .get(INDICATORS_PATH, indicators)
        .get(NODES_PATH, directory)
        .post(NODES_PATH, register_url);
    routes
        .config()
        .app_data(
            web::QueryConfig::default().error_handler(|e, _| crate::api::query_refused(e).into()),
        )
        .default_service(web::to(not_found));
    routes.served()
}

/// Readiness: the hub's database answers (see the node's `/readyz`).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`{\"status\":\"ready\"}`", content_type = "application/json"),
        (status = 503, description = "`not-ready`: the database did not answer `SELECT 1` within 2 s."),
    )
)]
pub(crate) async fn readyz(hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    crate::api::ready(&hub.pool).await
}

/// Prometheus metrics: requests and the database pool; no report figures.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text.", content_type = "application/openmetrics-text"),
        (status = 401, description = "`unauthorized`: `metrics_token_file` is set and the request does not carry its token."),
        (status = 500, description = INTERNAL),
    )
)]
pub(crate) async fn metrics(
    hub: web::Data<Hub>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    crate::metrics::ScrapeToken::admit(hub.scrape_token.as_ref(), &request)?;
    let text = hub
        .metrics
        .render(&hub.pool)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// The hub's id and public key, for nodes configuring it.
#[utoipa::path(
    get,
    path = "/hub/v1/identity",
    operation_id = "hub_identity",
    tag = "hub",
    responses((status = 200, description = "The hub's id and key.", body = HubIdentity))
)]
pub(crate) async fn identity(hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok().json(HubIdentity {
        hub_id: hub.config.hub_id.clone(),
        public_key: hub.key.public_key().to_string(),
        algorithm: "EdDSA".into(),
        curve: "Ed25519".into(),
    })
}

/// A JSON body of at most the hub's `max_body_bytes`, signed by an
/// enrolled node. As a node's peer routes do (`api::federation::
/// PeerRequest`), the signature's headers are checked before the body is
/// read, so a stranger is refused (`401`) without waiting for its body;
/// then the body is read ([`Hub::body_rules`]) and must be what was
/// signed.
pub struct SignedJson {
    /// The node that signed it.
    pub node: String,
    pub body: Vec<u8>,
}

impl FromRequest for SignedJson {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move { signed_json(&req, payload).await })
    }
}

async fn signed_json(req: &HttpRequest, payload: Payload) -> Result<SignedJson, ApiError> {
    let hub = req
        .app_data::<web::Data<Hub>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("no hub state".into()))?;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_string(), |p| p.as_str().to_string());
    let refused = |e: SignedRequestError| {
        // The access line says `refused`, counted per source; the reason
        // can quote what the caller sent, so only at debug, cut.
        let reason = crate::store::audit::cut(&e.to_string(), crate::store::audit::MAX_DETAIL);
        tracing::debug!(%reason, "hub request refused");
        ApiError::Unauthorized(e.to_string())
    };
    let headers = hub
        .verifier
        .verify_headers(
            authorization,
            &hub.nodes,
            req.method().as_str(),
            &path,
            now_ms() / 1000,
        )
        .map_err(refused)?;
    // Each enrolled node's requests are limited before its body is read.
    crate::limits::admit(hub.per_node.as_ref(), headers.peer())?;
    check_headers(req, &["application/json"])?;
    let rules = hub.body_rules();
    let body = read_stream(payload, declared_length(req), &rules, |_| Ok(())).await?;
    let SignedBy { peer, rotation, .. } = headers
        .verify_body(&hub.verifier, &body, now_ms() / 1000)
        .map_err(refused)?;
    // The enrollment is the state office's word: a rotated key is taken
    // only while its statement is shown; `[[nodes]]` must be updated within
    // the grace period.
    if let Some(rotation) = rotation {
        tracing::warn!(node = %peer, new_key = %rotation.to_key, until = rotation.until,
            "accepted a rotated node key on its old key's statement: update [[nodes]]");
    }
    Ok(SignedJson {
        node: peer,
        body: body.to_vec(),
    })
}

/// The report in a body: a JSON object of exactly the report's shape
/// (`400 invalid-report` otherwise), that keeps the report rules (`422
/// report-refused` otherwise).
pub(crate) fn parse_report(body: &[u8]) -> Result<Report, ApiError> {
    let report: Report = crate::api::json::parse_object(body, ApiError::InvalidReport)?;
    report
        .validate()
        .map_err(|e| ApiError::ReportRefused(e.to_string()))?;
    if i64::try_from(report.version).is_err() {
        return Err(ApiError::ReportRefused(format!(
            "version {} is beyond {}",
            report.version,
            i64::MAX
        )));
    }
    Ok(report)
}

/// The month a report may be of at most, at `now_ms`: the current month
/// (UTC), a day ahead, for a node whose clock or month runs a little ahead.
pub(crate) fn latest_reportable(now_ms: i64) -> Period {
    let later = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000) + 86_400)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    Period::of(later).unwrap_or(wrapsync_shared::indicators::FIRST_PERIOD)
}

/// Whether `node`'s valid `report` could be true (`422` with the rule's
/// problem type otherwise).
pub(crate) fn plausible(
    hub: &Hub,
    node: &str,
    report: &Report,
    now_ms: i64,
) -> Result<(), ApiError> {
    wrapsync_shared::plausibility::check(
        report,
        hub.config.max_youth(node),
        latest_reportable(now_ms),
    )
    .map_err(|e| ApiError::ReportImplausible {
        rule: e.rule(),
        detail: e.to_string(),
    })
}

/// `POST /hub/v1/reports`: an enrolled node's report for one period,
/// merged into what the hub keeps. Answers the receipt (`200` whether or
/// not it was kept: a resend is not an error). A report that could not be
/// true (`wrapsync_shared::plausibility`) or revises its period too soon
/// is refused, audited, and changes nothing.
#[utoipa::path(
    post,
    path = "/hub/v1/reports",
    operation_id = "submit_report",
    tag = "hub",
    security(("signed_request" = [])),
    request_body = Report,
    responses(
        (status = 200, description = "The receipt, whether or not the report was kept (a resend is not an error).", body = SubmissionReceipt),
        (status = 400, description = "`malformed-json`: the body is not JSON; `invalid-report`: not a report (unknown fields or vocabulary values, negative or fractional counts)."),
        (status = 422, description = "`report-refused`: a report that breaks the report rules. A report that cannot be true: `report-period-too-early` (before the vocabulary's first month), `report-period-in-future` (after the current month), `report-over-ceiling` (more youth than the node's ceiling), `report-part-over-whole` (a count above the count it is part of, in one age band), `report-amount-without-youth`."),
        (status = 429, description = "`rate-limited`: the node's requests are over `rate_limit_per_node`; `report-revisions-limited`: it revises this period faster than `rate_limit_revisions_per_period`. `Retry-After` says when."),
        (status = 500, description = INTERNAL),
    )
)]
pub(crate) async fn submit(
    hub: web::Data<Hub>,
    SignedJson { node, body }: SignedJson,
) -> Result<HttpResponse, ApiError> {
    let report = parse_report(&body)?;
    if let Err(error) = plausible(&hub, &node, &report, now_ms()) {
        hub.refused(&node, report.period, &error).await;
        return Err(error);
    }
    let period = report.period;
    let submitted = {
        let (node, limits) = (node.clone(), hub.clone());
        hub.writing(move |conn| {
            let key = format!("{node} {period}");
            store::submit_limited(conn, &node, &report, || match &limits.revisions {
                Some(buckets) => buckets.take(&key, std::time::Instant::now()),
                None => Ok(()),
            })
        })
        .await?
    };
    let receipt = match submitted {
        store::Submitted::Receipt(receipt) => receipt,
        store::Submitted::TooSoon(wait) => {
            let limit = hub.config.rate_limit_revisions_per_period;
            let error = ApiError::RevisionsLimited {
                detail: format!(
                    "{node} revised {period} too often: at most {} revisions at once, then one \
                     every {} s",
                    limit.burst,
                    (1.0 / limit.per_second).round()
                ),
                retry_after: crate::limits::retry_after_secs(wait),
            };
            hub.refused(&node, period, &error).await;
            return Err(error);
        }
    };
    if receipt.outcome == SubmissionOutcome::Stored {
        hub.changed();
    }
    tracing::info!(
        node = %node,
        period = %receipt.period,
        version = receipt.version,
        outcome = ?receipt.outcome,
        "report received"
    );
    Ok(HttpResponse::Ok().json(receipt))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct IndicatorsQuery {
    /// The month, `YYYY-MM`.
    period: String,
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

/// `GET /hub/v1/indicators?period=YYYY-MM`: the release of a period, JSON
/// or (`format=csv`, or `Accept: text/csv`) CSV.
#[utoipa::path(
    get,
    path = "/hub/v1/indicators",
    tag = "hub",
    params(
        IndicatorsQuery,
        ("Accept" = Option<String>, Header, description = "`text/csv` for CSV when `format` is not given."),
    ),
    responses(
        (status = 200, description = "Every indicator for the period, small cells and their complements withheld (`null`).", content(
            (Publication = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "`invalid-request`: a `period` that is not `YYYY-MM`, a `format` other than `json` or `csv`, or an unknown parameter."),
        (status = 500, description = INTERNAL),
    )
)]
pub(crate) async fn indicators(
    hub: web::Data<Hub>,
    req: HttpRequest,
    query: web::Query<IndicatorsQuery>,
) -> Result<HttpResponse, ApiError> {
    let period: Period = query.period.parse().map_err(ApiError::InvalidRequest)?;
    let csv = match query.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::InvalidRequest(format!(
                "format must be json or csv, not {other:?}"
            )))
        }
        None => req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv")),
    };
    let publication = hub.release(period).await?;
    Ok(if csv {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(super::csv::render(&publication))
    } else {
        HttpResponse::Ok().json(&*publication)
    })
}

/// `GET /hub/v1/nodes`: every enrolled node, its key and (once it
/// registered) its URL, for nodes to find and trust peers.
#[utoipa::path(
    get,
    path = "/hub/v1/nodes",
    operation_id = "node_directory",
    tag = "hub",
    responses(
        (status = 200, description = "Every enrolled node.", body = Directory),
        (status = 500, description = INTERNAL),
    )
)]
pub(crate) async fn directory(hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    let urls = hub.blocking(store::node_urls).await?;
    let mut nodes: Vec<DirectoryEntry> = hub
        .config
        .nodes
        .iter()
        .map(|n| DirectoryEntry {
            id: n.id.clone(),
            // A URL registered under a key since replaced is not vouched
            // for by the node now enrolled.
            url: urls
                .get(&n.id)
                .filter(|(_, key)| *key == n.public_key)
                .map(|(url, _)| url.clone()),
            public_key: n.public_key.clone(),
        })
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(HttpResponse::Ok().json(Directory {
        hub_id: hub.config.hub_id.clone(),
        nodes,
    }))
}

/// A base URL a node may register: http(s), a host, no spaces, no query.
fn is_base_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && url.len() <= 2048
        && !rest.is_empty()
        && !rest.starts_with('/')
        && !rest.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
}

/// `POST /hub/v1/nodes {"url"}`: the signing node says where it is.
#[utoipa::path(
    post,
    path = "/hub/v1/nodes",
    operation_id = "register_node",
    tag = "hub",
    security(("signed_request" = [])),
    request_body = NodeRegistration,
    responses(
        (status = 200, description = "The signing node's directory entry.", body = DirectoryEntry),
        (status = 400, description = "`malformed-json`, `invalid-request`: an unreadable body, or a `url` that is not an http(s) base URL."),
        (status = 500, description = INTERNAL),
    )
)]
pub(crate) async fn register_url(
    hub: web::Data<Hub>,
    SignedJson { node, body }: SignedJson,
) -> Result<HttpResponse, ApiError> {
    let registration: NodeRegistration = crate::api::extract::parse_json(&body)?;
    let url = registration.url.trim_end_matches('/').to_string();
    if !is_base_url(&url) {
        return Err(ApiError::InvalidRequest(
            "url must be a base URL like https://county-a.example.org".into(),
        ));
    }
    let public_key = hub
        .nodes
        .get(&node)
        .map(|n| n.public_key.clone())
        .unwrap_or_default();
    let entry = DirectoryEntry {
        id: node.clone(),
        url: Some(url.clone()),
        public_key: public_key.clone(),
    };
    hub.writing(move |conn| store::register_node(conn, &node, &url, &public_key))
        .await?;
    Ok(HttpResponse::Ok().json(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_told_apart_from_non_reports() {
        let good = br#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[{"indicator":"youth_served","age_band":"6-11","value":3}]}"#;
        assert!(parse_report(good).is_ok());
        let bad = |body: &[u8]| parse_report(body).map(|_| ()).map_err(|e| e.code());
        assert_eq!(bad(b"{"), Err("malformed-json"));
        assert_eq!(bad(b"[]"), Err("invalid-report"));
        assert_eq!(
            bad(br#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[],"name":"Ada"}"#),
            Err("invalid-report")
        );
        assert_eq!(
            bad(br#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[{"indicator":"youth_served","age_band":"6-11","value":-3}]}"#),
            Err("invalid-report")
        );
        assert_eq!(
            bad(br#"{"vocabulary":1,"period":"2026-10","version":1,"cells":[{"indicator":"youth_served","age_band":"6-11","value":99999999}]}"#),
            Err("report-refused")
        );
        assert_eq!(
            bad(
                br#"{"vocabulary":1,"period":"2026-10","version":18446744073709551615,"cells":[]}"#
            ),
            Err("report-refused")
        );
    }

    #[test]
    fn a_node_signs_reports_the_way_the_hub_checks_them() {
        use crate::federation::{NodeKey, Peers, RequestSigner, Verifier};
        let key = NodeKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let nodes =
            Peers::enrolled([("county-a", key.public_key())]).unwrap_or_else(|e| panic!("{e}"));
        let signer = RequestSigner::new("county-a".into(), key);
        let now = 1_800_000_000;
        let hub = Verifier::new("state-hub".into(), now - 10);
        let body = b"{}";
        let sign = |to: &str| {
            signer
                .sign(to, "POST", REPORTS_PATH, body, Default::default(), now)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let verified = hub.verify(
            Some(&sign("state-hub")),
            &nodes,
            "POST",
            REPORTS_PATH,
            body,
            now,
        );
        assert_eq!(verified.map(|s| s.peer), Ok("county-a".to_string()));
        assert!(hub
            .verify(
                Some(&sign("county-b")),
                &nodes,
                "POST",
                REPORTS_PATH,
                body,
                now
            )
            .is_err());
        // Not enrolled: refused, whatever it signs.
        let stranger = RequestSigner::new(
            "county-z".into(),
            NodeKey::generate().unwrap_or_else(|e| panic!("{e}")),
        );
        let token = stranger
            .sign(
                "state-hub",
                "POST",
                REPORTS_PATH,
                body,
                Default::default(),
                now,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(hub
            .verify(Some(&token), &nodes, "POST", REPORTS_PATH, body, now)
            .is_err());
    }

    #[test]
    fn only_base_urls_are_registered() {
        for good in ["https://county-a.example.org", "http://127.0.0.1:7400"] {
            assert!(is_base_url(good), "{good}");
        }
        for bad in [
            "ftp://x",
            "https://",
            "https:///x",
            "https://a b",
            "https://a?x=1",
            "a",
        ] {
            assert!(!is_base_url(bad), "{bad}");
        }
    }
}
