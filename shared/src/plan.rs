//! Plan documents: creating one, rendering it to JSON, and validating a whole
//! document against the schema (for changes that arrive as Automerge bytes).
//!
//! Operations on a plan live in [`crate::ops`]; both walk [`crate::schema`].

use crate::problems::ProblemType;
use crate::schema::versions::{fallback, is_digits, is_language_tag};
use crate::schema::{self, latest, Field, Kind, CURRENT};
use automerge::transaction::Transactable;
use automerge::{hydrate, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};
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
    /// A new item's id that is not a canonical ULID, or that another item
    /// of the plan (in any collection) already has.
    #[error("`{path}`: {detail}")]
    InvalidItemId { path: String, detail: String },
    /// Text holding a bidirectional control or an invisible character
    /// (see [`crate::text`]).
    #[error("`{path}`: {detail}")]
    UnsafeText { path: String, detail: String },
    /// A phone number that is not one valid number (ops), or not stored in
    /// its canonical E.164 form (sync, import).
    #[error("`{path}`: {detail}")]
    InvalidPhone { path: String, detail: String },
}

impl PlanError {
    /// The problem type a client is answered with.
    pub fn problem_type(&self) -> ProblemType {
        match self {
            PlanError::InvalidOp(_) => ProblemType::InvalidOp,
            PlanError::Unsupported(_) => ProblemType::UnsupportedOp,
            PlanError::Schema { .. } => ProblemType::SchemaViolation,
            PlanError::NoSuchItem(_) => ProblemType::NoSuchItem,
            PlanError::Forbidden(_) => ProblemType::Forbidden,
            PlanError::TestFailed(_) => ProblemType::TestFailed,
            PlanError::UnknownVersion(_) => ProblemType::UnknownVersion,
            PlanError::InvalidItemId { .. } => ProblemType::InvalidItemId,
            PlanError::UnsafeText { .. } => ProblemType::UnsafeText,
            PlanError::InvalidPhone { .. } => ProblemType::InvalidPhone,
        }
    }

    /// The problem type's slug (`/problems/<code>`).
    pub fn code(&self) -> &'static str {
        self.problem_type().as_str()
    }

    pub fn schema(path: &str, detail: impl Into<String>) -> Self {
        PlanError::Schema {
            path: path.to_string(),
            detail: detail.into(),
        }
    }
}

