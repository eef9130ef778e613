//! Creating, reading and editing plans: roles at creation, ETags, ops,
//! merging edits from a stale version, and the history of who did what.

use crate::{add_member, item, items};
use reqwest::Method;
use serde_json::json;
use wrapsync_shared::api::{OpsResponse, PlanDocument};
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{
    CAREGIVER, FACILITATOR, FACILITATOR_2, FAMILY_ADVOCATE, NATURAL_SUPPORT, PROVIDER, SUPERVISOR,
    YOUTH,
};
use wrapsync_tests::{Backend, TestNode};

on_both_backends!(
    facilitators_create_plans_and_caregivers_may_not,
    reading_a_plan_answers_an_etag_and_304_while_unchanged,
    ops_replace_add_and_address_items_by_id,
    edits_from_the_same_stale_version_are_merged,
    history_lists_who_changed_what,
);

fn facilitators_create_plans_and_caregivers_may_not(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let reply = node.post(
        "/v1/plans",
        &fran,
        &json!({ "title": "Rivera family", "enrolled_on": "2026-01-15" }),
    );
    let created: PlanDocument = reply.typed(201);
    assert!(!created.id.is_empty());
    assert!(!created.version.is_empty(), "a new plan has heads");
    assert_eq!(
        created.plan["schema_version"], 2,
        "new plans are at the current schema version"
    );
    assert_eq!(created.plan["title"], "Rivera family");
    assert_eq!(created.plan["enrollment"]["enrolled_on"], "2026-01-15");
    // The facilitator who creates a plan is put on its roster.
    let team = items(&created.plan, "team");
    assert!(
        team.iter()
            .any(|m| m["user"] == FACILITATOR && m["role"] == "facilitator"),
        "creator on the roster: {team:?}"
    );
    let mine = node.list_all_plans(&fran);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, created.id);
    assert_eq!(mine[0].title, "Rivera family");
    assert_eq!(mine[0].role, Role::Facilitator);
    assert_eq!(node.read_plan(&fran, &created.id).plan, created.plan);

    for user in [CAREGIVER, YOUTH, PROVIDER, NATURAL_SUPPORT, FAMILY_ADVOCATE] {
        let token = node.login(user);
        node.post("/v1/plans", &token, &json!({ "title": "Not allowed" }))
            .assert_problem(403, "forbidden");
    }

    let sam = node.login(SUPERVISOR);
    let by_supervisor = node.create_plan(&sam, "Okafor family");
    assert_eq!(by_supervisor.plan["title"], "Okafor family");
    let felix = node.login(FACILITATOR_2);
    node.create_plan(&felix, "Chen family");
    // The refused creations left nothing behind.
    let all = node.list_all_plans(&sam);
    let mut titles: Vec<_> = all.iter().map(|p| p.title.as_str()).collect();
    titles.sort_unstable();
    assert_eq!(titles, ["Chen family", "Okafor family", "Rivera family"]);
}

fn reading_a_plan_answers_an_etag_and_304_while_unchanged(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let created = node.create_plan(&fran, "Etag family");
    let path = format!("/v1/plans/{}", created.id);
    let read_with = |etag: &str| {
        node.send(
            node.request(Method::GET, &path)
                .bearer_auth(&fran)
                .header("If-None-Match", etag),
        )
    };

    let first = node.get(&path, &fran);
    let doc: PlanDocument = first.typed(200);
    assert_eq!(doc.id, created.id);
    assert_eq!(doc.version, created.version);
    assert_eq!(doc.plan, created.plan);
    let etag = first.header("etag").expect("an ETag header").to_string();

    let unchanged = read_with(&etag);
    unchanged.assert_status(304);
    assert!(
        unchanged.body.is_empty(),
        "304 with a body: {}",
        unchanged.text()
    );
    read_with("\"some-other-etag\"").assert_status(200);

    node.apply_ops(
        &fran,
        &created.id,
        json!([{ "op": "replace", "path": "/vision", "value": "Home together" }]),
    );
    let changed = read_with(&etag);
    let doc: PlanDocument = changed.typed(200);
    assert_eq!(doc.plan["vision"], "Home together");
    let new_etag = changed.header("etag").expect("an ETag header").to_string();
    assert_ne!(new_etag, etag, "the ETag follows the version");
    read_with(&new_etag).assert_status(304);
}

