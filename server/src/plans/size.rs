//! The decoded-size cap on Automerge bytes that arrive (`max_document_bytes`).
//!
//! Body caps bound what arrives on the wire, not what it becomes: a change
//! chunk may be DEFLATE-compressed (chunk type 2), and a few kilobytes of
//! zeros inflate a thousandfold. So the size is bounded in two steps, both
//! cheaper than `doc.save()` (which re-encodes the whole document):
//!
//! 1. Before Automerge sees the bytes, each compressed change chunk is
//!    inflated into a counting sink that stops one byte past what the cap
//!    still allows: the bomb never lands in memory, and the work is bounded
//!    by the cap, not by the bomb.
//! 2. After the changes are applied to the scratch copy, the raw
//!    (uncompressed) lengths of the changes they added are summed: the
//!    callers already list those changes to check them, and this catches
//!    what step 1 cannot see (a whole-document chunk compresses its columns
//!    inside; the node only learns their size by loading it).
//!
//! The cap is on what one message or document brings, which for an import
//! or a handover is the whole plan.

use crate::error::ApiError;
use automerge::{Automerge, ChangeHash};
use std::io::Read;

/// `0x85 0x6f 0x4a 0x83`: the start of every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// The chunk type of a DEFLATE-compressed change.
const COMPRESSED_CHANGE: u8 = 2;

/// The refusal, with the cap in it so the sender knows what to split.
fn too_large(limit: usize) -> ApiError {
    ApiError::DocumentTooLarge(limit)
}

/// Reads an unsigned LEB128 length at the start of `bytes`: (value, bytes
/// used), or `None` when it is not one.
fn uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Splits `bytes` into its chunks (type, data). Bytes that do not parse as
/// chunks are left to Automerge to refuse: they are returned as one opaque
/// piece counted at their length.
fn chunks(mut bytes: &[u8]) -> Vec<(Option<u8>, &[u8])> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let parsed = (|| {
            if bytes.get(..4)? != MAGIC {
                return None;
            }
            let kind = *bytes.get(8)?;
            let (len, used) = uleb(bytes.get(9..)?)?;
            let start = 9 + used;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            Some((kind, bytes.get(start..end)?, end))
        })();
        match parsed {
            Some((kind, data, end)) => {
                out.push((Some(kind), data));
                bytes = &bytes[end..];
            }
            None => {
                out.push((None, bytes));
                break;
            }
        }
    }
    out
}

/// The decoded size of `chunk` (one chunk or several concatenated), at most
/// `budget + 1`: compressed change chunks are inflated (bounded), other
/// bytes count at their length.
fn decoded_size(chunk: &[u8], budget: u64) -> u64 {
    let mut total: u64 = 0;
    for (kind, data) in chunks(chunk) {
        let size = if kind == Some(COMPRESSED_CHANGE) {
            let left = budget.saturating_sub(total).saturating_add(1);
            let mut inflater = flate2::read::DeflateDecoder::new(data).take(left);
            // A stream that does not inflate is Automerge's to refuse.
            std::io::copy(&mut inflater, &mut std::io::sink()).unwrap_or(0)
        } else {
            data.len() as u64
        };
        total = total.saturating_add(size);
        if total > budget {
            break;
        }
    }
    total
}

/// Step 1 for the chunks of a sync message or a saved document: refuses
/// them when, inflated, they would pass `limit` bytes.
pub(crate) fn check_incoming_size<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    limit: usize,
) -> Result<(), ApiError> {
    let budget = limit as u64;
    let mut total: u64 = 0;
    for piece in pieces {
        total = total.saturating_add(decoded_size(piece, budget.saturating_sub(total)));
        if total > budget {
            return Err(too_large(limit));
        }
    }
    Ok(())
}

/// Step 2: refuses when the changes `scratch` holds after `before` add up to
/// more than `limit` bytes uncompressed.
pub(crate) fn check_added_size(
    scratch: &Automerge,
    before: &[ChangeHash],
    limit: usize,
) -> Result<(), ApiError> {
    let mut total: usize = 0;
    for change in scratch.get_changes(before) {
        total = total.saturating_add(change.raw_bytes().len());
        if total > limit {
            return Err(too_large(limit));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    /// A document whose one change holds `len` bytes of one repeated
    /// letter: it compresses to almost nothing.
    fn inflating_document(len: usize) -> Vec<u8> {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "notes", "a".repeat(len)).unwrap();
        doc.save()
    }

    #[test]
    fn a_small_body_that_inflates_past_the_cap_is_refused_before_loading() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "notes", "a".repeat(4 << 20)).unwrap();
        let mut change = doc.get_last_local_change().unwrap();
        let compressed = change.bytes().into_owned();
        assert!(compressed.len() < 64 * 1024, "{} bytes", compressed.len());
        assert_eq!(compressed[8], COMPRESSED_CHANGE);
        let err = check_incoming_size([compressed.as_slice()], 1 << 20).unwrap_err();
        assert_eq!(err.code(), "document-too-large");
        check_incoming_size([compressed.as_slice()], 8 << 20).unwrap();
    }

    #[test]
    fn the_added_changes_are_counted_uncompressed() {
        let bytes = inflating_document(2 << 20);
        assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
        let doc = Automerge::load(&bytes).unwrap();
        let err = check_added_size(&doc, &[], 1 << 20).unwrap_err();
        assert_eq!(err.code(), "document-too-large");
        check_added_size(&doc, &[], 4 << 20).unwrap();
        check_added_size(&doc, &doc.get_heads(), 1).unwrap();
    }

    #[test]
    fn bytes_that_are_not_chunks_count_at_their_length() {
        check_incoming_size([b"not automerge".as_slice()], 13).unwrap();
        assert!(check_incoming_size([b"not automerge".as_slice()], 12).is_err());
    }
}
