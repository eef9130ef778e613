//! Finding 3: a natural support (the lowest role that writes) grew a plan
//! without bound, 200 strengths of 4,000 characters a request, every answer
//! carrying the whole plan back, until a peer it was shared with refused
//! it with `413` every 2 s and was marked unreachable. Here: the plan stops
//! at the node's quota (`413 plan-quota`) and stays readable and editable
//! by edits that do not grow it; rewriting it in place runs out of the
//! writer's byte budget (`429`); a large plan's ops answer is minimal; a
//! device's sync past the quota is refused whole; a peer refusing a plan as
//! too large does not make the peer look down.

use reqwest::Method;
use serde_json::{json, Value};
use wrapsync_shared::plan::render;
use wrapsync_shared::roles::Role;
use wrapsync_tests::users::{CAREGIVER, CAREGIVER_2, FACILITATOR, NATURAL_SUPPORT, SUPERVISOR};
use wrapsync_tests::{deadline, wait_until, Backend, Device, Reply, TestNode};

on_both_backends!(
    a_natural_support_fills_a_plan_to_the_quota_and_no_further,
    a_device_sync_past_the_quota_is_refused_whole,
    a_plan_over_a_lowered_quota_stays_usable,
);

/// The quota the tests set: small, so a few requests reach it.
const QUOTA: usize = 64 * 1024;

/// 4,000 characters (the schema's most for a statement), different for
/// each `seed`, and not compressible to nothing.
fn long_text(seed: usize) -> String {
    let mut state = seed as u64 * 2_654_435_761 + 1;
    (0..4000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + ((state >> 33) % 26) as u8)
        })
        .collect()
}

/// `POST /v1/plans/{id}/ops` with extra `headers`.
fn post_ops(node: &TestNode, token: &str, plan: &str, ops: Value, prefer: Option<&str>) -> Reply {
    let mut request = node
        .request(Method::POST, &format!("/v1/plans/{plan}/ops"))
        .bearer_auth(token)
        .json(&json!({ "ops": ops }));
    if let Some(prefer) = prefer {
        request = request.header("Prefer", prefer);
    }
    node.send(request)
}

/// Bytes of the plan's JSON as `GET` serves it (what the quota counts).
fn plan_bytes(node: &TestNode, token: &str, plan: &str) -> usize {
    let reply = node.get(&format!("/v1/plans/{plan}"), token);
    reply.assert_status(200);
    reply.text().len()
}

