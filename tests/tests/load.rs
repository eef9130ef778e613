#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The load tool against real processes: `wrapsync-load --scenario phone`
//! spreads a phone workload (reads, lists, ops, real Automerge sync rounds,
//! refreshes and logins) over two node processes sharing one PostgreSQL
//! database, sampling both processes, and every request succeeds; spread
//! over many users, it runs within a node's default per-user limit.

use std::path::{Path, PathBuf};
use wrapsync_tests::users::FACILITATOR;
use wrapsync_tests::{password_of, Backend, TestNode};

/// The `wrapsync-load` binary beside the node's (build it with `cargo
/// build -p wrapsync-client`), or `$WRAPSYNC_LOAD_BIN`.
fn load_binary() -> PathBuf {
    let path = std::env::var_os("WRAPSYNC_LOAD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/wrapsync-load")
        });
    assert!(path.exists(), "no wrapsync-load at {}", path.display());
    path
}

#[test]
fn a_phone_workload_over_two_processes_succeeds_and_is_sampled() {
    let mut extra = toml::Table::new();
    let mut logins = toml::Table::new();
    logins.insert("per_second".into(), 1000.0.into());
    logins.insert("burst".into(), 1000.0.into());
    extra.insert("rate_limit_login_per_ip".into(), logins.into());
    let a = TestNode::spawn_with(Backend::Postgres, extra);
    let b = a.sibling();
    let urls = format!("{},{}", a.url(), b.url());
    let (pid_a, pid_b) = (a.pid().unwrap().to_string(), b.pid().unwrap().to_string());
    let output = std::process::Command::new(load_binary())
        .args([
            "--url",
            &urls,
            "--username",
            FACILITATOR,
            "--scenario",
            "phone",
        ])
        .args([
            "--plans",
            "4",
            "--rate",
            "200",
            "--duration",
            "4",
            "--connections",
            "4",
        ])
        .args(["--seed", "11", "--sample-every", "1"])
        .args(["--sample-pid", &pid_a, "--sample-pid", &pid_b])
        .env("WRAPSYNC_PASSWORD", password_of(FACILITATOR))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["errors"], serde_json::json!({}), "{stderr}");
    assert_eq!(summary["sent"], summary["ok"], "{stderr}");
    assert_eq!(
        summary["url"],
        format!("{}/,{}/", a.url(), b.url()),
        "both processes are named"
    );
    let kinds = summary["latency_by_kind"].as_object().unwrap();
    for kind in ["read", "list", "ops", "sync"] {
        assert!(kinds[kind]["count"].as_u64() > Some(0), "{kind}: {stderr}");
    }
    assert!(
        kinds.contains_key("login") || kinds.contains_key("refresh"),
        "{stderr}"
    );
    // Both processes took requests (round-robin) and were sampled.
    for node in [&a, &b] {
        let metrics = node.get_anon("/metrics").text();
        assert!(
            metrics.contains("route=\"/v1/plans/{id}/sync\""),
            "{metrics}"
        );
    }
    let soak = &summary["soak"];
    assert!(soak["samples"].as_array().unwrap().len() >= 3, "{soak}");
    for process in soak["processes"].as_array().unwrap() {
        assert!(process["rss_mb_at_end"].as_f64() > Some(1.0), "{soak}");
        assert!(process["fds_max"].as_u64() > Some(3), "{soak}");
    }
}

/// Runs the phone workload at 100 requests a second for 4 s against `node`
/// as `users` users `phone1`… (or `phone` alone) and answers the summary.
fn phones_at_100_a_second(node: &TestNode, users: usize) -> serde_json::Value {
    let output = std::process::Command::new(load_binary())
        .args([
            "--url",
            node.url(),
            "--username",
            "phone",
            "--scenario",
            "phone",
        ])
        .args(["--plans", "4", "--rate", "100", "--duration", "4"])
        .args(["--connections", "4", "--seed", "5"])
        .args(["--users", &users.to_string()])
        .env("WRAPSYNC_PASSWORD", "phone-password-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// 400 requests in 4 s: one user meets the default per-user limit (10 a
/// second, burst 200); spread over 16 users (6.25 a second each) none does.
#[test]
fn a_workload_spread_over_users_meets_no_default_rate_limit() {
    let node = TestNode::spawn_with_node_defaults(Backend::Sqlite, toml::Table::new());
    for name in std::iter::once("phone".to_string()).chain((1..=16).map(|i| format!("phone{i}"))) {
        node.add_user_with_password(&name, "supervisor", "phone-password-1")
            .unwrap();
    }
    let spread = phones_at_100_a_second(&node, 16);
    assert_eq!(spread["errors"], serde_json::json!({}), "{spread}");
    assert_eq!(spread["sent"], spread["ok"], "{spread}");
    let one = phones_at_100_a_second(&node, 1);
    assert!(one["errors"]["429"].as_u64() > Some(100), "{one}");
}
