#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Node to node: a node's identity, consent grants, and the signed sync
//! route, against a real node process. The test plays the peer node,
//! signing its requests with its own Ed25519 key as a node would.

use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::Automerge;
use wrapsync_shared::plan::render;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, SUPERVISOR, YOUTH};
use wrapsync_tests::{Backend, Reply, TestNode};

const PEER: &str = "county-b";

/// A peer node's key: signs requests the way `federation::signing` checks.
struct PeerKey {
    id: String,
    encoding: EncodingKey,
    public_key: String,
}

impl PeerKey {
    fn new(id: &str) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let der = signing.to_pkcs8_der().expect("pkcs8");
        PeerKey {
            id: id.into(),
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(signing.verifying_key().as_bytes()),
        }
    }

    fn sign(&self, aud: &str, method: &str, path: &str, body: &[u8], iat: i64, exp: i64) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.id.clone());
        let claims = json!({
            "iss": self.id, "aud": aud, "iat": iat, "exp": exp,
            "jti": format!("{:032x}", rand::random::<u128>()),
            "htm": method, "htu": path,
            "bdy": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(body)),
        });
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, &claims, &self.encoding).expect("sign")
        )
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn post_signed(node: &TestNode, path: &str, authorization: Option<&str>, body: Vec<u8>) -> Reply {
    let mut request = node
        .request(Method::POST, path)
        .header("content-type", "application/octet-stream")
        .body(body);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    node.send(request)
}

/// Rounds of the sync protocol as the peer, until the node has nothing to
/// say; answers the last reply's status.
fn pull(
    node: &TestNode,
    key: &PeerKey,
    plan: &str,
    doc: &mut Automerge,
    state: &mut sync::State,
) -> u16 {
    let path = format!("/federation/v1/plans/{plan}/sync");
    for _ in 0..10 {
        let body = doc
            .generate_sync_message(state)
            .map(sync::Message::encode)
            .unwrap_or_default();
        let auth = key.sign(node.node_id(), "POST", &path, &body, now(), now() + 60);
        let reply = post_signed(node, &path, Some(&auth), body);
        match reply.status {
            200 => {
                let message = sync::Message::decode(&reply.body).expect("a sync message");
                doc.receive_sync_message(state, message).expect("applies");
            }
            status => return status,
        }
    }
    panic!("no quiet after 10 rounds");
}

fn node_with_peer(backend: Backend, peer: &PeerKey) -> TestNode {
    let mut peers = toml::Table::new();
    peers.insert("id".into(), peer.id.clone().into());
    peers.insert("url".into(), "http://127.0.0.1:9".into());
    peers.insert("public_key".into(), peer.public_key.clone().into());
    let mut extra = toml::Table::new();
    extra.insert(
        "peers".into(),
        toml::Value::Array(vec![toml::Value::Table(peers)]),
    );
    TestNode::spawn_with(backend, extra)
}

