//! Truthful authorship, and roster and consent changes from a peer (issue
//! 22, findings 3 and 8). The test is county-b, signing with its real key:
//! the home of a plan replicated at the node, then a replica holder of a
//! plan the node homes.

use reqwest::Method;
use serde_json::{json, Value};
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::transaction::Transactable;
use wrapsync_shared::automerge::{ActorId, Automerge, ObjId, ObjType, ReadDoc, ROOT};
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::plan::{init_plan, render};
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, SUPERVISOR};
use wrapsync_tests::{unix_now, Backend, NodeSigner, Reply, TestNode};

const PEER: &str = "county-b";

/// A node that trusts county-b, and county-b's key.
fn node_with_peer(backend: Backend) -> (TestNode, NodeSigner) {
    let node = TestNode::spawn(backend);
    let peer = NodeSigner::new(PEER).expect("a key");
    let sam = node.login(SUPERVISOR);
    node.post(
        "/v1/admin/peers",
        &sam,
        &json!({ "id": peer.id, "url": "http://127.0.0.1:9", "public_key": peer.public_key }),
    )
    .assert_status(201);
    (node, peer)
}

/// Sync rounds as the peer (vouching for `act`: actor hex → username), a
/// fresh session, until the node has nothing to say or refuses: answers
/// the last reply (`204`, or the refusal).
fn rounds(
    node: &TestNode,
    peer: &NodeSigner,
    plan: &str,
    doc: &mut Automerge,
    act: Value,
) -> Reply {
    let path = format!("/federation/v1/plans/{plan}/sync");
    // The home's signed word that the family shares the plan with this
    // node, which its first push must carry.
    let Value::Object(consent) = json!({
        "typ": "wrapsync-consent", "iss": peer.id, "sub": plan, "aud": node.node_id(),
        "by": format!("bea@{}", peer.id), "iat": unix_now(),
    }) else {
        unreachable!()
    };
    let consent = peer.sign_claims(&peer.id, &consent);
    let mut state = sync::State::new();
    for _ in 0..10 {
        let body = doc
            .generate_sync_message(&mut state)
            .map(sync::Message::encode)
            .unwrap_or_default();
        let mut claims = peer.claims(node.node_id(), "POST", &path, &body, unix_now());
        claims.insert("act".into(), act.clone());
        let authorization = format!("Bearer {}", peer.sign_claims(&peer.id, &claims));
        let reply = node.send(
            node.request(Method::POST, &path)
                .header("content-type", "application/octet-stream")
                .header("authorization", authorization)
                .header("wrapsync-transfers", &consent)
                .body(body),
        );
        if reply.status != 200 {
            return reply;
        }
        let message = sync::Message::decode(&reply.body).expect("a sync message");
        doc.receive_sync_message(&mut state, message)
            .expect("applies");
    }
    panic!("no quiet after 10 rounds");
}

/// `doc` with one more change, made under `actor`.
fn edited(doc: &Automerge, actor: ActorId, edit: impl FnOnce(&mut Automerge)) -> Automerge {
    let mut fork = doc.fork().with_actor(actor);
    edit(&mut fork);
    fork
}

fn put(doc: &mut Automerge, obj: &ObjId, key: &str, value: &str) {
    let mut tx = doc.transaction();
    tx.put(obj, key, value).expect("put");
    tx.commit();
}

fn child(doc: &Automerge, obj: &ObjId, key: &str) -> ObjId {
    match doc.get(obj, key) {
        Ok(Some((_, id))) => id,
        other => panic!("no {key}: {other:?}"),
    }
}

/// The actor of the change `user` made (by `/history`).
fn actor_of(node: &TestNode, token: &str, plan: &str, user: &str) -> ActorId {
    let history = node.history(token, plan);
    let change = history
        .changes
        .iter()
        .find(|c| c.user.as_deref() == Some(user))
        .unwrap_or_else(|| panic!("no change by {user}: {:?}", history.changes));
    change.actor.parse().expect("an actor")
}

