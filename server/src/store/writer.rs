//! The one writer: every write of the node goes through one connection on a
//! dedicated thread, which takes whatever is waiting and commits it in one
//! transaction (group commit). With `synchronous=FULL` a commit costs an
//! fsync; sharing it lets hundreds of concurrent edits share one.
//!
//! Each write runs in its own savepoint, so one failing write does not sink
//! the others of its batch. A write is answered only after the batch's commit.

use super::audit::{insert_audit, AuditRecord, RefusalTrail};
use crate::db::{now_ms, Backend, DbConnection, StoreError};
use crate::tally::RefusalCounting;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Work = Box<dyn FnOnce(&mut DbConnection) -> Result<(), StoreError> + Send>;

enum Job {
    Write(Work, oneshot::Sender<Result<(), StoreError>>),
    /// A write nobody waits for (sync state bookkeeping).
    Detached(Work),
    Audit(AuditRecord),
    Flush(oneshot::Sender<()>),
}

/// Most jobs committed together.
const MAX_BATCH: usize = 512;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    /// Those waiting for the log to be emptied (SQLite only; `None` on
    /// PostgreSQL, whose storage is the operator's to secure).
    erasures: Option<Erasures>,
}

/// Callers waiting for the checkpointer to empty SQLite's log; it retries
/// every round until the log is truncated.
type Erasures = Arc<parking_lot::Mutex<Vec<oneshot::Sender<()>>>>;

/// How long [`Writer::erase_log`] waits before leaving the erasure to the
/// checkpointer's later rounds.
const ERASE_WAIT: Duration = Duration::from_secs(30);

