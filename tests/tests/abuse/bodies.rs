//! Finding 2: signed routes read the whole body (up to 32 MiB) before
//! checking the signature, so a stranger declaring a large body held a
//! request open, and a few held bodies pinned hundreds of megabytes.
//!
//! From the attacker's seat, over raw TCP (to declare a `Content-Length`
//! and then not send it): strangers are refused before their body, a
//! known peer is held to its byte budget before its body, a body that
//! trickles is cut off, and held bodies pin bounded memory. Answers are
//! awaited with a generous read timeout, never timed.

use serde_json::json;
use std::io::{Read, Write};
use std::time::Duration;
use wrapsync_tests::raw::{answer, assert_problem, connect, post_chunked, post_head};
use wrapsync_tests::usage::rss;
use wrapsync_tests::users::{FACILITATOR, SUPERVISOR};
use wrapsync_tests::{unix_now, Backend, NodeSigner, TestHub, TestNode, HUB_ID};

/// A node that trusts the peer `county-p` (whose key is answered), with
/// `extra` settings.
fn node_with_peer(backend: Backend, extra: toml::Table) -> (TestNode, NodeSigner) {
    let node = TestNode::spawn_with(backend, extra);
    let peer = NodeSigner::new("county-p").expect("a key");
    let sam = node.login(SUPERVISOR);
    node.post(
        "/v1/admin/peers",
        &sam,
        &json!({ "id": peer.id, "url": "http://127.0.0.1:9", "public_key": peer.public_key }),
    )
    .assert_status(201);
    (node, peer)
}

fn signed_headers(
    node: &TestNode,
    peer: &NodeSigner,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/cbor".to_string()),
        (
            "Authorization",
            peer.sign(node.node_id(), "POST", path, body, unix_now()),
        ),
    ]
}

const BATCH: &str = "/federation/v1/sync";
/// What the probe declared: just under the default `max_sync_bytes`.
const DECLARED: usize = 30_000_000;

/// Unsigned, signed by a stranger, or forged in a peer's name: each
/// declares a 30 MB body and sends none, and is refused at once, from its
/// headers (on main the node waited for the body).
fn strangers_are_refused_before_their_body(backend: Backend) {
    let (node, peer) = node_with_peer(backend, toml::Table::new());
    let stranger = NodeSigner::new("county-x").expect("a key");
    let forger = NodeSigner::new("county-p").expect("a key");
    let sign = |who: &NodeSigner| {
        vec![
            ("Content-Type", "application/cbor".to_string()),
            (
                "Authorization",
                who.sign(node.node_id(), "POST", BATCH, b"", unix_now()),
            ),
        ]
    };
    let cases = [
        (
            "unsigned",
            vec![("Content-Type", "application/cbor".to_string())],
        ),
        ("a stranger", sign(&stranger)),
        ("a forger", sign(&forger)),
        (
            "a peer's token for another path",
            vec![
                ("Content-Type", "application/cbor".to_string()),
                (
                    "Authorization",
                    peer.sign(
                        node.node_id(),
                        "POST",
                        "/federation/v1/plans/P/sync",
                        b"",
                        unix_now(),
                    ),
                ),
            ],
        ),
    ];
    for path in [
        BATCH,
        "/federation/v1/plans/P1/sync",
        "/federation/v1/plans/P1/transfer",
    ] {
        for (who, headers) in &cases {
            let mut stream = connect(node.url(), 10);
            post_head(&mut stream, path, headers, DECLARED);
            let answer = assert_problem(answer(&mut stream), 401, "unauthorized");
            // The body is never read: the node closes the connection.
            assert!(
                answer
                    .text
                    .to_ascii_lowercase()
                    .contains("connection: close"),
                "{who} at {path}: {}",
                answer.text
            );
        }
    }
    node.get_anon("/healthz").assert_status(200);
}

