#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Horizontal scale: two `wrapsync node` processes of one node (the same
//! config, keys and PostgreSQL database, each on its own port), as behind a
//! load balancer. What one process commits, the other serves on the very
//! next request; concurrent edits through both lose nothing; a device
//! syncing through either converges; the audit trail has each action once;
//! the change feed of one hears the other; and when the process running
//! the background work dies, the other takes it over.

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::time::Duration;
use wrapsync_shared::api::AuditEntry;
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::{ActorId, Automerge};
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::plan::render;
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{CAREGIVER, CAREGIVER_2, FACILITATOR, SUPERVISOR};
use wrapsync_tests::{deadline, encode_query, wait_until, Backend, Reply, TestNode};

/// A node and a second process of it on the same database.
fn two_processes(extra: toml::Table) -> (TestNode, TestNode) {
    let first = TestNode::spawn_with(Backend::Postgres, extra);
    let second = first.sibling();
    (first, second)
}

/// Every audit row matching `query`, through `node`.
fn all_audit(node: &TestNode, token: &str, query: &str) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    let mut page = format!("limit=200&{query}");
    loop {
        let got = node.audit(token, &page);
        entries.extend(got.entries);
        match got.next {
            Some(next) => page = format!("limit=200&{query}&cursor={}", encode_query(&next)),
            None => return entries,
        }
    }
}

/// `POST /v1/plans/{plan}/ops` with a request id of our choosing.
fn ops_with_id(node: &TestNode, token: &str, plan: &str, request_id: &str, ops: Value) -> Reply {
    node.send(
        node.request(Method::POST, &format!("/v1/plans/{plan}/ops"))
            .bearer_auth(token)
            .header("x-request-id", request_id)
            .json(&json!({ "ops": ops })),
    )
}

#[test]
fn a_change_through_one_process_is_read_through_the_other_at_once() {
    let (a, b) = two_processes(toml::Table::new());
    let fran = a.login(FACILITATOR);
    let plan = a.create_plan(&fran, "Two doors").id;
    // One token serves at either process: same secret, same issuer.
    assert_eq!(b.read_plan(&fran, &plan).plan["title"], "Two doors");

    // Each process has the plan cached now; writes alternate between them
    // and the other serves each one on the very next request.
    for round in 0..6 {
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let title = format!("Two doors, take {round}");
        let written = writer.apply_ops(
            &fran,
            &plan,
            json!([
                {"op":"replace","path":"/title","value":title},
                {"op":"replace","path":"/vision","value":format!("vision {round}")}
            ]),
        );
        let read = reader.read_plan(&fran, &plan);
        assert_eq!(read.version, written.version, "round {round}");
        assert_eq!(read.plan["vision"], format!("vision {round}"));
        let listed = reader.list_all_plans(&fran);
        let summary = listed.iter().find(|p| p.id == plan).expect("listed");
        assert_eq!(summary.title, title);
        assert_eq!(
            reader.history(&fran, &plan).changes.len(),
            writer.history(&fran, &plan).changes.len()
        );
    }

    // Membership too: Carla added through A reads through B at once, and
    // loses the plan through A once removed through B.
    let carla = a.login(CAREGIVER);
    b.get(&format!("/v1/plans/{plan}"), &carla)
        .assert_status(404);
    let member = a.add_caregiver(&fran, &plan);
    b.get(&format!("/v1/plans/{plan}"), &carla)
        .assert_status(200);
    assert!(b.list_all_plans(&carla).iter().any(|p| p.id == plan));
    b.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":format!("/team/{member}/status"),"value":"left"}]),
    );
    a.get(&format!("/v1/plans/{plan}"), &carla)
        .assert_status(404);
    assert!(a.list_all_plans(&carla).iter().all(|p| p.id != plan));

    // A conditional read at an old version through the other process is
    // not answered 304.
    let old = a.get(&format!("/v1/plans/{plan}"), &fran);
    let etag = old.header("etag").expect("an etag").to_string();
    a.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/mission","value":"new"}]),
    );
    let fresh = b.send(
        b.request(Method::GET, &format!("/v1/plans/{plan}"))
            .bearer_auth(&fran)
            .header("if-none-match", etag),
    );
    fresh.assert_status(200);
    assert_eq!(fresh.json["plan"]["mission"], "new");
}