impl Writer {
    /// Starts the writer thread on its own connection (and, on SQLite, the
    /// checkpointer beside it); it counts queued refusals per `counting`.
    pub fn start(
        backend: &Backend,
        counting: RefusalCounting,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StoreError> {
        let mut conn = backend.connect()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let checkpoint_due = Arc::new(AtomicBool::new(false));
        let mut erasures = None;
        if backend.is_sqlite() {
            // Checkpoints run on their own connection, so a commit never
            // stalls copying the WAL back into the database file.
            conn.batch_execute("PRAGMA wal_autocheckpoint = 0;")?;
            let waiting = Erasures::default();
            start_checkpointer(
                backend,
                stopped.clone(),
                checkpoint_due.clone(),
                waiting.clone(),
            )?;
            erasures = Some(waiting);
        }
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("wrapsync-writer".into())
            .spawn(move || {
                run(&mut conn, rx, &checkpoint_due, RefusalTrail::new(counting));
                stopped.store(true, Ordering::Relaxed);
            })
            .map_err(|e| StoreError::Connection(e.to_string()))?;
        Ok((Writer { tx, erasures }, handle))
    }

    /// Resolves once SQLite's log holds nothing committed before the call:
    /// copied into the database file and truncated, so what was just
    /// deleted (overwritten in place, as `secure_delete` makes every delete)
    /// survives in no old log frame either. The checkpointer keeps trying
    /// while readers hold the log; after [`ERASE_WAIT`] this answers `false`
    /// and the erasure completes at a later round. `true` at once on
    /// PostgreSQL.
    pub async fn erase_log(&self) -> bool {
        let Some(erasures) = &self.erasures else {
            return true;
        };
        let (tx, rx) = oneshot::channel();
        erasures.lock().push(tx);
        matches!(tokio::time::timeout(ERASE_WAIT, rx).await, Ok(Ok(())))
    }

    /// Runs `work` in the next batch and resolves once it is durable.
    pub async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (out_tx, out_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let job: Work = Box::new(move |conn| {
            let value = work(conn)?;
            let _ = out_tx.send(value);
            Ok(())
        });
        self.tx
            .send(Job::Write(job, done_tx))
            .map_err(|_| StoreError::WriterGone)?;
        done_rx.await.map_err(|_| StoreError::WriterGone)??;
        out_rx.await.map_err(|_| StoreError::WriterGone)
    }

    /// Queues a write that nobody waits for; a failure is logged.
    pub fn write_detached(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<(), StoreError> + Send + 'static,
    ) {
        if self.tx.send(Job::Detached(Box::new(work))).is_err() {
            tracing::error!("detached write dropped: the storage writer has stopped");
        }
    }

    /// Queues an audit record for the next batch without waiting for it
    /// (cut to its bounds at once, so a flood of refusals queues little);
    /// a refusal may be counted rather than stored on its own (see
    /// [`RefusalCounting`]). Writes put their audit rows inside their own
    /// transaction instead.
    pub fn audit(&self, record: AuditRecord) {
        if self.tx.send(Job::Audit(record.bounded())).is_err() {
            tracing::error!("audit record dropped: the storage writer has stopped");
        }
    }

    /// Resolves once everything queued before it is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// How long a batch of only read-audit records waits for company. Nobody
/// waits on those records, so fewer, larger commits cost nothing in latency
/// and save an fsync per read under load.
const AUDIT_LINGER: Duration = Duration::from_millis(5);

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Every so many background checkpoints, the writer is asked to run one
/// itself at its next idle moment. Under steady writes a background
/// checkpoint never catches up with the writer, so SQLite would never start
/// the log afresh and it would grow without end; one run by the writer
/// between batches completes (nobody else writes), copying only the little
/// the background left, and the next commit restarts the log.
const WRITER_CHECKPOINT_EVERY: u32 = 10;

/// Copies the WAL into the database file in the background until the
/// writer stops, then once more. PASSIVE never waits for or blocks the
/// writer; TRUNCATE, run while someone waits for an erasure and at the end,
/// does (see [`Writer::erase_log`]).
fn start_checkpointer(
    backend: &Backend,
    stopped: Arc<AtomicBool>,
    writer_due: Arc<AtomicBool>,
    erasures: Erasures,
) -> Result<(), StoreError> {
    let mut conn = backend.connect()?;
    std::thread::Builder::new()
        .name("wrapsync-checkpoint".into())
        .spawn(move || {
            for round in 1u32.. {
                std::thread::sleep(CHECKPOINT_EVERY);
                let last = stopped.load(Ordering::Relaxed);
                // Those waiting now are answered by this round's truncation
                // (their deletes committed before they asked).
                let waiting = std::mem::take(&mut *erasures.lock());
                if last || !waiting.is_empty() {
                    match truncate(&mut conn) {
                        Ok(true) => waiting.into_iter().for_each(|done| {
                            let _ = done.send(());
                        }),
                        Ok(false) => erasures.lock().extend(waiting),
                        Err(e) => {
                            tracing::warn!(error = %e, "checkpoint failed");
                            erasures.lock().extend(waiting);
                        }
                    }
                } else if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                    tracing::warn!(error = %e, "checkpoint failed");
                }
                if round % WRITER_CHECKPOINT_EVERY == 0 {
                    writer_due.store(true, Ordering::Relaxed);
                }
                if last {
                    break;
                }
            }
        })
        .map_err(|e| StoreError::Connection(e.to_string()))?;
    Ok(())
}

/// Copies the whole log into the database file and truncates it; `false`
/// while a reader or the writer keeps it busy past the busy timeout.
fn truncate(conn: &mut DbConnection) -> Result<bool, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Checkpoint {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
    }
    let done: Vec<Checkpoint> =
        diesel::RunQueryDsl::load(diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)"), conn)?;
    Ok(done.iter().all(|c| c.busy == 0))
}

/// The summary rows due now (all of them, with `all`), as jobs.
fn summaries(trail: &mut RefusalTrail, all: bool) -> Vec<Job> {
    trail
        .summaries(now_ms(), all)
        .into_iter()
        .map(Job::Audit)
        .collect()
}

/// A refusal the trail counts instead of storing is no job.
fn admit(trail: &mut RefusalTrail, job: Job) -> Option<Job> {
    match job {
        Job::Audit(record) => trail.admit(record, now_ms()).map(Job::Audit),
        other => Some(other),
    }
}

