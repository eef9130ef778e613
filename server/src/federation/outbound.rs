//! This node's side of federation: sending each peer the plans families
//! consented to share with it. The outbox is durable and per peer: the
//! heads each peer last confirmed holding of each plan (`peer_plan_heads`),
//! so what is to send is every shared plan whose heads moved since, found
//! in one query; a restart forgets nothing. A change is pushed promptly
//! (the plan service announces every stored change, and the `plan_changes`
//! log past the peer's cursor says something moved); every
//! `federation_interval_secs` an anti-entropy pass looks anyway, and hourly
//! every shared plan is sent, in case a peer lost what it had. An idle peer
//! costs no request. Plans go by the Automerge sync protocol, a hundred per
//! signed request (see `signing`), one round of each per request; an unreachable peer is retried
//! with exponential back-off and jitter.

use super::{describe, Context, Peer};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::metrics::PeerLabel;
use crate::store::plans as stored;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use wrapsync_shared::api::{
    PeerStatus, PeerSyncBatch, PeerSyncItem, SyncBatchReply, SyncBatchResult,
};

/// Longest wait between attempts to reach a failing peer.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// Plans per request to a peer (each is one sync round of one plan).
const BATCH_PLANS: usize = 100;
/// Requests in flight to one peer at once.
const BATCHES_IN_FLIGHT: usize = 4;
/// A request stops growing once its messages reach this size; the peer's
/// `max_sync_bytes` (32 MiB by default) must take it.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Rounds after which a session that is not yet quiet gives up.
const MAX_ROUNDS: usize = 20;
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

    /// Each peer's last completed pass (Unix milliseconds), for the sync
    /// lag the metrics show.
    pub fn last_successes(&self) -> Vec<(String, i64)> {
        self.tracks
            .lock()
            .iter()
            .filter_map(|(peer, t)| t.status.last_success_at.map(|at| (peer.clone(), at)))
            .collect()
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
        let base = backoff_ms(track.failures);
        // ±25 % jitter, so peers that failed together do not retry together.
        let jitter = rand::random_range(-(base / 4)..=(base / 4));
        track.next_attempt = now_ms() + base + jitter;
        track.status.reachable = Some(false);
        track.status.last_error = Some(error);
        track.status.plans_behind = behind;
        // The cursor moved past what failed: the retry must look at heads.
        track.retry_stale = true;
    }

    /// `peer` just reached this node with a signed request, so it is up:
    /// if it was backed off, it is due now (a healed partition need not
    /// wait out the back-off built up while it lasted). Answers whether it
    /// was backed off, so the caller wakes the sending loop.
    pub fn heard_from(&self, peer: &str) -> bool {
        let mut tracks = self.tracks.lock();
        match tracks.get_mut(peer) {
            Some(track) if track.failures > 0 && track.next_attempt > now_ms() => {
                track.next_attempt = 0;
                true
            }
            _ => false,
        }
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

/// The wait after `failures` failed passes in a row: 1 s growing by half
/// each time, to [`MAX_BACKOFF_MS`] (reached after about 15 failures, a
/// quarter of an hour). Gentler than doubling: a failed attempt on a cut
/// link costs one refused connection, and a healed partition is found
/// again within about a third of its length.
fn backoff_ms(failures: u32) -> i64 {
    let wait = 1000.0 * 1.5f64.powi(failures.saturating_sub(1).min(40) as i32);
    (wait as i64).min(MAX_BACKOFF_MS)
}

/// How often a pass sends every shared plan, whatever the heads say: in
/// case a peer lost what it had confirmed (restored from a backup).
const FULL_PASS: Duration = Duration::from_secs(3600);

/// The sending loop (in one process of those sharing a database: the
/// leader, see `cluster`). It owns its HTTP client and its schedule of
/// passes and works with the parts of the node it needs; what it learns
/// of each peer goes to [`Outbound`], which the admin endpoint reads and
/// a peer's request wakes ([`Outbound::heard_from`]).
pub struct Worker {
    cx: Context,
    /// How often an anti-entropy pass looks (`federation_interval_secs`).
    interval: Duration,
}

impl Worker {
    pub fn new(cx: Context, interval_secs: u64) -> Worker {
        Worker {
            cx,
            interval: Duration::from_secs(interval_secs.max(1)),
        }
    }

    /// Runs until the node stops.
    pub async fn run(self) {
        let Worker { cx, interval } = self;
        let mut changed = cx.plans.subscribe();
        let mut stopping = cx.plans.stopping();
        let http = match cx.federation.http_client() {
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
                super::transfer::resume(&cx, &http).await;
            }
            let peers: Vec<Peer> = match cx.peers().await {
                Ok(peers) => peers.all().cloned().collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "federation: cannot read the peers; using those known");
                    cx.federation.peers().all().cloned().collect()
                }
            };
            for peer in peers {
                if cx.federation.outbound.due(&peer.id, now_ms()) {
                    let pass = match pass {
                        Pass::Outbox if cx.federation.outbound.take_retry(&peer.id) => Pass::Stale,
                        pass => pass,
                    };
                    push_to(&cx, &http, &peer, pass).await;
                }
            }
            let mut wait = interval;
            if let Some(due) = cx.federation.outbound.next_due() {
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
async fn push_to(cx: &Context, http: &reqwest::Client, peer: &Peer, pass: Pass) {
    let peer_id = peer.id.clone();
    let now = now_ms();
    let found = cx
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
        Err(e) => return cx.federation.outbound.failed(&peer.id, e.to_string(), 0),
    };
    // Many plans per request, a few requests at once: the peer runs a
    // batch's rounds together and commits them together.
    let failures: Vec<String> = futures_util::stream::iter(plans.chunks(BATCH_PLANS))
        .map(|batch| push_batch(cx, http, peer, batch))
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;
    // A failed plan stays unconfirmed, so the next pass sends it again:
    // the cursor may move on regardless.
    if let Some(last) = cursor {
        let peer_id = peer.id.clone();
        let saved = cx
            .writer
            .write(move |conn| stored::set_peer_cursor(conn, &peer_id, last, now_ms()))
            .await;
        if let Err(e) = saved {
            return cx
                .federation
                .outbound
                .failed(&peer.id, e.to_string(), plans.len());
        }
    }
    let outbound = &cx.federation.outbound;
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

/// One plan's push session.
struct Session {
    entry: std::sync::Arc<crate::plans::PlanEntry>,
    authors: BTreeMap<String, String>,
    /// What the peer holds once this session ends quietly (newer changes
    /// made meanwhile leave the heads stale, so a later pass sends them).
    heads: String,
    transfers: Option<String>,
    /// The peer's last reply (`None`: it had nothing to say).
    reply: Option<Vec<u8>>,
}

/// Sync rounds with `peer` for `plans` until each is quiet, all plans'
/// rounds in one request. Answers the failures, one line per plan; a
/// failed plan stays unconfirmed, so the next pass sends it again.
async fn push_batch(
    cx: &Context,
    http: &reqwest::Client,
    peer: &Peer,
    plans: &[String],
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut sessions = Vec::new();
    for plan in plans {
        match open_session(cx, plan, &peer.id).await {
            Ok(Some(session)) => sessions.push(session),
            Ok(None) => {}
            Err(e) => failures.push(format!("plan {plan}: {e}")),
        }
    }
    let mut confirmed: Vec<(String, String)> = Vec::new();
    for round in 0..MAX_ROUNDS {
        let mut items = Vec::new();
        let mut waiting = Vec::new();
        let messages = futures_util::future::join_all(sessions.iter().map(|session| {
            cx.plans
                .outbound_round(&session.entry, &peer.id, round, session.reply.as_deref())
        }))
        .await;
        for (session, message) in sessions.into_iter().zip(messages) {
            let plan = session.entry.id().to_string();
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    failures.push(format!("plan {plan}: {e}"));
                    continue;
                }
            };
            // Done once the peer needs nothing more from here: a session
            // only delivers this node's changes (the peer pushes its own).
            let decoded = message
                .as_deref()
                .and_then(|m| automerge::sync::Message::decode(m).ok());
            if crate::plans::push_done(round, decoded.as_ref()) {
                confirmed.push((plan, session.heads));
                continue;
            }
            items.push(PeerSyncItem {
                plan,
                message,
                authors: session.authors.clone(),
                transfers: session.transfers.clone(),
            });
            waiting.push(session);
        }
        sessions = Vec::new();
        let answers = send_round(cx, http, peer, items).await;
        for (mut session, answer) in waiting.into_iter().zip(answers) {
            let plan = session.entry.id().to_string();
            match answer {
                Ok(SyncBatchResult {
                    problem: None,
                    message,
                    ..
                }) => {
                    session.reply = message;
                    sessions.push(session);
                }
                // The home refused a change made here (it may not be made by
                // its author there), or the peer refused the plan as too
                // large for it (`413`: its quota or document limit): it
                // stays here, parked until its heads move again (or the
                // hourly full pass), and it must not hold up every other
                // plan bound for this peer, nor make the peer look down. Or
                // the plan is not (or no longer) shared between the two:
                // nothing to send.
                Ok(SyncBatchResult {
                    problem: Some(problem),
                    ..
                }) if matches!(problem.status, 404 | 413 | 422) => {
                    if problem.status != 404 {
                        tracing::warn!(peer = %peer.id, %plan, status = problem.status, detail = ?problem.detail, "federation: the peer refused changes");
                    }
                    confirmed.push((plan, session.heads));
                }
                Ok(SyncBatchResult {
                    problem: Some(problem),
                    ..
                }) => failures.push(format!(
                    "plan {plan}: the peer answered {}: {}",
                    problem.status,
                    problem.detail.unwrap_or(problem.title)
                )),
                Err(e) => failures.push(format!("plan {plan}: {e}")),
            }
        }
        if sessions.is_empty() {
            break;
        }
    }
    for session in &sessions {
        failures.push(format!(
            "plan {}: no quiet after {MAX_ROUNDS} rounds",
            session.entry.id()
        ));
    }
    if !confirmed.is_empty() {
        let sent = confirmed.len() as u64;
        let peer_id = peer.id.clone();
        let saved = cx
            .writer
            .write(move |conn| {
                confirmed.iter().try_for_each(|(plan, heads)| {
                    stored::set_peer_heads(conn, &peer_id, plan, heads, now_ms())
                })
            })
            .await;
        match saved {
            Ok(()) => {
                cx.federation
                    .outbound
                    .metrics
                    .plans_sent
                    .get_or_create(&PeerLabel::of(&peer.id))
                    .inc_by(sent);
            }
            Err(e) => failures.push(format!("recording what the peer holds: {e}")),
        }
    }
    failures
}

