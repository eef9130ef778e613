#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Key rotation without downtime, against real node processes: the access
//! token secret (config and generated) and the node's federation key, each
//! taken up on SIGHUP while the node keeps serving.

use serde_json::json;
use wrapsync_tests::users::{CAREGIVER_2, FACILITATOR, SUPERVISOR};
use wrapsync_tests::{
    deadline, encode_query, unix_now, wait_until, Backend, NodeSigner, TestHub, TestNode, HUB_ID,
};

/// The `kid` of a JWT's header.
fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|h| h.kid)
        .unwrap_or_default()
}

/// Rewrites the node's config file with `edit` applied.
fn edit_config(node: &TestNode, edit: impl FnOnce(&mut toml::Table)) {
    let path = node.config_path();
    let mut table: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    edit(&mut table);
    std::fs::write(path, toml::to_string(&table).unwrap()).unwrap();
}

/// SIGHUP, then waits until a fresh login's token carries another `kid`
/// than `old`; answers the new `kid`.
fn reload_until_kid_changes(node: &TestNode, old: &str) -> String {
    node.signal("HUP");
    let mut now = String::new();
    let changed = wait_until(deadline(30), || {
        now = kid(&node.login(FACILITATOR));
        now != old
    });
    assert!(changed, "the node kept signing with {old}\n{}", node.log());
    now
}

/// Settings for nodes that log in more often than people do.
fn settings(id: &str) -> toml::Table {
    let mut extra = toml::Table::new();
    extra.insert("node_id".into(), id.into());
    let mut logins = toml::Table::new();
    logins.insert("per_second".into(), 1000.0.into());
    logins.insert("burst".into(), 1000.0.into());
    extra.insert("rate_limit_login_per_ip".into(), logins.into());
    extra
}

fn status(node: &TestNode, token: &str) -> u16 {
    node.get("/v1/plans", token).status
}

#[test]
fn access_tokens_outlive_a_rotation_of_their_secret_until_it_is_retired() {
    let node = TestNode::spawn_with(Backend::Sqlite, settings("county-a"));
    let first = node.login_tokens(FACILITATOR);
    let kid1 = kid(&first.access_token);
    assert_eq!(kid1.len(), 16, "tokens name their secret");

    // Rotated in the config: the new secret signs, the old one still counts.
    let old_secret = node.jwt_secret().to_string();
    let new_secret = format!("{old_secret}-rotated");
    edit_config(&node, |c| {
        c.insert("jwt_secret".into(), new_secret.clone().into());
        c.insert(
            "jwt_previous_secrets".into(),
            toml::Value::Array(vec![old_secret.clone().into()]),
        );
    });
    let kid2 = reload_until_kid_changes(&node, &kid1);
    let second = node.login(FACILITATOR);
    assert_eq!(status(&node, &first.access_token), 200);
    assert_eq!(status(&node, &second), 200);
    // Refresh tokens are untouched by the rotation.
    let refreshed = node.post_anon(
        "/v1/auth/refresh",
        &json!({"refresh_token": first.refresh_token}),
    );
    refreshed.assert_status(200);
    assert_eq!(kid(refreshed.json["access_token"].as_str().unwrap()), kid2);

    // The old secret retired: its tokens are refused, the new ones are not.
    edit_config(&node, |c| {
        c.remove("jwt_previous_secrets");
    });
    node.signal("HUP");
    assert!(
        wait_until(deadline(30), || status(&node, &first.access_token) == 401),
        "a token of a retired secret was still accepted\n{}",
        node.log()
    );
    assert_eq!(status(&node, &second), 200);

    // A generated secret, rotated by the command: same promise.
    edit_config(&node, |c| {
        c.remove("jwt_secret");
        c.insert(
            "jwt_previous_secrets".into(),
            toml::Value::Array(vec![new_secret.clone().into()]),
        );
    });
    let kid3 = reload_until_kid_changes(&node, &kid2);
    let third = node.login(FACILITATOR);
    let printed = node.cli(&["keys", "rotate-jwt"]).unwrap();
    let kid4 = reload_until_kid_changes(&node, &kid3);
    assert!(printed.contains(&kid4), "{printed}");
    for token in [&second, &third] {
        assert_eq!(
            status(&node, token),
            200,
            "a token signed before the rotation"
        );
    }
    let previous = std::fs::read_to_string(node.data_dir().join("jwt_secret.previous")).unwrap();
    assert_eq!(previous.lines().count(), 1);
    // A broken config on reload keeps the keys in force.
    std::fs::write(node.config_path(), "not toml [").unwrap();
    node.signal("HUP");
    assert!(wait_until(deadline(30), || node
        .log()
        .contains("keys not reloaded")));
    assert_eq!(status(&node, &third), 200);
    assert_eq!(kid(&node.login(FACILITATOR)), kid4);
}

fn county(id: &str) -> TestNode {
    let mut extra = settings(id);
    extra.insert("federation_interval_secs".into(), 1.into());
    TestNode::spawn_with(Backend::Sqlite, extra)
}

