//! The plan service: documents loaded once into a bounded LRU cache, each
//! rendered to JSON once per version, edited under a per-plan lock, and
//! acknowledged only after the writer commits the change.
//!
//! Returns [`ApiError`] so handlers stay thin; knows nothing of actix types.
//! One file per job: `request` (who acts), `cache` (the plans in memory),
//! `edit` (writes), `quota`, `authority` (who may change what), `authors`
//! (who made each change), `decode` and `protocol` (untrusted bytes and the
//! sync rules), `admission`, `device_sync`, `peer_sync`, `sync_state`,
//! `consent`, `transfer`, `history`, `listing`, `signals`.

mod admission;
mod authority;
mod authors;
mod bulk;
mod cache;
mod consent;
pub(crate) mod decode;
mod device_sync;
mod edit;
mod history;
mod listing;
mod peer_sync;
pub(crate) mod protocol;
mod quota;
mod request;
mod revisions;
mod signals;
#[cfg(test)]
mod sim;
mod size;
mod sync_state;
#[cfg(test)]
mod tests;
mod transfer;
mod view;

pub use crate::audit::RequestMeta;
pub(crate) use authority::{grant_record, home_authority, outside_home, replica_of_others};
pub use bulk::BatchRead;
pub use cache::PlanEntry;
pub use consent::MAY_SHARE;
pub use device_sync::DeviceSync;
pub use protocol::push_done;
pub use request::Actor;
/// For the fuzz entry points, which bound what they decode as a node does.
#[cfg(any(test, feature = "fuzz"))]
pub(crate) use size::Bounds;
pub use transfer::AlsoWrite;
pub use view::{PlanView, Viewer};

use cache::load_chunks;
use edit::retrying;

use crate::db::{Pool, StoreError};
use crate::error::ApiError;
use crate::limits::MessageOps;
use crate::store::audit::AuditRecord;
use crate::store::plans as stored;
use crate::store::writer::Writer;
use lru::LruCache;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;

