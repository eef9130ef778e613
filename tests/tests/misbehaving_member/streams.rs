//! Change-feed streams (finding 7): one token opened 2,000
//! `/v1/changes/stream` connections, and every edit woke all of them, each
//! running a database query. Now a user keeps at most
//! `max_streams_per_user` open (a newer one closes the oldest), the process
//! at most `max_streams` (then `429`), and an edit wakes only the streams of
//! the users on the edited plan, with what changed: no query per stream.
//! Counted through `/metrics`, never timed.

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wrapsync_tests::users::{CAREGIVER, CAREGIVER_2, FACILITATOR};
use wrapsync_tests::{deadline, wait_until, Backend, TestNode};

on_both_backends!(
    one_member_opening_many_streams_keeps_a_bounded_number_open,
    an_edit_wakes_only_the_streams_of_the_plans_members,
    the_node_refuses_streams_past_its_own_cap,
);

/// One open stream, read line by line on a thread of its own.
struct Stream {
    lines: Arc<Mutex<Vec<String>>>,
    ended: Arc<AtomicBool>,
}

impl Stream {
    /// Opens a stream as `token` and waits until the node has registered
    /// it (its first line, `: connected` or its backlog, is written after
    /// that).
    fn open(node: &TestNode, token: &str) -> Stream {
        let response = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .expect("an HTTP client")
            .get(format!("{}/v1/changes/stream", node.url()))
            .bearer_auth(token)
            .send()
            .expect("the stream opens");
        assert_eq!(response.status().as_u16(), 200, "{}", node.log());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicBool::new(false));
        let (read, ends) = (lines.clone(), ended.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(response).lines() {
                match line {
                    Ok(line) => read.lock().unwrap().push(line),
                    Err(_) => break,
                }
            }
            ends.store(true, Ordering::SeqCst);
        });
        let stream = Stream { lines, ended };
        assert!(
            wait_until(deadline(30), || stream.has(|_| true)),
            "the stream said nothing"
        );
        stream
    }

    fn has(&self, wanted: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| wanted(l))
    }

    /// The plans of the `change` events received so far.
    fn changed_plans(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|c| c["plan"].as_str().map(str::to_string))
            .collect()
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

/// A figure from `/metrics` (`wrapsync_` + `name`).
fn metric(node: &TestNode, name: &str) -> u64 {
    let text = node.get_anon("/metrics").assert_status(200).text();
    let prefix = format!("wrapsync_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {prefix}in /metrics:\n{text}")) as u64
}

/// A plan of `fran`'s with `member` on its team.
fn plan_with(node: &TestNode, fran: &str, title: &str, member: &str) -> String {
    let plan = node.create_plan(fran, title).id;
    node.apply_ops(
        fran,
        &plan,
        json!([{"op":"add","path":"/team","value":{"name":member,"role":"caregiver","user":member}}]),
    );
    plan
}

fn edit(node: &TestNode, fran: &str, plan: &str, n: usize) {
    node.apply_ops(
        fran,
        plan,
        json!([{"op":"replace","path":"/vision","value":format!("edit {n}")}]),
    );
}

/// On main all 20 streams stayed open for as long as the client liked.
/// Now the oldest 12 are closed (told to come back in 30 s) and the newest
/// 8 stay, and still hear their user's changes.
fn one_member_opening_many_streams_keeps_a_bounded_number_open(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = plan_with(&node, &fran, "Streams family", CAREGIVER);
    let carla = node.login(CAREGIVER);
    let streams: Vec<Stream> = (0..20).map(|_| Stream::open(&node, &carla)).collect();
    assert!(
        wait_until(deadline(30), || streams[..12].iter().all(Stream::ended)),
        "the oldest streams are still open: {:?}",
        streams.iter().map(Stream::ended).collect::<Vec<_>>()
    );
    assert!(streams[..12]
        .iter()
        .all(|s| s.has(|l| l.starts_with("retry: "))));
    assert!(streams[12..].iter().all(|s| !s.ended()));
    assert_eq!(metric(&node, "change_streams_open"), 8);
    assert_eq!(metric(&node, "change_streams_replaced_total"), 12);

    // The newest eight still deliver.
    edit(&node, &fran, &plan, 1);
    assert!(
        wait_until(deadline(30), || streams[12..]
            .iter()
            .all(|s| s.changed_plans().contains(&plan))),
        "an open stream missed the change"
    );
    // Another user is not held back by carla's streams.
    let cody = node.login(CAREGIVER_2);
    let _cody = Stream::open(&node, &cody);
    assert_eq!(metric(&node, "change_streams_open"), 9);
}

