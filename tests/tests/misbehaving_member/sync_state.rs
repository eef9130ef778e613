//! Findings 1 and 6 of issue 22, from the seat of a signed-in caregiver
//! whose phone is scripted:
//!
//! - 5,000 made-up `Device-Id`s made 5,000 permanent sync states. Here a
//!   user's states stop at `sync_states_per_user` (the least recently used
//!   go first) while the user's real phone and others' keep syncing.
//! - A message's `have` carried a 24 MB Bloom filter, stored at 2.2 times
//!   its size. Here a filter larger than the plan's size calls for is
//!   refused (`413 sync-state-too-large`) and nothing is stored.
//! - A message of 990,000 operations cost seconds of CPU and most of a
//!   gigabyte before the schema refused it. Here it is refused from its
//!   headers and columns (`413 message-too-large`), alone or in a batch,
//!   and the node's memory does not move.

use base64::Engine;
use reqwest::Method;
use serde_json::json;
use wrapsync_shared::api::{PeerSyncBatch, PeerSyncItem, SyncBatchReply};
use wrapsync_shared::automerge::sync::{self, BloomFilter, Have};
use wrapsync_shared::automerge::transaction::Transactable;
use wrapsync_shared::automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT};
use wrapsync_shared::roles::Role;
use wrapsync_tests::usage;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, SUPERVISOR};
use wrapsync_tests::{
    deadline, unix_now, wait_until, Backend, Device, NodeSigner, Reply, TestNode,
};

on_both_backends!(
    a_flood_of_device_ids_keeps_a_bounded_number_of_states,
    an_oversized_bloom_filter_is_refused_and_nothing_is_stored,
    a_message_of_990000_operations_is_refused_before_decoding,
    a_peer_batch_of_huge_messages_is_refused_from_their_headers,
);

