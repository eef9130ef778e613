//! Password guessing, slowed per account. The per-address bucket
//! (`rate_limit_login_per_ip`) alone lets anyone with several addresses
//! guess at the full rate on each; here failures count against the
//! username tried, whoever tries it.
//!
//! - From one network (an IPv4 /24, an IPv6 /64), an account takes
//!   [`FREE_FAILURES`] wrong passwords; after that each further one locks
//!   the account *for that network* for twice as long as the last, from
//!   1 s up to [`MAX_LOCK`]. While locked, no password is checked: the
//!   right one is refused too (`429`, `Retry-After`).
//! - Across networks, after [`ACCOUNT_FREE_FAILURES`] the account locks the
//!   same way for every network that has failed against it. A network with
//!   no failures against it still gets its attempts, so an attacker cannot
//!   lock a person out from where they usually log in; but once more than
//!   [`MAX_NETWORKS`] networks have failed against one account (a spread
//!   attack), the account lock holds for every network.
//! - Failures are forgotten [`FORGET_AFTER`] after the last; a success
//!   clears its network's count.
//!
//! Unknown usernames are counted exactly like real ones (no oracle). The
//! table is in memory, at most [`MAX_ACCOUNTS`] usernames: when full, the
//! forgettable entries go, then those whose last failure is oldest, so an
//! attacker cycling usernames cannot grow it. Nothing is written per
//! attempt. A restart forgets every count, as it refills the buckets.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong passwords from one network before its lock starts.
pub const FREE_FAILURES: u32 = 5;
/// Wrong passwords from all networks before the account lock starts.
pub const ACCOUNT_FREE_FAILURES: u32 = 20;
/// The longest lock: 15 minutes.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten this long after the last one.
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Networks remembered per account; more means a spread attack.
pub const MAX_NETWORKS: usize = 16;
/// Usernames remembered: about 10,000 × (64 + 16 × 48) bytes at most.
pub const MAX_ACCOUNTS: usize = 10_000;

/// The network an address counts for: its /24 (IPv4) or /64 (IPv6), what
/// one household, office or mobile carrier's customer usually holds.
pub fn network(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Err(_) => address.chars().take(64).collect(),
    }
}

/// Failures and a lock.
#[derive(Clone, Copy)]
struct Count {
    failures: u32,
    locked_until: Option<Instant>,
}

impl Count {
    fn new() -> Self {
        Count {
            failures: 0,
            locked_until: None,
        }
    }

    fn locked_for(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// One more failure, locking for a doubling time past `free`.
    fn fail(&mut self, free: u32, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.failures > free {
            let doublings = (self.failures - free - 1).min(20);
            let lock = Duration::from_secs(1u64 << doublings).min(MAX_LOCK);
            self.locked_until = Some(now + lock);
        }
    }
}

struct Account {
    all: Count,
    networks: Vec<(String, Count)>,
    /// More networks failed than `MAX_NETWORKS`: no network is exempt.
    spread: bool,
    last_failure: Instant,
}

impl Account {
    fn forgettable(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_failure) >= FORGET_AFTER
    }
}

