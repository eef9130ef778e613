//! The timed part of a run: one task per connection, each sending its lane
//! of the [`Schedule`] and timing every answer from when it was due.

use crate::phone::Phone;
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
use wrapsync_client::api::{OpsRequest, RefreshRequest, TokenResponse};
use wrapsync_client::Op;

/// The endpoints of one plan under load.
#[derive(Debug, Clone)]
pub struct PlanUrls {
    pub read: Url,
    pub ops: Url,
    pub sync: Url,
}

/// One node process (all share one database): its plan, list and auth
/// endpoints.
#[derive(Debug, Clone)]
pub struct Base {
    pub plans: Vec<PlanUrls>,
    pub list: Url,
    pub login: Url,
    pub refresh: Url,
}

/// One user the load signs in as.
#[derive(Debug)]
pub struct Session {
    /// `Bearer <token>`, marked sensitive so it never shows in debug output.
    auth: HeaderValue,
    /// `{"username","password"}` for logins, kept out of every report.
    login_body: Vec<u8>,
    /// The refresh token of the sign-in, for the first phone that plays
    /// this user: it refreshes rather than signing in again (every phone
    /// signs in from this one address, which the node limits).
    refresh_token: std::sync::Mutex<Option<String>>,
}

impl Session {
    pub fn new(
        username: &str,
        password: &str,
        access_token: &str,
        refresh_token: String,
    ) -> Result<Session, String> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {access_token}"))
            .map_err(|_| "the node answered an access token that is not a header value")?;
        auth.set_sensitive(true);
        let login_body = serde_json::to_vec(&wrapsync_client::api::LoginRequest {
            username: username.to_string(),
            password: password.to_string(),
        })
        .map_err(|e| e.to_string())?;
        Ok(Session {
            auth,
            login_body,
            refresh_token: std::sync::Mutex::new(Some(refresh_token)),
        })
    }
}

/// Everything the connections share, read-only.
#[derive(Debug)]
pub struct Target {
    pub http: reqwest::Client,
    /// The users signed in; each connection plays the phones of some.
    pub sessions: Vec<Session>,
    /// Requests go to these round-robin, as a load balancer would send them.
    pub bases: Vec<Base>,
    /// Each kind's share of the requests (summing to 1).
    pub mix: &'static [(Kind, f64)],
    /// Requests due this soon after the start are sent but left out of the
    /// percentiles (errors still count): phones pulling their first copies,
    /// plans loading into the cache.
    pub warmup: Duration,
}