fn run(
    conn: &mut DbConnection,
    rx: mpsc::Receiver<Job>,
    checkpoint_due: &AtomicBool,
    mut trail: RefusalTrail,
) {
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            // Idle, the writer still wakes when a count is due.
            None => match trail.next_close() {
                None => match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
                Some(due) => {
                    let wait = u64::try_from(due - now_ms()).unwrap_or(0);
                    match rx.recv_timeout(Duration::from_millis(wait)) {
                        Ok(job) => job,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            let due = summaries(&mut trail, false);
                            if !due.is_empty() {
                                commit_batch(conn, due);
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            },
        };
        let Some(first) = admit(&mut trail, first) else {
            continue;
        };
        let started = Instant::now();
        let mut batch = summaries(&mut trail, false);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            let someone_waits = batch
                .iter()
                .any(|job| matches!(job, Job::Write(..) | Job::Flush(_)));
            let next = if someone_waits {
                rx.try_recv().ok()
            } else {
                let left = AUDIT_LINGER.saturating_sub(started.elapsed());
                rx.recv_timeout(left).ok()
            };
            match next {
                Some(job) => batch.extend(admit(&mut trail, job)),
                None => break,
            }
        }
        commit_batch(conn, batch);
        if checkpoint_due.load(Ordering::Relaxed) {
            // Only when nothing is waiting: a job that arrived is taken first.
            match rx.try_recv() {
                Ok(job) => carried = Some(job),
                Err(_) => {
                    checkpoint_due.store(false, Ordering::Relaxed);
                    if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::warn!(error = %e, "writer checkpoint failed");
                    }
                }
            }
        }
    }
    // Stopping: the counts of intervals still open are stored too.
    let last = summaries(&mut trail, true);
    if !last.is_empty() {
        commit_batch(conn, last);
    }
}

/// The batch's transaction. On SQLite it takes the write lock at `BEGIN`
/// (`IMMEDIATE`): a deferred transaction whose first statement reads (a
/// write's `claim`) cannot upgrade to writing once another connection has
/// written since, and SQLite answers "database is locked" without waiting.
fn batch_transaction(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConnection as Connection>::TransactionManager;
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(work);
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    match work(conn) {
        Ok(()) => Manager::commit_transaction(conn).map_err(|e| {
            let _ = Manager::rollback_transaction(conn);
            e.into()
        }),
        Err(e) => {
            Manager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

fn commit_batch(conn: &mut DbConnection, batch: Vec<Job>) {
    let mut audits = Vec::new();
    let mut writes = Vec::new();
    let mut flushes = Vec::new();
    let mut detached = Vec::new();
    for job in batch {
        match job {
            Job::Audit(record) => audits.push(record),
            Job::Detached(work) => detached.push(work),
            Job::Write(work, done) => writes.push((work, done)),
            Job::Flush(done) => flushes.push(done),
        }
    }
    let mut results = Vec::with_capacity(writes.len());
    let committed = batch_transaction(conn, |conn| {
        if !audits.is_empty() {
            insert_audit(conn, &audits)?;
        }
        for (work, done) in writes.drain(..) {
            // A nested transaction is a savepoint: a failed write rolls back
            // alone and the rest of the batch commits.
            let result = conn.transaction::<_, StoreError, _>(|conn| work(conn));
            results.push((result, done));
        }
        for work in detached.drain(..) {
            if let Err(e) = conn.transaction::<_, StoreError, _>(|conn| work(conn)) {
                tracing::warn!(error = %e, "detached write failed");
            }
        }
        Ok(())
    });
    match committed {
        Ok(()) => {
            for (result, done) in results {
                let _ = done.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "batch commit failed");
            for (_, done) in results {
                let _ = done.send(Err(StoreError::Connection(format!("commit failed: {e}"))));
            }
            // The audit rows of reads must not be lost with the batch.
            if !audits.is_empty() {
                if let Err(e) = conn.transaction::<_, StoreError, _>(|c| insert_audit(c, &audits)) {
                    tracing::error!(error = %e, count = audits.len(), "audit records lost");
                }
            }
        }
    }
    for done in flushes {
        let _ = done.send(());
    }
}