/// The plan service: every read, write and sync round of a plan goes
/// through it.
pub struct Plans {
    cache: Mutex<LruCache<String, Arc<PlanEntry>>>,
    pool: Pool,
    writer: Writer,
    compact_after: usize,
    /// What one sync message or document may decode to (`size`).
    bounds: size::Bounds,
    /// The most a plan may grow to (JSON bytes, `plan_quota_bytes`).
    quota: usize,
    /// Bytes of changes each user may store (`write_bytes_per_user`).
    write_budget: Option<crate::limits::Buckets>,
    /// Usernames of bound actors, for showing who set a conflicting value.
    actor_names: Mutex<Option<Arc<HashMap<String, String>>>>,
    /// Bumped whenever actors are bound: a load of `actor_names` that began
    /// before is not cached (it may miss the new binding).
    actor_names_generation: std::sync::atomic::AtomicU64,
    /// Distinguishes this process's actors from any other process's, so two
    /// processes never reuse an (actor, seq) pair.
    instance: [u8; 8],
    /// Actors already bound to their user in the database by this process.
    bound_actors: Mutex<HashSet<String>>,
    /// Rings whenever a change set is stored, waking change-feed streams.
    changed: tokio::sync::broadcast::Sender<()>,
    /// Set when the node is stopping: open streams end.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Automerge sync states by (device, plan), backed by the database;
    /// bounded in number and bytes (`sync_state_cache_bytes`).
    sync_states: Mutex<sync_state::StateCache>,
    /// How many sync states each user keeps, and for how long unused.
    sync_limits: stored::SyncStateLimits,
    /// The most one stored sync state may take (`sync_state_max_bytes`).
    sync_state_max_bytes: usize,
    /// Operations per message, by route and role (`MessageOps`).
    message_ops: MessageOps,
    /// This node's id: who on a roster is a user here (`PlanView::localized`).
    node_id: String,
    /// Other processes may write the database (PostgreSQL): every read
    /// checks the plan's revision first, and sync states are not cached.
    shared: bool,
    revision_checks: Arc<revisions::RevisionChecks>,
    /// Whether a name is a node (this one or a peer): a consent naming one
    /// is the record of a grant, written only through `consent.rs`.
    known_nodes: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl Plans {
    pub fn new(
        node_id: String,
        pool: Pool,
        writer: Writer,
        cache_plans: usize,
        compact_after: usize,
    ) -> Self {
        let own = node_id.clone();
        Plans {
            known_nodes: Arc::new(move |name: &str| name == own),
            node_id,
            revision_checks: revisions::RevisionChecks::new(pool.clone()),
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(cache_plans).unwrap_or(NonZeroUsize::MIN),
            )),
            pool,
            writer,
            compact_after: compact_after.max(2),
            bounds: size::Bounds {
                bytes: crate::config::DEFAULT_MAX_DOCUMENT_BYTES,
                ops: crate::config::DEFAULT_MAX_DOCUMENT_OPS,
            },
            quota: crate::config::DEFAULT_PLAN_QUOTA_BYTES,
            write_budget: None,
            instance: rand::random(),
            bound_actors: Mutex::new(HashSet::new()),
            actor_names: Mutex::new(None),
            actor_names_generation: Default::default(),
            changed: tokio::sync::broadcast::channel(16).0,
            stopping: tokio::sync::watch::channel(false).0,
            sync_states: Mutex::new(sync_state::StateCache::new(
                cache_plans.saturating_mul(4),
                crate::config::DEFAULT_SYNC_STATE_CACHE_BYTES,
            )),
            sync_limits: stored::SyncStateLimits {
                per_user: crate::config::DEFAULT_SYNC_STATES_PER_USER,
                idle_ms: crate::config::DEFAULT_SYNC_STATE_IDLE_SECS.saturating_mul(1000) as i64,
            },
            sync_state_max_bytes: crate::config::DEFAULT_SYNC_STATE_MAX_BYTES,
            message_ops: MessageOps::DEFAULT,
            shared: false,
        }
    }

    /// Whether other processes write the same database (see `shared`).
    /// Says which names are nodes (this one and its peers, as they stand
    /// when asked), for the consent record (`consent.rs`).
    pub fn with_known_nodes(
        mut self,
        is_node: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.known_nodes = Arc::new(is_node);
        self
    }

    pub fn with_shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Sets the bounds on incoming Automerge bytes: what they may decode
    /// to (`max_document_bytes`) and the operations they may declare
    /// (`max_document_ops`).
    pub fn with_document_bounds(mut self, bytes: usize, ops: u64) -> Self {
        self.bounds = size::Bounds { bytes, ops };
        self
    }

    /// Sets the bounds on sync states (`sync_states_per_user`,
    /// `sync_state_idle_secs`, `sync_state_max_bytes`,
    /// `sync_state_cache_bytes`) and on operations per message by route
    /// and role.
    pub fn with_sync_limits(
        mut self,
        per_user: u64,
        idle_secs: u64,
        state_bytes: usize,
        cache_bytes: usize,
        message_ops: MessageOps,
    ) -> Self {
        let entries = self.cache.lock().cap().get().saturating_mul(4);
        self.sync_states = Mutex::new(sync_state::StateCache::new(entries, cache_bytes));
        self.sync_limits = stored::SyncStateLimits {
            per_user,
            idle_ms: i64::try_from(idle_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        };
        self.sync_state_max_bytes = state_bytes;
        self.message_ops = message_ops;
        self
    }

    /// The operations one peer batch's messages may declare together.
    pub fn peer_batch_ops(&self) -> u64 {
        self.message_ops.peer_batch
    }

    /// Sets what one plan may grow to (`plan_quota_bytes`) and what each
    /// user may write (`write_bytes_per_user`).
    pub fn with_quotas(mut self, plan_bytes: usize, write_bytes: crate::limits::RateLimit) -> Self {
        self.quota = plan_bytes;
        self.write_budget = crate::limits::Buckets::new(write_bytes);
        self
    }

    pub fn cached_count(&self) -> usize {
        self.cache.lock().len()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::db::DbConnection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        Ok(crate::db::blocking(&self.pool, f).await?)
    }

    pub fn audit(&self, record: AuditRecord) {
        self.writer.audit(record);
    }
}
