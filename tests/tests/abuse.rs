#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The attacker's seat: end-to-end tests that drive a real node (and hub) as
//! an unauthenticated client, a low-privilege member, a hostile peer or a
//! buggy phone would, and assert what each can make the node store,
//! compute, reveal or keep (issue 14, "hardening against hostile clients").
//!
//! Each file holds one class of weakness; tests that touch storage run on
//! SQLite and on PostgreSQL.

/// `on_both_backends!`: a test per backend for each named function.
#[macro_use]
extern crate wrapsync_tests;

/// Refused and unauthenticated requests store and log bounded bytes; files
/// are owner-only.
#[path = "abuse/storage.rs"]
mod storage;

/// Sessions, refresh-token families, password guessing, disabled users,
/// token leeway and what a `401` says.
#[path = "abuse/auth.rs"]
mod auth;

/// Signed routes authenticate before they read a body.
#[path = "abuse/bodies.rs"]
mod bodies;

/// Quotas: what a member can make one plan grow to, and ship back.
#[path = "abuse/quotas.rs"]
mod quotas;

/// What a member whose role hides sections can learn: existence oracles,
/// filtered history and shares, per-representation caching, item ids.
#[path = "abuse/oracles.rs"]
mod oracles;

/// Weaknesses found by looking for the next ones in the same classes.
#[path = "abuse/found.rs"]
mod found;

/// The abuse soak, small: the team is served while strangers flood.
#[path = "abuse/soak.rs"]
mod soak;