fn a_natural_support_fills_a_plan_to_the_quota_and_no_further(backend: Backend) {
    let mut extra = toml::Table::new();
    extra.insert("plan_quota_bytes".into(), (QUOTA as i64).into());
    extra.insert("ops_answer_plan_bytes".into(), 16_384.into());
    // Enough for the plan to reach the quota, not for rewriting it many
    // times over; refilled too slowly to matter during the test.
    let mut budget = toml::Table::new();
    budget.insert("per_second".into(), 1.0.into());
    budget.insert("burst".into(), 160_000.0.into());
    extra.insert("write_bytes_per_user".into(), budget.into());
    let node = TestNode::spawn_with(backend, extra);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Quota family").id;
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"add","path":"/team","value":{"name":"Nell","role":"natural_support","user":NATURAL_SUPPORT}}]),
    );
    let nell = node.login(NATURAL_SUPPORT);

    // A small plan: the whole plan comes back, as it always has, unless
    // the client asks for the minimal answer.
    let strength = |seed: usize| json!([{"op":"add","path":"/strengths","value":{"statement":long_text(seed),"about":"family","status":"active"}}]);
    let full = post_ops(&node, &nell, &plan, strength(0), None);
    full.assert_status(200);
    assert!(full.json["plan"]["strengths"].is_array(), "{}", full.text());
    assert!(full.json.get("changed").is_none());
    assert!(full.header("preference-applied").is_none());
    let minimal = post_ops(&node, &nell, &plan, strength(1), Some("return=minimal"));
    minimal.assert_status(200);
    let id = minimal.json["results"][0]["id"]
        .as_str()
        .expect("the new id");
    assert!(minimal.json.get("plan").is_none(), "{}", minimal.text());
    assert_eq!(minimal.json["changed"], json!([format!("/strengths/{id}")]));
    assert_eq!(minimal.header("preference-applied"), Some("return=minimal"));
    assert_eq!(
        minimal.header("etag").map(str::to_string),
        node.get(&format!("/v1/plans/{plan}"), &nell)
            .header("etag")
            .map(str::to_string)
    );

    // Strength after strength: past `ops_answer_plan_bytes` the answers are
    // minimal unasked, and the plan stops at the quota.
    let mut refused = None;
    for seed in 2..40 {
        let before = node.read_plan(&fran, &plan).version;
        let reply = post_ops(&node, &nell, &plan, strength(seed), None);
        if reply.status == 413 {
            refused = Some((reply, before));
            break;
        }
        reply.assert_status(200);
        if plan_bytes(&node, &fran, &plan) > 16_384 {
            assert!(reply.json.get("plan").is_none(), "a large plan came back");
            assert!(reply.text().len() < 500, "{}", reply.text());
            assert_eq!(
                reply.json["version"],
                json!(node.read_plan(&fran, &plan).version)
            );
        }
    }
    let (reply, before) = refused.expect("the plan grew past the quota");
    reply.assert_problem(413, "plan-quota");
    // Refused whole: the plan is as it was, under the quota, and readable.
    assert_eq!(node.read_plan(&fran, &plan).version, before);
    let size = plan_bytes(&node, &fran, &plan);
    assert!(size <= QUOTA && size > QUOTA - 10_000, "{size} bytes");
    node.get(&format!("/v1/plans/{plan}"), &nell)
        .assert_status(200);
    // Edits that do not grow the plan still go (closing a strength), and
    // so does a small addition that fits under the quota.
    let strengths = node.read_plan(&fran, &plan).plan["strengths"].clone();
    let first = strengths[0]["id"].as_str().expect("an id").to_string();
    let second = strengths[1]["id"].as_str().expect("an id").to_string();
    post_ops(
        &node,
        &nell,
        &plan,
        json!([{"op":"replace","path":format!("/strengths/{first}/status"),"value":"closed"}]),
        None,
    )
    .assert_status(200);
    post_ops(
        &node,
        &nell,
        &plan,
        json!([{"op":"add","path":"/strengths","value":{"statement":"Short","about":"family"}}]),
        None,
    )
    .assert_status(200);

    // Rewriting a strength in place keeps the size but not the history
    // small: the byte budget stops it.
    let mut limited = None;
    for seed in 100..200 {
        let reply = post_ops(
            &node,
            &nell,
            &plan,
            json!([{"op":"replace","path":format!("/strengths/{second}/statement"),"value":long_text(seed)}]),
            None,
        );
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        reply.assert_status(200);
    }
    let limited = limited.expect("the byte budget stopped the rewrites");
    limited.assert_problem(429, "rate-limited");
    assert!(limited
        .header("retry-after")
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| s > 0));
    // Only Nell is out of budget; the plan stays readable and the
    // facilitator edits it (shrinking it, as with a runaway strength).
    node.get(&format!("/v1/plans/{plan}"), &nell)
        .assert_status(200);
    post_ops(
        &node,
        &fran,
        &plan,
        json!([{"op":"replace","path":format!("/strengths/{second}/statement"),"value":"Grandma visits"}]),
        None,
    )
    .assert_status(200);
    assert!(plan_bytes(&node, &fran, &plan) < size);
}

