//! Several processes of one node sharing one PostgreSQL database. Each
//! hears the others' commits (`LISTEN` on [`CHANGES_CHANNEL`]: its change
//! feeds and federation outbox wake as for its own writes), and one at a
//! time leads: the holder of a session advisory lock runs the background
//! work (pushing to peers, reporting to the hub). The lock lives with the
//! leader's connection, so when that process dies PostgreSQL releases it
//! and another takes over within [`CAMPAIGN_EVERY`].
//!
//! On SQLite there is one process: it leads, and there is nobody to hear.
//! Plan reads and writes stay correct across processes without any of
//! this (`Plans::current`, `store::plans::claim`): a missed notification
//! only delays a wakeup.

use crate::db::Backend;
use crate::store::plans::CHANGES_CHANNEL;
use diesel::pg::PgConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use prometheus_client::metrics::gauge::Gauge;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// How often notifications are collected from the listening connection.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// How often a process that does not lead tries to.
const CAMPAIGN_EVERY: Duration = Duration::from_secs(1);
/// How often the listening connection is checked with a query (a leader
/// that lost it must stop leading: its lock is gone with it).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long to wait before connecting again after losing the connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// The advisory lock the leader holds (any constant; advisory locks are
/// per database, so nodes on other databases of the server do not meet).
const LEADER_LOCK: i64 = 0x7772_6170_7379_6e63; // "wrapsync"

/// Whether this process leads, kept current by [`start`].
pub struct Cluster {
    leader: watch::Receiver<bool>,
    /// Kept so the SQLite process's leadership never ends.
    _always: Option<watch::Sender<bool>>,
}

impl Cluster {
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }
}

/// On PostgreSQL, starts the thread that listens and campaigns (until
/// `stopping` turns true); `changed` is rung on every commit heard, and
/// `gauge` says whether this process leads.
pub fn start(
    backend: &Backend,
    changed: broadcast::Sender<()>,
    stopping: watch::Receiver<bool>,
    gauge: Gauge,
) -> std::io::Result<Cluster> {
    let url = match backend {
        Backend::Sqlite(_) | Backend::SqlCipher { .. } => {
            gauge.set(1);
            let (always, leader) = watch::channel(true);
            return Ok(Cluster {
                leader,
                _always: Some(always),
            });
        }
        Backend::Postgres(url) => url.clone(),
    };
    let (lead, leader) = watch::channel(false);
    std::thread::Builder::new()
        .name("wrapsync-cluster".into())
        .spawn(move || {
            let listener = Listener {
                url,
                changed,
                stopping,
                lead,
                gauge,
            };
            listener.run();
        })?;
    Ok(Cluster {
        leader,
        _always: None,
    })
}

struct Listener {
    url: String,
    changed: broadcast::Sender<()>,
    stopping: watch::Receiver<bool>,
    lead: watch::Sender<bool>,
    gauge: Gauge,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

impl Listener {
    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn set_leading(&self, leading: bool) {
        if *self.lead.borrow() != leading {
            if leading {
                tracing::info!("leading: this process runs the node's background work");
            } else {
                tracing::warn!("no longer leading: background work stops here");
            }
        }
        self.gauge.set(i64::from(leading));
        self.lead.send_replace(leading);
    }

    /// Connects, listens and campaigns until stopping; connects again
    /// after losing the connection (and with it the lead).
    fn run(self) {
        while !self.stopping() {
            match PgConnection::establish(&self.url) {
                Ok(mut conn) => {
                    if let Err(e) = self.serve(&mut conn) {
                        tracing::warn!(error = %e, "lost the listening connection; reconnecting");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot open the listening connection"),
            }
            self.set_leading(false);
            // A commit missed while disconnected must still wake the feeds.
            let _ = self.changed.send(());
            if !self.stopping() {
                std::thread::sleep(RECONNECT_AFTER);
            }
        }
    }

    fn serve(&self, conn: &mut PgConnection) -> diesel::QueryResult<()> {
        diesel::sql_query(format!("LISTEN {CHANGES_CHANNEL}")).execute(conn)?;
        // Commits made before the LISTEN took effect were not heard.
        let _ = self.changed.send(());
        let mut last_campaign: Option<Instant> = None;
        let mut last_check = Instant::now();
        while !self.stopping() {
            let mut heard = false;
            for notification in conn.notifications_iter() {
                notification?;
                heard = true;
            }
            if heard {
                let _ = self.changed.send(());
            }
            let leading = *self.lead.borrow();
            if !leading && last_campaign.is_none_or(|at| at.elapsed() >= CAMPAIGN_EVERY) {
                last_campaign = Some(Instant::now());
                let won: Vec<Locked> = diesel::sql_query(format!(
                    "SELECT pg_try_advisory_lock({LEADER_LOCK}) AS locked"
                ))
                .load(conn)?;
                if won.first().is_some_and(|w| w.locked) {
                    self.set_leading(true);
                }
            } else if last_check.elapsed() >= CHECK_EVERY {
                last_check = Instant::now();
                diesel::sql_query("SELECT 1").execute(conn)?;
            }
            std::thread::sleep(POLL_EVERY);
        }
        Ok(())
    }
}

/// Runs `job` whenever this process leads: started on taking the lead,
/// aborted on losing it (as a crash would end it: background work is
/// written to survive that), started again on regaining it. Ends when the
/// job ends by itself (the node is stopping).
pub async fn while_leading<F, Fut>(mut leader: watch::Receiver<bool>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        if leader.wait_for(|leading| *leading).await.is_err() {
            return;
        }
        let mut task = actix_web::rt::spawn(job());
        tokio::select! {
            _ = &mut task => return,
            lost = leader.wait_for(|leading| !*leading) => {
                task.abort();
                if lost.is_err() {
                    return;
                }
            }
        }
    }
}
