//! What a refused or unauthenticated client can make a node (or the hub)
//! store and log, and who else on the machine can read it (findings 1, 5
//! and 8). Values of a megabyte in every place a request carries text —
//! the username tried, headers, path segments, query strings — and bursts
//! of refusals from one address must cost a few kilobytes of database and
//! log, each refusal accounted for: its own audit row, or counted in the
//! summary row of its kind. Databases, logs, keys and backups are `0600`,
//! data directories `0700`; a node started on wider ones narrows them and
//! says so.

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use wrapsync_shared::api::AuditEntry;
use wrapsync_tests::users::SUPERVISOR;
use wrapsync_tests::{encode_query, Backend, TestHub, TestNode};

/// A value of a megabyte: what the probe sent as a username.
const MEGABYTE: usize = 1_000_000;
/// The longest header value or path the HTTP layer lets through to the
/// node (it answers `431`/`414` before any handler for longer ones):
/// the most text a request can carry outside its body.
const HEAD_VALUE: usize = 20_000;
/// What the whole attack may add to the data (rows and index entries, in
/// whole pages) and to the log.
const FEW_KB: u64 = 16 * 1024;
/// What it may add to the live SQLite files, whose WAL and free pages come
/// and go with checkpoints whatever the attack (the probe: +238 MB).
const LIVE_FILES: u64 = 256 * 1024;

/// `refusal_interval_secs` of the attacked nodes: one interval for the
/// whole test, so the counts come out (as summary rows) when the node
/// stops, not at some moment of the run.
const ONE_INTERVAL: i64 = 3600;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// `path` with `suffix` after its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The SQLite files of `node` (database and WAL), in bytes, and what its
/// data takes (a `wrapsync backup`, compacted: no free pages, no WAL); 0s
/// on PostgreSQL.
fn database_bytes(node: &TestNode, dir: &Path) -> (u64, u64) {
    let Some(db) = node.db_path() else {
        return (0, 0);
    };
    let out = dir.join(format!("measure-{}.db", next_measure()));
    node.cli(&["backup", "--out", &out.to_string_lossy()])
        .unwrap_or_else(|e| panic!("{e}"));
    (size(db) + size(&beside(db, "-wal")), size(&out))
}

fn next_measure() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A node whose log goes to `dir/node.log`, with `extra` settings.
fn attacked_node(backend: Backend, dir: &Path, extra: &[(&str, toml::Value)]) -> TestNode {
    let mut table = toml::Table::new();
    table.insert(
        "log_file".into(),
        dir.join("node.log").to_string_lossy().into_owned().into(),
    );
    for (key, value) in extra {
        table.insert((*key).into(), value.clone());
    }
    TestNode::spawn_with(backend, table)
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wrapsync-storage-")
        .tempdir()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every audit row of `node` with an id above `after`, oldest first.
fn audit_after(node: &TestNode, token: &str, after: i64) -> Vec<AuditEntry> {
    let mut rows = Vec::new();
    let mut query = "limit=1000".to_string();
    loop {
        let page = node.audit(token, &query);
        rows.extend(page.entries.into_iter().filter(|e| e.id > after));
        match page.next {
            Some(next) => query = format!("limit=1000&cursor={}", encode_query(&next)),
            None => break,
        }
    }
    rows.reverse();
    rows
}

/// The count a summary row holds (`repeated N more times …`), if it is one.
fn repeated(row: &AuditEntry) -> Option<u64> {
    row.detail
        .as_deref()?
        .strip_prefix("repeated ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// A JWS whose header names `kid`: a signed node request from a node the
/// node under test has never heard of.
fn forged_signature(kid: &str) -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "Bearer {}.{}.AAAA",
        b64(json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid })),
        b64(json!({}))
    )
}

/// Sends one request of an attack to a node, tagged; answers the status.
type SendOne = Box<dyn Fn(&TestNode, &str) -> u16>;

/// One kind of refused request the attack sends, and how often.
struct Attack {
    what: &'static str,
    times: usize,
    send: SendOne,
    /// The status each gets.
    status: &'static [u16],
}

