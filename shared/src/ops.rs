//! Plan operations: JSON Patch (RFC 6902) in shape, plan-aware in meaning.
//!
//! `replace` sets a field (`null` clears an optional one); `add` on a
//! collection path appends an item and answers its id; list items are
//! addressed by id (`/needs/01J…/status`); `test` checks a precondition.
//! Nothing is ever removed: items are closed by setting their status.

use crate::plan::{
    check_scalar, child, create_containers, internal, is_item_code, is_item_id, is_new_item_id,
    items_with_id, ref_json, render, to_scalar, PlanError,
};
use crate::roles::{may_write, Role};
use crate::schema::{self, latest, Field, Kind};
use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc, ROOT};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value as Json};

/// The most operations one request may carry.
pub const MAX_OPS: usize = 200;

/// One operation as a client sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Op {
    pub op: String,
    pub path: String,
    /// Absent and `null` differ: `null` clears a field, absent is an error
    /// for operations that need a value.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: Option<Json>,
    /// Only so that `move`/`copy` parse and get their own clear refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

/// What one applied operation produced: the id of an item it added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Who is editing: their role on this plan's team and, if they are on its
/// roster, their member id (for the "my own action steps" rule).
#[derive(Debug, Clone)]
pub struct Editor {
    pub role: Role,
    pub member_id: Option<String>,
}

/// The operation that failed and why.
#[derive(Debug, Clone, PartialEq)]
pub struct OpFailure {
    pub index: usize,
    pub error: PlanError,
}

