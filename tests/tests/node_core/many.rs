//! `POST /v1/sync` (one round for many plans), `POST /v1/plans` with a
//! whole Automerge document made elsewhere, and CORS for browser apps on
//! other origins.

use crate::{add_member, NO_SUCH_ID};
use reqwest::Method;
use serde_json::json;
use wrapsync_shared::api::{SyncBatch, SyncBatchItem, SyncBatchReply};
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::{ActorId, Automerge, ChangeHash};
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::plan::{init_plan, render};
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, FACILITATOR_2};
use wrapsync_tests::{Backend, Reply, TestNode};

on_both_backends!(
    many_plans_sync_a_round_per_request,
    a_document_made_elsewhere_becomes_a_plan,
);

/// A device's copies of several plans and their sync states.
struct Device {
    plans: Vec<(String, Automerge, sync::State)>,
}

impl Device {
    fn new(plans: &[&str]) -> Self {
        let actor = ActorId::random();
        Device {
            plans: plans
                .iter()
                .map(|p| {
                    let doc = Automerge::new().with_actor(actor.clone());
                    (p.to_string(), doc, sync::State::new())
                })
                .collect(),
        }
    }

    /// One batched round for every plan, in CBOR; answers the reply and
    /// whether anything was exchanged.
    fn round(&mut self, node: &TestNode, token: &str) -> (SyncBatchReply, bool) {
        let mut exchanged = false;
        let batch = SyncBatch {
            plans: self
                .plans
                .iter_mut()
                .map(|(plan, doc, state)| {
                    let message = doc.generate_sync_message(state).map(sync::Message::encode);
                    exchanged |= message.is_some();
                    SyncBatchItem {
                        plan: plan.clone(),
                        message,
                        have: None,
                    }
                })
                .collect(),
        };
        let reply = send_cbor(node, token, &batch);
        reply.assert_status(200);
        assert_eq!(reply.header("content-type"), Some("application/cbor"));
        let answer: SyncBatchReply =
            ciborium::from_reader(reply.body.as_slice()).expect("a CBOR sync batch reply");
        assert_eq!(
            answer.plans.len(),
            self.plans.len(),
            "one entry per plan asked"
        );
        for ((plan, doc, state), result) in self.plans.iter_mut().zip(&answer.plans) {
            assert_eq!(&result.plan, plan, "entries in the order asked");
            if let Some(bytes) = &result.message {
                exchanged = true;
                let message = sync::Message::decode(bytes).expect("a sync message");
                doc.receive_sync_message(state, message).expect("applies");
            }
        }
        (answer, exchanged)
    }

    fn sync(&mut self, node: &TestNode, token: &str) -> (SyncBatchReply, usize) {
        for rounds in 1..=10 {
            let (answer, exchanged) = self.round(node, token);
            if !exchanged {
                return (answer, rounds);
            }
        }
        panic!("the batch did not settle in 10 rounds");
    }

    fn edit(&mut self, plan: usize, role: Role, ops: serde_json::Value) {
        let ops: Vec<Op> = serde_json::from_value(ops).expect("ops");
        let doc = &mut self.plans[plan].1;
        let mut tx = doc.transaction();
        let editor = Editor {
            role,
            member_id: None,
        };
        let mut next = || ulid::Ulid::new().to_string();
        apply_ops(&mut tx, &ops, &editor, &mut next).expect("a valid offline edit");
        tx.commit();
    }
}

fn send_cbor(node: &TestNode, token: &str, batch: &SyncBatch) -> Reply {
    let mut body = Vec::new();
    ciborium::into_writer(batch, &mut body).expect("CBOR");
    node.send(
        node.request(Method::POST, "/v1/sync")
            .bearer_auth(token)
            .header("content-type", "application/cbor")
            .header("Device-Id", "batch-phone")
            .body(body),
    )
}

fn sorted_heads(doc: &Automerge) -> Vec<String> {
    let mut heads: Vec<String> = doc.get_heads().iter().map(ChangeHash::to_string).collect();
    heads.sort();
    heads
}

/// Rounds a batch may take to converge: three, and one more when a Bloom
/// filter's false positive (about 1 % a change) hides a change its sender
/// then has to ask for (seen once in ~90 runs).
const ROUNDS: usize = 4;

