//! `POST /v1/plans/{id}/sync`: a device holding a real Automerge replica
//! syncs with the node, edits offline, and converges; changes it may not
//! make are refused whole; hostile bytes are refused cleanly.

use crate::add_member;
use reqwest::Method;
use serde_json::json;
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::transaction::Transactable;
use wrapsync_shared::automerge::{Automerge, ObjType, ReadDoc, ROOT};
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::plan::render;
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{CAREGIVER, CAREGIVER_2, FACILITATOR};
use wrapsync_tests::{Backend, Device, TestNode};

on_both_backends!(
    an_offline_device_and_the_node_converge,
    a_refused_change_set_leaves_the_plan_untouched,
    concurrent_edits_show_as_a_conflict_until_an_op_resolves_it,
    changes_that_arrive_before_their_dependencies_are_asked_for_again,
);

fn an_offline_device_and_the_node_converge(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Sync family").id;
    let carla_member = add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    let carla = node.login(CAREGIVER);

    // A new phone pulls the whole plan.
    let mut phone = Device::new("carlas-phone");
    phone.sync(&node, &carla, &plan);
    let served = node.read_plan(&carla, &plan);
    assert_eq!(render(&phone.doc), served.plan);

    // Offline, the caregiver writes the family vision and a strength while
    // the facilitator edits the mission through /ops.
    phone.edit(
        Role::Caregiver,
        Some(&carla_member),
        json!([
            {"op":"replace","path":"/vision","value":"Home together, in school every day"},
            {"op":"add","path":"/strengths","value":{"statement":"We laugh a lot","about":"family"}}
        ]),
    );
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/mission","value":"Keep the family together"}]),
    );

    let rounds = phone.sync(&node, &carla, &plan);
    assert!(rounds <= 3, "converging took {rounds} rounds");
    let served = node.read_plan(&carla, &plan);
    assert_eq!(render(&phone.doc), served.plan);
    assert_eq!(served.plan["vision"], "Home together, in school every day");
    assert_eq!(served.plan["mission"], "Keep the family together");
    let mut heads: Vec<String> = phone
        .doc
        .get_heads()
        .iter()
        .map(|h| h.to_string())
        .collect();
    heads.sort();
    assert_eq!(heads, served.version);

    // The history says truthfully who made the phone's change.
    let history = node.history(&fran, &plan);
    assert!(history
        .changes
        .iter()
        .any(|c| c.user.as_deref() == Some(CAREGIVER)));

    // Repeating a round changes nothing (idempotent), and nothing is resent.
    let (again, exchanged) = phone.round(&node, &carla, &plan);
    again.assert_status(200);
    assert!(!exchanged);
    assert_eq!(node.read_plan(&carla, &plan).version, served.version);

    // Raw bytes work too: a fresh device without a Device-Id header.
    let mut fresh = Automerge::new();
    let mut state = sync::State::new();
    for _ in 0..10 {
        let Some(message) = fresh.generate_sync_message(&mut state) else {
            break;
        };
        let reply = node.send(
            node.request(Method::POST, &format!("/v1/plans/{plan}/sync"))
                .bearer_auth(&carla)
                .header("content-type", "application/octet-stream")
                .body(message.encode()),
        );
        if reply.status == 204 {
            break;
        }
        reply.assert_status(200);
        let message = sync::Message::decode(&reply.body).expect("a sync message");
        fresh
            .receive_sync_message(&mut state, message)
            .expect("applies");
    }
    assert_eq!(render(&fresh), served.plan);
}

