//! Rounds with peer nodes: a peer's people's changes to a plan homed here,
//! the home's changes to a replica here (or a plan it has just shared),
//! and this node's side of pushing a plan to a peer.

use super::decode::{check_state_bounds, decode_message, unreadable};
use super::protocol::{push_step, receive_round, PushInput, Received};
use super::size::check_added_size;
use super::{PlanEntry, Plans, RequestMeta};
use crate::audit::{Action, Audit, Principal};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::store::plans::SyncStateKey;
use automerge::sync::{self, SyncDoc};
use automerge::Automerge;
use std::collections::{BTreeMap, HashMap};
use wrapsync_shared::incoming::{check_home_authority, check_incoming, check_new_item_ids};
use wrapsync_shared::ops::Editor;

/// Checks each change of `scratch` after `before` against its author's
/// role: all at once when one person made them, else one by one in causal
/// order from `doc` (the copy before them).
pub(super) fn check_by_author(
    doc: &Automerge,
    scratch: &Automerge,
    before: &[automerge::ChangeHash],
    editors: &HashMap<automerge::ActorId, Editor>,
) -> Result<(), ApiError> {
    let changes = scratch.get_changes(before);
    let refused = |e| ApiError::RefusedChanges(e);
    check_new_item_ids(scratch, before).map_err(refused)?;
    if editors.len() == 1 {
        if let Some(editor) = editors.values().next() {
            return check_incoming(scratch, before, editor).map_err(refused);
        }
    }
    let mut stepwise = doc.clone();
    for change in changes {
        let editor = editors
            .get(change.actor_id())
            .ok_or_else(|| ApiError::Internal("a change without its author".into()))?;
        let prev = stepwise.get_heads();
        stepwise.apply_changes([change.clone()]).map_err(|e| {
            unreadable(
                &e,
                ApiError::MalformedSync,
                "the changes in this message could not be applied",
            )
        })?;
        check_incoming(&stepwise, &prev, editor).map_err(refused)?;
    }
    Ok(())
}