fn many_plans_sync_a_round_per_request(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plans: Vec<String> = (0..3)
        .map(|i| node.create_plan(&fran, &format!("Batch family {i}")).id)
        .collect();
    for plan in &plans[..2] {
        add_member(&node, &fran, plan, "Carla", "caregiver", Some(CAREGIVER));
    }
    let carla = node.login(CAREGIVER);

    // Carla's phone asks for her two plans, a third that is not hers and
    // one that does not exist: hers arrive, the others are each refused
    // alike (nothing tells her the third exists).
    let asked = [
        plans[0].as_str(),
        plans[1].as_str(),
        plans[2].as_str(),
        NO_SUCH_ID,
    ];
    let mut phone = Device::new(&asked);
    let (answer, rounds) = phone.sync(&node, &carla);
    assert!(rounds <= ROUNDS, "a cold batch took {rounds} rounds");
    for refused in &answer.plans[2..] {
        let problem = refused.problem.as_ref().expect("refused");
        assert_eq!(
            (problem.status, problem.kind.as_str()),
            (404, "/problems/not-found")
        );
    }
    for (i, plan) in plans[..2].iter().enumerate() {
        let served = node.read_plan(&carla, plan);
        assert_eq!(render(&phone.plans[i].1), served.plan);
    }

    // Offline edits on both plans and, meanwhile, one on the node: one
    // batch brings all three together.
    phone.edit(
        0,
        Role::Caregiver,
        json!([{"op":"replace","path":"/vision","value":"Together at home"}]),
    );
    phone.edit(1, Role::Caregiver, json!([{"op":"add","path":"/strengths","value":{"statement":"Loves soccer","about":"youth"}}]));
    node.apply_ops(
        &fran,
        &plans[1],
        json!([{"op":"replace","path":"/mission","value":"Stay in school"}]),
    );
    phone.plans.truncate(2);
    let (_, rounds) = phone.sync(&node, &carla);
    assert!(rounds <= ROUNDS, "converging took {rounds} rounds");
    for (i, plan) in plans[..2].iter().enumerate() {
        let served = node.read_plan(&carla, plan);
        assert_eq!(render(&phone.plans[i].1), served.plan);
        assert_eq!(sorted_heads(&phone.plans[i].1), served.version);
    }
    assert_eq!(
        node.read_plan(&carla, &plans[0]).plan["vision"],
        "Together at home"
    );
    assert_eq!(
        node.read_plan(&carla, &plans[1]).plan["mission"],
        "Stay in school"
    );
    let history = node.history(&fran, &plans[1]);
    assert!(history
        .changes
        .iter()
        .any(|c| c.user.as_deref() == Some(CAREGIVER)));

    // A change she may not make is refused in its own entry; the plan is
    // untouched and her other plan's round goes through.
    phone.edit(
        0,
        Role::Facilitator,
        json!([{"op":"replace","path":"/title","value":"Renamed"}]),
    );
    phone.edit(
        1,
        Role::Caregiver,
        json!([{"op":"replace","path":"/vision","value":"Second vision"}]),
    );
    let before = node.read_plan(&carla, &plans[0]);
    let mut refused = None;
    for _ in 0..10 {
        let (answer, exchanged) = phone.round(&node, &carla);
        refused = refused.or_else(|| answer.plans[0].problem.clone());
        if !exchanged || refused.is_some() && answer.plans[1].message.is_none() {
            break;
        }
    }
    let refused = refused.expect("the title change is refused");
    assert_eq!(
        (refused.status, refused.kind.as_str()),
        (422, "/problems/change-forbidden")
    );
    assert_eq!(node.read_plan(&carla, &plans[0]).version, before.version);
    assert_eq!(
        node.read_plan(&carla, &plans[1]).plan["vision"],
        "Second vision"
    );

    // JSON works too (messages base64); a plan twice and an oversized
    // batch are refused whole.
    let json_round = node.post(
        "/v1/sync",
        &carla,
        &json!({"plans":[{"plan": plans[1], "message": null}]}),
    );
    json_round.assert_status(200);
    assert_eq!(json_round.json["plans"][0]["plan"], json!(plans[1]));
    assert!(json_round.json["plans"][0]["message"].is_string());
    node.post(
        "/v1/sync",
        &carla,
        &json!({"plans":[{"plan": plans[1]}, {"plan": plans[1]}]}),
    )
    .assert_problem(400, "invalid-request");
    let too_many: Vec<_> = (0..501).map(|i| json!({"plan": format!("p{i}")})).collect();
    node.post("/v1/sync", &carla, &json!({ "plans": too_many }))
        .assert_problem(400, "invalid-request");
    let garbage = node.send(
        node.request(Method::POST, "/v1/sync")
            .bearer_auth(&carla)
            .header("content-type", "application/cbor")
            .body(vec![0xff, 0x00, 0x13]),
    );
    garbage.assert_problem(400, "invalid-request");
}

