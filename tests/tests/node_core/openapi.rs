//! `GET /openapi.json` on a real node: an OpenAPI 3 document, public, whose
//! routes the node really serves.

use wrapsync_tests::{assert_documented_paths_exist, openapi_document, Backend, TestNode};

#[test]
fn the_node_serves_its_openapi_document() {
    let node = TestNode::spawn(Backend::Sqlite);
    let document = openapi_document(&node.get_anon("/openapi.json"));
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/v1/plans/{id}/ops",
        "/v1/sync",
        "/federation/v1/sync",
        "/readyz",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(!paths.keys().any(|p| p.starts_with("/hub/")));
    assert_documented_paths_exist(&document, |path| node.get_anon(path));
    // The checks' own guard: a path nobody serves is the default 404.
    node.get_anon("/v1/no-such-route")
        .assert_problem(404, "not-found");
}
