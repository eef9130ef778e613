//! Entry points for the fuzz targets in `fuzz/` (`cargo fuzz`): each takes
//! arbitrary bytes and drives one path hostile input reaches from the
//! network, through the same functions the handlers call. None may panic,
//! whatever the bytes; errors are the expected outcome of most inputs.
//! They live here, not in `fuzz/`, so they reach the crate's internals.
//!
//! The node catches panics inside Automerge's decoders (`decode`,
//! `load_document`) and refuses the input; the targets silence the panic
//! hook so such a caught panic is not taken for a crash, while any panic
//! that escapes still is.

/// Makes caught panics quiet (libFuzzer's hook would abort on them); call
/// once before fuzzing.
pub fn quiet_caught_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

use crate::federation::{Peers, Verifier};
use crate::plans::decode::{decode, load_document};
use crate::plans::protocol::{receive_round, Received};
use crate::plans::Bounds;
use automerge::sync::{self, SyncDoc};
use automerge::Automerge;
use base64::Engine;
use wrapsync_shared::incoming::check_incoming;
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::plan::{init_plan, render};
use wrapsync_shared::roles::Role;

/// What incoming Automerge bytes may amount to: a node's defaults
/// (`max_document_bytes`, `max_document_ops`).
const LIMIT: Bounds = Bounds {
    bytes: crate::config::DEFAULT_MAX_DOCUMENT_BYTES,
    ops: crate::config::DEFAULT_MAX_DOCUMENT_OPS,
};

fn editor(role: Role) -> Editor {
    Editor {
        role,
        member_id: None,
    }
}

/// A fresh plan, as a node makes one.
fn plan() -> Option<Automerge> {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    init_plan(&mut tx, "Fuzzed family").ok()?;
    tx.commit();
    Some(doc)
}

/// A device's sync message against a plan the node holds: decoded,
/// received into a scratch copy, and its changes checked against a
/// caregiver's rights, as `Plans::sync` does before keeping anything.
pub fn sync_message(data: &[u8]) {
    let Some(mut doc) = plan() else { return };
    let before = doc.get_heads();
    let mut state = sync::State::new();
    let Ok(message) = decode(data, LIMIT) else {
        return;
    };
    if let Ok(Received::Changes(scratch)) = receive_round(&mut doc, &mut state, Some(message)) {
        let _ = check_incoming(&scratch, &before, &editor(Role::Caregiver));
        let _ = render(&*scratch);
    }
    let _ = doc.generate_sync_message(&mut state);
}

/// A `POST /v1/plans/{id}/ops` body's operations, applied by a facilitator
/// to a fresh plan and rendered.
pub fn plan_ops(data: &[u8]) {
    let Ok(ops) = serde_json::from_slice::<Vec<Op>>(data) else {
        return;
    };
    let Some(mut doc) = plan() else { return };
    let mut tx = doc.transaction();
    let mut n = 0u32;
    let mut new_id = || {
        n += 1;
        format!("01J{n:023}")
    };
    let applied = apply_ops(&mut tx, &ops, &editor(Role::Facilitator), &mut new_id);
    if applied.is_ok() {
        tx.commit();
    } else {
        tx.rollback();
    }
    let _ = render(&doc);
}

/// A whole document from elsewhere (an import, a plan handed over by
/// another node): loaded as the node loads one (a panic inside Automerge
/// caught and refused: `cargo fuzz` found such inputs), and checked from
/// empty as the schema demands.
pub fn plan_document(data: &[u8]) {
    let Ok(doc) = load_document(data, LIMIT) else {
        return;
    };
    let _ = check_incoming(&doc, &[], &editor(Role::Supervisor));
    let _ = render(&doc);
    let _ = doc.get_changes(&[]).len();
}

/// A body sent to the hub's `POST /hub/v1/reports`: parsed and validated
/// as the hub does, then merged and published.
pub fn hub_submission(data: &[u8]) {
    let Ok(report) = crate::hub::api::parse_report(data) else {
        return;
    };
    let mut state = crate::hub::merge::HubState::default();
    state.merge("county-a", &report);
    state.merge("county-b", &report);
    let reports = state.period(report.period, report.vocabulary);
    let _ = crate::hub::publish::publish(
        report.period,
        report.vocabulary,
        &reports,
        &crate::hub::publish::Ledger::default(),
    );
}

