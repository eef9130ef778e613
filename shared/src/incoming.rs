//! Changes that arrive as Automerge bytes (from a phone's sync, later from a
//! peer node) are checked before they are kept: applied to a scratch copy,
//! then what they did is held against the sender's role and the whole result
//! against the plan schema. A refused change set is refused whole.

use crate::ops::Editor;
use crate::plan::{
    check_scalar, child, each_item_id, is_item_id, is_new_item_id, validate, PlanError,
};
use crate::roles::{home_only, may_write, Role};
use crate::schema::{self, latest, Field, Kind};
use automerge::{Automerge, ChangeHash, PatchAction, Prop, ReadDoc, ScalarValue, Value, ROOT};
use std::collections::HashMap;

/// Checks what the changes between `before` and `doc`'s current heads did:
/// every field they set is one `editor` may write, nothing is removed but
/// optional fields, and the resulting plan satisfies the schema.
pub fn check_incoming(
    doc: &Automerge,
    before: &[ChangeHash],
    editor: &Editor,
) -> Result<(), PlanError> {
    let after = doc.get_heads();
    for patch in doc.diff(before, &after) {
        let mut segments: Vec<String> =
            patch.path.iter().map(|(_, prop)| prop_text(prop)).collect();
        let removes = match &patch.action {
            PatchAction::PutMap { key, .. } => {
                segments.push(key.clone());
                false
            }
            PatchAction::DeleteMap { key } => {
                segments.push(key.clone());
                true
            }
            PatchAction::Conflict { prop } => {
                segments.push(prop_text(prop));
                false
            }
            // Inside a list (the reference lists): the list field is what changed.
            PatchAction::PutSeq { .. }
            | PatchAction::Insert { .. }
            | PatchAction::DeleteSeq { .. } => false,
            PatchAction::SpliceText { .. }
            | PatchAction::Increment { .. }
            | PatchAction::Mark { .. } => {
                let path = format!("/{}", segments.join("/"));
                return Err(PlanError::schema(
                    &path,
                    "text objects, counters and marks are not part of the plan schema",
                ));
            }
        };
        let path = format!("/{}", segments.join("/"));
        if !removes {
            check_new_text(doc, &patch.obj, &segments, &path)?;
        }
        let Some(target) = classify(&segments) else {
            // A field of a later version (which the schema check keeps only
            // in a document of a later version): written by whoever may
            // write where it lies; a whole new section, by those who write
            // the plan's sections.
            if segments.first().is_some_and(|s| s == "schema_version") {
                continue;
            }
            let allowed = match unknown_pattern(&segments) {
                Some(pattern) => may_write(editor.role, &pattern, false),
                None => matches!(
                    editor.role,
                    Role::Facilitator | Role::FamilyAdvocate | Role::Supervisor
                ),
            };
            if !allowed {
                return Err(PlanError::Forbidden(path));
            }
            continue;
        };
        if removes && target.container {
            return Err(PlanError::Unsupported(format!("removing {path}")));
        }
        let own_step = target.step.as_ref().is_some_and(|(strategy, step)| {
            editor.member_id.is_some() && step_responsible(doc, strategy, step) == editor.member_id
        });
        if !may_write(editor.role, &target.pattern, own_step) {
            return Err(PlanError::Forbidden(path));
        }
    }
    check_version_kept(doc, before)?;
    validate(doc)
}

/// A plan's schema version only goes up: a change never takes a plan back
/// to a version whose rules its fields may break.
fn check_version_kept(doc: &Automerge, before: &[ChangeHash]) -> Result<(), PlanError> {
    let version = |heads: Option<&[ChangeHash]>| {
        let value = match heads {
            Some(heads) => doc.get_at(ROOT, "schema_version", heads),
            None => doc.get(ROOT, "schema_version"),
        };
        match value {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Int(v) => Some(*v),
                _ => None,
            },
            _ => None,
        }
    };
    match (version(Some(before)), version(None)) {
        (Some(was), Some(now)) if now < was => Err(PlanError::schema(
            "/schema_version",
            format!("a plan at schema version {was} cannot go back to {now}"),
        )),
        _ => Ok(()),
    }
}

