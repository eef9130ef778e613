//! Untrusted Automerge bytes, read within bounds: sync messages and whole
//! documents are checked against what their sender may send (`size`)
//! before they are decoded, and a panic in the decoder is an error.

use super::size::{
    check_added_size, check_bloom, check_sync_state_bounds, count_incoming, Bounds, RouteOps,
};
use crate::error::ApiError;
use automerge::sync;
use automerge::Automerge;
use std::panic::catch_unwind;

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

/// [`decode_for`] of an optional message, off the HTTP worker when it is
/// long (a member's admitted megabyte of Bloom filters or changes takes
/// tens of milliseconds to read: see `crate::blocking`).
pub(crate) async fn decode_message(
    bytes: Option<&[u8]>,
    bounds: Bounds,
    route: Option<RouteOps>,
) -> Result<Option<sync::Message>, ApiError> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    if bytes.len() < crate::blocking::OFF_WORKER_FROM {
        return decode_for(bytes, bounds, route).map(Some);
    }
    let bytes = bytes.to_vec();
    crate::blocking::read_large(bytes.len(), move || decode_for(&bytes, bounds, route))
        .await
        .unwrap_or_else(|| Err(ApiError::MalformedSync("undecodable sync message".into())))
        .map(Some)
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
pub(super) fn change_count(doc: &Automerge) -> u64 {
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
