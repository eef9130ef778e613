//! The plan service: documents loaded once into a bounded LRU cache, each
//! rendered to JSON once per version, edited under a per-plan lock, and
//! acknowledged only after the writer commits the change.
//!
//! Returns [`ApiError`] so handlers stay thin; knows nothing of actix types.

mod bulk;
mod consent;
mod revisions;
#[cfg(test)]
mod sim;
mod size;
pub(crate) mod sync;
mod sync_state;
mod transfer;
mod view;

pub use bulk::BatchRead;
pub use consent::MAY_SHARE;
/// For the fuzz entry points, which bound what they decode as a node does.
#[cfg(any(test, feature = "fuzz"))]
pub(crate) use size::Bounds;
pub use sync::push_done;
pub use transfer::AlsoWrite;
pub use view::{PlanView, Viewer};

use crate::db::{now_ms, Pool, StoreError};
use crate::error::ApiError;
use crate::limits::MessageOps;
use crate::store::audit::{insert_audit, AuditRecord};
use crate::store::plans::{self as stored, Membership, PlanRow, Revision};
use crate::store::users::{actor_users, bind_actor};
use crate::store::writer::Writer;
use automerge::transaction::CommitOptions;
use automerge::{ActorId, Automerge, ChangeHash, PatchLog, ReadDoc};
use lru::LruCache;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;
use wrapsync_shared::api::{HistoryEntry, PlanChange, PlanSummary};
use wrapsync_shared::incoming::{check_grant_records, check_incoming, check_new_item_ids};
use wrapsync_shared::ops::{apply_ops, is_summary, summarize, Editor, Op, OpResult};
use wrapsync_shared::plan::{init_plan, PlanError};
use wrapsync_shared::roles::Role;

/// The person acting, as the token names them.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
    pub username: String,
    pub role: Role,
}

/// The mutable half of a cached plan, behind the plan's write lock.
struct PlanState {
    doc: Automerge,
    /// Sequence numbers of the stored chunks the document holds: what a
    /// compaction may delete, and what catching up may skip.
    chunks: HashSet<i64>,
}

/// A cached plan: its document for writers, its rendered view for readers.
pub struct PlanEntry {
    id: String,
    state: tokio::sync::Mutex<PlanState>,
    view: RwLock<Arc<PlanView>>,
    /// The plan row's revision the document holds at least: a read whose
    /// row still says this may serve the view. Changed only under `state`.
    seen: Mutex<Revision>,
}

impl PlanEntry {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn view(&self) -> Arc<PlanView> {
        self.view.read().clone()
    }
}

/// Context every audited plan action carries.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub remote: Option<String>,
    /// The request's mark, set by any refusal audited for it.
    pub refusal: RefusalMark,
}

/// Shared by a request and everything auditing for it: set once a refusal
/// of the request has its audit row, so `api::refusals` (which audits
/// every refused request) does not write a second, vaguer one.
#[derive(Debug, Clone, Default)]
pub struct RefusalMark(Arc<std::sync::atomic::AtomicBool>);