/// The role-table pattern of a path that leaves the schema this build
/// knows: the known part (ids as `*`) and the first unknown name, or `None`
/// for a new top-level section.
fn unknown_pattern(segments: &[String]) -> Option<String> {
    let mut fields: &[Field] = latest();
    let mut pattern = String::new();
    let mut i = 0;
    while i < segments.len() {
        let Some(field) = schema::field(fields, &segments[i]) else {
            if pattern.is_empty() {
                return None;
            }
            return Some(format!("{pattern}/{}", segments[i]));
        };
        pattern.push('/');
        pattern.push_str(field.name);
        match field.kind {
            Kind::Struct(inner) => {
                fields = inner;
                i += 1;
            }
            Kind::Collection(inner) => {
                pattern.push_str("/*");
                fields = inner;
                i += 2;
            }
            _ => return Some(pattern),
        }
    }
    Some(pattern)
}

/// Refuses changes between `before` and `doc`'s heads that touch a part of
/// the plan only its home's people change ([`home_only`]: the roster and
/// the consent record), for changes made by anyone else: a peer's members
/// at the home, a replica's team on the replica. `Forbidden` names the
/// first such path.
pub fn check_home_authority(doc: &Automerge, before: &[ChangeHash]) -> Result<(), PlanError> {
    let after = doc.get_heads();
    for patch in doc.diff(before, &after) {
        let mut segments = patch.path.iter().map(|(_, prop)| prop_text(prop));
        let first = match (segments.next(), &patch.action) {
            (Some(first), _) => first,
            (None, PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key }) => key.clone(),
            (None, PatchAction::Conflict { prop }) => prop_text(prop),
            (None, _) => continue,
        };
        let path = format!("/{first}");
        if home_only(&path) {
            return Err(PlanError::Forbidden(path));
        }
    }
    Ok(())
}

/// Refuses changes between `before` and `doc`'s heads to a consent item
/// that names a node (`is_node`: this node and its peers), before or after
/// them: such an item is the node's record of a federation grant, written
/// only when the family's consent is recorded or withdrawn through the
/// shares API, so the document never says other than the grants that are
/// enforced. Consents naming anyone else (a school's release of
/// information) stay the team's to write. `Forbidden` names the item.
pub fn check_grant_records(
    doc: &Automerge,
    before: &[ChangeHash],
    is_node: impl Fn(&str) -> bool,
) -> Result<(), PlanError> {
    let after = doc.get_heads();
    let consents_at = |heads: &[ChangeHash]| match doc.get_at(&ROOT, "consents", heads) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    };
    let grantee_at = |item: &str, heads: &[ChangeHash]| -> Option<String> {
        let consents = consents_at(heads)?;
        let (_, item) = doc
            .get_at(&consents, item, heads)
            .ok()
            .flatten()
            .filter(|(v, _)| matches!(v, Value::Object(_)))?;
        match doc.get_at(&item, "grantee", heads).ok()?? {
            (Value::Scalar(s), _) => s.as_str().map(str::to_string),
            _ => None,
        }
    };
    let names_a_node = |item: &str| {
        [before, &after[..]]
            .iter()
            .any(|heads| grantee_at(item, heads).is_some_and(|g| is_node(&g)))
    };
    let items_at = |heads: &[ChangeHash]| -> Vec<String> {
        consents_at(heads)
            .map(|c| doc.keys_at(&c, heads).collect())
            .unwrap_or_default()
    };
    for patch in doc.diff(before, &after) {
        let mut segments = patch.path.iter().map(|(_, prop)| prop_text(prop));
        let items: Vec<String> = match (segments.next(), segments.next(), &patch.action) {
            (Some(first), Some(item), _) if first == "consents" => vec![item],
            (
                Some(first),
                None,
                PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key },
            ) if first == "consents" => {
                vec![key.clone()]
            }
            // The whole collection put anew: every item it had or has.
            (None, _, PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key })
                if key == "consents" =>
            {
                let mut items = items_at(before);
                items.extend(items_at(&after));
                items
            }
            _ => continue,
        };
        if let Some(item) = items.iter().find(|item| names_a_node(item)) {
            return Err(PlanError::Forbidden(format!("/consents/{item}")));
        }
    }
    Ok(())
}