/// Every unauthenticated route of a node, refused with megabyte values
/// where the body carries them and the largest the HTTP layer takes in
/// headers, path segments and query strings.
fn attacks() -> Vec<Attack> {
    let mb = "x".repeat(MEGABYTE);
    let head = "h".repeat(HEAD_VALUE);
    let id = "i".repeat(HEAD_VALUE);
    let login_body = json!({ "username": mb, "password": "not-the-password" }).to_string();
    let refresh_body = json!({ "refresh_token": mb }).to_string();
    let headers = move |request: reqwest::blocking::RequestBuilder, tag: &str| {
        request
            .header("device-id", &head)
            .header("x-request-id", format!("{tag}{head}"))
            .header("user-agent", &head)
            .header("x-forwarded-for", &head)
    };
    let status = |node: &TestNode, request| node.send(request).status;
    vec![
        Attack {
            what:
                "a login with a megabyte username (401, then 429 once the address's burst is spent)",
            times: 40,
            status: &[401, 429],
            send: Box::new({
                let headers = headers.clone();
                move |node, tag| {
                    status(
                        node,
                        headers(node.request(Method::POST, "/v1/auth/login"), tag)
                            .header("content-type", "application/json")
                            .body(login_body.clone()),
                    )
                }
            }),
        },
        Attack {
            what: "a refresh with a megabyte token",
            times: 10,
            status: &[401],
            send: Box::new({
                let headers = headers.clone();
                move |node, tag| {
                    status(
                        node,
                        headers(node.request(Method::POST, "/v1/auth/refresh"), tag)
                            .header("content-type", "application/json")
                            .body(refresh_body.clone()),
                    )
                }
            }),
        },
        Attack {
            what: "a plan read without a token, its id and query as long as can be",
            times: 10,
            status: &[401],
            send: Box::new({
                let headers = headers.clone();
                let id = id.clone();
                move |node, tag| {
                    let path = format!(
                        "/v1/plans/{}?q={}",
                        &id[..HEAD_VALUE / 2],
                        &id[..HEAD_VALUE / 2]
                    );
                    status(node, headers(node.request(Method::GET, &path), tag))
                }
            }),
        },
        Attack {
            what: "an unknown route as long as can be",
            times: 10,
            status: &[404],
            send: Box::new({
                let headers = headers.clone();
                let id = id.clone();
                move |node, tag| {
                    let path = format!("/v1/{}?{}", &id[..HEAD_VALUE / 2], &id[..HEAD_VALUE / 2]);
                    status(node, headers(node.request(Method::GET, &path), tag))
                }
            }),
        },
        Attack {
            what: "a signed node request from an unknown node with a long name",
            times: 10,
            status: &[401],
            send: Box::new({
                let headers = headers.clone();
                move |node, tag| {
                    status(
                        node,
                        headers(node.request(Method::POST, "/federation/v1/sync"), tag)
                            .header(
                                "authorization",
                                forged_signature(&"k".repeat(HEAD_VALUE / 2)),
                            )
                            .header("content-type", "application/cbor")
                            .body(vec![0xa0]),
                    )
                }
            }),
        },
    ]
}