/// Who sent a peer round's changes, and so how they are checked.
#[derive(Clone, Copy)]
enum Sender<'a> {
    /// The peer's own people on a plan homed here, by the peer's signed
    /// word (actor → username): each must be on the team as `name@peer`,
    /// and each change is checked against that member's role.
    Member(&'a BTreeMap<String, String>),
    /// The plan's home: it holds the family's roster and checked its own
    /// people's roles, so its changes are held to the schema and the
    /// no-removal rule, and attributed as it vouches.
    Home(&'a BTreeMap<String, String>),
}

/// How the home's changes are checked at a replica (see [`Sender::Home`]).
const HOME_EDITOR: Editor = Editor {
    role: wrapsync_shared::roles::Role::Supervisor,
    member_id: None,
};

impl Plans {
    /// A round with `peer` about a plan homed at `peer`: the replica here
    /// (`entry`), or, with no entry yet, a plan the home has just shared
    /// with this node (created here on its first changes). The home's
    /// changes are held to the schema and the no-removal rule, as the home
    /// holds the family's roster and checked its own people's roles.
    pub async fn sync_from_home(
        &self,
        entry: Option<&PlanEntry>,
        plan_id: &str,
        peer: &str,
        authors: &BTreeMap<String, String>,
        message: Option<&[u8]>,
        meta: RequestMeta,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let route = Some(self.message_ops.for_peer());
        let message = decode_message(message, self.bounds, route).await?;
        let Some(entry) = entry else {
            // First contact: nothing is kept until the plan itself arrives.
            // The home's first message describes the whole plan there, so
            // its size here says nothing yet: a document's limit does.
            check_state_bounds(&Automerge::new(), message.as_ref(), self.bounds.ops / 2)?;
            let retry = message.clone();
            let mut doc = Automerge::new();
            let mut state = sync::State::new();
            return match receive_round(&mut doc, &mut state, message)? {
                Received::Nothing => Ok(doc
                    .generate_sync_message(&mut state)
                    .map(sync::Message::encode)),
                Received::WaitingForDependencies(reply) => Ok(reply),
                Received::Changes(scratch) => {
                    check_added_size(&scratch, &[], self.bounds.bytes)?;
                    check_incoming(&scratch, &[], &HOME_EDITOR)
                        .map_err(ApiError::RefusedChanges)?;
                    self.bind_home_authors(peer, authors, &scratch, &[]).await?;
                    let audit = Audit::new(Principal::peer(peer), Action::PeerReplicate)
                        .plan(plan_id)
                        .at(&meta);
                    let stored = self
                        .store_new(
                            plan_id.to_string(),
                            *scratch,
                            None,
                            Some(peer.to_string()),
                            Vec::new(),
                            audit,
                        )
                        .await;
                    if let Err(ApiError::Contended) = stored {
                        // The same plan arrived meanwhile (its handover, or
                        // a round through another process): a round with it.
                        let entry = self.get(plan_id).await?.ok_or(ApiError::Contended)?;
                        return self
                            .peer_round(&entry, peer, Sender::Home(authors), retry, meta)
                            .await;
                    }
                    stored?;
                    let entry = self.get(plan_id).await?.ok_or(ApiError::NotFound)?;
                    let guard = entry.state.lock().await;
                    let reply = guard
                        .doc
                        .generate_sync_message(&mut state)
                        .map(sync::Message::encode);
                    drop(guard);
                    self.keep_sync_state(&SyncStateKey::PeerHere(peer.to_string()), plan_id, state)
                        .await;
                    Ok(reply)
                }
            };
        };
        self.peer_round(entry, peer, Sender::Home(authors), message, meta)
            .await
    }

    /// After a peer's changes: if the peer holds everything this node now
    /// holds of the plan (its heads, as its message says, are ours), it is
    /// recorded as confirmed, so this node does not push the peer's own
    /// changes back to it.
    fn confirm_if_level(
        &self,
        entry: &PlanEntry,
        peer: &str,
        doc: &Automerge,
        sync_state: &sync::State,
    ) {
        let mut ours = doc.get_heads();
        ours.sort();
        let mut theirs = sync_state.their_heads.clone().unwrap_or_default();
        theirs.sort();
        if ours != theirs {
            return;
        }
        let heads: Vec<String> = ours.iter().map(|h| h.to_string()).collect();
        let (peer, plan, heads) = (peer.to_string(), entry.id.clone(), heads.join(","));
        self.writer.write_detached(move |conn| {
            crate::store::plans::set_peer_heads(conn, &peer, &plan, &heads, now_ms())
        });
    }

    /// This node's side of pushing a plan to `peer`: round 0 starts a
    /// session; later rounds take the peer's last reply (`None`: it had
    /// nothing to say). Answers this node's next message. A session starts
    /// assuming nothing it sent before arrived, since a failed request ends
    /// a session midway. A replica holder sending changes is refused:
    /// replicas are read-only for now.
    pub async fn outbound_round(
        &self,
        entry: &PlanEntry,
        peer: &str,
        round: usize,
        reply: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let input = match (round, reply) {
            (0, _) => PushInput::Start,
            (_, Some(reply)) => {
                let route = Some(self.message_ops.for_peer());
                match decode_message(Some(reply), self.bounds, route).await? {
                    Some(message) => PushInput::Reply(message),
                    None => PushInput::Quiet,
                }
            }
            (_, None) => PushInput::Quiet,
        };
        let device = SyncStateKey::PeerThere(peer.to_string());
        let mut state = entry.state.lock().await;
        self.catch_up(entry, &mut state).await?;
        if let PushInput::Reply(reply) = &input {
            check_state_bounds(&state.doc, Some(reply), 0)?;
        }
        let mut sync_state = self.sync_state(&device, &entry.id).await?;
        let message = push_step(&mut state.doc, &mut sync_state, input)?.map(sync::Message::encode);
        drop(state);
        self.keep_sync_state(&device, &entry.id, sync_state).await;
        Ok(message)
    }

    /// One sync round with a peer node holding a live consent grant for a
    /// plan homed here. Changes it sends were made by its users on its
    /// replica: each must be vouched for (`authors`: actor → the peer's
    /// username), its author must be on the plan's team as `name@peer`, and
    /// each change is checked against that member's role, in causal order.
    /// Attribution is kept (the actor is bound to `name@peer`), so the
    /// history says who did what across nodes.
    pub async fn sync_peer(
        &self,
        entry: &PlanEntry,
        peer: &str,
        authors: &BTreeMap<String, String>,
        message: Option<&[u8]>,
        meta: RequestMeta,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let route = Some(self.message_ops.for_peer());
        let message = decode_message(message, self.bounds, route).await?;
        self.peer_round(entry, peer, Sender::Member(authors), message, meta)
            .await
    }

    /// [`Plans::peer_round_once`] until no other process wrote the plan
    /// between its catching up and its commit.
    async fn peer_round(
        &self,
        entry: &PlanEntry,
        peer: &str,
        sender: Sender<'_>,
        message: Option<sync::Message>,
        meta: RequestMeta,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        super::retrying(|| self.peer_round_once(entry, peer, sender, message.clone(), &meta)).await
    }

    /// One round with `peer` for a plan this node holds: its changes are
    /// checked as `sender` says, kept with the peer's signed word for who
    /// made them, and answered with this node's next message. Every round
    /// is audited.
    async fn peer_round_once(
        &self,
        entry: &PlanEntry,
        peer: &str,
        sender: Sender<'_>,
        message: Option<sync::Message>,
        meta: &RequestMeta,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let device = SyncStateKey::PeerHere(peer.to_string());
        let mut state = entry.state.lock().await;
        self.catch_up(entry, &mut state).await?;
        check_state_bounds(&state.doc, message.as_ref(), 0)?;
        let mut sync_state = self.sync_state(&device, &entry.id).await?;
        let before = state.doc.get_heads();
        match receive_round(&mut state.doc, &mut sync_state, message)? {
            Received::Nothing => {}
            Received::WaitingForDependencies(reply) => {
                drop(state);
                self.keep_sync_state(&device, &entry.id, sync_state).await;
                return Ok(reply);
            }
            Received::Changes(scratch) => {
                check_added_size(&scratch, &before, self.bounds.bytes)?;
                let audit = match sender {
                    Sender::Member(authors) => {
                        let team = entry.view().plan["team"].clone();
                        let editors = self
                            .peer_authors(peer, authors, &team, &scratch, &before)
                            .await?;
                        check_by_author(&state.doc, &scratch, &before, &editors)?;
                        // A peer's members never change the roster or the
                        // consent record of a plan homed here.
                        check_home_authority(&scratch, &before).map_err(super::home_authority)?;
                        let summary = format!(
                            "{} changes from node {peer}",
                            scratch.get_changes(&before).len()
                        );
                        Audit::new(Principal::peer(peer), Action::PeerSync)
                            .plan(&entry.id)
                            .detail(summary)
                            .at(meta)
                    }
                    Sender::Home(authors) => {
                        check_incoming(&scratch, &before, &HOME_EDITOR)
                            .map_err(ApiError::RefusedChanges)?;
                        self.bind_home_authors(peer, authors, &scratch, &before)
                            .await?;
                        Audit::new(Principal::peer(peer), Action::PeerReplicate)
                            .plan(&entry.id)
                            .at(meta)
                    }
                };
                self.keep_changes(entry, &mut state, scratch, &before, None, Vec::new(), audit)
                    .await?;
                self.confirm_if_level(entry, peer, &state.doc, &sync_state);
            }
        }
        let reply = state.doc.generate_sync_message(&mut sync_state);
        drop(state);
        self.writer.audit(
            Audit::new(Principal::peer(peer), Action::PeerSync)
                .plan(&entry.id)
                .at(meta),
        );
        self.keep_sync_state(&device, &entry.id, sync_state).await;
        Ok(reply.map(sync::Message::encode))
    }
}