/// A known peer over its byte budget is refused (`429`) before its body:
/// the budget is taken on the declared length, or counted as a body of no
/// declared length streams.
fn a_peer_over_its_byte_budget_is_refused_before_its_body(backend: Backend) {
    let mut extra = toml::Table::new();
    extra.insert("max_sync_bytes".into(), 1_000_000.into());
    let mut budget = toml::Table::new();
    budget.insert("per_second".into(), 1.0.into());
    budget.insert("burst".into(), 1_500_000.0.into());
    extra.insert("rate_limit_peer_bytes".into(), budget.into());
    let (node, peer) = node_with_peer(backend, extra);

    // A whole body within the budget is read and checked: not a batch.
    let body = vec![0xffu8; 1_000_000];
    let mut stream = connect(node.url(), 30);
    post_head(
        &mut stream,
        BATCH,
        &signed_headers(&node, &peer, BATCH, &body),
        body.len(),
    );
    stream.write_all(&body).expect("body sent");
    assert_problem(answer(&mut stream), 400, "invalid-request");

    // Half a megabyte is left: a million more is refused before reading.
    let mut stream = connect(node.url(), 10);
    post_head(
        &mut stream,
        BATCH,
        &signed_headers(&node, &peer, BATCH, &body),
        body.len(),
    );
    let refused = assert_problem(answer(&mut stream), 429, "rate-limited");
    assert!(
        refused.text.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        refused.text
    );

    // A body of no declared length is counted as it streams: signed
    // whole, sent in pieces, refused once it passes what is left.
    let body = vec![0xffu8; 7 * 131_072];
    let mut stream = connect(node.url(), 30);
    let headers = signed_headers(&node, &peer, BATCH, &body);
    post_chunked(&mut stream, BATCH, &headers, &body, 131_072);
    assert_problem(answer(&mut stream), 429, "rate-limited");
    node.get_anon("/healthz").assert_status(200);
}