fn consented_plans_sync_to_a_signed_peer_and_nothing_else_does(backend: Backend) {
    let b = PeerKey::new(PEER);
    let node = node_with_peer(backend, &b);
    let identity = node.get_anon("/federation/v1/identity");
    identity.assert_status(200);
    assert_eq!(identity.json["node_id"], node.node_id());
    assert_eq!(identity.json["public_key"].as_str().map(str::len), Some(43));

    let fran = node.login(FACILITATOR);
    let shared = node.create_plan(&fran, "Moving family").id;
    let unshared = node.create_plan(&fran, "Staying family").id;
    node.apply_ops(&fran, &shared, json!([
        {"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","user":CAREGIVER}},
        {"op":"add","path":"/team","value":{"name":"Yuri","role":"youth","user":YOUTH}},
        {"op":"replace","path":"/vision","value":"A fresh start near grandma"}
    ]));

    // No grant yet: the peer gets what a plan that does not exist gets.
    let mut doc = Automerge::new();
    let mut state = sync::State::new();
    assert_eq!(pull(&node, &b, &shared, &mut doc, &mut state), 404);

    // Consent is recorded by those who may speak for the family, only for
    // a configured peer.
    let yuri = node.login(YOUTH);
    node.post(
        &format!("/v1/plans/{shared}/shares"),
        &yuri,
        &json!({"node": PEER}),
    )
    .assert_problem(403, "forbidden");
    node.post(
        &format!("/v1/plans/{shared}/shares"),
        &fran,
        &json!({"node": "county-x"}),
    )
    .assert_problem(400, "invalid-request");
    let carla = node.login(CAREGIVER);
    node.post(
        &format!("/v1/plans/{shared}/shares"),
        &carla,
        &json!({"node": PEER}),
    )
    .assert_status(201);
    let shares = node.get(&format!("/v1/plans/{shared}/shares"), &fran);
    assert_eq!(shares.json["shares"][0]["node"], PEER);
    assert_eq!(shares.json["shares"][0]["live"], true);

    // Now the plan replicates to the peer, whole.
    let mut doc = Automerge::new();
    let mut state = sync::State::new();
    assert_eq!(pull(&node, &b, &shared, &mut doc, &mut state), 204);
    assert_eq!(render(&doc), node.read_plan(&fran, &shared).plan);
    // Edits on the home node follow on the next rounds.
    node.apply_ops(
        &fran,
        &shared,
        json!([{"op":"replace","path":"/mission","value":"Settle in"}]),
    );
    assert_eq!(pull(&node, &b, &shared, &mut doc, &mut state), 204);
    assert_eq!(render(&doc)["mission"], "Settle in");
    // The plan without a grant stays home.
    assert_eq!(
        pull(
            &node,
            &b,
            &unshared,
            &mut Automerge::new(),
            &mut sync::State::new()
        ),
        404
    );

    // Every forged, stale, replayed, misdirected or altered request: 401.
    let path = format!("/federation/v1/plans/{shared}/sync");
    let aud = node.node_id().to_string();
    let body = Automerge::new()
        .generate_sync_message(&mut sync::State::new())
        .map(sync::Message::encode)
        .unwrap_or_default();
    let good = b.sign(&aud, "POST", &path, &body, now(), now() + 60);
    post_signed(&node, &path, Some(&good), body.clone()).assert_status(200);
    let refusals = [
        ("replayed", good),
        ("unsigned", String::new()),
        (
            "for another node",
            b.sign("county-z", "POST", &path, &body, now(), now() + 60),
        ),
        (
            "expired",
            b.sign(&aud, "POST", &path, &body, now() - 600, now() - 400),
        ),
        (
            "too long-lived",
            b.sign(&aud, "POST", &path, &body, now(), now() + 3600),
        ),
        (
            "another path",
            b.sign(
                &aud,
                "POST",
                &format!("/federation/v1/plans/{unshared}/sync"),
                &body,
                now(),
                now() + 60,
            ),
        ),
        (
            "another body",
            b.sign(&aud, "POST", &path, b"other", now(), now() + 60),
        ),
        (
            "unknown node",
            PeerKey::new("county-m").sign(&aud, "POST", &path, &body, now(), now() + 60),
        ),
        (
            "forged key",
            PeerKey::new(PEER).sign(&aud, "POST", &path, &body, now(), now() + 60),
        ),
        ("a user's token", format!("Bearer {fran}")),
    ];
    for (what, authorization) in refusals {
        let auth = (!authorization.is_empty()).then_some(authorization.as_str());
        let reply = post_signed(&node, &path, auth, body.clone());
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert_eq!(
            reply.problem_type(),
            Some("/problems/unauthorized"),
            "{what}"
        );
    }

    // A peer sending changes of its own is refused (the plan is replicated
    // out only, for now), and the plan is untouched.
    let version = node.read_plan(&fran, &shared).version;
    let mut tx = doc.transaction();
    wrapsync_shared::automerge::transaction::Transactable::put(
        &mut tx,
        wrapsync_shared::automerge::ROOT,
        "vision",
        "Changed elsewhere",
    )
    .expect("put");
    tx.commit();
    let mut refused = 0;
    for _ in 0..5 {
        let status = pull(&node, &b, &shared, &mut doc, &mut state);
        if status == 422 {
            refused += 1;
            break;
        }
    }
    assert_eq!(refused, 1, "the peer's change is refused");
    assert_eq!(node.read_plan(&fran, &shared).version, version);

    // Revoking stops sync from then on.
    node.post(
        &format!("/v1/plans/{shared}/shares/{PEER}/revoke"),
        &fran,
        &json!({}),
    )
    .assert_status(204);
    assert_eq!(
        pull(
            &node,
            &b,
            &shared,
            &mut Automerge::new(),
            &mut sync::State::new()
        ),
        404
    );
    assert_eq!(
        node.get(&format!("/v1/plans/{shared}/shares"), &fran).json["shares"][0]["live"],
        false
    );

    // Refusals and grants are in the audit trail.
    let sam = node.login(SUPERVISOR);
    let audit = node.audit(&sam, "limit=200");
    let actions: Vec<(String, String)> = audit
        .entries
        .iter()
        .map(|e| (e.action.clone(), e.outcome.clone()))
        .collect();
    for expected in [
        ("peer.request", "denied"),
        ("peer.sync", "not_found"),
        ("peer.sync", "ok"),
        ("plan.share", "ok"),
        ("plan.unshare", "ok"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, o)| a == expected.0 && o == expected.1),
            "audit lacks {expected:?}"
        );
    }
}

