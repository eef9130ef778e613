//! This node's side of federation: sending each peer the plans families
//! consented to share with it. A change is pushed promptly (the plan
//! service announces every stored change) from a durable outbox: the
//! `plan_changes` log with a cursor per peer, so a restart forgets nothing.
//! Every `federation_interval_secs` a full pass over the shared plans
//! catches anything missed (anti-entropy); an unreachable peer is retried
//! with exponential back-off and jitter. Each plan goes by the Automerge
//! sync protocol, signed (see `signing`).

use super::Peer;
use crate::app::App;
use crate::db::now_ms;
use crate::error::ApiError;
use crate::store::{consent, plans as stored};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use wrapsync_shared::api::PeerStatus;

/// Longest wait between attempts to reach a failing peer.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// Outbox rows read per pass.
const OUTBOX_PAGE: i64 = 1000;

#[derive(Default)]
struct Track {
    status: PeerStatus,
    failures: u32,
    next_attempt: i64,
}

/// What the admin endpoint and metrics show of each peer.
#[derive(Default)]
pub struct Outbound {
    tracks: Mutex<HashMap<String, Track>>,
}

impl Outbound {
    pub fn status(&self, peer: &str) -> Option<PeerStatus> {
        self.tracks.lock().get(peer).map(|t| t.status.clone())
    }

    fn succeeded(&self, peer: &str, behind: usize) {
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

/// Runs until the node stops.
pub async fn run(app: actix_web::web::Data<App>) {
    let mut changed = app.plans.subscribe();
    let mut stopping = app.plans.stopping();
    let interval = Duration::from_secs(app.config.federation_interval_secs.max(1));
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(%e, "federation: no HTTP client; not sending to peers");
            return;
        }
    };
    let mut last_full: Option<std::time::Instant> = None;
    loop {
        let full = last_full.is_none_or(|at| at.elapsed() >= interval);
        if full {
            last_full = Some(std::time::Instant::now());
        }
        let peers: Vec<Peer> = app.federation.peers().all().cloned().collect();
        for peer in peers {
            if app.federation.outbound.due(&peer.id, now_ms()) {
                push_to(&app, &http, &peer, full).await;
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

/// One pass for `peer`: the plans shared with it that changed since its
/// cursor (or all of them, on a full pass).
async fn push_to(app: &App, http: &reqwest::Client, peer: &Peer, full: bool) {
    let peer_id = peer.id.clone();
    let now = now_ms();
    let found = app
        .blocking(move |conn| {
            let cursor = stored::peer_cursor(conn, &peer_id)?;
            let outbox = stored::changes_after_seq(conn, cursor, OUTBOX_PAGE)?;
            let mut granted = consent::live_for_node(conn, &peer_id, now)?;
            // Replicas of the peer's plans go back to it with edits made here.
            granted.extend(stored::replicas_homed_at(conn, &peer_id)?);
            Ok((outbox, granted))
        })
        .await;
    let (outbox, granted) = match found {
        Ok(found) => found,
        Err(e) => return app.federation.outbound.failed(&peer.id, e.to_string(), 0),
    };
    let granted: BTreeSet<String> = granted.into_iter().collect();
    let plans: BTreeSet<String> = if full {
        granted.clone()
    } else {
        outbox
            .iter()
            .map(|(_, plan)| plan.clone())
            .filter(|plan| granted.contains(plan))
            .collect()
    };
    let mut behind = plans.len();
    for plan in &plans {
        if let Err(e) = push_plan(app, http, peer, plan).await {
            let error = format!("plan {plan}: {e}");
            tracing::warn!(peer = %peer.id, %error, "federation: push failed");
            return app.federation.outbound.failed(&peer.id, error, behind);
        }
        behind -= 1;
    }
    if let Some((last, _)) = outbox.last() {
        let (peer_id, last) = (peer.id.clone(), *last);
        let saved = app
            .writer
            .write(move |conn| stored::set_peer_cursor(conn, &peer_id, last, now_ms()))
            .await;
        if let Err(e) = saved {
            return app
                .federation
                .outbound
                .failed(&peer.id, e.to_string(), behind);
        }
    }
    app.federation.outbound.succeeded(&peer.id, behind);
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
            return Ok(());
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
        let response = http
            .post(&url)
            .header("authorization", authorization)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        reply = match status {
            200 if !bytes.is_empty() => Some(bytes.to_vec()),
            200 | 204 => None,
            // The home refused a change made here (it may not be made by
            // its author there): it stays here, and it must not hold up
            // every other plan bound for this peer.
            422 => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                tracing::warn!(peer = %peer.id, %plan, %text, "federation: the peer refused changes");
                return Ok(());
            }
            // Not (or no longer) shared between the two: nothing to send.
            404 => {
                tracing::debug!(peer = %peer.id, %plan, "federation: the peer does not share this plan");
                return Ok(());
            }
            _ => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                return Err(format!("the peer answered {status}: {text}"));
            }
        };
    }
    Err("no quiet after 20 rounds".into())
}
