//! Plan documents: creating one, rendering it to JSON, and validating a whole
//! document against the schema (for changes that arrive as Automerge bytes).
//!
//! Operations on a plan live in [`crate::ops`]; both walk [`crate::schema`].

use crate::schema::{self, Field, Kind, PLAN, SCHEMA_VERSION};
use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};
use serde_json::{Map, Number, Value as Json};
use thiserror::Error;

/// Why a plan edit or document was refused. Each variant is a stable problem
/// type the server maps to HTTP in one place.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlanError {
    /// The operation itself is malformed (unknown `op`, missing `value`, a
    /// path that names no field).
    #[error("{0}")]
    InvalidOp(String),
    /// `remove`, `move` and `copy`: plan items are closed by status instead.
    #[error(
        "`{0}` is not supported: plan items are closed by setting their status, never removed"
    )]
    Unsupported(String),
    /// A value or document that breaks the plan schema.
    #[error("`{path}`: {detail}")]
    Schema { path: String, detail: String },
    /// A list item the path names does not exist (at the version edited).
    #[error("`{0}` does not exist in this plan")]
    NoSuchItem(String),
    /// The caller's role may not change this part of the plan.
    #[error("your role on this team may not change `{0}`")]
    Forbidden(String),
    /// A `test` operation's precondition did not hold.
    #[error("test failed: `{0}` does not hold the expected value")]
    TestFailed(String),
    /// The base version names changes this node has never seen.
    #[error("base version {0} is unknown to this node")]
    UnknownVersion(String),
}

impl PlanError {
    /// The stable problem type code (`/problems/<code>`).
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::InvalidOp(_) => "invalid-op",
            PlanError::Unsupported(_) => "unsupported-op",
            PlanError::Schema { .. } => "schema-violation",
            PlanError::NoSuchItem(_) => "no-such-item",
            PlanError::Forbidden(_) => "forbidden",
            PlanError::TestFailed(_) => "test-failed",
            PlanError::UnknownVersion(_) => "unknown-version",
        }
    }

    pub(crate) fn schema(path: &str, detail: impl Into<String>) -> Self {
        PlanError::Schema {
            path: path.to_string(),
            detail: detail.into(),
        }
    }
}

/// A new, empty plan: every struct and collection map exists from the first
/// change, so offline edits never race to create the same container.
pub fn init_plan(tx: &mut impl Transactable, title: &str) -> Result<(), PlanError> {
    check_scalar(
        &Kind::Text { max: 200 },
        &Json::String(title.into()),
        "/title",
    )?;
    let put = |r: Result<(), automerge::AutomergeError>| r.map_err(internal);
    put(tx.put(ROOT, "schema_version", SCHEMA_VERSION))?;
    put(tx.put(ROOT, "title", title))?;
    create_containers(tx, &ROOT, PLAN, "")?;
    let enrollment = child(tx, &ROOT, "enrollment").ok_or_else(|| internal("no enrollment"))?;
    put(tx.put(&enrollment, "phase", "engagement"))?;
    Ok(())
}

/// Creates the empty maps for every struct, collection and ratings field of
/// `fields` under `obj` that does not exist yet.
pub(crate) fn create_containers(
    tx: &mut impl Transactable,
    obj: &ObjId,
    fields: &[Field],
    path: &str,
) -> Result<(), PlanError> {
    for field in fields {
        let container = matches!(
            field.kind,
            Kind::Struct(_) | Kind::Collection(_) | Kind::Ratings
        );
        if !container || child(tx, obj, field.name).is_some() {
            continue;
        }
        let map = tx
            .put_object(obj, field.name, ObjType::Map)
            .map_err(internal)?;
        if let Kind::Struct(inner) = field.kind {
            create_containers(tx, &map, inner, &format!("{path}/{}", field.name))?;
        }
    }
    Ok(())
}

pub(crate) fn internal(e: impl std::fmt::Display) -> PlanError {
    PlanError::schema("/", format!("document error: {e}"))
}

/// The map or list object stored at `obj[key]`, if any.
pub(crate) fn child(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(_), id))) => Some(id),
        _ => None,
    }
}

/// Renders a plan document as the JSON the API serves: structs as objects,
/// collections as arrays of items (each with its `id`) in creation order.
pub fn render(doc: &impl ReadDoc) -> Json {
    let mut root = render_fields(doc, &ROOT, PLAN);
    if let Ok(Some((Value::Scalar(v), _))) = doc.get(ROOT, "schema_version") {
        if let ScalarValue::Int(n) = v.as_ref() {
            root.insert("schema_version".into(), Json::from(*n));
        }
    }
    Json::Object(root)
}

fn render_fields(doc: &impl ReadDoc, obj: &ObjId, fields: &[Field]) -> Map<String, Json> {
    let mut out = Map::new();
    for field in fields {
        if let Some(value) = render_field(doc, obj, field) {
            out.insert(field.name.to_string(), value);
        }
    }
    out
}