/// A plan already over the quota (the operator lowered it) takes no growth,
/// neither an `add` nor a longer text, and stays readable, syncable and
/// editable by edits that keep or shrink it.
fn a_plan_over_a_lowered_quota_stays_usable(backend: Backend) {
    let mut extra = toml::Table::new();
    extra.insert("plan_quota_bytes".into(), (QUOTA as i64).into());
    let mut node = TestNode::spawn_with(backend, extra);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Lowered quota family").id;
    let strengths: Vec<Value> = (0..8)
        .map(|seed| json!({"op":"add","path":"/strengths","value":{"statement":long_text(seed),"about":"family"}}))
        .collect();
    let added = node.apply_ops(&fran, &plan, Value::Array(strengths));
    let first = added.results[0].id.clone().expect("an id");
    node.add_caregiver(&fran, &plan);
    let config = std::fs::read_to_string(node.config_path()).expect("the config");
    let lowered = config.replace(
        &format!("plan_quota_bytes = {QUOTA}"),
        "plan_quota_bytes = 16384",
    );
    assert_ne!(config, lowered, "{config}");
    std::fs::write(node.config_path(), lowered).expect("the config");
    node.restart();

    let fran = node.login(FACILITATOR);
    let before = node.read_plan(&fran, &plan);
    assert!(plan_bytes(&node, &fran, &plan) > 16_384);
    node.post_ops(
        &fran,
        &plan,
        None,
        json!([{"op":"add","path":"/strengths","value":{"statement":"Short","about":"family"}}]),
    )
    .assert_problem(413, "plan-quota");
    node.post_ops(
        &fran,
        &plan,
        None,
        json!([{"op":"replace","path":"/vision","value":"A longer vision than none"}]),
    )
    .assert_problem(413, "plan-quota");
    assert_eq!(node.read_plan(&fran, &plan).version, before.version);
    // Keeping or shrinking it goes, on the plan as stored.
    node.post_ops(
        &fran,
        &plan,
        Some(&before.version),
        json!([
            {"op":"replace","path":format!("/strengths/{first}/status"),"value":"closed"},
            {"op":"replace","path":format!("/strengths/{first}/statement"),"value":"Short now"}
        ]),
    )
    .assert_status(200);
    let after = node.read_plan(&fran, &plan);
    assert_ne!(after.version, before.version);
    assert!(after
        .plan
        .get("vision")
        .is_none_or(|v| v != "A longer vision than none"));
    // And a phone still gets all of it.
    let carla = node.login(CAREGIVER);
    let mut phone = Device::new("carlas-phone");
    phone.push(&node, &carla, &plan).assert_status(200);
    assert_eq!(render(&phone.doc), after.plan);
}

fn a_device_sync_past_the_quota_is_refused_whole(backend: Backend) {
    let mut extra = toml::Table::new();
    extra.insert("plan_quota_bytes".into(), (QUOTA as i64).into());
    let node = TestNode::spawn_with(backend, extra);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Offline family").id;
    let carla_member = node.add_caregiver(&fran, &plan);
    let carla = node.login(CAREGIVER);

    // Offline, the phone adds strengths worth more than the quota.
    let mut phone = Device::new("carlas-phone");
    phone.push(&node, &carla, &plan).assert_status(200);
    let before = node.read_plan(&fran, &plan);
    let strengths: Vec<Value> = (0..20)
        .map(|seed| json!({"op":"add","path":"/strengths","value":{"statement":long_text(seed),"about":"family"}}))
        .collect();
    phone.edit(
        Role::Caregiver,
        Some(&carla_member),
        Value::Array(strengths),
    );
    phone
        .push(&node, &carla, &plan)
        .assert_problem(413, "plan-quota");
    // Nothing of it was kept.
    let after = node.read_plan(&fran, &plan);
    assert_eq!(after.version, before.version);
    assert_eq!(after.plan, before.plan);

    // The plan still syncs: another phone gets it, and adds what fits.
    let mut tablet = Device::new("carlas-tablet");
    tablet.push(&node, &carla, &plan).assert_status(200);
    assert_eq!(render(&tablet.doc), before.plan);
    tablet.edit(
        Role::Caregiver,
        Some(&carla_member),
        json!([{"op":"add","path":"/strengths","value":{"statement":"We cook together","about":"family"}}]),
    );
    tablet.push(&node, &carla, &plan).assert_status(200);
    let now = node.read_plan(&fran, &plan);
    assert_eq!(now.plan["strengths"][0]["statement"], "We cook together");
    assert_eq!(render(&tablet.doc), now.plan);
}

