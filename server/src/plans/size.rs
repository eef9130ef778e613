//! Bounds on Automerge bytes that arrive: what they may decode to
//! (`max_document_bytes`) and how many operations they may declare
//! (`max_document_ops`), both checked before Automerge sees them.
//!
//! Body caps bound what arrives on the wire, not what it becomes, in two
//! ways Automerge's loader does not guard against:
//!
//! - DEFLATE: a change chunk (type 2) or a document's column may be
//!   compressed, and a few kilobytes of zeros inflate a thousandfold.
//! - Run-length encoding: every column is a series of runs, and a run of
//!   2^40 copies of one value takes a few bytes. Loading materializes the
//!   rows (`cargo fuzz` found a few hundred bytes Automerge turned into
//!   2.4 GB).
//!
//! So the bytes are walked first, building nothing: each chunk's header and
//! column metadata are read, compressed parts inflated with a bound, and
//! each column's runs counted. A chunk declares as many operations as its
//! longest column has rows (a group column's values count the rows of the
//! columns it groups). The work is linear in the bytes (and the bounded
//! inflation); a refusal stops at the first run past the budget.
//!
//! After loading, [`check_added_size`] also sums the raw sizes of the changes
//! a round added: the callers list those changes anyway to check them.
//!
//! Bundles (chunk type 3, an experimental format no client of ours writes)
//! are refused.

use crate::error::ApiError;
use crate::limits::MessageOps;
use automerge::{Automerge, ChangeHash};
use std::io::Read;

/// `0x85 0x6f 0x4a 0x83`: the start of every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;
/// A column spec's bit saying its data is DEFLATE-compressed.
const DEFLATED_COLUMN: u64 = 0b1000;

/// What incoming Automerge bytes may amount to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Decoded bytes (compressed parts counted inflated).
    pub bytes: usize,
    /// Operations (rows of the longest column), over all chunks.
    pub ops: u64,
}

/// What one route lets one kind of sender put in a message: fewer
/// operations than a whole document may hold (`max_sync_ops_member`,
/// `max_sync_ops_staff`, `max_peer_sync_ops`), so a message no sender of
/// that kind needs is refused from its headers and columns, in
/// milliseconds, before Automerge builds anything.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteOps {
    pub ops: u64,
    /// The setting that says so, for the refusal's detail.
    pub setting: &'static str,
}

/// How the plan service reads the setting (`limits::MessageOps`, a value
/// of the config) for one route and sender.
impl MessageOps {
    /// The limit on one device message (or import) from a person whose
    /// account has `role`.
    pub(crate) fn for_role(&self, role: wrapsync_shared::roles::Role) -> RouteOps {
        if role.may_create_plans() {
            RouteOps {
                ops: self.staff,
                setting: "max_sync_ops_staff",
            }
        } else {
            RouteOps {
                ops: self.member,
                setting: "max_sync_ops_member",
            }
        }
    }

    pub(crate) fn for_peer(&self) -> RouteOps {
        RouteOps {
            ops: self.peer,
            setting: "max_peer_sync_ops",
        }
    }
}

/// Why a walk stopped.
#[derive(Debug, PartialEq)]
enum Refusal {
    /// Past a bound: the message says which.
    TooLarge(String),
    /// Past what the route allows this sender in one message.
    OverRoute(String),
    /// Not Automerge chunks as this node accepts them.
    Malformed(&'static str),
}

impl Refusal {
    fn into_error(self, malformed: fn(String) -> ApiError) -> ApiError {
        match self {
            Refusal::TooLarge(what) => ApiError::DocumentTooLarge(what),
            Refusal::OverRoute(what) => ApiError::MessageTooLarge(what),
            Refusal::Malformed(what) => malformed(what.to_string()),
        }
    }
}

/// A cursor over bytes that fails rather than reads past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], Refusal> {
        let len = usize::try_from(len).map_err(|_| Refusal::Malformed("truncated chunk"))?;
        if len > self.bytes.len() {
            return Err(Refusal::Malformed("truncated chunk"));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Refusal> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64, Refusal> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f)
                .checked_shl(shift)
                .filter(|v| v >> shift == u64::from(byte & 0x7f))
                .ok_or(Refusal::Malformed("number out of range"))?;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Refusal::Malformed("number out of range"))
    }

    /// A signed LEB128 number; only its magnitude matters here.
    fn sleb(&mut self) -> Result<i64, Refusal> {
        let mut value: i64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            if shift >= 64 {
                return Err(Refusal::Malformed("number out of range"));
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1 << shift;
                }
                return Ok(value);
            }
        }
    }

    /// Skips a length-prefixed byte string (an actor id, a message).
    fn skip_prefixed(&mut self) -> Result<(), Refusal> {
        let len = self.uleb()?;
        self.take(len).map(drop)
    }

    /// Skips `count` items of `size` bytes (change hashes).
    fn skip_fixed(&mut self, count: u64, size: u64) -> Result<(), Refusal> {
        let len = count
            .checked_mul(size)
            .ok_or(Refusal::Malformed("truncated chunk"))?;
        self.take(len).map(drop)
    }

    fn skip_actors(&mut self) -> Result<(), Refusal> {
        let count = self.uleb()?;
        for _ in 0..count {
            self.skip_prefixed()?;
        }
        Ok(())
    }

    /// Column metadata: (spec, length) pairs.
    fn columns(&mut self) -> Result<Vec<(u64, u64)>, Refusal> {
        let count = self.uleb()?;
        // Each pair takes at least two bytes: a count past that is a lie.
        if count > self.bytes.len() as u64 / 2 {
            return Err(Refusal::Malformed("truncated chunk"));
        }
        (0..count)
            .map(|_| Ok((self.uleb()?, self.uleb()?)))
            .collect()
    }
}

