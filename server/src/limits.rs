//! Rate limits: a token bucket per key (a user id, a peer node id, a client
//! address), kept in memory. A node restart refills every bucket, which is
//! fine for a limit whose job is to keep one caller from crowding out the
//! rest, not to meter anyone.
//!
//! Written here rather than taken from `governor`: a keyed map of two
//! numbers per caller, with time passed in so tests need no sleeps, is less
//! than that crate's keyed-store and clock plumbing would take.

use crate::error::ApiError;
use parking_lot::Mutex;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once after a quiet spell (the bucket's size).
    pub burst: f64,
}

impl RateLimit {
    fn valid(&self) -> bool {
        self.per_second > 0.0 && self.burst >= 1.0
    }
}

/// A bucket: tokens left as of `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets this many keys and over are swept of full ones (callers quiet
/// long enough that forgetting them changes nothing).
const SWEEP_AT: usize = 10_000;

/// One limit applied per key.
pub struct Buckets {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    /// Buckets for `limit`; `None` when it is not a usable limit.
    pub fn new(limit: RateLimit) -> Option<Self> {
        limit.valid().then(|| Buckets {
            limit,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a token for `key` at `now`, or says how long until one is
    /// there.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.take_n(key, 1.0, now)
    }

    /// Takes `n` tokens for `key` at `now` (bytes, for a byte budget), or
    /// says how long until there are that many; more than the burst is
    /// never there (the caller's size limit keeps below it).
    pub fn take_n(&self, key: &str, n: f64, now: Instant) -> Result<(), Duration> {
        let RateLimit { per_second, burst } = self.limit;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < burst
            });
        }
        // Looked up before inserting: the key is copied once per caller,
        // not once per request.
        if !buckets.contains_key(key) {
            buckets.insert(
                key.to_string(),
                Bucket {
                    tokens: burst,
                    at: now,
                },
            );
        }
        let Some(bucket) = buckets.get_mut(key) else {
            return Ok(());
        };
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now;
        if bucket.tokens >= n {
            bucket.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((n.min(burst) - bucket.tokens) / per_second).max(0.0),
            ))
        }
    }
}

impl Buckets {
    /// Whether `key` may write at `now`: yes unless an earlier write left
    /// its bucket in debt, else how long until it is out of debt. Takes
    /// nothing: [`Buckets::spend`] charges what was written, once known.
    pub fn ready(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let RateLimit { per_second, burst } = self.limit;
        let buckets = self.buckets.lock();
        let Some(bucket) = buckets.get(key) else {
            return Ok(());
        };
        let tokens = (bucket.tokens
            + now.saturating_duration_since(bucket.at).as_secs_f64() * per_second)
            .min(burst);
        if tokens >= 0.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(-tokens / per_second))
        }
    }

    /// Charges `cost` to `key` at `now`, into debt if need be: one write
    /// larger than the bucket (a phone back from weeks offline) goes
    /// through, and its author then waits for it like for many small ones.
    pub fn spend(&self, key: &str, cost: f64, now: Instant) {
        let RateLimit { per_second, burst } = self.limit;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst) - cost;
        bucket.at = now;
    }
}

impl Buckets {
    /// Returns a token taken for `key` whose work did not happen after all
    /// (never above the burst).
    pub fn give_back(&self, key: &str, now: Instant) {
        let RateLimit { per_second, burst } = self.limit;
        if let Some(bucket) = self.buckets.lock().get_mut(key) {
            let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
            bucket.tokens = (bucket.tokens + refilled + 1.0).min(burst);
            bucket.at = now;
        }
    }
}

/// The limits on operations per message and per batch, by route and role
/// (see `Config`).
#[derive(Debug, Clone, Copy)]
pub struct MessageOps {
    /// A device's message from a member of a family's team who does not
    /// run plans (caregivers, youth, providers, advocates, supports).
    pub member: u64,
    /// A device's message or an imported plan from a facilitator or a
    /// supervisor.
    pub staff: u64,
    /// One plan's message from a peer node.
    pub peer: u64,
    /// All the messages of one peer batch together.
    pub peer_batch: u64,
}

impl MessageOps {
    /// Generous enough that no honest sender meets them (see `Config`).
    pub const DEFAULT: MessageOps = MessageOps {
        member: 50_000,
        staff: 250_000,
        peer: 500_000,
        peer_batch: 2_000_000,
    };
}

