//! Sending this node's reports to the state hub: `POST {hub_url}/hub/v1/reports`,
//! the JSON [`Report`] as body, signed like every node-to-node request
//! (audience: `hub_id`). The hub answers `200` with JSON, or refuses with
//! `application/problem+json`.
//!
//! While `hub_url` is set, [`run`] sends this month's and last month's
//! reports (late entries change last month's figures) at start and then
//! every `report_interval_secs`; a failed pass is retried with exponential
//! back-off and jitter, capped. Nothing is queued: each pass makes the
//! reports afresh from the plans, and a later report replaces an earlier
//! one at the hub, so a pass that never went loses nothing.
//!
//! With differential privacy on, a pass sends last month's release only
//! (made by the first pass that needs it, the same stored report after;
//! see [`super::release`]): this month is not over, so it is not released.

use super::release::release;
use super::{describe, generate, period_at};
use crate::app::App;
use crate::db::now_ms;
use crate::federation::describe as describe_http;
use std::collections::BTreeMap;
use std::time::Duration;
use wrapsync_shared::api::Problem;
use wrapsync_shared::hub::{NodeRegistration, NODES_PATH};
use wrapsync_shared::indicators::Report;

/// Where the hub takes reports (and what the signature names).
pub const REPORTS_PATH: &str = "/hub/v1/reports";
/// First wait after a failed pass.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait after failed passes (never longer than the interval).
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// Signs and sends `report` to the configured hub; answers the hub's JSON
/// answer, or why it was not taken.
pub async fn submit(
    app: &App,
    http: &reqwest::Client,
    report: &Report,
) -> Result<serde_json::Value, String> {
    let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
    post_signed(app, http, REPORTS_PATH, body).await
}

