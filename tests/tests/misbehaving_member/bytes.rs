//! Reading a request is the work no later refusal saves: a member looping
//! 1.2 MB sync messages made the node parse about 100 MB a second of JSON
//! before refusing each one, and the other members waited behind it (the
//! member soak's p99 of 671 ms). Here a member's body bytes are budgeted
//! per user (`rate_limit_user_bytes`): taken on the declared length once
//! the token checks out and before a byte of body is read, or counted as a
//! body of no declared length streams. Another member's budget is their own.

use wrapsync_tests::raw::{answer, assert_problem, connect, post_chunked, post_head};
use wrapsync_tests::users::{CAREGIVER, FACILITATOR};
use wrapsync_tests::{Backend, TestNode};

on_both_backends!(a_members_body_bytes_are_budgeted_before_the_body_is_read);

fn a_members_body_bytes_are_budgeted_before_the_body_is_read(backend: Backend) {
    let mut extra = toml::Table::new();
    extra.insert("max_sync_bytes".into(), 1_000_000.into());
    let mut budget = toml::Table::new();
    budget.insert("per_second".into(), 1.0.into());
    budget.insert("burst".into(), 1_500_000.0.into());
    extra.insert("rate_limit_user_bytes".into(), budget.into());
    let node = TestNode::spawn_with(backend, extra);
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let plan = node.create_plan(&fran, "Budgeted family").id;
    node.add_caregiver(&fran, &plan);
    let path = format!("/v1/plans/{plan}/sync");
    let headers = |token: &str| {
        vec![
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/octet-stream".to_string()),
            ("Device-Id", "looping-phone".to_string()),
        ]
    };
    let junk = vec![0xffu8; 1_000_000];

    // A whole body within the budget is read and checked: not a message.
    let mut stream = connect(node.url(), 30);
    post_head(&mut stream, &path, &headers(&carla), junk.len());
    std::io::Write::write_all(&mut stream, &junk).expect("body sent");
    let read = answer(&mut stream).expect("an answer");
    assert_ne!(read.status, 429, "{}", read.text);
    assert!(read.status >= 400, "{}", read.text);

    // Half a megabyte is left: a million more is refused from the headers
    // alone (no body is ever sent), with when to come back.
    let mut stream = connect(node.url(), 10);
    post_head(&mut stream, &path, &headers(&carla), junk.len());
    let refused = assert_problem(answer(&mut stream), 429, "rate-limited");
    assert!(
        refused.text.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        refused.text
    );

    // A body of no declared length is counted as it streams, and refused
    // once it passes what is left.
    let mut stream = connect(node.url(), 30);
    let chunked = vec![0xffu8; 900_000];
    post_chunked(&mut stream, &path, &headers(&carla), &chunked, 100_000);
    assert_problem(answer(&mut stream), 429, "rate-limited");

    // Reads carry no body and cost none of it.
    node.get(&format!("/v1/plans/{plan}"), &carla)
        .assert_status(200);

    // Fran's budget is her own: her megabyte is read.
    let mut stream = connect(node.url(), 30);
    post_head(&mut stream, &path, &headers(&fran), junk.len());
    std::io::Write::write_all(&mut stream, &junk).expect("body sent");
    let read = answer(&mut stream).expect("an answer");
    assert_ne!(read.status, 429, "{}", read.text);
}
