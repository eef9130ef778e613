//! The vocabulary every wrapsync side speaks: the plan schema, plan
//! operations and validation, roles, and the JSON API's types. No I/O: the
//! server, the clients and the tests all build on this crate.

pub mod api;
pub mod hub;
pub mod incoming;
pub mod indicators;
pub mod ops;
pub mod plan;
pub mod plausibility;
pub mod problems;
pub mod roles;
pub mod schema;
pub mod text;
mod wire_bytes;

pub use automerge;