/// The node's limits on callers.
pub struct RateLimits {
    pub per_user: Option<Buckets>,
    pub per_peer: Option<Buckets>,
    pub login_per_ip: Option<Buckets>,
    /// Body bytes per peer node, taken before a body is read.
    pub peer_bytes: Option<Buckets>,
    /// Body bytes per signed-in user, taken before a body is read.
    pub user_bytes: Option<Buckets>,
    /// New plans (replicas and handovers of plans never held here) per
    /// peer node.
    pub peer_new_plans: Option<Buckets>,
    /// Body bytes being read, all requests together.
    pub buffered: std::sync::Arc<BufferedBytes>,
}

/// The body bytes every request being read may hold together: what bounds
/// the memory that slow or stalled uploads can pin, however many there
/// are. A body takes its declared length (or each piece, when it has
/// none) before reading it, and gives it back when it is dropped.
pub struct BufferedBytes {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl BufferedBytes {
    pub fn new(limit: usize) -> std::sync::Arc<Self> {
        std::sync::Arc::new(BufferedBytes {
            limit,
            used: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Holds `n` more bytes for `held`, unless that would pass the limit.
    pub fn reserve(self: &std::sync::Arc<Self>, held: &mut Held, n: usize) -> bool {
        use std::sync::atomic::Ordering;
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if taken {
            held.bytes += n;
            held.pool.get_or_insert_with(|| self.clone());
        }
        taken
    }
}

/// Bytes a body holds of [`BufferedBytes`]; given back on drop.
#[derive(Default)]
pub struct Held {
    pool: Option<std::sync::Arc<BufferedBytes>>,
    bytes: usize,
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.used
                .fetch_sub(self.bytes, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

/// Takes a token from `buckets` (none: no limit) for `key`: over the limit
/// is `429` with the seconds to wait. Callers audit the refusal, as they
/// know who was refused.
pub fn admit(buckets: Option<&Buckets>, key: &str) -> Result<(), ApiError> {
    match buckets {
        None => Ok(()),
        Some(buckets) => buckets
            .take(key, Instant::now())
            .map_err(|wait| ApiError::RateLimited(retry_after_secs(wait))),
    }
}

/// Whole seconds for `Retry-After`, never 0 (a client told 0 retries at
/// once and is refused again).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let buckets = Buckets::new(RateLimit {
            per_second: 2.0,
            burst: 3.0,
        })
        .unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            buckets.take("ana", t0).unwrap();
        }
        let wait = buckets.take("ana", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        buckets.take("ben", t0).unwrap();
        buckets
            .take("ana", t0 + Duration::from_millis(500))
            .unwrap();
        assert!(buckets
            .take("ana", t0 + Duration::from_millis(500))
            .is_err());
    }

    #[test]
    fn a_byte_budget_takes_many_tokens_at_once() {
        let bytes = Buckets::new(RateLimit {
            per_second: 1000.0,
            burst: 4000.0,
        })
        .unwrap();
        let t0 = Instant::now();
        bytes.take_n("b", 3000.0, t0).unwrap();
        assert_eq!(bytes.take_n("b", 3000.0, t0), Err(Duration::from_secs(2)));
        bytes
            .take_n("b", 3000.0, t0 + Duration::from_secs(2))
            .unwrap();
    }

    #[test]
    fn buffered_bytes_are_given_back_when_dropped() {
        let pool = BufferedBytes::new(100);
        let mut a = Held::default();
        assert!(pool.reserve(&mut a, 60));
        let mut b = Held::default();
        assert!(!pool.reserve(&mut b, 60));
        assert!(pool.reserve(&mut b, 40));
        assert!(!pool.reserve(&mut b, 1));
        drop(a);
        assert_eq!(pool.used(), 40);
        assert!(pool.reserve(&mut b, 60));
        drop(b);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn a_byte_budget_goes_into_debt_and_is_waited_out() {
        let budget = Buckets::new(RateLimit {
            per_second: 100.0,
            burst: 1000.0,
        })
        .unwrap();
        let t0 = Instant::now();
        budget.ready("ana", t0).unwrap();
        budget.spend("ana", 600.0, t0);
        budget.ready("ana", t0).unwrap();
        // One write past what is left still goes: then its author waits.
        budget.spend("ana", 900.0, t0);
        assert_eq!(budget.ready("ana", t0), Err(Duration::from_secs(5)));
        budget.ready("ben", t0).unwrap();
        assert!(budget.ready("ana", t0 + Duration::from_secs(4)).is_err());
        budget.ready("ana", t0 + Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn unusable_limits_are_none() {
        assert!(Buckets::new(RateLimit {
            per_second: 0.0,
            burst: 5.0
        })
        .is_none());
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
