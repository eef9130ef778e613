//! Revision checks of concurrent reads, coalesced. With a shared database
//! every read of a cached plan first asks the database for the plan's
//! revision (so a write through another process is seen at once); under
//! load, the reads waiting at the same moment share one query instead of
//! paying a round trip and a pooled connection each.
//!
//! Coherence holds because a check is answered only by a query that started
//! after the check was asked: whatever committed before a read arrived is
//! in the answer.

use crate::db::Pool;
use crate::error::ApiError;
use crate::store::plans::{self as stored, Revision};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;

type Answer = Result<Option<Revision>, ApiError>;

pub(super) struct RevisionChecks {
    pool: Pool,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(String, oneshot::Sender<Answer>)>,
    /// A task is running queries until nobody waits.
    draining: bool,
}

impl RevisionChecks {
    pub(super) fn new(pool: Pool) -> Arc<Self> {
        Arc::new(RevisionChecks {
            pool,
            queue: Mutex::new(Queue::default()),
        })
    }

    /// The plan's revision as of now; `None` when there is no such plan.
    pub(super) async fn check(self: &Arc<Self>, id: String) -> Answer {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock();
            queue.waiting.push((id, tx));
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            let checks = self.clone();
            tokio::spawn(async move { checks.drain().await });
        }
        rx.await
            .map_err(|_| ApiError::Internal("revision check abandoned".into()))?
    }

    /// Answers everyone waiting, one query per round, until nobody is.
    async fn drain(&self) {
        loop {
            let batch = {
                let mut queue = self.queue.lock();
                if queue.waiting.is_empty() {
                    queue.draining = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let mut ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
            ids.sort_unstable();
            ids.dedup();
            let found = crate::db::blocking(&self.pool, move |conn| stored::revisions(conn, &ids))
                .await
                .map(|rows| rows.into_iter().collect::<HashMap<_, _>>())
                .map_err(|e| e.to_string());
            for (id, tx) in batch {
                let answer = match &found {
                    Ok(revisions) => Ok(revisions.get(&id).cloned()),
                    Err(e) => Err(ApiError::Internal(e.clone())),
                };
                let _ = tx.send(answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::TestDb;
    use diesel::prelude::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_see_each_plan_as_stored() {
        for test in TestDb::both() {
            let mut conn = test.connect();
            for (id, heads) in [("P1", "a"), ("P2", "b")] {
                let row = stored::PlanRow {
                    id: id.into(),
                    title: "t".into(),
                    phase: "p".into(),
                    heads: heads.into(),
                    created_at: 0,
                    updated_at: 0,
                    home_node: None,
                };
                stored::insert_plan(&mut conn, &row).unwrap_or_else(|e| panic!("{e}"));
            }
            let pool = crate::db::pool(&test.backend, 2).unwrap_or_else(|e| panic!("{e}"));
            let checks = RevisionChecks::new(pool);
            let asks = ["P1", "P2", "P1", "gone", "P2", "P1"].map(|id| {
                let checks = checks.clone();
                tokio::spawn(async move { checks.check(id.to_string()).await })
            });
            let mut heads = Vec::new();
            for ask in asks {
                let answer = ask.await.unwrap_or_else(|e| panic!("{e}"));
                heads.push(answer.unwrap_or_else(|e| panic!("{e}")).map(|r| r.heads));
            }
            let some = |h: &str| Some(h.to_string());
            let expected = [some("a"), some("b"), some("a"), None, some("b"), some("a")];
            assert_eq!(heads, expected, "{:?}", test.backend);
            // A change is in the answer of every check asked after it.
            diesel::update(crate::db::schema::plans::table.find("P1"))
                .set(crate::db::schema::plans::heads.eq("c"))
                .execute(&mut conn)
                .unwrap_or_else(|e| panic!("{e}"));
            let after = checks.check("P1".into()).await;
            assert_eq!(after.ok().flatten().map(|r| r.heads), some("c"));
        }
    }
}
