//! Typed client for a wrapsync node's `/v1` API.
//!
//! [`Client`] is a blocking session (operator tools, integration tests): it
//! logs in once, keeps the tokens and answers typed bodies from
//! `wrapsync_shared::api`, or a [`ClientError`] that carries the node's
//! problem document. The `wrapsync-load` binary in this crate is the
//! open-loop load generator for the same API.

mod client;
mod error;

pub use client::{AuditFilter, Client, Health, ListQuery, PlanFetch};
pub use error::ClientError;
pub use wrapsync_shared::api;
pub use wrapsync_shared::ops::Op;
