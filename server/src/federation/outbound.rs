//! This node's side of federation: sending each peer the plans families
//! consented to share with it. The outbox is durable and per peer: the
//! heads each peer last confirmed holding of each plan (`peer_plan_heads`),
//! so what is to send is every shared plan whose heads moved since, found
//! in one query; a restart forgets nothing. A change is pushed promptly
//! (the plan service announces every stored change, and the `plan_changes`
//! log past the peer's cursor says something moved); every
//! `federation_interval_secs` an anti-entropy pass looks anyway, and hourly
//! every shared plan is sent, in case a peer lost what it had. An idle peer
//! costs no request. Plans go several at a time, each by the Automerge
//! sync protocol, signed (see `signing`); an unreachable peer is retried
//! with exponential back-off and jitter.

use super::Peer;
use crate::app::App;
use crate::db::now_ms;
use crate::error::ApiError;
use crate::metrics::PeerLabel;
use crate::store::plans as stored;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use wrapsync_shared::api::PeerStatus;

/// Longest wait between attempts to reach a failing peer.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// Plans pushed to one peer at once.
const PUSH_CONCURRENCY: usize = 32;
/// How soon plans that failed in a pass that otherwise went are retried.
const RETRY_SOON_MS: i64 = 1000;

#[derive(Default)]
struct Track {
    status: PeerStatus,
    failures: u32,
    next_attempt: i64,
    /// The last pass left plans unconfirmed.
    retry_stale: bool,
}

/// What the admin endpoint and metrics show of each peer.
#[derive(Default)]
pub struct Outbound {
    tracks: Mutex<HashMap<String, Track>>,
    pub metrics: crate::metrics::PeerMetrics,
}

impl Outbound {
    pub fn status(&self, peer: &str) -> Option<PeerStatus> {
        self.tracks.lock().get(peer).map(|t| t.status.clone())
    }

    fn succeeded(&self, peer: &str, behind: usize) {
        let label = PeerLabel::of(peer);
        self.metrics.reachable.get_or_create(&label).set(1);
        self.metrics
            .last_success_seconds
            .get_or_create(&label)
            .set(now_ms() / 1000);
        self.metrics
            .plans_behind
            .get_or_create(&label)
            .set(behind as i64);
        let mut tracks = self.tracks.lock();
        let track = tracks.entry(peer.to_string()).or_default();
        track.failures = 0;
        track.next_attempt = 0;
        track.status = PeerStatus {
            reachable: Some(true),
            last_success_at: Some(now_ms()),
            last_error: None,
            plans_behind: behind,
        };
    }

    fn failed(&self, peer: &str, error: String, behind: usize) {
        let label = PeerLabel::of(peer);
        self.metrics.reachable.get_or_create(&label).set(0);
        self.metrics.failures.get_or_create(&label).inc();
        self.metrics
            .plans_behind
            .get_or_create(&label)
            .set(behind as i64);
        let mut tracks = self.tracks.lock();
        let track = tracks.entry(peer.to_string()).or_default();
        track.failures = track.failures.saturating_add(1);
        let base = 1000i64
            .saturating_mul(1 << track.failures.min(20))
            .min(MAX_BACKOFF_MS);
        // ±25 % jitter, so peers that failed together do not retry together.
        let jitter = rand::random_range(-(base / 4)..=(base / 4));
        track.next_attempt = now_ms() + base + jitter;
        track.status.reachable = Some(false);
        track.status.last_error = Some(error);
        track.status.plans_behind = behind;
    }

    /// Some plans went and some failed: the peer is there, so the failed
    /// ones are retried after a second, with no back-off.
    fn partly_failed(&self, peer: &str, error: String, behind: usize) {
        self.succeeded(peer, behind);
        let mut tracks = self.tracks.lock();
        let track = tracks.entry(peer.to_string()).or_default();
        track.next_attempt = now_ms() + RETRY_SOON_MS;
        track.retry_stale = true;
        track.status.last_error = Some(error);
    }

    /// Whether the next pass for `peer` must look for every unconfirmed
    /// plan (some failed in the last one); clears the mark.
    fn take_retry(&self, peer: &str) -> bool {
        self.tracks
            .lock()
            .get_mut(peer)
            .is_some_and(|t| std::mem::take(&mut t.retry_stale))
    }

