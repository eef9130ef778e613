//! End-to-end harness for wrapsync: starts the real `wrapsync` binary on port
//! 0 with its own data directory (and, for PostgreSQL, its own database), and
//! talks to it over HTTP like a phone or a browser would.
//!
//! Tests never synchronise with sleeps: they wait for a condition with a
//! deadline ([`wait_until`], [`wait_for`]), and the node tells us when it is
//! listening by printing one JSON line.
//!
//! Harness failures (the binary is missing, PostgreSQL is down, the node died)
//! are reported as [`HarnessError`] by the `try_…` functions and as panics
//! with the node's log by the convenience wrappers, which is what a failing
//! test wants.

mod accounts;
mod demo;
mod device;
mod http;
mod hub;
mod node;
mod openapi;
mod postgres;
mod process;
mod proxy;
pub mod raw;
mod tls;
mod tokens;
pub mod usage;

pub use accounts::{password_of, users, TestUser, USERS};
pub use demo::{free_ports, Demo};
pub use device::Device;
pub use http::{encode_query, Reply};
pub use hub::{unix_now, NodeSigner, TestHub, HUB_ID};
pub use node::{Backend, TestNode};
pub use openapi::{assert_documented_paths_exist, openapi_document, plain_get_paths};
pub use proxy::{proxy_seed, Faults, Proxy, Stats};
pub use tls::{TestCa, TlsFront};
pub use tokens::{
    decode_claims, flip_signature, forge_alg_none, sign_hmac, sign_hs256, with_header,
};

use std::fmt;
use std::time::{Duration, Instant};

/// Why the harness could not do what a test asked (not a test failure by
/// itself: the wrappers turn it into a panic with context).
#[derive(Debug)]
pub struct HarnessError(String);

impl HarnessError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        HarnessError(message.into())
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, HarnessError>;

/// Adds what we were doing to a lower-level error, anyhow-style.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| HarnessError(format!("{}: {e}", what())))
    }
}

/// A deadline `secs` seconds from now: generous, because CI machines are
/// slow and a deadline only bounds how long a *failing* test takes.
pub fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Polls `condition` until it holds or `deadline` passes; answers whether it
/// held. The pause between polls only paces the polling, it never stands in
/// for the condition.
pub fn wait_until(deadline: Instant, mut condition: impl FnMut() -> bool) -> bool {
    wait_for(deadline, || condition().then_some(())).is_some()
}

/// Polls `probe` until it yields a value or `deadline` passes.
pub fn wait_for<T>(deadline: Instant, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// `len` random ASCII letters and digits: database names, secrets.
pub(crate) fn random_token(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Defines, for each named `fn name(backend: Backend)` of the calling
/// module, a `#[test]` in `sqlite::` and one in `postgres::`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::Backend::Sqlite)
                }
            )+
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::Backend::Postgres)
                }
            )+
        }
    };
}