/// A plan made from scratch with the Automerge library, as any client
/// could: `init_plan` and ops on a fresh document, `fran` on its team.
fn document_from_scratch(actor: ActorId, team_user: &str) -> Automerge {
    let mut doc = Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    init_plan(&mut tx, "Imported family").expect("init");
    let ops: Vec<Op> = serde_json::from_value(json!([
        {"op":"add","path":"/team","value":{"name":"Fran","role":"facilitator","user":team_user}},
        {"op":"replace","path":"/vision","value":"Safe and proud at home"}
    ]))
    .expect("ops");
    let editor = Editor {
        role: Role::Facilitator,
        member_id: None,
    };
    let mut next = || ulid::Ulid::new().to_string();
    apply_ops(&mut tx, &ops, &editor, &mut next).expect("valid ops");
    tx.commit();
    doc
}

fn upload(node: &TestNode, token: &str, bytes: Vec<u8>) -> Reply {
    node.send(
        node.request(Method::POST, "/v1/plans")
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes),
    )
}

fn a_document_made_elsewhere_becomes_a_plan(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let actor = ActorId::random();
    let doc = document_from_scratch(actor.clone(), FACILITATOR);

    let created = upload(&node, &fran, doc.save());
    created.assert_status(201);
    let id = created.json["id"].as_str().expect("an id").to_string();
    let served = node.read_plan(&fran, &id);
    assert_eq!(served.plan, render(&doc));
    assert_eq!(served.version, sorted_heads(&doc));
    let history = node.history(&fran, &id);
    assert!(history
        .changes
        .iter()
        .all(|c| c.user.as_deref() == Some(FACILITATOR)));

    // Refused, leaving no plan behind: a caregiver may not start plans; a
    // document that leaves its creator off the team, one that breaks the
    // schema, bytes that are no document, and a document whose actor is
    // already someone else's (fran's, now).
    let listed = node.list_all_plans(&fran).len();
    let carla = node.login(CAREGIVER);
    upload(&node, &carla, doc.save()).assert_problem(403, "forbidden");
    let fiona = node.login(FACILITATOR_2);
    let not_on_team = document_from_scratch(ActorId::random(), FACILITATOR);
    upload(&node, &fiona, not_on_team.save()).assert_problem(422, "schema-violation");
    let mut broken = Automerge::new();
    {
        use wrapsync_shared::automerge::transaction::Transactable;
        let mut tx = broken.transaction();
        tx.put(wrapsync_shared::automerge::ROOT, "title", 7)
            .expect("put");
        tx.commit();
    }
    upload(&node, &fran, broken.save()).assert_problem(422, "schema-violation");
    upload(&node, &fran, b"not automerge".to_vec()).assert_problem(400, "malformed-document");
    upload(&node, &fran, Vec::new()).assert_problem(400, "malformed-document");
    let stolen = document_from_scratch(actor, FACILITATOR_2);
    upload(&node, &fiona, stolen.save()).assert_problem(422, "change-forbidden");
    assert_eq!(node.list_all_plans(&fran).len(), listed);

    // The JSON create still works beside it.
    node.create_plan(&fran, "Made by JSON");
}

#[test]
fn browsers_on_configured_origins_may_call_the_api() {
    let mut extra = toml::Table::new();
    extra.insert(
        "cors_origins".into(),
        toml::Value::Array(vec!["https://app.example.org".into()]),
    );
    let node = TestNode::spawn_with(Backend::Sqlite, extra);
    let preflight = node.send(
        node.request(Method::OPTIONS, "/v1/plans")
            .header("Origin", "https://app.example.org")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, device-id",
            ),
    );
    assert!(
        preflight.status < 300,
        "preflight answered {}",
        preflight.status
    );
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example.org")
    );
    let token = node.login(FACILITATOR);
    let listed = node.send(
        node.request(Method::GET, "/v1/plans")
            .bearer_auth(&token)
            .header("Origin", "https://app.example.org"),
    );
    listed.assert_status(200);
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("https://app.example.org")
    );
    // Another origin gets no CORS headers (its browser blocks the answer);
    // a same-origin request with an Origin header is served as before.
    let other = node.send(
        node.request(Method::GET, "/v1/plans")
            .bearer_auth(&token)
            .header("Origin", "https://evil.example.com"),
    );
    assert_eq!(other.header("access-control-allow-origin"), None);
}