fn oversized_values_on_unauthenticated_routes_cost_a_few_kilobytes(backend: Backend) {
    let dir = temp_dir();
    let mut logins = toml::Table::new();
    logins.insert("per_second".into(), 0.001.into());
    logins.insert("burst".into(), 20.into());
    let mut node = attacked_node(
        backend,
        dir.path(),
        &[
            ("refusal_interval_secs", ONE_INTERVAL.into()),
            ("rate_limit_login_per_ip", logins.into()),
        ],
    );
    let log = dir.path().join("node.log");
    let sam = node.login(SUPERVISOR);
    let before = audit_after(&node, &sam, 0).last().map_or(0, |e| e.id);
    let (files, data) = database_bytes(&node, dir.path());
    let logged = size(&log);

    let mut sent = 0;
    for attack in attacks() {
        for i in 0..attack.times {
            let got = (attack.send)(&node, &format!("a{sent}-"));
            assert!(
                attack.status.contains(&got),
                "{} #{i}: HTTP {got}, expected one of {:?}",
                attack.what,
                attack.status
            );
            sent += 1;
        }
    }
    // Longer than the HTTP layer takes: refused before the node sees it.
    // Sent on a connection of its own: the node answers 431 and resets
    // while the client is still writing, and a pooled client would offer
    // that dead connection to the next request.
    let too_long = reqwest::blocking::Client::new()
        .get(format!("{}/v1/plans", node.url()))
        .header("x-request-id", "x".repeat(MEGABYTE))
        .send()
        .map(|r| r.status().as_u16());
    assert!(
        too_long.as_ref().map_or(true, |s| *s == 431 || *s == 400),
        "{too_long:?}"
    );

    // Metric labels are route patterns and problem codes: none of it.
    let metrics = node.get_anon("/metrics").assert_status(200).text();
    assert!(
        !["x", "h", "i", "k"]
            .iter()
            .any(|c| metrics.contains(&c.repeat(100))),
        "{metrics}"
    );
    // Stopping stores the counts of the interval still open.
    node.stop();
    let log_grown = size(&log).saturating_sub(logged);
    node.start();
    let (files_after, data_after) = database_bytes(&node, dir.path());
    let (files_grown, grown) = (
        files_after.saturating_sub(files),
        data_after.saturating_sub(data),
    );
    let rows: Vec<AuditEntry> = audit_after(&node, &sam, before)
        .into_iter()
        .filter(|e| e.outcome != "ok")
        .collect();
    let own = rows.iter().filter(|r| repeated(r).is_none()).count() as u64;
    let counted: u64 = rows.iter().filter_map(repeated).sum();
    let row_bytes: usize = rows.iter().map(|r| format!("{r:?}").len()).sum();
    println!(
        "{backend:?}: {sent} refusals: {own} rows of their own, {counted} counted in {} summary rows, \
         {row_bytes} bytes of rows; data +{grown} B, database files +{files_grown} B, log +{log_grown} B",
        rows.len() as u64 - own
    );
    assert_eq!(
        own + counted,
        sent,
        "every refusal is accounted for once: {rows:#?}"
    );
    // One row per kind: the five attacks, the login's 401s and 429s apart.
    assert!(own <= 6, "{rows:#?}");
    assert!(row_bytes < 8 * 1024, "{row_bytes} bytes of rows: {rows:#?}");
    assert!(grown < FEW_KB, "the data grew by {grown} bytes");
    assert!(
        files_grown < LIVE_FILES,
        "the database files grew by {files_grown} bytes"
    );
    assert!(log_grown < FEW_KB, "the log grew by {log_grown} bytes");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains(&"h".repeat(100)) && !text.contains(&"k".repeat(100)));
}

/// A burst of one kind of refusal from one address: one row with the first
/// request's id and one row counting the rest; one log line. Runs on the
/// node's defaults (a minute's interval): the burst takes far less.
fn a_burst_of_refusals_is_one_row_and_one_count(backend: Backend) {
    const BURST: u64 = 200;
    let mut node = TestNode::spawn(backend);
    let sam = node.login(SUPERVISOR);
    let before = audit_after(&node, &sam, 0).last().map_or(0, |e| e.id);
    for i in 0..BURST {
        node.send(
            node.request(Method::GET, "/v1/plans")
                .header("x-request-id", format!("burst-{i}")),
        )
        .assert_problem(401, "unauthorized");
    }
    let lines = node
        .log()
        .lines()
        .filter(|l| l.contains("/v1/plans") && l.contains("401"))
        .count();
    node.stop();
    node.start();
    let rows: Vec<AuditEntry> = audit_after(&node, &sam, before)
        .into_iter()
        .filter(|e| e.action == "GET /v1/plans")
        .collect();
    let own: Vec<&AuditEntry> = rows.iter().filter(|r| repeated(r).is_none()).collect();
    let counted: u64 = rows.iter().filter_map(repeated).sum();
    assert_eq!(own.len() as u64 + counted, BURST, "{rows:#?}");
    assert_eq!(own.len(), 1, "{rows:#?}");
    assert_eq!(own[0].request_id.as_deref(), Some("burst-0"));
    assert_eq!(rows.len(), 2, "the first and one summary: {rows:#?}");
    let summary = &rows[1];
    assert_eq!(
        (summary.outcome.as_str(), summary.remote.as_deref()),
        ("denied", Some("127.0.0.1"))
    );
    assert!(
        summary.detail.as_deref().unwrap_or("").contains("burst-0"),
        "{summary:?}"
    );
    assert_eq!(lines, 1, "one access line for the burst:\n{}", node.log());
}

