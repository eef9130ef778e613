#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Graceful shutdown, against a real node process: SIGTERM while many
//! writes and one slow request are in flight. Every write the node
//! acknowledged is in the database after a restart, the slow request is
//! answered (not reset), new connections are refused once the stop has
//! begun, and the process exits 0.

use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wrapsync_tests::users::FACILITATOR;
use wrapsync_tests::{deadline, wait_until, Backend, TestNode};

const WRITERS: usize = 8;

/// What one writer thread saw: statements acknowledged with a 2xx, and
/// how its other requests ended.
#[derive(Default)]
struct Writes {
    acknowledged: Vec<String>,
    refused: usize,
    failed: usize,
}

/// Writes strengths to `plan` one after another until `stop`, or until the
/// node no longer takes connections.
fn writer(url: String, token: String, plan: String, n: usize, stop: Arc<AtomicBool>) -> Writes {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut writes = Writes::default();
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let statement = format!("writer {n} write {i}");
        let sent = http
            .post(format!("{url}/v1/plans/{plan}/ops"))
            .bearer_auth(&token)
            .json(&json!({"ops":[{"op":"add","path":"/strengths","value":{"statement":statement,"about":"family"}}]}))
            .send();
        match sent {
            Ok(reply) if reply.status().is_success() => writes.acknowledged.push(statement),
            Ok(_) => writes.failed += 1,
            // The node stopped taking connections: this writer is done.
            Err(e) if e.is_connect() => {
                writes.refused += 1;
                break;
            }
            Err(_) => writes.failed += 1,
        }
    }
    writes
}

/// A request whose body arrives in two halves: the first now, the second
/// when [`SlowRequest::finish`] is called; answers the raw response.
struct SlowRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowRequest {
    fn start(url: &str, token: &str, plan: &str, statement: &str) -> Self {
        let address = url.trim_start_matches("http://");
        let body = serde_json::to_vec(&json!({"ops":[{"op":"add","path":"/strengths","value":{"statement":statement,"about":"family"}}]})).unwrap();
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        // `Expect: 100-continue`: the node answers `100 Continue` once it
        // has read the head, so the request is known to be in flight.
        let head = format!(
            "POST /v1/plans/{plan}/ops HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let half = body.len() / 2;
        stream.write_all(head.as_bytes()).unwrap();
        stream.flush().unwrap();
        let mut interim = Vec::new();
        let mut byte = [0u8; 1];
        while !interim.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).unwrap(),
                1,
                "closed before 100 Continue"
            );
            interim.push(byte[0]);
        }
        assert!(
            interim.starts_with(b"HTTP/1.1 100"),
            "{}",
            String::from_utf8_lossy(&interim)
        );
        stream.write_all(&body[..half]).unwrap();
        stream.flush().unwrap();
        SlowRequest {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    fn finish(mut self) -> std::io::Result<String> {
        self.stream.write_all(&self.rest)?;
        self.stream.flush()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the head and the whole body are in (or the node closes).
        loop {
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
}

fn refuses_connections(url: &str) -> bool {
    TcpStream::connect(url.trim_start_matches("http://")).is_err()
}

fn sigterm_finishes_what_is_in_flight(backend: Backend) {
    let mut node = TestNode::spawn(backend);
    let token = node.login(FACILITATOR);
    let plan = node.create_plan(&token, "Shutdown family").id;
    let url = node.url().to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let (url, token, plan, stop) = (url.clone(), token.clone(), plan.clone(), stop.clone());
            std::thread::spawn(move || writer(url, token, plan, n, stop))
        })
        .collect();
    let acknowledged_before = Arc::new(Mutex::new(0usize));
    // Writes are flowing before the signal.
    assert!(wait_until(deadline(30), || {
        let n = node.read_plan(&token, &plan).plan["strengths"]
            .as_array()
            .map_or(0, Vec::len);
        *acknowledged_before.lock().unwrap() = n;
        n >= 20
    }));
    let slow_statement = "the slow request's strength";
    let slow = SlowRequest::start(&url, &token, &plan, slow_statement);

    let signalled = std::time::Instant::now();
    node.signal("TERM");
    assert!(
        wait_until(deadline(20), || refuses_connections(&url)),
        "new connections were still accepted after SIGTERM\n{}",
        node.log()
    );
    let answer = slow
        .finish()
        .unwrap_or_else(|e| panic!("the slow request was cut off: {e}\n{}", node.log()));
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the slow request was not answered: {answer}\n{}",
        node.log()
    );
    let status = node.wait_exit(30);
    let exited_after = signalled.elapsed();
    stop.store(true, Ordering::SeqCst);
    let writes: Vec<Writes> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let status =
        status.unwrap_or_else(|| panic!("the node did not exit within 30 s\n{}", node.log()));
    assert!(
        status.success(),
        "the node exited with {status}\n{}",
        node.log()
    );

    // Every acknowledged write is there after a restart.
    node.start();
    let token = node.login(FACILITATOR);
    let stored = node.read_plan(&token, &plan).plan;
    let statements: Vec<&str> = stored["strengths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["statement"].as_str())
        .collect();
    let acknowledged: Vec<&String> = writes.iter().flat_map(|w| &w.acknowledged).collect();
    assert!(acknowledged.len() >= 20);
    for statement in acknowledged
        .iter()
        .map(|s| s.as_str())
        .chain([slow_statement])
    {
        assert!(
            statements.contains(&statement),
            "`{statement}` was acknowledged but is not stored"
        );
    }
    // Every acknowledged write left its audit row.
    let sam = node.login(wrapsync_tests::users::SUPERVISOR);
    let mut ops_audited = 0;
    let mut cursor = String::new();
    loop {
        let page = node.audit(&sam, &format!("plan={plan}&limit=1000{cursor}"));
        ops_audited += page
            .entries
            .iter()
            .filter(|e| e.action == "plan.ops" && e.outcome == "ok")
            .count();
        match page.next {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert!(
        ops_audited > acknowledged.len(),
        "{ops_audited} audited edits for {} acknowledged",
        acknowledged.len() + 1
    );
    let refused: usize = writes.iter().map(|w| w.refused).sum();
    let failed: usize = writes.iter().map(|w| w.failed).sum();
    eprintln!(
        "{} writes acknowledged ({} before the signal), {refused} refused connections, \
         {failed} other failures; exited {exited_after:?} after SIGTERM",
        acknowledged.len(),
        acknowledged_before.lock().unwrap()
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_and_loses_no_acknowledged_write_sqlite() {
    sigterm_finishes_what_is_in_flight(Backend::Sqlite);
}

#[test]
fn sigterm_finishes_in_flight_requests_and_loses_no_acknowledged_write_postgres() {
    sigterm_finishes_what_is_in_flight(Backend::Postgres);
}
