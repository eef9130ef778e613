use super::*;
use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ROOT};
use sha2::{Digest, Sha256};

fn bounds(bytes: usize, ops: u64) -> Bounds {
    Bounds { bytes, ops }
}

fn check(bytes: &[u8], bounds: Bounds) -> Result<(), ApiError> {
    check_incoming_bounds([bytes], bounds, ApiError::MalformedDocument)
}

fn code(result: Result<(), ApiError>) -> &'static str {
    result.err().map_or("ok", |e| e.code())
}

/// A document of `chars` characters typed one by one into a text: one
/// operation each, and (past a few hundred) compressed columns.
fn typed(chars: usize) -> AutoCommit {
    let mut doc = AutoCommit::new();
    let text = doc.put_object(ROOT, "notes", ObjType::Text).unwrap();
    for i in 0..chars {
        doc.splice_text(&text, i, 0, "a").unwrap();
        if i % 500 == 0 {
            doc.commit();
        }
    }
    doc.commit();
    doc
}

fn uleb(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(mut value: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return;
        }
    }
}

/// Wraps `data` as a chunk of `kind` with a valid checksum, as an
/// attacker would.
fn chunk(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut header = vec![kind];
    uleb(data.len() as u64, &mut header);
    let hash = Sha256::new()
        .chain_update(&header)
        .chain_update(data)
        .finalize();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&hash[..4]);
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

/// `saved` (an uncompressed document chunk) with the op column `spec`'s
/// data replaced by `column`.
fn with_op_column(saved: &[u8], spec: u64, column: &[u8]) -> Vec<u8> {
    let mut reader = Reader::new(saved);
    reader.take(9).unwrap();
    let len = reader.uleb().unwrap();
    let data = reader.take(len).unwrap();
    let mut reader = Reader::new(data);
    reader.skip_actors().unwrap();
    let heads = reader.uleb().unwrap();
    reader.skip_fixed(heads, 32).unwrap();
    let prefix = &data[..data.len() - reader.bytes.len()];
    let change_columns = reader.columns().unwrap();
    let op_columns = reader.columns().unwrap();
    assert!(
        op_columns.iter().any(|&(s, _)| s == spec),
        "no column {spec:#x}"
    );
    let mut out = prefix.to_vec();
    for columns in [&change_columns, &op_columns] {
        uleb(columns.len() as u64, &mut out);
        for &(s, len) in columns.iter() {
            uleb(s, &mut out);
            let len = if columns == &op_columns && s == spec {
                column.len() as u64
            } else {
                len
            };
            uleb(len, &mut out);
        }
    }
    for &(_, len) in &change_columns {
        out.extend_from_slice(reader.take(len).unwrap());
    }
    for &(s, len) in &op_columns {
        let original = reader.take(len).unwrap();
        out.extend_from_slice(if s == spec { column } else { original });
    }
    out.extend_from_slice(reader.bytes);
    chunk(DOCUMENT, &out)
}

/// A small document's action column (id 4, unsigned integers) made into
/// one run of `rows` copies: a few bytes that declare `rows` operations.
fn declaring(rows: i64) -> Vec<u8> {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "a", 1).unwrap();
    let saved = doc.save();
    let mut run = Vec::new();
    sleb(rows, &mut run);
    uleb(1, &mut run);
    with_op_column(&saved, 0x42, &run)
}

#[test]
fn real_documents_pass_and_count_one_op_per_character() {
    let mut doc = typed(5_000);
    let saved = doc.save();
    assert!(
        saved.len() < 5_000,
        "{} bytes: columns compressed",
        saved.len()
    );
    assert_eq!(code(check(&saved, bounds(1 << 20, 5_010))), "ok");
    assert_eq!(
        code(check(&saved, bounds(1 << 20, 4_999))),
        "document-too-large"
    );
    // A saved document and the changes after it, as storage holds them.
    let heads = doc.get_heads();
    let text = doc.get(ROOT, "notes").unwrap().unwrap().1;
    doc.splice_text(&text, 0, 0, "later").unwrap();
    let mut both = saved.clone();
    both.extend(doc.save_after(&heads));
    assert_eq!(code(check(&both, bounds(1 << 20, 5_020))), "ok");
    assert!(Automerge::load(&both).is_ok());
}