/// The budget a walk spends: decoded bytes and declared operations left.
struct Budget {
    bounds: Bounds,
    route: Option<RouteOps>,
    bytes: u64,
    ops: u64,
}

impl Budget {
    fn new(bounds: Bounds, route: Option<RouteOps>) -> Self {
        let route = route.filter(|r| r.ops < bounds.ops);
        Budget {
            bounds,
            route,
            bytes: bounds.bytes as u64,
            ops: route.map_or(bounds.ops, |r| r.ops),
        }
    }

    /// The operations spent so far.
    fn ops_spent(&self) -> u64 {
        self.route.map_or(self.bounds.ops, |r| r.ops) - self.ops
    }

    fn spend_bytes(&mut self, bytes: u64) -> Result<(), Refusal> {
        self.bytes = self.bytes.checked_sub(bytes).ok_or_else(|| {
            Refusal::TooLarge(format!(
                "the Automerge data decodes to more than max_document_bytes ({} bytes)",
                self.bounds.bytes
            ))
        })?;
        Ok(())
    }

    fn spend_ops(&mut self, ops: u64) -> Result<(), Refusal> {
        self.ops = self.ops.checked_sub(ops).ok_or_else(|| match self.route {
            Some(route) => Refusal::OverRoute(format!(
                "the message declares more than {} operations, the most this sender may send \
                 in one message ({})",
                route.ops, route.setting
            )),
            None => Refusal::TooLarge(format!(
                "the Automerge data declares more than max_document_ops ({} operations)",
                self.bounds.ops
            )),
        })?;
        Ok(())
    }

    /// Inflates `data` into memory, refusing it past the bytes left.
    fn inflate(&mut self, data: &[u8]) -> Result<Vec<u8>, Refusal> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(data)
            .take(self.bytes.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|_| Refusal::Malformed("a compressed part does not inflate"))?;
        self.spend_bytes(out.len() as u64)?;
        Ok(out)
    }
}

/// Walks every chunk in `bytes` (one or several concatenated).
fn walk(bytes: &[u8], budget: &mut Budget) -> Result<(), Refusal> {
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        if reader.take(4)? != MAGIC {
            return Err(Refusal::Malformed("not an Automerge chunk"));
        }
        reader.take(4)?; // checksum: Automerge checks it
        let kind = reader.byte()?;
        let len = reader.uleb()?;
        let data = reader.take(len)?;
        match kind {
            DOCUMENT => {
                budget.spend_bytes(data.len() as u64)?;
                document(data, budget)?;
            }
            CHANGE => {
                budget.spend_bytes(data.len() as u64)?;
                change(data, budget)?;
            }
            COMPRESSED_CHANGE => {
                let inflated = budget.inflate(data)?;
                change(&inflated, budget)?;
            }
            _ => return Err(Refusal::Malformed("an unsupported kind of Automerge chunk")),
        }
    }
    Ok(())
}

/// A change chunk's body: its header fields, then one set of columns.
fn change(data: &[u8], budget: &mut Budget) -> Result<(), Refusal> {
    let mut reader = Reader::new(data);
    let deps = reader.uleb()?;
    reader.skip_fixed(deps, 32)?;
    reader.skip_prefixed()?; // actor
    reader.uleb()?; // seq
    reader.uleb()?; // start op
    reader.sleb()?; // time
    reader.skip_prefixed()?; // message
    reader.skip_actors()?;
    let columns = reader.columns()?;
    let ops = rows_of(&columns, &mut reader, budget)?;
    budget.spend_ops(ops)
}

