//! Home authority (issue 22, findings 2 and 5, and the replay cache): a
//! peer with a real key may hand over only a plan it homes (one this node
//! holds as its replica, or one whose handover carries the family's
//! consent to this node, signed by the home in the certificate); it may
//! make a replica here only of a plan it homes and shares with this node
//! (its signed consent statement), and only so many new plans an interval;
//! grants carried in a handover are believed only as the old home signed
//! them; and one peer's one-time ids are bounded.

use reqwest::Method;
use serde_json::{json, Value};
use wrapsync_shared::api::{
    grants_digest, Handover, HandoverGrant, PeerSyncBatch, PeerSyncItem, ShareList, SyncBatchReply,
};
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::{ActorId, Automerge};
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::plan::init_plan;
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{FACILITATOR, SUPERVISOR};
use wrapsync_tests::{deadline, unix_now, wait_until, Backend, NodeSigner, Reply, TestNode};

on_both_backends!(
    a_handover_is_taken_only_from_the_plans_home_with_what_it_signed,
    replicas_are_made_only_of_plans_the_sender_homes_and_shares_here_within_a_budget,
);

/// A node with the test's two county keys as peers.
fn node_with_peers(backend: Backend, extra: toml::Table) -> (TestNode, NodeSigner, NodeSigner) {
    let node = TestNode::spawn_with(backend, extra);
    let b = NodeSigner::new("county-b").expect("a key");
    let c = NodeSigner::new("county-c").expect("a key");
    let sam = node.login(SUPERVISOR);
    for peer in [&b, &c] {
        node.post(
            "/v1/admin/peers",
            &sam,
            &json!({ "id": peer.id, "url": "http://127.0.0.1:9", "public_key": peer.public_key }),
        )
        .assert_status(201);
    }
    (node, b, c)
}

fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

