//! wrapsync: a federated sync server for children's behavioral-health
//! family team plans. This crate is the county node and the state hub
//! (`hub`): storage, plan service, JSON API.
//!
//! Features: `demo` (default) is the `wrapsync demo` command and its
//! invented caseload, left out of a production node built with
//! `--no-default-features`; `fuzz` exposes the fuzz targets' entry points.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod blocking;
pub mod cluster;
pub mod config;
pub mod db;
#[cfg(feature = "demo")]
pub mod demo;
pub mod environment;
pub mod error;
pub mod federation;
pub mod files;
pub mod forwarded;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod peers;
pub mod plans;
pub mod privacy;
pub mod report;
pub mod serve;
pub mod start_error;
pub mod store;
pub mod streams;
pub mod tally;
pub mod users;
