//! Every kind of bad input the contract names gets its documented status and
//! problem type, and a refused request changes nothing.

use crate::{add_member, assert_op_index, NO_SUCH_ID};
use reqwest::Method;
use serde_json::{json, Value};
use wrapsync_shared::api::PlanDocument;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, SUPERVISOR};
use wrapsync_tests::{Backend, Reply, TestNode};

on_both_backends!(refused_ops_change_nothing);

/// `POST path` with a raw body and content type, and a token if given.
fn post_raw(
    node: &TestNode,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: impl Into<Vec<u8>>,
) -> Reply {
    let mut request = node
        .request(Method::POST, path)
        .header("Content-Type", content_type)
        .body(body.into());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    node.send(request)
}

/// Notes in `wrong` (rather than panicking at the first) a reply that is not
/// the problem `code` with `status`, so one run lists every deviation.
fn check(
    wrong: &mut Vec<String>,
    reply: &Reply,
    status: u16,
    code: &str,
    what: impl FnOnce() -> String,
) {
    let content_type = reply.header("content-type").unwrap_or_default();
    if reply.status != status
        || reply.problem_type() != Some(format!("/problems/{code}").as_str())
        || !content_type.starts_with("application/problem+json")
    {
        wrong.push(format!(
            "{}: expected {status} {code}, got {} ({content_type}) {}",
            what(),
            reply.status,
            reply.text()
        ));
    }
}

/// The plan is exactly as it was.
#[track_caller]
fn assert_unchanged(node: &TestNode, token: &str, before: &PlanDocument) {
    let after = node.read_plan(token, &before.id);
    assert_eq!(
        after.version, before.version,
        "a refused request changes nothing"
    );
    assert_eq!(after.plan, before.plan);
}

