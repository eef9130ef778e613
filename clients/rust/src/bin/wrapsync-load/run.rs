//! The timed part of a run: one task per connection, each sending its lane
//! of the [`Schedule`] and timing every answer from when it was due.

use crate::report::{Kind, Stats};
use crate::schedule::Schedule;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use wrapsync_client::api::OpsRequest;
use wrapsync_client::Op;

/// The endpoints of one plan under load.
#[derive(Debug, Clone)]
pub struct PlanUrls {
    pub read: Url,
    pub ops: Url,
}

/// Everything the connections share, read-only.
#[derive(Debug)]
pub struct Target {
    pub http: reqwest::Client,
    /// `Bearer <token>`, marked sensitive so it never shows in debug output.
    pub auth: HeaderValue,
    pub plans: Vec<PlanUrls>,
    /// The share of requests that write (`ops`), the rest read.
    pub ops_share: f64,
}

/// Lead time before the first request is due, so every connection task is
/// running when the schedule starts.
const LEAD: Duration = Duration::from_millis(20);

/// Runs the schedule to its end and answers the merged tally and the time
/// from the first due request until the last answer.
pub async fn run(
    target: Target,
    schedule: Schedule,
    seed: u64,
) -> Result<(Stats, Duration), String> {
    if target.plans.is_empty() {
        return Err("no plan to send requests to".into());
    }
    if !(0.0..=1.0).contains(&target.ops_share) {
        return Err("the ops share must be in 0..=1".into());
    }
    let target = Arc::new(target);
    let start = Instant::now() + LEAD;
    let mut lanes = JoinSet::new();
    for k in 0..schedule.lanes() {
        let stats = Stats::new()?;
        let rng = StdRng::seed_from_u64(seed.wrapping_add(k as u64));
        lanes.spawn(lane(Arc::clone(&target), schedule, k, start, stats, rng));
    }
    let mut total = Stats::new()?;
    while let Some(done) = lanes.join_next().await {
        let stats = done.map_err(|e| format!("a connection task failed: {e}"))?;
        total.merge(&stats)?;
    }
    // At least the scheduled duration, so a run that ends early never
    // reports more than the asked rate.
    Ok((total, start.elapsed().max(schedule.duration())))
}

/// One connection: sends lane `k` in order, never two at once, and stops
/// when the run's duration is over even if it is behind.
async fn lane(
    target: Arc<Target>,
    schedule: Schedule,
    k: usize,
    start: Instant,
    mut stats: Stats,
    mut rng: StdRng,
) -> Stats {
    let end = start + schedule.duration();
    for i in schedule.lane(k) {
        let due = start + schedule.due(i);
        let now = Instant::now();
        if now >= end {
            stats.unsent += schedule.left_in_lane(i);
            break;
        }
        if due > now {
            tokio::time::sleep_until(due.into()).await;
        }
        let plan = &target.plans[rng.random_range(0..target.plans.len())];
        let kind = if rng.random_bool(target.ops_share) {
            Kind::Ops
        } else {
            Kind::Read
        };
        let outcome = send(&target, plan, kind, &mut rng).await;
        let latency = due.elapsed();
        match outcome {
            Ok(status) if (200..300).contains(&status) => stats.record_ok(kind, latency),
            Ok(status) => stats.record_error(status.to_string(), latency),
            Err(why) => stats.record_error(why.to_string(), latency),
        }
    }
    stats
}

/// Sends one request and reads its whole answer (only then is it complete,
/// and only then can the connection carry the next one).
async fn send(
    target: &Target,
    plan: &PlanUrls,
    kind: Kind,
    rng: &mut StdRng,
) -> Result<u16, &'static str> {
    let request = match kind {
        Kind::Read => target.http.get(plan.read.clone()),
        Kind::Ops => target
            .http
            .post(plan.ops.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(ops_body(rng).map_err(|_| "encode")?),
    };
    let response = request
        .header(AUTHORIZATION, target.auth.clone())
        .send()
        .await
        .map_err(|e| failure(&e))?;
    let status = response.status().as_u16();
    response.bytes().await.map_err(|e| failure(&e))?;
    Ok(status)
}

/// A `replace /vision` with a fresh random value, so every write is a real
/// change; no base version, so it applies at the current one.
fn ops_body(rng: &mut StdRng) -> Result<Vec<u8>, serde_json::Error> {
    let vision = format!("load {}", Alphanumeric.sample_string(rng, 16));
    serde_json::to_vec(&OpsRequest {
        base_version: None,
        ops: vec![Op {
            op: "replace".into(),
            path: "/vision".into(),
            value: Some(vision.into()),
            from: None,
        }],
    })
}

/// A transport failure's bucket in the error tally.
fn failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_vision_with_fresh_text() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = ops_body(&mut rng).unwrap_or_default();
        let b = ops_body(&mut rng).unwrap_or_default();
        assert_ne!(a, b);
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap_or_default();
        assert_eq!(v["ops"][0]["op"], "replace");
        assert_eq!(v["ops"][0]["path"], "/vision");
        assert!(v["ops"][0]["value"].as_str().is_some_and(|s| s.len() == 21));
    }
}
