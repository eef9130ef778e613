//! A signed-in member whose phone misbehaves (issue 22): the attacks of
//! `wrapsync-abuse --member NAME:PASSWORD --lead NAME:PASSWORD`. The lead (a
//! facilitator) makes a plan with the member on its team; the member then,
//! on its own threads, as fast as the node answers:
//!
//! - `devices`: sync rounds, each under a `Device-Id` never used before;
//! - `bloom`: sync messages whose `have` carries a Bloom filter of a
//!   million made-up changes (about 1.2 MB);
//! - `ops`: sync messages carrying one change of `OPS` operations;
//! - `streams`: change-feed streams (`/v1/changes/stream`), held open and
//!   reopened when cut, `--streams` at once.

use super::{client, outcome, Options, Tally, FLOODS_FROM};
use base64::Engine;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use wrapsync_shared::automerge::sync::{BloomFilter, Have, Message, MessageVersion};
use wrapsync_shared::automerge::{transaction::Transactable, ActorId, Automerge, ChangeHash, ROOT};

/// Operations in the change the `ops` attack sends.
const OPS: usize = 1_000_000;
/// Made-up change hashes in the `bloom` attack's filter.
const BLOOM_HASHES: usize = 1_000_000;

/// Who attacks, on which plan.
pub struct Member {
    token: String,
    plan: String,
    /// The `ops` attack's message, made before the clock starts (a million
    /// operations take the attacker seconds too).
    huge: Vec<u8>,
}

fn credentials(pair: &str) -> Result<(&str, &str), String> {
    pair.split_once(':')
        .ok_or(format!("`{pair}`: give NAME:PASSWORD"))
}

fn login(url: &str, pair: &str) -> Result<String, String> {
    let (username, password) = credentials(pair)?;
    let reply: Value = client(None)?
        .post(format!("{url}/v1/auth/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .map_err(|e| format!("signing in {username}: {e}"))?;
    reply["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or(format!("no access token for {username}"))
}

/// Signs both in; the lead makes a plan with the member on its team.
pub fn prepare(o: &Options, member: &str, lead: &str) -> Result<Member, String> {
    let lead_token = login(&o.url, lead)?;
    let http = client(None)?;
    let plan: Value = http
        .post(format!("{}/v1/plans", o.url))
        .bearer_auth(&lead_token)
        .json(&json!({ "title": "Abused family" }))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .map_err(|e| format!("creating the plan: {e}"))?;
    let plan = plan["id"].as_str().ok_or("no plan id")?.to_string();
    let (username, _) = credentials(member)?;
    http.post(format!("{}/v1/plans/{plan}/ops", o.url))
        .bearer_auth(&lead_token)
        .json(&json!({ "ops": [{
            "op": "add", "path": "/team",
            "value": { "name": "Member", "role": "caregiver", "user": username }
        }]}))
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("adding {username} to the plan: {e}"))?;
    Ok(Member {
        token: login(&o.url, member)?,
        plan,
        huge: if o.runs("ops") {
            huge_message()?
        } else {
            Vec::new()
        },
    })
}

fn sync(
    o: &Options,
    http: &reqwest::blocking::Client,
    member: &Member,
    device: &str,
    message: &[u8],
) -> String {
    let body = json!({ "message": base64::engine::general_purpose::STANDARD.encode(message) });
    outcome(
        http.post(format!("{}/v1/plans/{}/sync", o.url, member.plan))
            .bearer_auth(&member.token)
            .header("device-id", device)
            .json(&body)
            .send(),
    )
}

pub fn devices(o: &Options, member: &Member, until: Instant, tally: &Tally) -> Result<(), String> {
    let http = client(Some(FLOODS_FROM))?;
    let doc = Automerge::new();
    let mut state = wrapsync_shared::automerge::sync::State::new();
    let message =
        wrapsync_shared::automerge::sync::SyncDoc::generate_sync_message(&doc, &mut state)
            .ok_or("an empty document has a first message")?
            .encode();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        tally.count(
            "devices",
            sync(o, &http, member, &format!("d{n}"), &message),
        );
    }
    Ok(())
}

fn random_hash() -> ChangeHash {
    ChangeHash(rand::random())
}

pub fn bloom(o: &Options, member: &Member, until: Instant, tally: &Tally) -> Result<(), String> {
    let http = client(Some(FLOODS_FROM))?;
    let hashes: Vec<ChangeHash> = (0..BLOOM_HASHES).map(|_| random_hash()).collect();
    let message = Message {
        heads: vec![random_hash()],
        need: Vec::new(),
        have: vec![Have {
            last_sync: Vec::new(),
            bloom: BloomFilter::from_hashes(hashes.iter()),
        }],
        changes: Vec::<Vec<u8>>::new().into(),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        // A handful of devices: each round may overwrite the last state.
        let device = format!("bloom{}", n % 4);
        tally.count("bloom", sync(o, &http, member, &device, &message));
    }
    Ok(())
}

/// A sync message carrying one change of [`OPS`] operations.
fn huge_message() -> Result<Vec<u8>, String> {
    let mut doc = Automerge::new().with_actor(ActorId::random());
    let mut tx = doc.transaction();
    let list = tx
        .put_object(ROOT, "strengths", wrapsync_shared::automerge::ObjType::List)
        .map_err(|e| e.to_string())?;
    for i in 0..OPS {
        tx.insert(&list, i, i as i64).map_err(|e| e.to_string())?;
    }
    tx.commit();
    let change = doc
        .get_changes(&[])
        .first()
        .map(|c| c.raw_bytes().to_vec())
        .ok_or("the change just made")?;
    Ok(Message {
        heads: doc.get_heads(),
        need: Vec::new(),
        have: Vec::new(),
        changes: vec![change].into(),
        flags: None,
        version: MessageVersion::V1,
    }
    .encode())
}

pub fn ops(o: &Options, member: &Member, until: Instant, tally: &Tally) -> Result<(), String> {
    let http = client(Some(FLOODS_FROM))?;
    while Instant::now() < until {
        tally.count("ops", sync(o, &http, member, "ops", &member.huge));
    }
    Ok(())
}

/// One stream held until it is cut or the run ends; answers its status
/// line, or how it ended.
fn hold_stream(address: &str, token: &str, until: Instant) -> String {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return "error".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1000)));
    let head = format!(
        "GET /v1/changes/stream HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         accept: text/event-stream\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return "error".into();
    }
    let mut status = None;
    let mut buffer = [0u8; 4096];
    while Instant::now() < until {
        match stream.read(&mut buffer) {
            Ok(0) => return status.map_or("closed".into(), |s| format!("{s}-then-closed")),
            Ok(n) => {
                if status.is_none() {
                    let line = String::from_utf8_lossy(&buffer[..n]);
                    let code = line.split_whitespace().nth(1).unwrap_or("answered");
                    if code != "200" {
                        return code.to_string();
                    }
                    status = Some(code.to_string());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return "error".into(),
        }
    }
    status.map_or("no-answer".into(), |s| format!("{s}-held-to-the-end"))
}

pub fn streams(o: &Options, member: &Member, until: Instant, tally: &Tally) -> Result<(), String> {
    let address = o
        .url
        .strip_prefix("http://")
        .ok_or("--url must be http:// for streams")?
        .to_string();
    while Instant::now() < until {
        let ended = hold_stream(&address, &member.token, until);
        let refused = !ended.ends_with("held-to-the-end");
        tally.count("streams", ended);
        if refused {
            // Refused or cut: try again soon, as a looping phone would.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}
