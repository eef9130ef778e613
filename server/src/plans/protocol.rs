//! The Automerge sync protocol's rules, without storage or HTTP: a
//! device's message received on a scratch copy, and the pushing node's
//! steps with a peer. Used by the plan service, the seeded simulation
//! (`sim`) and the fuzzer.

use super::decode::unreadable;
use crate::error::ApiError;
use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ReadDoc};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `doc.receive_sync_message`, with a panic inside Automerge turned into an
/// error.
pub(super) fn receive(
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
pub(super) fn forget_unacknowledged(state: &mut sync::State) {
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