/// Holds the items that the changes between `before` and `doc`'s heads
/// create to the rule the ops path keeps ([`add_item`]): a canonical ULID id
/// ([`is_new_item_id`]) that no other item of the plan has. Items that were
/// there before are not re-checked, so plans stored before the rule still
/// load and sync. For changes a person made (a device, a peer's member); a
/// plan arriving whole from its home or an import is its own history.
///
/// [`add_item`]: crate::ops
pub fn check_new_item_ids(doc: &Automerge, before: &[ChangeHash]) -> Result<(), PlanError> {
    let after = doc.get_heads();
    // Every item id of the plan and how many items have it, counted once
    // the first new item is met (a sync may add many).
    let mut counts: Option<HashMap<String, usize>> = None;
    for patch in doc.diff(before, &after) {
        let PatchAction::PutMap {
            key,
            value: (Value::Object(_), _),
            ..
        } = &patch.action
        else {
            continue;
        };
        let mut segments: Vec<String> =
            patch.path.iter().map(|(_, prop)| prop_text(prop)).collect();
        segments.push(key.clone());
        if !names_an_item(&segments) {
            continue;
        }
        let existed = doc
            .get_at(&patch.obj, key.as_str(), before)
            .is_ok_and(|v| v.is_some());
        if existed {
            continue;
        }
        let path = format!("/{}", segments.join("/"));
        if !is_new_item_id(key) {
            return Err(PlanError::InvalidItemId {
                path,
                detail: "item ids must be ULIDs, upper case, as `ulid` writes them".into(),
            });
        }
        let counts = counts.get_or_insert_with(|| {
            let mut counts = HashMap::new();
            each_item_id(doc, &ROOT, latest(), &mut |id| {
                *counts.entry(id.to_string()).or_insert(0) += 1;
            });
            counts
        });
        if counts.get(key.as_str()).copied().unwrap_or_default() > 1 {
            return Err(PlanError::InvalidItemId {
                path,
                detail: "another item of this plan already has this id".into(),
            });
        }
    }
    Ok(())
}

/// Holds the text and phone values a change sets (every concurrent value of
/// the field, as any may be shown) to the rules new values follow
/// ([`crate::text`]): no bidirectional control or invisible character, a
/// phone number in its canonical E.164 form. Values that were there before
/// are not re-checked ([`validate`] keeps the older rules for them), so
/// plans stored before these rules still load and sync.
fn check_new_text(
    doc: &Automerge,
    obj: &automerge::ObjId,
    segments: &[String],
    path: &str,
) -> Result<(), PlanError> {
    let Some(kind) = text_kind(segments) else {
        return Ok(());
    };
    let Some(key) = segments.last() else {
        return Ok(());
    };
    for (value, _) in doc.get_all(obj, key.as_str()).unwrap_or_default() {
        if let Value::Scalar(scalar) = value {
            if let ScalarValue::Str(text) = scalar.as_ref() {
                check_scalar(&kind, &serde_json::Value::String(text.to_string()), path)?;
            }
        }
    }
    Ok(())
}

/// The kind of the text or phone field `segments` name, if they name one.
fn text_kind(segments: &[String]) -> Option<Kind> {
    let mut fields: &[Field] = latest();
    let mut i = 0;
    while i < segments.len() {
        let field = schema::field(fields, &segments[i])?;
        let last = i + 1 == segments.len();
        match field.kind {
            Kind::Text { .. } | Kind::Phone if last => return Some(field.kind),
            Kind::Struct(inner) => {
                fields = inner;
                i += 1;
            }
            Kind::Collection(inner) => {
                fields = inner;
                i += 2;
            }
            _ => return None,
        }
    }
    None
}

/// True when `segments` end at an item of a collection (`needs/<id>`,
/// `strategies/<id>/steps/<id>`), whatever the id looks like.
fn names_an_item(segments: &[String]) -> bool {
    let mut fields: &[Field] = latest();
    let mut i = 0;
    while i < segments.len() {
        let Some(field) = schema::field(fields, &segments[i]) else {
            return false;
        };
        match field.kind {
            Kind::Struct(inner) => {
                fields = inner;
                i += 1;
            }
            Kind::Collection(inner) if i + 1 < segments.len() => {
                if i + 2 == segments.len() {
                    return true;
                }
                fields = inner;
                i += 2;
            }
            _ => return false,
        }
    }
    false
}

fn prop_text(prop: &Prop) -> String {
    match prop {
        Prop::Map(key) => key.clone(),
        Prop::Seq(index) => index.to_string(),
    }
}

/// Where a changed path lands in the schema.
struct Target {
    /// Item ids as `*`, for the role table.
    pattern: String,
    /// An item, a struct, a collection or a ratings map: never removed.
    container: bool,
    /// `(strategy id, step id)` when the path is inside an action step.
    step: Option<(String, String)>,
}

