//! Revoked login sessions, as the access path sees them. Access tokens are
//! checked without the database; each carries its session (`sid`), and a
//! session revoked in the database (a reused refresh token, a disabled
//! user, by this process, another sharing the database or the `wrapsync
//! user disable` command) is read into this set within [`POLL_EVERY`], so
//! its access tokens stop working then rather than at their `exp`.
//!
//! Only revocations whose access tokens may be unexpired are kept (those
//! of the last access-token lifetime, plus leeway and a minute for clocks):
//! the set is as large as the revocations of the last quarter hour, not of
//! all time. One indexed query a second per process keeps it current; it
//! needs no notification channel and works alike on SQLite and PostgreSQL.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::time::Duration;

/// How often the set is read afresh from the database: the longest a
/// revoked session's access token still works on another process.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Sessions revoked recently (id → when, Unix ms).
pub struct RevokedSessions {
    revoked: RwLock<HashMap<String, i64>>,
    /// How far back revocations matter, in ms.
    window_ms: i64,
}

impl RevokedSessions {
    /// A set for access tokens living `access_ttl_secs`.
    pub fn new(access_ttl_secs: u64) -> Self {
        let window = access_ttl_secs + super::tokens::LEEWAY_SECS + 60;
        RevokedSessions {
            revoked: RwLock::new(HashMap::new()),
            window_ms: i64::try_from(window.saturating_mul(1000)).unwrap_or(i64::MAX),
        }
    }

    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked.read().contains_key(session_id)
    }

    /// Notes a revocation this process just wrote, at once.
    pub fn insert(&self, session_id: &str, at: i64) {
        self.revoked.write().insert(session_id.to_string(), at);
    }

    /// The oldest revocation time (Unix ms) still worth reading at `now`.
    pub fn since(&self, now: i64) -> i64 {
        now.saturating_sub(self.window_ms)
    }

    /// Takes in what the database holds since `since(now)`, keeping local
    /// insertions the read may have missed, and forgets revocations whose
    /// access tokens have all expired.
    pub fn refresh(&self, read: Vec<(String, i64)>, now: i64) {
        let since = self.since(now);
        let mut revoked = self.revoked.write();
        revoked.retain(|_, at| *at >= since);
        revoked.extend(read);
    }

    pub fn len(&self) -> usize {
        self.revoked.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_are_kept_while_their_tokens_may_live() {
        let set = RevokedSessions::new(900);
        let now = 10_000_000_000;
        set.insert("local", now);
        set.refresh(vec![("old".into(), set.since(now))], now);
        assert!(set.is_revoked("local") && set.is_revoked("old"));
        // A quarter hour and a bit later, both are forgotten.
        set.refresh(vec![], now + 966_001);
        assert!(set.is_empty());
    }
}