/// A push session for `plan` to `peer`, or `None` if the plan is gone.
async fn open_session(cx: &Context, plan: &str, peer: &str) -> Result<Option<Session>, ApiError> {
    let Some(entry) = cx.plans.get(plan).await? else {
        return Ok(None);
    };
    let authors = cx.plans.local_authors(&entry).await;
    let heads = entry.view().version.join(",");
    // A plan that moved here: its certificates let replica holders that
    // knew the old home follow the move. A plan homed here also carries
    // this node's signed word that the family consented to share it with
    // the peer, without which the peer makes no replica of it.
    let transfers = match entry.view().home {
        None => {
            let certificates = super::transfer::certificates(cx, plan).await?;
            let consent = super::transfer::consent_statement(cx, plan, peer).await?;
            match (certificates, consent) {
                (Some(c), Some(s)) => Some(format!("{c},{s}")),
                (c, s) => c.or(s),
            }
        }
        Some(_) => None,
    };
    Ok(Some(Session {
        entry,
        authors,
        heads,
        transfers,
        reply: None,
    }))
}

/// Sends one round's messages, as few signed requests as the size cap
/// allows; answers each item's result, in order.
async fn send_round(
    cx: &Context,
    http: &reqwest::Client,
    peer: &Peer,
    items: Vec<PeerSyncItem>,
) -> Vec<Result<SyncBatchResult, String>> {
    let mut answers = Vec::with_capacity(items.len());
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut items = items.into_iter().peekable();
    while let Some(item) = items.next() {
        bytes += item.message.as_ref().map_or(0, Vec::len);
        batch.push(item);
        let full = items
            .peek()
            .is_none_or(|next| bytes + next.message.as_ref().map_or(0, Vec::len) > BATCH_BYTES);
        if full {
            let count = batch.len();
            match post_batch(cx, http, peer, std::mem::take(&mut batch)).await {
                Ok(results) => answers.extend(results.into_iter().map(Ok)),
                Err(e) => answers.extend(std::iter::repeat_n(Err(e), count)),
            }
            bytes = 0;
        }
    }
    answers
}