/// Signs `body` for the hub and posts it to `path`; answers the hub's JSON
/// answer, or why it was refused.
async fn post_signed(
    app: &App,
    http: &reqwest::Client,
    path: &str,
    body: Vec<u8>,
) -> Result<serde_json::Value, String> {
    let (Some(hub_url), Some(hub_id)) = (&app.config.hub_url, &app.config.hub_id) else {
        return Err("no hub_url and hub_id are configured".into());
    };
    let authorization = app.federation.signer.sign(
        hub_id,
        "POST",
        path,
        &body,
        BTreeMap::new(),
        now_ms() / 1000,
    )?;
    let url = format!("{}{path}", hub_url.trim_end_matches('/'));
    let response = http
        .post(&url)
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| describe_http(&e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| describe_http(&e))?;
    if status == reqwest::StatusCode::OK {
        return serde_json::from_slice(&bytes)
            .map_err(|e| format!("the hub answered 200, but not with JSON: {e}"));
    }
    let why = match serde_json::from_slice::<Problem>(&bytes) {
        Ok(problem) => format!(
            "{}: {}",
            problem.kind,
            problem.detail.unwrap_or(problem.title)
        ),
        Err(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
    };
    Err(format!("the hub answered {}: {why}", status.as_u16()))
}

/// Registers `public_url` in the hub's directory (`POST /hub/v1/nodes`,
/// signed), so other nodes can find this one.
pub async fn register(app: &App, http: &reqwest::Client) -> Result<(), String> {
    let Some(public_url) = &app.config.public_url else {
        return Ok(());
    };
    let body = serde_json::to_vec(&NodeRegistration {
        url: public_url.clone(),
    })
    .map_err(|e| e.to_string())?;
    post_signed(app, http, NODES_PATH, body).await.map(|_| ())
}

/// Runs until the node stops; returns at once when no hub is configured.
pub async fn run(app: actix_web::web::Data<App>) {
    if app.config.hub_url.is_none() {
        return;
    }
    let http = match app.federation.http_client() {
        Ok(http) => http,
        Err(e) => {
            return tracing::error!(error = %describe(&e), "reports: no HTTP client; not reporting")
        }
    };
    let interval = Duration::from_secs(app.config.report_interval_secs.max(1));
    let mut stopping = app.plans.stopping();
    let mut failures = 0u32;
    let mut registered = app.config.public_url.is_none();
    loop {
        if !registered {
            match register(&app, &http).await {
                Ok(()) => registered = true,
                Err(error) => {
                    tracing::warn!(%error, "hub directory: not registered; retried with the next pass")
                }
            }
        }
        let passed = tokio::select! {
            passed = pass(&app, &http) => passed,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let wait = match passed {
            Ok(cells) => {
                failures = 0;
                let metrics = &app.metrics.report;
                metrics.last_success_seconds.set(now_ms() / 1000);
                metrics.cells.set(i64::try_from(cells).unwrap_or(i64::MAX));
                interval
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let metrics = &app.metrics.report;
                metrics.failures.inc();
                metrics.last_failure_seconds.set(now_ms() / 1000);
                let wait = backoff(failures, interval, rand::random_range(-0.25..=0.25));
                tracing::warn!(%error, failures, retry_in_secs = wait.as_secs(), "reports: not sent");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

/// Makes and sends last month's and this month's reports (with privacy
/// on, last month's release only); answers how many cells went.
async fn pass(app: &App, http: &reqwest::Client) -> Result<usize, String> {
    let now = now_ms();
    let this = period_at(now).ok_or("the clock is outside the years a period spans")?;
    let reports = match app.config.privacy() {
        Some(privacy) => vec![release(app, &privacy, this.previous(), "schedule", now)
            .await
            .map_err(|e| describe(&e))?],
        None => generate(app, &[this.previous(), this], "schedule")
            .await
            .map_err(|e| describe(&e))?,
    };
    // Each goes whether or not the other did; the pass fails if one did not.
    let mut cells = 0;
    let mut failed = Vec::new();
    for report in &reports {
        match submit(app, http, report).await {
            Ok(answer) => {
                tracing::info!(period = %report.period, cells = report.cells.len(), %answer, "reports: sent to the hub");
                cells += report.cells.len();
            }
            Err(e) => {
                if refused_by_hub(&e) {
                    // Not a network failure: the hub took the report and
                    // refused it (implausible, or an invalid report), and
                    // publishes nothing of it. Resending the same will not
                    // help; the plans' figures or the node's clock need a
                    // look.
                    tracing::error!(period = %report.period, refusal = %e,
                        "reports: the hub REFUSED this node's report; none of it is published");
                }
                failed.push(format!("report for {}: {e}", report.period))
            }
        }
    }
    if failed.is_empty() {
        Ok(cells)
    } else {
        Err(failed.join("; "))
    }
}

/// Whether a send failed because the hub refused the report itself (a
/// `4xx` other than a timeout or a rate limit), rather than on the way.
fn refused_by_hub(error: &str) -> bool {
    error
        .strip_prefix("the hub answered 4")
        .is_some_and(|rest| !rest.starts_with("08") && !rest.starts_with("29"))
}

/// The wait after `failures` failed passes in a row: doubling from
/// [`FIRST_BACKOFF`], capped at [`MAX_BACKOFF`] and at `interval`, then
/// moved by `jitter` (a fraction, ±0.25 in use) so nodes that failed
/// together do not retry together.
fn backoff(failures: u32, interval: Duration, jitter: f64) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    let capped = doubled.min(MAX_BACKOFF).min(interval);
    capped.mul_f64((1.0 + jitter).clamp(0.5, 1.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_failures() {
        assert!(refused_by_hub(
            "the hub answered 422: /problems/report-part-over-whole: the value of …"
        ));
        assert!(refused_by_hub(
            "the hub answered 400: /problems/invalid-report: x"
        ));
        assert!(!refused_by_hub(
            "the hub answered 429: /problems/rate-limited: x"
        ));
        assert!(!refused_by_hub("the hub answered 408: x"));
        assert!(!refused_by_hub("the hub answered 503: /problems/busy: x"));
        assert!(!refused_by_hub("connection refused"));
    }

    #[test]
    fn back_off_doubles_up_to_a_cap_and_never_past_the_interval() {
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff(1, hour, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(2, hour, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(5, hour, 0.0), Duration::from_secs(160));
        assert_eq!(backoff(7, hour, 0.0), Duration::from_secs(640));
        assert_eq!(backoff(8, hour, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, hour, 0.0), MAX_BACKOFF);
        assert_eq!(
            backoff(9, Duration::from_secs(60), 0.0),
            Duration::from_secs(60)
        );
        assert_eq!(backoff(1, hour, 0.25), Duration::from_millis(12_500));
        assert_eq!(backoff(1, hour, -0.25), Duration::from_millis(7_500));
    }
}
