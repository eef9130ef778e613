//! What a member whose role hides sections (a natural support: no CANS,
//! status reports or consents) can learn of them, from their seat: whether
//! an item exists there (findings 6), what changed there and with whom the
//! plan is shared, and whether the facilitator's `ETag` fits their view
//! (finding 7); and what ids a client may give new items (finding 10).

use reqwest::Method;
use serde_json::{json, Value};
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{FACILITATOR, NATURAL_SUPPORT, SUPERVISOR};
use wrapsync_tests::{Backend, Device, NodeSigner, Reply, TestNode};

on_both_backends!(
    hidden_items_answer_exactly_like_items_that_do_not_exist,
    history_and_shares_show_a_natural_support_nothing_of_hidden_sections,
    an_etag_validates_one_roles_view_not_the_plan,
    new_item_ids_are_canonical_ulids_unique_across_the_plan,
);

/// A plan with Nell on its team as a natural support, and one CANS, one
/// status snapshot and one consent she is not shown. Answers the plan id,
/// the facilitator's and Nell's tokens, and the hidden items as
/// `(section, id, a field of it)`.
fn plan_with_hidden_items(node: &TestNode) -> (String, String, String, Vec<(String, String)>) {
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Partly private").id;
    let added = node.apply_ops(
        &fran,
        &plan,
        json!([
            {"op":"add","path":"/team","value":{"name":"Nell","role":"natural_support","user":NATURAL_SUPPORT}},
            {"op":"add","path":"/cans","value":{"assessed_on":"2026-01-05","ratings":{"bh.anxiety":2}}},
            {"op":"add","path":"/status","value":{"as_of":"2026-01-05","living":"home"}},
            {"op":"add","path":"/consents","value":{"grantee":"county-school","scope":"full_plan"}},
        ]),
    );
    let hidden = ["cans", "status", "consents"]
        .iter()
        .zip(&added.results[1..])
        .map(|(section, r)| (section.to_string(), r.id.clone().expect("an item id")))
        .collect();
    let nell = node.login(NATURAL_SUPPORT);
    (plan, fran, nell, hidden)
}

/// The id right after `id`: what a prober tries first.
fn neighbour(id: &str) -> String {
    let id = ulid::Ulid::from_string(id).expect("a ULID");
    ulid::Ulid(id.0 + 1).to_string()
}