/// Finding 3, a replica receiving from its home: county-b pushes a change
/// to the plan it homes under the actor of this node's own facilitator.
/// Refused however it vouches; a third node's change it relays, vouched
/// for, is kept and shown as that person's, via county-b; one it does not
/// vouch for names no author. The replica's own team may not change the
/// roster (finding 8 on the replica side).
fn a_home_cannot_forge_a_replicas_people(backend: Backend) {
    let (node, b) = node_with_peer(backend);
    let here = node.node_id().to_string();
    let plan = ulid::Ulid::new().to_string();

    // County-b's plan, with this node's fran on its team.
    let mut doc = Automerge::new();
    let home_actor = doc.get_actor().to_hex_string();
    let mut tx = doc.transaction();
    init_plan(&mut tx, "Forged family").expect("a plan");
    let ops: Vec<Op> = serde_json::from_value(json!([
        {"op":"add","path":"/team","value":{"name":"Bea","role":"facilitator","user":"bea"}},
        {"op":"add","path":"/team","value":{"name":"Fran","role":"facilitator","user":format!("{FACILITATOR}@{here}")}},
        {"op":"replace","path":"/vision","value":"Together at home"}
    ]))
    .expect("ops");
    let home_editor = Editor {
        role: Role::Supervisor,
        member_id: None,
    };
    apply_ops(&mut tx, &ops, &home_editor, &mut || {
        ulid::Ulid::new().to_string()
    })
    .expect("ops");
    tx.commit();
    let bea = json!({ &home_actor: "bea" });
    rounds(&node, &b, &plan, &mut doc, bea.clone()).assert_status(204);

    // Fran edits the replica here; county-b gets her change.
    let fran = node.login(FACILITATOR);
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/vision","value":"Fran's words"}]),
    );
    rounds(&node, &b, &plan, &mut doc, bea.clone()).assert_status(204);
    assert_eq!(render(&doc)["vision"], "Fran's words");
    let fran_actor = actor_of(&node, &fran, &plan, FACILITATOR);
    // A replica's people record no consent: the family's lives at the home.
    node.post(
        &format!("/v1/plans/{plan}/shares"),
        &fran,
        &json!({"node": PEER}),
    )
    .assert_problem(422, "home-authority");
    node.post(
        &format!("/v1/plans/{plan}/shares/{PEER}/revoke"),
        &fran,
        &json!({}),
    )
    .assert_problem(422, "home-authority");

    // County-b writes under Fran's actor: refused, whatever it vouches.
    let forged = edited(&doc, fran_actor.clone(), |d| {
        put(d, &ROOT, "vision", "Forged by county-b")
    });
    let fran_hex = fran_actor.to_hex_string();
    for act in [
        bea.clone(),
        json!({ &home_actor: "bea", &fran_hex: format!("{FACILITATOR}@{here}") }),
        json!({ &home_actor: "bea", &fran_hex: "bea" }),
    ] {
        let mut attempt = forged.clone();
        rounds(&node, &b, &plan, &mut attempt, act.clone()).assert_problem(422, "change-forbidden");
        assert_eq!(
            node.read_plan(&fran, &plan).plan["vision"],
            "Fran's words",
            "{act}"
        );
    }
    // Nor may it name this node's people for an actor of its own making.
    let mut named = edited(&doc, ActorId::random(), |d| {
        put(d, &ROOT, "mission", "Named for fran")
    });
    let named_hex = named.get_actor().to_hex_string();
    rounds(
        &node,
        &b,
        &plan,
        &mut named,
        json!({ &named_hex: format!("{FACILITATOR}@{here}") }),
    )
    .assert_problem(422, "change-forbidden");

    // A change by a third node's person, which the home relays and vouches
    // for: kept, and shown as theirs, delivered by county-b.
    let cody = ActorId::random();
    let mut relayed = edited(&doc, cody.clone(), |d| {
        put(d, &ROOT, "mission", "Cody's words")
    });
    let cody_hex = cody.to_hex_string();
    rounds(
        &node,
        &b,
        &plan,
        &mut relayed,
        json!({ &home_actor: "bea", &cody_hex: "cody@county-c" }),
    )
    .assert_status(204);
    // One it does not vouch for: kept (an older home does not vouch for
    // what it relays), with no author, delivered by county-b.
    let stranger = ActorId::random();
    let mut unvouched = edited(&relayed, stranger.clone(), |d| {
        put(d, &ROOT, "mission", "Nobody's words")
    });
    rounds(&node, &b, &plan, &mut unvouched, bea.clone()).assert_status(204);

    let history = node.history(&fran, &plan);
    let entry = |actor: &ActorId| {
        let hex = actor.to_hex_string();
        history
            .changes
            .iter()
            .find(|c| c.actor == hex)
            .unwrap_or_else(|| panic!("no change of {hex}"))
            .clone()
    };
    let by_cody = entry(&cody);
    assert_eq!(by_cody.user.as_deref(), Some("cody@county-c"));
    assert_eq!(by_cody.via.as_deref(), Some(PEER));
    let by_stranger = entry(&stranger);
    assert_eq!(by_stranger.user, None);
    assert_eq!(by_stranger.via.as_deref(), Some(PEER));
    let by_fran = entry(&fran_actor);
    assert_eq!(by_fran.user.as_deref(), Some(FACILITATOR));
    assert_eq!(by_fran.via, None);
    assert_eq!(
        history
            .changes
            .iter()
            .filter(|c| c.user.as_deref() == Some(FACILITATOR))
            .count(),
        1,
        "Fran made one change"
    );
    let raw = node.get(&format!("/v1/plans/{plan}/history"), &fran);
    let raw_home = raw.json["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["actor"] == home_actor.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(raw_home["user"], "bea@county-b");
    assert!(raw_home.get("via").is_none(), "{raw_home}");

    // The replica's own team edits content, never the roster.
    node.post_ops(
        &fran,
        &plan,
        None,
        json!([{"op":"add","path":"/team","value":{"name":"Mallory","role":"facilitator","user":"mallory"}}]),
    )
    .assert_problem(422, "home-authority");
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/vision","value":"Fran again"}]),
    );
}