fn classify(segments: &[String]) -> Option<Target> {
    let mut fields: &[Field] = latest();
    let mut pattern = String::new();
    let mut ids = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let field = schema::field(fields, &segments[i])?;
        pattern.push('/');
        pattern.push_str(field.name);
        let last = i + 1 == segments.len();
        match field.kind {
            Kind::Struct(inner) => {
                if last {
                    return Some(target(pattern, true, &ids));
                }
                fields = inner;
                i += 1;
            }
            Kind::Collection(inner) => {
                if last {
                    return Some(target(pattern, true, &ids));
                }
                let id = &segments[i + 1];
                if !is_item_id(id) {
                    return None;
                }
                ids.push(id.clone());
                pattern.push_str("/*");
                if i + 2 == segments.len() {
                    return Some(target(pattern, true, &ids));
                }
                fields = inner;
                i += 2;
            }
            Kind::Ratings => {
                let container = last;
                if !last {
                    pattern.push_str("/*");
                }
                return Some(target(pattern, container, &ids));
            }
            // A scalar, or a reference list (the path may go on to an index).
            _ => return Some(target(pattern, false, &ids)),
        }
    }
    None
}

fn target(pattern: String, container: bool, ids: &[String]) -> Target {
    let step = (pattern.starts_with("/strategies/*/steps/*") && ids.len() >= 2)
        .then(|| (ids[0].clone(), ids[1].clone()));
    Target {
        pattern,
        container,
        step,
    }
}