fn hidden_items_answer_exactly_like_items_that_do_not_exist(backend: Backend) {
    let node = TestNode::spawn(backend);
    let (plan, fran, nell, hidden) = plan_with_hidden_items(&node);
    let before = node.read_plan(&fran, &plan);
    // Every kind of op that names an item: the answer must not depend on
    // whether the item is there.
    let probes = |section: &str, id: &str| -> Vec<Value> {
        let item = format!("/{section}/{id}");
        vec![
            json!([{"op":"replace","path":format!("{item}/status"),"value":"withdrawn"}]),
            json!([{"op":"replace","path":format!("{item}/assessed_on"),"value":"2026-02-01"}]),
            json!([{"op":"replace","path":format!("{item}/no_such_field"),"value":1}]),
            json!([{"op":"replace","path":item,"value":{}}]),
            json!([{"op":"add","path":format!("{item}/ratings/bh.anxiety"),"value":3}]),
            json!([{"op":"test","path":format!("{item}/status"),"value":"final"}]),
            json!([{"op":"remove","path":item}]),
            json!([{"op":"move","from":item,"path":"/vision"}]),
            json!([{"op":"copy","from":item,"path":"/strengths"}]),
            // Inserting a visible item under the hidden item's id.
            json!([{"op":"add","path":"/strengths","value":{"id":id,"statement":"Kind"}}]),
            // An allowed op first: the refusal's op_index must not differ.
            json!([
                {"op":"add","path":"/strengths","value":{"statement":"Patient"}},
                {"op":"replace","path":format!("{item}/status"),"value":"withdrawn"}
            ]),
        ]
    };
    let mut compared = 0;
    for (section, id) in &hidden {
        let missing = neighbour(id);
        for (there, absent) in probes(section, id)
            .into_iter()
            .zip(probes(section, &missing))
        {
            let a = node.post_ops(&nell, &plan, None, there.clone());
            let b = node.post_ops(&nell, &plan, None, absent);
            assert!(a.status >= 400, "{there}: {}", a.text());
            assert_eq!(
                (a.status, a.text().replace(id.as_str(), "<id>")),
                (b.status, b.text().replace(missing.as_str(), "<id>")),
                "{there}: an item that exists answered unlike one that does not"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 33);
    assert_eq!(
        node.read_plan(&fran, &plan).version,
        before.version,
        "no probe changed the plan"
    );
}

/// True when a history summary names a section a natural support is not
/// shown (`replace /cans/*/status; add /strengths`).
fn names_hidden(summary: &str) -> bool {
    summary.split("; ").any(|part| {
        part.split_once(' ').is_some_and(|(_, path)| {
            ["/cans", "/status", "/consents"]
                .iter()
                .any(|s| path == *s || path.starts_with(&format!("{s}/")))
        })
    })
}

fn history_and_shares_show_a_natural_support_nothing_of_hidden_sections(backend: Backend) {
    let node = TestNode::spawn(backend);
    let (plan, fran, nell, hidden) = plan_with_hidden_items(&node);
    let cans = &hidden[0].1;
    // Hidden-only changes, a mixed one, and a visible one.
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":format!("/cans/{cans}/status"),"value":"final"}]),
    );
    node.apply_ops(
        &fran,
        &plan,
        json!([
            {"op":"replace","path":"/vision","value":"Home together"},
            {"op":"add","path":"/status","value":{"as_of":"2026-02-05","living":"home"}}
        ]),
    );
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"add","path":"/strengths","value":{"statement":"Loves soccer"}}]),
    );
    // And the family's consent to share the plan with a peer node.
    let peer = NodeSigner::new("county-peer").expect("a key");
    let sam = node.login(SUPERVISOR);
    node.post(
        "/v1/admin/peers",
        &sam,
        &json!({"id": peer.id, "url": "http://127.0.0.1:9", "public_key": peer.public_key}),
    )
    .assert_status(201);
    node.post(
        &format!("/v1/plans/{plan}/shares"),
        &fran,
        &json!({"node": peer.id}),
    )
    .assert_status(201);

    let full = node.history(&fran, &plan);
    let theirs = node.history(&nell, &plan);
    let summaries = |h: &wrapsync_shared::api::History| -> Vec<String> {
        h.changes.iter().filter_map(|c| c.summary.clone()).collect()
    };
    assert!(
        summaries(&full).iter().any(|s| names_hidden(s)),
        "the facilitator sees the CANS, status and consent activity: {:?}",
        summaries(&full)
    );
    assert!(
        !summaries(&theirs).iter().any(|s| names_hidden(s)),
        "a natural support sees hidden-section activity: {:?}",
        summaries(&theirs)
    );
    // Changes that touched only hidden sections are not there at all.
    for change in &full.changes {
        let summary = change.summary.as_deref().unwrap_or_default();
        let only_hidden = summary
            .split("; ")
            .all(|part| names_hidden(part) || part == "…");
        let shown = theirs.changes.iter().any(|c| c.hash == change.hash);
        if summary != "create plan" {
            assert_eq!(shown, !only_hidden, "{summary}");
        }
    }
    let shown = summaries(&theirs);
    assert!(shown.iter().any(|s| s == "replace /vision"), "{shown:?}");
    assert!(shown.iter().any(|s| s == "add /strengths"), "{shown:?}");

    let fran_shares = node.get(&format!("/v1/plans/{plan}/shares"), &fran);
    fran_shares.assert_status(200);
    assert_eq!(fran_shares.json["shares"][0]["node"], json!(peer.id));
    let nell_shares = node.get(&format!("/v1/plans/{plan}/shares"), &nell);
    nell_shares.assert_status(200);
    assert_eq!(
        nell_shares.json["shares"],
        json!([]),
        "a sharing grant is the family's consent, hidden from a natural support"
    );
    for reply in [
        &nell_shares,
        &node.get(&format!("/v1/plans/{plan}/history"), &nell),
    ] {
        assert_varies_by_caller(reply);
    }
}

#[track_caller]
fn assert_varies_by_caller(reply: &Reply) {
    let vary = reply
        .header("vary")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        vary.split(',').any(|v| v.trim() == "authorization"),
        "Vary must name Authorization, got {vary:?}"
    );
}

fn read_with(node: &TestNode, token: &str, plan: &str, etag: &str) -> Reply {
    node.send(
        node.request(Method::GET, &format!("/v1/plans/{plan}"))
            .bearer_auth(token)
            .header("If-None-Match", etag),
    )
}

