//! Documents across versions: a v1 plan stays valid under every later
//! version; a plan from a later version is kept, its unknown parts unseen;
//! v2's fields are written by ops and by sync under the role table.

use super::{field, versions, Field, Kind, CURRENT, V1};
use crate::incoming::check_incoming;
use crate::ops::{apply_ops, Editor, Op};
use crate::plan::{init_plan, render, validate, PlanError};
use crate::roles::Role;
use automerge::transaction::Transactable;
use automerge::{hydrate, ActorId, Automerge, ObjId, ObjType, ReadDoc, ROOT};
use serde_json::{json, Value as Json};

fn editor(role: Role) -> Editor {
    Editor {
        role,
        member_id: None,
    }
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0u128;
    move || {
        n += 1;
        ulid::Ulid::from_parts(1_800_000_000_000, n).to_string()
    }
}

fn apply(doc: &mut Automerge, role: Role, ops: Json) -> Result<Vec<Option<String>>, PlanError> {
    let ops: Vec<Op> =
        serde_json::from_value(ops).map_err(|e| PlanError::InvalidOp(e.to_string()))?;
    let mut tx = doc.transaction();
    let mut new_id = ids();
    match apply_ops(&mut tx, &ops, &editor(role), &mut new_id) {
        Ok(results) => {
            tx.commit();
            Ok(results.into_iter().map(|r| r.id).collect())
        }
        Err(failure) => {
            tx.rollback();
            Err(failure.error)
        }
    }
}

fn put_version(doc: &mut Automerge, version: i64) {
    let mut tx = doc.transaction();
    assert!(tx.put(ROOT, "schema_version", version).is_ok());
    tx.commit();
}

/// Deletes every key `fields` does not declare, as a v1 build's document
/// would have none of them.
fn strip(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &ObjId,
    fields: &[Field],
    root: bool,
) {
    let keys: Vec<String> = tx.keys(obj).collect();
    for key in keys {
        let Some(f) = field_of(fields, &key) else {
            if !(root && key == "schema_version") {
                assert!(tx.delete(obj, key.as_str()).is_ok());
            }
            continue;
        };
        let Ok(Some((automerge::Value::Object(_), child))) = tx.get(obj, key.as_str()) else {
            continue;
        };
        match f.kind {
            Kind::Struct(inner) => strip(tx, &child, inner, false),
            Kind::Collection(inner) => {
                let items: Vec<String> = tx.keys(&child).collect();
                for item in items {
                    if let Ok(Some((_, item))) = tx.get(&child, item.as_str()) {
                        strip(tx, &item, inner, false);
                    }
                }
            }
            _ => {}
        }
    }
}

fn field_of(fields: &[Field], name: &str) -> Option<Field> {
    fields.iter().find(|f| f.name == name).copied()
}

/// A plan with something in every section, as a v1 build makes it.
fn v1_document() -> Automerge {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    assert!(init_plan(&mut tx, "Rivera family plan").is_ok());
    tx.commit();
    let team = apply(
        &mut doc,
        Role::Facilitator,
        json!([
            {"op":"add","path":"/team","value":{"name":"Ana Rivera","role":"caregiver","phone":"+13035550123"}},
            {"op":"add","path":"/needs","value":{"domain":"school","statement":"Get to school","priority":1}},
            {"op":"replace","path":"/youth/name","value":"Mateo"},
            {"op":"replace","path":"/youth/birth_date","value":"2012-04-01"},
            {"op":"replace","path":"/vision","value":"We stay together"},
            {"op":"add","path":"/strengths","value":{"statement":"Loves soccer","about":"youth"}},
            {"op":"add","path":"/outcomes","value":{"statement":"Attends school","baseline":2,"target":5,"progress":[{"on":"2026-03-01","value":3}]}},
            {"op":"add","path":"/meetings","value":{"held_on":"2026-03-02","decisions":"Agreed"}},
            {"op":"add","path":"/cans","value":{"assessed_on":"2026-03-01","ratings":{"ls.school":2}}},
            {"op":"add","path":"/status","value":{"as_of":"2026-03-01","living":"kin"}},
            {"op":"add","path":"/crisis_plan/contacts","value":{"name":"Aunt Rosa","phone":"+13035550124"}}
        ]),
    );
    let Ok(team) = team else { panic!("{team:?}") };
    let ana = team[0].clone().unwrap_or_default();
    let strategy = apply(
        &mut doc,
        Role::Facilitator,
        json!([{"op":"add","path":"/strategies","value":{"description":"Mentor","kind":"flex","owner":ana,
            "flex":{"category":"recreation","amount_cents":5000},
            "steps":[{"description":"Call the club","responsible":ana}]}}]),
    );
    assert!(strategy.is_ok(), "{strategy:?}");
    let mut tx = doc.transaction();
    strip(&mut tx, &ROOT, V1, true);
    assert!(tx.put(ROOT, "schema_version", 1).is_ok());
    tx.commit();
    doc
}

