//! The Automerge sync protocol between a device and this node, one round per
//! request. The node keeps a sync state per (device, plan) so a round resends
//! nothing the device has. Changes a device sends are applied to a scratch
//! copy, their actors checked against the sender, what they did checked
//! against the sender's role and the schema; only then are they stored and
//! merged. A refused round changes nothing, not even the sync state.

use super::size::{
    check_added_size, check_bloom, check_sync_state_bounds, count_incoming, Bounds, RouteOps,
};
use super::{audit_record, peer_audit, Actor, PlanEntry, PlanView, Plans, RequestMeta};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::store::plans as stored;
use crate::store::users::actor_owners;
use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ReadDoc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use wrapsync_shared::incoming::{
    check_grant_records, check_home_authority, check_incoming, check_new_item_ids,
};
use wrapsync_shared::ops::Editor;
use wrapsync_shared::plan::PlanError;

/// Decodes a sync message; hostile bytes get a clear error, and a panic in
/// the decoder is caught rather than taking a worker down.
/// The changes it carries are checked against `bounds` first, and the
/// Bloom filters of what the sender has (see `size`). Handlers use
/// [`decode_for`]; this is the fuzz targets' and tests' way in.
#[cfg(any(test, feature = "fuzz"))]
pub(crate) fn decode(bytes: &[u8], bounds: Bounds) -> Result<sync::Message, ApiError> {
    decode_for(bytes, bounds, None)
}

/// [`decode`], the changes' operations also held to what the route allows
/// the sender in one message (`413 message-too-large`): counted from the
/// chunks' headers and columns, so a refusal costs milliseconds whatever
/// the message declares.
pub(crate) fn decode_for(
    bytes: &[u8],
    bounds: Bounds,
    route: Option<RouteOps>,
) -> Result<sync::Message, ApiError> {
    // The size is capped by `max_sync_bytes` before the bytes arrive here.
    if bytes.is_empty() {
        return Err(ApiError::MalformedSync("empty sync message".into()));
    }
    match catch_unwind(|| sync::Message::decode(bytes)) {
        Ok(Ok(message)) => {
            count_incoming(
                message.changes.iter(),
                bounds,
                route,
                ApiError::MalformedSync,
            )?;
            for have in &message.have {
                check_bloom(&have.bloom.to_bytes())?;
            }
            Ok(message)
        }
        Ok(Err(e)) => Err(unreadable(
            &e,
            ApiError::MalformedSync,
            "undecodable sync message",
        )),
        Err(_) => Err(ApiError::MalformedSync("undecodable sync message".into())),
    }
}

/// The operations a sync message's changes declare, held to `route`
/// (and `bounds`): what a batch adds up before running any round.
pub(crate) fn message_ops(
    bytes: &[u8],
    bounds: Bounds,
    route: Option<RouteOps>,
) -> Result<u64, ApiError> {
    if bytes.is_empty() {
        return Ok(0);
    }
    match catch_unwind(|| sync::Message::decode(bytes)) {
        Ok(Ok(message)) => count_incoming(
            message.changes.iter(),
            bounds,
            route,
            ApiError::MalformedSync,
        ),
        Ok(Err(e)) => Err(unreadable(
            &e,
            ApiError::MalformedSync,
            "undecodable sync message",
        )),
        Err(_) => Err(ApiError::MalformedSync("undecodable sync message".into())),
    }
}

/// How many changes `doc` holds: what bounds a sync message's description
/// of its sender (`size::check_sync_state_bounds`). Counted only for a
/// message past the slack.
fn change_count(doc: &Automerge) -> u64 {
    doc.get_changes_meta(&[]).len() as u64
}

/// Checks what `message` would leave in the sync state against the size
/// of the plan `doc` (or, with `at_least`, a plan of that many changes).
pub(crate) fn check_state_bounds(
    doc: &Automerge,
    message: Option<&sync::Message>,
    at_least: u64,
) -> Result<(), ApiError> {
    match message {
        Some(message) => check_sync_state_bounds(message, || change_count(doc).max(at_least)),
        None => Ok(()),
    }
}