/// A signed node-to-node request: `authorization`, path and body (split
/// at the first two zero bytes), checked by the verifier against one
/// known peer.
pub fn signed_request(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0);
    let authorization = parts.next().and_then(|a| std::str::from_utf8(a).ok());
    let path = parts
        .next()
        .and_then(|p| std::str::from_utf8(p).ok())
        .unwrap_or("/federation/v1/sync");
    let body = parts.next().unwrap_or_default();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let public_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes());
    let Ok(peers) = Peers::enrolled([("county-b", public_key.as_str())]) else {
        return;
    };
    let verifier = Verifier::new("county-a".into(), 0);
    let _ = verifier.verify(authorization, &peers, "POST", path, body, 1_800_000_000);
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::ReadDoc;

    /// Each entry point on inputs that reach deep and on garbage: what the
    /// fuzz targets start from, and a check that none panics on them.
    #[test]
    fn every_entry_point_takes_good_and_bad_input() {
        let garbage: &[&[u8]] = &[b"", b"\0", b"\x42\xff\x00\x01", b"{}", b"[", &[0u8; 64]];
        for data in garbage {
            sync_message(data);
            plan_ops(data);
            plan_document(data);
            hub_submission(data);
            signed_request(data);
        }
        // A real sync message with changes a caregiver may not make.
        let mut theirs = plan().expect("a plan");
        let mut tx = theirs.transaction();
        let _ = tx.put(automerge::ROOT, "title", "Renamed");
        tx.commit();
        let message = theirs
            .generate_sync_message(&mut sync::State::new())
            .map(sync::Message::encode)
            .expect("a message");
        sync_message(&message);
        plan_document(&theirs.save());
        plan_ops(br#"[{"op":"replace","path":"/vision","value":"Home"},{"op":"add","path":"/team","value":{"name":"A","role":"caregiver"}}]"#);
        hub_submission(
            br#"{"vocabulary":1,"period":"2026-10","version":3,"cells":[{"indicator":"youth_served","age_band":"6-11","value":30}]}"#,
        );
        signed_request(b"Bearer a.b.c\0/federation/v1/sync\0body");

        // A plan from a later schema version: unknown fields nested in an
        // unknown section and in a known item, an unknown enum value. Kept
        // whole, and its sync message reaches the role check.
        let mut future = plan().expect("a plan");
        let mut tx = future.transaction();
        let _ = tx.put(automerge::ROOT, "schema_version", 99);
        if let Ok(section) = tx.put_object(automerge::ROOT, "v99", automerge::ObjType::Map) {
            let _ = tx.put(&section, "note", "kept");
            if let Ok(list) = tx.put_object(&section, "list", automerge::ObjType::List) {
                let _ = tx.insert(&list, 0, 1);
            }
        }
        if let Ok(Some((_, enrollment))) = tx.get(automerge::ROOT, "enrollment") {
            let _ = tx.put(&enrollment, "phase", "aftercare");
            let _ = tx.put(&enrollment, "v99_field", true);
        }
        tx.commit();
        assert_eq!(
            check_incoming(&future, &[], &editor(Role::Supervisor)),
            Ok(())
        );
        assert_eq!(render(&future)["enrollment"]["phase"], "engagement");
        plan_document(&future.save());
        let message = future
            .generate_sync_message(&mut sync::State::new())
            .map(sync::Message::encode)
            .expect("a message");
        sync_message(&message);
    }

    /// Found by `cargo fuzz run plan_document`: `Automerge::load` panics
    /// on these bytes (in its column decoder); the node refuses them.
    #[test]
    fn a_document_that_panics_automerge_is_refused() {
        const CRASH: &[u8] = &[
            0x85, 0x6f, 0x4a, 0x83, 0x00, 0x00, 0x00, 0x00, 0x03, 0x0b, 0x00, 0x00, 0x01, 0x03,
            0x00, 0x01, 0x23, 0x02, 0x6f, 0x4a, 0x83, 0x00, 0x00, 0x00, 0x00, 0x03, 0x0b, 0x00,
            0x00, 0x01, 0x03, 0x00, 0x02, 0x00, 0x01, 0x29, 0x00, 0x02, 0x03, 0xf8, 0x02, 0x03,
            0xf8,
        ];
        assert!(std::panic::catch_unwind(|| Automerge::load(CRASH)).is_err());
        assert!(load_document(CRASH, LIMIT).is_err());
    }

    /// Found by `cargo fuzz run sync_message`: a message whose `have`
    /// holds a malformed Bloom filter.
    #[test]
    fn a_sync_message_with_a_bad_bloom_filter_is_harmless() {
        const BAD_BLOOM: &[u8] = &[0x42, 0x00, 0x00, 0x01, 0x00, 0x03, 0x01, 0x00, 0x00, 0x00];
        sync_message(BAD_BLOOM);
        let err = decode(BAD_BLOOM, LIMIT).unwrap_err();
        assert_eq!(err.code(), "malformed-sync-message");
        // Four billion probes, each lookup allocating them all.
        let mut probes = vec![
            0x42, 0x00, 0x00, 0x01, 0x00, 0x08, 0x01, 0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff,
        ];
        probes.push(0x00);
        let err = decode(&probes, LIMIT).unwrap_err();
        assert!(err.to_string().contains("probes"), "{err}");
    }
}