#[test]
fn concurrent_edits_through_both_processes_lose_nothing() {
    let (a, b) = two_processes(toml::Table::new());
    let fran = a.login(FACILITATOR);
    let plan = a.create_plan(&fran, "Busy family").id;
    b.read_plan(&fran, &plan);
    const THREADS: usize = 4;
    const EACH: usize = 8;
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let node = if thread % 2 == 0 { &a } else { &b };
            let (fran, plan) = (&fran, &plan);
            scope.spawn(move || {
                for i in 0..EACH {
                    let reply = ops_with_id(
                        node,
                        fran,
                        plan,
                        &format!("scale-{thread}-{i}"),
                        json!([{"op":"add","path":"/strengths","value":{
                            "statement": format!("strength {thread}-{i}"), "about": "family"
                        }}]),
                    );
                    reply.assert_status(200);
                }
            });
        }
    });
    let expected: BTreeSet<String> = (0..THREADS)
        .flat_map(|t| (0..EACH).map(move |i| format!("strength {t}-{i}")))
        .collect();
    let (at_a, at_b) = (a.read_plan(&fran, &plan), b.read_plan(&fran, &plan));
    assert_eq!(at_a.version, at_b.version);
    assert_eq!(at_a.plan, at_b.plan);
    let held: BTreeSet<String> = at_a.plan["strengths"]
        .as_array()
        .expect("strengths")
        .iter()
        .map(|s| s["statement"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(held, expected, "every op of every thread is in the plan");
    // The history holds each change once, and the plan as stored loads
    // whole in a process that never saw it (a restart reads the chunks).
    let history = b.history(&fran, &plan);
    // (The plan's creation is one change.)
    assert_eq!(history.changes.len(), THREADS * EACH + 1);
    let c = a.sibling();
    assert_eq!(c.read_plan(&fran, &plan).plan, at_a.plan);

    // Each request is audited exactly once, whichever process took it and
    // however often it was computed again.
    let sam = a.login(SUPERVISOR);
    let rows = all_audit(&b, &sam, &format!("plan={}", encode_query(&plan)));
    let mut ops_rows: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.action == "plan.ops") {
        assert_eq!(row.outcome, "ok");
        *ops_rows
            .entry(row.request_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let expected_ids: BTreeMap<String, usize> = (0..THREADS)
        .flat_map(|t| (0..EACH).map(move |i| (format!("scale-{t}-{i}"), 1)))
        .collect();
    assert_eq!(ops_rows, expected_ids);
}

/// A phone's copy of one plan, syncing through whichever process the load
/// balancer picks.
struct Device {
    doc: Automerge,
    state: sync::State,
}

impl Device {
    /// One round through `node`; answers whether anything was exchanged.
    fn round(&mut self, node: &TestNode, token: &str, plan: &str) -> bool {
        let message = self
            .doc
            .generate_sync_message(&mut self.state)
            .map(sync::Message::encode);
        let sent = message.is_some();
        let body = json!({ "message": message.map(|m| base64::engine::general_purpose::STANDARD.encode(m)) });
        let reply = node.send(
            node.request(Method::POST, &format!("/v1/plans/{plan}/sync"))
                .bearer_auth(token)
                .header("Device-Id", "carlas-phone")
                .json(&body),
        );
        reply.assert_status(200);
        let Some(answer) = reply.json["message"].as_str() else {
            return sent;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(answer)
            .expect("base64");
        let message = sync::Message::decode(&bytes).expect("a sync message");
        self.doc
            .receive_sync_message(&mut self.state, message)
            .expect("the node's changes apply");
        true
    }

    /// Rounds alternating between the processes until both sides are quiet.
    fn sync(&mut self, nodes: [&TestNode; 2], token: &str, plan: &str) {
        for round in 0..30 {
            if !self.round(nodes[round % 2], token, plan)
                && !self.round(nodes[(round + 1) % 2], token, plan)
            {
                return;
            }
        }
        panic!("sync through both processes did not settle in 30 rounds");
    }

    fn edit(&mut self, member: &str, ops: Value) {
        let ops: Vec<Op> = serde_json::from_value(ops).expect("ops");
        let mut tx = self.doc.transaction();
        let editor = Editor {
            role: Role::Caregiver,
            member_id: Some(member.to_string()),
        };
        let mut next = || ulid::Ulid::new().to_string();
        apply_ops(&mut tx, &ops, &editor, &mut next).expect("a valid offline edit");
        tx.commit();
    }
}

#[test]
fn a_device_syncing_through_either_process_converges() {
    let (a, b) = two_processes(toml::Table::new());
    let fran = a.login(FACILITATOR);
    let plan = a.create_plan(&fran, "Phone family").id;
    let member = a.add_caregiver(&fran, &plan);
    let carla = b.login(CAREGIVER);
    let mut phone = Device {
        doc: Automerge::new().with_actor(ActorId::random()),
        state: sync::State::new(),
    };
    phone.sync([&b, &a], &carla, &plan);
    assert_eq!(render(&phone.doc), a.read_plan(&carla, &plan).plan);

    // Offline edits on the phone while the office edits through both
    // processes; then rounds alternate between them.
    for step in 0..3 {
        phone.edit(
            &member,
            json!([{"op":"add","path":"/strengths","value":{"statement":format!("phone {step}"),"about":"family"}}]),
        );
        a.apply_ops(
            &fran,
            &plan,
            json!([{"op":"add","path":"/needs","value":{"domain":"school","statement":format!("office A {step}")}}]),
        );
        b.apply_ops(
            &fran,
            &plan,
            json!([{"op":"add","path":"/needs","value":{"domain":"school","statement":format!("office B {step}")}}]),
        );
        let nodes = if step % 2 == 0 { [&a, &b] } else { [&b, &a] };
        phone.sync(nodes, &carla, &plan);
        let (at_a, at_b) = (a.read_plan(&carla, &plan), b.read_plan(&carla, &plan));
        assert_eq!(at_a.plan, at_b.plan, "step {step}");
        assert_eq!(render(&phone.doc), at_a.plan, "step {step}");
        assert_eq!(
            at_a.plan["strengths"].as_array().map(Vec::len),
            Some(step + 1)
        );
        assert_eq!(
            at_a.plan["needs"].as_array().map(Vec::len),
            Some(2 * step + 2)
        );
    }
    // Each round that brought the phone's changes is audited once.
    let sam = a.login(SUPERVISOR);
    let stored: Vec<AuditEntry> = all_audit(&a, &sam, &format!("plan={}", encode_query(&plan)))
        .into_iter()
        .filter(|r| {
            r.action == "plan.sync" && r.detail.as_deref().is_some_and(|d| d.contains("by sync"))
        })
        .collect();
    assert_eq!(stored.len(), 3, "{stored:?}");
    // The phone's changes are attributed to Carla, whichever process took
    // them.
    let history = b.history(&fran, &plan);
    let carlas = history
        .changes
        .iter()
        .filter(|c| c.user.as_deref() == Some(CAREGIVER))
        .count();
    assert_eq!(carlas, 3);
}

#[test]
fn the_change_feed_of_one_process_hears_the_other() {
    let (a, b) = two_processes(toml::Table::new());
    let fran = a.login(FACILITATOR);
    let plan = a.create_plan(&fran, "Streamed family").id;
    let feed: Value = b.get("/v1/changes", &fran).typed(200);
    let cursor = feed["cursor"].as_str().expect("a cursor").to_string();
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/v1/changes/stream?since={cursor}", b.url()))
        .bearer_auth(&fran)
        .send()
        .expect("the stream opens");
    assert_eq!(response.status().as_u16(), 200);
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until the stream is open, then change the plan through A.
    let connected = received
        .recv_timeout(Duration::from_secs(30))
        .expect("the stream says it is connected");
    assert!(connected.starts_with(':'), "{connected}");
    a.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/vision","value":"heard across"}]),
    );
    let data = loop {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .expect("B's stream hears A's change");
        if let Some(data) = line.strip_prefix("data: ") {
            break data.to_string();
        }
    };
    let change: Value = serde_json::from_str(&data).expect("a JSON event");
    assert_eq!(change["plan"], json!(plan));
}

/// Whether `node` says it runs the background work.
fn leads(node: &TestNode) -> bool {
    let metrics = node.get_anon("/metrics");
    metrics.assert_status(200);
    metrics
        .text()
        .lines()
        .any(|l| l == "wrapsync_background_leader 1")
}

#[test]
fn the_other_process_takes_over_background_work_when_the_leader_dies() {
    let mut extra = toml::Table::new();
    extra.insert("node_id".into(), "county-a".into());
    extra.insert("federation_interval_secs".into(), 1.into());
    let first = TestNode::spawn_with(Backend::Postgres, extra.clone());
    let mut peer_extra = extra;
    peer_extra.insert("node_id".into(), "county-b".into());
    let peer = TestNode::spawn_with(Backend::Sqlite, peer_extra);
    peer.trust(&first, first.url());
    let mut a = Some(first);
    let mut b = Some(a.as_ref().unwrap().sibling());
    // Exactly one of the two leads.
    let settled = wait_until(deadline(30), || {
        leads(a.as_ref().unwrap()) != leads(b.as_ref().unwrap())
    });
    assert!(settled, "no single leader");
    let a_leads = leads(a.as_ref().unwrap());
    // The peer is added through the process that does not lead: the
    // leader must learn of it from the database.
    let (leader, follower) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let other = follower.as_ref().unwrap();
    other.trust(&peer, peer.url());

    let fran = other.login(FACILITATOR);
    let plan = other.create_plan(&fran, "Family that moves").id;
    other.apply_ops(&fran, &plan, json!([
        {"op":"add","path":"/team","value":{"name":"Cody","role":"caregiver","user":format!("{CAREGIVER_2}@county-b")}}
    ]));
    other
        .post(
            &format!("/v1/plans/{plan}/shares"),
            &fran,
            &json!({"node":"county-b"}),
        )
        .assert_status(201);
    let cody = peer.login(CAREGIVER_2);
    let arrived = wait_until(deadline(30), || {
        peer.get(&format!("/v1/plans/{plan}"), &cody).status == 200
    });
    assert!(arrived, "the leader never sent the plan\n{}", peer.log());

    // The leader dies; the other process takes the background work over
    // and sends what is written next.
    let mut dead = leader.take().unwrap();
    dead.kill();
    let took_over = wait_until(deadline(30), || leads(other));
    assert!(took_over, "no takeover\n{}", other.log());
    other.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/vision","value":"sent by the survivor"}]),
    );
    let sent = wait_until(deadline(30), || {
        let reply = peer.get(&format!("/v1/plans/{plan}"), &cody);
        reply.status == 200 && reply.json["plan"]["vision"] == "sent by the survivor"
    });
    assert!(sent, "the survivor never sent the change\n{}", other.log());
    // The dead process's node keeps its database alive until the end.
    drop(follower.take());
    drop(dead);
}