impl RefusalMark {
    /// Notes an audit row with `outcome`; anything but `ok` is a refusal.
    pub fn note(&self, outcome: &str) {
        if outcome != "ok" {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

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

/// How many times a write is computed anew when other processes changed the
/// plan meanwhile, before it is answered `503 contended`.
const WRITE_ATTEMPTS: u32 = 20;

/// Runs `attempt` until it does not fail [`ApiError::Contended`] (another
/// process wrote the plan between catching up and committing), up to
/// [`WRITE_ATTEMPTS`] times, pausing a few random milliseconds between
/// attempts so the other process's batch can commit.
async fn retrying<T, F: Future<Output = Result<T, ApiError>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, ApiError> {
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(ApiError::Contended) if tries < WRITE_ATTEMPTS => {
                let most = u64::from(tries * 2).min(20);
                tokio::time::sleep(Duration::from_millis(rand::random_range(1..=most))).await;
                tries += 1;
            }
            result => return result,
        }
    }
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

    /// `429` while `actor` is in debt to their write budget.
    fn may_write(&self, actor: &Actor) -> Result<(), ApiError> {
        match &self.write_budget {
            Some(budget) => budget
                .ready(&actor.user_id, std::time::Instant::now())
                .map_err(|wait| ApiError::RateLimited(crate::limits::retry_after_secs(wait))),
            None => Ok(()),
        }
    }

    /// Charges `bytes` of stored changes to `actor`'s write budget.
    fn wrote(&self, actor: &Actor, bytes: usize) {
        if let Some(budget) = &self.write_budget {
            budget.spend(&actor.user_id, bytes as f64, std::time::Instant::now());
        }
    }

    /// Refuses `after` if it is over the quota and larger than `before`
    /// (JSON bytes): a plan over it (a lowered quota, merged concurrent
    /// edits) still takes edits that do not grow it.
    fn check_quota(&self, before: usize, after: usize) -> Result<(), ApiError> {
        if after > self.quota && after > before {
            return Err(ApiError::PlanQuota(format!(
                "the plan would grow to {after} bytes, over this node's quota of {} bytes \
                 (plan_quota_bytes); edits that do not grow it still go",
                self.quota
            )));
        }
        Ok(())
    }

    pub fn cached_count(&self) -> usize {
        self.cache.lock().len()
    }

    /// The Automerge actor for a person's edits made through this process.
    fn actor_id(&self, actor: &Actor) -> ActorId {
        let mut bytes = ulid::Ulid::from_string(&actor.user_id)
            .map(|u| u.to_bytes().to_vec())
            .unwrap_or_else(|_| actor.user_id.as_bytes().to_vec());
        bytes.extend_from_slice(&self.instance);
        ActorId::from(bytes)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::db::DbConnection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        Ok(crate::db::blocking(&self.pool, f).await?)
    }

    /// Every bound actor's username, loaded once and again after new
    /// actors are bound. Small: one row per person and device.
    async fn actor_names(&self) -> Arc<HashMap<String, String>> {
        use std::sync::atomic::Ordering;
        if let Some(names) = self.actor_names.lock().clone() {
            return names;
        }
        let generation = self.actor_names_generation.load(Ordering::SeqCst);
        let loaded = self
            .blocking(crate::store::users::all_actor_users)
            .await
            .unwrap_or_default();
        let names = Arc::new(loaded.into_iter().collect::<HashMap<_, _>>());
        let mut cached = self.actor_names.lock();
        if self.actor_names_generation.load(Ordering::SeqCst) == generation {
            *cached = Some(names.clone());
        }
        names
    }

    /// Names are reloaded when next needed (actors were just bound).
    fn forget_actor_names(&self) {
        let mut cached = self.actor_names.lock();
        self.actor_names_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *cached = None;
    }

    /// `view`, re-rendered if a conflicting value's actor was bound only by
    /// the write that produced it (its name was unknown at render time).
    async fn with_names(&self, doc: &Automerge, view: PlanView) -> PlanView {
        let unnamed = view
            .conflicts
            .iter()
            .flat_map(|c| &c.values)
            .any(|v| v.user.is_none());
        if unnamed {
            PlanView::render(&view.id, doc, &*self.actor_names().await)
                .localized(view.home.clone(), &self.node_id)
        } else {
            view
        }
    }

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

    /// Starts a new plan. A facilitator who creates it joins its roster.
    pub async fn create(
        &self,
        actor: &Actor,
        display_name: String,
        title: &str,
        enrolled_on: Option<String>,
        meta: RequestMeta,
    ) -> Result<Arc<PlanView>, ApiError> {
        let id = ulid::Ulid::new().to_string();
        let mut doc = Automerge::new().with_actor(self.actor_id(actor));
        let mut tx = doc.transaction();
        init_plan(&mut tx, title)?;
        let mut ops = Vec::new();
        if let Some(date) = enrolled_on {
            ops.push(Op {
                op: "replace".into(),
                path: "/enrollment/enrolled_on".into(),
                value: Some(serde_json::Value::String(date)),
                from: None,
            });
        }
        if actor.role == Role::Facilitator {
            ops.push(Op {
                op: "add".into(),
                path: "/team".into(),
                value: Some(serde_json::json!({
                    "name": display_name, "role": "facilitator",
                    "support": "formal", "user": actor.username,
                })),
                from: None,
            });
        }
        let editor = Editor {
            role: Role::Supervisor,
            member_id: None,
        };
        if let Err(failure) = apply_ops(&mut tx, &ops, &editor, &mut new_item_id) {
            return Err(ApiError::Plan {
                error: failure.error,
                op_index: None,
            });
        }
        tx.commit_with(
            CommitOptions::default()
                .with_message("create plan")
                .with_time(unix_secs()),
        );
        let actors = vec![doc.get_actor().to_hex_string()];
        let audit = audit_record(actor, Some(&id), "plan.create", "ok", None, &meta);
        self.store_new(id, doc, Some(actor), None, actors, audit)
            .await
    }

    /// Starts a plan from a whole Automerge document made elsewhere (any
    /// Automerge client, or a plan exported by another node): it is held to
    /// the same checks as synced changes, as if the creator had made every
    /// change in it, and its creator must be able to see it afterwards.
    pub async fn import(
        &self,
        actor: &Actor,
        bytes: &[u8],
        meta: RequestMeta,
    ) -> Result<Arc<PlanView>, ApiError> {
        let doc = sync::load_document_for(
            bytes,
            self.bounds,
            Some(self.message_ops.for_role(actor.role)),
        )?;
        let editor = Editor {
            role: actor.role,
            member_id: None,
        };
        check_incoming(&doc, &[], &editor)
            .and_then(|()| check_new_item_ids(&doc, &[]))
            .map_err(ApiError::RefusedChanges)?;
        // A new plan has no grants for a consent record to mirror.
        check_grant_records(&doc, &[], &*self.known_nodes).map_err(grant_record)?;
        let id = ulid::Ulid::new().to_string();
        let view = PlanView::render(&id, &doc, &HashMap::new()).localized(None, &self.node_id);
        if view.role_of(actor).is_none() {
            return Err(ApiError::RefusedChanges(PlanError::schema(
                "/team",
                "put yourself on the team: a plan must be visible to whoever starts it",
            )));
        }
        let actors = self.check_actors(actor, &doc, &[]).await?;
        let summary = format!("imported with {} changes", doc.get_changes(&[]).len());
        let audit = audit_record(actor, Some(&id), "plan.create", "ok", Some(summary), &meta);
        self.store_new(id, doc, Some(actor), None, actors, audit)
            .await
    }

    /// Stores a new plan whole, binds its actors to `actor` (if made here),
    /// and caches it. `home`: the peer it is homed at, for a replica.
    /// `Contended` if a plan with the id was stored meanwhile.
    async fn store_new(
        &self,
        id: String,
        doc: Automerge,
        actor: Option<&Actor>,
        home: Option<String>,
        actors: Vec<String>,
        audit: AuditRecord,
    ) -> Result<Arc<PlanView>, ApiError> {
        let view = PlanView::render(&id, &doc, &*self.actor_names().await)
            .localized(home.clone(), &self.node_id);
        self.check_quota(0, view.size())?;
        let snapshot = doc.save();
        let now = now_ms();
        let row = PlanRow {
            id: id.clone(),
            title: view.title.clone(),
            phase: view.phase.clone(),
            heads: view.version.join(","),
            created_at: now,
            updated_at: now,
            home_node: home,
        };
        let members = view.members.clone();
        let user_id = actor.map(|a| a.user_id.clone());
        let binding = actors.clone();
        let revision = Revision {
            heads: row.heads.clone(),
            home: row.home_node.clone(),
        };
        let seq = self
            .writer
            .write(move |conn| {
                // Stored meanwhile by another request (a peer's first push
                // and its handover at once): the caller retries on it.
                stored::insert_plan(conn, &row).map_err(|e| {
                    if e.is_unique_violation() {
                        StoreError::Stale
                    } else {
                        e
                    }
                })?;
                let seq = stored::append_chunk(conn, &row.id, &snapshot, true, now)?;
                stored::set_members(conn, &row.id, &members)?;
                if let Some(user_id) = &user_id {
                    for actor_hex in &binding {
                        bind_actor(conn, actor_hex, user_id, now)?;
                    }
                }
                stored::record_change(conn, &row.id, now)?;
                insert_audit(conn, &[audit])?;
                Ok(seq)
            })
            .await?;
        if actor.is_some() {
            self.forget_actor_names();
            self.bound_actors.lock().extend(actors);
        }
        let view = Arc::new(self.with_names(&doc, view).await);
        let entry = Arc::new(PlanEntry {
            id: id.clone(),
            state: tokio::sync::Mutex::new(PlanState {
                doc,
                chunks: HashSet::from([seq]),
            }),
            view: RwLock::new(view.clone()),
            seen: Mutex::new(revision),
        });
        self.cache.lock().put(id, entry);
        let _ = self.changed.send(());
        Ok(view)
    }

    /// Applies ops at `base` (the version the client saw; `None`: current)
    /// and merges. Nothing is kept unless every op is valid and allowed.
    pub async fn apply(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        base: Option<Vec<String>>,
        ops: Vec<Op>,
        meta: RequestMeta,
    ) -> Result<(Arc<PlanView>, Vec<OpResult>), ApiError> {
        self.may_write(actor)?;
        retrying(|| self.apply_once(entry, actor, base.clone(), &ops, &meta, None)).await
    }

    /// [`Plans::apply`], once: the ops on the document as caught up now.
    async fn apply_once(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        base: Option<Vec<String>>,
        ops: &[Op],
        meta: &RequestMeta,
        record: Option<&consent::ConsentRecord>,
    ) -> Result<(Arc<PlanView>, Vec<OpResult>), ApiError> {
        let mut state = entry.state.lock().await;
        self.catch_up(entry, &mut state).await?;

        let member_id = entry
            .view()
            .member(&actor.username)
            .map(|m| m.member_id.clone());
        let editor = Editor {
            role: match record {
                // The node keeps the consent record for whoever may speak
                // for the family (`consent::MAY_SHARE`, checked before).
                Some(_) => Role::Facilitator,
                None => entry
                    .view()
                    .editing_role_of(actor)
                    .ok_or_else(replica_of_others)?,
            },
            member_id,
        };
        if record.is_none() && outside_home(&entry.view(), actor) {
            let home_only = |path: &str| wrapsync_shared::roles::home_only(path);
            if let Some(op) = ops.iter().find(|op| {
                op.op != "test"
                    && (home_only(&op.path) || op.from.as_deref().is_some_and(home_only))
            }) {
                return Err(home_authority(PlanError::Forbidden(op.path.clone())));
            }
        }
        let size_before = entry.view().size();
        let at_quota = size_before >= self.quota && ops.iter().any(|op| op.op == "add");
        let floor = growth_floor(ops);
        if at_quota || (floor > 0 && size_before.saturating_add(floor / 2) > self.quota) {
            // Growth that is sure: refused before any work, rather than
            // applied, rendered and undone by reloading the plan.
            return Err(ApiError::PlanQuota(format!(
                "the plan ({size_before} bytes) would grow past this node's quota of {} \
                 bytes (plan_quota_bytes); edits that do not grow it still go",
                self.quota
            )));
        }
        let heads_before = state.doc.get_heads();
        let base = match base {
            None => None,
            Some(base) => Some(parse_heads(&state.doc, &base)?),
        };
        state.doc.set_actor(self.actor_id(actor));
        let mut tx = match &base {
            Some(base) if *base != heads_before => state
                .doc
                .transaction_at(PatchLog::inactive(), base)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            _ => state.doc.transaction(),
        };
        let results = match apply_ops(&mut tx, ops, &editor, &mut new_item_id) {
            Ok(results) => results,
            Err(failure) => {
                tx.rollback();
                return Err(ApiError::Plan {
                    error: failure.error,
                    op_index: Some(failure.index),
                });
            }
        };
        let summary = summarize(ops);
        let (hash, _) = tx.commit_with(
            CommitOptions::default()
                .with_message(summary.clone())
                .with_time(unix_secs()),
        );
        let audit = match record {
            Some(record) => record.audit.clone(),
            None => audit_record(
                actor,
                Some(&entry.id),
                "plan.ops",
                "ok",
                Some(summary),
                meta,
            ),
        };
        if hash.is_none() {
            // Only `test` ops: nothing to store, but the access is audited.
            self.writer.audit(audit);
            return Ok((entry.view(), results));
        }
        let change = state.doc.save_after(&heads_before);
        let change_bytes = change.len();
        let view = PlanView::render(&entry.id, &state.doc, &*self.actor_names().await)
            .localized(entry.view().home.clone(), &self.node_id);
        let refused = self.check_quota(size_before, view.size()).and_then(|()| {
            let touches_consents = |path: &str| path.starts_with("/consents");
            if record.is_none()
                && ops.iter().any(|op| {
                    touches_consents(&op.path) || op.from.as_deref().is_some_and(touches_consents)
                })
            {
                check_grant_records(&state.doc, &heads_before, &*self.known_nodes)
                    .map_err(grant_record)?;
            }
            Ok(())
        });
        if let Err(e) = refused {
            // The document holds the refused change: back to the stored plan.
            self.reload(entry, &mut state).await?;
            return Err(e);
        }
        let actors = vec![self.actor_id(actor).to_hex_string()];
        let consent = record.map(|r| r.change.clone());
        match self
            .persist(entry, Some(actor), &view, change, actors, audit, consent)
            .await
        {
            Ok(seq) => {
                state.chunks.insert(seq);
                self.wrote(actor, change_bytes);
            }
            Err(e) => {
                // The document holds a change the database does not: reload.
                if !matches!(e, ApiError::Contended) {
                    tracing::error!(plan = %entry.id, error = %e, "write failed; reloading plan");
                }
                if let Err(e) = self.reload(entry, &mut state).await {
                    tracing::error!(plan = %entry.id, error = %e, "reloading the plan failed");
                }
                return Err(e);
            }
        }
        let view = self.with_names(&state.doc, view).await;
        let view = Arc::new(view);
        *entry.view.write() = view.clone();
        if state.chunks.len() > self.compact_after {
            if let Err(e) = self.compact(&entry.id, &mut state).await {
                tracing::warn!(plan = %entry.id, error = %e, "compaction failed; will retry");
            }
        }
        Ok((view, results))
    }

    /// Stores one change set of a plan with everything that goes with it, in
    /// one transaction: the chunk, the plan index, the membership if the
    /// roster changed, newly seen actors bound to `actor`, the change feed and
    /// the audit row (and the grant a consent record mirrors).
    #[allow(clippy::too_many_arguments)]
    async fn persist(
        &self,
        entry: &PlanEntry,
        actor: Option<&Actor>,
        view: &PlanView,
        change: Vec<u8>,
        actors: Vec<String>,
        audit: AuditRecord,
        grant: Option<consent::ConsentChange>,
    ) -> Result<i64, ApiError> {
        let members_changed = view.members != entry.view().members;
        let now = now_ms();
        let row = PlanRow {
            id: entry.id.clone(),
            title: view.title.clone(),
            phase: view.phase.clone(),
            heads: view.version.join(","),
            created_at: now,
            updated_at: now,
            home_node: None,
        };
        let members = members_changed.then(|| view.members.clone());
        let unbound: Vec<String> = {
            let bound = self.bound_actors.lock();
            actors.into_iter().filter(|a| !bound.contains(a)).collect()
        };
        let user_id = actor.map(|a| a.user_id.clone());
        let newly_bound = unbound.clone();
        let expected = entry.seen.lock().clone();
        let revision = Revision {
            heads: row.heads.clone(),
            home: expected.home.clone(),
        };
        let seq = self
            .writer
            .write(move |conn| {
                // Computed from the document at `expected`: stored only if
                // no other process wrote the plan since.
                stored::claim(conn, &row.id, &expected)?;
                let seq = stored::append_chunk(conn, &row.id, &change, false, now)?;
                stored::update_plan(conn, &row)?;
                if let Some(members) = members {
                    stored::set_members(conn, &row.id, &members)?;
                }
                if let Some(user_id) = &user_id {
                    for actor_hex in &unbound {
                        bind_actor(conn, actor_hex, user_id, now)?;
                    }
                }
                if let Some(grant) = &grant {
                    grant.store(conn, &row.id)?;
                }
                stored::record_change(conn, &row.id, now)?;
                insert_audit(conn, &[audit])?;
                Ok(seq)
            })
            .await?;
        *entry.seen.lock() = revision;
        if !newly_bound.is_empty() {
            // Before anyone is told of the change (an outbound push vouches
            // for its authors by these names).
            self.forget_actor_names();
        }
        let _ = self.changed.send(());
        self.bound_actors.lock().extend(newly_bound);
        Ok(seq)
    }

    /// Loads chunks another writer (a restart's, another process's) stored
    /// since this document was loaded, so no edit is made on a stale copy,
    /// and renders the view anew if anything changed. Costs one primary-key
    /// read when the plan's row is still at the revision last seen.
    /// `NotFound` (and out of the cache) when the plan is gone.
    async fn catch_up(&self, entry: &PlanEntry, state: &mut PlanState) -> Result<(), ApiError> {
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
    async fn reload(&self, entry: &PlanEntry, state: &mut PlanState) -> Result<(), ApiError> {
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

    /// Writes the whole document as one snapshot, then deletes exactly the
    /// chunks it was made from.
    async fn compact(&self, id: &str, state: &mut PlanState) -> Result<(), ApiError> {
        let snapshot = state.doc.save();
        let included: Vec<i64> = state.chunks.iter().copied().collect();
        let plan_id = id.to_string();
        let seq = self
            .writer
            .write(move |conn| stored::compact(conn, &plan_id, &snapshot, &included, now_ms()))
            .await?;
        state.chunks = HashSet::from([seq]);
        Ok(())
    }

    /// Every change of the plan `role` may know of, oldest first, with who
    /// made it. A role that does not see some sections gets only the
    /// changes whose summary shows it touched a section it sees, and only
    /// those parts of the summary: a change without a summary (a device's
    /// free text) could have touched anything, so it is left out for them.
    pub async fn history(
        &self,
        entry: &PlanEntry,
        role: Role,
    ) -> Result<Vec<HistoryEntry>, ApiError> {
        let restricted = !role.hidden_sections().is_empty();
        let mut changes: Vec<HistoryEntry> = {
            let state = entry.state.lock().await;
            state
                .doc
                .get_changes_meta(&[])
                .into_iter()
                .filter_map(|c| {
                    // A device's own change message is free text: shown only
                    // when it is an identifier-free summary.
                    let summary = c.message.filter(|m| is_summary(m)).map(|m| m.to_string());
                    let summary = match summary {
                        Some(s) if restricted => Some(visible_summary(role, &s)?),
                        None if restricted => return None,
                        summary => summary,
                    };
                    Some(HistoryEntry {
                        hash: c.hash.to_string(),
                        user: None,
                        actor: c.actor.to_hex_string(),
                        time: c.timestamp,
                        summary,
                        via: None,
                    })
                })
                .collect()
        };
        let actors: Vec<String> = changes
            .iter()
            .map(|c| c.actor.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let names = self
            .blocking(move |conn| actor_users(conn, &actors))
            .await?;
        let home = entry.view().home.clone();
        for change in &mut changes {
            let name = names
                .iter()
                .find(|(a, _)| *a == change.actor)
                .map(|(_, u)| u.as_str());
            (change.user, change.via) = attribution(name, home.as_deref());
        }
        Ok(changes)
    }

    /// A page of the plans `actor` may see.
    pub async fn list(
        &self,
        actor: &Actor,
        updated_since: Option<i64>,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<PlanSummary>, ApiError> {
        let username = (actor.role != Role::Supervisor).then(|| actor.username.clone());
        let rows = self
            .blocking(move |conn| {
                stored::list_plans(
                    conn,
                    &stored::ListQuery {
                        username: username.as_deref(),
                        updated_since,
                        after,
                        limit,
                    },
                )
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| PlanSummary {
                id: row.id,
                title: row.title,
                phase: row.phase,
                updated_at: row.updated_at,
                role: row.role.and_then(|r| r.parse().ok()).unwrap_or(actor.role),
            })
            .collect())
    }

    /// Plans `actor` may see that changed after cursor `since`, each once
    /// with its newest cursor, oldest first.
    pub async fn changes(
        &self,
        actor: &Actor,
        since: i64,
        limit: i64,
    ) -> Result<Vec<PlanChange>, ApiError> {
        let username = (actor.role != Role::Supervisor).then(|| actor.username.clone());
        let rows = self
            .blocking(move |conn| stored::changes_since(conn, username.as_deref(), since, limit))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(plan, cursor, updated_at)| PlanChange {
                plan,
                cursor: cursor.to_string(),
                updated_at,
            })
            .collect())
    }

    /// Every plan changed after cursor `since` (at most `limit`, oldest
    /// first) with the usernames on its roster: one batch for all open
    /// change-feed streams (`crate::streams`).
    pub async fn changes_with_members(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<stored::ChangedPlan>, ApiError> {
        self.blocking(move |conn| stored::changes_with_members(conn, since, limit))
            .await
    }

    /// The change log's newest cursor (0 when empty).
    pub async fn last_change_seq(&self) -> Result<i64, ApiError> {
        self.blocking(stored::last_change_seq).await
    }

    /// Ends every open change-feed stream (the node is stopping).
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// Turns true when the node is stopping.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Wakes whenever any plan of this node changes.
    /// Tells whoever follows changes (the change feed, the federation
    /// outbox) that something was stored.
    pub fn notify_changed(&self) {
        let _ = self.changed.send(());
    }

    /// What rings the change bell: for whoever hears changes made
    /// elsewhere (`cluster`).
    pub fn bell(&self) -> tokio::sync::broadcast::Sender<()> {
        self.changed.clone()
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.changed.subscribe()
    }

    pub fn audit(&self, record: AuditRecord) {
        self.writer.audit(record);
    }
}

/// The parts of a change summary (`replace /cans/*/ratings/x; add
/// /strengths`) naming sections `role` sees; `None` when none do.
fn visible_summary(role: Role, summary: &str) -> Option<String> {
    if summary == "create plan" {
        return Some(summary.to_string());
    }
    let shown: Vec<&str> = summary
        .split("; ")
        .filter(|part| {
            part.split_once(' ')
                .is_some_and(|(_, path)| role.sees(path))
        })
        .collect();
    if shown.is_empty() {
        return None;
    }
    let cut = summary.ends_with("; …");
    Some(shown.join("; ") + if cut { "; …" } else { "" })
}

/// Builds a document from stored chunks (a snapshot, then change sets).
fn load_chunks(chunks: Vec<(i64, Vec<u8>)>) -> Result<(Automerge, HashSet<i64>), ApiError> {
    let seqs = chunks.iter().map(|(s, _)| *s).collect();
    let bytes: Vec<u8> = chunks.into_iter().flat_map(|(_, d)| d).collect();
    let doc = Automerge::load(&bytes)
        .map_err(|e| ApiError::Internal(format!("stored plan unreadable: {e}")))?;
    Ok((doc, seqs))
}

/// How much `ops` surely grow a plan's JSON: an `add` of a new item (one
/// naming no `id`, so not a retry) renders at least its fields that are
/// not `null`, as compact JSON. Halved where it is used, so a rendering
/// detail can only make an early refusal rarer, never wrong.
fn growth_floor(ops: &[Op]) -> usize {
    fn compact_len(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Object(fields) => {
                let present: Vec<_> = fields.iter().filter(|(_, v)| !v.is_null()).collect();
                present
                    .iter()
                    .map(|(k, v)| k.len() + 3 + compact_len(v))
                    .sum::<usize>()
                    + present.len().max(1)
                    + 1
            }
            serde_json::Value::Array(items) => {
                items.iter().map(compact_len).sum::<usize>() + items.len().max(1) + 1
            }
            other => serde_json::to_vec(other).map_or(0, |v| v.len()),
        }
    }
    ops.iter()
        .filter(|op| op.op == "add")
        .filter_map(|op| op.value.as_ref())
        .filter(|value| value.is_object() && value.get("id").is_none())
        .map(compact_len)
        .sum()
}

fn parse_heads(doc: &Automerge, base: &[String]) -> Result<Vec<ChangeHash>, ApiError> {
    let mut heads = Vec::with_capacity(base.len());
    for hex in base {
        let hash: ChangeHash = hex
            .parse()
            .map_err(|_| ApiError::InvalidRequest(format!("`{hex}` is not a version hash")))?;
        if doc.get_change_by_hash(&hash).is_none() {
            return Err(PlanError::UnknownVersion(hex.clone()).into());
        }
        heads.push(hash);
    }
    Ok(heads)
}

/// Item ids are ULIDs that only grow, so items added in the same
/// millisecond still sort in the order they were added; within a
/// millisecond each is the last plus a random step of up to 2^64 (not plus
/// one, as `ulid::Generator` does), so knowing one id says nothing of its
/// neighbours, which may be items the knower is not shown.
fn new_item_id() -> String {
    static LAST: Mutex<u128> = Mutex::new(0);
    let mut last = LAST.lock();
    let fresh = ulid::Ulid::new().0;
    let step = 1 + u128::from(rand::random::<u64>());
    *last = match last.checked_add(step) {
        Some(next) if fresh <= *last => next,
        _ => fresh,
    };
    ulid::Ulid(*last).to_string()
}

fn unix_secs() -> i64 {
    now_ms() / 1000
}

/// An audit row for something `actor` did.
pub fn audit_record(
    actor: &Actor,
    plan: Option<&str>,
    action: &str,
    outcome: &str,
    detail: Option<String>,
    meta: &RequestMeta,
) -> AuditRecord {
    meta.refusal.note(outcome);
    AuditRecord {
        at: now_ms(),
        user_id: Some(actor.user_id.clone()),
        username: Some(actor.username.clone()),
        role: Some(actor.role.to_string()),
        plan_id: plan.map(str::to_string),
        action: action.to_string(),
        outcome: outcome.to_string(),
        detail,
        remote: meta.remote.clone(),
        request_id: meta.request_id.clone(),
    }
}

/// An audit record of something a peer node did (or was refused).
pub fn peer_audit(
    peer: &str,
    plan: Option<&str>,
    action: &str,
    outcome: &str,
    detail: Option<String>,
    meta: &RequestMeta,
) -> AuditRecord {
    meta.refusal.note(outcome);
    AuditRecord {
        at: now_ms(),
        user_id: None,
        username: Some(format!("peer:{peer}")),
        role: Some("peer".into()),
        plan_id: plan.map(str::to_string),
        action: action.to_string(),
        outcome: outcome.to_string(),
        detail,
        remote: meta.remote.clone(),
        request_id: meta.request_id.clone(),
    }
}

/// Whether `actor`'s edits of `view` are held to the home's authority
/// ([`wrapsync_shared::roles::HOME_ONLY`]): on a replica (its team edits
/// content, the home the roster and consents), or as a person of another
/// node (`name@node`) at the home.
pub(crate) fn outside_home(view: &PlanView, actor: &Actor) -> bool {
    view.home.is_some() || actor.username.contains('@')
}

/// A change to a consent naming a node, refused (`422 home-authority`):
/// the consent record mirrors the grants, written only through the shares
/// API (`consent.rs`).
pub(crate) fn grant_record(error: PlanError) -> ApiError {
    match error {
        PlanError::Forbidden(path) => ApiError::HomeAuthority(format!(
            "{path}: a consent naming a node is the plan's record of the family's grant; it \
             changes only when consent is recorded or withdrawn (/v1/plans/{{id}}/shares)"
        )),
        other => ApiError::RefusedChanges(other),
    }
}

/// A roster or consent change by someone not of the plan's home, refused
/// (`422 home-authority`); other refusals as they are.
pub(crate) fn home_authority(error: PlanError) -> ApiError {
    match error {
        PlanError::Forbidden(path) => ApiError::HomeAuthority(format!(
            "{path}: the team's roster and the family's consent record are changed only at \
             the plan's home, by its own people"
        )),
        other => ApiError::RefusedChanges(other),
    }
}

/// Who made a change and which node delivered it, from the name its
/// actor is bound to (`@node`: a node delivered it without vouching for
/// an author) and the plan's home (`None`: homed here). A plan's home
/// takes changes only from their author's node; a replica takes them only
/// from the home, so a change whose author is not of the home came via it.
fn attribution(name: Option<&str>, home: Option<&str>) -> (Option<String>, Option<String>) {
    match name {
        Some(name) if name.starts_with('@') => (None, Some(name[1..].to_string())),
        Some(name) => {
            let via = match (name.split_once('@'), home) {
                (Some((_, node)), Some(home)) if node != home => Some(home.to_string()),
                _ => None,
            };
            (Some(name.to_string()), via)
        }
        None => (None, home.map(str::to_string)),
    }
}

/// A supervisor reading a replica may not edit it: only its team does.
pub(crate) fn replica_of_others() -> ApiError {
    ApiError::Forbidden("a plan homed at another node is edited by its team".into())
}

/// Used by the view to list members; kept here so storage types stay put.
pub(crate) fn membership(username: String, member_id: String, role: Role) -> Membership {
    Membership {
        username,
        member_id,
        role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_growth_floor_is_at_most_what_adds_grow_the_rendered_plan() {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        init_plan(&mut tx, "Floor family").unwrap();
        tx.commit();
        let ops: Vec<Op> = serde_json::from_value(json!([
            {"op":"add","path":"/strengths","value":{"statement":"Grandma \"Lu\" é\n","about":null}},
            {"op":"add","path":"/needs","value":{"domain":"school","statement":"x","priority":2}},
            {"op":"add","path":"/outcomes","value":{"statement":"y","baseline":1,"target":5}},
            {"op":"add","path":"/strategies","value":{"description":"z","kind":"formal",
                "steps":[{"description":"a step"},{"description":"another","status":"open"}]}},
            {"op":"replace","path":"/vision","value":"not counted"},
        ]))
        .unwrap();
        let before = serde_json::to_vec(&wrapsync_shared::plan::render(&doc))
            .unwrap()
            .len();
        let editor = Editor {
            role: Role::Supervisor,
            member_id: None,
        };
        let mut tx = doc.transaction();
        apply_ops(&mut tx, &ops, &editor, &mut new_item_id).unwrap();
        tx.commit();
        let after = serde_json::to_vec(&wrapsync_shared::plan::render(&doc))
            .unwrap()
            .len();
        let floor = growth_floor(&ops);
        assert!(floor > 150, "{floor}");
        assert!(floor <= after - before, "{floor} > {}", after - before);
        // A retried add (naming its id) may change nothing: not counted.
        let retry: Vec<Op> = serde_json::from_value(json!([
            {"op":"add","path":"/strengths","value":{"id":new_item_id(),"statement":"s"}}
        ]))
        .unwrap();
        assert_eq!(growth_floor(&retry), 0);
    }

    #[test]
    fn item_ids_grow_but_their_neighbours_cannot_be_guessed() {
        let ids: Vec<u128> = (0..200)
            .map(|_| ulid::Ulid::from_string(&new_item_id()).map_or(0, |u| u.0))
            .collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "ids sort in the order they were made");
            // Plus one would be 1 in 2^64 if the steps are random.
            assert!(pair[1] - pair[0] > 1, "a neighbour is not the next id");
        }
    }

    #[test]
    fn history_names_the_node_that_delivered_a_change_not_made_by_its_people() {
        let at = |name: Option<&str>, home: Option<&str>| attribution(name, home);
        let s = |v: &str| Some(v.to_string());
        // Homed here: local people and a peer's members, as bound.
        assert_eq!(at(Some("fran"), None), (s("fran"), None));
        assert_eq!(at(Some("cody@county-b"), None), (s("cody@county-b"), None));
        // A replica: the home's people came from it; a third node's via it.
        assert_eq!(
            at(Some("bea@county-b"), Some("county-b")),
            (s("bea@county-b"), None)
        );
        assert_eq!(
            at(Some("cody@county-c"), Some("county-b")),
            (s("cody@county-c"), s("county-b"))
        );
        assert_eq!(at(Some("fran"), Some("county-b")), (s("fran"), None));
        // Not vouched for: nobody named, the node that delivered it.
        assert_eq!(
            at(Some("@county-b"), Some("county-b")),
            (None, s("county-b"))
        );
        assert_eq!(at(None, Some("county-b")), (None, s("county-b")));
        assert_eq!(at(None, None), (None, None));
    }

    #[test]
    fn a_summary_keeps_only_the_parts_a_role_sees() {
        let ns = Role::NaturalSupport;
        let mixed = "replace /vision; add /cans; replace /status/*/living";
        assert_eq!(
            visible_summary(ns, mixed).as_deref(),
            Some("replace /vision")
        );
        assert_eq!(visible_summary(ns, "add /consents"), None);
        assert_eq!(
            visible_summary(ns, "add /strengths; add /cans; …").as_deref(),
            Some("add /strengths; …")
        );
        assert_eq!(visible_summary(ns, "add /cans; …"), None);
        assert_eq!(
            visible_summary(ns, "create plan").as_deref(),
            Some("create plan")
        );
        assert_eq!(
            visible_summary(Role::Facilitator, mixed).as_deref(),
            Some(mixed)
        );
    }
}
