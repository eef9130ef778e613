//! A device's sync state as stored: all of what the protocol keeps between
//! rounds, not just the shared heads `sync::State::encode` keeps. When a
//! device's next round goes through another process (or after a restart),
//! the state read back knows what the node last sent and that it already
//! answered, so a round with nothing new gets no answer; with the shared
//! heads alone the node would answer every round, and a client that syncs
//! until both sides are quiet would never stop.
//!
//! Stored as CBOR; rows in Automerge's own format (first byte `0x43`,
//! written by earlier versions) are still read.

use automerge::sync::{self, BloomFilter, Have};
use automerge::ChangeHash;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Stored {
    shared_heads: Vec<ChangeHash>,
    last_sent_heads: Vec<ChangeHash>,
    their_heads: Option<Vec<ChangeHash>>,
    their_need: Option<Vec<ChangeHash>>,
    /// Each `Have`: its last sync and its bloom filter's bytes.
    their_have: Option<Vec<(Vec<ChangeHash>, Vec<u8>)>>,
    in_flight: bool,
    have_responded: bool,
}

/// Automerge's own encoding starts with this byte.
const AUTOMERGE_STATE: u8 = 0x43;

pub(crate) fn encode(state: &sync::State) -> Vec<u8> {
    let stored = Stored {
        shared_heads: state.shared_heads.clone(),
        last_sent_heads: state.last_sent_heads.clone(),
        their_heads: state.their_heads.clone(),
        their_need: state.their_need.clone(),
        their_have: state.their_have.as_ref().map(|haves| {
            haves
                .iter()
                .map(|h| (h.last_sync.clone(), h.bloom.to_bytes()))
                .collect()
        }),
        in_flight: state.in_flight,
        have_responded: state.have_responded,
    };
    let mut out = Vec::new();
    match ciborium::into_writer(&stored, &mut out) {
        Ok(()) => out,
        // Cannot fail writing to memory; the shared heads would do.
        Err(_) => state.encode(),
    }
}

/// The stored state; `None` if the bytes are neither format.
pub(crate) fn decode(bytes: &[u8]) -> Option<sync::State> {
    if bytes.first() == Some(&AUTOMERGE_STATE) {
        return sync::State::decode(bytes).ok();
    }
    let stored: Stored = ciborium::from_reader(bytes).ok()?;
    let mut state = sync::State::new();
    state.shared_heads = stored.shared_heads;
    state.last_sent_heads = stored.last_sent_heads;
    state.their_heads = stored.their_heads;
    state.their_need = stored.their_need;
    state.their_have = match stored.their_have {
        None => None,
        Some(haves) => Some(
            haves
                .into_iter()
                .map(|(last_sync, bloom)| {
                    Some(Have {
                        last_sync,
                        bloom: BloomFilter::try_from(bloom.as_slice()).ok()?,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        ),
    };
    state.in_flight = stored.in_flight;
    state.have_responded = stored.have_responded;
    Some(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::SyncDoc;
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    /// After a round trip through storage a node with nothing new stays
    /// quiet, as it would with the state in memory.
    #[test]
    fn a_stored_state_keeps_the_node_quiet() {
        let mut node = Automerge::new();
        let mut tx = node.transaction();
        tx.put(ROOT, "k", "v").unwrap_or_default();
        tx.commit();
        let mut device = Automerge::new();
        let (mut ns, mut ds) = (sync::State::new(), sync::State::new());
        for _ in 0..10 {
            let from_device = device.generate_sync_message(&mut ds);
            if let Some(m) = from_device {
                node.receive_sync_message(&mut ns, m).unwrap_or_default();
            }
            ns = decode(&encode(&ns)).unwrap_or_default();
            match node.generate_sync_message(&mut ns) {
                Some(m) => device.receive_sync_message(&mut ds, m).unwrap_or_default(),
                None => break,
            }
        }
        assert_eq!(device.get_heads(), node.get_heads());
        let mut again = decode(&encode(&ns)).unwrap_or_default();
        assert!(node.generate_sync_message(&mut again).is_none());
        // A row written by Automerge's own encoding still reads.
        let old = decode(&ns.encode()).unwrap_or_default();
        assert_eq!(old.shared_heads, ns.shared_heads);
        assert!(decode(b"\xff\x00").is_none());
    }
}
