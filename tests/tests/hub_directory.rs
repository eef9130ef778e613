#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hub's node directory, used by real nodes: a node with `public_url`
//! registers it with the hub (signed) at start, and another node adds it as
//! a peer from the directory (`wrapsync peer add --from-hub`), with the key
//! the hub enrolled.

use std::time::{Duration, Instant};
use wrapsync_tests::{proxy_seed, Backend, Proxy, TestHub, TestNode, HUB_ID};

fn node(id: &str, hub_url: &str, public_url: Option<&str>) -> TestNode {
    let mut config = toml::Table::new();
    config.insert("node_id".into(), id.into());
    config.insert("hub_url".into(), hub_url.into());
    config.insert("hub_id".into(), HUB_ID.into());
    config.insert("report_interval_secs".into(), 1.into());
    if let Some(url) = public_url {
        config.insert("public_url".into(), url.into());
    }
    TestNode::spawn_with(Backend::Sqlite, config)
}

#[test]
fn nodes_register_with_the_hub_and_find_each_other_in_its_directory() {
    // The nodes need the hub's URL, the hub their keys: a proxy between.
    let proxy = Proxy::start("nodes → hub", "http://127.0.0.1:9", proxy_seed()).unwrap();
    let a_url = "https://county-a.example.org";
    let a = node("county-a", proxy.url(), Some(a_url));
    let b = node("county-b", proxy.url(), None);
    let key_of = |node: &TestNode| {
        node.get("/federation/v1/identity", "").json["public_key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a_key, b_key) = (key_of(&a), key_of(&b));
    let hub = TestHub::spawn_enrolling(
        Backend::Sqlite,
        &[("county-a", &a_key), ("county-b", &b_key)],
    );
    proxy.set_upstream(hub.url());

    // A registers its URL (retried until the hub is there); B has none.
    let deadline = Instant::now() + Duration::from_secs(60);
    let entry = |id: &str| {
        hub.get("/hub/v1/nodes").json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap()
    };
    while entry("county-a")["url"] != a_url {
        assert!(Instant::now() < deadline, "A never registered\n{}", a.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(entry("county-a")["public_key"], a_key.as_str());
    assert!(entry("county-b")["url"].is_null());

    // B takes A from the directory: A's URL and the key the hub enrolled.
    let added = b
        .cli(&["peer", "add", "--id", "county-a", "--from-hub"])
        .unwrap();
    assert!(added.contains(a_url), "{added}");
    let listed = b.cli(&["peer", "list"]).unwrap();
    assert!(
        listed.contains("county-a") && listed.contains(a_url),
        "{listed}"
    );
    // A node that has not registered, or that the hub does not know: refused.
    let unregistered = a
        .cli(&["peer", "add", "--id", "county-b", "--from-hub"])
        .unwrap_err()
        .to_string();
    assert!(unregistered.contains("not registered"), "{unregistered}");
    let unknown = b
        .cli(&["peer", "add", "--id", "county-z", "--from-hub"])
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("no node county-z"), "{unknown}");
}
