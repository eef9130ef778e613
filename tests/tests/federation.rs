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
use wrapsync_shared::api::{Handover, PeerSyncBatch, PeerSyncItem, SyncBatchReply};
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
        self.sign_for(aud, method, path, body, iat, exp, json!({}))
    }

    /// As `sign`, vouching for the authors (`act`: actor hex → username).
    #[allow(clippy::too_many_arguments)]
    fn sign_for(
        &self,
        aud: &str,
        method: &str,
        path: &str,
        body: &[u8],
        iat: i64,
        exp: i64,
        act: serde_json::Value,
    ) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.id.clone());
        let claims = json!({
            "act": act,
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
    pull_as(node, key, plan, doc, state, json!({}))
}

/// `pull`, vouching for the authors of the changes the peer sends.
fn pull_as(
    node: &TestNode,
    key: &PeerKey,
    plan: &str,
    doc: &mut Automerge,
    state: &mut sync::State,
    act: serde_json::Value,
) -> u16 {
    let path = format!("/federation/v1/plans/{plan}/sync");
    for _ in 0..10 {
        let body = doc
            .generate_sync_message(state)
            .map(sync::Message::encode)
            .unwrap_or_default();
        let auth = key.sign_for(
            node.node_id(),
            "POST",
            &path,
            &body,
            now(),
            now() + 60,
            act.clone(),
        );
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

    // Many plans in one signed round (`POST /federation/v1/sync`): each
    // answered as if it came alone; the unshared and the made-up plan get a
    // 404 entry and nothing of theirs, and a bad batch is refused whole.
    let batch_path = "/federation/v1/sync";
    let made_up = "no-such-plan";
    let batch = |plans: &[&str]| {
        let items: Vec<PeerSyncItem> = plans
            .iter()
            .map(|plan| PeerSyncItem {
                plan: plan.to_string(),
                message: Some(body.clone()),
                authors: Default::default(),
                transfers: None,
            })
            .collect();
        let mut cbor = Vec::new();
        ciborium::into_writer(&PeerSyncBatch { plans: items }, &mut cbor).expect("cbor");
        cbor
    };
    let post_batch = |cbor: Vec<u8>, authorization: Option<String>| {
        let mut request = node
            .request(Method::POST, batch_path)
            .header("content-type", "application/cbor")
            .body(cbor);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        node.send(request)
    };
    let cbor = batch(&[&shared, &unshared, made_up]);
    let signed = b.sign(&aud, "POST", batch_path, &cbor, now(), now() + 60);
    let reply = post_batch(cbor.clone(), Some(signed));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer: SyncBatchReply = ciborium::from_reader(&reply.body[..]).expect("a batch reply");
    let plans: Vec<&str> = answer.plans.iter().map(|p| p.plan.as_str()).collect();
    assert_eq!(plans, [shared.as_str(), unshared.as_str(), made_up]);
    assert!(answer.plans[0].problem.is_none());
    assert!(answer.plans[0].message.is_some());
    for refused in &answer.plans[1..] {
        assert_eq!(refused.problem.as_ref().map(|p| p.status), Some(404));
        assert!(refused.message.is_none());
    }
    assert!(!reply.text().contains("Staying family"));
    let unsigned = post_batch(cbor.clone(), None);
    assert_eq!(unsigned.status, 401);
    let other_body = b.sign(&aud, "POST", batch_path, b"other", now(), now() + 60);
    assert_eq!(post_batch(cbor, Some(other_body)).status, 401);
    for (what, bad) in [
        ("not CBOR", b"{\"plans\":[]}".to_vec()),
        ("a plan twice", batch(&[&shared, &shared])),
    ] {
        let signed = b.sign(&aud, "POST", batch_path, &bad, now(), now() + 60);
        let reply = post_batch(bad, Some(signed));
        assert_eq!(reply.status, 400, "{what}: {}", reply.text());
        assert_eq!(
            reply.problem_type(),
            Some("/problems/invalid-request"),
            "{what}"
        );
    }

    // A handover the peer makes up is refused and changes nothing: not
    // CBOR, or with a certificate that is not the home's signed word.
    let handover_path = format!("/federation/v1/plans/{unshared}/transfer");
    let forged = Handover {
        document: Some(Automerge::new().save()),
        grants: Vec::new(),
        certificate: "not.a.certificate".into(),
        keeps_copy: false,
    };
    let mut forged_cbor = Vec::new();
    ciborium::into_writer(&forged, &mut forged_cbor).expect("cbor");
    for (what, bad) in [
        ("not CBOR", b"garbage".to_vec()),
        ("forged certificate", forged_cbor),
    ] {
        let signed = b.sign(&aud, "POST", &handover_path, &bad, now(), now() + 60);
        let reply = node.send(
            node.request(Method::POST, &handover_path)
                .header("content-type", "application/cbor")
                .header("authorization", signed)
                .body(bad),
        );
        assert_eq!(reply.status, 400, "{what}: {}", reply.text());
        assert_eq!(
            reply.problem_type(),
            Some("/problems/invalid-request"),
            "{what}"
        );
    }
    assert_eq!(
        node.read_plan(&fran, &unshared).plan["title"],
        "Staying family"
    );

    // Changes made on the peer: refused unless the peer vouches for their
    // author, the author is on the team as name@peer, and the role allows
    // them; then kept and attributed.
    let version = node.read_plan(&fran, &shared).version;
    let put = |doc: &mut Automerge, key: &str, value: &str| {
        let mut tx = doc.transaction();
        wrapsync_shared::automerge::transaction::Transactable::put(
            &mut tx,
            wrapsync_shared::automerge::ROOT,
            key,
            value,
        )
        .expect("put");
        tx.commit();
    };
    put(&mut doc, "vision", "Changed elsewhere");
    let actor = doc.get_actor().to_hex_string();
    // Rounds until the node refuses (422) or nothing more is exchanged.
    let push = |doc: &mut Automerge, act: serde_json::Value| {
        let mut state = sync::State::new();
        pull_as(&node, &b, &shared, doc, &mut state, act)
    };
    assert_eq!(push(&mut doc, json!({})), 422, "no author vouched for");
    assert_eq!(
        push(&mut doc, json!({ &actor: "dana" })),
        422,
        "dana@county-b is not on the team"
    );
    assert_eq!(node.read_plan(&fran, &shared).version, version);
    node.apply_ops(&fran, &shared, json!([
        {"op":"add","path":"/team","value":{"name":"Dana (county B)","role":"caregiver","user":"dana@county-b"}}
    ]));
    assert_eq!(push(&mut doc, json!({ &actor: "dana" })), 204);
    assert_eq!(
        node.read_plan(&fran, &shared).plan["vision"],
        "Changed elsewhere"
    );
    let history = node.history(&fran, &shared);
    assert!(history
        .changes
        .iter()
        .any(|c| c.user.as_deref() == Some("dana@county-b")));
    // A caregiver's change to the title is refused, whoever vouches.
    put(&mut doc, "title", "Renamed elsewhere");
    assert_eq!(push(&mut doc, json!({ &actor: "dana" })), 422);
    assert_eq!(
        node.read_plan(&fran, &shared).plan["title"],
        "Moving family"
    );

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

/// Two real nodes that trust each other (added through the admin API), each
/// sending its shared plans every second besides at once on a change.
/// A node of a federation test, with more settings in `extra`.
fn county(backend: Backend, id: &str, mut extra: toml::Table) -> TestNode {
    extra.insert("node_id".into(), id.into());
    extra.insert("federation_interval_secs".into(), 1.into());
    TestNode::spawn_with(backend, extra)
}

fn two_nodes() -> (TestNode, TestNode) {
    let spawn = |id: &str| county(Backend::Sqlite, id, toml::Table::new());
    let (a, b) = (spawn("county-a"), spawn("county-b"));
    introduce(&a, &b);
    introduce(&b, &a);
    (a, b)
}

/// `to` trusts `from` at its current URL.
fn introduce(to: &TestNode, from: &TestNode) {
    to.trust(from, from.url());
}

/// The bytes of a SQLite node's database files (main file and WAL).
fn stored_bytes(node: &TestNode) -> Vec<u8> {
    let db = node.db_path().expect("a SQLite node");
    let mut bytes = std::fs::read(db).expect("the database file");
    let wal = db.with_extension("db-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_shared_plan_follows_the_family_to_another_node_and_nothing_else_goes() {
    use wrapsync_tests::users::CAREGIVER_2;
    use wrapsync_tests::{deadline, wait_until};
    let (a, mut b) = two_nodes();
    let fran = a.login(FACILITATOR);
    let shared = a.create_plan(&fran, "Family that moved").id;
    a.apply_ops(&fran, &shared, json!([
        {"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","user":CAREGIVER}},
        {"op":"add","path":"/team","value":{"name":"Cody (county B)","role":"caregiver","user":format!("{CAREGIVER_2}@county-b")}},
        {"op":"replace","path":"/vision","value":"Settled near grandma"}
    ]));
    let secret = "Q-SECRET-VISION-never-leaves";
    let unshared = a.create_plan(&fran, "Family that stayed").id;
    a.apply_ops(
        &fran,
        &unshared,
        json!([{"op":"replace","path":"/vision","value":secret}]),
    );

    // Consent given: the plan reaches B promptly, whole.
    a.post(
        &format!("/v1/plans/{shared}/shares"),
        &fran,
        &json!({"node":"county-b"}),
    )
    .assert_status(201);
    let cody = b.login(CAREGIVER_2);
    let arrived = wait_until(deadline(30), || {
        b.get(&format!("/v1/plans/{shared}"), &cody).status == 200
    });
    assert!(arrived, "the shared plan never reached node B\n{}", a.log());
    let at_a = a.read_plan(&fran, &shared);
    assert_eq!(b.read_plan(&cody, &shared).plan, at_a.plan);
    // B's own carla is not A's carla: a plain name on the roster is a user
    // of the plan's home.
    let b_carla = b.login(CAREGIVER);
    b.get(&format!("/v1/plans/{shared}"), &b_carla)
        .assert_status(404);
    assert!(b.list_all_plans(&b_carla).iter().all(|p| p.id != shared));
    // Both sides edit at once, one field each and one field both: the
    // edits meet on both nodes, attributed to who made them.
    b.apply_ops(&cody, &shared, json!([
        {"op":"add","path":"/strengths","value":{"statement":"Cody drives to every meeting","about":"family"}},
        {"op":"replace","path":"/vision","value":"Vision from county B"}
    ]));
    a.apply_ops(
        &fran,
        &shared,
        json!([
            {"op":"replace","path":"/vision","value":"Vision from county A"},
            {"op":"add","path":"/needs","value":{"domain":"school","statement":"A new school"}}
        ]),
    );
    let converged = wait_until(deadline(30), || {
        let (at_a, at_b) = (a.read_plan(&fran, &shared), b.read_plan(&cody, &shared));
        at_a.version == at_b.version
            && at_a.plan["strengths"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
    });
    assert!(
        converged,
        "the two nodes did not converge\n{}\n{}",
        a.log(),
        b.log()
    );
    let (at_a, at_b) = (a.read_plan(&fran, &shared), b.read_plan(&cody, &shared));
    assert_eq!(at_a.plan, at_b.plan);
    assert_eq!(
        at_a.plan["strengths"][0]["statement"],
        "Cody drives to every meeting"
    );
    assert_eq!(at_a.plan["needs"][0]["statement"], "A new school");
    let history = a.history(&fran, &shared);
    assert!(history
        .changes
        .iter()
        .any(|c| c.user.as_deref() == Some("cody@county-b")));
    // And on B: the home's changes under the home's people, B's under B's.
    let history = b.history(&cody, &shared);
    assert!(history
        .changes
        .iter()
        .any(|c| c.user.as_deref() == Some("fran@county-a")));
    assert!(history
        .changes
        .iter()
        .any(|c| c.user.as_deref() == Some(CAREGIVER_2)));
    // B's supervisor sees the replica but is not on the family's team:
    // reading yes, editing no.
    let b_sam = b.login(SUPERVISOR);
    b.get(&format!("/v1/plans/{shared}"), &b_sam)
        .assert_status(200);
    b.post_ops(
        &b_sam,
        &shared,
        None,
        json!([{"op":"replace","path":"/mission","value":"x"}]),
    )
    .assert_problem(403, "forbidden");

    // Edits at home follow.
    a.apply_ops(
        &fran,
        &shared,
        json!([{"op":"replace","path":"/mission","value":"New school by March"}]),
    );
    assert!(wait_until(deadline(30), || {
        b.read_plan(&cody, &shared).plan["mission"] == "New school by March"
    }));
    let sam = a.login(SUPERVISOR);
    let peers = a.get("/v1/admin/peers", &sam);
    assert_eq!(peers.json["peers"][0]["status"]["reachable"], true);
    // And in the metrics, for Prometheus.
    let metrics = a.get_anon("/metrics");
    metrics.assert_status(200);
    let text = metrics.text();
    assert!(
        text.contains("wrapsync_peer_reachable{peer=\"county-b\"} 1"),
        "{text}"
    );
    assert!(text.contains("wrapsync_peer_plans_behind{peer=\"county-b\"} 0"));
    assert!(text.contains("wrapsync_peer_plans_sent_total{peer=\"county-b\"}"));

    // An idle peer costs nothing: passes go on (every second here), but
    // no request reaches B while neither side changes anything.
    let passed = |node: &TestNode| {
        node.get("/v1/admin/peers", &sam).json["peers"][0]["status"]["last_success_at"]
            .as_i64()
            .unwrap_or(0)
    };
    let pushes_from_a = || {
        b.audit(&b_sam, "user=peer:county-a&limit=1000")
            .entries
            .len()
    };
    let before = pushes_from_a();
    for _ in 0..3 {
        let at = passed(&a);
        assert!(wait_until(deadline(30), || passed(&a) > at), "no pass");
    }
    assert_eq!(pushes_from_a(), before, "an idle pass sent requests");

    // B is killed, A edits meanwhile, B comes back (at a new address):
    // nothing is lost.
    b.kill();
    for i in 0..5 {
        a.apply_ops(&fran, &shared, json!([{"op":"add","path":"/strengths","value":{"statement":format!("Strength {i}"),"about":"family"}}]));
    }
    assert!(wait_until(deadline(30), || {
        a.get("/v1/admin/peers", &sam).json["peers"][0]["status"]["reachable"] == false
    }));
    b.start();
    introduce(&a, &b);
    let cody = b.login(CAREGIVER_2);
    assert!(
        wait_until(deadline(60), || b.read_plan(&cody, &shared).version
            == a.read_plan(&fran, &shared).version),
        "B did not catch up after its restart\n{}",
        a.log()
    );
    assert_eq!(
        b.read_plan(&cody, &shared).plan,
        a.read_plan(&fran, &shared).plan
    );

    // Revoked: what B has stays; nothing more is sent.
    let vision_at_b = b.read_plan(&cody, &shared).plan["vision"].clone();
    a.post(
        &format!("/v1/plans/{shared}/shares/county-b/revoke"),
        &fran,
        &json!({}),
    )
    .assert_status(204);
    a.apply_ops(
        &fran,
        &shared,
        json!([{"op":"replace","path":"/vision","value":"After the family withdrew consent"}]),
    );
    let edited = a.read_plan(&fran, &shared).version;
    // Two passes end after the edit: the second began after it.
    for _ in 0..2 {
        let before = passed(&a);
        assert!(
            wait_until(deadline(30), || passed(&a) > before),
            "no pass after the edit"
        );
    }
    assert_ne!(b.read_plan(&cody, &shared).version, edited);
    assert_eq!(b.read_plan(&cody, &shared).plan["vision"], vision_at_b);

    // The plan never shared is nowhere in B's storage: not its id, not its
    // words; the shared one is.
    let stored = stored_bytes(&b);
    assert!(contains(&stored, &shared));
    assert!(!contains(&stored, &unshared));
    assert!(!contains(&stored, secret));
}

/// Waits (bounded) until `check` holds, else fails with the nodes' logs.
fn eventually(what: &str, nodes: &[&TestNode], check: impl FnMut() -> bool) {
    use wrapsync_tests::{deadline, wait_until};
    if !wait_until(deadline(60), check) {
        let logs: Vec<String> = nodes.iter().map(|n| n.log()).collect();
        panic!("{what}: not within 60 s\n{}", logs.join("\n----\n"));
    }
}

fn plan_status(node: &TestNode, token: &str, plan: &str) -> u16 {
    node.get(&format!("/v1/plans/{plan}"), token).status
}

fn a_plan_moves_its_home_with_its_history_and_its_replicas_follow(backend: Backend) {
    use wrapsync_tests::users::CAREGIVER_2;
    let spawn = |id: &str| county(backend, id, toml::Table::new());
    let (a, b, c) = (spawn("county-a"), spawn("county-b"), spawn("county-c"));
    for (to, from) in [(&a, &b), (&a, &c), (&b, &a), (&b, &c), (&c, &a), (&c, &b)] {
        introduce(to, from);
    }
    let fran = a.login(FACILITATOR);
    let plan = a.create_plan(&fran, "Family on the move").id;
    a.apply_ops(&fran, &plan, json!([
        {"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","user":CAREGIVER}},
        {"op":"add","path":"/team","value":{"name":"Cody (new county)","role":"caregiver","user":format!("{CAREGIVER_2}@county-b")}},
        {"op":"add","path":"/team","value":{"name":"Cody (placement county)","role":"caregiver","user":format!("{CAREGIVER_2}@county-c")}},
        {"op":"replace","path":"/vision","value":"A home near the new job"}
    ]));
    let transfer = format!("/v1/plans/{plan}/transfer");

    // No consent to share with B yet: the plan cannot move there.
    a.post(&transfer, &fran, &json!({"node":"county-b"}))
        .assert_problem(409, "conflict");
    let carla = a.login(CAREGIVER);
    for node in ["county-b", "county-c"] {
        a.post(
            &format!("/v1/plans/{plan}/shares"),
            &carla,
            &json!({"node": node}),
        )
        .assert_status(201);
    }
    let (cody_b, cody_c) = (b.login(CAREGIVER_2), c.login(CAREGIVER_2));
    eventually("the plan reaching B and C", &[&a, &b, &c], || {
        plan_status(&b, &cody_b, &plan) == 200 && plan_status(&c, &cody_c, &plan) == 200
    });
    // Only a facilitator or supervisor moves a plan, only to a peer.
    a.post(&transfer, &carla, &json!({"node":"county-b"}))
        .assert_problem(403, "forbidden");
    a.post(&transfer, &fran, &json!({"node":"county-x"}))
        .assert_problem(400, "invalid-request");
    let b_sam = b.login(SUPERVISOR);
    b.post_ops(
        &b_sam,
        &plan,
        None,
        json!([{"op":"replace","path":"/mission","value":"x"}]),
    )
    .assert_problem(403, "forbidden");
    let changes_before = a.history(&fran, &plan).changes.len();

    // The family moved to county B.
    let moved = a.post(&transfer, &fran, &json!({"node":"county-b"}));
    moved.assert_status(200);
    assert_eq!(moved.json["state"], "done");
    assert_eq!(moved.json["kept"], true);
    // B is the home now: its supervisor edits it, and its whole history
    // came along (the roster naming A's people `name@county-a` is the
    // one change the move made).
    b.apply_ops(
        &b_sam,
        &plan,
        json!([{"op":"replace","path":"/mission","value":"Settle in county B"}]),
    );
    let history = b.history(&b_sam, &plan);
    assert!(history.changes.len() > changes_before, "{history:?}");
    assert!(history
        .changes
        .iter()
        .any(|c| c.user.as_deref() == Some("fran@county-a")));
    assert!(b.read_plan(&b_sam, &plan).plan["team"]
        .as_array()
        .is_some_and(|t| t
            .iter()
            .any(|m| m["user"] == format!("{CAREGIVER}@county-a"))));
    // B's own carla is not A's carla.
    let b_carla = b.login(CAREGIVER);
    assert_eq!(plan_status(&b, &b_carla, &plan), 404);
    // A kept its copy, now a replica: its supervisor may no longer edit;
    // fran still works on it through A, and so does cody through C, whose
    // replica follows the move on A's signed word.
    let a_sam = a.login(SUPERVISOR);
    a.post_ops(
        &a_sam,
        &plan,
        None,
        json!([{"op":"replace","path":"/mission","value":"y"}]),
    )
    .assert_problem(403, "forbidden");
    a.post(&transfer, &fran, &json!({"node":"county-c"}))
        .assert_problem(409, "conflict");
    a.apply_ops(&fran, &plan, json!([{"op":"add","path":"/strengths","value":{"statement":"Fran still helps from county A","about":"family"}}]));
    c.apply_ops(&cody_c, &plan, json!([{"op":"add","path":"/strengths","value":{"statement":"Cody visits from county C","about":"family"}}]));
    eventually(
        "all three nodes converging on the moved plan",
        &[&a, &b, &c],
        || {
            let at_b = b.read_plan(&b_sam, &plan);
            at_b.plan["strengths"]
                .as_array()
                .is_some_and(|s| s.len() == 2)
                && a.read_plan(&fran, &plan).version == at_b.version
                && c.read_plan(&cody_c, &plan).version == at_b.version
        },
    );
    let at_b = b.read_plan(&b_sam, &plan);
    assert_eq!(a.read_plan(&fran, &plan).plan, at_b.plan);
    assert_eq!(c.read_plan(&cody_c, &plan).plan, at_b.plan);
    assert_eq!(at_b.plan["mission"], "Settle in county B");
    let history = b.history(&b_sam, &plan);
    for who in ["fran@county-a", "cody@county-c"] {
        assert!(
            history
                .changes
                .iter()
                .any(|c| c.user.as_deref() == Some(who)),
            "{who} missing from {history:?}"
        );
    }
}

#[test]
fn a_plan_moves_its_home_sqlite() {
    a_plan_moves_its_home_with_its_history_and_its_replicas_follow(Backend::Sqlite);
}

#[test]
fn a_plan_moves_its_home_postgres() {
    a_plan_moves_its_home_with_its_history_and_its_replicas_follow(Backend::Postgres);
}

/// An old home set to keep no copy deletes the plan once the new home
/// holds it; a new home that is down gets it when it is back.
#[test]
fn a_plan_moved_while_the_new_home_is_down_arrives_and_the_old_home_forgets_it() {
    let mut keep_nothing = toml::Table::new();
    keep_nothing.insert("transfer_keeps_copy".into(), false.into());
    let a = county(Backend::Sqlite, "county-a", keep_nothing);
    let mut b = county(Backend::Sqlite, "county-b", toml::Table::new());
    introduce(&a, &b);
    introduce(&b, &a);
    let fran = a.login(FACILITATOR);
    let plan = a.create_plan(&fran, "Family moving away").id;
    let words = "Q-MOVED-VISION-leaves-with-the-family";
    a.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/vision","value":words}]),
    );
    a.post(
        &format!("/v1/plans/{plan}/shares"),
        &fran,
        &json!({"node":"county-b"}),
    )
    .assert_status(201);
    b.kill();
    let moved = a.post(
        &format!("/v1/plans/{plan}/transfer"),
        &fran,
        &json!({"node":"county-b"}),
    );
    moved.assert_status(202);
    assert_eq!(moved.json["state"], "pending");
    // Still homed at A meanwhile.
    a.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/mission","value":"Pack and go"}]),
    );
    b.start();
    introduce(&a, &b);
    let b_sam = b.login(SUPERVISOR);
    eventually("the plan arriving at its new home", &[&a, &b], || {
        plan_status(&b, &b_sam, &plan) == 200 && plan_status(&a, &fran, &plan) == 404
    });
    let at_b = b.read_plan(&b_sam, &plan);
    assert_eq!(at_b.plan["vision"], words);
    assert_eq!(at_b.plan["mission"], "Pack and go");
    b.apply_ops(
        &b_sam,
        &plan,
        json!([{"op":"replace","path":"/mission","value":"Home now"}]),
    );
    // A kept nothing of it but its audit trail (the plan id, never its words).
    let a_sam = a.login(SUPERVISOR);
    assert!(a.list_all_plans(&a_sam).iter().all(|p| p.id != plan));
    let stored = stored_bytes(&a);
    assert!(!contains(&stored, words));
}

/// Between counties, node requests go over HTTPS: a node trusts the
/// authorities of the web PKI and those its config names
/// (`federation_ca_file`); one that does not trust the peer's certificate
/// sends it nothing and says why.
#[test]
fn peers_speak_https_and_an_untrusted_certificate_gets_nothing() {
    use wrapsync_tests::users::CAREGIVER_2;
    use wrapsync_tests::{TestCa, TlsFront};
    let ca = TestCa::new().expect("a test CA");
    let dir = tempfile::tempdir().expect("a temp dir");
    let ca_file = dir.path().join("county-ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("the CA file");
    let mut trusting = toml::Table::new();
    trusting.insert(
        "federation_ca_file".into(),
        ca_file.to_string_lossy().to_string().into(),
    );
    let a = county(Backend::Sqlite, "county-a", trusting);
    let c = county(Backend::Sqlite, "county-c", toml::Table::new());
    let b = county(Backend::Sqlite, "county-b", toml::Table::new());
    let front = TlsFront::start(&ca, b.url()).expect("a TLS front for B");
    assert!(front.url().starts_with("https://"));
    for sender in [&a, &c] {
        sender.trust(&b, front.url());
        introduce(&b, sender);
    }
    let share = |node: &TestNode, title: &str| {
        let fran = node.login(FACILITATOR);
        let plan = node.create_plan(&fran, title).id;
        node.apply_ops(&fran, &plan, json!([
            {"op":"add","path":"/team","value":{"name":"Cody","role":"caregiver","user":format!("{CAREGIVER_2}@county-b")}}
        ]));
        node.post(
            &format!("/v1/plans/{plan}/shares"),
            &fran,
            &json!({"node":"county-b"}),
        )
        .assert_status(201);
        plan
    };
    let (over_tls, untrusted) = (share(&a, "Sent over TLS"), share(&c, "Never sent"));
    let cody = b.login(CAREGIVER_2);
    eventually("the plan arriving over HTTPS", &[&a, &b], || {
        plan_status(&b, &cody, &over_tls) == 200
    });
    let c_sam = c.login(SUPERVISOR);
    let status = |node: &TestNode, token: &str| {
        node.get("/v1/admin/peers", token).json["peers"]
            .as_array()
            .and_then(|peers| peers.iter().find(|p| p["id"] == "county-b").cloned())
            .map(|p| p["status"].clone())
            .unwrap_or_default()
    };
    eventually("C failing to reach B", &[&c], || {
        status(&c, &c_sam)["reachable"] == false
    });
    let error = status(&c, &c_sam)["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(plan_status(&b, &cody, &untrusted), 404);
    let a_sam = a.login(SUPERVISOR);
    assert_eq!(status(&a, &a_sam)["reachable"], true);
}

/// A CA file that cannot be read or holds no certificate stops the node at
/// start, naming the file, rather than leaving it unable to reach its peers.
#[test]
fn an_unreadable_federation_ca_file_stops_the_node_at_start() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(
        &not_pem,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .expect("the file");
    for path in [dir.path().join("missing.pem"), not_pem] {
        let mut config = toml::Table::new();
        config.insert(
            "federation_ca_file".into(),
            path.to_string_lossy().to_string().into(),
        );
        let error = match TestNode::try_spawn_with(Backend::Sqlite, config) {
            Ok(_) => panic!("the node started with {}", path.display()),
            Err(e) => e.to_string(),
        };
        assert!(error.contains("federation_ca_file"), "{error}");
    }
}

/// A node with tiny rate limits, trusting `peer`.
fn node_with_tiny_limits(peer: &PeerKey) -> TestNode {
    let limit = |per_second: f64, burst: f64| {
        let mut t = toml::Table::new();
        t.insert("per_second".into(), per_second.into());
        t.insert("burst".into(), burst.into());
        toml::Value::Table(t)
    };
    let mut peers = toml::Table::new();
    peers.insert("id".into(), peer.id.clone().into());
    peers.insert("url".into(), "http://127.0.0.1:9".into());
    peers.insert("public_key".into(), peer.public_key.clone().into());
    let mut extra = toml::Table::new();
    extra.insert(
        "peers".into(),
        toml::Value::Array(vec![toml::Value::Table(peers)]),
    );
    extra.insert("rate_limit_per_user".into(), limit(1.0, 2.0));
    extra.insert("rate_limit_per_peer".into(), limit(1.0, 2.0));
    extra.insert("rate_limit_login_per_ip".into(), limit(1.0, 3.0));
    TestNode::spawn_with(Backend::Sqlite, extra)
}

/// Asserts `reply` is the `rate-limited` problem with a `Retry-After` of
/// one second (the limits above refill one token a second).
#[track_caller]
fn assert_rate_limited(reply: &Reply) {
    reply.assert_status(429);
    assert_eq!(
        reply.json["type"],
        "/problems/rate-limited",
        "{}",
        reply.text()
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
}

#[test]
fn over_a_rate_limit_is_429_with_retry_after_then_served_again() {
    let b = PeerKey::new(PEER);
    let node = node_with_tiny_limits(&b);

    // Logins from one address: a burst of three, then 429 (audited).
    let fran = node.login(FACILITATOR);
    let sam = node.login(SUPERVISOR);
    node.try_login(CAREGIVER, "wrong password")
        .assert_status(401);
    assert_rate_limited(&node.try_login(YOUTH, "any"));

    // Requests per user: a burst of two, then 429; another user is not
    // held back; after the wait the first is served again.
    node.get("/v1/plans", &fran).assert_status(200);
    node.get("/v1/plans", &fran).assert_status(200);
    assert_rate_limited(&node.get("/v1/plans", &fran));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    node.get("/v1/plans", &fran).assert_status(200);

    // Signed requests per peer: the same.
    let path = "/federation/v1/plans/01HZZZZZZZZZZZZZZZZZZZZZZZ/sync";
    let signed = |node: &TestNode| {
        let auth = b.sign(node.node_id(), "POST", path, b"", now(), now() + 60);
        post_signed(node, path, Some(&auth), Vec::new())
    };
    assert_ne!(signed(&node).status, 429);
    assert_ne!(signed(&node).status, 429);
    assert_rate_limited(&signed(&node));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_ne!(signed(&node).status, 429);

    // The refusals are in the audit trail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = node.audit(&sam, "");
        let refused = |action: &str| {
            page.entries.iter().any(|e| {
                e.action.starts_with(action)
                    && e.outcome == "refused"
                    && e.detail
                        .as_deref()
                        .is_some_and(|d| d.contains("too many requests"))
            })
        };
        if refused("auth.login") && refused("GET") && refused("peer.request") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "refusals not audited: {:?}",
            page.entries
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
}