/// Automerge's error in our words (`what`) for the client; its own text,
/// which names the library's internals, goes to the log.
pub(crate) fn unreadable(
    e: &dyn std::fmt::Display,
    kind: fn(String) -> ApiError,
    what: &str,
) -> ApiError {
    tracing::debug!(error = %e, "{what}");
    kind(what.to_string())
}

/// Loads a whole saved document; like `decode`, never panics on bad bytes,
/// and refuses one past `bounds` before loading it (see `size`).
pub(crate) fn load_document(bytes: &[u8], bounds: Bounds) -> Result<Automerge, ApiError> {
    load_document_for(bytes, bounds, None)
}

/// [`load_document`], its operations also held to `route` (an import).
pub(crate) fn load_document_for(
    bytes: &[u8],
    bounds: Bounds,
    route: Option<RouteOps>,
) -> Result<Automerge, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::MalformedDocument("empty document".into()));
    }
    count_incoming([bytes], bounds, route, ApiError::MalformedDocument)?;
    match catch_unwind(|| Automerge::load(bytes)) {
        Ok(Ok(doc)) => {
            check_added_size(&doc, &[], bounds.bytes)?;
            Ok(doc)
        }
        Ok(Err(e)) => Err(unreadable(
            &e,
            ApiError::MalformedDocument,
            "undecodable document",
        )),
        Err(_) => Err(ApiError::MalformedDocument("undecodable document".into())),
    }
}

/// `doc.receive_sync_message`, with a panic inside Automerge turned into an
/// error.
fn receive(
    doc: &mut Automerge,
    state: &mut sync::State,
    message: sync::Message,
) -> Result<(), ApiError> {
    match catch_unwind(AssertUnwindSafe(|| {
        doc.receive_sync_message(state, message)
    })) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(unreadable(
            &e,
            ApiError::MalformedSync,
            "the changes in this message could not be applied",
        )),
        Err(_) => Err(ApiError::MalformedSync(
            "the changes in this message could not be applied".into(),
        )),
    }
}

/// Each request is answered once and the node cannot know whether its
/// answer arrived (a phone in a car loses replies): it must not assume the
/// device has what it sent before. Left to itself the protocol would never
/// resend a change it counted as sent, and the device, holding later
/// changes that depend on it, would ask for it forever. What the device
/// has is in its message each round, so nothing is resent needlessly.
fn forget_unacknowledged(state: &mut sync::State) {
    state.sent_hashes.clear();
    state.in_flight = false;
}

/// What the pushing node has in hand for its next step.
pub(crate) enum PushInput {
    /// A new session: what earlier sessions sent is forgotten, since a
    /// failed request ends one midway.
    Start,
    /// The peer's reply (its changes are ignored: changes between nodes
    /// are taken only from requests their sender signed, and the peer sends
    /// its own in its own pushes).
    Reply(sync::Message),
    /// The peer answered with nothing to say.
    Quiet,
}

/// The pushing node's side of one round with a peer: answers its next
/// message.
pub(crate) fn push_step(
    doc: &mut Automerge,
    state: &mut sync::State,
    input: PushInput,
) -> Result<Option<sync::Message>, ApiError> {
    match input {
        PushInput::Start => forget_unacknowledged(state),
        PushInput::Reply(mut reply) => {
            reply.changes = sync::ChunkList::empty();
            receive(doc, state, reply)?;
        }
        PushInput::Quiet => {}
    }
    Ok(doc.generate_sync_message(state))
}

/// A push session is over once, after the first exchange, this node's next
/// message carries no changes: the peer has told it what it lacks, and it
/// lacks nothing of this node's.
pub fn push_done(round: usize, next: Option<&sync::Message>) -> bool {
    round > 0 && next.is_none_or(|m| m.changes.is_empty())
}

