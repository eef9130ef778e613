//! Unit tests of the plan service's pure parts: the quota's growth floor,
//! item ids, attribution and what a role's history shows.

use super::edit::new_item_id;
use super::history::{attribution, visible_summary};
use super::quota::growth_floor;
use automerge::Automerge;
use serde_json::json;
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::plan::init_plan;
use wrapsync_shared::roles::Role;

#[test]
fn the_growth_floor_is_at_most_what_adds_grow_the_rendered_plan() {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    init_plan(&mut tx, "Floor family").unwrap();
    tx.commit();
    let ops: Vec<Op> = serde_json::from_value(json!([
        {"op":"add","path":"/strengths","value":{"statement":"Grandma \"Lu\" é\n","about":null}},
        {"op":"add","path":"/needs","value":{"domain":"school","statement":"x","priority":2}},
        {"op":"add","path":"/outcomes","value":{"statement":"y","baseline":1,"target":5}},
        {"op":"add","path":"/strategies","value":{"description":"z","kind":"formal",
            "steps":[{"description":"a step"},{"description":"another","status":"open"}]}},
        {"op":"replace","path":"/vision","value":"not counted"},
    ]))
    .unwrap();
    let before = serde_json::to_vec(&wrapsync_shared::plan::render(&doc))
        .unwrap()
        .len();
    let editor = Editor {
        role: Role::Supervisor,
        member_id: None,
    };
    let mut tx = doc.transaction();
    apply_ops(&mut tx, &ops, &editor, &mut new_item_id).unwrap();
    tx.commit();
    let after = serde_json::to_vec(&wrapsync_shared::plan::render(&doc))
        .unwrap()
        .len();
    let floor = growth_floor(&ops);
    assert!(floor > 150, "{floor}");
    assert!(floor <= after - before, "{floor} > {}", after - before);
    // A retried add (naming its id) may change nothing: not counted.
    let retry: Vec<Op> = serde_json::from_value(json!([
        {"op":"add","path":"/strengths","value":{"id":new_item_id(),"statement":"s"}}
    ]))
    .unwrap();
    assert_eq!(growth_floor(&retry), 0);
}

#[test]
fn item_ids_grow_but_their_neighbours_cannot_be_guessed() {
    let ids: Vec<u128> = (0..200)
        .map(|_| ulid::Ulid::from_string(&new_item_id()).map_or(0, |u| u.0))
        .collect();
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "ids sort in the order they were made");
        // Plus one would be 1 in 2^64 if the steps are random.
        assert!(pair[1] - pair[0] > 1, "a neighbour is not the next id");
    }
}

#[test]
fn history_names_the_node_that_delivered_a_change_not_made_by_its_people() {
    let at = |name: Option<&str>, home: Option<&str>| attribution(name, home);
    let s = |v: &str| Some(v.to_string());
    // Homed here: local people and a peer's members, as bound.
    assert_eq!(at(Some("fran"), None), (s("fran"), None));
    assert_eq!(at(Some("cody@county-b"), None), (s("cody@county-b"), None));
    // A replica: the home's people came from it; a third node's via it.
    assert_eq!(
        at(Some("bea@county-b"), Some("county-b")),
        (s("bea@county-b"), None)
    );
    assert_eq!(
        at(Some("cody@county-c"), Some("county-b")),
        (s("cody@county-c"), s("county-b"))
    );
    assert_eq!(at(Some("fran"), Some("county-b")), (s("fran"), None));
    // Not vouched for: nobody named, the node that delivered it.
    assert_eq!(
        at(Some("@county-b"), Some("county-b")),
        (None, s("county-b"))
    );
    assert_eq!(at(None, Some("county-b")), (None, s("county-b")));
    assert_eq!(at(None, None), (None, None));
}

#[test]
fn a_summary_keeps_only_the_parts_a_role_sees() {
    let ns = Role::NaturalSupport;
    let mixed = "replace /vision; add /cans; replace /status/*/living";
    assert_eq!(
        visible_summary(ns, mixed).as_deref(),
        Some("replace /vision")
    );
    assert_eq!(visible_summary(ns, "add /consents"), None);
    assert_eq!(
        visible_summary(ns, "add /strengths; add /cans; …").as_deref(),
        Some("add /strengths; …")
    );
    assert_eq!(visible_summary(ns, "add /cans; …"), None);
    assert_eq!(
        visible_summary(ns, "create plan").as_deref(),
        Some("create plan")
    );
    assert_eq!(
        visible_summary(Role::Facilitator, mixed).as_deref(),
        Some(mixed)
    );
}