/// Peers added by a supervisor are trusted at once, and removed ones at
/// once no longer; peers added with the CLI from the next start.
fn peers_are_managed_at_run_time(backend: Backend) {
    let b = PeerKey::new(PEER);
    let mut node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Placed elsewhere").id;
    let share = |node: &TestNode| {
        node.post(
            &format!("/v1/plans/{plan}/shares"),
            &fran,
            &json!({"node": PEER}),
        )
    };
    // Not a peer: no sharing, no trust.
    share(&node).assert_problem(400, "invalid-request");
    let sync = |node: &TestNode| {
        pull(
            node,
            &b,
            &plan,
            &mut Automerge::new(),
            &mut sync::State::new(),
        )
    };
    assert_eq!(sync(&node), 401);

    let peer =
        json!({"id": PEER, "url": "https://county-b.example.org", "public_key": b.public_key});
    node.post("/v1/admin/peers", &fran, &peer)
        .assert_problem(403, "forbidden");
    let sam = node.login(SUPERVISOR);
    let mut bad = peer.clone();
    bad["public_key"] = json!("AAAA");
    node.post("/v1/admin/peers", &sam, &bad)
        .assert_problem(400, "invalid-request");
    let mut me = peer.clone();
    me["id"] = json!(node.node_id());
    node.post("/v1/admin/peers", &sam, &me)
        .assert_problem(400, "invalid-request");
    node.post("/v1/admin/peers", &sam, &peer).assert_status(201);
    let listed = node.get("/v1/admin/peers", &sam);
    assert_eq!(listed.json["peers"][0]["id"], PEER);
    assert_eq!(listed.json["peers"][0]["source"], "admin");

    share(&node).assert_status(201);
    assert_eq!(sync(&node), 204);

    node.post(&format!("/v1/admin/peers/{PEER}/remove"), &sam, &json!({}))
        .assert_status(204);
    assert_eq!(sync(&node), 401);

    // The CLI writes the same table; the node trusts it from its next start.
    node.cli(&[
        "peer",
        "add",
        "--id",
        PEER,
        "--url",
        "https://b.example",
        "--public-key",
        &b.public_key,
    ])
    .expect("peer add");
    let list = node.cli(&["peer", "list"]).expect("peer list");
    assert!(list.contains(PEER) && list.contains("added"), "{list}");
    node.restart();
    assert_eq!(sync(&node), 204);
    node.cli(&["peer", "remove", "--id", PEER])
        .expect("peer remove");
    assert!(
        node.cli(&["peer", "remove", "--id", PEER]).is_err(),
        "removing twice fails"
    );
}

#[test]
fn peers_are_managed_at_run_time_sqlite() {
    peers_are_managed_at_run_time(Backend::Sqlite);
}

#[test]
fn peers_are_managed_at_run_time_postgres() {
    peers_are_managed_at_run_time(Backend::Postgres);
}

#[test]
fn consented_plans_sync_to_a_signed_peer_sqlite() {
    consented_plans_sync_to_a_signed_peer_and_nothing_else_does(Backend::Sqlite);
}

#[test]
fn consented_plans_sync_to_a_signed_peer_postgres() {
    consented_plans_sync_to_a_signed_peer_and_nothing_else_does(Backend::Postgres);
}