/// One number the node's database answers to `query`, read with the
/// database's own client (`sqlite3` or `psql`), as an operator would.
fn count(node: &TestNode, query: &str) -> i64 {
    let out = match node.db_path() {
        Some(db) => std::process::Command::new("sqlite3")
            .arg(db)
            .arg(query)
            .output(),
        None => std::process::Command::new("psql")
            .args(["-X", "-q", "-t", "-A", &node.database_url(), "-c", query])
            .output(),
    }
    .unwrap_or_else(|e| panic!("running the database's client: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{query}: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

/// Rows of `sync_states` whose device id contains `pattern`.
fn states_like(node: &TestNode, pattern: &str) -> i64 {
    count(
        node,
        &format!("SELECT count(*) FROM sync_states WHERE device_id LIKE '%{pattern}%'"),
    )
}

/// A plan with Carla (a caregiver) on its team.
fn family_plan(node: &TestNode, fran: &str, title: &str) -> String {
    let plan = node.create_plan(fran, title).id;
    node.add_caregiver(fran, &plan);
    plan
}

/// `bytes` as one round of `device` on `plan`.
fn send_raw(node: &TestNode, token: &str, plan: &str, device: &str, bytes: Vec<u8>) -> Reply {
    node.send(
        node.request(Method::POST, &format!("/v1/plans/{plan}/sync"))
            .bearer_auth(token)
            .header("Device-Id", device)
            .header("content-type", "application/octet-stream")
            .body(bytes),
    )
}

/// The node's resident memory, peak resident memory (bytes) and CPU
/// seconds used.
fn rss(node: &TestNode) -> u64 {
    usage::rss(node.pid().expect("a running node"))
}
fn peak(node: &TestNode) -> u64 {
    usage::peak_rss(node.pid().expect("a running node"))
}
fn cpu_secs(node: &TestNode) -> f64 {
    usage::cpu_secs(node.pid().expect("a running node"))
}

fn a_flood_of_device_ids_keeps_a_bounded_number_of_states(backend: Backend) {
    const CAP: i64 = 20;
    let mut extra = toml::Table::new();
    extra.insert("sync_states_per_user".into(), CAP.into());
    let node = TestNode::spawn_with(backend, extra);
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let plan = family_plan(&node, &fran, "Flooded family");
    let other = family_plan(&node, &fran, "Neighbouring family");

    // Carla's real phone syncs first; then her scripted one makes up 200
    // device ids, one round each.
    let mut phone = Device::new("carlas-phone");
    phone.sync(&node, &carla, &plan);
    let mut fran_phone = Device::new("frans-phone");
    fran_phone.sync(&node, &fran, &other);
    for i in 0..200 {
        let (reply, _) = Device::new(&format!("flood-{i}")).round(&node, &carla, &plan);
        reply.assert_status(200);
    }
    // The last state is stored (on SQLite after the answer).
    assert!(
        wait_until(deadline(10), || states_like(&node, "/device:flood-199")
            == 1),
        "the last round's state was stored"
    );
    let flood = states_like(&node, "/device:flood-");
    assert!(
        flood <= CAP,
        "{flood} states from one user's made-up devices"
    );
    assert!(flood >= CAP - 2, "{flood}: the most recent are kept");
    // The least recently used went first: the first ids are gone.
    assert_eq!(states_like(&node, "/device:flood-0"), 0);
    assert_eq!(states_like(&node, "/device:carlas-phone"), 0);
    // Another user's state is untouched.
    assert_eq!(states_like(&node, "/device:frans-phone"), 1);

    // Carla's phone lost only its state: it syncs again, and an edit made
    // offline reaches the node; Fran's phone is unaffected.
    phone.edit(
        Role::Caregiver,
        None,
        json!([{"op":"add","path":"/strengths","value":{"statement":"Carla cooks with the kids","about":"family"}}]),
    );
    phone.sync(&node, &carla, &plan);
    let strengths = node.read_plan(&fran, &plan).plan["strengths"].clone();
    assert!(strengths.to_string().contains("Carla cooks"), "{strengths}");
    assert_eq!(fran_phone.sync(&node, &fran, &other), 0);
    // Repeated rounds of one device keep one state per plan.
    for _ in 0..5 {
        phone.round(&node, &carla, &plan).0.assert_status(200);
    }
    assert!(wait_until(deadline(10), || states_like(
        &node,
        "/device:carlas-phone"
    ) == 1));
    let total = states_like(&node, "/device:");
    assert!(total <= CAP + 1, "{total} states in all");
}

fn an_oversized_bloom_filter_is_refused_and_nothing_is_stored(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let plan = family_plan(&node, &fran, "Bloom family");
    // A filter of 400,000 made-up changes (500 KB) for a plan of a few.
    let hashes: Vec<ChangeHash> = (0..400_000u32)
        .map(|i| {
            let mut h = [7u8; 32];
            h[..4].copy_from_slice(&i.to_le_bytes());
            ChangeHash(h)
        })
        .collect();
    let message = |hashes: &[ChangeHash]| {
        sync::Message {
            heads: Vec::new(),
            need: Vec::new(),
            have: vec![Have {
                last_sync: Vec::new(),
                bloom: BloomFilter::from_hashes(hashes.iter()),
            }],
            changes: sync::ChunkList::empty(),
            flags: None,
            version: sync::MessageVersion::V1,
        }
        .encode()
    };
    let huge = message(&hashes);
    assert!(huge.len() > 400_000, "{} bytes", huge.len());
    for round in 0..5 {
        send_raw(
            &node,
            &carla,
            &plan,
            &format!("bloom-{round}"),
            huge.clone(),
        )
        .assert_problem(413, "sync-state-too-large");
    }
    // And in a batch, as its plan's problem.
    let batch = node.send(
        node.request(Method::POST, "/v1/sync")
            .bearer_auth(&carla)
            .header("Device-Id", "bloom-batch")
            .json(&json!({"plans": [{"plan": plan, "message": base64::engine::general_purpose::STANDARD.encode(&huge)}]})),
    );
    batch.assert_status(200);
    assert_eq!(
        batch.json["plans"][0]["problem"]["type"],
        "/problems/sync-state-too-large",
        "{}",
        batch.text()
    );
    // A filter of the size the protocol makes for this plan goes through.
    send_raw(&node, &carla, &plan, "bloom-small", message(&hashes[..50])).assert_status(200);
    // Nothing of the refused ones was stored; the honest one was.
    assert!(wait_until(deadline(10), || states_like(
        &node,
        "/device:bloom-small"
    ) == 1));
    assert_eq!(states_like(&node, "/device:bloom-"), 1);
    let mut phone = Device::new("carlas-phone");
    phone.sync(&node, &carla, &plan);
}

fn a_message_of_990000_operations_is_refused_before_decoding(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let plan = family_plan(&node, &fran, "Huge message family");
    let mut phone = Device::new("carlas-phone");
    phone.sync(&node, &carla, &plan);

    let message = huge_message();
    assert!(message.len() < 2_000_000, "{} bytes", message.len());
    refused_from_headers(&node, &carla, &plan, &message);
    // The plan is as it was, and Carla's phone still syncs.
    assert!(!node
        .read_plan(&fran, &plan)
        .plan
        .to_string()
        .contains("aaaa"));
    phone.edit(
        Role::Caregiver,
        None,
        json!([{"op":"add","path":"/strengths","value":{"statement":"Still here","about":"family"}}]),
    );
    phone.sync(&node, &carla, &plan);
    assert!(node
        .read_plan(&fran, &plan)
        .plan
        .to_string()
        .contains("Still here"));
}

/// One change of 990,000 operations (a character each), as the probe sent,
/// in a sync message: under `max_document_ops`, so only the route's limit
/// stops it.
fn huge_message() -> Vec<u8> {
    let mut doc = Automerge::new().with_actor(ActorId::random());
    let mut tx = doc.transaction();
    let text = tx.put_object(ROOT, "notes", ObjType::Text).expect("a text");
    tx.splice_text(&text, 0, 0, &"a".repeat(989_999))
        .expect("typed");
    tx.commit();
    let change = doc.get_last_local_change().expect("the change");
    sync::Message {
        heads: doc.get_heads(),
        need: Vec::new(),
        have: Vec::new(),
        changes: sync::ChunkList::from(vec![change.raw_bytes().to_vec()]),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode()
}

/// Four rounds and a batch of `message` from Carla: each refused as
/// `message-too-large`, and the node's memory does not move (on main, each
/// took the node's peak from 72 MB to 590 MB and 6.4 CPU-s, then a 422).
fn refused_from_headers(node: &TestNode, carla: &str, plan: &str, message: &[u8]) {
    let (rss_before, peak_before, cpu_before) = (rss(node), peak(node), cpu_secs(node));
    for round in 0..4 {
        let reply = send_raw(node, carla, plan, "carlas-phone", message.to_vec());
        reply.assert_problem(413, "message-too-large");
        let detail = reply.json["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("max_sync_ops_member"),
            "round {round}: {detail}"
        );
    }
    let batch = node.send(
        node.request(Method::POST, "/v1/sync")
            .bearer_auth(carla)
            .header("Device-Id", "carlas-phone")
            .json(&json!({"plans": [{"plan": plan, "message": base64::engine::general_purpose::STANDARD.encode(message)}]})),
    );
    batch.assert_status(200);
    assert_eq!(
        batch.json["plans"][0]["problem"]["type"],
        "/problems/message-too-large",
        "{}",
        batch.text()
    );
    let (rss_after, cpu_after) = (rss(node), cpu_secs(node));
    eprintln!(
        "5 refusals of 990,000 operations: RSS {} -> {} MB (peak {} MB), {:.2} CPU-s",
        rss_before >> 20,
        rss_after >> 20,
        peak(node) >> 20,
        cpu_after - cpu_before
    );
    assert!(
        rss_after < rss_before + (100 << 20) && peak(node) < peak_before + (100 << 20),
        "RSS {} -> {} MB, peak {} -> {} MB",
        rss_before >> 20,
        rss_after >> 20,
        peak_before >> 20,
        peak(node) >> 20
    );
}

/// Finding 6's peer seat: four messages of 990,000 operations in one
/// signed batch (on main, 13 CPU-seconds) are each refused from their
/// headers (`max_peer_sync_ops`), and the node's peak memory stays where
/// it was.
fn a_peer_batch_of_huge_messages_is_refused_from_their_headers(backend: Backend) {
    let node = TestNode::spawn(backend);
    let peer = NodeSigner::new("county-p").expect("a key");
    let sam = node.login(SUPERVISOR);
    node.post(
        "/v1/admin/peers",
        &sam,
        &json!({ "id": peer.id, "url": "http://127.0.0.1:9", "public_key": peer.public_key }),
    )
    .assert_status(201);
    // Plans homed here that the family shared with the peer: what a peer
    // may push to (a plan it never held gets 404 before its size counts).
    let fran = node.login(FACILITATOR);
    let shared: Vec<String> = (0..4)
        .map(|i| {
            let plan = node.create_plan(&fran, &format!("Shared family {i}")).id;
            node.post(
                &format!("/v1/plans/{plan}/shares"),
                &fran,
                &json!({ "node": peer.id }),
            )
            .assert_status(201);
            plan
        })
        .collect();
    let message = huge_message();
    let batch = PeerSyncBatch {
        plans: shared
            .iter()
            .map(|plan| PeerSyncItem {
                plan: plan.clone(),
                message: Some(message.clone()),
                authors: Default::default(),
                transfers: None,
            })
            .collect(),
    };
    let mut body = Vec::new();
    ciborium::into_writer(&batch, &mut body).expect("CBOR");
    let (peak_before, cpu_before) = (peak(&node), cpu_secs(&node));
    let reply = node.send(
        node.request(Method::POST, "/federation/v1/sync")
            .header("Content-Type", "application/cbor")
            .header(
                "Authorization",
                peer.sign(
                    node.node_id(),
                    "POST",
                    "/federation/v1/sync",
                    &body,
                    unix_now(),
                ),
            )
            .body(body),
    );
    reply.assert_status(200);
    let answer: SyncBatchReply =
        ciborium::from_reader(&reply.body[..]).expect("a CBOR batch reply");
    assert_eq!(answer.plans.len(), 4);
    for item in &answer.plans {
        let problem = item.problem.as_ref().expect("a refusal");
        assert_eq!(problem.kind, "/problems/message-too-large", "{problem:?}");
        assert_eq!(problem.status, 413);
    }
    let (peak_after, cpu_after) = (peak(&node), cpu_secs(&node));
    eprintln!(
        "a peer batch of 4 x 990,000 operations: peak RSS {} -> {} MB, {:.2} CPU-s",
        peak_before >> 20,
        peak_after >> 20,
        cpu_after - cpu_before
    );
    assert!(
        peak_after < peak_before + (100 << 20),
        "peak RSS {} -> {} MB",
        peak_before >> 20,
        peak_after >> 20
    );
    // Nothing of them was stored: the plans hold what they held.
    assert_eq!(node.list_all_plans(&sam).len(), shared.len());
    for plan in &shared {
        assert!(node.read_plan(&fran, plan).plan["strengths"]
            .as_array()
            .is_some_and(|s| s.is_empty()));
    }
}
