//! Checks on a served OpenAPI document: that it is OpenAPI 3, and that the
//! routes it lists really exist on the process that served it.

use crate::Reply;
use serde_json::Value;

/// The document in `reply`, after checking that it has the shape of an
/// OpenAPI 3 document: the version, an `info` with title and version,
/// paths that start with `/`, operations with responses, and every `$ref`
/// resolving inside the document.
#[track_caller]
pub fn openapi_document(reply: &Reply) -> Value {
    reply.assert_status(200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{}",
        reply.text()
    );
    let document = &reply.json;
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "OpenAPI version {version:?}");
    assert!(document["info"]["title"].is_string(), "no info.title");
    assert!(document["info"]["version"].is_string(), "no info.version");
    let paths = document["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths object"));
    assert!(!paths.is_empty(), "no paths");
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        let operations: Vec<_> = METHODS.iter().filter_map(|m| item.get(*m)).collect();
        assert!(!operations.is_empty(), "{path}: no operation");
        for operation in operations {
            let responses = operation["responses"].as_object();
            assert!(
                responses.is_some_and(|r| !r.is_empty()),
                "{path}: no responses"
            );
        }
    }
    check_refs(document, document);
    document.clone()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Panics unless every `$ref` under `value` is a local reference to
/// something `document` holds.
#[track_caller]
fn check_refs(document: &Value, value: &Value) {
    match value {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                let pointer = reference.strip_prefix('#').unwrap_or_else(|| {
                    panic!("{reference} is not a reference inside the document")
                });
                assert!(
                    document.pointer(pointer).is_some(),
                    "{reference} points at nothing"
                );
            }
            object.values().for_each(|v| check_refs(document, v));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(document, v)),
        _ => {}
    }
}

/// Every path the document answers `GET` on that has no path parameter.
pub fn plain_get_paths(document: &Value) -> Vec<String> {
    document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(path, item)| !path.contains('{') && item.get("get").is_some())
        .map(|(path, _)| path.clone())
        .collect()
}

/// Panics unless every plain `GET` path of `document`, asked with `get`,
/// answers something other than the `404 not-found` of a route that does
/// not exist.
#[track_caller]
pub fn assert_documented_paths_exist(document: &Value, get: impl Fn(&str) -> Reply) {
    let paths = plain_get_paths(document);
    assert!(!paths.is_empty());
    for path in paths {
        let reply = get(&path);
        assert!(
            !(reply.status == 404 && reply.problem_type() == Some("/problems/not-found")),
            "GET {path} is documented but not served: {}",
            reply.text()
        );
    }
}