fn step_responsible(doc: &Automerge, strategy: &str, step: &str) -> Option<String> {
    let strategies = child(doc, &ROOT, "strategies")?;
    let strategy = child(doc, &strategies, strategy)?;
    let steps = child(doc, &strategy, "steps")?;
    let step = child(doc, &steps, step)?;
    match doc.get(&step, "responsible").ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{apply_ops, Op};
    use crate::plan::init_plan;
    use crate::roles::Role;
    use automerge::transaction::Transactable;
    use automerge::ActorId;
    use serde_json::json;

    fn editor(role: Role, member_id: Option<&str>) -> Editor {
        Editor {
            role,
            member_id: member_id.map(str::to_string),
        }
    }

    /// A plan with a caregiver (Ana) responsible for one step.
    fn plan() -> (Automerge, String, String, String) {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        assert!(init_plan(&mut tx, "Plan").is_ok());
        let mut n = 0u128;
        let mut ids = || {
            n += 1;
            ulid::Ulid::from_parts(1_800_000_000_000, n).to_string()
        };
        let ops: Vec<Op> = serde_json::from_value(json!([
            {"op":"add","path":"/team","value":{"name":"Ana","role":"caregiver"}}
        ]))
        .unwrap_or_default();
        let r = apply_ops(&mut tx, &ops, &editor(Role::Facilitator, None), &mut ids)
            .unwrap_or_default();
        let ana = r[0].id.clone().unwrap_or_default();
        let ops: Vec<Op> = serde_json::from_value(json!([
            {"op":"add","path":"/strategies","value":{"description":"S","kind":"natural","steps":[{"description":"Step","responsible":ana}]}}
        ]))
        .unwrap_or_default();
        let r = apply_ops(&mut tx, &ops, &editor(Role::Facilitator, None), &mut ids)
            .unwrap_or_default();
        let strategy = r[0].id.clone().unwrap_or_default();
        tx.commit();
        let step = crate::plan::render(&doc)["strategies"][0]["steps"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (doc, ana, strategy, step)
    }

    /// What a phone would do: fork, edit raw, merge back into a scratch copy.
    fn phone_edit(
        doc: &Automerge,
        edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
    ) -> (Automerge, Vec<ChangeHash>) {
        let before = doc.get_heads();
        let mut phone = doc.fork().with_actor(ActorId::random());
        let mut tx = phone.transaction();
        edit(&mut tx);
        tx.commit();
        let mut scratch = doc.clone();
        assert!(scratch.merge(&mut phone).is_ok());
        (scratch, before)
    }

    fn obj(doc: &Automerge, path: &[&str]) -> automerge::ObjId {
        path.iter()
            .try_fold(ROOT, |o, k| child(doc, &o, k))
            .unwrap_or(ROOT)
    }

    #[test]
    fn a_caregiver_may_mark_their_own_step_done() {
        let (doc, ana, strategy, step) = plan();
        let step_obj = obj(&doc, &["strategies", &strategy, "steps", &step]);
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(&step_obj, "done_on", "2026-03-01").is_ok());
            assert!(tx.put(&step_obj, "status", "done").is_ok());
        });
        assert_eq!(
            check_incoming(&scratch, &before, &editor(Role::Caregiver, Some(&ana))),
            Ok(())
        );
        // The same change from another caregiver is refused.
        let other = editor(Role::Caregiver, Some("01JZZZZZZZZZZZZZZZZZZZZZZZ"));
        assert!(matches!(
            check_incoming(&scratch, &before, &other),
            Err(PlanError::Forbidden(_))
        ));
    }

    #[test]
    fn only_the_home_changes_the_roster_and_the_consents() {
        let (doc, ana, _, _) = plan();
        let member = obj(&doc, &["team", &ana]);
        let (left, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(&member, "status", "left").is_ok());
        });
        assert_eq!(
            check_home_authority(&left, &before),
            Err(PlanError::Forbidden("/team".into()))
        );
        let consents = obj(&doc, &["consents"]);
        let (consent, before) = phone_edit(&doc, |tx| {
            let item = tx.put_object(
                &consents,
                "01JZZZZZZZZZZZZZZZZZZZZZZZ",
                automerge::ObjType::Map,
            );
            assert!(item.is_ok());
        });
        assert_eq!(
            check_home_authority(&consent, &before),
            Err(PlanError::Forbidden("/consents".into()))
        );
        let (vision, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(ROOT, "vision", "Home together").is_ok());
        });
        assert_eq!(check_home_authority(&vision, &before), Ok(()));
    }

    #[test]
    fn consents_naming_a_node_are_the_grants_record() {
        let (doc, _, _, _) = plan();
        let consents = obj(&doc, &["consents"]);
        let is_node = |g: &str| g == "county-b";
        let add = |doc: &Automerge, grantee: &'static str| {
            phone_edit(doc, |tx| {
                let item = tx.put_object(
                    &consents,
                    "01JZZZZZZZZZZZZZZZZZZZZZZZ",
                    automerge::ObjType::Map,
                );
                let Ok(item) = item else { panic!("an item") };
                assert!(tx.put(&item, "grantee", grantee).is_ok());
                assert!(tx.put(&item, "scope", "full_plan").is_ok());
            })
        };
        // A school's release of information is the team's to write.
        let (school, before) = add(&doc, "county-school");
        assert_eq!(check_grant_records(&school, &before, is_node), Ok(()));
        // A consent naming a node is not, added or changed.
        let (node, before) = add(&doc, "county-b");
        assert_eq!(
            check_grant_records(&node, &before, is_node),
            Err(PlanError::Forbidden(
                "/consents/01JZZZZZZZZZZZZZZZZZZZZZZZ".into()
            ))
        );
        let item = obj(&node, &["consents", "01JZZZZZZZZZZZZZZZZZZZZZZZ"]);
        let (revoked, before) = phone_edit(&node, |tx| {
            assert!(tx.put(&item, "status", "revoked").is_ok());
        });
        assert!(check_grant_records(&revoked, &before, is_node).is_err());
        // Nor may a school's consent be turned into one.
        let item = obj(&school, &["consents", "01JZZZZZZZZZZZZZZZZZZZZZZZ"]);
        let (renamed, before) = phone_edit(&school, |tx| {
            assert!(tx.put(&item, "grantee", "county-b").is_ok());
        });
        assert!(check_grant_records(&renamed, &before, is_node).is_err());
    }

    #[test]
    fn a_caregiver_editing_the_roster_is_refused() {
        let (doc, ana, _, _) = plan();
        let member = obj(&doc, &["team", &ana]);
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(&member, "role", "facilitator").is_ok());
        });
        let result = check_incoming(&scratch, &before, &editor(Role::Caregiver, Some(&ana)));
        assert!(matches!(result, Err(PlanError::Forbidden(p)) if p.starts_with("/team/")));
        assert_eq!(
            check_incoming(&scratch, &before, &editor(Role::Facilitator, None)),
            Ok(())
        );
    }

    #[test]
    fn removing_items_or_sections_is_refused_even_for_facilitators() {
        let (doc, ana, _, _) = plan();
        let team = obj(&doc, &["team"]);
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.delete(&team, ana.as_str()).is_ok());
        });
        let result = check_incoming(&scratch, &before, &editor(Role::Facilitator, None));
        assert!(matches!(result, Err(PlanError::Unsupported(_))));
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.delete(ROOT, "crisis_plan").is_ok());
        });
        assert!(matches!(
            check_incoming(&scratch, &before, &editor(Role::Supervisor, None)),
            Err(PlanError::Unsupported(_))
        ));
    }

    #[test]
    fn schema_violations_and_foreign_structures_are_refused() {
        let (doc, _, _, _) = plan();
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(ROOT, "vision", 42).is_ok());
        });
        assert!(matches!(
            check_incoming(&scratch, &before, &editor(Role::Facilitator, None)),
            Err(PlanError::Schema { .. })
        ));
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx
                .put_object(ROOT, "vision", automerge::ObjType::Text)
                .is_ok());
        });
        assert!(check_incoming(&scratch, &before, &editor(Role::Facilitator, None)).is_err());
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(ROOT, "ssn", "123-45-6789").is_ok());
        });
        assert!(matches!(
            check_incoming(&scratch, &before, &editor(Role::Supervisor, None)),
            Err(PlanError::Schema { .. })
        ));
    }

    #[test]
    fn synced_text_with_direction_controls_or_invisible_characters_is_refused() {
        let (doc, ana, _, _) = plan();
        let member = obj(&doc, &["team", &ana]);
        for (path, value) in [
            ("vision", "Call \u{202E}3210-555-303"),
            ("vision", "zero\u{200B}width"),
            ("title", "\u{2066}Plan\u{2069}"),
        ] {
            let (scratch, before) = phone_edit(&doc, |tx| {
                assert!(tx.put(ROOT, path, value).is_ok());
            });
            let result = check_incoming(&scratch, &before, &editor(Role::Facilitator, None));
            assert!(
                matches!(&result, Err(PlanError::UnsafeText { path: p, .. }) if p == &format!("/{path}")),
                "{value:?}: {result:?}"
            );
        }
        // Inside an item, as a new item's field.
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(&member, "name", "Ana\u{200F}").is_ok());
        });
        assert!(matches!(
            check_incoming(&scratch, &before, &editor(Role::Facilitator, None)),
            Err(PlanError::UnsafeText { .. })
        ));
        let team = obj(&doc, &["team"]);
        let (scratch, before) = phone_edit(&doc, |tx| {
            let id = ulid::Ulid::new().to_string();
            let item = tx.put_object(&team, id.as_str(), automerge::ObjType::Map);
            let item = item.unwrap_or(ROOT);
            assert!(tx.put(&item, "name", "Mallory\u{202E}").is_ok());
            assert!(tx.put(&item, "role", "provider").is_ok());
        });
        assert!(matches!(
            check_incoming(&scratch, &before, &editor(Role::Facilitator, None)),
            Err(PlanError::UnsafeText { .. })
        ));
        // Persian with its non-joiner is words, not a trick.
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx
                .put(ROOT, "vision", "\u{0645}\u{06CC}\u{200C}\u{062E}")
                .is_ok());
        });
        assert_eq!(
            check_incoming(&scratch, &before, &editor(Role::Facilitator, None)),
            Ok(())
        );
    }

    #[test]
    fn a_synced_phone_number_must_be_stored_as_e164() {
        let (doc, ana, _, _) = plan();
        let member = obj(&doc, &["team", &ana]);
        for typed in ["303-555-0123", "+1 303 555 0123", "+1303555012\u{200B}3"] {
            let (scratch, before) = phone_edit(&doc, |tx| {
                assert!(tx.put(&member, "phone", typed).is_ok());
            });
            let result = check_incoming(&scratch, &before, &editor(Role::Facilitator, None));
            assert!(
                matches!(&result, Err(PlanError::InvalidPhone { path, .. } | PlanError::UnsafeText { path, .. }) if path.ends_with("/phone")),
                "{typed:?}: {result:?}"
            );
        }
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(&member, "phone", "+13035550123").is_ok());
        });
        assert_eq!(
            check_incoming(&scratch, &before, &editor(Role::Facilitator, None)),
            Ok(())
        );
    }

    #[test]
    fn values_stored_before_the_text_rules_do_not_block_other_edits() {
        let (mut doc, ana, _, _) = plan();
        let member = obj(&doc, &["team", &ana]);
        // Written before these rules (raw, as an old node would have).
        let mut tx = doc.transaction();
        assert!(tx.put(&member, "phone", "555-0101").is_ok());
        assert!(tx.put(ROOT, "mission", "old\u{200B}text").is_ok());
        tx.commit();
        let (scratch, before) = phone_edit(&doc, |tx| {
            assert!(tx.put(ROOT, "vision", "A new vision").is_ok());
        });
        assert_eq!(
            check_incoming(&scratch, &before, &editor(Role::Facilitator, None)),
            Ok(())
        );
    }
}