fn render_field(doc: &impl ReadDoc, obj: &ObjId, field: &Field) -> Option<Json> {
    let (value, id) = doc.get(obj, field.name).ok()??;
    Some(match (field.kind, value) {
        (Kind::Struct(inner), Value::Object(ObjType::Map)) => {
            Json::Object(render_fields(doc, &id, inner))
        }
        (Kind::Collection(inner), Value::Object(ObjType::Map)) => Json::Array(
            doc.map_range(&id, ..)
                .map(|item| {
                    let item_id = item.id();
                    let mut rendered = Map::new();
                    rendered.insert("id".into(), Json::String(item.key.to_string()));
                    rendered.extend(render_fields(doc, &item_id, inner));
                    Json::Object(rendered)
                })
                .collect(),
        ),
        (Kind::Ratings, Value::Object(ObjType::Map)) => Json::Object(
            doc.map_range(&id, ..)
                .filter_map(|item| Some((item.key.to_string(), ref_json(item.value)?)))
                .collect(),
        ),
        (Kind::Refs(_), Value::Object(ObjType::List)) => Json::Array(
            doc.list_range(&id, ..)
                .filter_map(|item| ref_json(item.value))
                .collect(),
        ),
        (_, Value::Scalar(s)) => scalar_json(s.as_ref())?,
        _ => return None,
    })
}

pub(crate) fn scalar_json(value: &ScalarValue) -> Option<Json> {
    Some(match value {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(n) => Json::from(*n),
        ScalarValue::Uint(n) => Json::from(*n),
        ScalarValue::F64(x) => Json::Number(Number::from_f64(*x)?),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        _ => return None,
    })
}

/// A list or map entry's scalar value as JSON.
pub(crate) fn ref_json(value: automerge::ValueRef<'_>) -> Option<Json> {
    match Value::from(value) {
        Value::Scalar(s) => scalar_json(s.as_ref()),
        Value::Object(_) => None,
    }
}

/// A field that people set concurrently: every value, with the actor that
/// set it. The plan shows one (Automerge's deterministic winner); a
/// `replace` of the field resolves the conflict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Conflict {
    pub path: String,
    /// `(value, actor hex)`, the shown value first.
    pub values: Vec<(Json, String)>,
}

/// Every conflicted field of the plan.
pub fn conflicts(doc: &impl ReadDoc) -> Vec<Conflict> {
    let mut out = Vec::new();
    collect_conflicts(doc, &ROOT, PLAN, "", &mut out);
    out
}

fn collect_conflicts(
    doc: &impl ReadDoc,
    obj: &ObjId,
    fields: &[Field],
    path: &str,
    out: &mut Vec<Conflict>,
) {
    for field in fields {
        let field_path = format!("{path}/{}", field.name);
        match field.kind {
            Kind::Struct(inner) => {
                if let Some(map) = child(doc, obj, field.name) {
                    collect_conflicts(doc, &map, inner, &field_path, out);
                }
            }
            Kind::Collection(inner) => {
                if let Some(map) = child(doc, obj, field.name) {
                    for item in doc.map_range(&map, ..) {
                        let item_path = format!("{field_path}/{}", item.key);
                        collect_conflicts(doc, &item.id(), inner, &item_path, out);
                    }
                }
            }
            _ => {
                let Ok(values) = doc.get_all(obj, field.name) else {
                    continue;
                };
                if values.len() < 2 {
                    continue;
                }
                let mut values: Vec<(Json, String)> = values
                    .into_iter()
                    .map(|(value, id)| {
                        let json = match value {
                            Value::Scalar(s) => scalar_json(s.as_ref()).unwrap_or(Json::Null),
                            Value::Object(_) => Json::Null,
                        };
                        let actor = match id {
                            ObjId::Id(_, actor, _) => actor.to_hex_string(),
                            ObjId::Root => String::new(),
                        };
                        (json, actor)
                    })
                    .collect();
                // get_all lists the winner last; show it first.
                values.reverse();
                out.push(Conflict {
                    path: field_path,
                    values,
                });
            }
        }
    }
}

