//! The plans in memory: a bounded LRU of documents, each with its rendered
//! view, loaded from stored chunks on a miss and caught up with whatever
//! other writers stored since.

use super::{PlanView, Plans};
use crate::error::ApiError;
use crate::store::plans::{self as stored, Revision};
use automerge::Automerge;
use parking_lot::{Mutex, RwLock};
use std::collections::HashSet;
use std::sync::Arc;

/// The mutable half of a cached plan, behind the plan's write lock.
pub(super) struct PlanState {
    pub(super) doc: Automerge,
    /// Sequence numbers of the stored chunks the document holds: what a
    /// compaction may delete, and what catching up may skip.
    pub(super) chunks: HashSet<i64>,
}

/// A cached plan: its document for writers, its rendered view for readers.
pub struct PlanEntry {
    pub(super) id: String,
    pub(super) state: tokio::sync::Mutex<PlanState>,
    pub(super) view: RwLock<Arc<PlanView>>,
    /// The plan row's revision the document holds at least: a read whose
    /// row still says this may serve the view. Changed only under `state`.
    pub(super) seen: Mutex<Revision>,
}

impl PlanEntry {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn view(&self) -> Arc<PlanView> {
        self.view.read().clone()
    }
}

impl Plans {
    /// The cached plan, loading it on a miss; `None` if there is no such plan.
    /// With a shared database, a cached plan is first brought up to what
    /// the database holds (see [`Plans::current`]).
    pub async fn get(&self, id: &str) -> Result<Option<Arc<PlanEntry>>, ApiError> {
        let cached = self.cache.lock().get(id).cloned();
        if let Some(entry) = cached {
            if !self.shared {
                return Ok(Some(entry));
            }
            return self.current(entry).await;
        }
        if !wrapsync_shared::plan::is_item_id(id) {
            return Ok(None);
        }
        let plan_id = id.to_string();
        let Some((revision, chunks)) = self
            .blocking(move |conn| {
                // The row first: whatever commit it shows, its chunks are
                // there for the next statement.
                let Some(revision) = stored::revision(conn, &plan_id)? else {
                    return Ok(None);
                };
                Ok(Some((revision, stored::chunks_after(conn, &plan_id, 0)?)))
            })
            .await?
        else {
            return Ok(None);
        };
        if chunks.is_empty() {
            return Ok(None);
        }
        let (doc, seqs) = tokio::task::spawn_blocking(move || load_chunks(chunks))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        let view = PlanView::render(id, &doc, &*self.actor_names().await)
            .localized(revision.home.clone(), &self.node_id);
        let entry = Arc::new(PlanEntry {
            id: id.to_string(),
            state: tokio::sync::Mutex::new(PlanState { doc, chunks: seqs }),
            view: RwLock::new(Arc::new(view)),
            seen: Mutex::new(revision),
        });
        let mut cache = self.cache.lock();
        // Another request may have loaded it meanwhile: keep theirs.
        let entry = cache.get_or_insert(id.to_string(), || entry).clone();
        Ok(Some(entry))
    }

    /// `entry`, caught up if the plan's row says another process changed
    /// it since; `None` (and out of the cache) if the plan is gone. One
    /// primary-key read (shared with concurrent reads: `revisions`) when
    /// nothing changed: what makes a change committed through any process
    /// visible to the next request through this one.
    async fn current(&self, entry: Arc<PlanEntry>) -> Result<Option<Arc<PlanEntry>>, ApiError> {
        let now = self.revision_checks.check(entry.id.clone()).await?;
        match now {
            None => {
                self.cache.lock().pop(&entry.id);
                Ok(None)
            }
            Some(now) if now == *entry.seen.lock() => Ok(Some(entry)),
            Some(_) => {
                let mut state = entry.state.lock().await;
                match self.catch_up(&entry, &mut state).await {
                    Ok(()) => {}
                    Err(ApiError::NotFound) => return Ok(None),
                    Err(e) => return Err(e),
                }
                drop(state);
                Ok(Some(entry))
            }
        }
    }