/// Applies `ops` in order inside `tx` (which may be isolated at an older
/// version). The first failure stops everything; the caller rolls back, so a
/// refused request changes nothing.
pub fn apply_ops(
    tx: &mut impl Transactable,
    ops: &[Op],
    editor: &Editor,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Vec<OpResult>, OpFailure> {
    if ops.len() > MAX_OPS {
        return Err(OpFailure {
            index: MAX_OPS,
            error: PlanError::InvalidOp(format!("at most {MAX_OPS} operations per request")),
        });
    }
    let results = ops
        .iter()
        .enumerate()
        .map(|(index, op)| {
            apply_op(tx, op, editor, new_id).map_err(|error| OpFailure { index, error })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ops.iter().any(|op| op.op != "test") {
        upgrade(tx).map_err(|error| OpFailure { index: 0, error })?;
    }
    Ok(results)
}

/// A plan at an older version this build knows becomes one at
/// [`schema::CURRENT`] when it is next written (the versions add only
/// optional fields, so the document is valid at both). A plan at a later
/// version keeps it.
fn upgrade(tx: &mut impl Transactable) -> Result<(), PlanError> {
    let version = match tx.get(ROOT, "schema_version").map_err(internal)? {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            automerge::ScalarValue::Int(v) => *v,
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    if (1..schema::CURRENT).contains(&version) {
        tx.put(ROOT, "schema_version", schema::CURRENT)
            .map_err(internal)?;
    }
    Ok(())
}

/// Creates the sections (structs inside items) along `path` that an item
/// made at an older version lacks, so a field a later version added to
/// them can be set. Stops where the path leaves the schema or names an
/// item that does not exist: [`resolve`] then says why.
fn open_sections(tx: &mut impl Transactable, path: &str) -> Result<(), PlanError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (mut obj, mut fields, mut i) = (ROOT, latest(), 0);
    while i + 1 < segments.len() {
        let Some(field) = schema::field(fields, segments[i]) else {
            return Ok(());
        };
        let container = match child(tx, &obj, field.name) {
            Some(container) => container,
            None => match field.kind {
                Kind::Struct(inner) if obj != ROOT => {
                    let map = tx
                        .put_object(&obj, field.name, ObjType::Map)
                        .map_err(internal)?;
                    create_containers(tx, &map, inner, path)?;
                    map
                }
                _ => return Ok(()),
            },
        };
        match field.kind {
            Kind::Struct(inner) => {
                (obj, fields) = (container, inner);
                i += 1;
            }
            Kind::Collection(inner) => {
                let Some(item) = child(tx, &container, segments[i + 1]) else {
                    return Ok(());
                };
                (obj, fields) = (item, inner);
                i += 2;
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Where a path leads.
struct Target {
    /// The object holding the addressed key.
    obj: ObjId,
    key: String,
    /// The schema field at the key (for ratings entries, a synthetic 0–3 int).
    field: &'static Field,
    /// The path with item ids replaced by `*`, for the role table.
    pattern: String,
    /// The `responsible` member of the action step the path is inside, if any.
    step_responsible: Option<String>,
}

const RATING: Field = Field {
    name: "rating",
    kind: Kind::Int { min: 0, max: 3 },
    identifying: false,
    required: false,
};

fn resolve(doc: &impl ReadDoc, path: &str) -> Result<Target, PlanError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PlanError::InvalidOp(format!(
            "path `{path}` must start with `/`"
        )));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut obj = ROOT;
    let mut fields = latest();
    let mut pattern = String::new();
    let mut step_responsible = None;
    let mut i = 0;
    loop {
        let name = segments[i];
        let field = schema::field(fields, name)
            .ok_or_else(|| PlanError::InvalidOp(format!("`{path}` names no field of the plan")))?;
        pattern.push('/');
        pattern.push_str(name);
        if i + 1 == segments.len() {
            return Ok(Target {
                obj,
                key: name.to_string(),
                field,
                pattern,
                step_responsible,
            });
        }
        let container = child(doc, &obj, name)
            .ok_or_else(|| PlanError::schema(&pattern, "this plan lacks the section"))?;
        match field.kind {
            Kind::Struct(inner) => {
                obj = container;
                fields = inner;
                i += 1;
            }
            Kind::Collection(inner) => {
                let item_id = segments[i + 1];
                let item_path = segments[..i + 2].join("/");
                let item = child(doc, &container, item_id)
                    .ok_or_else(|| PlanError::NoSuchItem(format!("/{item_path}")))?;
                if i + 2 == segments.len() {
                    return Err(PlanError::InvalidOp(format!(
                        "`{path}` is a whole item: address one of its fields"
                    )));
                }
                if pattern == "/strategies/*/steps" {
                    step_responsible = doc
                        .get(&item, "responsible")
                        .ok()
                        .flatten()
                        .and_then(|(v, _)| v.into_scalar().ok())
                        .and_then(|s| s.as_str().map(str::to_string));
                }
                pattern.push_str("/*");
                obj = item;
                fields = inner;
                i += 2;
            }
            Kind::Ratings if i + 2 == segments.len() => {
                let code = segments[i + 1];
                if !is_item_code(code) {
                    return Err(PlanError::schema(path, "not an assessment item code"));
                }
                pattern.push_str("/*");
                return Ok(Target {
                    obj: container,
                    key: code.to_string(),
                    field: &RATING,
                    pattern,
                    step_responsible,
                });
            }
            _ => {
                return Err(PlanError::InvalidOp(format!(
                    "`{path}` goes inside a value"
                )));
            }
        }
    }
}

fn apply_op(
    tx: &mut impl Transactable,
    op: &Op,
    editor: &Editor,
    new_id: &mut dyn FnMut() -> String,
) -> Result<OpResult, PlanError> {
    match op.op.as_str() {
        "replace" | "add" | "test" => {}
        "remove" | "move" | "copy" => return Err(PlanError::Unsupported(op.op.clone())),
        other => {
            return Err(PlanError::InvalidOp(format!(
                "unknown op `{other}`: use replace, add or test"
            )))
        }
    }
    let value = op
        .value
        .as_ref()
        .ok_or_else(|| PlanError::InvalidOp(format!("`{}` needs a `value`", op.op)))?;
    if !editor.role.sees(&op.path) {
        // Decided before the path is looked up: whether the item exists,
        // and which op it is, must not change the answer (nor the work).
        let section = op.path.trim_start_matches('/').split('/').next();
        return Err(PlanError::Forbidden(format!(
            "/{}",
            section.unwrap_or_default()
        )));
    }
    if op.op == "test" {
        return test(tx, &op.path, value, editor).map(|()| OpResult::default());
    }
    open_sections(tx, &op.path)?;
    let target = resolve(tx, &op.path)?;
    let own_step = target.step_responsible.is_some() && target.step_responsible == editor.member_id;
    if !may_write(editor.role, &target.pattern, own_step) {
        return Err(PlanError::Forbidden(op.path.clone()));
    }
    match (op.op.as_str(), target.field.kind) {
        ("add", Kind::Collection(fields)) => {
            if !editor.role.hidden_sections().is_empty() && names_an_id(value) {
                // Whether an id is taken would tell of items in sections the
                // role is not shown; such roles never sync, so never need to.
                return Err(PlanError::InvalidItemId {
                    path: format!("{}/id", op.path),
                    detail: format!("a {} lets the node choose new items' ids", editor.role),
                });
            }
            let coll = child(tx, &target.obj, &target.key)
                .ok_or_else(|| PlanError::schema(&op.path, "this plan lacks the collection"))?;
            let id = add_item(tx, &coll, fields, value, &op.path, new_id)?;
            Ok(OpResult { id: Some(id) })
        }
        ("add", Kind::Refs(collection)) => {
            let id = value
                .as_str()
                .filter(|id| has_item(tx, collection, id))
                .ok_or_else(|| {
                    PlanError::schema(&op.path, format!("expected the id of a /{collection} item"))
                })?;
            let list = match child(tx, &target.obj, &target.key) {
                Some(list) => list,
                None => tx
                    .put_object(&target.obj, target.key.as_str(), ObjType::List)
                    .map_err(internal)?,
            };
            let present = tx
                .list_range(&list, ..)
                .any(|item| ref_json(item.value).is_some_and(|v| v == id));
            if !present {
                let len = tx.length(&list);
                tx.insert(&list, len, id).map_err(internal)?;
            }
            Ok(OpResult::default())
        }
        (_, Kind::Struct(_) | Kind::Collection(_) | Kind::Ratings) => Err(PlanError::InvalidOp(
            format!("`{}` is a section: set its fields one by one", op.path),
        )),
        _ => {
            set_field(tx, &target.obj, target.field, &target.key, value, &op.path)?;
            Ok(OpResult::default())
        }
    }
}

/// True when an item given to `add` (or one nested in it) names its own id.
fn names_an_id(value: &Json) -> bool {
    match value {
        Json::Object(map) => map.contains_key("id") || map.values().any(names_an_id),
        Json::Array(items) => items.iter().any(names_an_id),
        _ => false,
    }
}

/// Sets a leaf field (scalar or list of references); `null` clears it.
fn set_field(
    tx: &mut impl Transactable,
    obj: &ObjId,
    field: &Field,
    key: &str,
    value: &Json,
    path: &str,
) -> Result<(), PlanError> {
    if value.is_null() {
        if field.required {
            return Err(PlanError::schema(path, "required: it cannot be cleared"));
        }
        if tx.get(obj, key).map_err(internal)?.is_some() {
            tx.delete(obj, key).map_err(internal)?;
        }
        return Ok(());
    }
    match field.kind {
        Kind::Refs(collection) => {
            let ids = value.as_array().ok_or_else(|| {
                PlanError::schema(path, format!("expected a list of /{collection} ids"))
            })?;
            for id in ids {
                if !id.as_str().is_some_and(|id| has_item(tx, collection, id)) {
                    return Err(PlanError::schema(
                        path,
                        format!("{id} is not a /{collection} item"),
                    ));
                }
            }
            let list = tx.put_object(obj, key, ObjType::List).map_err(internal)?;
            for (i, id) in ids.iter().enumerate() {
                tx.insert(&list, i, id.as_str().unwrap_or_default())
                    .map_err(internal)?;
            }
            Ok(())
        }
        Kind::EnumList(_) => {
            check_scalar(&field.kind, value, path)?;
            let list = tx.put_object(obj, key, ObjType::List).map_err(internal)?;
            for (i, v) in value.as_array().into_iter().flatten().enumerate() {
                tx.insert(&list, i, v.as_str().unwrap_or_default())
                    .map_err(internal)?;
            }
            Ok(())
        }
        Kind::MemberRef => {
            check_scalar(&field.kind, value, path)?;
            if !value.as_str().is_some_and(|id| has_item(tx, "team", id)) {
                return Err(PlanError::schema(path, "must be the id of a team member"));
            }
            tx.put(obj, key, to_scalar(&field.kind, value))
                .map_err(internal)
        }
        Kind::Phone => {
            // Stored and shown as E.164, whatever was typed (`crate::text`).
            let typed = value
                .as_str()
                .ok_or_else(|| PlanError::schema(path, "expected a phone number"))?;
            let canonical =
                crate::text::normalize_phone(typed).map_err(|detail| PlanError::InvalidPhone {
                    path: path.to_string(),
                    detail,
                })?;
            let canonical = Json::String(canonical);
            check_scalar(&Kind::Phone, &canonical, path)?;
            tx.put(obj, key, to_scalar(&Kind::Phone, &canonical))
                .map_err(internal)
        }
        kind => {
            check_scalar(&kind, value, path)?;
            tx.put(obj, key, to_scalar(&kind, value)).map_err(internal)
        }
    }
}

/// True when the top-level collection `collection` holds item `id`.
fn has_item(doc: &impl ReadDoc, collection: &str, id: &str) -> bool {
    child(doc, &ROOT, collection).is_some_and(|coll| child(doc, &coll, id).is_some())
}

/// Adds one item (with any nested items given inline) and answers its id. A
/// client may name the id itself (a ULID not yet used), so that an offline
/// phone can link to the item before it syncs.
fn add_item(
    tx: &mut impl Transactable,
    coll: &ObjId,
    fields: &'static [Field],
    value: &Json,
    path: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Result<String, PlanError> {
    let object = value
        .as_object()
        .ok_or_else(|| PlanError::schema(path, "expected an object with the item's fields"))?;
    let taken = || PlanError::InvalidItemId {
        path: format!("{path}/id"),
        detail: "another item of this plan already has this id".into(),
    };
    let id = match object.get("id") {
        None => new_id(),
        Some(Json::String(id)) if is_new_item_id(id) => {
            if let Some(existing) = child(tx, coll, id) {
                // A retried add (the same item again) changes nothing and
                // answers the same id; other values under that id are refused.
                if same_item(tx, &existing, fields, object) {
                    return Ok(id.clone());
                }
                return Err(taken());
            }
            // Unique across the plan: an id is a name for one item only.
            if items_with_id(tx, id) > 0 {
                return Err(taken());
            }
            id.clone()
        }
        Some(_) => {
            return Err(PlanError::InvalidItemId {
                path: format!("{path}/id"),
                detail: "item ids must be ULIDs, upper case, as `ulid` writes them".into(),
            })
        }
    };
    let item_path = format!("{path}/{id}");
    let item = tx
        .put_object(coll, id.as_str(), ObjType::Map)
        .map_err(internal)?;
    fill_item(tx, &item, fields, object, &item_path, new_id)?;
    Ok(id)
}

/// True when the stored item holds every value `object` gives it. Nested
/// items given inline count as the same when they name ids the stored item
/// has (a retry-safe client names them).
fn same_item(
    doc: &impl ReadDoc,
    item: &ObjId,
    fields: &'static [Field],
    object: &Map<String, Json>,
) -> bool {
    let Ok(automerge::hydrate::Value::Map(stored)) = doc.hydrate(item, None) else {
        return false;
    };
    let stored = crate::plan::render_map(&stored, fields);
    object
        .iter()
        .filter(|(key, _)| *key != "id")
        .all(
            |(key, given)| match (schema::field(fields, key).map(|f| f.kind), stored.get(key)) {
                (Some(Kind::Collection(_)), Some(Json::Array(have))) => {
                    given.as_array().is_some_and(|items| {
                        items.iter().all(|i| {
                            i.get("id")
                                .is_some_and(|id| have.iter().any(|h| h.get("id") == Some(id)))
                        })
                    })
                }
                (Some(Kind::Struct(_)), Some(Json::Object(have))) => {
                    given.as_object().is_some_and(|g| {
                        g.iter().all(|(k, v)| {
                            v.is_null() || have.get(k).is_some_and(|h| numbers_equal(h, v))
                        })
                    })
                }
                (_, Some(have)) => numbers_equal(have, given),
                (_, None) => given.is_null(),
            },
        )
}

fn fill_item(
    tx: &mut impl Transactable,
    item: &ObjId,
    fields: &'static [Field],
    object: &Map<String, Json>,
    path: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Result<(), PlanError> {
    for key in object.keys() {
        if key != "id" && schema::field(fields, key).is_none() {
            return Err(PlanError::schema(&format!("{path}/{key}"), "unknown field"));
        }
    }
    create_containers(tx, item, fields, path)?;
    for field in fields {
        let field_path = format!("{path}/{}", field.name);
        let value = object.get(field.name).filter(|v| !v.is_null());
        match (field.kind, value) {
            (_, None) if field.required => return Err(PlanError::schema(&field_path, "required")),
            (Kind::Enum(values), None) if field.name == "status" => {
                tx.put(item, "status", values[0]).map_err(internal)?;
            }
            (_, None) => {}
            (Kind::Struct(inner), Some(v)) => {
                let nested = v
                    .as_object()
                    .ok_or_else(|| PlanError::schema(&field_path, "expected an object"))?;
                let obj = child(tx, item, field.name).ok_or_else(|| internal("no struct"))?;
                for key in nested.keys() {
                    if schema::field(inner, key).is_none() {
                        return Err(PlanError::schema(
                            &format!("{field_path}/{key}"),
                            "unknown field",
                        ));
                    }
                }
                for inner_field in inner {
                    if let Some(v) = nested.get(inner_field.name).filter(|v| !v.is_null()) {
                        let p = format!("{field_path}/{}", inner_field.name);
                        set_field(tx, &obj, inner_field, inner_field.name, v, &p)?;
                    }
                }
            }
            (Kind::Collection(inner), Some(v)) => {
                let items = v
                    .as_array()
                    .ok_or_else(|| PlanError::schema(&field_path, "expected a list of items"))?;
                let coll = child(tx, item, field.name).ok_or_else(|| internal("no collection"))?;
                for nested in items {
                    add_item(tx, &coll, inner, nested, &field_path, new_id)?;
                }
            }
            (Kind::Ratings, Some(v)) => {
                let ratings = v
                    .as_object()
                    .ok_or_else(|| PlanError::schema(&field_path, "expected item code → rating"))?;
                let obj = child(tx, item, field.name).ok_or_else(|| internal("no ratings"))?;
                for (code, rating) in ratings {
                    let p = format!("{field_path}/{code}");
                    if !is_item_code(code) {
                        return Err(PlanError::schema(&p, "not an assessment item code"));
                    }
                    set_field(tx, &obj, &RATING, code, rating, &p)?;
                }
            }
            (_, Some(v)) => set_field(tx, item, field, field.name, v, &field_path)?,
        }
    }
    Ok(())
}

/// `test`: the value at `path` (a field, a section or a whole item, as the
/// API renders it) equals `expected`.
fn test(doc: &impl ReadDoc, path: &str, expected: &Json, editor: &Editor) -> Result<(), PlanError> {
    let mut plan = render(doc);
    editor.role.hide_sections(&mut plan);
    let mut current = &plan;
    for segment in path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
    {
        current = match current {
            Json::Object(map) => map.get(segment),
            Json::Array(items) => items
                .iter()
                .find(|item| item.get("id").and_then(Json::as_str) == Some(segment)),
            _ => None,
        }
        .ok_or_else(|| PlanError::TestFailed(path.to_string()))?;
    }
    if numbers_equal(current, expected) {
        Ok(())
    } else {
        Err(PlanError::TestFailed(path.to_string()))
    }
}

fn numbers_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A short, identifier-free summary of the ops, kept as the change message
/// for the plan's history: `replace /needs/*/status; add /strengths`.
pub fn summarize(ops: &[Op]) -> String {
    let mut out = String::new();
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&op.op);
        out.push(' ');
        out.push_str(&pattern_of(&op.path));
        if out.len() > 500 {
            out.push_str("; …");
            break;
        }
    }
    out
}

/// True when `message` is a summary in the node's own grammar (as
/// [`summarize`] writes them, or `create plan`): op names and schema paths
/// only, so it can carry no free text. Messages devices attach to their
/// changes are shown only if they pass.
pub fn is_summary(message: &str) -> bool {
    if message == "create plan" {
        return true;
    }
    let parts: Vec<&str> = message.split("; ").collect();
    parts.iter().enumerate().all(|(i, part)| {
        if *part == "…" {
            return i + 1 == parts.len();
        }
        let Some((op, path)) = part.split_once(' ') else {
            return false;
        };
        matches!(op, "replace" | "add" | "test")
            && path.starts_with('/')
            && path[1..].split('/').all(|seg| {
                seg == "*"
                    || (!seg.is_empty()
                        && seg.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
                        }))
            })
    })
}

/// `path` with item ids as `*`.
pub fn pattern_of(path: &str) -> String {
    path.split('/')
        .map(|s| if is_item_id(s) { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{init_plan, validate};
    use automerge::Automerge;
    use serde_json::json;

    fn ops(v: Json) -> Vec<Op> {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0u64;
        move || {
            n += 1;
            ulid::Ulid::from_parts(1_700_000_000_000 + n, n as u128).to_string()
        }
    }

    fn facilitator() -> Editor {
        Editor {
            role: Role::Facilitator,
            member_id: None,
        }
    }

    fn new_doc() -> Automerge {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        assert!(init_plan(&mut tx, "Test family").is_ok());
        tx.commit();
        doc
    }

    fn apply(doc: &mut Automerge, editor: &Editor, v: Json) -> Result<Vec<OpResult>, OpFailure> {
        let mut gen = ids();
        let mut tx = doc.transaction();
        let result = apply_ops(&mut tx, &ops(v), editor, &mut gen);
        if result.is_ok() {
            tx.commit();
        } else {
            tx.rollback();
        }
        result
    }

    #[test]
    fn phone_numbers_are_stored_as_e164_whatever_was_typed() {
        let mut doc = new_doc();
        let added = apply(
            &mut doc,
            &facilitator(),
            json!([
                {"op":"add","path":"/team","value":{"name":"Ana","role":"caregiver","phone":"(303) 555-0123"}},
                {"op":"add","path":"/crisis_plan/contacts","value":{"name":"Crisis line","phone":"1-719-555-0142"}}
            ]),
        )
        .unwrap_or_default();
        let plan = render(&doc);
        assert_eq!(plan["team"][0]["phone"], json!("+13035550123"));
        assert_eq!(
            plan["crisis_plan"]["contacts"][0]["phone"],
            json!("+17195550142")
        );
        let ana = added[0].id.clone().unwrap_or_default();
        assert!(apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"replace","path":format!("/team/{ana}/phone"),"value":"+44 20 7946 0958"}]),
        )
        .is_ok());
        assert_eq!(render(&doc)["team"][0]["phone"], json!("+442079460958"));
        for typed in [
            "555-0123",
            "1-800-FLOWERS",
            "303-555-0123 x12",
            "303-555-0123\u{202E}",
            "42",
        ] {
            let refused = apply(
                &mut doc,
                &facilitator(),
                json!([{"op":"replace","path":format!("/team/{ana}/phone"),"value":typed}]),
            );
            assert!(
                matches!(&refused, Err(OpFailure { error: PlanError::InvalidPhone { path, .. }, .. }) if path.ends_with("/phone")),
                "{typed:?}: {refused:?}"
            );
        }
        assert_eq!(render(&doc)["team"][0]["phone"], json!("+442079460958"));
        assert_eq!(validate(&doc), Ok(()));
    }

    #[test]
    fn text_with_direction_controls_or_invisible_characters_is_refused() {
        let mut doc = new_doc();
        for (path, value) in [
            ("/vision", "Call \u{202E}3210-555-303"),
            ("/title", "Rivera\u{200B}"),
            ("/mission", "\u{FEFF}mission"),
        ] {
            let refused = apply(
                &mut doc,
                &facilitator(),
                json!([{"op":"replace","path":path,"value":value}]),
            );
            assert!(
                matches!(&refused, Err(OpFailure { error: PlanError::UnsafeText { path: p, .. }, .. }) if p == path),
                "{value:?}: {refused:?}"
            );
        }
        let refused = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"add","path":"/strengths","value":{"statement":"Kind\u{2066}"}}]),
        );
        assert!(matches!(
            refused,
            Err(OpFailure {
                error: PlanError::UnsafeText { .. },
                ..
            })
        ));
        assert!(apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"replace","path":"/vision","value":"Señora Muñoz\nsays hello \u{1F44B}"}]),
        )
        .is_ok());
        let mut tx = doc.transaction();
        assert!(matches!(
            init_plan(&mut tx, "\u{202E}ylimaf"),
            Err(PlanError::UnsafeText { .. })
        ));
    }

    #[test]
    fn add_answers_an_id_and_items_are_addressed_by_it() {
        let mut doc = new_doc();
        let result = apply(
            &mut doc,
            &facilitator(),
            json!([
                {"op":"replace","path":"/vision","value":"We stay together"},
                {"op":"add","path":"/needs","value":{"domain":"school","statement":"Get to school","priority":1}}
            ]),
        );
        let Ok(results) = result else {
            panic!("{result:?}")
        };
        let Some(id) = results[1].id.clone() else {
            panic!("no id")
        };
        let r = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"replace","path":format!("/needs/{id}/status"),"value":"met"}]),
        );
        assert!(r.is_ok(), "{r:?}");
        let plan = render(&doc);
        assert_eq!(plan["vision"], "We stay together");
        assert_eq!(plan["needs"][0]["id"], json!(id));
        assert_eq!(plan["needs"][0]["status"], "met");
        assert_eq!(validate(&doc), Ok(()));
    }

    #[test]
    fn nothing_is_removed_and_unknown_ops_are_refused() {
        let mut doc = new_doc();
        let r = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"remove","path":"/vision"}]),
        );
        assert!(matches!(
            r,
            Err(OpFailure {
                error: PlanError::Unsupported(_),
                ..
            })
        ));
        let r = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"frobnicate","path":"/vision","value":1}]),
        );
        assert!(matches!(
            r,
            Err(OpFailure {
                error: PlanError::InvalidOp(_),
                ..
            })
        ));
        let r = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"replace","path":"/vision"}]),
        );
        assert!(matches!(
            r,
            Err(OpFailure {
                error: PlanError::InvalidOp(_),
                ..
            })
        ));
    }

    #[test]
    fn wrong_types_are_refused_whole() {
        let mut doc = new_doc();
        let before = render(&doc);
        let r = apply(
            &mut doc,
            &facilitator(),
            json!([
                {"op":"replace","path":"/vision","value":"ok"},
                {"op":"replace","path":"/enrollment/phase","value":"party"}
            ]),
        );
        assert!(matches!(
            r,
            Err(OpFailure {
                index: 1,
                error: PlanError::Schema { .. }
            })
        ));
        assert_eq!(render(&doc), before);
        for bad in [
            json!({"op":"replace","path":"/enrollment/enrolled_on","value":"yesterday"}),
            json!({"op":"replace","path":"/vision","value":42}),
            json!({"op":"add","path":"/needs","value":{"statement":"no domain"}}),
            json!({"op":"add","path":"/needs","value":{"domain":"home","statement":"x","ssn":"1"}}),
            json!({"op":"replace","path":"/needs/01JAAAAAAAAAAAAAAAAAAAAAAA/status","value":"met"}),
            json!({"op":"replace","path":"/nope","value":"x"}),
            json!({"op":"replace","path":"vision","value":"x"}),
            json!({"op":"replace","path":"/crisis_plan","value":{}}),
        ] {
            assert!(
                apply(&mut doc, &facilitator(), json!([bad])).is_err(),
                "{bad}"
            );
        }
        assert_eq!(render(&doc), before);
    }

    #[test]
    fn a_caregiver_marks_only_their_own_step_done_and_never_edits_the_roster() {
        let mut doc = new_doc();
        let Ok(r) = apply(
            &mut doc,
            &facilitator(),
            json!([
                {"op":"add","path":"/team","value":{"name":"Ana","role":"caregiver"}},
                {"op":"add","path":"/team","value":{"name":"Bo","role":"provider"}},
            ]),
        ) else {
            panic!()
        };
        let (ana, bo) = (
            r[0].id.clone().unwrap_or_default(),
            r[1].id.clone().unwrap_or_default(),
        );
        let Ok(r) = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"add","path":"/strategies","value":{
                "description":"Rides to school","kind":"flex",
                "flex":{"category":"transportation","amount_cents":4500},
                "steps":[{"description":"Buy bus pass","responsible":ana},
                         {"description":"Call school","responsible":bo}]}}]),
        ) else {
            panic!()
        };
        let sid = r[0].id.clone().unwrap_or_default();
        let plan = render(&doc);
        let steps = plan["strategies"][0]["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(steps.len(), 2);
        let step_of = |who: &str| {
            steps
                .iter()
                .find(|s| s["responsible"] == who)
                .and_then(|s| s["id"].as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let caregiver = Editor {
            role: Role::Caregiver,
            member_id: Some(ana.clone()),
        };
        let own = format!("/strategies/{sid}/steps/{}/done_on", step_of(&ana));
        let other = format!("/strategies/{sid}/steps/{}/done_on", step_of(&bo));
        assert!(apply(
            &mut doc,
            &caregiver,
            json!([{"op":"replace","path":own,"value":"2026-03-01"}])
        )
        .is_ok());
        let r = apply(
            &mut doc,
            &caregiver,
            json!([{"op":"replace","path":other,"value":"2026-03-01"}]),
        );
        assert!(matches!(
            r,
            Err(OpFailure {
                error: PlanError::Forbidden(_),
                ..
            })
        ));
        let r = apply(
            &mut doc,
            &caregiver,
            json!([{"op":"add","path":"/team","value":{"name":"Eve","role":"youth"}}]),
        );
        assert!(matches!(
            r,
            Err(OpFailure {
                error: PlanError::Forbidden(_),
                ..
            })
        ));
        let r = apply(
            &mut doc,
            &caregiver,
            json!([{"op":"replace","path":format!("/team/{bo}/role"),"value":"facilitator"}]),
        );
        assert!(matches!(
            r,
            Err(OpFailure {
                error: PlanError::Forbidden(_),
                ..
            })
        ));
        assert_eq!(validate(&doc), Ok(()));
    }

    #[test]
    fn test_op_checks_preconditions() {
        let mut doc = new_doc();
        let ok = apply(
            &mut doc,
            &facilitator(),
            json!([
                {"op":"test","path":"/enrollment/phase","value":"engagement"},
                {"op":"replace","path":"/enrollment/phase","value":"planning"}
            ]),
        );
        assert!(ok.is_ok());
        let r = apply(
            &mut doc,
            &facilitator(),
            json!([
                {"op":"test","path":"/enrollment/phase","value":"engagement"},
                {"op":"replace","path":"/enrollment/phase","value":"implementation"}
            ]),
        );
        assert!(matches!(
            r,
            Err(OpFailure {
                error: PlanError::TestFailed(_),
                ..
            })
        ));
        assert_eq!(render(&doc)["enrollment"]["phase"], "planning");
    }

    #[test]
    fn edits_at_an_old_version_merge_with_newer_ones() {
        let mut doc = new_doc();
        let base = doc.get_heads();
        assert!(apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"replace","path":"/vision","value":"A"}])
        )
        .is_ok());
        let mut gen = ids();
        let mut tx = match doc.transaction_at(automerge::PatchLog::inactive(), &base) {
            Ok(tx) => tx,
            Err(e) => panic!("{e}"),
        };
        let r = apply_ops(
            &mut tx,
            &ops(json!([{"op":"replace","path":"/mission","value":"B"}])),
            &facilitator(),
            &mut gen,
        );
        assert!(r.is_ok());
        tx.commit();
        let plan = render(&doc);
        assert_eq!(plan["vision"], "A");
        assert_eq!(plan["mission"], "B");
        assert_eq!(doc.get_heads().len(), 2);
    }

    #[test]
    fn ratings_and_references() {
        let mut doc = new_doc();
        let Ok(r) = apply(
            &mut doc,
            &facilitator(),
            json!([
                {"op":"add","path":"/needs","value":{"domain":"home","statement":"Calm evenings"}},
                {"op":"add","path":"/cans","value":{"assessed_on":"2026-01-05","ratings":{"ls.family":2,"bh.anxiety":3}}}
            ]),
        ) else {
            panic!()
        };
        let need = r[0].id.clone().unwrap_or_default();
        let cans = r[1].id.clone().unwrap_or_default();
        assert!(apply(&mut doc, &facilitator(), json!([
            {"op":"add","path":"/outcomes","value":{"statement":"Calm","needs":[need],"target":5}},
            {"op":"replace","path":format!("/cans/{cans}/ratings/bh.anxiety"),"value":1}
        ])).is_ok());
        let bad = apply(
            &mut doc,
            &facilitator(),
            json!([
            {"op":"replace","path":format!("/cans/{cans}/ratings/bh.anxiety"),"value":4}]),
        );
        assert!(bad.is_err());
        let bad = apply(
            &mut doc,
            &facilitator(),
            json!([
            {"op":"add","path":"/outcomes","value":{"statement":"x","needs":["01JAAAAAAAAAAAAAAAAAAAAAAA"]}}]),
        );
        assert!(bad.is_err());
        let plan = render(&doc);
        assert_eq!(plan["cans"][0]["ratings"]["bh.anxiety"], 1);
        assert_eq!(plan["outcomes"][0]["needs"][0], json!(need));
        assert_eq!(validate(&doc), Ok(()));
    }

    #[test]
    fn only_summaries_in_the_node_grammar_pass() {
        assert!(is_summary("create plan"));
        assert!(is_summary("replace /needs/*/status; add /strengths"));
        assert!(is_summary(&summarize(&ops(json!([
            {"op":"add","path":"/cans/01JAAAAAAAAAAAAAAAAAAAAAAA/ratings/bh.anxiety","value":1}
        ])))));
        assert!(!is_summary("Maya Rivera DOB 2012-03-04 — replace /title"));
        assert!(!is_summary("replace /title Maya"));
        assert!(!is_summary("replace /Maya"));
        assert!(!is_summary(""));
    }

    #[test]
    fn a_retried_add_with_its_own_id_changes_nothing() {
        let mut doc = new_doc();
        let id = ulid::Ulid::new().to_string();
        let add = json!([{"op":"add","path":"/needs","value":{"id":id,"domain":"home","statement":"Calm","priority":2}}]);
        let first = apply(&mut doc, &facilitator(), add.clone());
        let heads = doc.get_heads();
        let again = apply(&mut doc, &facilitator(), add);
        assert_eq!(first.ok(), again.ok());
        assert_eq!(doc.get_heads(), heads, "the retry made no change");
        assert_eq!(render(&doc)["needs"].as_array().map(Vec::len), Some(1));
        let other = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"add","path":"/needs","value":{"id":id,"domain":"home","statement":"Different"}}]),
        );
        assert!(matches!(
            other,
            Err(OpFailure {
                error: PlanError::InvalidItemId { .. },
                ..
            })
        ));
    }

    #[test]
    fn new_item_ids_are_canonical_ulids_unique_across_the_plan() {
        let mut doc = new_doc();
        let id = ulid::Ulid::new().to_string();
        let need = |id: &str| json!([{"op":"add","path":"/needs","value":{"id":id,"domain":"home","statement":"Calm"}}]);
        assert!(apply(&mut doc, &facilitator(), need(&id)).is_ok());
        let strength = |id: &str| json!([{"op":"add","path":"/strengths","value":{"id":id,"statement":"Kind"}}]);
        for bad in [
            id.clone(),
            id.to_lowercase(),
            format!("8{}", &id[1..]),
            "strength-1".to_string(),
        ] {
            let r = apply(&mut doc, &facilitator(), strength(&bad));
            assert!(
                matches!(
                    &r,
                    Err(OpFailure {
                        error: PlanError::InvalidItemId { .. },
                        ..
                    })
                ),
                "{bad}: {r:?}"
            );
        }
        // Nested items too: a step may not reuse the need's id.
        let r = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"add","path":"/strategies","value":{"description":"S","kind":"natural",
                "steps":[{"id":id,"description":"Step"}]}}]),
        );
        assert!(
            matches!(
                &r,
                Err(OpFailure {
                    error: PlanError::InvalidItemId { .. },
                    ..
                })
            ),
            "{r:?}"
        );
        let fresh = ulid::Ulid::new().to_string();
        assert!(apply(&mut doc, &facilitator(), strength(&fresh)).is_ok());
    }

    #[test]
    fn ops_in_a_hidden_section_get_one_answer_whether_or_not_the_item_exists() {
        let mut doc = new_doc();
        let Ok(r) = apply(
            &mut doc,
            &facilitator(),
            json!([{"op":"add","path":"/cans","value":{"assessed_on":"2026-01-05","ratings":{"ls.family":2}}}]),
        ) else {
            panic!()
        };
        let cans = r[0].id.clone().unwrap_or_default();
        let missing = "01JAAAAAAAAAAAAAAAAAAAAAAA";
        let natural = Editor {
            role: Role::NaturalSupport,
            member_id: None,
        };
        for (op, tail) in [
            ("replace", "/assessed_on"),
            ("test", "/assessed_on"),
            ("add", "/ratings/ls.family"),
            ("replace", "/nope"),
        ] {
            let answer = |item: &str| {
                let path = format!("/cans/{item}{tail}");
                apply(
                    &mut doc.clone(),
                    &natural,
                    json!([{"op":op,"path":path,"value":"2026-01-05"}]),
                )
            };
            let (hidden, absent) = (answer(&cans), answer(missing));
            assert_eq!(hidden, absent, "{op} {tail}");
            assert!(
                matches!(hidden, Err(OpFailure { error: PlanError::Forbidden(ref p), .. }) if p == "/cans")
            );
        }
        // Adding a visible item under a hidden item's id, or a free one.
        let named = |item: &str| {
            let add =
                json!([{"op":"add","path":"/strengths","value":{"id":item,"statement":"Kind"}}]);
            apply(&mut doc.clone(), &natural, add)
        };
        let (hidden, absent) = (named(&cans), named(missing));
        assert_eq!(hidden, absent);
        assert!(matches!(
            hidden,
            Err(OpFailure {
                error: PlanError::InvalidItemId { .. },
                ..
            })
        ));
    }

    #[test]
    fn summaries_hold_no_ids() {
        let s = summarize(&ops(json!([
            {"op":"replace","path":"/needs/01JAAAAAAAAAAAAAAAAAAAAAAA/status","value":"met"}
        ])));
        assert_eq!(s, "replace /needs/*/status");
    }
}
