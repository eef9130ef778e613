//! Plan schema versions on a real node: `GET /v1/schema` and the identity
//! advertise them; v2's fields are written by ops and by a phone's sync;
//! a phone on a later version syncs fields this node does not know, which
//! it keeps, never shows to a role that sees less, never reports.

use crate::add_member;
use reqwest::Method;
use serde_json::json;
use wrapsync_shared::automerge::transaction::Transactable;
use wrapsync_shared::automerge::{hydrate, ObjType, ReadDoc, ROOT};
use wrapsync_shared::indicators::{AgeBand, Indicator};
use wrapsync_shared::plan::render;
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, NATURAL_SUPPORT};
use wrapsync_tests::{Backend, Device, TestNode};

on_both_backends!(
    v2_fields_are_written_by_ops_and_by_sync,
    a_later_versions_fields_are_kept_unseen_and_unreported,
);

#[test]
fn the_node_advertises_its_schema_versions() {
    let node = TestNode::spawn(Backend::Sqlite);
    let reply = node.get_anon("/v1/schema");
    reply.assert_status(200);
    assert_eq!(reply.json["current"], 2);
    let versions = reply.json["versions"].as_array().expect("versions");
    assert_eq!(
        versions
            .iter()
            .map(|v| v["version"].clone())
            .collect::<Vec<_>>(),
        vec![json!(1), json!(2)]
    );
    for v in versions {
        let schema = &v["json_schema"];
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            v["version"]
        );
        assert_eq!(schema["properties"]["title"]["x-identifying"], true);
    }
    let youth = |i: usize| versions[i]["json_schema"]["properties"]["youth"]["properties"].clone();
    assert!(youth(0).get("preferred_language").is_none());
    assert_eq!(youth(1)["county"]["pattern"], "^[0-9]{5}$");
    // Made once, cacheable, and a validator answers 304.
    let etag = reply.header("etag").expect("an ETag").to_string();
    assert!(reply
        .header("cache-control")
        .is_some_and(|c| c.contains("max-age")));
    let again = node.send(
        node.request(Method::GET, "/v1/schema")
            .header("If-None-Match", &etag),
    );
    again.assert_status(304);
    assert!(again.body.is_empty());

    let identity = node.get_anon("/federation/v1/identity");
    identity.assert_status(200);
    assert_eq!(identity.json["plan_schema_versions"], json!([1, 2]));
}

fn v2_fields_are_written_by_ops_and_by_sync(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Nguyen family").id;
    let member = add_member(&node, &fran, &plan, "Lan", "caregiver", Some(CAREGIVER));
    let added = node.apply_ops(
        &fran,
        &plan,
        json!([
            {"op":"replace","path":"/youth/preferred_language","value":"vi"},
            {"op":"replace","path":"/youth/county","value":"08001"},
            {"op":"replace","path":"/youth/race_ethnicity","value":["asian"]},
            {"op":"replace","path":"/youth/gender","value":["prefer_not_to_say"]},
            {"op":"replace","path":format!("/team/{member}/language"),"value":"vi"},
            {"op":"add","path":"/strategies","value":{"description":"Therapy in Vietnamese","kind":"formal",
                "agency":"mental_health","funding_stream":"medicaid",
                "service":{"availability":"waitlisted","since":"2026-03-01"}}}
        ]),
    );
    let plan_json = &added.plan;
    assert_eq!(plan_json["schema_version"], 2);
    assert_eq!(plan_json["youth"]["preferred_language"], "vi");
    assert_eq!(plan_json["youth"]["race_ethnicity"], json!(["asian"]));
    let strategy = plan_json["strategies"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        plan_json["strategies"][0]["service"]["availability"],
        "waitlisted"
    );
    // A value v2 does not allow is refused, naming the path.
    node.post(
        &format!("/v1/plans/{plan}/ops"),
        &fran,
        &json!({"ops":[{"op":"replace","path":"/youth/county","value":"Denver"}]}),
    )
    .assert_problem(422, "schema-violation");

    // A facilitator's phone on v2 writes v2 fields offline, and syncs.
    let mut phone = Device::new("frans-phone");
    phone.sync(&node, &fran, &plan);
    phone.edit(
        Role::Facilitator,
        None,
        json!([
            {"op":"replace","path":format!("/strategies/{strategy}/service/availability"),"value":"available"},
            {"op":"replace","path":"/youth/race_ethnicity","value":["asian","white"]}
        ]),
    );
    phone.sync(&node, &fran, &plan);
    let served = node.read_plan(&fran, &plan).plan;
    assert_eq!(
        served["strategies"][0]["service"]["availability"],
        "available"
    );
    assert_eq!(served["youth"]["race_ethnicity"], json!(["asian", "white"]));
    assert_eq!(render(&phone.doc), served);
    // Who writes them is the role table's: a caregiver's phone may not.
    let carla = node.login(CAREGIVER);
    let mut carlas = Device::new("carlas-phone");
    carlas.sync(&node, &carla, &plan);
    let mut tx = carlas.doc.transaction();
    let youth = match tx.get(ROOT, "youth") {
        Ok(Some((_, id))) => id,
        other => panic!("{other:?}"),
    };
    tx.put(&youth, "county", "08005").expect("put");
    tx.commit();
    carlas
        .push(&node, &carla, &plan)
        .assert_problem(422, "change-forbidden");
    assert_eq!(
        node.read_plan(&fran, &plan).plan["youth"]["county"],
        "08001"
    );
}

