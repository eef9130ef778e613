//! JSON Schema (draft 2020-12) of a plan as the API renders it, generated
//! from a version's declaration, so apps in any language can validate plans
//! and generate their types. Objects stay open: a plan from a node on a
//! later version carries fields this version does not name.

use super::versions::fallback;
use super::{plan, Field, Kind};
use serde_json::{json, Map, Value};

const ULID: &str = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$";

/// The schema of the plan at `version`, if it is declared.
pub fn plan_schema(version: i64) -> Option<Value> {
    let fields = plan(version)?;
    let mut root = object(fields);
    if let Some(obj) = root.as_object_mut() {
        obj.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        obj.insert("$id".into(), json!(format!("urn:wrapsync:plan:v{version}")));
        obj.insert(
            "title".into(),
            json!(format!("wrapsync plan, schema version {version}")),
        );
        if let Some(Value::Object(props)) = obj.get_mut("properties") {
            props.insert(
                "schema_version".into(),
                json!({"type": "integer", "const": version}),
            );
        }
    }
    Some(root)
}

fn object(fields: &[Field]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in fields {
        properties.insert(field.name.into(), property(field));
        if field.required {
            required.push(json!(field.name));
        }
    }
    let mut out = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        out["required"] = Value::Array(required);
    }
    out
}

fn property(field: &Field) -> Value {
    let mut out = kind(&field.kind);
    if field.identifying {
        out["x-identifying"] = json!(true);
    }
    out
}

fn kind(kind: &Kind) -> Value {
    match *kind {
        Kind::Text { max } => json!({"type": "string", "maxLength": max}),
        Kind::Phone => json!({"type": "string", "pattern": "^\\+[1-9][0-9]{1,14}$"}),
        Kind::Date => json!({"type": "string", "format": "date"}),
        Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::Number => json!({"type": "number"}),
        Kind::Enum(values) => json!({"enum": values, "x-fallback": fallback(values)}),
        Kind::MemberRef => json!({"type": "string", "pattern": ULID}),
        Kind::Refs(collection) => json!({
            "type": "array",
            "items": {"type": "string", "pattern": ULID},
            "description": format!("ids of /{collection} items"),
        }),
        Kind::Struct(inner) => object(inner),
        Kind::Collection(inner) => {
            let mut item = object(inner);
            if let Some(props) = item["properties"].as_object_mut() {
                props.insert("id".into(), json!({"type": "string", "pattern": ULID}));
            }
            let mut required = vec![json!("id")];
            if let Some(Value::Array(r)) = item.get("required") {
                required.extend(r.iter().cloned());
            }
            item["required"] = Value::Array(required);
            json!({"type": "array", "items": item})
        }
        Kind::Ratings => json!({
            "type": "object",
            "propertyNames": {"pattern": "^[a-z0-9][a-z0-9_.]{0,39}$"},
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 3},
        }),
        Kind::Language => json!({
            "type": "string",
            "maxLength": 35,
            "description": "a BCP 47 language tag",
            "pattern": "^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$",
        }),
        Kind::Digits(n) => json!({"type": "string", "pattern": format!("^[0-9]{{{n}}}$")}),
        Kind::EnumList(values) => json!({
            "type": "array",
            "uniqueItems": true,
            "items": {"enum": values, "x-fallback": fallback(values)},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_has_its_schema_and_v2_adds_its_fields() {
        let v1 = plan_schema(1).unwrap_or_default();
        let v2 = plan_schema(2).unwrap_or_default();
        assert_eq!(v1["properties"]["schema_version"]["const"], 1);
        assert_eq!(v1["required"], json!(["title"]));
        assert!(v1["properties"]["youth"]["properties"]
            .get("county")
            .is_none());
        let youth = &v2["properties"]["youth"]["properties"];
        assert_eq!(youth["county"]["pattern"], "^[0-9]{5}$");
        assert_eq!(youth["county"]["x-identifying"], true);
        assert_eq!(youth["race_ethnicity"]["type"], "array");
        let strategy = &v2["properties"]["strategies"]["items"];
        assert_eq!(strategy["required"], json!(["id", "description", "kind"]));
        assert_eq!(
            strategy["properties"]["service"]["properties"]["availability"]["enum"],
            json!(["available", "waitlisted", "unavailable"])
        );
        assert!(plan_schema(3).is_none());
    }
}
