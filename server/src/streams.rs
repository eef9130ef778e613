//! Who has a change-feed stream open (`GET /v1/changes/stream`), and the
//! fan-out that tells them what changed.
//!
//! Each process keeps its open streams by username. One task (`run`)
//! hears the change bell (this process's writes, and other processes'
//! commits through `cluster`), reads what changed since it last looked
//! with the usernames on each changed plan's roster (two queries, however
//! many streams are open: `Plans::changes_with_members`), and hands each
//! change to the streams of the users on that plan (and of users who see
//! every plan: supervisors). A stream wakes only for its own user's plans
//! and costs no query when it does; it queries only when it opens (its
//! backlog since the client's cursor) and after falling so far behind that
//! its queue was dropped.
//!
//! Bounds: at most `max_streams_per_user` streams per user per process
//! (opening one more closes that user's oldest, which is told to retry
//! later: a phone that moved networks leaves a dead stream behind that
//! must not lock its user out), at most `max_streams` per process (over
//! it a new stream is refused `429 rate-limited`).

use crate::error::ApiError;
use crate::plans::Plans;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use wrapsync_shared::api::PlanChange;

/// Plans read per fan-out query.
const BATCH: i64 = 500;
/// Changes a stream may have waiting; past it the queue is dropped and the
/// stream reads its backlog from the database once instead.
const QUEUE: usize = 1_000;
/// What a stream that was replaced by its user's newer one tells the client
/// before it ends: come back in 30 s (an SSE `retry:`), so that a user with
/// more tabs than the cap does not make them take turns every second.
pub const REPLACED: &str = "retry: 30000\n: closed: this user opened a newer stream\n\n";
/// Seconds a stream refused because the node is full is told to wait.
const FULL_RETRY_SECS: u64 = 15;

/// What `/metrics` shows of the streams.
#[derive(Clone, Default)]
pub struct StreamMetrics {
    open: Gauge,
    wakes: Counter,
    stream_queries: Counter,
    fanout_reads: Counter,
    replaced: Counter,
    refused: Counter,
}

impl StreamMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "change_streams_open",
            "Change-feed streams open on this process",
            self.open.clone(),
        );
        registry.register(
            "change_stream_wakes",
            "Times a change-feed stream was woken with changes for its user",
            self.wakes.clone(),
        );
        registry.register(
            "change_stream_queries",
            "Database queries run for one change-feed stream (its backlog when it opens, or after it fell behind)",
            self.stream_queries.clone(),
        );
        registry.register(
            "change_fanout_reads",
            "Reads of the change log (a query of changes and one of their plans' rosters) by the change-feed fan-out, each for all open streams",
            self.fanout_reads.clone(),
        );
        registry.register(
            "change_streams_replaced",
            "Change-feed streams closed because their user opened more than max_streams_per_user",
            self.replaced.clone(),
        );
        registry.register(
            "change_streams_refused",
            "Change-feed streams refused because the process had max_streams open",
            self.refused.clone(),
        );
    }

    /// Counts one query run for a single stream.
    pub fn stream_query(&self) {
        self.stream_queries.inc();
    }
}

/// One open stream's mailbox.
pub struct Slot {
    id: u64,
    username: String,
    pending: Mutex<Pending>,
    notify: tokio::sync::Notify,
}

#[derive(Default)]
struct Pending {
    changes: Vec<PlanChange>,
    /// The queue overflowed and was dropped: read the backlog instead.
    lagged: bool,
    /// Replaced by a newer stream of the same user: end.
    replaced: bool,
}

/// What a woken stream is to do.
pub enum Wake {
    /// Send these (oldest first; some may be older than the stream's
    /// cursor, which it skips).
    Changes(Vec<PlanChange>),
    /// Read what changed since the cursor from the database.
    Lagged,
    /// Say goodbye and end.
    Replaced,
}

impl Slot {
    /// Waits until there is something for this stream.
    pub async fn woken(&self) -> Wake {
        loop {
            {
                let mut pending = self.pending.lock();
                if pending.replaced {
                    return Wake::Replaced;
                }
                if std::mem::take(&mut pending.lagged) {
                    pending.changes.clear();
                    return Wake::Lagged;
                }
                if !pending.changes.is_empty() {
                    return Wake::Changes(std::mem::take(&mut pending.changes));
                }
            }
            self.notify.notified().await;
        }
    }

    fn deliver(&self, changes: &[PlanChange]) {
        {
            let mut pending = self.pending.lock();
            if pending.lagged || pending.replaced {
                return;
            }
            if pending.changes.len() + changes.len() > QUEUE {
                pending.changes.clear();
                pending.lagged = true;
            } else {
                pending.changes.extend_from_slice(changes);
            }
        }
        self.notify.notify_one();
    }

    fn replace(&self) {
        self.pending.lock().replaced = true;
        self.notify.notify_one();
    }
}

#[derive(Default)]
struct UserStreams {
    /// Whether this user sees every plan of the node (a supervisor).
    sees_all: bool,
    /// Oldest first.
    slots: VecDeque<Arc<Slot>>,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, UserStreams>,
    /// Users with `sees_all`, so a change finds them without a scan.
    all_seeing: HashSet<String>,
    open: usize,
    next_id: u64,
    /// The change log's cursor the fan-out has handed on; `None` while no
    /// stream is open (nobody to hand anything to), set again by the first
    /// stream that opens.
    handed: Option<i64>,
}

/// The open streams of this process.
pub struct Streams {
    inner: Mutex<Inner>,
    per_user: usize,
    total: usize,
    pub metrics: StreamMetrics,
}