/// One signed `POST /federation/v1/sync`.
async fn post_batch(
    cx: &Context,
    http: &reqwest::Client,
    peer: &Peer,
    plans: Vec<PeerSyncItem>,
) -> Result<Vec<SyncBatchResult>, String> {
    const PATH: &str = "/federation/v1/sync";
    let count = plans.len();
    // A message over `BATCH_BYTES` goes alone: a `413` for the request is
    // then that plan's refusal (see `push_batch`).
    let alone = match plans.as_slice() {
        [item] => Some(item.plan.clone()),
        _ => None,
    };
    let mut body = Vec::new();
    ciborium::into_writer(&PeerSyncBatch { plans }, &mut body).map_err(|e| e.to_string())?;
    let authorization = cx.federation.signer.sign(
        &peer.id,
        "POST",
        PATH,
        &body,
        BTreeMap::new(),
        now_ms() / 1000,
    )?;
    let response = http
        .post(format!("{}{PATH}", peer.url.trim_end_matches('/')))
        .header("authorization", authorization)
        .header("content-type", "application/cbor")
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| describe(&e))?;
    if status != 200 {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        if let (413, Some(plan)) = (status, alone) {
            return Ok(vec![SyncBatchResult {
                plan,
                message: None,
                changes: None,
                heads: None,
                problem: Some(wrapsync_shared::api::Problem {
                    kind: wrapsync_shared::problems::ProblemType::PayloadTooLarge.type_uri(),
                    title: "Payload too large".into(),
                    status,
                    detail: Some(text),
                    op_index: None,
                }),
            }]);
        }
        return Err(format!("the peer answered {status}: {text}"));
    }
    let reply: SyncBatchReply = ciborium::from_reader(&bytes[..])
        .map_err(|e| format!("the peer's answer is not a sync batch reply: {e}"))?;
    if reply.plans.len() != count {
        return Err(format!(
            "the peer answered {} plans for {count}",
            reply.plans.len()
        ));
    }
    Ok(reply.plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_by_half_to_five_minutes() {
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(2), 1500);
        assert_eq!(backoff_ms(3), 2250);
        assert!(backoff_ms(14) < MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(16), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(u32::MAX), MAX_BACKOFF_MS);
    }

    #[test]
    fn a_backed_off_peer_that_calls_is_due_at_once() {
        let outbound = Outbound::default();
        assert!(!outbound.heard_from("county-b"), "never failed");
        for _ in 0..6 {
            outbound.failed("county-b", "down".into(), 3);
        }
        assert!(!outbound.due("county-b", now_ms()));
        assert!(outbound.take_retry("county-b"), "the retry looks at heads");
        assert!(outbound.heard_from("county-b"));
        assert!(outbound.due("county-b", now_ms()));
        assert!(!outbound.heard_from("county-b"), "wakes the loop once");
        outbound.succeeded("county-b", 0);
        assert!(!outbound.heard_from("county-b"));
    }
}