/// Finding 8, and finding 3 at the home: county-b's facilitator on a plan
/// homed here edits its content, but may not mark this node's facilitator
/// "left", add a facilitator of its own, or write the consent record;
/// nor may county-b push a change under this node's facilitator's actor.
fn a_peer_cannot_take_over_the_homes_roster_or_consents(backend: Backend) {
    let (node, b) = node_with_peer(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Home family").id;
    node.apply_ops(&fran, &plan, json!([
        {"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","user":CAREGIVER}},
        {"op":"add","path":"/team","value":{"name":"Faye (county B)","role":"facilitator","user":format!("facilitator2@{PEER}")}},
        {"op":"replace","path":"/vision","value":"Home together"}
    ]));
    node.post(
        &format!("/v1/plans/{plan}/shares"),
        &fran,
        &json!({"node": PEER}),
    )
    .assert_status(201);
    let mut doc = Automerge::new();
    rounds(&node, &b, &plan, &mut doc, json!({})).assert_status(204);
    let before = node.read_plan(&fran, &plan);
    let fran_member = before.plan["team"]
        .as_array()
        .and_then(|t| t.iter().find(|m| m["user"] == FACILITATOR))
        .and_then(|m| m["id"].as_str())
        .expect("fran on the team")
        .to_string();

    let faye = ActorId::random();
    let faye_hex = faye.to_hex_string();
    let as_faye = json!({ &faye_hex: "facilitator2" });
    let team = child(&doc, &ROOT, "team");
    let consents = child(&doc, &ROOT, "consents");
    let attempts: Vec<(&str, Automerge)> = vec![
        (
            "mark this node's facilitator left",
            edited(&doc, faye.clone(), |d| {
                let member = child(d, &team, &fran_member);
                put(d, &member, "status", "left");
            }),
        ),
        (
            "add a facilitator of county-b",
            edited(&doc, faye.clone(), |d| {
                let mut tx = d.transaction();
                let id = ulid::Ulid::new().to_string();
                let member = tx
                    .put_object(&team, id.as_str(), ObjType::Map)
                    .expect("member");
                tx.put(&member, "name", "Mallory").expect("name");
                tx.put(&member, "role", "facilitator").expect("role");
                tx.put(&member, "user", format!("mallory@{PEER}"))
                    .expect("user");
                tx.commit();
            }),
        ),
        (
            "write a consent",
            edited(&doc, faye.clone(), |d| {
                let mut tx = d.transaction();
                let id = ulid::Ulid::new().to_string();
                let consent = tx
                    .put_object(&consents, id.as_str(), ObjType::Map)
                    .expect("consent");
                tx.put(&consent, "grantee", "county-x").expect("grantee");
                tx.put(&consent, "scope", "full_plan").expect("scope");
                tx.commit();
            }),
        ),
    ];
    for (what, mut attempt) in attempts {
        rounds(&node, &b, &plan, &mut attempt, as_faye.clone())
            .assert_problem(422, "home-authority");
        let now = node.read_plan(&fran, &plan);
        assert_eq!(now.version, before.version, "{what}");
    }
    // Fran still sees the plan; nobody new is on the team.
    let team_now = node.read_plan(&fran, &plan).plan["team"].clone();
    assert_eq!(team_now, before.plan["team"]);
    assert!(!team_now.to_string().contains("mallory"));

    // Content Faye's role allows: kept, hers, delivered by her node.
    let mut content = edited(&doc, faye.clone(), |d| {
        put(d, &ROOT, "mission", "Faye's words")
    });
    rounds(&node, &b, &plan, &mut content, as_faye.clone()).assert_status(204);
    assert_eq!(node.read_plan(&fran, &plan).plan["mission"], "Faye's words");
    let history = node.history(&fran, &plan);
    let by_faye = history
        .changes
        .iter()
        .find(|c| c.actor == faye_hex)
        .expect("Faye's change");
    assert_eq!(by_faye.user.as_deref(), Some("facilitator2@county-b"));
    assert_eq!(by_faye.via, None);

    // At the home too, no change under this node's facilitator's actor.
    let fran_actor = actor_of(&node, &fran, &plan, FACILITATOR);
    let fran_hex = fran_actor.to_hex_string();
    for act in [json!({}), json!({ &fran_hex: "facilitator2" })] {
        let mut forged = edited(&content, fran_actor.clone(), |d| {
            put(d, &ROOT, "vision", "Forged by county-b")
        });
        rounds(&node, &b, &plan, &mut forged, act).assert_problem(422, "change-forbidden");
    }
    assert_eq!(node.read_plan(&fran, &plan).plan["vision"], "Home together");

    // The refusals are audited (one row per kind and interval, then a
    // counting row: `refusal_rows_per_interval`).
    let sam = node.login(SUPERVISOR);
    let audit = node.audit(&sam, &format!("plan={plan}&limit=200"));
    assert!(
        audit.entries.iter().any(|e| e.action == "peer.sync"
            && e.outcome == "denied"
            && e.detail.as_deref().is_some_and(|d| d.contains("home"))),
        "{:?}",
        audit.entries
    );
}

