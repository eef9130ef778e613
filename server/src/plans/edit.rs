//! Writing plans: new plans (made here, imported, or first arriving from
//! their home), ops applied under the plan's lock, changes kept, each
//! stored through the writer with its audit row before it is acknowledged,
//! and compaction.

use super::authority::{grant_record, home_authority, outside_home, replica_of_others};
use super::cache::PlanState;
use super::quota::growth_floor;
use super::{consent, Actor, PlanEntry, PlanView, Plans, RequestMeta};
use crate::audit::{Action, Audit};
use crate::db::{now_ms, StoreError};
use crate::error::ApiError;
use crate::store::audit::{insert_audit, AuditRecord};
use crate::store::plans::{self as stored, PlanRow, Revision};
use crate::store::users::bind_actor;
use automerge::transaction::CommitOptions;
use automerge::{Automerge, ChangeHash, PatchLog, ReadDoc};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wrapsync_shared::incoming::{check_grant_records, check_incoming, check_new_item_ids};
use wrapsync_shared::ops::{apply_ops, summarize, Editor, Op, OpResult};
use wrapsync_shared::plan::{init_plan, PlanError};
use wrapsync_shared::roles::Role;

/// How many times a write is computed anew when other processes changed the
/// plan meanwhile, before it is answered `503 contended`.
pub(super) const WRITE_ATTEMPTS: u32 = 20;

/// Runs `attempt` until it does not fail [`ApiError::Contended`] (another
/// process wrote the plan between catching up and committing), up to
/// [`WRITE_ATTEMPTS`] times, pausing a few random milliseconds between
/// attempts so the other process's batch can commit.
pub(super) async fn retrying<T, F: Future<Output = Result<T, ApiError>>>(
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
        let audit = Audit::new(actor, Action::PlanCreate).plan(&id).at(&meta);
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
        let (bounds, route) = (self.bounds, Some(self.message_ops.for_role(actor.role)));
        let bytes_len = bytes.len();
        let editor = Editor {
            role: actor.role,
            member_id: None,
        };
        // Loading and checking a megabyte of changes takes a while: off
        // the HTTP worker (`crate::blocking`).
        let bytes = bytes.to_vec();
        let load = move || {
            let doc = super::decode::load_document_for(&bytes, bounds, route)?;
            check_incoming(&doc, &[], &editor)
                .and_then(|()| check_new_item_ids(&doc, &[]))
                .map_err(ApiError::RefusedChanges)?;
            Ok::<_, ApiError>(doc)
        };
        let doc = crate::blocking::read_large(bytes_len, load)
            .await
            .unwrap_or_else(|| Err(ApiError::MalformedDocument("unreadable document".into())))?;
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
        let audit = Audit::new(actor, Action::PlanCreate)
            .plan(&id)
            .detail(summary)
            .at(&meta);
        self.store_new(id, doc, Some(actor), None, actors, audit)
            .await
    }

    /// Stores a new plan whole, binds its actors to `actor` (if made here),
    /// and caches it. `home`: the peer it is homed at, for a replica.
    /// `Contended` if a plan with the id was stored meanwhile.
    pub(super) async fn store_new(
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
    pub(super) async fn apply_once(
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
            None => Audit::new(actor, Action::PlanOps)
                .plan(&entry.id)
                .detail(summary)
                .at(meta),
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
    /// the audit row.
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

    /// Stores changes a round brought (already checked) and makes `scratch`
    /// the plan: the new chunk, the index, `actors` bound to `actor` (when
    /// made here) and `audit`, in one write; then the cached copy and view.
    /// Changes that would grow the plan past the quota are refused whole
    /// (nothing kept). Answers the bytes stored.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn keep_changes(
        &self,
        entry: &PlanEntry,
        state: &mut PlanState,
        scratch: Box<Automerge>,
        before: &[automerge::ChangeHash],
        actor: Option<&Actor>,
        actors: Vec<String>,
        audit: AuditRecord,
    ) -> Result<usize, ApiError> {
        let change = scratch.save_after(before);
        let view = PlanView::render(&entry.id, &scratch, &*self.actor_names().await)
            .localized(entry.view().home.clone(), &self.node_id);
        self.check_quota(entry.view().size(), view.size())?;
        let bytes = change.len();
        let seq = self
            .persist(entry, actor, &view, change, actors, audit, None)
            .await?;
        state.chunks.insert(seq);
        let view = self.with_names(&scratch, view).await;
        state.doc = *scratch;
        *entry.view.write() = Arc::new(view);
        Ok(bytes)
    }
}

pub(super) fn parse_heads(doc: &Automerge, base: &[String]) -> Result<Vec<ChangeHash>, ApiError> {
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
pub(super) fn new_item_id() -> String {
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

pub(super) fn unix_secs() -> i64 {
    now_ms() / 1000
}
