//! A device's sync round with this node (`/v1/plans/{id}/sync`,
//! `/v1/sync`): the changes it sends are applied to a scratch copy, their
//! actors checked against the sender, what they did checked against the
//! sender's role and the schema; only then are they stored and merged. A
//! refused round changes nothing, not even the sync state.

use super::decode::{check_state_bounds, decode_message};
use super::protocol::{receive_round, Received};
use super::size::check_added_size;
use super::{Actor, PlanEntry, Plans, RequestMeta};
use crate::audit::{Action, Audit};
use crate::error::ApiError;
use crate::store::plans::SyncStateKey;
use automerge::sync::{self, SyncDoc};
use automerge::ReadDoc;
use wrapsync_shared::incoming::{
    check_grant_records, check_home_authority, check_incoming, check_new_item_ids,
};
use wrapsync_shared::ops::Editor;
use wrapsync_shared::plan::PlanError;

/// A device's way into syncing one plan, given only to a role that sees
/// all of it (see [`Plans::device_sync`]): every round and every catching
/// up goes through it.
pub struct DeviceSync<'a> {
    plans: &'a Plans,
    entry: &'a PlanEntry,
    actor: &'a Actor,
}

impl DeviceSync<'_> {
    /// One sync round for `device`: takes the device's message, answers the
    /// node's (or `None` when the two are in sync).
    pub async fn round(
        &self,
        device: &SyncStateKey,
        message: Option<&[u8]>,
        meta: RequestMeta,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let (plans, entry, actor) = (self.plans, self.entry, self.actor);
        plans.sync(entry, actor, device, message, meta).await
    }

    /// The changes after `have` and the heads now (see
    /// [`Plans::changes_after`]).
    pub async fn changes_after(
        &self,
        have: &[automerge::ChangeHash],
        meta: RequestMeta,
    ) -> Result<(Option<Vec<u8>>, Vec<String>), ApiError> {
        let (plans, entry, actor) = (self.plans, self.entry, self.actor);
        plans.changes_after(entry, actor, have, meta).await
    }
}

impl Plans {
    /// The one way into a device's sync of `entry`: an Automerge document
    /// cannot be synced in part, so a role that does not see every section
    /// is refused (`403`) and reads the plan through GET instead.
    pub fn device_sync<'a>(
        &'a self,
        entry: &'a PlanEntry,
        actor: &'a Actor,
    ) -> Result<DeviceSync<'a>, ApiError> {
        let role = entry.view().role_of(actor).ok_or(ApiError::NotFound)?;
        if !role.hidden_sections().is_empty() {
            return Err(ApiError::Forbidden(format!(
                "a {role} sees part of this plan; read it with GET /v1/plans/{{id}}"
            )));
        }
        Ok(DeviceSync {
            plans: self,
            entry,
            actor,
        })
    }

    /// [`DeviceSync::round`].
    async fn sync(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        device: &SyncStateKey,
        message: Option<&[u8]>,
        meta: RequestMeta,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let route = Some(self.message_ops.for_role(actor.role));
        let message = decode_message(message, self.bounds, route).await?;
        if message.as_ref().is_some_and(|m| !m.changes.is_empty()) {
            self.may_write(actor)?;
        }
        super::retrying(|| self.sync_once(entry, actor, device, message.clone(), &meta)).await
    }

    /// [`Plans::sync`], once, on the document as caught up now.
    async fn sync_once(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        device: &SyncStateKey,
        message: Option<sync::Message>,
        meta: &RequestMeta,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let mut state = entry.state.lock().await;
        self.catch_up(entry, &mut state).await?;
        let view = entry.view();
        let editor = Editor {
            role: view.role_of(actor).ok_or(ApiError::NotFound)?,
            member_id: view.member(&actor.username).map(|m| m.member_id.clone()),
        };
        check_state_bounds(&state.doc, message.as_ref(), 0)?;
        let mut sync_state = self.sync_state(device, &entry.id).await?;
        let before = state.doc.get_heads();
        let mut stored_changes = false;
        {
            match receive_round(&mut state.doc, &mut sync_state, message)? {
                Received::Nothing => {}
                Received::Changes(scratch) => {
                    check_added_size(&scratch, &before, self.bounds.bytes)?;
                    if view.editing_role_of(actor).is_none() {
                        return Err(super::replica_of_others());
                    }
                    let actors = self.check_actors(actor, &scratch, &before).await?;
                    check_incoming(&scratch, &before, &editor)
                        .and_then(|()| check_new_item_ids(&scratch, &before))
                        .map_err(ApiError::RefusedChanges)?;
                    if super::outside_home(&view, actor) {
                        check_home_authority(&scratch, &before).map_err(super::home_authority)?;
                    }
                    check_grant_records(&scratch, &before, &*self.known_nodes)
                        .map_err(super::grant_record)?;
                    let summary = format!("{} changes by sync", scratch.get_changes(&before).len());
                    let audit = Audit::new(actor, Action::PlanSync)
                        .plan(&entry.id)
                        .detail(summary)
                        .at(meta);
                    let bytes = self
                        .keep_changes(
                            entry,
                            &mut state,
                            scratch,
                            &before,
                            Some(actor),
                            actors,
                            audit,
                        )
                        .await?;
                    self.wrote(actor, bytes);
                    stored_changes = true;
                }
                Received::WaitingForDependencies(reply) => {
                    drop(state);
                    self.writer.audit(
                        Audit::new(actor, Action::PlanSync)
                            .plan(&entry.id)
                            .detail("changes wait for others; asked for them")
                            .at(meta),
                    );
                    self.keep_sync_state(device, &entry.id, sync_state).await;
                    return Ok(reply);
                }
            }
        }
        if !stored_changes {
            // A round that stores nothing still reads the plan: audited.
            self.writer
                .audit(Audit::new(actor, Action::PlanSync).plan(&entry.id).at(meta));
        }
        let reply = state
            .doc
            .generate_sync_message(&mut sync_state)
            .map(sync::Message::encode);
        drop(state);
        self.keep_sync_state(device, &entry.id, sync_state).await;
        Ok(reply)
    }

    /// The changes after `have` (the whole document when `have` is empty)
    /// and the heads now: a device with nothing to send catches up without
    /// a sync state or a round trip. Heads this node has never seen get
    /// `409`: the device holds changes of its own and must sync them.
    async fn changes_after(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        have: &[automerge::ChangeHash],
        meta: RequestMeta,
    ) -> Result<(Option<Vec<u8>>, Vec<String>), ApiError> {
        let mut state = entry.state.lock().await;
        self.catch_up(entry, &mut state).await?;
        if let Some(unknown) = have
            .iter()
            .find(|h| state.doc.get_change_by_hash(h).is_none())
        {
            return Err(ApiError::Plan {
                error: PlanError::UnknownVersion(unknown.to_string()),
                op_index: None,
            });
        }
        let changes = if have.is_empty() {
            state.doc.save()
        } else {
            state.doc.save_after(have)
        };
        drop(state);
        self.writer.audit(
            Audit::new(actor, Action::PlanSync)
                .plan(&entry.id)
                .at(&meta),
        );
        let changes = (!changes.is_empty()).then_some(changes);
        Ok((changes, entry.view().version.clone()))
    }
}