/// A plan the peer refuses as too large (its quota is smaller than the
/// plan) is parked: the other shared plans keep flowing and the peer is
/// never marked unreachable, where each push used to fail the whole pass.
#[test]
fn a_plan_the_peer_refuses_as_too_large_does_not_make_it_unreachable() {
    let county = |id: &str, quota: Option<i64>| {
        let mut extra = toml::Table::new();
        extra.insert("node_id".into(), id.into());
        extra.insert("federation_interval_secs".into(), 1.into());
        if let Some(quota) = quota {
            extra.insert("plan_quota_bytes".into(), quota.into());
        }
        TestNode::spawn_with(Backend::Sqlite, extra)
    };
    let (a, b) = (county("county-a", None), county("county-b", Some(16_384)));
    a.trust(&b, b.url());
    b.trust(&a, a.url());
    let fran = a.login(FACILITATOR);
    let cody_at_b = format!("{CAREGIVER_2}@county-b");
    let new_plan = |title: &str| {
        let plan = a.create_plan(&fran, title).id;
        a.apply_ops(
            &fran,
            &plan,
            json!([{"op":"add","path":"/team","value":{"name":"Cody","role":"caregiver","user":cody_at_b}}]),
        );
        plan
    };
    let large = new_plan("A large plan");
    let strengths: Vec<Value> = (0..8)
        .map(|seed| json!({"op":"add","path":"/strengths","value":{"statement":long_text(seed),"about":"family"}}))
        .collect();
    a.apply_ops(&fran, &large, Value::Array(strengths));
    let small = new_plan("A small plan");
    for plan in [&large, &small] {
        a.post(
            &format!("/v1/plans/{plan}/shares"),
            &fran,
            &json!({"node":"county-b"}),
        )
        .assert_status(201);
    }
    let cody = b.login(CAREGIVER_2);
    let arrived = |vision: Option<&str>| {
        wait_until(deadline(30), || {
            let reply = b.get(&format!("/v1/plans/{small}"), &cody);
            reply.status == 200 && vision.is_none_or(|v| reply.json["plan"]["vision"] == v)
        })
    };
    assert!(arrived(None), "the small plan never arrived\n{}", a.log());

    // Pass after pass (one a second), the peer stays reachable: watch
    // three passes complete, never seeing it marked down.
    let sam = a.login(SUPERVISOR);
    let mut passes = Vec::new();
    let watched = wait_until(deadline(60), || {
        let status = a.get("/v1/admin/peers", &sam).json["peers"][0]["status"].clone();
        assert_ne!(
            status["reachable"],
            json!(false),
            "the peer was marked unreachable: {status}\n{}",
            a.log()
        );
        let at = status["last_success_at"].as_i64().unwrap_or_default();
        if at > 0 && !passes.contains(&at) {
            passes.push(at);
        }
        passes.len() >= 4
    });
    assert!(watched, "fewer than four passes in a minute\n{}", a.log());
    // Changes to the shared plans keep flowing, and the large one stays
    // whole at home.
    a.apply_ops(
        &fran,
        &small,
        json!([{"op":"replace","path":"/vision","value":"Still in sync"}]),
    );
    assert!(
        arrived(Some("Still in sync")),
        "later changes stopped\n{}",
        a.log()
    );
    b.get(&format!("/v1/plans/{large}"), &cody)
        .assert_status(404);
    let home = a.read_plan(&fran, &large);
    assert_eq!(home.plan["strengths"].as_array().map(Vec::len), Some(8));
}
