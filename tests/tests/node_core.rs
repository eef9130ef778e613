#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests of one county node: auth, plans, ops, membership,
//! listing, history, audit, bad input, durability and observability, against the real
//! `wrapsync` binary (build it first: `cargo build -p wrapsync-server`).
//!
//! Every test starts its own node, so they run in parallel. Tests that touch
//! storage run on SQLite and on PostgreSQL (`…::sqlite::…` and
//! `…::postgres::…`); PostgreSQL must be reachable at 127.0.0.1:5432 (user
//! `postgres`, trust auth) or those tests fail.

use serde_json::{json, Value};
use wrapsync_tests::{Reply, TestNode};

/// `on_both_backends!`: a test per backend for each named function.
#[macro_use]
extern crate wrapsync_tests;

#[path = "node_core/access.rs"]
mod access;
#[path = "node_core/audit.rs"]
mod audit;
#[path = "node_core/auth.rs"]
mod auth;
#[path = "node_core/bad_input.rs"]
mod bad_input;
#[path = "node_core/durability.rs"]
mod durability;
#[path = "node_core/listing.rs"]
mod listing;
#[path = "node_core/many.rs"]
mod many;
#[path = "node_core/observe.rs"]
mod observe;
#[path = "node_core/openapi.rs"]
mod openapi;
#[path = "node_core/plans.rs"]
mod plans;
#[path = "node_core/replica.rs"]
mod replica;
#[path = "node_core/report.rs"]
mod report;
#[path = "node_core/schema.rs"]
mod schema;
#[path = "node_core/sync.rs"]
mod sync;

/// Shaped like a plan or item id (a ULID), but nothing has it.
const NO_SUCH_ID: &str = "01HZZZZZZZZZZZZZZZZZZZZZZZ";

/// Adds a team member to `plan` as `token` (a facilitator on it) and answers
/// the member's id. `user` links the member to a node user, which is what
/// gives that user access to the plan.
fn add_member(
    node: &TestNode,
    token: &str,
    plan: &str,
    name: &str,
    role: &str,
    user: Option<&str>,
) -> String {
    let mut member = json!({ "name": name, "role": role });
    if let Some(user) = user {
        member["user"] = json!(user);
    }
    let reply = node.apply_ops(
        token,
        plan,
        json!([{ "op": "add", "path": "/team", "value": member }]),
    );
    reply.results[0]
        .id
        .clone()
        .expect("adding a team member answers its id")
}

/// The items of a plan collection (`needs`, `team`, …), empty if absent.
fn items<'a>(plan: &'a Value, collection: &str) -> Vec<&'a Value> {
    plan[collection]
        .as_array()
        .map(|items| items.iter().collect())
        .unwrap_or_default()
}

/// The item of `collection` with `id`.
#[track_caller]
fn item<'a>(plan: &'a Value, collection: &str, id: &str) -> &'a Value {
    items(plan, collection)
        .into_iter()
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("no /{collection}/{id} in {plan:#}"))
}

/// Asserts the problem `op_index`.
#[track_caller]
fn assert_op_index(reply: &Reply, index: usize) {
    assert_eq!(
        reply.json["op_index"],
        json!(index),
        "op_index of {}",
        reply.text()
    );
}