/// The Rust client speaks the routes above, and sharing and peers.
#[test]
fn the_rust_client_imports_syncs_in_batches_shares_and_manages_peers() {
    use wrapsync_client::{Client, ClientError};
    use wrapsync_tests::password_of;
    use wrapsync_tests::users::SUPERVISOR;

    let peer_key =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [7u8; 32]);
    let mut peer = toml::Table::new();
    peer.insert("id".into(), "county-b".into());
    peer.insert("url".into(), "http://127.0.0.1:9".into());
    peer.insert("public_key".into(), peer_key.clone().into());
    let mut extra = toml::Table::new();
    extra.insert(
        "peers".into(),
        toml::Value::Array(vec![toml::Value::Table(peer)]),
    );
    let node = TestNode::spawn_with(Backend::Sqlite, extra);
    let login = |user: &str| {
        let mut client = Client::new(node.url()).expect("a client");
        client.login(user, &password_of(user)).expect("login");
        client
    };
    let fran = login(FACILITATOR);

    let doc = document_from_scratch(ActorId::random(), FACILITATOR);
    let imported = fran.import_plan(doc.save()).expect("imported");
    assert_eq!(imported.plan, render(&doc));

    // A device with nothing asks with `have: []` and gets the whole plan.
    let reply = fran
        .sync_batch(
            "rust-device",
            vec![SyncBatchItem {
                plan: imported.id.clone(),
                message: None,
                have: Some(Vec::new()),
            }],
        )
        .expect("a batch");
    let entry = &reply.plans[0];
    let copy = Automerge::load(entry.changes.as_deref().expect("the plan")).expect("loads");
    assert_eq!(render(&copy), imported.plan);
    assert_eq!(entry.heads.as_ref(), Some(&sorted_heads(&copy)));
    // Heads it has: nothing more; heads it cannot have: 409 for that plan.
    let have = |heads: Vec<String>| {
        fran.sync_batch(
            "rust-device",
            vec![SyncBatchItem {
                plan: imported.id.clone(),
                message: None,
                have: Some(heads),
            }],
        )
        .expect("a batch")
        .plans
        .remove(0)
    };
    let current = have(sorted_heads(&copy));
    assert!(current.changes.is_none() && current.problem.is_none());
    let unknown = have(vec!["ab".repeat(32)]);
    assert_eq!(unknown.problem.map(|p| p.status), Some(409));
    let malformed = have(vec!["not a head".into()]);
    assert_eq!(
        malformed.problem.map(|p| (p.status, p.kind)),
        Some((400, "/problems/invalid-request".to_string()))
    );

    // Consent to share with the configured peer, listed, revoked once.
    let share = fran.share(&imported.id, "county-b", None).expect("shared");
    assert!(share.live);
    assert_eq!(
        fran.shares(&imported.id).expect("shares").shares,
        vec![share]
    );
    fran.revoke_share(&imported.id, "county-b")
        .expect("revoked");
    match fran.revoke_share(&imported.id, "county-b") {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("revoking twice: {other:?}"),
    }
    assert!(!fran.shares(&imported.id).expect("shares").shares[0].live);

    // Peers, for supervisors.
    assert!(matches!(
        fran.peers(),
        Err(ClientError::Api { status: 403, .. })
    ));
    let sam = login(SUPERVISOR);
    assert_eq!(sam.peers().expect("peers").peers[0].source, "config");
    let added = sam
        .add_peer("county-c", "https://c.example", &peer_key)
        .expect("added");
    assert_eq!(added.source, "admin");
    assert_eq!(sam.peers().expect("peers").peers.len(), 2);
    sam.remove_peer("county-c").expect("removed");
    // The config file's peer is changed there, not here.
    assert!(matches!(
        sam.add_peer("county-b", "https://b.example", &peer_key),
        Err(ClientError::Api { status: 409, .. })
    ));
    assert!(matches!(
        sam.remove_peer("county-b"),
        Err(ClientError::Api { status: 409, .. })
    ));
    assert!(matches!(
        sam.remove_peer("county-c"),
        Err(ClientError::Api { status: 404, .. })
    ));
}