fn a_refused_change_set_leaves_the_plan_untouched(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Guarded family").id;
    let carla_member = add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    add_member(&node, &fran, &plan, "Cody", "caregiver", Some(CAREGIVER_2));
    let carla = node.login(CAREGIVER);
    let mut phone = Device::new("carla-1");
    phone.sync(&node, &carla, &plan);
    let before = node.read_plan(&fran, &plan);

    // A caregiver's phone edits the roster: refused whole with 422, even
    // though the same change set also holds an allowed edit.
    phone.edit(
        Role::Facilitator,
        None,
        json!([
            {"op":"replace","path":"/vision","value":"allowed on its own"},
            {"op":"replace","path":format!("/team/{carla_member}/role"),"value":"facilitator"}
        ]),
    );
    let reply = phone.push(&node, &carla, &plan);
    reply.assert_problem(422, "change-forbidden");
    let after = node.read_plan(&fran, &plan);
    assert_eq!(after.version, before.version);
    assert_eq!(after.plan, before.plan);

    // A change whose actor belongs to someone else is refused: Cody cannot
    // pass off changes as Carla's actor once it is bound to her.
    let mut honest = Device::new("carla-2");
    honest.sync(&node, &carla, &plan);
    honest.edit(
        Role::Caregiver,
        Some(&carla_member),
        json!([{"op":"replace","path":"/vision","value":"Carla's words"}]),
    );
    honest.sync(&node, &carla, &plan);
    let cody = node.login(CAREGIVER_2);
    let mut impostor = Device::new("cody-1");
    impostor.doc = honest.doc.fork().with_actor(honest.doc.get_actor().clone());
    impostor.sync(&node, &cody, &plan);
    let version = node.read_plan(&fran, &plan).version;
    impostor.edit(
        Role::Caregiver,
        None,
        json!([{"op":"replace","path":"/vision","value":"Not Carla's words"}]),
    );
    let reply = impostor.push(&node, &cody, &plan);
    reply.assert_problem(422, "change-forbidden");
    assert_eq!(node.read_plan(&fran, &plan).version, version);

    // Structures outside the schema are refused by schema.
    let mut rogue = Device::new("carla-3");
    rogue.sync(&node, &carla, &plan);
    let mut tx = rogue.doc.transaction();
    tx.put_object(ROOT, "vision", ObjType::Text)
        .expect("raw edit");
    tx.put(ROOT, "ssn", "123-45-6789").expect("raw edit");
    tx.commit();
    let reply = rogue.push(&node, &carla, &plan);
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(node.read_plan(&fran, &plan).version, version);

    // Hostile bytes: 400, never a crash; the node still answers afterwards.
    for garbage in [
        vec![0x42u8; 1],
        vec![0x42, 0xff, 0x00, 0x13],
        b"not automerge at all".to_vec(),
        vec![0x43; 4096],
    ] {
        let reply = node.send(
            node.request(Method::POST, &format!("/v1/plans/{plan}/sync"))
                .bearer_auth(&carla)
                .header("content-type", "application/octet-stream")
                .body(garbage),
        );
        reply.assert_problem(400, "malformed-sync-message");
    }
    // An empty raw body is a device with nothing to say: the node answers.
    let asked = node.send(
        node.request(Method::POST, &format!("/v1/plans/{plan}/sync"))
            .bearer_auth(&carla)
            .header("content-type", "application/octet-stream")
            .body(Vec::new()),
    );
    asked.assert_status(200);
    assert!(sync::Message::decode(&asked.body).is_ok());
    let reply = node.post(
        &format!("/v1/plans/{plan}/sync"),
        &carla,
        &json!({"message": "%%% not base64"}),
    );
    reply.assert_problem(400, "invalid-request");
    assert_eq!(node.read_plan(&fran, &plan).version, version);

    // Someone not on the team gets 404, as for any other plan route.
    let felix = node.login(wrapsync_tests::users::FACILITATOR_2);
    let reply = node.post(
        &format!("/v1/plans/{plan}/sync"),
        &felix,
        &json!({"message": null}),
    );
    reply.assert_problem(404, "not-found");
}

fn concurrent_edits_show_as_a_conflict_until_an_op_resolves_it(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Two voices").id;
    let carla_member = add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    let carla = node.login(CAREGIVER);
    let mut carlas = Device::new("carla-phone");
    let mut frans = Device::new("fran-tablet");
    carlas.sync(&node, &carla, &plan);
    frans.sync(&node, &fran, &plan);

    // Both write the vision offline, then both sync.
    carlas.edit(
        Role::Caregiver,
        Some(&carla_member),
        json!([{"op":"replace","path":"/vision","value":"Carla's vision"}]),
    );
    frans.edit(
        Role::Facilitator,
        None,
        json!([{"op":"replace","path":"/vision","value":"Fran's vision"}]),
    );
    carlas.sync(&node, &carla, &plan);
    frans.sync(&node, &fran, &plan);
    carlas.sync(&node, &carla, &plan);

    let served = node.get(&format!("/v1/plans/{plan}"), &carla);
    served.assert_status(200);
    let conflicts = served.json["conflicts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(conflicts.len(), 1, "{}", served.text());
    assert_eq!(conflicts[0]["path"], "/vision");
    let values = conflicts[0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seen: Vec<(String, String)> = values
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap_or_default().to_string(),
                v["user"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("Carla's vision".to_string(), CAREGIVER.to_string()),
            ("Fran's vision".to_string(), FACILITATOR.to_string()),
        ]
    );
    assert_eq!(
        served.json["plan"]["vision"], values[0]["value"],
        "the plan shows the first value"
    );
    // Both replicas agree on which value shows.
    assert_eq!(render(&carlas.doc)["vision"], served.json["plan"]["vision"]);
    assert_eq!(render(&frans.doc)["vision"], served.json["plan"]["vision"]);

    // An op resolves it.
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/vision","value":"Our vision, together"}]),
    );
    let served = node.get(&format!("/v1/plans/{plan}"), &carla);
    assert!(served.json.get("conflicts").is_none(), "{}", served.text());
    assert_eq!(served.json["plan"]["vision"], "Our vision, together");
}

