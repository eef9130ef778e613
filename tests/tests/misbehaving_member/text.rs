//! Text that becomes an action. A phone number is stored and shown in one
//! form, E.164, so what the app shows and what it dials are the same digits;
//! no text of a plan may hold a bidirectional control or an invisible
//! character, through ops, a device's sync or plan creation. On main
//! `(303) 555-0123` was kept as typed, and `Call \u{202E}3210-555-303`, a
//! zero-width space inside a number and a right-to-left override inside a
//! name were all stored and served.

use serde_json::json;
use wrapsync_shared::automerge::transaction::Transactable;
use wrapsync_shared::automerge::{ObjId, ReadDoc, Value, ROOT};
use wrapsync_tests::users::FACILITATOR;
use wrapsync_tests::{Backend, Device, TestNode};

on_both_backends!(
    phone_numbers_are_stored_and_shown_as_e164,
    direction_controls_and_invisible_characters_are_refused_through_ops,
    a_device_cannot_sync_unsafe_text_or_an_uncanonical_phone_number,
);

fn child(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> ObjId {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(_), id))) => id,
        other => panic!("no object at {key}: {other:?}"),
    }
}

/// The phone of the team member called `name`.
fn phone_of(plan: &serde_json::Value, name: &str) -> serde_json::Value {
    plan["team"]
        .as_array()
        .and_then(|team| team.iter().find(|m| m["name"] == json!(name)))
        .map(|m| m["phone"].clone())
        .unwrap_or_default()
}

/// Typed as people type them, stored and served as E.164; a number that is
/// not one dialable number is refused `422 invalid-phone` naming the path.
fn phone_numbers_are_stored_and_shown_as_e164(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Phone family").id;
    let added = node.apply_ops(
        &fran,
        &plan,
        json!([
            {"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","phone":"(303) 555-0123"}},
            {"op":"add","path":"/crisis_plan/contacts","value":{"name":"Mobile crisis","phone":"1.719.555.0142"}}
        ]),
    );
    let carla = added.results[0].id.clone().expect("an id");
    let shown = node.read_plan(&fran, &plan);
    assert_eq!(phone_of(&shown.plan, "Carla"), json!("+13035550123"));
    assert_eq!(
        shown.plan["crisis_plan"]["contacts"][0]["phone"],
        json!("+17195550142")
    );
    for typed in [
        "555-0123",                   // no area code: which one would be dialled?
        "1-800-FLOWERS",              // letters
        "303-555-0123 ext 4",         // an extension
        "303-555-0123\u{202E}",       // a direction override
        "303\u{200B}555\u{200B}0123", // zero-width spaces
    ] {
        let path = format!("/team/{carla}/phone");
        let refused = node.post_ops(
            &fran,
            &plan,
            None,
            json!([{"op":"replace","path":path,"value":typed}]),
        );
        refused.assert_problem(422, "invalid-phone");
        assert!(
            refused.json["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&path)),
            "{typed:?}: {}",
            refused.text()
        );
    }
    let shown = node.read_plan(&fran, &plan);
    assert_eq!(phone_of(&shown.plan, "Carla"), json!("+13035550123"));
}

/// Every text field, the title included, refuses direction controls and
/// invisible characters with `422 unsafe-text` naming the path, and keeps
/// nothing of the request; ordinary text in any script still goes.
fn direction_controls_and_invisible_characters_are_refused_through_ops(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Text family").id;
    for (path, value) in [
        ("/vision", "Call \u{202E}3210-555-303"),
        ("/mission", "isolated \u{2066}text\u{2069}"),
        ("/title", "Rivera\u{200B} family"),
        ("/youth/name", "\u{FEFF}Yuri"),
    ] {
        let refused = node.post_ops(
            &fran,
            &plan,
            None,
            json!([
                {"op":"replace","path":"/transition/plan","value":"kept only if all is well"},
                {"op":"replace","path":path,"value":value}
            ]),
        );
        refused.assert_problem(422, "unsafe-text");
        assert!(
            refused.json["detail"]
                .as_str()
                .is_some_and(|d| d.contains(path) && d.contains("U+")),
            "{}",
            refused.text()
        );
    }
    let refused = node.post_ops(
        &fran,
        &plan,
        None,
        json!([{"op":"add","path":"/team","value":{"name":"Mallory\u{202E}","role":"provider"}}]),
    );
    refused.assert_problem(422, "unsafe-text");
    let shown = node.read_plan(&fran, &plan);
    assert_eq!(shown.plan["title"], json!("Text family"));
    assert_ne!(
        shown.plan["transition"]["plan"],
        json!("kept only if all is well")
    );
    assert!(!shown.plan["team"]
        .as_array()
        .is_some_and(|team| team.iter().any(|m| m["role"] == json!("provider"))));

    // A plan cannot be created under such a title either.
    node.post("/v1/plans", &fran, &json!({"title": "\u{202E}ylimaf"}))
        .assert_problem(422, "unsafe-text");

    // Words in any script, new lines and emoji go.
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/vision","value":"Señora Muñoz: می\u{200C}خواهم\nwe 👨\u{200D}👩\u{200D}👧 eat together"}]),
    );
}

/// A phone's raw edits, synced: text with an override and a phone number
/// not in E.164 are refused whole (`422`), a canonical number goes.
fn a_device_cannot_sync_unsafe_text_or_an_uncanonical_phone_number(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Synced family").id;
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","phone":"303-555-0123"}}]),
    );
    let mut phone = Device::new("fran-phone");
    phone.sync(&node, &fran, &plan);

    let raw = |phone: &mut Device, key: &str, value: &str| {
        let team = child(&phone.doc, &ROOT, "team");
        let member = phone
            .doc
            .keys(&team)
            .find(|id| {
                let item = child(&phone.doc, &team, id);
                matches!(phone.doc.get(&item, "name"), Ok(Some((Value::Scalar(n), _))) if n.as_str() == Some("Carla"))
            })
            .expect("Carla on the team");
        let member = child(&phone.doc, &team, &member);
        let mut tx = phone.doc.transaction();
        if key == "vision" {
            tx.put(ROOT, "vision", value).expect("a raw edit");
        } else {
            tx.put(&member, key, value).expect("a raw edit");
        }
        tx.commit();
    };

    let mut bidi = Device::new("fran-phone-2");
    bidi.sync(&node, &fran, &plan);
    raw(&mut bidi, "vision", "Call \u{202E}3210-555-303");
    bidi.push(&node, &fran, &plan)
        .assert_problem(422, "unsafe-text");

    let mut typed = Device::new("fran-phone-3");
    typed.sync(&node, &fran, &plan);
    raw(&mut typed, "phone", "(719) 555-0142");
    typed
        .push(&node, &fran, &plan)
        .assert_problem(422, "invalid-phone");

    let shown = node.read_plan(&fran, &plan);
    assert_eq!(phone_of(&shown.plan, "Carla"), json!("+13035550123"));
    assert_ne!(shown.plan["vision"], json!("Call \u{202E}3210-555-303"));

    raw(&mut phone, "phone", "+17195550142");
    phone.sync(&node, &fran, &plan);
    let shown = node.read_plan(&fran, &plan);
    assert_eq!(phone_of(&shown.plan, "Carla"), json!("+17195550142"));
}