/// The plan's consents naming a node mirror the grants: the shares API
/// writes them, with the grant, and nobody else does: not the home's own
/// facilitator by ops, not a caregiver's phone by sync. Consents naming
/// anyone else (a school's release of information) stay the team's.
fn the_consent_record_mirrors_the_grants(backend: Backend) {
    let (node, _) = node_with_peer(backend);
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let plan = node.create_plan(&fran, "Mirrored family").id;
    let carla_member = node.add_caregiver(&fran, &plan);
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let record = |node: &TestNode| -> Value {
        let plan = node.read_plan(&fran, &plan).plan;
        let found = plan["consents"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["grantee"] == PEER).cloned());
        found.unwrap_or(Value::Null)
    };
    assert_eq!(record(&node), Value::Null);

    // Sharing writes the record, by the person who recorded the consent.
    node.post(
        &format!("/v1/plans/{plan}/shares"),
        &carla,
        &json!({"node": PEER}),
    )
    .assert_status(201);
    let shared = record(&node);
    assert_eq!(shared["status"], "active", "{shared}");
    assert_eq!(shared["scope"], "full_plan");
    assert_eq!(shared["granted_on"], today.as_str());
    assert_eq!(shared["granted_by"], carla_member.as_str());
    let id = shared["id"].as_str().expect("an item id").to_string();
    let history = node.history(&fran, &plan);
    assert_eq!(
        history.changes.last().and_then(|c| c.user.as_deref()),
        Some(CAREGIVER)
    );

    // Nobody writes it by hand: not the home's facilitator, whose ops are
    // refused whole, ...
    let version = node.read_plan(&fran, &plan).version;
    for ops in [
        json!([{"op":"replace","path":format!("/consents/{id}/status"),"value":"revoked"}]),
        json!([{"op":"add","path":"/consents","value":{"grantee":PEER,"scope":"summary"}}]),
        json!([{"op":"replace","path":"/vision","value":"Home"},
               {"op":"replace","path":format!("/consents/{id}/expires_on"),"value":"2027-01-01"}]),
    ] {
        node.post_ops(&fran, &plan, None, ops.clone())
            .assert_problem(422, "home-authority");
        assert_eq!(node.read_plan(&fran, &plan).version, version, "{ops}");
    }
    // ... nor a caregiver's phone by sync.
    let mut phone = wrapsync_tests::Device::new("carlas-phone");
    phone.sync(&node, &carla, &plan);
    phone.edit(
        Role::Caregiver,
        Some(&carla_member),
        json!([{"op":"replace","path":format!("/consents/{id}/status"),"value":"revoked"}]),
    );
    phone
        .round(&node, &carla, &plan)
        .0
        .assert_problem(422, "home-authority");
    assert_eq!(node.read_plan(&fran, &plan).version, version);
    let shares = node.get(&format!("/v1/plans/{plan}/shares"), &fran);
    assert_eq!(shares.json["shares"][0]["live"], true, "{}", shares.text());
    // A school's release of information is the team's to record.
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"add","path":"/consents","value":{"grantee":"county-school","scope":"summary"}}]),
    );

    // Withdrawing the consent marks the record, with the grant.
    node.post(
        &format!("/v1/plans/{plan}/shares/{PEER}/revoke"),
        &fran,
        &json!({}),
    )
    .assert_status(204);
    let revoked = record(&node);
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(revoked["revoked_on"], today.as_str());
    let shares = node.get(&format!("/v1/plans/{plan}/shares"), &fran);
    assert_eq!(shares.json["shares"][0]["live"], false, "{}", shares.text());
    // Withdrawn twice is no grant: 404, and nothing written.
    let version = node.read_plan(&fran, &plan).version;
    node.post(
        &format!("/v1/plans/{plan}/shares/{PEER}/revoke"),
        &fran,
        &json!({}),
    )
    .assert_problem(404, "not-found");
    assert_eq!(node.read_plan(&fran, &plan).version, version);

    // Consent given again: the same record, active again.
    node.post(
        &format!("/v1/plans/{plan}/shares"),
        &fran,
        &json!({"node": PEER}),
    )
    .assert_status(201);
    let renewed = record(&node);
    assert_eq!(renewed["id"], id.as_str());
    assert_eq!(renewed["status"], "active", "{renewed}");
    assert!(renewed.get("revoked_on").is_none(), "{renewed}");
    let plan_now = node.read_plan(&fran, &plan).plan;
    let consents = plan_now["consents"].as_array().map(Vec::len);
    assert_eq!(consents, Some(2), "{}", plan_now["consents"]);
}

on_both_backends!(
    a_home_cannot_forge_a_replicas_people,
    a_peer_cannot_take_over_the_homes_roster_or_consents,
    the_consent_record_mirrors_the_grants
);