/// A new, empty plan at the current schema version: every struct and
/// collection map exists from the first change, so offline edits never race
/// to create the same container.
pub fn init_plan(tx: &mut impl Transactable, title: &str) -> Result<(), PlanError> {
    check_scalar(
        &Kind::Text { max: 200 },
        &Json::String(title.into()),
        "/title",
    )?;
    let put = |r: Result<(), automerge::AutomergeError>| r.map_err(internal);
    put(tx.put(ROOT, "schema_version", CURRENT))?;
    put(tx.put(ROOT, "title", title))?;
    create_containers(tx, &ROOT, latest(), "")?;
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
///
/// Works from one `hydrate` of the whole document (one pass over its ops)
/// rather than a lookup per field, which costs a scan each.
pub fn render(doc: &impl ReadDoc) -> Json {
    render_with_conflicts(doc).0
}

/// The rendered plan and its conflicted fields, from one `hydrate`.
pub fn render_with_conflicts(doc: &impl ReadDoc) -> (Json, Vec<Conflict>) {
    let Ok(hydrate::Value::Map(root)) = doc.hydrate(ROOT, None) else {
        return (Json::Object(Map::new()), Vec::new());
    };
    let mut conflicts = Vec::new();
    collect_conflicts(doc, &root, latest(), &mut Vec::new(), &mut conflicts);
    (render_root(&root), conflicts)
}

/// Only what this build's schema declares is rendered: fields from a later
/// version are kept in the document but never shown (nor reported).
fn render_root(root: &hydrate::Map) -> Json {
    let mut out = render_map(root, latest());
    if let Some(hydrate::Value::Scalar(ScalarValue::Int(n))) = root.get("schema_version") {
        out.insert("schema_version".into(), Json::from(*n));
    }
    Json::Object(out)
}

pub(crate) fn render_map(map: &hydrate::Map, fields: &[Field]) -> Map<String, Json> {
    let mut out = Map::new();
    for field in fields {
        if let Some(value) = map.get(field.name).and_then(|v| render_value(v, field)) {
            out.insert(field.name.to_string(), value);
        }
    }
    out
}

fn render_value(value: &hydrate::Value, field: &Field) -> Option<Json> {
    Some(match (field.kind, value) {
        (Kind::Struct(inner), hydrate::Value::Map(map)) => Json::Object(render_map(map, inner)),
        (Kind::Collection(inner), hydrate::Value::Map(map)) => {
            let mut items: Vec<(&String, &hydrate::Value)> =
                map.iter().map(|(k, v)| (k, &v.value)).collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            Json::Array(
                items
                    .into_iter()
                    .map(|(id, item)| {
                        let mut rendered = Map::new();
                        rendered.insert("id".into(), Json::String(id.clone()));
                        if let hydrate::Value::Map(item) = item {
                            rendered.extend(render_map(item, inner));
                        }
                        Json::Object(rendered)
                    })
                    .collect(),
            )
        }
        (Kind::Ratings, hydrate::Value::Map(map)) => {
            let mut ratings: Vec<(&String, Json)> = map
                .iter()
                .filter_map(|(k, v)| match &v.value {
                    hydrate::Value::Scalar(s) => Some((k, scalar_json(s)?)),
                    _ => None,
                })
                .collect();
            ratings.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(ratings.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        // A value from a later version's vocabulary shows as the declared
        // fallback; the document keeps it as it is.
        (Kind::Enum(values), hydrate::Value::Scalar(s)) => match scalar_json(s)? {
            Json::String(v) if !values.contains(&v.as_str()) => Json::from(fallback(values)),
            json => json,
        },
        (Kind::EnumList(values), hydrate::Value::List(list)) => {
            let mut shown: Vec<Json> = Vec::new();
            for item in list.iter() {
                let value = match &item.value {
                    hydrate::Value::Scalar(ScalarValue::Str(v)) if values.contains(&v.as_str()) => {
                        Json::from(v.as_str())
                    }
                    hydrate::Value::Scalar(ScalarValue::Str(_)) => Json::from(fallback(values)),
                    _ => continue,
                };
                if !shown.contains(&value) {
                    shown.push(value);
                }
            }
            Json::Array(shown)
        }
        (Kind::Refs(_), hydrate::Value::List(list)) => Json::Array(
            list.iter()
                .filter_map(|item| match &item.value {
                    hydrate::Value::Scalar(s) => scalar_json(s),
                    _ => None,
                })
                .collect(),
        ),
        (_, hydrate::Value::Scalar(s)) => scalar_json(s)?,
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

/// Every conflicted field of the plan. One `hydrate` finds them; only a
/// conflicted field costs a lookup of its values.
pub fn conflicts(doc: &impl ReadDoc) -> Vec<Conflict> {
    render_with_conflicts(doc).1
}

fn collect_conflicts(
    doc: &impl ReadDoc,
    map: &hydrate::Map,
    fields: &[Field],
    path: &mut Vec<String>,
    out: &mut Vec<Conflict>,
) {
    for field in fields {
        let Some(entry) = map.iter().find(|(k, _)| *k == field.name).map(|(_, v)| v) else {
            continue;
        };
        path.push(field.name.to_string());
        match (field.kind, &entry.value) {
            (Kind::Struct(inner), hydrate::Value::Map(inner_map)) => {
                collect_conflicts(doc, inner_map, inner, path, out);
            }
            (Kind::Collection(inner), hydrate::Value::Map(items)) => {
                for (id, item) in items.iter() {
                    if let hydrate::Value::Map(item_map) = &item.value {
                        path.push(id.clone());
                        collect_conflicts(doc, item_map, inner, path, out);
                        path.pop();
                    }
                }
            }
            _ if entry.conflict => {
                if let Some(conflict) = conflict_at(doc, path) {
                    out.push(conflict);
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// The map reached from the root through `path` (keys and item ids).
fn object_at(doc: &impl ReadDoc, path: &[String]) -> Option<ObjId> {
    path.iter().try_fold(ROOT, |obj, key| child(doc, &obj, key))
}

/// The values of the conflicted field at `path`, the shown one first.
fn conflict_at(doc: &impl ReadDoc, path: &[String]) -> Option<Conflict> {
    let (key, parents) = path.split_last()?;
    let obj = object_at(doc, parents)?;
    let mut values: Vec<(Json, String)> = doc
        .get_all(&obj, key.as_str())
        .ok()?
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
    Some(Conflict {
        path: format!("/{}", path.join("/")),
        values,
    })
}

/// Checks a JSON value against a scalar field kind, as a new value is held
/// to (ops, and what incoming changes set: [`crate::text`]'s rules).
/// Containers are checked by their callers.
pub(crate) fn check_scalar(kind: &Kind, value: &Json, path: &str) -> Result<(), PlanError> {
    check_value(kind, value, path, true)
}

/// [`check_scalar`] for values already stored: text and phone numbers are
/// held to the rules they were written under (no control characters, a
/// length), so plans stored before [`crate::text`]'s rules still load and
/// sync. New values are checked by [`check_scalar`].
fn check_stored_scalar(kind: &Kind, value: &Json, path: &str) -> Result<(), PlanError> {
    check_value(kind, value, path, false)
}

fn check_value(kind: &Kind, value: &Json, path: &str, new: bool) -> Result<(), PlanError> {
    let bad = |detail: String| Err(PlanError::schema(path, detail));
    let unsafe_text = |s: &str| match crate::text::unsafe_detail(s) {
        Some(detail) if new => Err(PlanError::UnsafeText {
            path: path.to_string(),
            detail,
        }),
        _ => Ok(()),
    };
    match (kind, value) {
        (Kind::Text { max }, Json::String(s)) => {
            if s.chars().count() > *max {
                return bad(format!("text longer than {max} characters"));
            }
            if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return bad("text holds control characters".into());
            }
            unsafe_text(s)
        }
        (Kind::Phone, Json::String(s)) => {
            if !new {
                return check_value(&Kind::Text { max: 200 }, value, path, false);
            }
            unsafe_text(s)?;
            if crate::text::is_canonical_phone(s) {
                Ok(())
            } else {
                Err(PlanError::InvalidPhone {
                    path: path.to_string(),
                    detail:
                        "a phone number is stored as E.164, `+` and its digits (`+13035550123`)"
                            .into(),
                })
            }
        }
        (Kind::Phone, _) => bad("expected a phone number".into()),
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
        (Kind::Language, Json::String(s)) if is_language_tag(s) => Ok(()),
        (Kind::Language, _) => bad("expected a BCP 47 language tag (`es`, `en-US`)".into()),
        (Kind::Digits(n), Json::String(s)) if is_digits(s, *n) => Ok(()),
        (Kind::Digits(n), _) => bad(format!("expected a code of {n} digits, as a string")),
        (Kind::EnumList(values), Json::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if !item.as_str().is_some_and(|v| values.contains(&v)) {
                    return bad(format!("expected a list of {}", values.join(", ")));
                }
                if items[..i].contains(item) {
                    return bad(format!("{item} is listed twice"));
                }
            }
            Ok(())
        }
        (Kind::EnumList(values), _) => bad(format!("expected a list of {}", values.join(", "))),
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

/// What a new item's id must be: a ULID as the `ulid` crate writes it
/// (upper case, no overflow), so one item has exactly one spelling.
/// Existing items are only held to [`is_item_id`], so plans stored before
/// this rule still load.
pub fn is_new_item_id(s: &str) -> bool {
    ulid::Ulid::from_string(s).is_ok_and(|u| u.to_string() == s)
}

/// Calls `f` with the id of every item of the plan under `obj` (described by
/// `fields`), nested collections (action steps, crisis triggers…) included.
pub(crate) fn each_item_id(
    doc: &impl ReadDoc,
    obj: &ObjId,
    fields: &'static [Field],
    f: &mut dyn FnMut(&str),
) {
    for field in fields {
        match field.kind {
            Kind::Struct(inner) => {
                if let Some(inner_obj) = child(doc, obj, field.name) {
                    each_item_id(doc, &inner_obj, inner, f);
                }
            }
            Kind::Collection(inner) => {
                let Some(coll) = child(doc, obj, field.name) else {
                    continue;
                };
                for id in doc.keys(&coll) {
                    f(&id);
                    if let Some(item) = child(doc, &coll, &id) {
                        each_item_id(doc, &item, inner, f);
                    }
                }
            }
            _ => {}
        }
    }
}

/// How many items of the whole plan have the id `id` (ids are unique across
/// the plan, not only within their collection).
pub(crate) fn items_with_id(doc: &impl ReadDoc, id: &str) -> usize {
    let mut n = 0;
    each_item_id(doc, &ROOT, latest(), &mut |other| {
        n += usize::from(other == id)
    });
    n
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

/// The most values and text a document may hold under names this build does
/// not know (fields of a later version): what it keeps unseen is bounded.
pub const MAX_UNKNOWN_VALUES: usize = 2_000;
pub const MAX_UNKNOWN_TEXT_BYTES: usize = 64 * 1024;
/// How deep an unknown field may nest.
const MAX_UNKNOWN_DEPTH: usize = 8;

/// Checks a whole document against the schema: every value (including
/// concurrent, conflicting values) of the right kind, every item complete
/// and every reference resolving. Used on a scratch copy before any change
/// that arrived as Automerge bytes is kept.
///
/// A document at a version this build knows is held to that version
/// exactly: a field or enum value it does not declare is refused. One at a
/// later version (from a newer node or phone) is held to every rule this
/// build knows, and what it does not know is kept, within
/// [`MAX_UNKNOWN_VALUES`] and [`MAX_UNKNOWN_TEXT_BYTES`], never rendered.
pub fn validate(doc: &impl ReadDoc) -> Result<(), PlanError> {
    let Ok(hydrate::Value::Map(root)) = doc.hydrate(ROOT, None) else {
        return Err(PlanError::schema("/", "the document root is not a map"));
    };
    let version = match root.get("schema_version") {
        Some(hydrate::Value::Scalar(ScalarValue::Int(v))) if *v >= 1 => *v,
        _ => {
            return Err(PlanError::schema(
                "/schema_version",
                format!("expected a schema version, 1 to {CURRENT} or later"),
            ))
        }
    };
    let fields = schema::plan(version).unwrap_or_else(latest);
    let plan = render_root(&root);
    let mut checker = Checker {
        doc,
        plan: &plan,
        strict: version <= CURRENT,
        unknown_values: 0,
        unknown_text: 0,
    };
    checker.map(&root, fields, &mut Vec::new(), true)
}

/// Walks a hydrated document against the schema.
struct Checker<'a, D> {
    doc: &'a D,
    plan: &'a Json,
    /// The document's version is one this build knows.
    strict: bool,
    unknown_values: usize,
    unknown_text: usize,
}

impl<D: ReadDoc> Checker<'_, D> {
    fn map(
        &mut self,
        map: &hydrate::Map,
        fields: &'static [Field],
        path: &mut Vec<String>,
        root: bool,
    ) -> Result<(), PlanError> {
        for (key, entry) in map.iter() {
            if !(root && key == "schema_version") && schema::field(fields, key).is_none() {
                if self.strict {
                    return Err(PlanError::schema(&join(path, key), "unknown field"));
                }
                path.push(key.clone());
                self.unknown(&entry.value, path)?;
                path.pop();
            }
        }
        for field in fields {
            let Some(entry) = map.iter().find(|(k, _)| *k == field.name).map(|(_, v)| v) else {
                if field.required {
                    return Err(PlanError::schema(&join(path, field.name), "required"));
                }
                continue;
            };
            path.push(field.name.to_string());
            if entry.conflict {
                self.conflicted(field, path)?;
            }
            self.value(field, &entry.value, path)?;
            path.pop();
        }
        Ok(())
    }

    /// A value under a name of a later version: kept unseen, so held only
    /// to the size bounds and to the rules any text follows.
    fn unknown(&mut self, value: &hydrate::Value, path: &mut Vec<String>) -> Result<(), PlanError> {
        let at = || format!("/{}", path.join("/"));
        self.unknown_values += 1;
        if self.unknown_values > MAX_UNKNOWN_VALUES || path.len() > MAX_UNKNOWN_DEPTH {
            return Err(PlanError::schema(
                &at(),
                "more fields of a later schema version than this node keeps",
            ));
        }
        match value {
            hydrate::Value::Scalar(s) => {
                let json = scalar_json(s)
                    .ok_or_else(|| PlanError::schema(&at(), "unsupported value type"))?;
                if let Json::String(text) = &json {
                    self.unknown_text += text.len();
                    if self.unknown_text > MAX_UNKNOWN_TEXT_BYTES {
                        return Err(PlanError::schema(
                            &at(),
                            "more text of a later schema version than this node keeps",
                        ));
                    }
                    check_scalar(&Kind::Text { max: 4000 }, &json, &at())?;
                }
                Ok(())
            }
            hydrate::Value::Map(map) => {
                for (key, entry) in map.iter() {
                    path.push(key.clone());
                    self.unknown(&entry.value, path)?;
                    path.pop();
                }
                Ok(())
            }
            hydrate::Value::List(list) => {
                for (i, item) in list.iter().enumerate() {
                    path.push(i.to_string());
                    self.unknown(&item.value, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Err(PlanError::schema(
                &at(),
                "text objects, counters and marks are not part of the plan schema",
            )),
        }
    }

    /// A value of the enum `values` that this build does not know, in a
    /// document of a later version: kept (shown as the fallback) when it
    /// reads as a vocabulary code.
    fn later_enum_value(&self, values: &[&str], value: &Json, at: &str) -> Result<(), PlanError> {
        match value {
            Json::String(s) if values.contains(&s.as_str()) => Ok(()),
            Json::String(s)
                if !self.strict
                    && !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
            {
                Ok(())
            }
            _ => Err(PlanError::schema(
                at,
                format!("expected one of {}", values.join(", ")),
            )),
        }
    }

    /// Every concurrent value of a conflicted field must be valid too: a
    /// hidden value can become the shown one.
    fn conflicted(&mut self, field: &Field, path: &[String]) -> Result<(), PlanError> {
        let at = format!("/{}", path.join("/"));
        let Some((key, parents)) = path.split_last() else {
            return Ok(());
        };
        let obj =
            object_at(self.doc, parents).ok_or_else(|| PlanError::schema(&at, "unreachable"))?;
        for (value, _) in self.doc.get_all(&obj, key.as_str()).map_err(internal)? {
            match value {
                Value::Scalar(s) => self.scalar(field, s.as_ref(), &at)?,
                Value::Object(_) => {
                    return Err(PlanError::schema(
                        &at,
                        "concurrently created sections or lists",
                    ))
                }
            }
        }
        Ok(())
    }

    fn scalar(&self, field: &Field, value: &ScalarValue, at: &str) -> Result<(), PlanError> {
        let json =
            scalar_json(value).ok_or_else(|| PlanError::schema(at, "unsupported value type"))?;
        if field.kind == Kind::MemberRef {
            return match json.as_str() {
                Some(m) if item_exists(self.plan, "team", m) => Ok(()),
                _ => Err(PlanError::schema(at, "must be the id of a team member")),
            };
        }
        if let Kind::Enum(values) = field.kind {
            return self.later_enum_value(values, &json, at);
        }
        check_stored_scalar(&field.kind, &json, at)
    }

    fn value(
        &mut self,
        field: &Field,
        value: &hydrate::Value,
        path: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        let at = format!("/{}", path.join("/"));
        match (field.kind, value) {
            (Kind::Struct(inner), hydrate::Value::Map(map)) => self.map(map, inner, path, false),
            (Kind::Collection(inner), hydrate::Value::Map(items)) => {
                for (id, item) in items.iter() {
                    if !is_item_id(id) {
                        return Err(PlanError::schema(&join(path, id), "item ids must be ULIDs"));
                    }
                    let hydrate::Value::Map(item_map) = &item.value else {
                        return Err(PlanError::schema(&join(path, id), "expected an item map"));
                    };
                    path.push(id.clone());
                    self.map(item_map, inner, path, false)?;
                    path.pop();
                }
                Ok(())
            }
            (Kind::Ratings, hydrate::Value::Map(ratings)) => {
                for (code, rating) in ratings.iter() {
                    let ok = is_item_code(code)
                        && matches!(&rating.value, hydrate::Value::Scalar(s) if matches!(scalar_json(s).and_then(|v| v.as_i64()), Some(0..=3)));
                    if !ok {
                        return Err(PlanError::schema(
                            &join(path, code),
                            "ratings are 0 to 3 under an item code",
                        ));
                    }
                }
                Ok(())
            }
            (Kind::EnumList(values), hydrate::Value::List(list)) => {
                let mut seen = Vec::new();
                for item in list.iter() {
                    let value = match &item.value {
                        hydrate::Value::Scalar(s) => scalar_json(s).unwrap_or(Json::Null),
                        _ => Json::Null,
                    };
                    self.later_enum_value(values, &value, &at)?;
                    if seen.contains(&value) {
                        return Err(PlanError::schema(&at, format!("{value} is listed twice")));
                    }
                    seen.push(value);
                }
                Ok(())
            }
            (Kind::Refs(collection), hydrate::Value::List(list)) => {
                for item in list.iter() {
                    let ok = matches!(&item.value, hydrate::Value::Scalar(ScalarValue::Str(s)) if item_exists(self.plan, collection, s));
                    if !ok {
                        return Err(PlanError::schema(
                            &at,
                            format!("must list ids of /{collection} items"),
                        ));
                    }
                }
                Ok(())
            }
            (_, hydrate::Value::Scalar(s)) => self.scalar(field, s, &at),
            _ => Err(PlanError::schema(&at, "wrong kind of object")),
        }
    }
}

fn join(path: &[String], key: &str) -> String {
    let mut out = String::new();
    for p in path {
        out.push('/');
        out.push_str(p);
    }
    out.push('/');
    out.push_str(key);
    out
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
        assert_eq!(json["schema_version"], CURRENT);
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
        let id = ulid::Ulid::new().to_string();
        assert!(is_new_item_id(&id));
        // Lower case decodes to the same ULID, and a first character above
        // 7 overflows: other spellings of an id, accepted by the decoder.
        assert!(is_item_id(&id.to_lowercase()) && !is_new_item_id(&id.to_lowercase()));
        assert!(!is_new_item_id(&format!("8{}", &id[1..])));
        assert!(is_item_code("ls.family_functioning"));
        assert!(!is_item_code("Family Functioning"));
        assert!(!is_item_code(""));
    }
}
