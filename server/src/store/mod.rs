//! Storage: plans as Automerge chunks, users and sessions, the audit trail.
//! Synchronous diesel code, run on the writer thread or a blocking pool.

pub mod audit;
pub mod consent;
pub mod dp_releases;
pub mod peers;
pub mod plans;
#[cfg(test)]
pub(crate) mod tests;
pub mod transfers;
pub mod users;
pub mod writer;