#[test]
fn a_v1_document_stays_valid_under_every_later_version() {
    let mut doc = v1_document();
    assert_eq!(validate(&doc), Ok(()));
    let shown = render(&doc);
    assert_eq!(shown["schema_version"], 1);
    assert!(shown["strategies"][0].get("service").is_none());
    for version in versions::declared() {
        put_version(&mut doc, version);
        assert_eq!(validate(&doc), Ok(()), "v1 document under v{version}");
        let mut now = render(&doc);
        now["schema_version"] = json!(1);
        assert_eq!(now, shown, "v{version} shows a v1 document as v1 did");
    }
}

#[test]
fn v2_fields_are_refused_in_a_v1_document_and_kept_by_the_write_that_upgrades_it() {
    let mut doc = v1_document();
    let mut tx = doc.transaction();
    let youth = crate::plan::child(&tx, &ROOT, "youth");
    assert!(youth.is_some_and(|y| tx.put(&y, "county", "08031").is_ok()));
    tx.commit();
    assert!(
        matches!(validate(&doc), Err(PlanError::Schema { path, .. }) if path == "/youth/county"),
        "a v1 plan is held to v1"
    );

    // Through ops: the write upgrades the plan, and old strategies gain
    // the section a v2 field lives in.
    let mut doc = v1_document();
    let strategy = render(&doc)["strategies"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let written = apply(
        &mut doc,
        Role::Facilitator,
        json!([
            {"op":"replace","path":"/youth/county","value":"08031"},
            {"op":"replace","path":"/youth/preferred_language","value":"es"},
            {"op":"replace","path":"/youth/race_ethnicity","value":["hispanic_or_latino","white"]},
            {"op":"replace","path":"/youth/gender","value":["boy_or_man"]},
            {"op":"replace","path":format!("/strategies/{strategy}/agency"),"value":"community"},
            {"op":"replace","path":format!("/strategies/{strategy}/funding_stream"),"value":"soc_flexible_funds"},
            {"op":"replace","path":format!("/strategies/{strategy}/service/availability"),"value":"waitlisted"},
            {"op":"replace","path":format!("/strategies/{strategy}/service/since"),"value":"2026-02-01"}
        ]),
    );
    assert!(written.is_ok(), "{written:?}");
    assert_eq!(validate(&doc), Ok(()));
    let plan = render(&doc);
    assert_eq!(plan["schema_version"], CURRENT);
    assert_eq!(plan["youth"]["county"], "08031");
    assert_eq!(
        plan["youth"]["race_ethnicity"],
        json!(["hispanic_or_latino", "white"])
    );
    assert_eq!(
        plan["strategies"][0]["service"],
        json!({"availability": "waitlisted", "since": "2026-02-01"})
    );
}

#[test]
fn v2_values_are_held_to_their_rules() {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    assert!(init_plan(&mut tx, "Plan").is_ok());
    tx.commit();
    for (path, value) in [
        ("/youth/county", json!("8031")),
        ("/youth/county", json!(8031)),
        ("/youth/preferred_language", json!("Spanish")),
        ("/youth/preferred_language", json!("es_MX")),
        ("/youth/race_ethnicity", json!(["martian"])),
        ("/youth/race_ethnicity", json!(["asian", "asian"])),
        ("/youth/race_ethnicity", json!("asian")),
        ("/youth/gender", json!(["female"])),
    ] {
        let refused = apply(
            &mut doc,
            Role::Facilitator,
            json!([{"op":"replace","path":path,"value":value}]),
        );
        assert!(
            matches!(&refused, Err(PlanError::Schema { path: p, .. }) if p == path),
            "{path} = {value}: {refused:?}"
        );
    }
    let empty = apply(
        &mut doc,
        Role::Facilitator,
        json!([{"op":"replace","path":"/youth/race_ethnicity","value":[]}]),
    );
    assert!(empty.is_ok(), "may be empty: {empty:?}");
    assert_eq!(render(&doc)["youth"]["race_ethnicity"], json!([]));
    // Who writes them: as their neighbours.
    let refused = apply(
        &mut doc,
        Role::Caregiver,
        json!([{"op":"replace","path":"/youth/county","value":"08031"}]),
    );
    assert!(matches!(refused, Err(PlanError::Forbidden(_))));
}

/// A plan as a node on a later version (3) would write it: a new section, a
/// new field on a strategy, a new value of a v2 enum and of a v1 enum.
fn future_document() -> (Automerge, String) {
    let mut doc = v1_document();
    let strategy = render(&doc)["strategies"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut tx = doc.transaction();
    assert!(tx.put(ROOT, "schema_version", CURRENT + 1).is_ok());
    let section = tx.put_object(ROOT, "housing_history", ObjType::Map);
    assert!(section.is_ok_and(|s| {
        tx.put(&s, "moves_12m", 3).is_ok() && tx.put(&s, "last_address", "12 Elm St").is_ok()
    }));
    let strategies = crate::plan::child(&tx, &ROOT, "strategies");
    let item = strategies.and_then(|s| crate::plan::child(&tx, &s, &strategy));
    assert!(item.is_some_and(|item| {
        tx.put(&item, "status", "on_hold").is_ok()
            && tx.put(&item, "agency", "tribal_services").is_ok()
            && tx.put(&item, "referral_code", "R-77").is_ok()
    }));
    tx.commit();
    (doc, strategy)
}

#[test]
fn a_document_of_a_later_version_is_kept_and_its_unknown_parts_never_shown() {
    let (doc, strategy) = future_document();
    assert_eq!(validate(&doc), Ok(()));
    let plan = render(&doc);
    assert_eq!(plan["schema_version"], CURRENT + 1);
    assert!(plan.get("housing_history").is_none());
    let shown = &plan["strategies"][0];
    assert!(shown.get("referral_code").is_none());
    // Unknown values show as their fallback...
    assert_eq!(shown["status"], "proposed");
    assert_eq!(shown["agency"], "other");
    assert!(!serde_json::to_string(&plan)
        .unwrap_or_default()
        .contains("Elm St"));
    // ...and the document keeps them as they are, through a save and load.
    let Ok(reloaded) = Automerge::load(&doc.save()) else {
        panic!("reload")
    };
    let Ok(hydrate::Value::Map(root)) = ReadDoc::hydrate(&reloaded, ROOT, None) else {
        panic!("root")
    };
    let item = match root.get("strategies") {
        Some(hydrate::Value::Map(s)) => s.get(&strategy).cloned(),
        _ => None,
    };
    let Some(hydrate::Value::Map(item)) = item else {
        panic!("strategy")
    };
    assert_eq!(item.get("status"), Some(&hydrate::Value::from("on_hold")));
    assert_eq!(
        item.get("referral_code"),
        Some(&hydrate::Value::from("R-77"))
    );
    assert!(crate::schema::is_identifying("/housing_history/moves_12m"));
    assert!(crate::schema::is_identifying(&format!(
        "/strategies/{strategy}/referral_code"
    )));

    // The same document claiming a version this build knows breaks it.
    let (mut known, _) = future_document();
    put_version(&mut known, CURRENT);
    assert!(matches!(validate(&known), Err(PlanError::Schema { .. })));
}

/// Something written into a document, for a table of cases.
type Write = Box<dyn Fn(&mut automerge::transaction::Transaction<'_>)>;

#[test]
fn a_later_version_is_still_held_to_every_rule_this_build_knows_and_to_bounds() {
    let cases: [(&str, Write); 5] = [
        (
            "/youth/county",
            Box::new(|tx| {
                let youth = crate::plan::child(tx, &ROOT, "youth");
                assert!(youth.is_some_and(|y| tx.put(&y, "county", "Denver").is_ok()));
            }),
        ),
        (
            "/vision",
            Box::new(|tx| assert!(tx.put(ROOT, "vision", 42).is_ok())),
        ),
        (
            "/future_notes",
            Box::new(|tx| assert!(tx.put(ROOT, "future_notes", "x".repeat(4001)).is_ok())),
        ),
        (
            "/future_bulk/",
            Box::new(|tx| {
                if let Ok(list) = tx.put_object(ROOT, "future_bulk", ObjType::List) {
                    for i in 0..=crate::plan::MAX_UNKNOWN_VALUES {
                        assert!(tx.insert(&list, i, 1).is_ok());
                    }
                }
            }),
        ),
        (
            "/future_text",
            Box::new(|tx| {
                assert!(tx.put_object(ROOT, "future_text", ObjType::Text).is_ok());
            }),
        ),
    ];
    for (path, write) in cases {
        let (mut doc, _) = future_document();
        let mut tx = doc.transaction();
        write(&mut tx);
        tx.commit();
        let refused = validate(&doc);
        assert!(
            matches!(&refused, Err(PlanError::Schema { path: p, .. }) if p.starts_with(path)),
            "{path}: {refused:?}"
        );
    }
    // Hidden text is held to the rules shown text follows.
    let (mut doc, _) = future_document();
    let mut tx = doc.transaction();
    assert!(tx.put(ROOT, "future_note", "Call \u{202E}3210").is_ok());
    tx.commit();
    assert!(matches!(validate(&doc), Err(PlanError::UnsafeText { .. })));
    assert!(matches!(
        validate(&Automerge::new()),
        Err(PlanError::Schema { .. })
    ));
}

#[test]
fn unknown_fields_arrive_by_sync_under_the_role_table() {
    let (base, strategy) = future_document();
    let cases = [
        ("/new_section", Role::Facilitator, true),
        ("/new_section", Role::Caregiver, false),
        ("/strategies/S/new_field", Role::FamilyAdvocate, true),
        ("/strategies/S/new_field", Role::Youth, false),
        ("/team/T/new_field", Role::FamilyAdvocate, false),
    ];
    let team = render(&base)["team"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for (path, role, allowed) in cases {
        let mut doc = base.fork().with_actor(ActorId::random());
        let before = doc.get_heads();
        let mut tx = doc.transaction();
        let (obj, key) = match path.split('/').nth(1) {
            Some("strategies") => {
                let s = crate::plan::child(&tx, &ROOT, "strategies");
                (
                    s.and_then(|s| crate::plan::child(&tx, &s, &strategy)),
                    "new_field",
                )
            }
            Some("team") => {
                let t = crate::plan::child(&tx, &ROOT, "team");
                (
                    t.and_then(|t| crate::plan::child(&tx, &t, &team)),
                    "new_field",
                )
            }
            _ => (Some(ROOT), "new_section"),
        };
        assert!(obj.is_some_and(|o| tx.put(&o, key, "v3").is_ok()));
        tx.commit();
        let checked = check_incoming(&doc, &before, &editor(role));
        assert_eq!(checked.is_ok(), allowed, "{path} by {role}: {checked:?}");
    }
    // A plan's version never goes back.
    let mut doc = base.fork().with_actor(ActorId::random());
    let before = doc.get_heads();
    put_version(&mut doc, 1);
    assert!(matches!(
        check_incoming(&doc, &before, &editor(Role::Facilitator)),
        Err(PlanError::Schema { path, .. }) if path == "/schema_version"
    ));
}

#[test]
fn v1_identifying_flags_never_change() {
    fn flags(fields: &[Field], at: &str, out: &mut Vec<(String, bool)>) {
        for f in fields {
            let path = format!("{at}/{}", f.name);
            out.push((path.clone(), f.identifying));
            if let Kind::Struct(inner) | Kind::Collection(inner) = f.kind {
                flags(inner, &path, out);
            }
        }
    }
    let mut v1 = Vec::new();
    flags(V1, "", &mut v1);
    for version in versions::declared() {
        let mut now = Vec::new();
        flags(super::plan(version).unwrap_or_default(), "", &mut now);
        for entry in &v1 {
            assert!(now.contains(entry), "v{version}: {entry:?}");
        }
    }
    assert!(field(V1, "title").is_some_and(|f| f.identifying));
}