/// The kind drawn for `x` in `[0, 1)` from `mix` (cumulative shares; the
/// last kind takes any rounding left over).
pub fn draw(mix: &[(Kind, f64)], x: f64) -> Kind {
    let mut sum = 0.0;
    for &(kind, share) in mix {
        sum += share;
        if x < sum {
            return kind;
        }
    }
    mix.last().map_or(Kind::Read, |m| m.0)
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
    if target.bases.iter().any(|b| b.plans.is_empty()) || target.bases.is_empty() {
        return Err("no plan to send requests to".into());
    }
    if target.sessions.is_empty() {
        return Err("no user to send requests as".into());
    }
    let shares: f64 = target.mix.iter().map(|m| m.1).sum();
    if (shares - 1.0).abs() > 1e-9 {
        return Err("the request mix must add up to 1".into());
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
    let mut phones: Vec<(usize, Phone)> =
        phones_of_lane(k, schedule.lanes(), target.sessions.len())
            .into_iter()
            .map(|user| {
                let mut phone = Phone::new(format!("wrapsync-load-{k}-{user}"));
                phone.refresh_token = target.sessions[user]
                    .refresh_token
                    .lock()
                    .ok()
                    .and_then(|mut token| token.take());
                (user, phone)
            })
            .collect();
    for (turn, i) in schedule.lane(k).enumerate() {
        let due = start + schedule.due(i);
        let now = Instant::now();
        if now >= end {
            stats.unsent += schedule.left_in_lane(i);
            break;
        }
        if due > now {
            tokio::time::sleep_until(due.into()).await;
        }
        let base = &target.bases[i as usize % target.bases.len()];
        let plan = rng.random_range(0..base.plans.len());
        let kind = draw(target.mix, rng.random::<f64>());
        let count = phones.len();
        let (user, phone) = &mut phones[turn % count];
        let session = &target.sessions[*user];
        let (kind, outcome) = send(&target, session, base, plan, kind, phone, &mut rng).await;
        let latency = due.elapsed();
        if due < start + target.warmup {
            match outcome {
                Ok(status) if (200..300).contains(&status) => {
                    stats.sent += 1;
                    stats.warming += 1;
                }
                Ok(status) => stats.record_error(status.to_string(), latency),
                Err(why) => stats.record_error(why.to_string(), latency),
            }
            continue;
        }
        match outcome {
            Ok(status) if (200..300).contains(&status) => stats.record_ok(kind, latency),
            Ok(status) => stats.record_error(status.to_string(), latency),
            Err(why) => stats.record_error(why.to_string(), latency),
        }
    }
    stats
}

/// The users whose phones connection `k` of `lanes` plays, in turn: every
/// user is played by one connection when there are at least as many users
/// as connections; else connections share users, each with its own phone.
fn phones_of_lane(k: usize, lanes: usize, users: usize) -> Vec<usize> {
    if users >= lanes {
        (k..users).step_by(lanes).collect()
    } else {
        vec![k % users]
    }
}

/// Sends one request of `kind` (a refresh with no session yet logs in
/// instead: the kind sent is answered) and reads its whole answer (only
/// then is it complete, and only then can the connection carry the next).
async fn send(
    target: &Target,
    session: &Session,
    base: &Base,
    plan: usize,
    kind: Kind,
    phone: &mut Phone,
    rng: &mut StdRng,
) -> (Kind, Result<u16, &'static str>) {
    let urls = &base.plans[plan];
    let kind = match kind {
        Kind::Refresh if phone.refresh_token.is_none() => Kind::Login,
        kind => kind,
    };
    let json = |request: reqwest::RequestBuilder, body: Vec<u8>| {
        request.header(CONTENT_TYPE, "application/json").body(body)
    };
    let mut sent_message = false;
    let request = match kind {
        Kind::Read => target.http.get(urls.read.clone()),
        Kind::List => target.http.get(base.list.clone()),
        Kind::Ops => match ops_body(rng) {
            Ok(body) => json(target.http.post(urls.ops.clone()), body),
            Err(_) => return (kind, Err("encode")),
        },
        Kind::Sync => {
            let message = phone.next_message(plan, rng);
            sent_message = message.is_some();
            target
                .http
                .post(urls.sync.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Device-Id", phone.device.as_str())
                .body(message.unwrap_or_default())
        }
        Kind::Login => json(
            target.http.post(base.login.clone()),
            session.login_body.clone(),
        ),
        Kind::Refresh => {
            let body = serde_json::to_vec(&RefreshRequest {
                refresh_token: phone.refresh_token.take().unwrap_or_default(),
            });
            match body {
                Ok(body) => json(target.http.post(base.refresh.clone()), body),
                Err(_) => return (kind, Err("encode")),
            }
        }
    };
    let request = match kind {
        Kind::Login | Kind::Refresh => request,
        _ => request.header(AUTHORIZATION, session.auth.clone()),
    };
    let outcome = async {
        let response = request.send().await.map_err(|e| failure(&e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| failure(&e))?;
        if (200..300).contains(&status) {
            match kind {
                Kind::Sync => {
                    let answer = (status == 200 && !body.is_empty()).then_some(&body[..]);
                    phone.receive(plan, sent_message, answer)?;
                }
                Kind::Login | Kind::Refresh => {
                    let tokens: TokenResponse =
                        serde_json::from_slice(&body).map_err(|_| "token-decode")?;
                    phone.refresh_token = Some(tokens.refresh_token);
                }
                _ => {}
            }
        }
        Ok(status)
    }
    .await;
    (kind, outcome)
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
    fn kinds_are_drawn_by_their_share() {
        let mix = [(Kind::Read, 0.5), (Kind::List, 0.3), (Kind::Sync, 0.2)];
        assert_eq!(draw(&mix, 0.0), Kind::Read);
        assert_eq!(draw(&mix, 0.49), Kind::Read);
        assert_eq!(draw(&mix, 0.5), Kind::List);
        assert_eq!(draw(&mix, 0.79), Kind::List);
        assert_eq!(draw(&mix, 0.8), Kind::Sync);
        assert_eq!(draw(&mix, 0.999_999_9), Kind::Sync);
        let mut rng = StdRng::seed_from_u64(1);
        let lists = (0..100_000)
            .filter(|_| draw(&mix, rng.random::<f64>()) == Kind::List)
            .count();
        assert!((29_000..31_000).contains(&lists), "{lists}");
    }

    #[test]
    fn every_user_is_played_and_by_one_connection_when_there_are_enough() {
        let played: Vec<Vec<usize>> = (0..4).map(|k| phones_of_lane(k, 4, 10)).collect();
        assert_eq!(played[0], [0, 4, 8]);
        assert_eq!(played[3], [3, 7]);
        let mut all: Vec<usize> = played.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        // Fewer users than connections: shared, each connection one phone.
        assert_eq!(phones_of_lane(5, 8, 3), [2]);
        assert_eq!(phones_of_lane(0, 8, 1), [0]);
    }

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