fn a_later_versions_fields_are_kept_unseen_and_unreported(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node
        .post(
            "/v1/plans",
            &fran,
            &json!({"title": "Okonkwo family", "enrolled_on": "2026-11-04"}),
        )
        .typed::<wrapsync_shared::api::PlanDocument>(201)
        .id;
    add_member(
        &node,
        &fran,
        &plan,
        "Nana",
        "natural_support",
        Some(NATURAL_SUPPORT),
    );
    node.apply_ops(
        &fran,
        &plan,
        json!([
            {"op":"replace","path":"/youth/birth_date","value":"2013-07-19"},
            {"op":"add","path":"/status","value":{"as_of":"2026-11-04","living":"home"}}
        ]),
    );

    // A phone on a later version (3): a new section, a new field on a
    // status snapshot, and a new value of a known vocabulary.
    let mut phone = Device::new("future-phone");
    phone.sync(&node, &fran, &plan);
    let mut tx = phone.doc.transaction();
    tx.put(ROOT, "schema_version", 3).expect("version");
    let section = tx
        .put_object(ROOT, "housing_history", ObjType::Map)
        .expect("section");
    tx.put(&section, "last_address", "4417 Larkspur Hollow Rd")
        .expect("put");
    let snapshots = match tx.get(ROOT, "status") {
        Ok(Some((_, id))) => id,
        other => panic!("{other:?}"),
    };
    let snapshot = tx.keys(&snapshots).next().expect("a snapshot");
    let snapshot = match tx.get(&snapshots, snapshot.as_str()) {
        Ok(Some((_, id))) => id,
        other => panic!("{other:?}"),
    };
    tx.put(&snapshot, "living", "couch_surfing").expect("put");
    tx.put(&snapshot, "shelter_nights_30d", 4).expect("put");
    tx.commit();
    phone.sync(&node, &fran, &plan);

    // Kept: another phone gets them back from the node, as they were.
    let mut other = Device::new("second-phone");
    other.sync(&node, &fran, &plan);
    let hydrate::Value::Map(root) = other.doc.hydrate(None) else {
        panic!("root")
    };
    assert_eq!(
        root.get("schema_version"),
        Some(&hydrate::Value::from(3i64))
    );
    let kept = match root.get("housing_history") {
        Some(hydrate::Value::Map(m)) => m.get("last_address").cloned(),
        _ => None,
    };
    assert_eq!(kept, Some(hydrate::Value::from("4417 Larkspur Hollow Rd")));

    // Never shown: not to the facilitator (the node does not know it), not
    // to a natural support; the unknown value shows as its fallback.
    let served = node.read_plan(&fran, &plan).plan;
    assert_eq!(served["schema_version"], 3);
    assert!(served.get("housing_history").is_none());
    assert_eq!(served["status"][0]["living"], "other");
    assert!(served["status"][0].get("shelter_nights_30d").is_none());
    let nana = node.login(NATURAL_SUPPORT);
    let seen = node.get(&format!("/v1/plans/{plan}"), &nana);
    seen.assert_status(200);
    assert!(!seen.text().contains("Larkspur"), "{}", seen.text());
    assert!(!seen.text().contains("housing_history"));

    // Still edited by ops at its own version; known rules still hold.
    let edited = node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/vision","value":"Stable housing"}]),
    );
    assert_eq!(edited.plan["schema_version"], 3);

    // Never reported: the report reads what the node shows.
    let printed = node
        .cli(&["report", "--period", "2026-11"])
        .unwrap_or_else(|e| panic!("{e}"));
    let report = crate::report::printed_report(&printed);
    let cell = |indicator: Indicator| {
        report
            .cells
            .iter()
            .find(|c| c.indicator == indicator && c.age_band == AgeBand::Age12To17)
            .map(|c| (c.value, c.base))
    };
    assert_eq!(cell(Indicator::YouthServed), Some((1, None)));
    assert_eq!(cell(Indicator::OutOfHomePlacement), Some((0, Some(1))));
    for secret in ["Larkspur", "couch_surfing", "shelter", "housing_history"] {
        assert!(!printed.contains(secret), "{secret} reported");
    }
}