/// Checks a JSON value against a scalar field kind. Containers are checked
/// by their callers.
pub(crate) fn check_scalar(kind: &Kind, value: &Json, path: &str) -> Result<(), PlanError> {
    let bad = |detail: String| Err(PlanError::schema(path, detail));
    match (kind, value) {
        (Kind::Text { max }, Json::String(s)) => {
            if s.chars().count() > *max {
                return bad(format!("text longer than {max} characters"));
            }
            if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return bad("text holds control characters".into());
            }
            Ok(())
        }
        (Kind::Date, Json::String(s)) if is_date(s) => Ok(()),
        (Kind::Date, _) => bad("expected a date, YYYY-MM-DD".into()),
        (Kind::Int { min, max }, Json::Number(n)) => match n.as_i64() {
            Some(v) if (*min..=*max).contains(&v) => Ok(()),
            _ => bad(format!("expected a whole number from {min} to {max}")),
        },
        (Kind::Number, Json::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => Ok(()),
        (Kind::Enum(values), Json::String(s)) if values.contains(&s.as_str()) => Ok(()),
        (Kind::Enum(values), _) => bad(format!("expected one of {}", values.join(", "))),
        (Kind::MemberRef, Json::String(s)) if is_item_id(s) => Ok(()),
        (Kind::Text { .. }, _) => bad("expected a string".into()),
        (Kind::Int { .. }, _) | (Kind::Number, _) => bad("expected a number".into()),
        (Kind::MemberRef, _) => bad("expected a team member id".into()),
        _ => bad("expected a different kind of value".into()),
    }
}

/// A JSON value (already checked) as the scalar stored for `kind`.
pub(crate) fn to_scalar(kind: &Kind, value: &Json) -> ScalarValue {
    match (kind, value) {
        (Kind::Int { .. }, Json::Number(n)) => ScalarValue::Int(n.as_i64().unwrap_or_default()),
        (Kind::Number, Json::Number(n)) => ScalarValue::F64(n.as_f64().unwrap_or_default()),
        (_, Json::String(s)) => ScalarValue::Str(s.as_str().into()),
        (_, Json::Bool(b)) => ScalarValue::Boolean(*b),
        _ => ScalarValue::Null,
    }
}

/// `YYYY-MM-DD`, a real calendar date.
pub fn is_date(s: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    s.len() == 10 && time::Date::parse(s, format).is_ok()
}

/// Item ids are ULIDs: 26 Crockford base-32 characters, time-ordered.
pub fn is_item_id(s: &str) -> bool {
    s.len() == 26 && ulid::Ulid::from_string(s).is_ok()
}

