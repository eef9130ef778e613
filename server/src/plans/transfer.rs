//! The plan service's side of moving a plan's home between nodes: making
//! the roster say whose users its people are, taking a plan over from its
//! old home, moving a plan's home, and forgetting a plan given away. The
//! exchange between nodes is `federation::transfer`.

use super::decode::load_document;
use super::{Actor, PlanEntry, PlanView, Plans, RequestMeta};
use crate::db::{now_ms, DbConnection, StoreError};
use crate::error::ApiError;
use crate::store::audit::AuditRecord;
use crate::store::plans as stored;
use std::collections::BTreeMap;
use std::sync::Arc;
use wrapsync_shared::incoming::check_incoming;
use wrapsync_shared::ops::{Editor, Op};
use wrapsync_shared::roles::Role;

/// Storage work that goes in the same transaction as a move.
pub type AlsoWrite = Box<dyn FnOnce(&mut DbConnection) -> Result<(), StoreError> + Send>;

impl Plans {
    /// Names this node's users on the roster as `name@node`: a plain name
    /// means a user of the plan's home, and the home is about to change.
    /// Means the same here before and after, so it is safe to do early.
    pub async fn qualify_roster(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        meta: RequestMeta,
    ) -> Result<(), ApiError> {
        let ops: Vec<Op> = entry.view().plan["team"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|member| {
                let user = member["user"].as_str().filter(|u| !u.contains('@'))?;
                let id = member["id"].as_str()?;
                Some(Op {
                    op: "replace".into(),
                    path: format!("/team/{id}/user"),
                    value: Some(serde_json::Value::String(format!(
                        "{user}@{}",
                        self.node_id
                    ))),
                    from: None,
                })
            })
            .collect();
        if !ops.is_empty() {
            self.apply(entry, actor, None, ops, meta).await?;
        }
        Ok(())
    }

    /// The whole plan with its history, as Automerge saves it.
    pub async fn saved(&self, entry: &PlanEntry) -> Result<Vec<u8>, ApiError> {
        let mut state = entry.state.lock().await;
        self.catch_up(entry, &mut state).await?;
        Ok(state.doc.save())
    }