/// A document chunk's body: actors and heads, then the change columns and
/// the op columns.
fn document(data: &[u8], budget: &mut Budget) -> Result<(), Refusal> {
    let mut reader = Reader::new(data);
    reader.skip_actors()?;
    let heads = reader.uleb()?;
    reader.skip_fixed(heads, 32)?;
    let change_columns = reader.columns()?;
    let op_columns = reader.columns()?;
    let changes = rows_of(&change_columns, &mut reader, budget)?;
    let ops = rows_of(&op_columns, &mut reader, budget)?;
    budget.spend_ops(changes.max(ops))
}

/// The rows the longest of `columns` has; their data is read from `reader`.
fn rows_of(
    columns: &[(u64, u64)],
    reader: &mut Reader<'_>,
    budget: &mut Budget,
) -> Result<u64, Refusal> {
    let mut most = 0;
    for &(spec, len) in columns {
        let raw = reader.take(len)?;
        let inflated;
        let data = if spec & DEFLATED_COLUMN != 0 {
            inflated = budget.inflate(raw)?;
            &inflated[..]
        } else {
            raw
        };
        let rows = column_rows(spec & 0b111, data, budget.ops)?;
        most = most.max(rows);
        if most > budget.ops {
            break;
        }
    }
    Ok(most)
}

/// Counts a column's rows (for a group column, the rows it groups, if
/// more), stopping once past `cap`.
fn column_rows(kind: u64, data: &[u8], cap: u64) -> Result<u64, Refusal> {
    const GROUP: u64 = 0;
    const DELTA: u64 = 3;
    const BOOLEAN: u64 = 4;
    const STRING: u64 = 5;
    const VALUE: u64 = 7;
    let mut reader = Reader::new(data);
    let mut rows: u64 = 0;
    let mut grouped: u64 = 0;
    let add = |total: u64, more: u64| total.saturating_add(more);
    match kind {
        VALUE => {}
        BOOLEAN => {
            while !reader.is_empty() && rows <= cap {
                rows = add(rows, reader.uleb()?);
            }
        }
        _ => {
            // One value of the column's type; its number, if it has one.
            let value = |reader: &mut Reader<'_>| -> Result<u64, Refusal> {
                match kind {
                    DELTA => reader.sleb().map(|v| v.unsigned_abs()),
                    STRING => reader.skip_prefixed().map(|()| 0),
                    _ => reader.uleb(),
                }
            };
            while !reader.is_empty() && rows.max(grouped) <= cap {
                let run = reader.sleb()?;
                if run > 0 {
                    let count = run.unsigned_abs();
                    let v = value(&mut reader)?;
                    rows = add(rows, count);
                    if kind == GROUP {
                        grouped = add(grouped, v.saturating_mul(count));
                    }
                } else if run < 0 {
                    for _ in 0..run.unsigned_abs() {
                        let v = value(&mut reader)?;
                        rows = add(rows, 1);
                        if kind == GROUP {
                            grouped = add(grouped, v);
                        }
                        if rows.max(grouped) > cap {
                            break;
                        }
                    }
                } else {
                    rows = add(rows, reader.uleb()?);
                }
            }
        }
    }
    Ok(rows.max(grouped))
}

/// Checks the chunks of a sync message or a saved document against
/// `bounds` before Automerge loads them; `malformed` makes the error for
/// bytes that are not chunks this node accepts.
#[cfg(test)]
pub(crate) fn check_incoming_bounds<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    bounds: Bounds,
    malformed: fn(String) -> ApiError,
) -> Result<(), ApiError> {
    count_incoming(pieces, bounds, None, malformed).map(drop)
}

/// [`check_incoming_bounds`], with the operations also held to what the
/// route allows this sender (`route`: `413 message-too-large` past it);
/// answers the operations declared.
pub(crate) fn count_incoming<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    bounds: Bounds,
    route: Option<RouteOps>,
    malformed: fn(String) -> ApiError,
) -> Result<u64, ApiError> {
    let mut budget = Budget::new(bounds, route);
    pieces
        .into_iter()
        .try_for_each(|piece| walk(piece, &mut budget))
        .map_err(|refusal| refusal.into_error(malformed))?;
    Ok(budget.ops_spent())
}

/// Which messages of a batch run, given the operations each declares
/// (`None`: refused on its own, which its round says as cheaply): in
/// order, while their sum stays within `total`; the rest wait.
pub(crate) fn admit_batch(counted: &[Option<u64>], total: u64) -> Vec<bool> {
    let mut spent: u64 = 0;
    counted
        .iter()
        .map(|ops| match ops {
            None => true,
            Some(ops) if spent.saturating_add(*ops) > total => false,
            Some(ops) => {
                spent += ops;
                true
            }
        })
        .collect()
}