/// Failed logins per account and network.
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Account>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginThrottle {
    pub fn new() -> Self {
        LoginThrottle {
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Lets `username` try a password from `address` at `now`, or says
    /// how long until it may. The attempt counts as a failure at once,
    /// under the lock, and a right password takes it back
    /// ([`LoginThrottle::succeeded`]): attempts sent in parallel cannot all
    /// pass while the first ones are still being hashed.
    pub fn admit(&self, username: &str, address: &str, now: Instant) -> Result<(), Duration> {
        let mut accounts = self.accounts.lock();
        check(&accounts, username, address, now)?;
        failed(&mut accounts, username, address, now);
        Ok(())
    }

    /// A right password: its network's failures are forgiven, and the
    /// attempt's own count taken back.
    pub fn succeeded(&self, username: &str, address: &str) {
        let mut accounts = self.accounts.lock();
        let key = key(username);
        let Some(account) = accounts.get_mut(key) else {
            return;
        };
        let net = network(address);
        account.networks.retain(|(n, _)| *n != net);
        account.all.failures = account.all.failures.saturating_sub(1);
        if account.all.failures == 0 && account.networks.is_empty() {
            accounts.remove(key);
        }
    }

    /// Usernames held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.accounts.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `username` may try a password from `address` at `now`, or how
/// long until it may.
fn check(
    accounts: &HashMap<String, Account>,
    username: &str,
    address: &str,
    now: Instant,
) -> Result<(), Duration> {
    let Some(account) = accounts.get(key(username)) else {
        return Ok(());
    };
    if account.forgettable(now) {
        return Ok(());
    }
    let net = network(address);
    let mine = account.networks.iter().find(|(n, _)| *n == net);
    if let Some(wait) = mine.and_then(|(_, c)| c.locked_for(now)) {
        return Err(wait);
    }
    if mine.is_some() || account.spread {
        if let Some(wait) = account.all.locked_for(now) {
            return Err(wait);
        }
    }
    Ok(())
}

/// Counts a failure (a wrong password, an unknown or disabled user).
fn failed(accounts: &mut HashMap<String, Account>, username: &str, address: &str, now: Instant) {
    let key = key(username);
    if !accounts.contains_key(key) {
        make_room(accounts, now);
    }
    let account = accounts.entry(key.to_string()).or_insert_with(|| Account {
        all: Count::new(),
        networks: Vec::new(),
        spread: false,
        last_failure: now,
    });
    if account.forgettable(now) {
        account.all = Count::new();
        account.networks.clear();
        account.spread = false;
    }
    account.last_failure = now;
    account.all.fail(ACCOUNT_FREE_FAILURES, now);
    let net = network(address);
    let room = account.networks.len() < MAX_NETWORKS;
    match account.networks.iter_mut().find(|(n, _)| *n == net) {
        Some((_, count)) => count.fail(FREE_FAILURES, now),
        None if room => {
            let mut count = Count::new();
            count.fail(FREE_FAILURES, now);
            account.networks.push((net, count));
        }
        None => account.spread = true,
    }
}

/// Usernames are at most 64 characters: a longer one is counted as its
/// first 64, so a name cannot make an entry large.
fn key(username: &str) -> &str {
    match username.char_indices().nth(64) {
        Some((end, _)) => &username[..end],
        None => username,
    }
}

/// Frees a slot when the table is full: forgettable entries first, else
/// the one with the fewest failures, the oldest of those. Fewest first: an
/// attacker who floods the table with made-up usernames (one failure each)
/// must not push out the account they are guessing, and with it its lock.
fn make_room(accounts: &mut HashMap<String, Account>, now: Instant) {
    if accounts.len() < MAX_ACCOUNTS {
        return;
    }
    accounts.retain(|_, a| !a.forgettable(now));
    if accounts.len() < MAX_ACCOUNTS {
        return;
    }
    let oldest = accounts
        .iter()
        .min_by_key(|(_, a)| (a.all.failures, a.last_failure))
        .map(|(k, _)| k.clone());
    if let Some(oldest) = oldest {
        accounts.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// The two halves of `admit`, apart.
    impl LoginThrottle {
        fn check(&self, username: &str, address: &str, now: Instant) -> Result<(), Duration> {
            check(&self.accounts.lock(), username, address, now)
        }

        fn failed(&self, username: &str, address: &str, now: Instant) {
            failed(&mut self.accounts.lock(), username, address, now)
        }
    }

    #[test]
    fn parallel_attempts_count_before_their_passwords_are_checked() {
        let t = LoginThrottle::new();
        let t0 = Instant::now();
        // Ten attempts arrive together: only the free ones and the one
        // that starts the lock get in.
        let admitted = (0..10)
            .filter(|_| t.admit("ana", "10.0.0.1", t0).is_ok())
            .count();
        assert_eq!(admitted as u32, FREE_FAILURES + 1);
        // The right password gives its attempt back and clears the network.
        let t = LoginThrottle::new();
        assert!(t.admit("ana", "10.0.0.1", t0).is_ok());
        t.succeeded("ana", "10.0.0.1");
        assert!(t.is_empty());
    }

    #[test]
    fn a_network_gets_free_failures_then_doubling_locks() {
        let t = LoginThrottle::new();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert!(t.check("ana", "10.0.0.1", t0).is_ok());
            t.failed("ana", "10.0.0.1", t0);
        }
        assert!(t.check("ana", "10.0.0.1", t0).is_ok());
        t.failed("ana", "10.0.0.2", t0);
        assert_eq!(t.check("ana", "10.0.0.9", t0), Err(S));
        t.failed("ana", "10.0.0.1", t0 + S);
        assert_eq!(t.check("ana", "10.0.0.1", t0 + S), Err(2 * S));
        // Another network, another account: untouched.
        assert!(t.check("ana", "10.0.1.1", t0 + S).is_ok());
        assert!(t.check("ben", "10.0.0.1", t0 + S).is_ok());
        // The lock lifts; a success forgives the network.
        assert!(t.check("ana", "10.0.0.1", t0 + 3 * S).is_ok());
        t.succeeded("ana", "10.0.0.1");
        assert!(t.check("ana", "10.0.0.1", t0 + 3 * S).is_ok());
    }

    #[test]
    fn the_lock_is_capped_and_forgotten() {
        let t = LoginThrottle::new();
        let t0 = Instant::now();
        for _ in 0..100 {
            t.failed("ana", "10.0.0.1", t0);
        }
        assert_eq!(t.check("ana", "10.0.0.1", t0), Err(MAX_LOCK));
        assert!(t.check("ana", "10.0.0.1", t0 + FORGET_AFTER).is_ok());
    }

    #[test]
    fn a_spread_attack_locks_every_network_but_a_few_do_not() {
        let t = LoginThrottle::new();
        let t0 = Instant::now();
        for i in 0..ACCOUNT_FREE_FAILURES + 1 {
            t.failed("ana", &format!("10.{}.0.1", i % 4), t0);
        }
        // Failed networks wait; a clean one is let through.
        assert!(t.check("ana", "10.0.0.1", t0).is_err());
        assert!(t.check("ana", "192.168.0.1", t0).is_ok());
        for i in 0..MAX_NETWORKS + 1 {
            t.failed("ana", &format!("10.{i}.9.1"), t0);
        }
        assert!(t.check("ana", "192.168.0.1", t0).is_err());
    }

    #[test]
    fn cycling_usernames_cannot_grow_the_table() {
        let t = LoginThrottle::new();
        let t0 = Instant::now();
        for i in 0..MAX_ACCOUNTS + 50 {
            t.failed(&format!("user{i}"), "10.0.0.1", t0);
        }
        assert_eq!(t.len(), MAX_ACCOUNTS);
        assert_eq!(network("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    }

    #[test]
    fn flooding_the_table_does_not_push_out_a_locked_account() {
        let t = LoginThrottle::new();
        let t0 = Instant::now();
        for _ in 0..=FREE_FAILURES {
            t.failed("ana", "10.0.0.1", t0);
        }
        assert!(t.check("ana", "10.0.0.1", t0).is_err());
        // Made-up usernames, each failing once, later than ana's guesses
        // (while her first lock, a second, still holds).
        let later = t0 + S / 2;
        for i in 0..2 * MAX_ACCOUNTS {
            t.failed(&format!("fake{i}"), "10.9.0.1", later);
        }
        assert!(t.check("ana", "10.0.0.1", later).is_err());
    }
}