fn an_etag_validates_one_roles_view_not_the_plan(backend: Backend) {
    let node = TestNode::spawn(backend);
    let (plan, fran, nell, _) = plan_with_hidden_items(&node);
    let full = node.get(&format!("/v1/plans/{plan}"), &fran);
    full.assert_status(200);
    assert_varies_by_caller(&full);
    let fran_etag = full.header("etag").expect("an ETag").to_string();

    // The facilitator's validator does not fit Nell's view: she gets hers.
    let filtered = read_with(&node, &nell, &plan, &fran_etag);
    filtered.assert_status(200);
    assert_varies_by_caller(&filtered);
    assert!(
        filtered.json["plan"].get("cans").is_none(),
        "{}",
        filtered.text()
    );
    assert!(full.json["plan"].get("cans").is_some());
    let nell_etag = filtered.header("etag").expect("an ETag").to_string();
    assert_ne!(nell_etag, fran_etag);

    // Each validator still works for its own view, and only for it.
    let unchanged = read_with(&node, &nell, &plan, &nell_etag);
    unchanged.assert_status(304);
    assert_varies_by_caller(&unchanged);
    read_with(&node, &fran, &plan, &fran_etag).assert_status(304);
    read_with(&node, &fran, &plan, &nell_etag).assert_status(200);

    // What an edit answers is the validator of the editor's view.
    let edited = node.post_ops(
        &nell,
        &plan,
        None,
        json!([{"op":"add","path":"/strengths","value":{"statement":"Bakes"}}]),
    );
    edited.assert_status(200);
    assert_varies_by_caller(&edited);
    let after = edited.header("etag").expect("an ETag").to_string();
    read_with(&node, &nell, &plan, &after).assert_status(304);
    assert!(edited.json["plan"].get("consents").is_none());
}

/// A strength added offline whose id the phone chose: `id`.
fn add_strength_as(phone: &mut Device, id: &str) {
    let ops: Vec<Op> = serde_json::from_value(
        json!([{"op":"add","path":"/strengths","value":{"statement":"Brave"}}]),
    )
    .expect("ops");
    let editor = Editor {
        role: Role::Facilitator,
        member_id: None,
    };
    let mut tx = phone.doc.transaction();
    apply_ops(&mut tx, &ops, &editor, &mut || id.to_string()).expect("an offline edit");
    tx.commit();
}

fn new_item_ids_are_canonical_ulids_unique_across_the_plan(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Ids").id;
    let need = ulid::Ulid::new().to_string();
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"add","path":"/needs","value":{"id":need,"domain":"home","statement":"Calm"}}]),
    );
    let before = node.read_plan(&fran, &plan);
    let fresh = ulid::Ulid::new().to_string();
    let bad_ids = [
        fresh.to_lowercase(),
        format!("8{}", &fresh[1..]),
        "strength-1".to_string(),
        need.clone(),
    ];
    for bad in &bad_ids {
        for ops in [
            json!([{"op":"add","path":"/strengths","value":{"id":bad,"statement":"Kind"}}]),
            json!([{"op":"add","path":"/strategies","value":{"description":"Rides","kind":"natural",
                "steps":[{"id":bad,"description":"Bus pass"}]}}]),
        ] {
            node.post_ops(&fran, &plan, None, ops)
                .assert_problem(422, "invalid-item-id");
        }
    }
    assert_eq!(node.read_plan(&fran, &plan).version, before.version);

    // A phone creating such an item by sync is refused whole.
    for bad in [&bad_ids[0], &bad_ids[1], &need] {
        let mut phone = Device::new(&ulid::Ulid::new().to_string());
        phone.push(&node, &fran, &plan).assert_status(200);
        add_strength_as(&mut phone, bad);
        phone
            .push(&node, &fran, &plan)
            .assert_problem(422, "invalid-item-id");
        assert_eq!(
            node.read_plan(&fran, &plan).version,
            before.version,
            "{bad}"
        );
    }
    // A canonical, unused id still goes through, by ops and by sync.
    let mut phone = Device::new(&ulid::Ulid::new().to_string());
    phone.push(&node, &fran, &plan).assert_status(200);
    add_strength_as(&mut phone, &ulid::Ulid::new().to_string());
    phone.push(&node, &fran, &plan).assert_status(200);
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"add","path":"/strengths","value":{"id":fresh,"statement":"Kind"}}]),
    );
    let strengths = node.read_plan(&fran, &plan).plan["strengths"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(strengths, 2);
}