/// CANS item codes: short lowercase codes, never licensed item text.
pub fn is_item_code(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.len() <= 40
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// Checks a whole document against the schema: every key known, every value
/// (including concurrent, conflicting values) of the right kind, every item
/// complete and every reference resolving. Used on a scratch copy before any
/// change that arrived as Automerge bytes is kept.
pub fn validate(doc: &impl ReadDoc) -> Result<(), PlanError> {
    for key in doc.keys(ROOT) {
        if key != "schema_version" && schema::field(PLAN, &key).is_none() {
            return Err(PlanError::schema(&format!("/{key}"), "unknown field"));
        }
    }
    match doc.get(ROOT, "schema_version") {
        Ok(Some((Value::Scalar(v), _))) if *v.as_ref() == ScalarValue::Int(SCHEMA_VERSION) => {}
        _ => {
            return Err(PlanError::schema(
                "/schema_version",
                format!("expected schema version {SCHEMA_VERSION}"),
            ))
        }
    }
    let rendered = render(doc);
    validate_fields(doc, &ROOT, PLAN, "", &rendered, true)
}

fn validate_fields(
    doc: &impl ReadDoc,
    obj: &ObjId,
    fields: &'static [Field],
    path: &str,
    plan: &Json,
    is_root: bool,
) -> Result<(), PlanError> {
    if !is_root {
        for key in doc.keys(obj) {
            if schema::field(fields, &key).is_none() {
                return Err(PlanError::schema(&format!("{path}/{key}"), "unknown field"));
            }
        }
    }
    for field in fields {
        let field_path = format!("{path}/{}", field.name);
        let values = doc.get_all(obj, field.name).map_err(internal)?;
        if values.is_empty() && field.required {
            return Err(PlanError::schema(&field_path, "required"));
        }
        for (value, id) in values {
            validate_value(doc, field, value, &id, &field_path, plan)?;
        }
    }
    Ok(())
}

fn validate_value(
    doc: &impl ReadDoc,
    field: &Field,
    value: Value<'_>,
    id: &ObjId,
    path: &str,
    plan: &Json,
) -> Result<(), PlanError> {
    match (field.kind, value) {
        (Kind::Struct(inner), Value::Object(ObjType::Map)) => {
            validate_fields(doc, id, inner, path, plan, false)
        }
        (Kind::Collection(inner), Value::Object(ObjType::Map)) => {
            for item in doc.map_range(id, ..) {
                let item_path = format!("{path}/{}", item.key);
                if !is_item_id(&item.key) {
                    return Err(PlanError::schema(&item_path, "item ids must be ULIDs"));
                }
                match item.value {
                    automerge::ValueRef::Object(ObjType::Map) => {
                        validate_fields(doc, &item.id(), inner, &item_path, plan, false)?
                    }
                    _ => return Err(PlanError::schema(&item_path, "expected an item map")),
                }
            }
            Ok(())
        }
        (Kind::Ratings, Value::Object(ObjType::Map)) => {
            for item in doc.map_range(id, ..) {
                let item_path = format!("{path}/{}", item.key);
                if !is_item_code(&item.key) {
                    return Err(PlanError::schema(&item_path, "not an assessment item code"));
                }
                let ok = matches!(ref_json(item.value).and_then(|v| v.as_i64()), Some(0..=3));
                if !ok {
                    return Err(PlanError::schema(&item_path, "ratings are 0 to 3"));
                }
            }
            Ok(())
        }
        (Kind::Refs(collection), Value::Object(ObjType::List)) => {
            for item in doc.list_range(id, ..) {
                let target = ref_json(item.value);
                match target {
                    Some(Json::String(s)) if item_exists(plan, collection, &s) => {}
                    _ => {
                        return Err(PlanError::schema(
                            path,
                            format!("must list ids of /{collection} items"),
                        ))
                    }
                }
            }
            Ok(())
        }
        (Kind::MemberRef, Value::Scalar(s)) => match scalar_json(s.as_ref()) {
            Some(Json::String(m)) if item_exists(plan, "team", &m) => Ok(()),
            _ => Err(PlanError::schema(path, "must be the id of a team member")),
        },
        (kind, Value::Scalar(s)) => {
            let json = scalar_json(s.as_ref())
                .ok_or_else(|| PlanError::schema(path, "unsupported value type"))?;
            // Numbers arrive as integers from some clients: both are numbers.
            check_scalar(&kind, &json, path)
        }
        _ => Err(PlanError::schema(path, "wrong kind of object")),
    }
}

/// True when the top-level collection `collection` holds an item `id`.
pub(crate) fn item_exists(plan: &Json, collection: &str, id: &str) -> bool {
    plan.get(collection)
        .and_then(Json::as_array)
        .is_some_and(|items| {
            items
                .iter()
                .any(|i| i.get("id").and_then(Json::as_str) == Some(id))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::Automerge;

    pub(crate) fn new_doc() -> Automerge {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        assert!(init_plan(&mut tx, "Rivera family plan").is_ok());
        tx.commit();
        doc
    }

    #[test]
    fn a_new_plan_renders_every_section_empty() {
        let json = render(&new_doc());
        assert_eq!(json["title"], "Rivera family plan");
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["enrollment"]["phase"], "engagement");
        assert_eq!(json["team"], Json::Array(vec![]));
        assert!(json["crisis_plan"]["contacts"].is_array());
        assert!(json["transition"].is_object());
    }

    #[test]
    fn a_new_plan_is_valid() {
        assert_eq!(validate(&new_doc()), Ok(()));
    }

    #[test]
    fn validation_catches_unknown_fields_and_wrong_types() {
        let mut doc = new_doc();
        let mut tx = doc.transaction();
        assert!(tx.put(ROOT, "ssn", "123").is_ok());
        tx.commit();
        assert!(matches!(validate(&doc), Err(PlanError::Schema { path, .. }) if path == "/ssn"));

        let mut doc = new_doc();
        let enrollment = child(&doc, &ROOT, "enrollment");
        let mut tx = doc.transaction();
        assert!(enrollment.is_some_and(|e| tx.put(&e, "phase", "on_holiday").is_ok()));
        tx.commit();
        assert!(
            matches!(validate(&doc), Err(PlanError::Schema { path, .. }) if path == "/enrollment/phase")
        );
    }

    #[test]
    fn concurrent_sets_show_as_conflicts_until_a_replace_resolves_them() {
        let mut a = new_doc();
        let mut b = a.fork().with_actor(automerge::ActorId::random());
        for (doc, text) in [(&mut a, "A's vision"), (&mut b, "B's vision")] {
            let mut tx = doc.transaction();
            assert!(tx.put(ROOT, "vision", text).is_ok());
            tx.commit();
        }
        assert!(a.merge(&mut b).is_ok());
        let found = conflicts(&a);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "/vision");
        assert_eq!(found[0].values.len(), 2);
        assert_eq!(
            found[0].values[0].0,
            render(&a)["vision"],
            "the shown value first"
        );
        let mut tx = a.transaction();
        assert!(tx.put(ROOT, "vision", "agreed").is_ok());
        tx.commit();
        assert!(conflicts(&a).is_empty());
    }

    #[test]
    fn dates_ids_and_codes() {
        assert!(is_date("2026-02-28"));
        assert!(!is_date("2026-02-30"));
        assert!(!is_date("26-02-28"));
        assert!(is_item_id(&ulid::Ulid::new().to_string()));
        assert!(!is_item_id("not-an-id"));
        assert!(is_item_code("ls.family_functioning"));
        assert!(!is_item_code("Family Functioning"));
        assert!(!is_item_code(""));
    }
}