fn public_key(node: &TestNode) -> String {
    node.get_anon("/federation/v1/identity").json["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A signed `POST /federation/v1/sync` of no plans to `node`, as `signer`.
fn signed_status(node: &TestNode, signer: &NodeSigner) -> u16 {
    let mut body = Vec::new();
    ciborium::into_writer(&json!({"plans": []}), &mut body).unwrap();
    let path = "/federation/v1/sync";
    let auth = signer.sign(node.node_id(), "POST", path, &body, unix_now());
    node.send(
        node.request(reqwest::Method::POST, path)
            .header("authorization", auth)
            .header("content-type", "application/cbor")
            .body(body),
    )
    .status
}

/// Audit rows of `action` (optionally of one `user`) on `node`.
fn audited(node: &TestNode, action: &str, user: Option<&str>) -> Vec<(String, Option<String>)> {
    let sam = node.login(SUPERVISOR);
    let query = user.map_or("limit=1000".to_string(), |u| {
        format!("limit=1000&user={}", encode_query(u))
    });
    node.audit(&sam, &query)
        .entries
        .into_iter()
        .filter(|e| e.action == action)
        .map(|e| (e.outcome, e.detail))
        .collect()
}

fn report(node: &TestNode) -> Result<String, String> {
    node.cli(&["report", "--period", "2026-01", "--send"])
        .map_err(|e| e.to_string())
}

#[test]
fn a_node_key_rotates_while_its_peer_keeps_syncing_and_the_old_key_dies_after_the_grace() {
    let (mut a, mut b) = (county("county-a"), county("county-b"));
    a.trust(&b, b.url());
    b.trust(&a, a.url());
    let old_key = public_key(&a);
    let old_pem = std::fs::read_to_string(a.data_dir().join("node_key.pem")).unwrap();
    let old_signer = NodeSigner::from_pem("county-a", &old_pem).unwrap();
    assert_eq!(old_signer.public_key, old_key);
    // A reports to a hub that enrolled its old key.
    let hub = TestHub::spawn_enrolling(Backend::Sqlite, &[("county-a", &old_key)]);
    edit_config(&a, |c| {
        c.insert("hub_url".into(), hub.url().into());
        c.insert("hub_id".into(), HUB_ID.into());
    });
    report(&a).unwrap();

    // A shared plan both sides edit.
    let fran = a.login(FACILITATOR);
    let plan = a.create_plan(&fran, "Family across counties").id;
    a.apply_ops(&fran, &plan, json!([
        {"op":"add","path":"/team","value":{"name":"Cody","role":"caregiver","user":format!("{CAREGIVER_2}@county-b")}}
    ]));
    a.post(
        &format!("/v1/plans/{plan}/shares"),
        &fran,
        &json!({"node":"county-b"}),
    )
    .assert_status(201);
    let cody = b.login(CAREGIVER_2);
    let converge = |what: &str, a: &TestNode, b: &TestNode| {
        let (fran, cody) = (a.login(FACILITATOR), b.login(CAREGIVER_2));
        let same = wait_until(deadline(60), || {
            b.get(&format!("/v1/plans/{plan}"), &cody).status == 200
                && a.read_plan(&fran, &plan).version == b.read_plan(&cody, &plan).version
        });
        assert!(
            same,
            "{what}: A and B did not converge\n{}\n----\n{}",
            a.log(),
            b.log()
        );
    };
    let edit =
        |node: &TestNode, token: &str, statement: String| {
            node.apply_ops(token, &plan, json!([
            {"op":"add","path":"/strengths","value":{"statement":statement,"about":"family"}}
        ]));
        };
    converge("before the rotation", &a, &b);

    // Rotate A's key; B keeps editing and syncing through it.
    let grace = 15;
    let rotated = a
        .cli(&["keys", "rotate-node", "--grace-secs", &grace.to_string()])
        .unwrap();
    let rotated_at = unix_now();
    a.signal("HUP");
    let mut new_key = String::new();
    assert!(wait_until(deadline(30), || {
        new_key = public_key(&a);
        new_key != old_key
    }));
    assert!(
        rotated.contains(&new_key) && rotated.contains(&old_key),
        "{rotated}"
    );
    let identity = a.get_anon("/federation/v1/identity").json;
    assert!(identity["rotation"].is_string(), "{identity}");
    for round in 0..5 {
        edit(&a, &fran, format!("A after rotation {round}"));
        edit(&b, &cody, format!("B after rotation {round}"));
        converge("during the grace period", &a, &b);
    }
    let accepted = audited(&b, "peer.key-rotation", Some("peer:county-a"));
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0].0, "accepted");
    assert!(accepted[0].1.as_deref().unwrap_or("").contains(&new_key));
    // No request of A's was refused on the way.
    let refused = audited(&b, "peer.request", Some("peer:unverified"));
    assert!(refused.is_empty(), "{refused:?}\n{}", b.log());
    // The hub takes the new key on the old key's word, for the grace.
    report(&a).unwrap();
    // Within the grace the old key is still good at B.
    assert_ne!(signed_status(&b, &old_signer), 401);

    // After the grace period: the old key is refused, audited; the new key
    // (kept by B across a restart) goes on syncing.
    assert!(wait_until(deadline(60), || unix_now() > rotated_at + grace + 1));
    assert_eq!(signed_status(&b, &old_signer), 401);
    let refused = audited(&b, "peer.request", Some("peer:unverified"));
    assert_eq!(refused.len(), 1, "{refused:?}");
    b.restart();
    a.trust(&b, b.url());
    let cody = b.login(CAREGIVER_2);
    edit(&a, &fran, "A after the grace".into());
    edit(&b, &cody, "B after the grace".into());
    converge("after the grace period and B's restart", &a, &b);
    assert_eq!(
        audited(&b, "peer.request", Some("peer:unverified")).len(),
        1
    );
    // The hub's enrollment is the state office's word: past the grace,
    // it must name the new key.
    let refused = report(&a).unwrap_err();
    assert!(refused.contains("401"), "{refused}");
    a.stop();
}
