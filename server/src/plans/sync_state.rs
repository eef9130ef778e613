//! A device's sync state as stored: all of what the protocol keeps between
//! rounds, not just the shared heads `sync::State::encode` keeps. When a
//! device's next round goes through another process (or after a restart),
//! the state read back knows what the node last sent and that it already
//! answered, so a round with nothing new gets no answer; with the shared
//! heads alone the node would answer every round, and a client that syncs
//! until both sides are quiet would never stop.
//!
//! Kept in memory (`StateCache`) and in the database per (device, plan)
//! by `Plans::sync_state` and `Plans::keep_sync_state`.
//!
//! Stored as CBOR; rows in Automerge's own format (first byte `0x43`,
//! written by earlier versions) are still read.

use super::Plans;
use crate::db::now_ms;
use crate::error::ApiError;
use crate::store::plans::{self as stored, SyncStateKey};
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

/// [`encode`], bounded: a state whose encoding is over `max_bytes` is kept
/// without what the device last said it has and needs (its `have` and
/// `need`), and failing that with the shared heads alone. Nothing is lost:
/// the node then asks the device again, a round later. Answers the bytes
/// and the state they hold.
pub(crate) fn encode_bounded(state: sync::State, max_bytes: usize) -> (Vec<u8>, sync::State) {
    let encoded = encode(&state);
    if encoded.len() <= max_bytes {
        return (encoded, state);
    }
    let mut lighter = state;
    lighter.their_have = None;
    lighter.their_need = None;
    let encoded = encode(&lighter);
    if encoded.len() <= max_bytes {
        return (encoded, lighter);
    }
    let mut bare = sync::State::new();
    bare.shared_heads = lighter.shared_heads;
    let encoded = encode(&bare);
    if encoded.len() <= max_bytes {
        return (encoded, bare);
    }
    let bare = sync::State::new();
    (encode(&bare), bare)
}

/// Sync states kept in memory by (device, plan), least recently used
/// first out, bounded both in number and in their encoded bytes.
pub(crate) struct StateCache {
    entries: lru::LruCache<(SyncStateKey, String), (sync::State, usize)>,
    bytes: usize,
    max_bytes: usize,
}

impl StateCache {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        StateCache {
            entries: lru::LruCache::new(
                std::num::NonZeroUsize::new(max_entries).unwrap_or(std::num::NonZeroUsize::MIN),
            ),
            bytes: 0,
            max_bytes,
        }
    }

    pub(crate) fn get(&mut self, key: &(SyncStateKey, String)) -> Option<sync::State> {
        self.entries.get(key).map(|(state, _)| state.clone())
    }

    /// Keeps `state` (`size`: its encoded bytes), dropping the least
    /// recently used until the cache is within its bytes; a state larger
    /// than the whole budget is not kept (it is read back when needed).
    pub(crate) fn put(&mut self, key: (SyncStateKey, String), state: sync::State, size: usize) {
        self.pop(&key);
        if size > self.max_bytes {
            return;
        }
        if let Some((_, (_, dropped))) = self.entries.push(key, (state, size)) {
            self.bytes -= dropped;
        }
        self.bytes += size;
        while self.bytes > self.max_bytes {
            match self.entries.pop_lru() {
                Some((_, (_, dropped))) => self.bytes -= dropped,
                None => break,
            }
        }
    }

    pub(crate) fn pop(&mut self, key: &(SyncStateKey, String)) {
        if let Some((_, size)) = self.entries.pop(key) {
            self.bytes -= size;
        }
    }

    /// Forgets every device's state for `plan`.
    pub(crate) fn forget_plan(&mut self, plan: &str) {
        let keys: Vec<(SyncStateKey, String)> = self
            .entries
            .iter()
            .filter(|((_, p), _)| p == plan)
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            self.pop(&key);
        }
    }

    #[cfg(test)]
    fn len_and_bytes(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }
}