#[test]
fn malformed_json_is_400_and_misshapen_json_is_400_invalid_request() {
    let node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Input family");
    let ops = format!("/v1/plans/{}/ops", plan.id);
    let json = "application/json";
    let mut wrong = Vec::new();

    for (path, token, body) in [
        (
            "/v1/auth/login",
            None,
            r#"{"username": "fran", "password": "#,
        ),
        ("/v1/auth/refresh", None, r#"{"refresh_token" "x"}"#),
        ("/v1/plans", Some(fran.as_str()), r#"{"title": "Unclosed"#),
        ("/v1/plans", Some(fran.as_str()), "title=Form+encoded"),
        (
            ops.as_str(),
            Some(fran.as_str()),
            r#"{"ops": [{"op": "replace",]}"#,
        ),
        (ops.as_str(), Some(fran.as_str()), "\u{feff}{]"),
    ] {
        let reply = post_raw(&node, path, token, json, body);
        check(&mut wrong, &reply, 400, "malformed-json", || {
            format!("{path} {body:?}")
        });
    }

    for (path, token, body) in [
        (
            "/v1/auth/login",
            None,
            json!({ "username": 1, "password": 2 }),
        ),
        ("/v1/auth/login", None, json!({ "username": "fran" })),
        ("/v1/auth/login", None, json!(["fran", "password"])),
        ("/v1/auth/refresh", None, json!({ "refresh_token": 5 })),
        ("/v1/plans", Some(fran.as_str()), json!({ "title": 42 })),
        ("/v1/plans", Some(fran.as_str()), json!({})),
        ("/v1/plans", Some(fran.as_str()), json!("just a string")),
        ("/v1/plans", Some(fran.as_str()), json!(["Array family"])),
        (ops.as_str(), Some(fran.as_str()), json!({})),
        (ops.as_str(), Some(fran.as_str()), json!({ "ops": {} })),
        (
            ops.as_str(),
            Some(fran.as_str()),
            json!({ "ops": [{ "path": "/vision", "value": "x" }] }),
        ),
        (
            ops.as_str(),
            Some(fran.as_str()),
            json!({ "ops": [{ "op": "replace", "path": 7, "value": "x" }] }),
        ),
        (
            ops.as_str(),
            Some(fran.as_str()),
            json!({ "base_version": "abc", "ops": [] }),
        ),
    ] {
        let reply = post_raw(&node, path, token, json, body.to_string());
        check(&mut wrong, &reply, 400, "invalid-request", || {
            format!("{path} {body}")
        });
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    assert_unchanged(&node, &fran, &plan);
    assert_eq!(node.list_all_plans(&fran).len(), 1);
}

#[test]
fn bodies_over_one_mebibyte_are_413() {
    let node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Big family");
    let huge = "a".repeat(1024 * 1024 + 1);

    let create = node.post("/v1/plans", &fran, &json!({ "title": huge }));
    create.assert_problem(413, "payload-too-large");
    let ops = node.post_ops(
        &fran,
        &plan.id,
        None,
        json!([{ "op": "replace", "path": "/vision", "value": huge }]),
    );
    ops.assert_problem(413, "payload-too-large");
    let login = node.post_anon(
        "/v1/auth/login",
        &json!({ "username": FACILITATOR, "password": huge }),
    );
    login.assert_problem(413, "payload-too-large");

    assert_unchanged(&node, &fran, &plan);
    assert_eq!(node.list_all_plans(&fran).len(), 1);
    // The node is still healthy.
    node.get_anon("/healthz").assert_status(200);
}

/// A client that sends its headers and then trickles (here: never sends)
/// its body is answered `408` once `request_timeout_secs` passes, rather
/// than holding the connection for ever.
#[test]
fn a_body_that_does_not_arrive_in_time_is_408() {
    use std::io::{Read, Write};
    let mut extra = toml::Table::new();
    extra.insert("request_timeout_secs".into(), 1.into());
    let node = TestNode::spawn_with(Backend::Sqlite, extra);
    let address = node.url().trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    stream
        .write_all(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: node\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    let mut answer = vec![0; 4096];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A plan document a few kilobytes on the wire that inflates past
/// `max_document_bytes` is refused with 413 before it is loaded.
#[test]
fn a_document_that_inflates_past_the_cap_is_413() {
    use wrapsync_shared::automerge::transaction::Transactable;
    let mut extra = toml::Table::new();
    extra.insert("max_document_bytes".into(), 100_000.into());
    let node = TestNode::spawn_with(Backend::Sqlite, extra);
    let fran = node.login(FACILITATOR);
    let mut doc = wrapsync_shared::automerge::AutoCommit::new();
    doc.put(
        wrapsync_shared::automerge::ROOT,
        "notes",
        "a".repeat(1 << 20),
    )
    .unwrap();
    let bytes = doc.save();
    assert!(bytes.len() < 50_000, "{} bytes on the wire", bytes.len());
    import_refused_as_too_large(&node, &fran, bytes);
}

/// Imports `bytes` as a new plan and checks the node refuses them as too
/// large (413 `document-too-large`); answers the problem.
fn import_refused_as_too_large(node: &TestNode, token: &str, bytes: Vec<u8>) -> Value {
    let reply = node.send(
        node.request(Method::POST, "/v1/plans")
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes),
    );
    reply.assert_status(413);
    assert_eq!(
        reply.json["type"],
        "/problems/document-too-large",
        "{}",
        reply.text()
    );
    reply.json
}

/// A document whose run-length-encoded columns declare more operations
/// than `max_document_ops` is refused with 413 before it is loaded: a few
/// hundred bytes on the wire, thousands of operations once materialized.
#[test]
fn a_document_declaring_too_many_operations_is_413() {
    use wrapsync_shared::automerge::transaction::Transactable;
    use wrapsync_shared::automerge::{AutoCommit, ObjType, ROOT};
    let mut extra = toml::Table::new();
    extra.insert("max_document_ops".into(), 1_000.into());
    let node = TestNode::spawn_with(Backend::Sqlite, extra);
    let fran = node.login(FACILITATOR);
    let mut doc = AutoCommit::new();
    let list = doc.put_object(ROOT, "strengths", ObjType::List).unwrap();
    for i in 0..5_000 {
        doc.insert(&list, i, "same").unwrap();
    }
    let bytes = doc.save();
    assert!(bytes.len() < 1_000, "{} bytes on the wire", bytes.len());
    let problem = import_refused_as_too_large(&node, &fran, bytes);
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("max_document_ops"), "{problem}");
}

#[test]
fn compressed_or_non_json_bodies_are_415() {
    let node = TestNode::spawn(Backend::Sqlite);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Media family");
    let create = json!({ "title": "Should not exist" }).to_string();
    let ops = format!("/v1/plans/{}/ops", plan.id);
    let edit = json!({ "ops": [{ "op": "replace", "path": "/vision", "value": "x" }] }).to_string();
    let login =
        json!({ "username": FACILITATOR, "password": wrapsync_tests::password_of(FACILITATOR) })
            .to_string();

    // A body labelled compressed is refused, whatever it holds.
    for encoding in ["gzip", "br", "deflate"] {
        for (path, token, body) in [
            ("/v1/plans", Some(fran.as_str()), &create),
            (ops.as_str(), Some(fran.as_str()), &edit),
            ("/v1/auth/login", None, &login),
        ] {
            let mut request = node
                .request(Method::POST, path)
                .header("Content-Type", "application/json")
                .header("Content-Encoding", encoding)
                .body(body.clone());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let reply = node.send(request);
            assert_eq!(reply.status, 415, "{encoding} on {path}: {}", reply.text());
            reply.assert_problem(415, "unsupported-media-type");
        }
    }
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        for (path, token, body) in [
            ("/v1/plans", Some(fran.as_str()), &create),
            (ops.as_str(), Some(fran.as_str()), &edit),
            ("/v1/auth/login", None, &login),
        ] {
            let reply = post_raw(&node, path, token, content_type, body.clone());
            assert_eq!(
                reply.status,
                415,
                "{content_type} on {path}: {}",
                reply.text()
            );
            reply.assert_problem(415, "unsupported-media-type");
        }
    }
    assert_unchanged(&node, &fran, &plan);
    assert_eq!(node.list_all_plans(&fran).len(), 1);

    // Identity encoding and a charset parameter are fine.
    let identity = node.send(
        node.request(Method::POST, "/v1/plans")
            .bearer_auth(&fran)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Content-Encoding", "identity")
            .body(json!({ "title": "Plain family" }).to_string()),
    );
    identity.assert_status(201);
}

fn refused_ops_change_nothing(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let created = node.create_plan(&fran, "Refusal family");
    let need = node.apply_ops(
        &fran,
        &created.id,
        json!([
            { "op": "add", "path": "/needs", "value": { "domain": "home", "statement": "Calm evenings" } },
            { "op": "replace", "path": "/vision", "value": "Before" },
        ]),
    );
    let need = need.results[0].id.clone().expect("a need id");
    add_member(
        &node,
        &fran,
        &created.id,
        "Carla",
        "caregiver",
        Some(CAREGIVER),
    );
    let before = node.read_plan(&fran, &created.id);
    let ok = json!({ "op": "replace", "path": "/vision", "value": "After" });
    let status_of_need = format!("/needs/{need}/status");

    let cases: Vec<(Value, u16, &str, Option<usize>)> = vec![
        (
            json!([ok, { "op": "frobnicate", "path": "/vision", "value": "x" }]),
            422,
            "invalid-op",
            Some(1),
        ),
        (
            json!([ok, { "op": "replace", "path": "/vision" }]),
            422,
            "invalid-op",
            Some(1),
        ),
        (
            json!([ok, { "op": "replace", "path": "/no_such_field", "value": "x" }]),
            422,
            "invalid-op",
            Some(1),
        ),
        (
            json!([{ "op": "remove", "path": "/vision" }]),
            422,
            "unsupported-op",
            Some(0),
        ),
        (
            json!([ok, { "op": "move", "from": "/vision", "path": "/mission" }]),
            422,
            "unsupported-op",
            Some(1),
        ),
        (
            json!([{ "op": "copy", "from": "/vision", "path": "/mission" }]),
            422,
            "unsupported-op",
            Some(0),
        ),
        (
            json!([ok, { "op": "replace", "path": "/vision", "value": 42 }]),
            422,
            "schema-violation",
            Some(1),
        ),
        (
            json!([{ "op": "replace", "path": "/enrollment/phase", "value": "party" }]),
            422,
            "schema-violation",
            Some(0),
        ),
        (
            json!([{ "op": "replace", "path": "/enrollment/enrolled_on", "value": "yesterday" }]),
            422,
            "schema-violation",
            Some(0),
        ),
        (
            json!([ok, { "op": "add", "path": "/needs", "value": { "statement": "No domain" } }]),
            422,
            "schema-violation",
            Some(1),
        ),
        (
            json!([{ "op": "replace", "path": status_of_need, "value": "solved" }]),
            422,
            "schema-violation",
            Some(0),
        ),
        (
            json!([ok, { "op": "replace", "path": format!("/needs/{NO_SUCH_ID}/status"), "value": "met" }]),
            422,
            "no-such-item",
            Some(1),
        ),
        (
            json!([{ "op": "test", "path": "/vision", "value": "Not the vision" }, ok]),
            409,
            "test-failed",
            Some(0),
        ),
        (
            json!([ok, { "op": "test", "path": status_of_need, "value": "met" }]),
            409,
            "test-failed",
            Some(1),
        ),
    ];
    for (ops, status, code, index) in cases {
        let reply = node.post_ops(&fran, &created.id, None, ops.clone());
        assert_eq!(reply.status, status, "{ops}: {}", reply.text());
        reply.assert_problem(status, code);
        if let Some(index) = index {
            assert_op_index(&reply, index);
        }
        assert_unchanged(&node, &fran, &before);
    }

    // A base version the node has never seen.
    let unknown = vec!["ff".repeat(32)];
    let reply = node.post_ops(&fran, &created.id, Some(&unknown), json!([ok]));
    reply.assert_problem(409, "unknown-version");
    assert_unchanged(&node, &fran, &before);

    // A role that may not write a path.
    let carla = node.login(CAREGIVER);
    let reply = node.post_ops(
        &carla,
        &created.id,
        None,
        json!([ok, { "op": "replace", "path": "/needs/".to_string() + &need + "/status", "value": "met" }]),
    );
    reply.assert_problem(403, "forbidden");
    assert_unchanged(&node, &fran, &before);

    // Unauthenticated edits are refused before anything else.
    let reply = post_raw(
        &node,
        &format!("/v1/plans/{}/ops", created.id),
        None,
        "application/json",
        json!({ "ops": [ok] }).to_string(),
    );
    reply.assert_problem(401, "unauthorized");
    assert_unchanged(&node, &fran, &before);

    // After all that, a good request still goes through.
    let after = node.apply_ops(&fran, &created.id, json!([ok]));
    assert_eq!(after.plan["vision"], "After");
    let sam = node.login(SUPERVISOR);
    assert_eq!(node.read_plan(&sam, &created.id).plan["vision"], "After");
}
