use super::*;
use crate::api::document::NodeApi;
use crate::hub::document::HubApi;
use actix_web::http::Method;
use actix_web::web::ServiceConfig;
use serde_json::Value;
use std::collections::BTreeSet;
use utoipa::OpenApi;
use wrapsync_shared::problems::ProblemType;

const METHODS: [&str; 9] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
];

fn parsed(api: utoipa::openapi::OpenApi) -> Value {
    serde_json::from_str(&render(api)).unwrap_or_else(|e| panic!("{e}"))
}

/// Every (method, path template) the document describes.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths"));
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_string(), path.clone()))
        })
        .collect()
}

/// Every (method, path template) `register` registers with actix.
fn served(
    register: fn(&mut ServiceConfig) -> Vec<(Method, &'static str)>,
) -> BTreeSet<(String, String)> {
    let mut served = Vec::new();
    let _ = actix_web::App::new().configure(|cfg| served = register(cfg));
    let set: BTreeSet<_> = served
        .iter()
        .map(|(method, path)| (method.as_str().to_ascii_lowercase(), path.to_string()))
        .collect();
    assert_eq!(set.len(), served.len(), "a route registered twice");
    set
}

fn assert_same_routes(document: &Value, served: BTreeSet<(String, String)>) {
    let documented = documented(document);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not in the OpenAPI document: {undocumented:?}; \
         in the document but not served: {not_served:?}"
    );
}

#[test]
fn the_node_document_lists_exactly_the_routes_a_node_serves() {
    let document = parsed(NodeApi::openapi());
    assert_same_routes(&document, served(crate::api::register));
}

#[test]
fn the_hub_document_lists_exactly_the_routes_a_hub_serves() {
    let document = parsed(HubApi::openapi());
    assert_same_routes(&document, served(crate::hub::api::register));
}

#[test]
fn a_route_left_out_of_the_document_is_found() {
    let document = parsed(NodeApi::openapi());
    let mut served = served(crate::api::register);
    served.insert(("get".into(), "/v1/undocumented".into()));
    let missed = std::panic::catch_unwind(|| assert_same_routes(&document, served));
    assert!(missed.is_err());
}

/// Every operation of `document`: (method, path, operation).
fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                all.push((method.to_string(), path.clone(), operation));
            }
        }
    }
    all
}

fn schemes(operation: &Value) -> BTreeSet<String> {
    operation["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().cloned())
        .collect()
}

#[test]
fn every_error_is_a_problem_document() {
    for api in [NodeApi::openapi(), HubApi::openapi()] {
        let document = parsed(api);
        for (method, path, operation) in operations(&document) {
            let responses = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success"
            );
            for (status, response) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
                let description = response["description"].as_str().unwrap_or_default();
                assert!(
                    description.contains('`'),
                    "{method} {path} {status}: name the problem types"
                );
            }
        }
        assert!(document["components"]["schemas"]["Problem"].is_object());
    }
}

#[test]
fn routes_are_secured_as_their_prefix_says() {
    let document = parsed(NodeApi::openapi());
    for (method, path, operation) in operations(&document) {
        let schemes = schemes(operation);
        // The plan schema is public: apps read it before anyone signs in.
        let expected: &[&str] = if path.starts_with("/v1/auth/") || path == "/v1/schema" {
            &[]
        } else if path.starts_with("/v1/") {
            &[problems::BEARER]
        } else if path.starts_with("/federation/v1/") && path != "/federation/v1/identity" {
            &[problems::SIGNED_REQUEST]
        } else {
            &[]
        };
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(schemes, expected, "{method} {path}");
        if !expected.is_empty() {
            assert!(operation["responses"]["401"].is_object(), "{method} {path}");
        }
    }
    let document = parsed(HubApi::openapi());
    for (method, path, operation) in operations(&document) {
        let signed = method == "post";
        assert_eq!(
            schemes(operation).contains(problems::SIGNED_REQUEST),
            signed,
            "{method} {path}"
        );
    }
}

#[test]
fn the_documents_are_openapi_3_with_schemas_for_the_api_types() {
    let document = parsed(NodeApi::openapi());
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    for schema in [
        "PlanDocument",
        "OpsRequest",
        "SyncBatch",
        "PeerSyncBatch",
        "Handover",
    ] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    let document = parsed(HubApi::openapi());
    for schema in ["Report", "Publication", "Directory", "SubmissionReceipt"] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
}

#[test]
fn operation_ids_are_unique() {
    for api in [NodeApi::openapi(), HubApi::openapi()] {
        let document = parsed(api);
        let mut seen = BTreeSet::new();
        for (method, path, operation) in operations(&document) {
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(seen.insert(id.to_string()), "{method} {path}: {id} twice");
        }
    }
}

/// Every response description of both documents, where the problem types
/// an operation answers are named in backquotes.
fn response_descriptions() -> String {
    let mut text = String::new();
    for document in [parsed(NodeApi::openapi()), parsed(HubApi::openapi())] {
        for (_, _, operation) in operations(&document) {
            let responses = operation["responses"].as_object().into_iter().flatten();
            for (_, response) in responses {
                text.push_str(response["description"].as_str().unwrap_or_default());
                text.push('\n');
            }
        }
    }
    text
}

/// Problem types no route answers: only `wrapsync report` meets them (and
/// prints them), so only docs/api.md lists them.
const NOT_ANSWERED_OVER_HTTP: &[ProblemType] = &[ProblemType::PrivacyBudgetSpent];

#[test]
fn every_problem_type_is_documented_in_the_openapi_documents() {
    let text = response_descriptions();
    let missing: Vec<&str> = ProblemType::ALL
        .iter()
        .filter(|t| !NOT_ANSWERED_OVER_HTTP.contains(t))
        .map(|t| t.as_str())
        .filter(|slug| !text.contains(&format!("`{slug}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "problem types no operation of the node or hub documents: {missing:?}"
    );
}

#[test]
fn every_problem_type_is_documented_in_the_api_guide() {
    let guide = include_str!("../../../docs/api.md");
    let errors = guide
        .split("\n## ")
        .find(|section| section.starts_with("Errors"))
        .unwrap_or_else(|| panic!("docs/api.md has no \"Errors\" section"));
    let missing: Vec<&str> = ProblemType::ALL
        .iter()
        .map(|t| t.as_str())
        .filter(|slug| {
            !errors.contains(&format!("`/problems/{slug}`"))
                && !errors.contains(&format!("`{slug}`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "problem types docs/api.md (\"Errors\") does not list: {missing:?}"
    );
}
