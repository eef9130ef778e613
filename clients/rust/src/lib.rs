//! Typed client for a wrapsync node's `/v1` API.
//!
//! [`Client`] is a blocking session (operator tools, integration tests): it
//! logs in once, keeps the tokens and answers typed bodies from
//! `wrapsync_shared::api`, or a [`ClientError`] that carries the node's
//! problem document. [`Replica`] keeps a device's offline copies of its
//! plans (Automerge documents) and syncs them with the node. The binaries:
//! `wrapsync-client`, a command line for a replica, and `wrapsync-load`,
//! the open-loop load generator for the same API.

mod client;
mod error;
pub mod replica;

pub use client::{AuditFilter, Client, Health, ListQuery, PlanFetch};
pub use error::{ClientError, ProblemType};
pub use replica::{Replica, ReplicaError, SyncAllReport, SyncReport};
pub use wrapsync_shared::api;
pub use wrapsync_shared::ops::Op;
pub use wrapsync_shared::ops::{Editor, OpResult};
pub use wrapsync_shared::roles::Role;