#[test]
fn sync_messages_of_either_version_pass() {
    let mut doc = typed(2_000);
    let mut state = automerge::sync::State::new();
    let mut peer = Automerge::new();
    let mut peer_state = automerge::sync::State::new();
    let mut seen = 0;
    for _ in 0..6 {
        if let Some(message) = doc.sync().generate_sync_message(&mut state) {
            seen += message.changes.iter().count();
            let encoded = message.encode();
            let decoded = crate::plans::decode::decode(&encoded, bounds(1 << 20, 5_000)).unwrap();
            peer.receive_sync_message(&mut peer_state, decoded).unwrap();
        }
        if let Some(message) = peer.generate_sync_message(&mut peer_state) {
            doc.sync()
                .receive_sync_message(&mut state, message)
                .unwrap();
        }
    }
    assert!(seen > 0);
    assert_eq!(peer.get_heads(), doc.get_heads());
}

#[test]
fn a_run_declaring_millions_of_operations_is_refused_before_loading() {
    // One run rewritten declares 2^40 operations in a few bytes.
    let bomb = declaring(1 << 40);
    assert!(bomb.len() < 200, "{} bytes", bomb.len());
    let err = check(&bomb, bounds(1 << 20, 1_000_000)).unwrap_err();
    assert_eq!(err.code(), "document-too-large");
    assert!(err.to_string().contains("max_document_ops"), "{err}");
    assert_eq!(code(check(&declaring(500), bounds(1 << 20, 1_000))), "ok");
    assert_eq!(
        code(check(&declaring(1_001), bounds(1 << 20, 1_000))),
        "document-too-large"
    );
}

#[test]
fn a_group_declaring_more_rows_than_it_holds_is_refused() {
    // The successor group column (id 8): one op with 2^40 successors.
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "a", 1).unwrap();
    doc.put(ROOT, "a", 2).unwrap();
    let saved = doc.save();
    let mut run = Vec::new();
    sleb(1, &mut run);
    uleb(1 << 40, &mut run);
    let bomb = with_op_column(&saved, 0x80, &run);
    assert_eq!(
        code(check(&bomb, bounds(1 << 20, 1_000_000))),
        "document-too-large"
    );
}

#[test]
fn a_small_body_that_inflates_past_the_cap_is_refused_before_loading() {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "notes", "a".repeat(4 << 20)).unwrap();
    let mut change = doc.get_last_local_change().unwrap();
    let compressed = change.bytes().into_owned();
    assert!(compressed.len() < 64 * 1024, "{} bytes", compressed.len());
    assert_eq!(compressed[8], COMPRESSED_CHANGE);
    let err = check(&compressed, bounds(1 << 20, 1_000)).unwrap_err();
    assert_eq!(err.code(), "document-too-large");
    assert!(err.to_string().contains("max_document_bytes"), "{err}");
    assert_eq!(code(check(&compressed, bounds(8 << 20, 1_000))), "ok");
    // The same text saved whole hides it in a compressed column.
    let saved = doc.save();
    assert!(saved.len() < 64 * 1024);
    assert_eq!(
        code(check(&saved, bounds(1 << 20, 1_000))),
        "document-too-large"
    );
    assert_eq!(code(check(&saved, bounds(8 << 20, 1_000))), "ok");
}

#[test]
fn the_added_changes_are_counted_uncompressed() {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "notes", "a".repeat(2 << 20)).unwrap();
    let doc = Automerge::load(&doc.save()).unwrap();
    let err = check_added_size(&doc, &[], 1 << 20).unwrap_err();
    assert_eq!(err.code(), "document-too-large");
    check_added_size(&doc, &[], 4 << 20).unwrap();
    check_added_size(&doc, &doc.get_heads(), 1).unwrap();
}

#[test]
fn bytes_that_are_not_chunks_we_accept_are_malformed() {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "a", 1).unwrap();
    let saved = doc.save();
    let heads = doc.get_heads();
    let bundle = doc.bundle(heads).unwrap().bytes().to_vec();
    for bad in [
        b"not automerge".to_vec(),
        saved[..saved.len() - 1].to_vec(),
        chunk(9, b""),
        bundle,
    ] {
        assert_eq!(
            code(check(&bad, bounds(1 << 20, 1_000))),
            "malformed-document"
        );
    }
}