impl Streams {
    pub fn new(per_user: usize, total: usize) -> Streams {
        Streams {
            inner: Mutex::new(Inner::default()),
            per_user: per_user.max(1),
            total: total.max(1),
            metrics: StreamMetrics::default(),
        }
    }

    /// Registers a new stream for `username` before its backlog is read
    /// (so nothing committed meanwhile is missed), closing the user's
    /// oldest past `max_streams_per_user`; `429` when the process has
    /// `max_streams` open. The stream is unregistered when the returned
    /// guard drops.
    pub async fn open(
        self: &Arc<Self>,
        plans: &Plans,
        username: &str,
        sees_all: bool,
    ) -> Result<Registration, ApiError> {
        let (slot, needs_cursor) = {
            let mut inner = self.inner.lock();
            let user = inner.users.get(username).map_or(0, |u| u.slots.len());
            // A new stream that replaces one of the user's own does not add
            // to the total.
            if user < self.per_user && inner.open >= self.total {
                self.metrics.refused.inc();
                return Err(ApiError::RateLimited(FULL_RETRY_SECS));
            }
            inner.next_id += 1;
            let slot = Arc::new(Slot {
                id: inner.next_id,
                username: username.to_string(),
                pending: Mutex::new(Pending::default()),
                notify: tokio::sync::Notify::new(),
            });
            let entry = inner.users.entry(username.to_string()).or_default();
            entry.sees_all = sees_all;
            entry.slots.push_back(slot.clone());
            let mut replaced = 0;
            while entry.slots.len() > self.per_user {
                if let Some(oldest) = entry.slots.pop_front() {
                    oldest.replace();
                    replaced += 1;
                }
            }
            if sees_all {
                inner.all_seeing.insert(username.to_string());
            }
            inner.open = inner.open + 1 - replaced;
            self.metrics.replaced.inc_by(replaced as u64);
            self.metrics.open.set(inner.open as i64);
            (slot, inner.handed.is_none())
        };
        let registration = Registration {
            streams: self.clone(),
            slot,
        };
        if needs_cursor {
            // Everything up to here is in the stream's own backlog, read
            // after this; the fan-out hands on what comes later.
            let last = plans.last_change_seq().await?;
            let mut inner = self.inner.lock();
            if inner.handed.is_none() {
                inner.handed = Some(last);
            }
        }
        Ok(registration)
    }

    fn close(&self, slot: &Slot) {
        let mut inner = self.inner.lock();
        let Some(user) = inner.users.get_mut(&slot.username) else {
            return;
        };
        let before = user.slots.len();
        user.slots.retain(|s| s.id != slot.id);
        let closed = before - user.slots.len();
        if user.slots.is_empty() {
            inner.users.remove(&slot.username);
            inner.all_seeing.remove(&slot.username);
        }
        inner.open -= closed;
        self.metrics.open.set(inner.open as i64);
    }

    /// Hands what changed since the last call to the streams of the users
    /// on each changed plan. Two queries per batch of up to [`BATCH`]
    /// plans, none while no stream is open.
    pub async fn fan_out(&self, plans: &Plans) -> Result<(), ApiError> {
        let mut since = {
            let mut inner = self.inner.lock();
            if inner.open == 0 {
                inner.handed = None;
                return Ok(());
            }
            match inner.handed {
                Some(since) => since,
                // A stream is opening and reads its cursor now.
                None => return Ok(()),
            }
        };
        loop {
            self.metrics.fanout_reads.inc();
            let rows = plans.changes_with_members(since, BATCH).await?;
            let full = rows.len() as i64 >= BATCH;
            if let Some((_, seq, _, _)) = rows.last() {
                since = since.max(*seq);
            }
            self.route(rows);
            let mut inner = self.inner.lock();
            inner.handed = Some(inner.handed.unwrap_or(since).max(since));
            if !full {
                return Ok(());
            }
        }
    }

    fn route(&self, rows: Vec<crate::store::plans::ChangedPlan>) {
        if rows.is_empty() {
            return;
        }
        let inner = self.inner.lock();
        let mut batches: HashMap<String, Vec<PlanChange>> = HashMap::new();
        for (plan, seq, updated_at, members) in rows {
            let change = PlanChange {
                plan,
                cursor: seq.to_string(),
                updated_at,
            };
            let mut to: HashSet<&String> = inner.all_seeing.iter().collect();
            to.extend(members.iter().filter(|m| inner.users.contains_key(*m)));
            for username in to {
                batches
                    .entry(username.clone())
                    .or_default()
                    .push(change.clone());
            }
        }
        for (username, changes) in batches {
            if let Some(user) = inner.users.get(&username) {
                for slot in &user.slots {
                    // Counted first: whoever sees the change has seen it counted.
                    self.metrics.wakes.inc();
                    slot.deliver(&changes);
                }
            }
        }
    }

    /// Streams open on this process.
    pub fn open_count(&self) -> usize {
        self.inner.lock().open
    }
}

/// An open stream's place among the open streams; leaves when dropped
/// (the client went away, the stream ended).
pub struct Registration {
    streams: Arc<Streams>,
    pub slot: Arc<Slot>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.streams.close(&self.slot);
    }
}

/// Runs the fan-out until the node stops: once per ring of the change bell
/// (rings that come while it works are taken together).
pub async fn run(streams: Arc<Streams>, plans: Arc<Plans>) {
    let mut bell = plans.subscribe();
    let mut stopping = plans.stopping();
    loop {
        tokio::select! {
            _ = stopping.changed() => return,
            rang = bell.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = rang {
                    return;
                }
            }
        }
        while bell.try_recv().is_ok() {}
        if let Err(e) = streams.fan_out(&plans).await {
            tracing::warn!(error = %e, "change-feed fan-out failed; retrying on the next change");
        }
    }
}
