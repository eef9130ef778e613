#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The misbehaving member's seat (issue 22): a signed-in member whose phone
//! loops, replays or is scripted floods sync state, sends huge messages,
//! opens streams without end and writes text that misleads. Each test
//! drives a real node, and asserts what one member can make it store,
//! compute and keep while other members are served.

/// `on_both_backends!`: a test per backend for each named function.
#[macro_use]
extern crate wrapsync_tests;

/// Sync states per user and device, their size, and huge messages.
#[path = "misbehaving_member/sync_state.rs"]
mod sync_state;

/// Change-feed streams per user and their fan-out.
#[path = "misbehaving_member/streams.rs"]
mod streams;

/// Text that becomes an action: phone numbers, invisible characters.
#[path = "misbehaving_member/text.rs"]
mod text;

/// Request body bytes per user, taken before the body is read.
#[path = "misbehaving_member/bytes.rs"]
mod bytes;