#[test]
fn the_change_feed_names_only_my_plans_and_streams_new_changes() {
    use std::io::{BufRead, BufReader};
    let node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let mine = node.create_plan(&fran, "Carla's family").id;
    let other = node.create_plan(&fran, "Another family").id;
    add_member(&node, &fran, &mine, "Carla", "caregiver", Some(CAREGIVER));
    let carla = node.login(CAREGIVER);

    let feed = node.get("/v1/changes", &carla);
    feed.assert_status(200);
    let plans: Vec<&str> = feed.json["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["plan"].as_str())
        .collect();
    assert_eq!(plans, vec![mine.as_str()], "{}", feed.text());
    let cursor = feed.json["cursor"].as_str().expect("cursor").to_string();
    let again = node.get(&format!("/v1/changes?since={cursor}"), &carla);
    assert_eq!(again.json["changes"], json!([]));
    assert_eq!(again.json["cursor"], json!(cursor));

    // A stream from that cursor hears about the next change to her plan,
    // and never about the plan she is not on.
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/v1/changes/stream?since={cursor}", node.url()))
        .bearer_auth(&carla)
        .send()
        .expect("stream opens");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    node.apply_ops(
        &fran,
        &other,
        json!([{"op":"replace","path":"/vision","value":"not Carla's"}]),
    );
    node.apply_ops(
        &fran,
        &mine,
        json!([{"op":"replace","path":"/vision","value":"for Carla"}]),
    );
    let mut lines = BufReader::new(response).lines();
    let data = loop {
        let line = lines
            .next()
            .expect("the stream stays open")
            .expect("a line");
        if let Some(data) = line.strip_prefix("data: ") {
            break data.to_string();
        }
    };
    let change: serde_json::Value = serde_json::from_str(&data).expect("json event");
    assert_eq!(change["plan"], json!(mine));
    assert_ne!(change["cursor"], json!(cursor));

    node.get("/v1/changes?since=banana", &carla)
        .assert_problem(400, "invalid-request");

    // Stopping the node ends the open stream rather than waiting on it.
    let mut node = node;
    assert!(node.stop().success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().all(|l| !l.starts_with("data: ")), "{rest:?}");
}

#[test]
fn roles_that_see_part_of_a_plan_cannot_sync_it_and_device_messages_stay_out_of_history() {
    let node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Partly private").id;
    add_member(
        &node,
        &fran,
        &plan,
        "Nell",
        "natural_support",
        Some(wrapsync_tests::users::NATURAL_SUPPORT),
    );
    let carla_member = add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));

    // A natural support must not receive the CANS, status or consents that
    // GET hides from them: a whole document cannot be synced in part.
    let nell = node.login(wrapsync_tests::users::NATURAL_SUPPORT);
    let mut phone = Device::new("nell-phone");
    let (reply, _) = phone.round(&node, &nell, &plan);
    reply.assert_problem(403, "forbidden");
    assert!(
        phone.doc.get_heads().is_empty(),
        "nothing of the plan reached the device"
    );

    // A device's change message is free text: it never shows in history.
    let carla = node.login(CAREGIVER);
    let mut carlas = Device::new("carla-phone");
    carlas.sync(&node, &carla, &plan);
    let mut ops_tx = carlas.doc.transaction();
    let editor = Editor {
        role: Role::Caregiver,
        member_id: Some(carla_member),
    };
    let ops: Vec<Op> =
        serde_json::from_value(json!([{"op":"replace","path":"/vision","value":"ours"}]))
            .expect("ops");
    let mut next = || ulid::Ulid::new().to_string();
    apply_ops(&mut ops_tx, &ops, &editor, &mut next).expect("valid edit");
    ops_tx.commit_with(
        wrapsync_shared::automerge::transaction::CommitOptions::default()
            .with_message("Maya Rivera DOB 2012-03-04 — replace /vision"),
    );
    carlas.sync(&node, &carla, &plan);
    let history = node.history(&fran, &plan);
    let last = history.changes.last().expect("a change");
    assert_eq!(last.user.as_deref(), Some(CAREGIVER));
    assert_eq!(last.summary, None);
    assert!(!serde_json::to_string(&history)
        .expect("json")
        .contains("Maya"));
}