/// What a device's message did to the node's copy of a plan.
pub(crate) enum Received {
    /// Nothing new (sync state only, kept in `state`).
    Nothing,
    /// New changes, applied to this scratch copy only: the caller checks
    /// and keeps them, or refuses the round (and then keeps neither the copy
    /// nor the sync state).
    Changes(Box<Automerge>),
    /// Changes that wait for ones the node lacks, which the device thinks
    /// it sent (its bloom filter check can wrongly say the node has them):
    /// the reply asks for them and sets `SYNC_RESET` so the device resends
    /// what it counted as sent. The waiting changes are not kept.
    WaitingForDependencies(Option<Vec<u8>>),
}

/// The node's side of receiving a device's message, without storage: the
/// one place the protocol's rules live, used by `Plans::sync` and by the
/// seeded simulation in `plans::sim`. `state` is updated unless the round
/// brings changes (then the caller adopts `state` only if it keeps them:
/// see `Plans::sync`).
pub(crate) fn receive_round(
    doc: &mut Automerge,
    state: &mut sync::State,
    message: Option<sync::Message>,
) -> Result<Received, ApiError> {
    forget_unacknowledged(state);
    let Some(message) = message else {
        return Ok(Received::Nothing);
    };
    if message.changes.is_empty() {
        receive(doc, state, message)?;
        return Ok(Received::Nothing);
    }
    let before = doc.get_heads();
    let mut scratch = doc.clone();
    let mut scratch_state = state.clone();
    receive(&mut scratch, &mut scratch_state, message)?;
    if scratch.get_heads() != before {
        *state = scratch_state;
        return Ok(Received::Changes(Box::new(scratch)));
    }
    if !scratch.get_missing_deps(&[]).is_empty() {
        let reply = scratch
            .generate_sync_message(&mut scratch_state)
            .map(|mut message| {
                let mut flags = message.flags.unwrap_or_default();
                flags.set(sync::MessageFlags::SYNC_RESET);
                flags.set(sync::MessageFlags::SUPPORTS_SYNC_RESET);
                message.flags = Some(flags);
                message.encode()
            });
        *state = scratch_state;
        return Ok(Received::WaitingForDependencies(reply));
    }
    *state = scratch_state;
    Ok(Received::Nothing)
}