/// Held bodies: eight known-peer connections each declare 30 MB, send
/// most of it and then trickle a byte at a time, fast enough for the
/// pause limit. Each is cut off (`408` once its deadline passes, or
/// `503 busy` when the bytes being read are at `max_buffered_body_bytes`),
/// the node's memory grows by about the pool, not by the bodies, and it
/// serves a valid signed request after.
#[test]
fn held_bodies_are_cut_off_and_pin_bounded_memory() {
    let mut extra = toml::Table::new();
    extra.insert("request_timeout_secs".into(), 2.into());
    // 30 MB at 4 MB/s: a deadline of about 9.5 s.
    extra.insert("body_min_bytes_per_sec".into(), 4_000_000.into());
    extra.insert("max_buffered_body_bytes".into(), (64 << 20).into());
    // The pool is what is tested here, not the peer's byte budget.
    let mut budget = toml::Table::new();
    budget.insert("per_second".into(), 1e9.into());
    budget.insert("burst".into(), 1e9.into());
    extra.insert("rate_limit_peer_bytes".into(), budget.into());
    let (node, peer) = node_with_peer(Backend::Sqlite, extra);
    let pid = node.pid().expect("the node runs");
    let before = rss(pid);
    let sent = 24_000_000;
    let (done, held) = std::sync::mpsc::channel();
    let connections: Vec<_> = (0..8)
        .map(|_| {
            let url = node.url().to_string();
            let headers = signed_headers(&node, &peer, BATCH, b"a body never sent whole");
            let done = done.clone();
            std::thread::spawn(move || {
                let mut stream = connect(&url, 60);
                post_head(&mut stream, BATCH, &headers, DECLARED);
                let piece = vec![7u8; 1 << 20];
                let mut written = 0;
                while written < sent {
                    if stream.write_all(&piece).is_err() {
                        break;
                    }
                    written += piece.len();
                }
                let _ = done.send(());
                // A byte every half second: never a pause of 2 s.
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 4096];
                let mut bytes = Vec::new();
                for _ in 0..120 {
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => bytes.extend_from_slice(&buf[..n]),
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut =>
                        {
                            if !bytes.is_empty() {
                                break;
                            }
                            if stream.write_all(b"x").is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
        })
        .collect();
    drop(done);
    // Every connection has sent what it will before its trickle.
    for _ in 0..8 {
        held.recv_timeout(Duration::from_secs(60))
            .expect("the senders wrote their bodies");
    }
    let while_held = rss(pid);
    let answers: Vec<String> = connections
        .into_iter()
        .map(|c| c.join().expect("a sender thread"))
        .collect();
    let grown = while_held.saturating_sub(before);
    eprintln!(
        "RSS before {} MB, while 8 bodies of 30 MB were held {} MB (+{} MB)",
        before >> 20,
        while_held >> 20,
        grown >> 20
    );
    for answer in &answers {
        // Cut off: told so, or (a refusal that crossed a body still being
        // written) the connection was reset; never left hanging.
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 408")
                || answer.starts_with("HTTP/1.1 503"),
            "{answer}"
        );
    }
    assert!(
        answers.iter().any(|a| a.starts_with("HTTP/1.1 408")),
        "no held body was cut off by its deadline: {answers:?}"
    );
    // Eight bodies of 24 MB would be 190 MB; the pool is 64 MiB.
    assert!(
        grown < 110 << 20,
        "the node grew by {} MB while bodies were held",
        grown >> 20
    );
    // The node still serves a valid signed request.
    let body = b"not a batch".to_vec();
    let mut stream = connect(node.url(), 30);
    post_head(
        &mut stream,
        BATCH,
        &signed_headers(&node, &peer, BATCH, &body),
        body.len(),
    );
    stream.write_all(&body).expect("body sent");
    assert_problem(answer(&mut stream), 400, "invalid-request");
}

/// `/v1` routes that take large bodies check the token from the headers
/// and answer `401` without waiting for a declared 30 MB; a member's
/// body that trickles is cut off by its deadline (`408`).
fn v1_bodies_are_authenticated_first_and_held_to_a_deadline(backend: Backend) {
    let mut extra = toml::Table::new();
    extra.insert("request_timeout_secs".into(), 2.into());
    extra.insert("body_min_bytes_per_sec".into(), 1_000_000.into());
    let node = TestNode::spawn_with(backend, extra);
    for (path, content_type) in [
        ("/v1/plans/P1/sync", "application/octet-stream"),
        ("/v1/sync", "application/cbor"),
        ("/v1/plans", "application/octet-stream"),
        ("/v1/plans/P1/ops", "application/json"),
    ] {
        let mut stream = connect(node.url(), 10);
        post_head(
            &mut stream,
            path,
            &[("Content-Type", content_type.to_string())],
            DECLARED,
        );
        assert_problem(answer(&mut stream), 401, "unauthorized");
    }
    // Logged in: 3 MB declared, at 1 MB/s a deadline of about 5 s; a byte
    // every half second keeps within the 2 s pause limit.
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Trickled").id;
    let path = format!("/v1/plans/{plan}/sync");
    let mut stream = connect(node.url(), 1);
    post_head(
        &mut stream,
        &path,
        &[
            ("Content-Type", "application/octet-stream".to_string()),
            ("Authorization", format!("Bearer {fran}")),
        ],
        3_000_000,
    );
    let mut answered = None;
    for _ in 0..60 {
        if let Some(answer) = answer(&mut stream) {
            answered = Some(answer);
            break;
        }
        if stream.write_all(b"x").is_err() {
            break;
        }
    }
    assert_problem(answered, 408, "request-timeout");
}

/// The hub's signed routes refuse a stranger or an unsigned request from
/// the headers, without waiting for its body.
fn the_hub_refuses_strangers_before_their_body(backend: Backend) {
    let county = NodeSigner::new("county-a").expect("a key");
    let hub = TestHub::spawn(backend, &[&county]);
    let stranger = NodeSigner::new("county-x").expect("a key");
    for path in ["/hub/v1/reports", "/hub/v1/nodes"] {
        for authorization in [
            None,
            Some(stranger.sign(HUB_ID, "POST", path, b"", unix_now())),
        ] {
            let mut headers = vec![("Content-Type", "application/json".to_string())];
            headers.extend(authorization.map(|a| ("Authorization", a)));
            let mut stream = connect(hub.url(), 10);
            // Under the hub's 512 KiB limit, so only the signature refuses it.
            post_head(&mut stream, path, &headers, 500_000);
            assert_problem(answer(&mut stream), 401, "unauthorized");
        }
    }
    // An enrolled node's signed registration still goes through.
    let body = br#"{"url":"http://127.0.0.1:7400"}"#;
    hub.post_signed(Some(&county), "/hub/v1/nodes", body)
        .assert_status(200);
}

on_both_backends!(
    strangers_are_refused_before_their_body,
    a_peer_over_its_byte_budget_is_refused_before_its_body,
    v1_bodies_are_authenticated_first_and_held_to_a_deadline,
    the_hub_refuses_strangers_before_their_body,
);