    /// At the new home: takes the plan `document` (its whole history) from
    /// its old home `from`, merged into the replica held here if any, held
    /// to the schema and the no-removal rule like any change from a home,
    /// its authors attributed as `from` vouches (`authors`). Then the plan
    /// is homed here, with `also` in the same write.
    #[allow(clippy::too_many_arguments)]
    pub async fn take_over(
        &self,
        plan_id: &str,
        from: &str,
        authors: &BTreeMap<String, String>,
        document: &[u8],
        audit: AuditRecord,
        also: AlsoWrite,
    ) -> Result<Arc<PlanView>, ApiError> {
        let incoming = load_document(document, self.bounds)?;
        let home_editor = Editor {
            role: Role::Supervisor,
            member_id: None,
        };
        let entry = match self.get(plan_id).await? {
            Some(entry) => entry,
            None => {
                check_incoming(&incoming, &[], &home_editor).map_err(ApiError::RefusedChanges)?;
                self.bind_home_authors(from, authors, &incoming, &[])
                    .await?;
                // Stored as the old home's replica first: if this node stops
                // before it is homed here, the old home's retry finds it so.
                match self
                    .store_new(
                        plan_id.to_string(),
                        incoming.clone(),
                        None,
                        Some(from.to_string()),
                        Vec::new(),
                        audit.clone(),
                    )
                    .await
                {
                    Ok(_) => return self.rehome_by_id(plan_id, None, audit, also).await,
                    // The old home's first push of the plan landed
                    // meanwhile: merged into that below.
                    Err(ApiError::Contended) => {
                        self.get(plan_id).await?.ok_or(ApiError::Contended)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        super::retrying(|| async {
            let mut state = entry.state.lock().await;
            self.catch_up(&entry, &mut state).await?;
            let before = state.doc.get_heads();
            let mut scratch = Box::new(state.doc.clone());
            scratch.merge(&mut incoming.clone()).map_err(|e| {
                super::decode::unreadable(
                    &e,
                    ApiError::MalformedDocument,
                    "the plan cannot be merged with this node's copy",
                )
            })?;
            if !scratch.get_changes(&before).is_empty() {
                check_incoming(&scratch, &before, &home_editor)
                    .map_err(ApiError::RefusedChanges)?;
                self.bind_home_authors(from, authors, &scratch, &before)
                    .await?;
                self.keep_changes(
                    &entry,
                    &mut state,
                    scratch,
                    &before,
                    None,
                    Vec::new(),
                    audit.clone(),
                )
                .await?;
            }
            Ok(())
        })
        .await?;
        self.rehome(&entry, None, audit, also).await
    }

    async fn rehome_by_id(
        &self,
        plan_id: &str,
        home: Option<String>,
        audit: AuditRecord,
        also: AlsoWrite,
    ) -> Result<Arc<PlanView>, ApiError> {
        let entry = self.get(plan_id).await?.ok_or(ApiError::NotFound)?;
        self.rehome(&entry, home, audit, also).await
    }

    /// Moves the plan's home (`None`: this node), so its roster is read
    /// anew (who here is on the team), with `audit` and `also` in the same
    /// write. Done again on the newer plan if another process wrote it
    /// meanwhile (`also` runs only with the write that commits).
    pub async fn rehome(
        &self,
        entry: &PlanEntry,
        home: Option<String>,
        audit: AuditRecord,
        also: AlsoWrite,
    ) -> Result<Arc<PlanView>, ApiError> {
        let also = Arc::new(parking_lot::Mutex::new(Some(also)));
        let (view, state) = super::retrying(|| {
            let (home, audit, also) = (home.clone(), audit.clone(), also.clone());
            async move {
                let mut state = entry.state.lock().await;
                self.catch_up(entry, &mut state).await?;
                let view = PlanView::render(&entry.id, &state.doc, &*self.actor_names().await)
                    .localized(home.clone(), &self.node_id);
                let (id, members) = (entry.id.clone(), view.members.clone());
                let expected = entry.seen.lock().clone();
                let revision = stored::Revision {
                    heads: expected.heads.clone(),
                    home: home.clone(),
                };
                self.writer
                    .write(move |conn| {
                        stored::claim(conn, &id, &expected)?;
                        stored::set_home(conn, &id, home.as_deref(), &members)?;
                        // In the change log: the outbox sends the plan on
                        // from its new home, and phones see their plan
                        // lists change.
                        stored::record_change(conn, &id, now_ms())?;
                        crate::store::audit::insert_audit(conn, &[audit])?;
                        // Taken only once the claim holds, so a retry
                        // still has it; a later failure fails the move.
                        match also.lock().take() {
                            Some(also) => also(conn),
                            None => Err(StoreError::Connection(
                                "a move's writes were rolled back once already".into(),
                            )),
                        }
                    })
                    .await?;
                *entry.seen.lock() = revision;
                Ok((view, state))
            }
        })
        .await?;
        let view = Arc::new(view);
        *entry.view.write() = view.clone();
        drop(state);
        let _ = self.changed.send(());
        Ok(view)
    }

    /// Deletes everything this node holds of a plan but its audit trail and
    /// its moves (an old home that keeps no copy), with `audit` and `also`
    /// in the same write.
    pub async fn forget(
        &self,
        plan_id: &str,
        audit: AuditRecord,
        also: AlsoWrite,
    ) -> Result<(), ApiError> {
        let entry = self.get(plan_id).await?;
        let guard = match &entry {
            Some(entry) => Some(entry.state.lock().await),
            None => None,
        };
        let id = plan_id.to_string();
        self.writer
            .write(move |conn| {
                stored::forget_plan(conn, &id)?;
                crate::store::audit::insert_audit(conn, &[audit])?;
                also(conn)
            })
            .await?;
        // Gone from disk before it is gone from view: once the plan
        // answers 404 here, no old log frame holds it either.
        if !self.writer.erase_log().await {
            tracing::warn!("the log still holds the forgotten plan until a later checkpoint");
        }
        self.cache.lock().pop(plan_id);
        self.sync_states.lock().forget_plan(plan_id);
        drop(guard);
        let _ = self.changed.send(());
        Ok(())
    }
}