#[test]
fn a_device_back_from_a_long_offline_spell_syncs_more_than_the_json_body_limit() {
    let node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Long offline spell").id;
    let mut laptop = Device::new("fran-laptop");
    laptop.sync(&node, &fran, &plan);
    // About 2.3 MB of new text (over 1 MiB even deflated): more than
    // max_body_bytes, so the whole plan travels in one sync message.
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789 ".chars().collect();
    let mut seed = 7u64;
    let mut text = |len: usize| -> String {
        (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                alphabet[(seed >> 33) as usize % alphabet.len()]
            })
            .collect()
    };
    for _ in 0..3 {
        // At most 200 ops per edit, as for /ops.
        let ops: Vec<serde_json::Value> = (0..200)
            .map(|_| json!({"op":"add","path":"/strengths","value":{"statement": text(3800),"about":"family"}}))
            .collect();
        laptop.edit(Role::Facilitator, None, serde_json::Value::Array(ops));
    }
    assert!(laptop.doc.save().len() > 1024 * 1024);
    laptop.sync(&node, &fran, &plan);
    let served = node.read_plan(&fran, &plan);
    assert_eq!(served.plan["strengths"].as_array().map(Vec::len), Some(600));
    assert_eq!(render(&laptop.doc), served.plan);
}

/// A device's bloom filter check can wrongly conclude the node has a change
/// (a false positive), so it sends only a later change that depends on it.
/// The node must ask for the missing one, and the device must resend what
/// it already counted as sent; else both fall quiet with the node behind.
fn changes_that_arrive_before_their_dependencies_are_asked_for_again(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Queued family").id;
    add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    let carla = node.login(CAREGIVER);
    let mut phone = Device::new("queued-phone");
    phone.sync(&node, &carla, &plan);

    phone.edit(
        Role::Caregiver,
        None,
        json!([{"op":"replace","path":"/vision","value":"First"}]),
    );
    let first = phone.doc.get_heads();
    phone.edit(
        Role::Caregiver,
        None,
        json!([{"op":"replace","path":"/vision","value":"Second"}]),
    );
    let second = phone.doc.get_heads();
    assert_ne!(first, second);

    // The round the device means to send carries both changes; what
    // arrives carries only the second (as after a false positive).
    let mut message = phone
        .doc
        .generate_sync_message(&mut phone.state)
        .expect("the device has changes to send");
    let later = phone
        .doc
        .get_change_by_hash(&second[0])
        .expect("the second change")
        .raw_bytes()
        .to_vec();
    message.changes = sync::ChunkList::from(vec![later]);
    let reply = node.send(
        node.request(Method::POST, &format!("/v1/plans/{plan}/sync"))
            .bearer_auth(&carla)
            .header("Device-Id", &phone.id)
            .header("content-type", "application/octet-stream")
            .body(message.encode()),
    );
    reply.assert_status(200);
    let answer = sync::Message::decode(&reply.body).expect("a sync message");
    assert_eq!(
        answer.need, first,
        "the node asks for the change it waits on"
    );
    phone
        .doc
        .receive_sync_message(&mut phone.state, answer)
        .expect("applies");
    assert_eq!(
        node.read_plan(&carla, &plan).plan["vision"],
        serde_json::Value::Null
    );

    phone.sync(&node, &carla, &plan);
    let served = node.read_plan(&carla, &plan);
    assert_eq!(served.plan["vision"], "Second");
    assert_eq!(render(&phone.doc), served.plan);
}