/// A plan as a peer would make it, `team_user` its facilitator.
fn plan_document(title: &str, team_user: &str) -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::random());
    let mut tx = doc.transaction();
    init_plan(&mut tx, title).expect("init");
    let ops: Vec<Op> = serde_json::from_value(json!([
        {"op":"add","path":"/team","value":{"name":"Fran","role":"facilitator","user":team_user}},
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

fn signed(signer: &NodeSigner, claims: Value) -> String {
    let Value::Object(claims) = claims else {
        panic!("claims are an object")
    };
    signer.sign_claims(&signer.id, &claims)
}

/// `home`'s certificate moving `plan` to `to`, signing `grants` if given.
fn certificate(
    home: &NodeSigner,
    plan: &str,
    to: &str,
    grants: Option<&[HandoverGrant]>,
) -> String {
    let mut claims = json!({"iss": home.id, "sub": plan, "home": to, "iat": unix_now()});
    if let Some(grants) = grants {
        claims["gdg"] = grants_digest(grants).into();
    }
    signed(home, claims)
}

/// `home`'s consent statement sharing `plan` with `to`.
fn consent(home: &NodeSigner, plan: &str, to: &str, by: &str) -> String {
    signed(
        home,
        json!({"typ": "wrapsync-consent", "iss": home.id, "sub": plan, "aud": to,
               "by": by, "iat": unix_now()}),
    )
}

fn grant(node: &str, by: &str) -> HandoverGrant {
    HandoverGrant {
        node: node.into(),
        scope: "full".into(),
        granted_by: by.into(),
        expires_at: None,
    }
}

fn cbor(value: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).expect("cbor");
    bytes
}

/// A signed handover of `plan` from `from`; answers the reply and the
/// `Authorization` it was sent with.
fn hand_over(
    node: &TestNode,
    from: &NodeSigner,
    plan: &str,
    handover: &Handover,
) -> (Reply, String) {
    let path = format!("/federation/v1/plans/{plan}/transfer");
    let body = cbor(handover);
    let auth = from.sign(node.node_id(), "POST", &path, &body, unix_now());
    (send(node, &path, &auth, body), auth)
}

fn send(node: &TestNode, path: &str, auth: &str, body: Vec<u8>) -> Reply {
    node.send(
        node.request(Method::POST, path)
            .header("content-type", "application/cbor")
            .header("authorization", auth)
            .body(body),
    )
}

/// Sync rounds of `plan` as its home `from` (single-plan route), carrying
/// `statements` (certificates, consent) in `Wrapsync-Transfers`, until
/// quiet; answers the last status.
fn push_plan(
    node: &TestNode,
    from: &NodeSigner,
    plan: &str,
    doc: &mut Automerge,
    statements: Option<&str>,
) -> u16 {
    let path = format!("/federation/v1/plans/{plan}/sync");
    let mut state = sync::State::new();
    for _ in 0..10 {
        let body = doc
            .generate_sync_message(&mut state)
            .map(sync::Message::encode)
            .unwrap_or_default();
        let auth = from.sign(node.node_id(), "POST", &path, &body, unix_now());
        let mut request = node
            .request(Method::POST, &path)
            .header("content-type", "application/octet-stream")
            .header("authorization", auth)
            .body(body);
        if let Some(statements) = statements {
            request = request.header("wrapsync-transfers", statements);
        }
        let reply = node.send(request);
        match reply.status {
            200 => {
                let message = sync::Message::decode(&reply.body).expect("a sync message");
                doc.receive_sync_message(&mut state, message)
                    .expect("applies");
            }
            status => return status,
        }
    }
    panic!("no quiet after 10 rounds");
}

fn plan_status(node: &TestNode, token: &str, plan: &str) -> u16 {
    node.get(&format!("/v1/plans/{plan}"), token).status
}

fn shares(node: &TestNode, token: &str, plan: &str) -> Vec<String> {
    let reply = node.get(&format!("/v1/plans/{plan}/shares"), token);
    let list: ShareList = reply.typed(200);
    let mut nodes: Vec<String> = list.shares.into_iter().map(|s| s.node).collect();
    nodes.sort();
    nodes
}

fn a_handover_is_taken_only_from_the_plans_home_with_what_it_signed(backend: Backend) {
    let (node, b, c) = node_with_peers(backend, toml::Table::new());
    let me = node.node_id().to_string();
    let (fran, sam) = (node.login(FACILITATOR), node.login(SUPERVISOR));

    // Finding 2 as found: county-b hands over a plan it never shared here,
    // its certificate "from county-b to here", a grant to county-c. Not
    // taken: nothing here knows the plan as county-b's, and the
    // certificate signs no consent to this node.
    let made_up = new_id();
    let doc = plan_document("Fabricated family", FACILITATOR);
    let grants = vec![grant("county-c", "caregiver9@county-b")];
    let as_found = Handover {
        document: Some(doc.save()),
        grants: grants.clone(),
        certificate: certificate(&b, &made_up, &me, None),
        keeps_copy: false,
    };
    let (reply, auth) = hand_over(&node, &b, &made_up, &as_found);
    reply.assert_problem(403, "forbidden");
    // The same with the grant to county-c signed: still no consent here.
    let signed_elsewhere = Handover {
        certificate: certificate(&b, &made_up, &me, Some(&grants)),
        ..as_found.clone()
    };
    hand_over(&node, &b, &made_up, &signed_elsewhere)
        .0
        .assert_problem(403, "forbidden");
    // A consent to this node slipped in beside what the certificate signs.
    let mut slipped = signed_elsewhere.clone();
    slipped.grants.push(grant(&me, "carla@county-b"));
    hand_over(&node, &b, &made_up, &slipped)
        .0
        .assert_problem(400, "invalid-request");
    // Nothing of it here: not for its facilitator, not in her list, not
    // for the supervisor, no shares.
    assert_eq!(plan_status(&node, &fran, &made_up), 404);
    assert_eq!(plan_status(&node, &sam, &made_up), 404);
    assert!(!node.list_all_plans(&fran).iter().any(|p| p.id == made_up));
    // The request, replayed, is refused as a replay.
    send(
        &node,
        &format!("/federation/v1/plans/{made_up}/transfer"),
        &auth,
        cbor(&as_found),
    )
    .assert_problem(401, "unauthorized");

    // A plan this node holds as county-c's replica (county-c shared it):
    // county-b cannot move it, even with a consent it signed.
    let cs = new_id();
    let on_team = format!("{FACILITATOR}@{me}");
    let mut cs_doc = plan_document("County-c family", &on_team);
    let consent_c = consent(&c, &cs, &me, "carla@county-c");
    assert_eq!(
        push_plan(&node, &c, &cs, &mut cs_doc, Some(&consent_c)),
        204,
        "county-c's shared plan is replicated here"
    );
    assert_eq!(plan_status(&node, &sam, &cs), 200);
    let grants = vec![grant(&me, "carla@county-b")];
    let steal = Handover {
        document: Some(cs_doc.save()),
        grants: grants.clone(),
        certificate: certificate(&b, &cs, &me, Some(&grants)),
        keeps_copy: false,
    };
    hand_over(&node, &b, &cs, &steal)
        .0
        .assert_problem(409, "conflict");
    // Nor a plan homed here.
    let ours = node.create_plan(&fran, "Our own family").id;
    let grants = vec![grant(&me, "carla@county-b")];
    let claim = Handover {
        document: Some(plan_document("Ours?", FACILITATOR).save()),
        grants: grants.clone(),
        certificate: certificate(&b, &ours, &me, Some(&grants)),
        keeps_copy: false,
    };
    hand_over(&node, &b, &ours, &claim)
        .0
        .assert_problem(409, "conflict");
    assert_eq!(node.read_plan(&fran, &ours).plan["title"], "Our own family");

    // A plan county-b homes and shares here (its replica is here): the
    // grants of an old-release certificate (no digest) are not its signed
    // word, so the move goes but no share with county-c comes with it.
    let shared = new_id();
    let mut shared_doc = plan_document("Moving family", &on_team);
    let consent_b = consent(&b, &shared, &me, "carla@county-b");
    assert_eq!(
        push_plan(&node, &b, &shared, &mut shared_doc, Some(&consent_b)),
        204
    );
    let unsigned = Handover {
        document: Some(shared_doc.save()),
        grants: vec![
            grant(&me, "carla@county-b"),
            grant("county-c", "caregiver9@county-b"),
        ],
        certificate: certificate(&b, &shared, &me, None),
        keeps_copy: false,
    };
    hand_over(&node, &b, &shared, &unsigned)
        .0
        .assert_status(200);
    assert_eq!(
        shares(&node, &sam, &shared),
        Vec::<String>::new(),
        "grants the old home did not sign are not kept"
    );

    // The whole honest shape for a plan never held here: the certificate
    // signs the grants, one of them the family's consent to this node.
    // Then what it signed is believed, but only grants by someone named
    // name@node who is not this node's own user: a plain `fran` would be
    // this node's facilitator, `sam@here` this node's supervisor.
    let moved = new_id();
    let grants = vec![
        grant(&me, "carla@county-b"),
        grant("county-c", &format!("{SUPERVISOR}@{me}")),
    ];
    let forged_by = Handover {
        document: Some(plan_document("Arriving family", "fran@county-b").save()),
        grants: grants.clone(),
        certificate: certificate(&b, &moved, &me, Some(&grants)),
        keeps_copy: false,
    };
    hand_over(&node, &b, &moved, &forged_by)
        .0
        .assert_status(200);
    assert_eq!(shares(&node, &sam, &moved), Vec::<String>::new());
    let moved_2 = new_id();
    let grants = vec![grant(&me, "carla@county-b"), grant("county-c", FACILITATOR)];
    let plain = Handover {
        document: Some(plan_document("Arriving family 2", "fran@county-b").save()),
        grants: grants.clone(),
        certificate: certificate(&b, &moved_2, &me, Some(&grants)),
        keeps_copy: false,
    };
    hand_over(&node, &b, &moved_2, &plain).0.assert_status(200);
    assert_eq!(shares(&node, &sam, &moved_2), Vec::<String>::new());
    let moved_3 = new_id();
    let grants = vec![
        grant(&me, "carla@county-b"),
        grant("county-c", "caregiver9@county-b"),
    ];
    let honest = Handover {
        document: Some(plan_document("Arriving family 3", "fran@county-b").save()),
        grants: grants.clone(),
        certificate: certificate(&b, &moved_3, &me, Some(&grants)),
        keeps_copy: true,
    };
    hand_over(&node, &b, &moved_3, &honest).0.assert_status(200);
    assert_eq!(
        shares(&node, &sam, &moved_3),
        ["county-b", "county-c"],
        "the signed grant to county-c, and the old home keeping its copy"
    );
    let believed = || {
        node.audit(&sam, &format!("plan={moved_3}"))
            .entries
            .iter()
            .any(|e| {
                e.action == "peer.transfer"
                    && e.detail
                        .as_deref()
                        .is_some_and(|d| d.contains("county-c (by caregiver9@county-b)"))
            })
    };
    assert!(
        wait_until(deadline(10), believed),
        "the move's audit row names the grants kept"
    );
}

/// Two rounds of a batch push of `plans` as their home `from` (the first
/// round's messages carry no changes, as a home's do); `statements(plan)`
/// rides with each. Answers the second round's reply.
fn push_batch(
    node: &TestNode,
    from: &NodeSigner,
    plans: &[(String, Automerge)],
    statements: impl Fn(&str) -> Option<String>,
) -> SyncBatchReply {
    let path = "/federation/v1/sync";
    let mut docs: Vec<(String, Automerge, sync::State)> = plans
        .iter()
        .map(|(id, doc)| (id.clone(), doc.clone(), sync::State::new()))
        .collect();
    let mut last = None;
    for _ in 0..2 {
        let items: Vec<PeerSyncItem> = docs
            .iter_mut()
            .map(|(id, doc, state)| PeerSyncItem {
                plan: id.clone(),
                message: doc.generate_sync_message(state).map(sync::Message::encode),
                authors: Default::default(),
                transfers: statements(id),
            })
            .collect();
        let body = cbor(&PeerSyncBatch { plans: items });
        let auth = from.sign(node.node_id(), "POST", path, &body, unix_now());
        let reply = send(node, path, &auth, body);
        reply.assert_status(200);
        let answer: SyncBatchReply = ciborium::from_reader(&reply.body[..]).expect("a reply");
        for ((_, doc, state), result) in docs.iter_mut().zip(&answer.plans) {
            if let Some(message) = &result.message {
                let message = sync::Message::decode(message).expect("a sync message");
                doc.receive_sync_message(state, message).expect("applies");
            }
        }
        last = Some(answer);
    }
    last.expect("two rounds")
}

fn statuses(reply: &SyncBatchReply) -> Vec<u16> {
    reply
        .plans
        .iter()
        .map(|p| p.problem.as_ref().map_or(200, |p| p.status))
        .collect()
}

fn replicas_are_made_only_of_plans_the_sender_homes_and_shares_here_within_a_budget(
    backend: Backend,
) {
    let (node, b, c) = node_with_peers(backend, toml::Table::new());
    let me = node.node_id().to_string();
    let (fran, sam) = (node.login(FACILITATOR), node.login(SUPERVISOR));
    let on_team = format!("{FACILITATOR}@{me}");
    let plans = |n: usize, title: &str| -> Vec<(String, Automerge)> {
        (0..n)
            .map(|i| (new_id(), plan_document(&format!("{title} {i}"), &on_team)))
            .collect()
    };

    // Pushed by their "home" with no word that the family shares them
    // here, with a consent county-c signed (county-b is not its home), or
    // with county-b's consent to another node: none is made.
    let unshared = plans(3, "Unshared family");
    let ids: Vec<String> = unshared.iter().map(|(id, _)| id.clone()).collect();
    let reply = push_batch(&node, &b, &unshared, |id| {
        if *id == ids[0] {
            None
        } else if *id == ids[1] {
            Some(consent(&c, id, &me, "carla@county-c"))
        } else {
            Some(consent(&b, id, "county-c", "carla@county-b"))
        }
    });
    assert_eq!(statuses(&reply), [404, 404, 404]);
    for id in &ids {
        assert_eq!(plan_status(&node, &sam, id), 404);
    }
    // One audit row for the request, however many plans it named.
    let unknown_rows = || {
        node.audit(&sam, "limit=200")
            .entries
            .into_iter()
            .filter(|e| e.action == "peer.sync" && e.outcome == "not_found")
            .collect::<Vec<_>>()
    };
    wait_until(deadline(10), || !unknown_rows().is_empty());
    let rows = unknown_rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let detail = rows[0].detail.clone().unwrap_or_default();
    assert!(detail.starts_with("3 plans not held here"), "{detail}");

    // A flood of new plans, each with county-b's signed consent: at most
    // the budget's burst (200) is made, the rest refused with 429 (and
    // made later, at the budget's rate), with one audit row per request.
    let flood = plans(500, "Flood family");
    let reply = push_batch(&node, &b, &flood, |id| {
        Some(consent(&b, id, &me, "carla@county-b"))
    });
    let got = statuses(&reply);
    let made = got.iter().filter(|s| **s == 200).count();
    let limited = got.iter().filter(|s| **s == 429).count();
    assert_eq!(made + limited, 500, "{got:?}");
    assert!((200..250).contains(&made), "{made} made");
    let listed = node
        .list_all_plans(&fran)
        .iter()
        .filter(|p| p.title.starts_with("Flood family"))
        .count();
    assert_eq!(listed, made);
    let limited_rows = || {
        node.audit(&sam, "limit=200")
            .entries
            .into_iter()
            .filter(|e| e.action == "peer.replicate" && e.outcome == "rate-limited")
            .collect::<Vec<_>>()
    };
    wait_until(deadline(10), || !limited_rows().is_empty());
    let rows = limited_rows();
    assert_eq!(rows.len(), 1, "{rows:?}");

    // County-c's budget is its own: its shared plan is made.
    let theirs = plans(1, "County-c family");
    let reply = push_batch(&node, &c, &theirs, |id| {
        Some(consent(&c, id, &me, "carla@county-c"))
    });
    assert_eq!(statuses(&reply), [200]);
    assert_eq!(
        node.read_plan(&fran, &theirs[0].0).plan["title"],
        "County-c family 0"
    );
}

/// A one-time id is at most 64 characters: one the node would remember
/// costs it a bounded amount (a peer's 4,000-character id was kept).
#[test]
fn a_one_time_id_longer_than_64_characters_is_refused() {
    let (node, b, _) = node_with_peers(Backend::Sqlite, toml::Table::new());
    let path = "/federation/v1/sync";
    let body = cbor(&PeerSyncBatch { plans: Vec::new() });
    let mut claims = b.claims(node.node_id(), "POST", path, &body, unix_now());
    claims.insert("jti".into(), "j".repeat(4_000).into());
    let auth = format!("Bearer {}", b.sign_claims(&b.id, &claims));
    send(&node, path, &auth, body.clone()).assert_problem(401, "unauthorized");
    claims.insert("jti".into(), "j".repeat(64).into());
    let auth = format!("Bearer {}", b.sign_claims(&b.id, &claims));
    send(&node, path, &auth, body.clone()).assert_status(200);
    // Spent once.
    send(&node, path, &auth, body).assert_problem(401, "unauthorized");
}

/// One peer's one-time ids in force are bounded (`replay_ids_per_peer`):
/// past it the peer waits (`429`) for some to expire, and another peer is
/// not held up.
#[test]
fn one_peers_one_time_ids_in_force_are_bounded() {
    let mut extra = toml::Table::new();
    extra.insert("replay_ids_per_peer".into(), 3.into());
    let (node, b, c) = node_with_peers(Backend::Sqlite, extra);
    let path = "/federation/v1/sync";
    let body = cbor(&PeerSyncBatch { plans: Vec::new() });
    let post = |signer: &NodeSigner| {
        let auth = signer.sign(node.node_id(), "POST", path, &body, unix_now());
        send(&node, path, &auth, body.clone())
    };
    for _ in 0..3 {
        post(&b).assert_status(200);
    }
    let full = post(&b);
    full.assert_problem(429, "rate-limited");
    assert!(full.header("retry-after").is_some());
    post(&c).assert_status(200);
}
