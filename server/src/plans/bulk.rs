//! Reading many plans in one pass (the aggregator reads every plan homed
//! here) without churning the cache: plans already cached are read from
//! it, the others are loaded a batch at a time, rendered and dropped, so
//! the plans people are working on stay loaded.
//!
//! Whoever reads this way audits the read themselves.

use super::{load_chunks, Plans};
use crate::error::ApiError;
use crate::store::plans::{self as stored, Revision};
use serde_json::Value;
use std::collections::HashMap;

/// What a batch read found besides the plans it handed on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchRead {
    /// Plans handed to the reader.
    pub read: usize,
    /// Stored plans whose chunks would not load (logged; skipped).
    pub unreadable: usize,
}

impl Plans {
    /// Hands the rendered JSON of each of `ids` that exists to `each`, in
    /// no particular order. Cached plans are not promoted in the LRU and
    /// plans not cached are not added to it.
    pub async fn read_each(
        &self,
        ids: Vec<String>,
        mut each: impl FnMut(&Value),
    ) -> Result<BatchRead, ApiError> {
        let mut found = BatchRead::default();
        let mut missing = Vec::new();
        let mut cached: Vec<_> = {
            let cache = self.cache.lock();
            ids.into_iter()
                .filter_map(|id| match cache.peek(&id) {
                    Some(entry) => Some((id, entry.seen.lock().clone(), entry.view())),
                    None => {
                        missing.push(id);
                        None
                    }
                })
                .collect()
        };
        if self.shared && !cached.is_empty() {
            // Another process may have changed them: a cached view whose
            // row moved on is read from the database like the rest.
            let ids: Vec<String> = cached.iter().map(|(id, ..)| id.clone()).collect();
            let now: HashMap<String, Revision> = self
                .blocking(move |conn| stored::revisions(conn, &ids))
                .await?
                .into_iter()
                .collect();
            cached.retain(|(id, seen, _)| match now.get(id) {
                Some(revision) if revision == seen => true,
                Some(_) => {
                    missing.push(id.clone());
                    false
                }
                None => false,
            });
        }
        for (_, _, view) in cached {
            each(&view.plan);
            found.read += 1;
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let chunks = self
            .blocking(move |conn| stored::chunks_of(conn, &missing))
            .await?;
        let rendered = tokio::task::spawn_blocking(move || render_all(chunks))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        for plan in &rendered.0 {
            each(plan);
        }
        found.read += rendered.0.len();
        found.unreadable = rendered.1;
        Ok(found)
    }
}

/// Loads and renders each plan of `(plan, seq, data)` rows grouped by plan;
/// answers the rendered plans and how many would not load.
fn render_all(chunks: Vec<(String, i64, Vec<u8>)>) -> (Vec<Value>, usize) {
    let mut plans = Vec::new();
    let mut unreadable = 0;
    let mut rows = chunks.into_iter().peekable();
    while let Some((plan, seq, data)) = rows.next() {
        let mut own = vec![(seq, data)];
        while let Some((_, seq, data)) = rows.next_if(|(next, _, _)| *next == plan) {
            own.push((seq, data));
        }
        match load_chunks(own) {
            Ok((doc, _)) => plans.push(wrapsync_shared::plan::render(&doc)),
            Err(e) => {
                tracing::error!(%plan, error = ?e, "stored plan unreadable; left out");
                unreadable += 1;
            }
        }
    }
    (plans, unreadable)
}