/// Carla has eight streams open on her plan, Cody one on his. Twenty edits
/// of Cody's plan wake Cody's stream and nobody else's, and no stream runs
/// a query for them; on main each edit woke all nine streams, and each ran
/// a query. An edit of Carla's plan reaches each of her eight streams.
fn an_edit_wakes_only_the_streams_of_the_plans_members(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let carlas = plan_with(&node, &fran, "Carla's family", CAREGIVER);
    let codys = plan_with(&node, &fran, "Cody's family", CAREGIVER_2);
    let carla = node.login(CAREGIVER);
    let cody = node.login(CAREGIVER_2);
    let carla_streams: Vec<Stream> = (0..8).map(|_| Stream::open(&node, &carla)).collect();
    let cody_stream = Stream::open(&node, &cody);
    let (wakes, queries, reads) = (
        metric(&node, "change_stream_wakes_total"),
        metric(&node, "change_stream_queries_total"),
        metric(&node, "change_fanout_reads_total"),
    );
    // Each stream read its backlog once, when it opened.
    assert_eq!(queries, 9);

    const EDITS: u64 = 20;
    for n in 0..EDITS {
        edit(&node, &fran, &codys, n as usize);
    }
    let last = node.get("/v1/changes", &cody).json["cursor"]
        .as_str()
        .expect("a cursor")
        .to_string();
    assert!(
        wait_until(deadline(30), || cody_stream
            .has(|l| l == format!("id: {last}"))),
        "Cody's stream did not hear of his plan's last edit"
    );
    let woken = metric(&node, "change_stream_wakes_total") - wakes;
    assert!(
        (1..=EDITS).contains(&woken),
        "{woken} wakes for {EDITS} edits of a plan one stream follows"
    );
    assert_eq!(
        metric(&node, "change_stream_queries_total"),
        queries,
        "a stream ran a query for an edit"
    );
    // The fan-out reads once per commit heard (twice on PostgreSQL, where
    // the process also hears its own commits), however many streams.
    let read = metric(&node, "change_fanout_reads_total") - reads;
    assert!(read <= 2 * EDITS + 2, "{read} fan-out reads");
    // Carla's streams got their backlog (her own plan) and nothing since.
    assert!(carla_streams
        .iter()
        .all(|s| s.changed_plans() == vec![carlas.clone()]));

    // One edit of Carla's plan: each of her streams, once.
    let wakes = metric(&node, "change_stream_wakes_total");
    edit(&node, &fran, &carlas, 0);
    assert!(
        wait_until(deadline(30), || carla_streams
            .iter()
            .all(|s| s.changed_plans() == vec![carlas.clone(), carlas.clone()])),
        "Carla's streams did not all hear of her plan"
    );
    assert_eq!(metric(&node, "change_stream_wakes_total") - wakes, 8);
    assert!(!cody_stream.changed_plans().contains(&carlas));
    assert_eq!(metric(&node, "change_stream_queries_total"), queries);
}

/// With `max_streams = 3`, a fourth stream is refused `429` with
/// `Retry-After`, while a user replacing one of their own still may.
fn the_node_refuses_streams_past_its_own_cap(backend: Backend) {
    let mut extra = toml::Table::new();
    extra.insert("max_streams".into(), 3.into());
    extra.insert("max_streams_per_user".into(), 2.into());
    let node = TestNode::spawn_with(backend, extra);
    let carla = node.login(CAREGIVER);
    let cody = node.login(CAREGIVER_2);
    let fran = node.login(FACILITATOR);
    let _carla = [Stream::open(&node, &carla), Stream::open(&node, &carla)];
    let _cody = Stream::open(&node, &cody);
    // (On main this answered 200 and streamed: the read times out.)
    let refused = node.send(
        node.request(reqwest::Method::GET, "/v1/changes/stream")
            .bearer_auth(&fran)
            .timeout(Duration::from_secs(10)),
    );
    refused.assert_problem(429, "rate-limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(metric(&node, "change_streams_refused_total"), 1);
    // Carla's third replaces her first: the node stays at three.
    let _again = Stream::open(&node, &carla);
    assert_eq!(metric(&node, "change_streams_open"), 3);
}