fn ops_replace_add_and_address_items_by_id(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let created = node.create_plan(&fran, "Ops family");

    let first = node.apply_ops(
        &fran,
        &created.id,
        json!([
            { "op": "replace", "path": "/vision", "value": "Everyone sleeps at home" },
            { "op": "replace", "path": "/enrollment/phase", "value": "planning" },
            { "op": "add", "path": "/needs",
              "value": { "domain": "school", "statement": "Get to school every day", "priority": 1 } },
            { "op": "add", "path": "/strengths",
              "value": { "statement": "Loves drawing", "about": "youth" } },
        ]),
    );
    assert_eq!(first.id, created.id);
    assert_eq!(first.results.len(), 4, "one result per op");
    assert_eq!(first.results[0].id, None);
    assert_eq!(first.results[1].id, None);
    let need = first.results[2]
        .id
        .clone()
        .expect("add answers the need's id");
    let strength = first.results[3]
        .id
        .clone()
        .expect("add answers the strength's id");
    assert_ne!(need, strength);
    assert_ne!(first.version, created.version);
    assert_eq!(first.plan["vision"], "Everyone sleeps at home");
    assert_eq!(first.plan["enrollment"]["phase"], "planning");
    let added = item(&first.plan, "needs", &need);
    assert_eq!(added["domain"], "school");
    assert_eq!(added["priority"], 1);
    assert_eq!(
        added["status"], "active",
        "status defaults to the first value"
    );
    assert_eq!(item(&first.plan, "strengths", &strength)["about"], "youth");

    // Items are addressed by id, and `test` checks a precondition.
    let second = node.apply_ops(
        &fran,
        &created.id,
        json!([
            { "op": "test", "path": format!("/needs/{need}/domain"), "value": "school" },
            { "op": "replace", "path": format!("/needs/{need}/status"), "value": "met" },
            { "op": "add", "path": "/needs",
              "value": { "domain": "home", "statement": "Calm evenings" } },
            { "op": "replace", "path": "/mission", "value": null },
        ]),
    );
    assert_eq!(second.results.len(), 4);
    let other_need = second.results[2].id.clone().expect("a second need id");
    assert_eq!(item(&second.plan, "needs", &need)["status"], "met");
    assert_eq!(
        item(&second.plan, "needs", &need)["statement"],
        "Get to school every day"
    );
    assert_eq!(item(&second.plan, "needs", &other_need)["status"], "active");
    assert_eq!(items(&second.plan, "needs").len(), 2);
    assert!(
        second.plan.get("mission").is_none(),
        "absent fields are omitted"
    );

    let read = node.read_plan(&fran, &created.id);
    assert_eq!(read.version, second.version);
    assert_eq!(read.plan, second.plan);
    let listed = node.list_all_plans(&fran);
    assert_eq!(listed[0].phase, "planning");
}

