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
use std::collections::BTreeMap;
use wrapsync_shared::hub::{Periods, Vocabulary};
use wrapsync_shared::indicators::{Period, DEFINITIONS, FIRST_PERIOD, VOCABULARY_VERSION};

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

/// The months to offer, oldest first: those some node reported, from the
/// vocabulary's first month to `current` (a month past it was never
/// plausible); and the latest *complete* one: over (before `current`) and
/// reported by at least `quorum` of the `enrolled` nodes.
pub fn offered(
    reported: &BTreeMap<Period, Vec<String>>,
    enrolled: &[&str],
    quorum: usize,
    current: Period,
) -> Periods {
    let periods: Vec<Period> = reported
        .keys()
        .copied()
        .filter(|p| (FIRST_PERIOD..=current).contains(p))
        .collect();
    let latest_complete = reported
        .iter()
        .rev()
        .filter(|(p, _)| **p >= FIRST_PERIOD && **p < current)
        .find(|(_, nodes)| {
            nodes
                .iter()
                .filter(|n| enrolled.contains(&n.as_str()))
                .count()
                >= quorum
        })
        .map(|(p, _)| *p);
    Periods {
        periods,
        latest_complete,
    }
}

/// `GET /hub/v1/periods`: the months some node reported, oldest first, and
/// the latest complete one, which the dashboard opens on.
#[utoipa::path(
    get,
    path = "/hub/v1/periods",
    tag = "hub",
    responses(
        (status = 200, description = "The months with reports (none after this month), and `latest_complete`: the latest month that is over and that `complete_period_min_nodes` of the enrolled nodes (a majority by default) reported.", body = Periods),
        (status = 500, description = INTERNAL),
    )
)]
pub(crate) async fn periods(hub: web::Data<Hub>) -> Result<HttpResponse, ApiError> {
    let reported = hub
        .blocking(|conn| store::period_nodes(conn, VOCABULARY_VERSION))
        .await?;
    let enrolled: Vec<&str> = hub.config.nodes.iter().map(|n| n.id.as_str()).collect();
    let current = crate::report::period_at(crate::db::now_ms()).unwrap_or(FIRST_PERIOD);
    Ok(HttpResponse::Ok().json(offered(
        &reported,
        &enrolled,
        hub.config.complete_quorum(),
        current,
    )))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Period {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_dashboard_opens_on_the_latest_complete_month() {
        let reported: BTreeMap<Period, Vec<String>> = [
            ("2000-01", vec!["county-b"]),
            ("2026-09", vec!["county-a", "county-b", "county-c"]),
            ("2026-10", vec!["county-a", "county-c"]),
            ("2026-11", vec!["county-b", "county-x"]),
            ("2026-12", vec!["county-a", "county-b", "county-c"]),
            ("2999-12", vec!["county-b"]),
        ]
        .into_iter()
        .map(|(period, nodes)| (p(period), nodes.into_iter().map(String::from).collect()))
        .collect();
        let enrolled = ["county-a", "county-b", "county-c"];
        let now = p("2026-12");
        let offered_now = offered(&reported, &enrolled, 2, now);
        // Nothing before the vocabulary or after this month is offered.
        assert_eq!(
            offered_now.periods,
            ["2026-09", "2026-10", "2026-11", "2026-12"].map(p)
        );
        // December is not over; November has one enrolled node (county-x
        // is not enrolled); October has two of three.
        assert_eq!(offered_now.latest_complete, Some(p("2026-10")));
        // All three wanted: September.
        assert_eq!(
            offered(&reported, &enrolled, 3, now).latest_complete,
            Some(p("2026-09"))
        );
        // Once December is over, it is complete.
        assert_eq!(
            offered(&reported, &enrolled, 3, p("2027-01")).latest_complete,
            Some(p("2026-12"))
        );
        assert_eq!(
            offered(&BTreeMap::new(), &enrolled, 2, now).latest_complete,
            None
        );
    }
}