    /// Loads chunks another writer (a restart's, another process's) stored
    /// since this document was loaded, so no edit is made on a stale copy,
    /// and renders the view anew if anything changed. Costs one primary-key
    /// read when the plan's row is still at the revision last seen.
    /// `NotFound` (and out of the cache) when the plan is gone.
    pub(super) async fn catch_up(
        &self,
        entry: &PlanEntry,
        state: &mut PlanState,
    ) -> Result<(), ApiError> {
        let plan_id = entry.id.clone();
        let seen = entry.seen.lock().clone();
        let known: Vec<i64> = state.chunks.iter().copied().collect();
        let found = self
            .blocking(move |conn| {
                // The row first: whatever commit it shows, its chunks are
                // there for the next statements.
                let Some(revision) = stored::revision(conn, &plan_id)? else {
                    return Ok(None);
                };
                if revision == seen {
                    return Ok(Some((revision, None)));
                }
                let present = stored::chunk_seqs(conn, &plan_id)?;
                let missing: Vec<i64> = present
                    .iter()
                    .copied()
                    .filter(|s| !known.contains(s))
                    .collect();
                let missing = if missing.is_empty() {
                    Vec::new()
                } else {
                    stored::chunks_by_seq(conn, &plan_id, &missing)?
                };
                Ok(Some((revision, Some((present, missing)))))
            })
            .await?;
        let Some((revision, changed)) = found else {
            self.cache.lock().pop(&entry.id);
            return Err(ApiError::NotFound);
        };
        let Some((present, missing)) = changed else {
            return Ok(());
        };
        for (_, data) in &missing {
            state
                .doc
                .load_incremental(data)
                .map_err(|e| ApiError::Internal(format!("stored chunk unreadable: {e}")))?;
        }
        state.chunks = present.into_iter().collect();
        if !missing.is_empty() || revision.home != entry.view().home {
            let mut view = PlanView::render(&entry.id, &state.doc, &*self.actor_names().await)
                .localized(revision.home.clone(), &self.node_id);
            let unnamed = view
                .conflicts
                .iter()
                .flat_map(|c| &c.values)
                .any(|v| v.user.is_none());
            if unnamed && !missing.is_empty() {
                // Another process may have bound the actors meanwhile.
                self.forget_actor_names();
                view = PlanView::render(&entry.id, &state.doc, &*self.actor_names().await)
                    .localized(revision.home.clone(), &self.node_id);
            }
            *entry.view.write() = Arc::new(view);
        }
        *entry.seen.lock() = revision;
        Ok(())
    }

    /// Loads the plan anew from the database (its document held a change
    /// the database refused).
    pub(super) async fn reload(
        &self,
        entry: &PlanEntry,
        state: &mut PlanState,
    ) -> Result<(), ApiError> {
        let plan_id = entry.id.clone();
        let (revision, chunks) = self
            .blocking(move |conn| {
                let revision = stored::revision(conn, &plan_id)?;
                Ok((revision, stored::chunks_after(conn, &plan_id, 0)?))
            })
            .await?;
        let revision = revision.ok_or(ApiError::NotFound)?;
        let (doc, seqs) = load_chunks(chunks)?;
        state.doc = doc;
        state.chunks = seqs;
        let view = PlanView::render(&entry.id, &state.doc, &*self.actor_names().await)
            .localized(revision.home.clone(), &self.node_id);
        *entry.view.write() = Arc::new(view);
        *entry.seen.lock() = revision;
        Ok(())
    }
}

/// Builds a document from stored chunks (a snapshot, then change sets).
pub(super) fn load_chunks(
    chunks: Vec<(i64, Vec<u8>)>,
) -> Result<(Automerge, HashSet<i64>), ApiError> {
    let seqs = chunks.iter().map(|(s, _)| *s).collect();
    let bytes: Vec<u8> = chunks.into_iter().flat_map(|(_, d)| d).collect();
    let doc = Automerge::load(&bytes)
        .map_err(|e| ApiError::Internal(format!("stored plan unreadable: {e}")))?;
    Ok((doc, seqs))
}