    fn due(&self, peer: &str, now: i64) -> bool {
        self.tracks
            .lock()
            .get(peer)
            .is_none_or(|t| t.next_attempt <= now)
    }

    /// When the earliest backed-off peer is due again.
    fn next_due(&self) -> Option<i64> {
        self.tracks
            .lock()
            .values()
            .map(|t| t.next_attempt)
            .filter(|at| *at > 0)
            .min()
    }
}

/// How often a pass sends every shared plan, whatever the heads say: in
/// case a peer lost what it had confirmed (restored from a backup).
const FULL_PASS: Duration = Duration::from_secs(3600);

/// An error with its causes: "error sending request" alone does not tell
/// an operator that the peer's certificate is not trusted.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Runs until the node stops.
pub async fn run(app: actix_web::web::Data<App>) {
    let mut changed = app.plans.subscribe();
    let mut stopping = app.plans.stopping();
    let interval = Duration::from_secs(app.config.federation_interval_secs.max(1));
    let http = match app.federation.http_client() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(%e, "federation: no HTTP client; not sending to peers");
            return;
        }
    };
    let mut last_check: Option<Instant> = None;
    let mut last_full: Option<Instant> = None;
    loop {
        let pass = if last_full.is_none_or(|at| at.elapsed() >= FULL_PASS) {
            last_full = Some(Instant::now());
            last_check = last_full;
            Pass::Full
        } else if last_check.is_none_or(|at| at.elapsed() >= interval) {
            last_check = Some(Instant::now());
            Pass::Stale
        } else {
            Pass::Outbox
        };
        if pass != Pass::Outbox {
            super::transfer::resume(&app, &http).await;
        }
        let peers: Vec<Peer> = app.federation.peers().all().cloned().collect();
        for peer in peers {
            if app.federation.outbound.due(&peer.id, now_ms()) {
                let pass = match pass {
                    Pass::Outbox if app.federation.outbound.take_retry(&peer.id) => Pass::Stale,
                    pass => pass,
                };
                push_to(&app, &http, &peer, pass).await;
            }
        }
        let mut wait = interval;
        if let Some(due) = app.federation.outbound.next_due() {
            let until = Duration::from_millis((due - now_ms()).max(0) as u64);
            wait = wait.min(until.max(Duration::from_millis(50)));
        }
        tokio::select! {
            _ = changed.recv() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Which shared plans a pass sends.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Pass {
    /// If the change log moved past the peer's cursor: the plans whose
    /// heads moved since the peer confirmed them.
    Outbox,
    /// Those, whether or not the log moved (anti-entropy: catches a push
    /// that failed midway).
    Stale,
    /// All of them (at start, then hourly).
    Full,
}

/// One pass for `peer` over the plans shared with it (see [`Pass`]).
async fn push_to(app: &App, http: &reqwest::Client, peer: &Peer, pass: Pass) {
    let peer_id = peer.id.clone();
    let now = now_ms();
    let found = app
        .blocking(move |conn| {
            let cursor = stored::peer_cursor(conn, &peer_id)?;
            let last = stored::last_change_seq(conn)?;
            if pass == Pass::Outbox && last <= cursor {
                return Ok((Vec::new(), None));
            }
            // Something changed (or it is time to look): every shared plan
            // the peer has not confirmed at its heads now, in one query,
            // however long the backlog (a partition leaves thousands of
            // rows naming the same plans).
            let plans = stored::shared_with(conn, &peer_id, now, pass != Pass::Full)?;
            Ok((plans, (last > cursor).then_some(last)))
        })
        .await;
    let (plans, cursor) = match found {
        Ok(found) => found,
        Err(e) => return app.federation.outbound.failed(&peer.id, e.to_string(), 0),
    };
    // Several plans at once: the peer commits each round durably, and its
    // group commit takes concurrent rounds together.
    let failures: Vec<String> = futures_util::stream::iter(&plans)
        .map(|plan| async move {
            let pushed = push_plan(app, http, peer, plan).await;
            if pushed.is_ok() {
                app.federation
                    .outbound
                    .metrics
                    .plans_sent
                    .get_or_create(&PeerLabel::of(&peer.id))
                    .inc();
            }
            pushed.err().map(|e| format!("plan {plan}: {e}"))
        })
        .buffer_unordered(PUSH_CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await;
    // A failed plan stays unconfirmed, so the next pass sends it again:
    // the cursor may move on regardless.
    if let Some(last) = cursor {
        let peer_id = peer.id.clone();
        let saved = app
            .writer
            .write(move |conn| stored::set_peer_cursor(conn, &peer_id, last, now_ms()))
            .await;
        if let Err(e) = saved {
            return app
                .federation
                .outbound
                .failed(&peer.id, e.to_string(), plans.len());
        }
    }
    let outbound = &app.federation.outbound;
    match failures.first() {
        None => outbound.succeeded(&peer.id, 0),
        Some(error) => {
            tracing::warn!(peer = %peer.id, %error, failed = failures.len(), "federation: pushes failed");
            if failures.len() < plans.len() {
                // The peer answers, over a lossy link: retry soon, no back-off.
                outbound.partly_failed(&peer.id, error.clone(), failures.len());
            } else {
                outbound.failed(&peer.id, error.clone(), failures.len());
            }
        }
    }
}

/// Sync rounds with `peer` for one plan until both sides are quiet.
async fn push_plan(
    app: &App,
    http: &reqwest::Client,
    peer: &Peer,
    plan: &str,
) -> Result<(), String> {
    let Some(entry) = app.plans.get(plan).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let path = format!("/federation/v1/plans/{plan}/sync");
    let url = format!("{}{path}", peer.url.trim_end_matches('/'));
    let authors = app.plans.local_authors(&entry).await;
    // What the peer holds once this session ends quietly (newer changes
    // made meanwhile leave the heads stale, so a later pass sends them).
    let heads = entry.view().version.join(",");
    let confirmed = || async {
        let (peer, plan) = (peer.id.clone(), plan.to_string());
        app.writer
            .write(move |conn| stored::set_peer_heads(conn, &peer, &plan, &heads, now_ms()))
            .await
            .map_err(|e| e.to_string())
    };
    // A plan that moved here: its certificates let replica holders that
    // knew the old home follow the move.
    let certificates = match entry.view().home {
        None => super::transfer::certificates(app, plan)
            .await
            .map_err(|e| e.to_string())?,
        Some(_) => None,
    };
    let mut reply: Option<Vec<u8>> = None;
    for round in 0..20 {
        let message = app
            .plans
            .outbound_round(&entry, &peer.id, round, reply.as_deref())
            .await
            .map_err(|e: ApiError| e.to_string())?;
        // Done once the peer needs nothing more from here: this session
        // only delivers this node's changes (the peer pushes its own).
        let decoded = message
            .as_deref()
            .and_then(|m| automerge::sync::Message::decode(m).ok());
        if crate::plans::push_done(round, decoded.as_ref()) {
            return confirmed().await;
        }
        let body = message.unwrap_or_default();
        let authorization = app.federation.signer.sign(
            &peer.id,
            "POST",
            &path,
            &body,
            authors.clone(),
            now_ms() / 1000,
        )?;
        let mut request = http.post(&url);
        if let Some(certificates) = &certificates {
            request = request.header(super::transfer::CERTIFICATES_HEADER, certificates);
        }
        let response = request
            .header("authorization", authorization)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| describe(&e))?;
        reply = match status {
            200 if !bytes.is_empty() => Some(bytes.to_vec()),
            200 | 204 => None,
            // The home refused a change made here (it may not be made by
            // its author there): it stays here, and it must not hold up
            // every other plan bound for this peer.
            422 => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                tracing::warn!(peer = %peer.id, %plan, %text, "federation: the peer refused changes");
                return confirmed().await;
            }
            // Not (or no longer) shared between the two: nothing to send.
            404 => {
                tracing::debug!(peer = %peer.id, %plan, "federation: the peer does not share this plan");
                return confirmed().await;
            }
            _ => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                return Err(format!("the peer answered {status}: {text}"));
            }
        };
    }
    Err("no quiet after 20 rounds".into())
}