/// Checks each change of `scratch` after `before` against its author's
/// role: all at once when one person made them, else one by one in causal
/// order from `doc` (the copy before them).
fn check_by_author(
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

/// The account a plan's `home` vouches an actor's changes to (`name`, as it
/// signed it): its own people as `name@home`, a third node's as they are;
/// `None` for what it may not speak for (this node's people, malformed
/// names).
fn vouched_by_home(name: &str, home: &str, this_node: &str) -> Option<String> {
    match name.split_once('@') {
        None if !name.is_empty() => Some(format!("{name}@{home}")),
        Some((person, node))
            if !person.is_empty()
                && !node.is_empty()
                && !node.contains('@')
                && node != this_node =>
        {
            Some(name.to_string())
        }
        _ => None,
    }
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
        let message = message
            .map(|m| decode_for(m, self.bounds, route))
            .transpose()?;
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
                    let audit =
                        super::peer_audit(peer, Some(plan_id), "peer.replicate", "ok", None, &meta);
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
                    self.keep_sync_state(&format!("peer:{peer}"), plan_id, state)
                        .await;
                    Ok(reply)
                }
            };
        };
        self.peer_round(entry, peer, Sender::Home(authors), message, meta)
            .await
    }

    /// Which messages of one batch may run: each one's operations are
    /// counted from its headers and columns (milliseconds), and once they
    /// add up past `total`, the rest get `429` (their sender sends them
    /// again later); one past `route` alone is left to its round, which
    /// refuses it as cheaply. Nothing is decoded for good here.
    fn batch_admission<'a>(
        &self,
        messages: impl IntoIterator<Item = Option<&'a [u8]>>,
        route: RouteOps,
        total: u64,
    ) -> Vec<Result<(), ApiError>> {
        let counted: Vec<Option<u64>> = messages
            .into_iter()
            .map(|message| match message {
                None => Some(0),
                Some(bytes) => message_ops(bytes, self.bounds, Some(route)).ok(),
            })
            .collect();
        super::size::admit_batch(&counted, total)
            .into_iter()
            .map(|admitted| {
                if admitted {
                    Ok(())
                } else {
                    Err(ApiError::RateLimited(1))
                }
            })
            .collect()
    }

    /// [`Plans::batch_admission`] for a peer's batch
    /// (`max_peer_sync_ops` each, `max_peer_batch_ops` in all).
    pub fn peer_batch_admission<'a>(
        &self,
        messages: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Vec<Result<(), ApiError>> {
        let ops = self.message_ops;
        self.batch_admission(messages, ops.for_peer(), ops.peer_batch)
    }

    /// [`Plans::batch_admission`] for a device's batch (`/v1/sync`): the
    /// role's limit on one message each, twice that in all.
    pub fn device_batch_admission<'a>(
        &self,
        actor: &Actor,
        messages: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Vec<Result<(), ApiError>> {
        let route = self.message_ops.for_role(actor.role);
        self.batch_admission(messages, route, route.ops.saturating_mul(2))
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

    /// Stores changes a round brought (already checked) and makes `scratch`
    /// the plan: the new chunk, the index, `actors` bound to `actor` (when
    /// made here) and `audit`, in one write; then the cached copy and view.
    /// Changes that would grow the plan past the quota are refused whole
    /// (nothing kept). Answers the bytes stored.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn keep_changes(
        &self,
        entry: &PlanEntry,
        state: &mut super::PlanState,
        scratch: Box<Automerge>,
        before: &[automerge::ChangeHash],
        actor: Option<&Actor>,
        actors: Vec<String>,
        audit: super::AuditRecord,
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

    /// The people whose changes the plan holds, by actor: this node's own
    /// (plain names), and, where the plan is homed here, the other nodes'
    /// people it took changes from (`name@node`); vouched for in each
    /// signed push, so the receiver can attribute and check them.
    pub async fn local_authors(&self, entry: &PlanEntry) -> BTreeMap<String, String> {
        let actors: HashSet<String> = {
            let state = entry.state.lock().await;
            state
                .doc
                .get_changes(&[])
                .iter()
                .map(|c| c.actor_id().to_hex_string())
                .collect()
        };
        let names = self.actor_names().await;
        // The home also vouches for the people of other nodes whose changes
        // it took (`name@node`, each checked against the team when it came):
        // it relays them to its replicas. A replica vouches only for its own.
        let homed_here = entry.view().home.is_none();
        actors
            .into_iter()
            .filter_map(|a| {
                let name = names.get(&a)?;
                let ours = !name.contains('@');
                let relayed = homed_here && !name.starts_with('@');
                (ours || relayed).then(|| (a, name.clone()))
            })
            .collect()
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
            (_, Some(reply)) => PushInput::Reply(decode_for(
                reply,
                self.bounds,
                Some(self.message_ops.for_peer()),
            )?),
            (_, None) => PushInput::Quiet,
        };
        let device = format!("out:{peer}");
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

    /// One sync round for `device`: takes the device's message, answers the
    /// node's (or `None` when the two are in sync).
    pub async fn sync(
        &self,
        entry: &PlanEntry,
        actor: &Actor,
        device: &str,
        message: Option<&[u8]>,
        meta: RequestMeta,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let route = Some(self.message_ops.for_role(actor.role));
        let message = message
            .map(|m| decode_for(m, self.bounds, route))
            .transpose()?;
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
        device: &str,
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
                    let audit = audit_record(
                        actor,
                        Some(&entry.id),
                        "plan.sync",
                        "ok",
                        Some(summary),
                        meta,
                    );
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
                    self.writer.audit(audit_record(
                        actor,
                        Some(&entry.id),
                        "plan.sync",
                        "ok",
                        Some("changes wait for others; asked for them".into()),
                        meta,
                    ));
                    self.keep_sync_state(device, &entry.id, sync_state).await;
                    return Ok(reply);
                }
            }
        }
        if !stored_changes {
            // A round that stores nothing still reads the plan: audited.
            self.writer.audit(audit_record(
                actor,
                Some(&entry.id),
                "plan.sync",
                "ok",
                None,
                meta,
            ));
        }
        let reply = state
            .doc
            .generate_sync_message(&mut sync_state)
            .map(sync::Message::encode);
        drop(state);
        self.keep_sync_state(device, &entry.id, sync_state).await;
        Ok(reply)
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
        let message = message
            .map(|m| decode_for(m, self.bounds, Some(self.message_ops.for_peer())))
            .transpose()?;
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
        let device = format!("peer:{peer}");
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
                        peer_audit(
                            peer,
                            Some(&entry.id),
                            "peer.sync",
                            "ok",
                            Some(summary),
                            meta,
                        )
                    }
                    Sender::Home(authors) => {
                        check_incoming(&scratch, &before, &HOME_EDITOR)
                            .map_err(ApiError::RefusedChanges)?;
                        self.bind_home_authors(peer, authors, &scratch, &before)
                            .await?;
                        peer_audit(peer, Some(&entry.id), "peer.replicate", "ok", None, meta)
                    }
                };
                self.keep_changes(entry, &mut state, scratch, &before, None, Vec::new(), audit)
                    .await?;
                self.confirm_if_level(entry, peer, &state.doc, &sync_state);
            }
        }
        let reply = state.doc.generate_sync_message(&mut sync_state);
        drop(state);
        self.writer.audit(peer_audit(
            peer,
            Some(&entry.id),
            "peer.sync",
            "ok",
            None,
            meta,
        ));
        self.keep_sync_state(&device, &entry.id, sync_state).await;
        Ok(reply.map(sync::Message::encode))
    }

    /// Binds the actors of the home's new changes to the people it vouches
    /// for, so the history here says who made them; refuses the round
    /// (`422 change-forbidden`, nothing kept) for a change the home may not
    /// deliver. What the home may vouch for, and what is refused:
    ///
    /// - its own people (`name` → `name@home`) and the people of a third
    ///   node whose changes it took and relays (`name@node`): bound so;
    /// - a person of this node (`name@<this node>`), or a change under an
    ///   actor bound here to one of this node's people, vouched for or
    ///   not: refused. This node's people's changes are made here; none
    ///   comes back new from a peer, so such a change is a forgery;
    /// - an actor already bound to someone else: refused;
    /// - an actor it does not vouch for: kept, bound to the home itself
    ///   (`@home`: the history names no author and says it came via the
    ///   home), unless already bound to a person of another node.
    pub(super) async fn bind_home_authors(
        &self,
        home: &str,
        authors: &BTreeMap<String, String>,
        scratch: &Automerge,
        before: &[automerge::ChangeHash],
    ) -> Result<(), ApiError> {
        let refuse = |why: String| ApiError::RefusedChanges(PlanError::Forbidden(why));
        let actors: Vec<String> = scratch
            .get_changes(before)
            .iter()
            .map(|c| c.actor_id().to_hex_string())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if actors.is_empty() {
            return Ok(());
        }
        let lookup = actors.clone();
        let owners: HashMap<String, String> = self
            .blocking(move |conn| crate::store::users::actor_users(conn, &lookup))
            .await?
            .into_iter()
            .collect();
        let mut binding = Vec::new();
        for hex in actors {
            let owner = owners.get(&hex);
            if let Some(owner) = owner.filter(|o| !o.contains('@')) {
                return Err(refuse(format!(
                    "changes of actor {hex}, which belongs to {owner} of this node: \
                     node {home} may not deliver them"
                )));
            }
            let placeholder = format!("@{home}");
            let here = match authors.get(&hex) {
                // Bound before to `@node` when not vouched for then: only
                // the node that delivered it unnamed may name it later.
                Some(_) if owner == Some(&placeholder) => {
                    let name = authors.get(&hex).map(String::as_str).unwrap_or_default();
                    vouched_by_home(name, home, &self.node_id).ok_or_else(|| {
                        refuse(format!(
                            "node {home} vouches for actor {hex} as `{name}`, whom it may not speak for"
                        ))
                    })?
                }
                _ if owner.is_some_and(|o| o.starts_with('@')) => continue,
                None if owner.is_some() => continue,
                None => format!("@{home}"),
                Some(name) => vouched_by_home(name, home, &self.node_id).ok_or_else(|| {
                    refuse(format!(
                        "node {home} vouches for actor {hex} as `{name}`, whom it may not speak for"
                    ))
                })?,
            };
            binding.push((hex, here));
        }
        self.bind_remote_actors(home, binding).await
    }

    /// Binds each actor to the account of a person of another node
    /// (`name@node`, made on first use); an actor that belongs to someone
    /// else already refuses the round, and nothing is bound. An actor bound
    /// to `from`'s placeholder (`@from`: it delivered the actor's changes
    /// before it named their author, as when its own binding had not yet
    /// reached its cache) takes the name `from` now gives it.
    async fn bind_remote_actors(
        &self,
        from: &str,
        binding: Vec<(String, String)>,
    ) -> Result<(), ApiError> {
        if binding.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let placeholder = format!("@{from}");
        self.writer
            .write(move |conn| {
                let unnamed = crate::store::users::user_by_name(conn, &placeholder)?.map(|u| u.id);
                for (hex, here) in &binding {
                    let user = crate::store::users::remote_user(conn, here, now)?;
                    let owners = actor_owners(conn, std::slice::from_ref(hex))?;
                    let renamed = owners
                        .iter()
                        .any(|(_, owner)| Some(owner) == unnamed.as_ref() && *owner != user);
                    if renamed {
                        crate::store::users::rebind_actor(conn, hex, &user)?;
                        continue;
                    }
                    if owners.iter().any(|(_, owner)| *owner != user) {
                        return Err(crate::db::StoreError::Conflict(format!(
                            "actor {hex} belongs to another person"
                        )));
                    }
                    crate::store::users::bind_actor(conn, hex, &user, now)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| match e {
                crate::db::StoreError::Conflict(why) => {
                    ApiError::RefusedChanges(PlanError::Forbidden(why))
                }
                other => other.into(),
            })?;
        self.forget_actor_names();
        Ok(())
    }

    /// The editor each actor of the new changes acts as: its author, as
    /// vouched for by `peer`, must be on the team as `name@peer`; the actor
    /// is bound to that person (a shadow account that cannot log in) unless
    /// it belongs to someone else already.
    async fn peer_authors(
        &self,
        peer: &str,
        authors: &BTreeMap<String, String>,
        team: &serde_json::Value,
        scratch: &Automerge,
        before: &[automerge::ChangeHash],
    ) -> Result<HashMap<automerge::ActorId, Editor>, ApiError> {
        let refuse = |why: String| ApiError::RefusedChanges(PlanError::Forbidden(why));
        let actors: HashSet<automerge::ActorId> = scratch
            .get_changes(before)
            .iter()
            .map(|c| c.actor_id().clone())
            .collect();
        let mut editors = HashMap::new();
        let mut binding = Vec::new();
        for actor in actors {
            let hex = actor.to_hex_string();
            let name = authors
                .get(&hex)
                .filter(|name| !name.is_empty() && !name.contains('@'))
                .ok_or_else(|| {
                    refuse(format!(
                        "changes of actor {hex}, which node {peer} does not vouch for"
                    ))
                })?;
            let here = format!("{name}@{peer}");
            let member = team.as_array().and_then(|team| {
                team.iter()
                    .find(|m| m["user"] == here.as_str() && m["status"] != "left")
            });
            let Some(member) = member else {
                return Err(refuse(format!("{here} is not on this plan's team")));
            };
            let role = member["role"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| refuse(format!("{here} has no role on this plan")))?;
            editors.insert(
                actor,
                Editor {
                    role,
                    member_id: member["id"].as_str().map(str::to_string),
                },
            );
            binding.push((hex, here));
        }
        self.bind_remote_actors(peer, binding).await?;
        Ok(editors)
    }

    /// The changes after `have` (the whole document when `have` is empty)
    /// and the heads now: a device with nothing to send catches up without
    /// a sync state or a round trip. Heads this node has never seen get
    /// `409`: the device holds changes of its own and must sync them.
    pub async fn changes_after(
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
        self.writer.audit(audit_record(
            actor,
            Some(&entry.id),
            "plan.sync",
            "ok",
            None,
            &meta,
        ));
        let changes = (!changes.is_empty()).then_some(changes);
        Ok((changes, entry.view().version.clone()))
    }

    /// The actors of the changes after `before`: each must be unbound (it is
    /// then bound to `actor`) or already bound to `actor`, so the history
    /// always says truthfully who made a change.
    pub(super) async fn check_actors(
        &self,
        actor: &Actor,
        doc: &Automerge,
        before: &[automerge::ChangeHash],
    ) -> Result<Vec<String>, ApiError> {
        let actors: Vec<String> = doc
            .get_changes(before)
            .iter()
            .map(|c| c.actor_id().to_hex_string())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let lookup = actors.clone();
        let owners = self
            .blocking(move |conn| actor_owners(conn, &lookup))
            .await?;
        if let Some((theirs, _)) = owners.iter().find(|(_, owner)| *owner != actor.user_id) {
            return Err(ApiError::RefusedChanges(PlanError::Forbidden(format!(
                "changes of actor {theirs}, which belongs to another person"
            ))));
        }
        Ok(actors)
    }

    /// With a shared database it is read from the database every time:
    /// the device's last round may have gone through another process.
    async fn sync_state(&self, device: &str, plan: &str) -> Result<sync::State, ApiError> {
        let key = (device.to_string(), plan.to_string());
        if !self.shared {
            if let Some(state) = self.sync_states.lock().get(&key) {
                return Ok(state);
            }
        }
        let (device, plan) = key;
        let limits = self.sync_limits;
        let stored = self
            .blocking(move |conn| stored::load_sync_state(conn, &device, &plan, limits, now_ms()))
            .await?;
        Ok(stored
            .and_then(|bytes| super::sync_state::decode(&bytes))
            .unwrap_or_default())
    }

    /// Keeps a device's sync state in memory and on disk: without waiting
    /// when this process alone serves the device (losing it only costs the
    /// next round some resending), else before answering, so the device's
    /// next round finds it whichever process takes it. A state is kept
    /// within `sync_state_max_bytes` (see `sync_state::encode_bounded`),
    /// and each user within `sync_states_per_user` (the store evicts their
    /// least recently used).
    async fn keep_sync_state(&self, device: &str, plan: &str, state: sync::State) {
        let (encoded, state) = super::sync_state::encode_bounded(state, self.sync_state_max_bytes);
        let size = encoded.len();
        let key = (device.to_string(), plan.to_string());
        let (device, plan) = key.clone();
        let limits = self.sync_limits;
        let save = move |conn: &mut crate::db::DbConnection| {
            stored::save_sync_state(conn, &device, &plan, &encoded, now_ms(), limits)
        };
        if self.shared {
            if let Err(e) = self.writer.write(save).await {
                tracing::warn!(error = %e, "sync state not saved");
            }
        } else {
            self.sync_states.lock().put(key, state, size);
            self.writer.write_detached(save);
        }
    }
}

#[cfg(test)]
mod vouching_tests {
    use super::vouched_by_home;

    #[test]
    fn a_home_vouches_for_its_own_people_and_relays_a_third_nodes_but_never_ours() {
        let v = |name| vouched_by_home(name, "county-b", "county-a");
        assert_eq!(v("bea").as_deref(), Some("bea@county-b"));
        assert_eq!(v("cody@county-c").as_deref(), Some("cody@county-c"));
        assert_eq!(v("fran@county-a"), None, "a person of this node");
        for bad in ["", "@county-c", "cody@", "a@b@c"] {
            assert_eq!(v(bad), None, "{bad}");
        }
    }
}