/// A message under the document's bounds but past what its route allows
/// the sender is refused as `message-too-large`, from the walk alone; the
/// document's own bound still says `document-too-large`.
#[test]
fn a_message_past_its_routes_operations_is_refused_before_loading() {
    let saved = typed(3_000).save();
    let route = |ops| {
        Some(RouteOps {
            ops,
            setting: "max_sync_ops_member",
        })
    };
    let count = |route| {
        count_incoming(
            [&saved[..]],
            bounds(1 << 20, 1_000_000),
            route,
            ApiError::MalformedDocument,
        )
    };
    let ops = count(None).unwrap();
    assert!((3_000..3_100).contains(&ops), "{ops}");
    assert_eq!(count(route(5_000)).unwrap(), ops);
    let refused = count(route(1_000)).unwrap_err();
    assert_eq!(refused.code(), "message-too-large");
    assert!(
        refused.to_string().contains("max_sync_ops_member"),
        "{refused}"
    );
    // A route allowing more than the document's bound: the bound speaks.
    let over = count_incoming(
        [&saved[..]],
        bounds(1 << 20, 1_000),
        route(5_000),
        ApiError::MalformedDocument,
    );
    assert_eq!(code(over.map(drop)), "document-too-large");
    // The millions a run declares stop at the route's limit too.
    let bomb = declaring(1 << 40);
    let refused = count_incoming(
        [&bomb[..]],
        bounds(1 << 20, 1_000_000),
        route(50_000),
        ApiError::MalformedDocument,
    );
    assert_eq!(code(refused.map(drop)), "message-too-large");
}

fn hashes(count: u32) -> Vec<ChangeHash> {
    (0..count)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_le_bytes());
            ChangeHash(h)
        })
        .collect()
}

fn message_with(
    have: Vec<automerge::sync::Have>,
    heads: Vec<ChangeHash>,
) -> automerge::sync::Message {
    automerge::sync::Message {
        heads,
        need: Vec::new(),
        have,
        changes: automerge::sync::ChunkList::empty(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
}

fn have_of(count: u32) -> automerge::sync::Have {
    automerge::sync::Have {
        last_sync: Vec::new(),
        bloom: automerge::sync::BloomFilter::from_hashes(hashes(count).iter()),
    }
}

/// What a sync state keeps of a message is bounded by the plan's size: a
/// Bloom filter of more changes than twice the plan's and the slack is
/// refused, and so are long lists of heads and too many `have`s; a filter
/// within the slack passes without the plan's changes being counted.
#[test]
fn a_bloom_filter_is_bounded_by_the_plans_size() {
    let small = message_with(vec![have_of(1_000)], hashes(3));
    check_sync_state_bounds(&small, || panic!("counted for a small filter")).unwrap();
    let big = message_with(vec![have_of(60_000)], hashes(3));
    assert_eq!(
        code(check_sync_state_bounds(&big, || 100)),
        "sync-state-too-large"
    );
    // A plan that large may well be described so.
    check_sync_state_bounds(&big, || 30_000).unwrap();
    let heads = message_with(Vec::new(), hashes(30_000));
    assert_eq!(
        code(check_sync_state_bounds(&heads, || 10)),
        "sync-state-too-large"
    );
    let many = message_with((0..5).map(|_| have_of(1)).collect(), Vec::new());
    assert_eq!(
        code(check_sync_state_bounds(&many, || 10)),
        "sync-state-too-large"
    );
    // Bits per entry past what any filter needs count as more entries.
    let mut bytes = Vec::new();
    uleb(1_000, &mut bytes);
    uleb(16 * 40, &mut bytes);
    uleb(7, &mut bytes);
    bytes.extend(vec![0u8; 1_000 * 16 * 40 / 8]);
    let wide = automerge::sync::Have {
        last_sync: Vec::new(),
        bloom: automerge::sync::BloomFilter::try_from(&bytes[..]).unwrap(),
    };
    assert_eq!(
        code(check_sync_state_bounds(
            &message_with(vec![wide], Vec::new()),
            || 100
        )),
        "sync-state-too-large"
    );
}

/// A batch runs its messages in order while their operations add up to
/// the batch's limit; past it the rest wait (even a small one after a
/// large one that did not fit runs, if it still fits); one refused on its
/// own is left to its round.
#[test]
fn a_batch_runs_messages_while_their_operations_fit() {
    let admitted = admit_batch(
        &[
            Some(400),
            None,
            Some(700),
            Some(200),
            Some(0),
            Some(300),
            Some(200),
        ],
        1_000,
    );
    assert_eq!(admitted, [true, true, false, true, true, true, false]);
    assert_eq!(admit_batch(&[], 10), Vec::<bool>::new());
}