fn edits_from_the_same_stale_version_are_merged(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let created = node.create_plan(&fran, "Merge family");
    add_member(
        &node,
        &fran,
        &created.id,
        "Carla",
        "caregiver",
        Some(CAREGIVER),
    );
    let base = node.read_plan(&fran, &created.id).version;

    node.post_ops(
        &fran,
        &created.id,
        Some(&base),
        json!([{ "op": "replace", "path": "/mission", "value": "Keep Jay home and in school" }]),
    )
    .assert_status(200);
    // Carla never saw Fran's edit: she edits from the same base.
    let merged: OpsResponse = node
        .post_ops(
            &carla,
            &created.id,
            Some(&base),
            json!([
                { "op": "replace", "path": "/vision", "value": "We are together and calm" },
                { "op": "add", "path": "/strengths", "value": { "statement": "Grandma helps on weekends" } },
            ]),
        )
        .typed(200);
    let read = node.read_plan(&fran, &created.id);
    assert_eq!(read.plan["mission"], "Keep Jay home and in school");
    assert_eq!(read.plan["vision"], "We are together and calm");
    assert_eq!(items(&read.plan, "strengths").len(), 1);
    assert_eq!(
        merged.version, read.version,
        "the answer is the merged version"
    );
    assert_eq!(merged.plan, read.plan);

    // Both add to the same collection from the same base: both items stay.
    let base = read.version;
    let a = node
        .post_ops(
            &fran,
            &created.id,
            Some(&base),
            json!([{ "op": "add", "path": "/strengths", "value": { "statement": "Jay is funny" } }]),
        )
        .typed::<OpsResponse>(200);
    let b = node
        .post_ops(
            &carla,
            &created.id,
            Some(&base),
            json!([{ "op": "add", "path": "/strengths", "value": { "statement": "Jay loves soccer" } }]),
        )
        .typed::<OpsResponse>(200);
    let a = a.results[0].id.clone().expect("an id");
    let b = b.results[0].id.clone().expect("an id");
    let read = node.read_plan(&carla, &created.id);
    assert_eq!(items(&read.plan, "strengths").len(), 3);
    assert_eq!(
        item(&read.plan, "strengths", &a)["statement"],
        "Jay is funny"
    );
    assert_eq!(
        item(&read.plan, "strengths", &b)["statement"],
        "Jay loves soccer"
    );
    assert_eq!(read.plan["mission"], "Keep Jay home and in school");

    // Editing from the merged version (several heads) works as usual.
    node.post_ops(
        &fran,
        &created.id,
        Some(&read.version),
        json!([{ "op": "replace", "path": "/enrollment/phase", "value": "planning" }]),
    )
    .assert_status(200);
    let read = node.read_plan(&fran, &created.id);
    assert_eq!(read.plan["enrollment"]["phase"], "planning");
    assert_eq!(items(&read.plan, "strengths").len(), 3);
}

fn history_lists_who_changed_what(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let created = node.create_plan(&fran, "History family");
    add_member(
        &node,
        &fran,
        &created.id,
        "Carla",
        "caregiver",
        Some(CAREGIVER),
    );
    let need = node.apply_ops(
        &fran,
        &created.id,
        json!([{ "op": "add", "path": "/needs", "value": { "domain": "health", "statement": "See a dentist" } }]),
    );
    let need = need.results[0].id.clone().expect("a need id");
    node.apply_ops(
        &carla,
        &created.id,
        json!([{ "op": "replace", "path": "/vision", "value": "Healthy and happy" }]),
    );
    let last = node.apply_ops(
        &fran,
        &created.id,
        json!([{ "op": "replace", "path": format!("/needs/{need}/status"), "value": "met" }]),
    );

    let history = node.history(&fran, &created.id);
    assert_eq!(history.id, created.id);
    let changes = &history.changes;
    assert!(
        changes.len() >= 5,
        "create, member, need, vision, status: {changes:?}"
    );
    assert_eq!(
        changes[0].user.as_deref(),
        Some(FACILITATOR),
        "oldest first: the creation"
    );
    let position = |user: &str, summary: &str| {
        changes
            .iter()
            .position(|c| {
                c.user.as_deref() == Some(user)
                    && c.summary.as_deref().is_some_and(|s| s.contains(summary))
            })
            .unwrap_or_else(|| panic!("no change by {user} with `{summary}` in {changes:#?}"))
    };
    let vision = position(CAREGIVER, "replace /vision");
    let status = position(FACILITATOR, "replace /needs/*/status");
    assert!(vision < status, "oldest first");
    assert_eq!(status, changes.len() - 1);
    assert!(
        changes
            .iter()
            .all(|c| c.summary.as_deref().is_none_or(|s| !s.contains(&need))),
        "summaries carry no ids: {changes:#?}"
    );
    assert!(
        changes.iter().all(|c| !c.actor.is_empty() && c.time > 0),
        "every change names its actor and time: {changes:#?}"
    );
    let mut hashes: Vec<_> = changes.iter().map(|c| c.hash.as_str()).collect();
    assert!(
        last.version.iter().any(|h| h == hashes[status]),
        "the newest change is a head of the current version"
    );
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), changes.len(), "hashes are unique");
    // Team members may read the history too.
    assert_eq!(
        node.history(&carla, &created.id).changes.len(),
        changes.len()
    );
}