/// Entries a sync message may describe beyond what a plan's own changes
/// call for: a device's offline changes the node has not seen yet.
pub(crate) const SLACK_CHANGES: u64 = 20_000;
/// Most `have`s one message may carry (Automerge sends one, or none).
const MAX_HAVES: usize = 4;
/// Most bits per entry a Bloom filter may use (Automerge's use 10: a 1 %
/// false positive rate; 16 gives 0.05 %).
const MAX_BITS_PER_ENTRY: u64 = 16;

/// What a sync message tells of its sender that the sync state keeps: its
/// heads, what it needs, and its `have`s (each a Bloom filter of its
/// changes since their last sync, and that sync's heads).
fn sizes(message: &automerge::sync::Message) -> (u64, u64) {
    let mut entries: u64 = 0;
    let mut lists = message.heads.len().max(message.need.len()) as u64;
    for have in &message.have {
        lists = lists.max(have.last_sync.len() as u64);
        let bytes = have.bloom.to_bytes();
        let mut reader = Reader::new(&bytes);
        let filter_entries = reader.uleb().unwrap_or(0);
        let bits = reader.uleb().unwrap_or(0);
        // A filter with more bits an entry than any needs counts as that
        // many more entries.
        let weight = bits.div_ceil(MAX_BITS_PER_ENTRY).max(1);
        entries = entries.max(filter_entries.saturating_mul(weight));
    }
    (entries, lists)
}

/// Refuses a sync message that describes its sender at more length than a
/// plan of `changes` changes (counted only when the message is past the
/// slack) could need: a `have` whose Bloom filter holds more entries than
/// twice the plan's changes and [`SLACK_CHANGES`], heads, needs or a last
/// sync listing more hashes than that, or more than a few `have`s. What
/// the sync state keeps of a message is so bounded by the plan's size,
/// before it is kept. `413 sync-state-too-large`.
pub(crate) fn check_sync_state_bounds(
    message: &automerge::sync::Message,
    changes: impl FnOnce() -> u64,
) -> Result<(), ApiError> {
    if message.have.len() > MAX_HAVES {
        return Err(ApiError::SyncStateTooLarge(format!(
            "the message carries {} `have`s (at most {MAX_HAVES})",
            message.have.len()
        )));
    }
    let (entries, lists) = sizes(message);
    if entries.max(lists) <= SLACK_CHANGES {
        return Ok(());
    }
    let changes = changes();
    let most = changes.saturating_mul(2).saturating_add(SLACK_CHANGES);
    if entries > most {
        return Err(ApiError::SyncStateTooLarge(format!(
            "the message's Bloom filter describes {entries} changes; this plan has {changes} \
             (at most {most}, at {MAX_BITS_PER_ENTRY} bits each)"
        )));
    }
    if lists > most {
        return Err(ApiError::SyncStateTooLarge(format!(
            "the message lists {lists} change hashes; this plan has {changes} (at most {most})"
        )));
    }
    Ok(())
}

/// Most probes a sync message's Bloom filter may ask for (Automerge's own
/// use 7): each lookup allocates that many.
const MAX_BLOOM_PROBES: u64 = 64;

/// Checks a Bloom filter a sync message's `have` carries (as
/// `BloomFilter::to_bytes` gives it back) before the node looks anything up
/// in it: Automerge divides by its size in bits and allocates a vector of
/// its probe count, so an empty filter claiming entries panics and one
/// claiming four billion probes exhausts memory.
pub(crate) fn check_bloom(filter: &[u8]) -> Result<(), ApiError> {
    let malformed = |what: &str| ApiError::MalformedSync(format!("a Bloom filter {what}"));
    if filter.is_empty() {
        return Ok(());
    }
    let mut reader = Reader::new(filter);
    let read = |reader: &mut Reader<'_>| reader.uleb().map_err(|_| malformed("is truncated"));
    let entries = read(&mut reader)?;
    read(&mut reader)?; // bits per entry: the length of what follows
    let probes = read(&mut reader)?;
    if entries > 0 && reader.is_empty() {
        return Err(malformed("claims entries but holds no bits"));
    }
    if probes > MAX_BLOOM_PROBES {
        return Err(malformed(&format!(
            "asks for {probes} probes (at most {MAX_BLOOM_PROBES})"
        )));
    }
    Ok(())
}

/// Refuses when the changes `scratch` holds after `before` add up to more
/// than `limit` bytes uncompressed.
pub(crate) fn check_added_size(
    scratch: &Automerge,
    before: &[ChangeHash],
    limit: usize,
) -> Result<(), ApiError> {
    let mut total: usize = 0;
    for change in scratch.get_changes(before) {
        total = total.saturating_add(change.raw_bytes().len());
        if total > limit {
            return Err(ApiError::DocumentTooLarge(format!(
                "the changes add up to more than max_document_bytes ({limit} bytes)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
