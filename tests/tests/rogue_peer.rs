#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The rogue peer's seat (issue 22): a county node gone rogue (a stolen
//! key, a malicious insider, a buggy release) signs with a real peer key
//! and tries to plant plans, take over rosters and consents, forge
//! authorship, flood its neighbour with replicas, and publish absurd
//! figures through the hub. Each test drives real node and hub processes.

/// `on_both_backends!`: a test per backend for each named function.
#[macro_use]
extern crate wrapsync_tests;

/// Home authority: handovers, replicas a peer may create, one-time ids.
#[path = "rogue_peer/handover.rs"]
mod handover;

/// Truthful authorship, and roster and consent changes from a peer.
#[path = "rogue_peer/authorship.rs"]
mod authorship;

/// A county's reports to the hub: plausibility, periods, revisions.
#[path = "rogue_peer/hub_reports.rs"]
mod hub_reports;
