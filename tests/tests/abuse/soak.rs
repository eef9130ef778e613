//! The abuse soak, small enough for CI (the long one is
//! `tests/load/abuse-soak.sh`, by hand): `wrapsync-abuse` floods a node on
//! its default limits with oversized logins and headers, guesses a
//! caregiver's password from four addresses and holds declared 30 MB bodies
//! open, while a facilitator keeps reading and editing a plan. The team is
//! served throughout; what the attack leaves in the audit trail and the log
//! is bounded by the kinds of refusal it made, not by how many; the node's
//! memory grows by a bounded amount. No timing is asserted.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use wrapsync_shared::api::AuditEntry;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, SUPERVISOR};
use wrapsync_tests::{encode_query, Backend, TestNode};

fn resident_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Every refusal row of `node` (outcome not `ok`), newest first.
fn refusal_rows(node: &TestNode, token: &str) -> Vec<AuditEntry> {
    let mut rows = Vec::new();
    let mut query = "limit=1000".to_string();
    loop {
        let page = node.audit(token, &query);
        rows.extend(page.entries.into_iter().filter(|e| e.outcome != "ok"));
        match page.next {
            Some(next) => query = format!("limit=1000&cursor={}", encode_query(&next)),
            None => break,
        }
    }
    rows
}

#[test]
fn a_node_under_unauthenticated_abuse_serves_its_team_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let mut extra = toml::Table::new();
    extra.insert("log_file".into(), log.to_string_lossy().into_owned().into());
    let node = TestNode::spawn_with(Backend::Sqlite, extra);
    let fran = node.login(FACILITATOR);
    let sam = node.login(SUPERVISOR);
    let plan = node.create_plan(&fran, "Soak family").id;
    let rows_before = refusal_rows(&node, &sam).len();
    let logged = size(&log);
    let resident = resident_mb(node.pid().unwrap());

    let abuser = Command::new(env!("CARGO_BIN_EXE_wrapsync-abuse"))
        .args(["--url", node.url(), "--secs", "15", "--username", CAREGIVER])
        .args(["--addresses", "4", "--held", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut abuser = Some(abuser);
    let mut served = 0u64;
    let mut peak = resident;
    while let Some(running) = abuser.as_mut() {
        if running.try_wait().unwrap().is_some() {
            break;
        }
        node.get(&format!("/v1/plans/{plan}"), &fran)
            .assert_status(200);
        node.apply_ops(
            &fran,
            &plan,
            json!([{"op":"replace","path":"/vision","value":format!("Vision {served}")}]),
        );
        served += 1;
        peak = peak.max(resident_mb(node.pid().unwrap()));
    }
    let output = abuser.take().unwrap().wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let answers = &report["answers"];
    let attacks: u64 = answers
        .as_object()
        .unwrap()
        .values()
        .flat_map(|by_status| by_status.as_object().unwrap().values())
        .filter_map(Value::as_u64)
        .sum();
    let log_grown = size(&log).saturating_sub(logged);
    let rows = refusal_rows(&node, &sam).len() - rows_before;
    println!(
        "{attacks} attack requests ({answers}), {served} rounds served; {rows} refusal rows, \
         log +{log_grown} B, resident {resident} → peak {peak} MB"
    );
    // The attack was real: guessing met the account lock, strangers' bodies
    // were refused.
    assert!(attacks > 200, "{answers}");
    assert!(
        answers["guessing"]["429"].as_u64().unwrap_or(0) > 0,
        "{answers}"
    );
    assert!(
        answers["held"]["401"].as_u64().unwrap_or(0) > 0,
        "{answers}"
    );
    assert!(served > 0);
    // Rows by kind (address × action × outcome) and interval, not by
    // request: the floods come from 5 addresses and make a handful of kinds.
    assert!(rows <= 60, "{rows} refusal rows for {attacks} refusals");
    // A few lines per kind, and the team's own access lines.
    assert!(
        log_grown <= 32 * 1024 + served * 2 * 1024,
        "the log grew by {log_grown} B for {attacks} refusals and {served} rounds"
    );
    // Password checks (19 MiB each, one per core), 1 MB login bodies read
    // one at a time per connection, no held body: far below a held 30 MB
    // body per connection.
    assert!(
        peak <= resident + 200,
        "resident memory went from {resident} MB to {peak} MB"
    );
    node.get_anon("/healthz").assert_status(200);
}