/// A fresh node's data directory is `0700`; its database (and WAL), key,
/// log and backups `0600`.
fn a_fresh_nodes_files_are_owner_only(backend: Backend) {
    let dir = temp_dir();
    let node = attacked_node(backend, dir.path(), &[]);
    let sam = node.login(SUPERVISOR);
    node.create_plan(&sam, "A family");
    assert_eq!(
        mode(node.data_dir()),
        0o700,
        "{}",
        node.data_dir().display()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(node.data_dir())
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .collect();
    files.push(dir.path().join("node.log"));
    if let Some(db) = node.db_path() {
        assert!(beside(db, "-wal").exists(), "a WAL while the node runs");
        let out = dir.path().join("backup.db");
        node.cli(&["backup", "--out", &out.to_string_lossy()])
            .unwrap_or_else(|e| panic!("{e}"));
        files.extend(
            std::fs::read_dir(dir.path())
                .unwrap_or_else(|e| panic!("{e}"))
                .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
                .filter(|p| p.to_string_lossy().contains("backup.db")),
        );
        assert!(files.len() >= 6, "{files:?}");
    }
    let wide: Vec<String> = files
        .iter()
        .filter(|f| mode(f) != 0o600)
        .map(|f| format!("{} {:o}", f.display(), mode(f)))
        .collect();
    assert!(wide.is_empty(), "not owner-only: {wide:#?}");
}

on_both_backends!(
    oversized_values_on_unauthenticated_routes_cost_a_few_kilobytes,
    a_burst_of_refusals_is_one_row_and_one_count,
    a_fresh_nodes_files_are_owner_only,
);

/// A node started on a world-readable data directory and database makes
/// them owner-only again, and warns naming each (it does not refuse to
/// start: see `server/src/files.rs`).
#[test]
fn a_node_started_on_world_readable_files_narrows_them_and_warns() {
    let mut node = TestNode::spawn(Backend::Sqlite);
    node.stop();
    let db = node
        .db_path()
        .unwrap_or_else(|| panic!("SQLite"))
        .to_path_buf();
    let set = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    set(node.data_dir(), 0o755);
    set(&db, 0o644);
    let key = node.data_dir().join("node_key.pem");
    set(&key, 0o644);
    node.start();
    assert_eq!(mode(node.data_dir()), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&key), 0o600);
    let log = node.log();
    for path in [node.data_dir(), &db, &key] {
        assert!(
            log.lines()
                .any(|l| l.contains("made owner-only") && l.contains(&*path.to_string_lossy())),
            "no warning for {}:\n{log}",
            path.display()
        );
    }
    // And it serves.
    node.login(SUPERVISOR);
}

/// The hub's files are owner-only too, and an unknown node's signed
/// requests, each naming itself at length, leave one bounded log line.
#[test]
fn the_hubs_files_are_owner_only_and_its_refusals_log_once() {
    let dir = temp_dir();
    let mut hub = TestHub::spawn(Backend::Sqlite, &[]);
    let data = dir.path().join("hub");
    let log = dir.path().join("hub.log");
    hub.configure("data_dir", data.to_string_lossy().into_owned().into());
    hub.configure("log_file", log.to_string_lossy().into_owned().into());
    let logged = size(&log);
    let http = Client::new();
    for _ in 0..100 {
        let status = http
            .post(format!("{}/hub/v1/reports", hub.url()))
            .header("authorization", forged_signature(&"k".repeat(HEAD_VALUE)))
            .header("user-agent", "u".repeat(HEAD_VALUE))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .map(|r| r.status().as_u16());
        assert!(matches!(status, Ok(401)), "{status:?}");
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines = text
        .lines()
        .filter(|l| l.contains("/hub/v1/reports"))
        .count();
    assert_eq!(lines, 1, "{text}");
    assert!(size(&log) - logged < 4096, "{text}");
    assert!(!text.contains(&"k".repeat(100)) && !text.contains(&"u".repeat(100)));
    assert_eq!(mode(&data), 0o700);
    let mut files = vec![log, data.join("hub.db"), data.join("hub_key.pem")];
    files.extend(
        [beside(&data.join("hub.db"), "-wal")]
            .into_iter()
            .filter(|p| p.exists()),
    );
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}