impl Plans {
    /// With a shared database it is read from the database every time:
    /// the device's last round may have gone through another process.
    pub(super) async fn sync_state(
        &self,
        device: &SyncStateKey,
        plan: &str,
    ) -> Result<sync::State, ApiError> {
        let key = (device.clone(), plan.to_string());
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
        Ok(stored.and_then(|bytes| decode(&bytes)).unwrap_or_default())
    }

    /// Keeps a device's sync state in memory and on disk: without waiting
    /// when this process alone serves the device (losing it only costs the
    /// next round some resending), else before answering, so the device's
    /// next round finds it whichever process takes it. A state is kept
    /// within `sync_state_max_bytes` (see `sync_state::encode_bounded`),
    /// and each user within `sync_states_per_user` (the store evicts their
    /// least recently used).
    pub(super) async fn keep_sync_state(
        &self,
        device: &SyncStateKey,
        plan: &str,
        state: sync::State,
    ) {
        let (encoded, state) = encode_bounded(state, self.sync_state_max_bytes);
        let size = encoded.len();
        let key = (device.clone(), plan.to_string());
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

    /// A state with a huge `have` is stored without it, within the bound;
    /// a small one is stored whole.
    #[test]
    fn an_encoded_state_stays_within_its_bound() {
        let mut big = sync::State::new();
        big.shared_heads = vec![ChangeHash([1; 32])];
        let hashes: Vec<ChangeHash> = (0..2000u32)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_le_bytes());
                ChangeHash(h)
            })
            .collect();
        big.their_have = Some(vec![Have {
            last_sync: Vec::new(),
            bloom: BloomFilter::from_hashes(hashes.iter()),
        }]);
        big.their_need = Some(hashes.clone());
        let (whole, kept) = encode_bounded(big.clone(), 1 << 20);
        assert_eq!(whole, encode(&big));
        assert!(kept.their_have.is_some());
        let (bounded, kept) = encode_bounded(big.clone(), 4096);
        assert!(bounded.len() <= 4096, "{}", bounded.len());
        assert!(kept.their_have.is_none() && kept.their_need.is_none());
        assert_eq!(kept.shared_heads, big.shared_heads);
        assert_eq!(
            decode(&bounded).map(|s| s.shared_heads),
            Some(big.shared_heads.clone())
        );
        // Heads alone over the bound: a fresh state.
        big.their_heads = Some(hashes);
        let (tiny, _) = encode_bounded(big, 200);
        assert!(tiny.len() <= 200, "{}", tiny.len());
    }

    #[test]
    fn the_state_cache_is_bounded_in_bytes_least_recently_used_first() {
        let key = |d: &str, p: &str| (SyncStateKey::PeerHere(d.to_string()), p.to_string());
        let mut cache = StateCache::new(100, 1000);
        cache.put(key("a", "p"), sync::State::new(), 400);
        cache.put(key("b", "p"), sync::State::new(), 400);
        assert!(cache.get(&key("a", "p")).is_some()); // a is now the most recent
        cache.put(key("c", "q"), sync::State::new(), 400);
        assert!(cache.get(&key("b", "p")).is_none(), "b went first");
        assert_eq!(cache.len_and_bytes(), (2, 800));
        // Replacing an entry counts its new size only.
        cache.put(key("a", "p"), sync::State::new(), 100);
        assert_eq!(cache.len_and_bytes(), (2, 500));
        // Larger than the whole budget: not kept, and nothing else dropped.
        cache.put(key("d", "p"), sync::State::new(), 5000);
        assert_eq!(cache.len_and_bytes(), (2, 500));
        cache.forget_plan("p");
        assert_eq!(cache.len_and_bytes(), (1, 400));
        // The number of entries is bounded too.
        let mut few = StateCache::new(2, 1 << 20);
        for d in ["x", "y", "z"] {
            few.put(key(d, "p"), sync::State::new(), 10);
        }
        assert_eq!(few.len_and_bytes(), (2, 20));
    }
}
