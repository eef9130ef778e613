//! Who acts and the request they act in: what every audited plan action
//! carries, and the mark that keeps a refusal audited once.

use std::sync::Arc;
use wrapsync_shared::roles::Role;

/// The person acting, as the token names them.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: String,
    pub username: String,
    pub role: Role,
}

/// Context every audited plan action carries.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub remote: Option<String>,
    /// The request's mark, set by any refusal audited for it.
    pub refusal: RefusalMark,
}

/// Shared by a request and everything auditing for it: set once a refusal
/// of the request has its audit row, so `api::refusals` (which audits
/// every refused request) does not write a second, vaguer one.
#[derive(Debug, Clone, Default)]
pub struct RefusalMark(Arc<std::sync::atomic::AtomicBool>);

impl RefusalMark {
    /// Notes an audit row with `outcome`; anything but `ok` is a refusal.
    pub fn note(&self, outcome: &str) {
        if outcome != "ok" {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}
