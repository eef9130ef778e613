//! Who sees and changes which plan: the roster decides, supervisors see
//! everything, and a plan you may not see is indistinguishable from one that
//! does not exist.

use crate::{add_member, assert_op_index, items, NO_SUCH_ID};
use reqwest::Method;
use serde_json::json;
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{
    CAREGIVER, CAREGIVER_2, FACILITATOR, FACILITATOR_2, NATURAL_SUPPORT, SUPERVISOR, YOUTH,
};
use wrapsync_tests::{Backend, Reply, TestNode};

on_both_backends!(
    plans_are_visible_only_to_their_active_team,
    supervisors_see_every_plan_of_the_node,
    a_caregiver_editing_the_roster_is_refused_and_nothing_changes,
);

/// The two 404s must be the same answer, up to the id that was asked for.
#[track_caller]
fn assert_same_not_found(hidden: &Reply, hidden_id: &str, missing: &Reply, missing_id: &str) {
    hidden.assert_problem(404, "not-found");
    missing.assert_problem(404, "not-found");
    let hidden_body = hidden.text().replace(hidden_id, "<id>");
    let missing_body = missing.text().replace(missing_id, "<id>");
    assert_eq!(
        hidden_body, missing_body,
        "a plan one may not see must look like one that does not exist"
    );
}

fn plans_are_visible_only_to_their_active_team(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let created = node.create_plan(&fran, "Private family");
    let id = created.id.as_str();
    let etag = node
        .get(&format!("/v1/plans/{id}"), &fran)
        .header("etag")
        .map(str::to_string)
        .expect("an ETag");

    for outsider in [FACILITATOR_2, CAREGIVER] {
        let token = node.login(outsider);
        let get = |plan: &str| node.get(&format!("/v1/plans/{plan}"), &token);
        assert_same_not_found(&get(id), id, &get(NO_SUCH_ID), NO_SUCH_ID);
        let history = |plan: &str| node.get(&format!("/v1/plans/{plan}/history"), &token);
        assert_same_not_found(&history(id), id, &history(NO_SUCH_ID), NO_SUCH_ID);
        let edit = |plan: &str| {
            node.post_ops(
                &token,
                plan,
                None,
                json!([{ "op": "replace", "path": "/vision", "value": "mine now" }]),
            )
        };
        assert_same_not_found(&edit(id), id, &edit(NO_SUCH_ID), NO_SUCH_ID);
        // Knowing the ETag does not help: no 304 for outsiders.
        let conditional = node.send(
            node.request(Method::GET, &format!("/v1/plans/{id}"))
                .bearer_auth(&token)
                .header("If-None-Match", etag.as_str()),
        );
        conditional.assert_problem(404, "not-found");
        assert!(
            node.list_all_plans(&token).iter().all(|p| p.id != id),
            "{outsider} must not see the plan in their list"
        );
    }
    assert!(node.read_plan(&fran, id).plan.get("vision").is_none());

    // On the roster (by username), Carla sees the plan, with her team role.
    let carla = node.login(CAREGIVER);
    let member = add_member(&node, &fran, id, "Carla", "caregiver", Some(CAREGIVER));
    let listed = node.list_all_plans(&carla);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].role, Role::Caregiver);
    node.read_plan(&carla, id);
    // A member without a user link gives no one access.
    add_member(&node, &fran, id, "Cody", "caregiver", None);
    let cody = node.login(CAREGIVER_2);
    node.get(&format!("/v1/plans/{id}"), &cody)
        .assert_problem(404, "not-found");

    // Once she has left the team, she no longer sees it.
    node.apply_ops(
        &fran,
        id,
        json!([{ "op": "replace", "path": format!("/team/{member}/status"), "value": "left" }]),
    );
    node.get(&format!("/v1/plans/{id}"), &carla)
        .assert_problem(404, "not-found");
    assert!(node.list_all_plans(&carla).is_empty());
}

fn supervisors_see_every_plan_of_the_node(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let felix = node.login(FACILITATOR_2);
    let sam = node.login(SUPERVISOR);
    let frans = node.create_plan(&fran, "Fran's family");
    let felixs = node.create_plan(&felix, "Felix's family");
    let sams = node.create_plan(&sam, "Sam's family");

    let all = node.list_all_plans(&sam);
    let mut ids: Vec<_> = all.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![frans.id.as_str(), felixs.id.as_str(), sams.id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(all.iter().all(|p| p.role == Role::Supervisor), "{all:?}");
    // And may read and edit each of them.
    for plan in [&frans, &felixs, &sams] {
        node.read_plan(&sam, &plan.id);
        node.apply_ops(
            &sam,
            &plan.id,
            json!([{ "op": "replace", "path": "/vision", "value": "Reviewed" }]),
        );
    }
    // Facilitators only see their own.
    let fran_sees: Vec<_> = node
        .list_all_plans(&fran)
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(fran_sees, std::slice::from_ref(&frans.id));
    node.get(&format!("/v1/plans/{}", sams.id), &fran)
        .assert_problem(404, "not-found");
}

fn a_caregiver_editing_the_roster_is_refused_and_nothing_changes(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let created = node.create_plan(&fran, "Roster family");
    let id = created.id.as_str();
    let carla_member = add_member(&node, &fran, id, "Carla", "caregiver", Some(CAREGIVER));
    let provider = add_member(&node, &fran, id, "Dr. Bo", "provider", None);
    add_member(&node, &fran, id, "Yuri", "youth", Some(YOUTH));
    add_member(
        &node,
        &fran,
        id,
        "Nell",
        "natural_support",
        Some(NATURAL_SUPPORT),
    );
    let before = node.read_plan(&fran, id);
    let carla = node.login(CAREGIVER);

    // A write she may do, then one she may not: the whole request is refused.
    let refused = node.post_ops(
        &carla,
        id,
        None,
        json!([
            { "op": "replace", "path": "/vision", "value": "Carla's vision" },
            { "op": "add", "path": "/team", "value": { "name": "Eve", "role": "youth" } },
        ]),
    );
    refused.assert_problem(403, "forbidden");
    assert_op_index(&refused, 1);
    for path in [
        format!("/team/{provider}/role"),
        format!("/team/{carla_member}/role"),
        format!("/team/{carla_member}/user"),
    ] {
        node.post_ops(
            &carla,
            id,
            None,
            json!([{ "op": "replace", "path": path, "value": "facilitator" }]),
        )
        .assert_problem(403, "forbidden");
    }
    node.post_ops(
        &carla,
        id,
        None,
        json!([{ "op": "replace", "path": format!("/team/{provider}/status"), "value": "left" }]),
    )
    .assert_problem(403, "forbidden");
    for user in [YOUTH, NATURAL_SUPPORT] {
        let token = node.login(user);
        node.post_ops(
            &token,
            id,
            None,
            json!([{ "op": "add", "path": "/team", "value": { "name": "Eve", "role": "youth" } }]),
        )
        .assert_problem(403, "forbidden");
    }

    let after = node.read_plan(&fran, id);
    assert_eq!(
        after.version, before.version,
        "refused requests change nothing"
    );
    assert_eq!(after.plan, before.plan);
    assert_eq!(items(&after.plan, "team").len(), 5);

    // What her role allows still works.
    node.apply_ops(
        &carla,
        id,
        json!([{ "op": "replace", "path": "/vision", "value": "Carla's vision" }]),
    );
    assert_eq!(node.read_plan(&fran, id).plan["vision"], "Carla's vision");
}
