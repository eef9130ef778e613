//! Two-node federation benchmark (see docs/measurements.md, "Federation"): node A homes
//! `--plans` plans shared with node B, team members on both; once B holds
//! them all, the link is cut (through a [`Proxy`] on each direction), each
//! side makes `--changes` changes per plan with its own team members, and
//! the link heals. Measured: the time from heal until every plan has the
//! same heads on both nodes, and the requests and bytes on the link each
//! way; then an idle spell, nothing changing: what the peers still send.
//!
//! ```sh
//! cargo build --release -p wrapsync-server --bin wrapsync
//! cargo run --release -p wrapsync-tests --bin fed-bench -- [--plans 1000] [--changes 10] \
//!     [--threads 8] [--interval 30] [--settle-secs 120] [--idle-secs 60] [--loss-per-mille 0] [--limit-secs 900]
//! ```
//!
//! It runs `wrapsync` from the directory it was built into (or
//! `$WRAPSYNC_BIN`), each node on SQLite in a temporary directory.

use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wrapsync_tests::users::{CAREGIVER, CAREGIVER_2, FACILITATOR, FAMILY_ADVOCATE};
use wrapsync_tests::{Backend, Faults, Proxy, TestNode};

struct Options {
    plans: usize,
    changes: usize,
    threads: usize,
    /// `federation_interval_secs` of both nodes (the node's default: 30).
    interval: u64,
    /// How long to watch the links after convergence before the idle spell.
    settle_secs: u64,
    idle_secs: u64,
    /// After the heal, this share of replies is lost on each link (per
    /// mille), to see how a lossy link converges.
    loss_per_mille: u64,
    /// Give up waiting for convergence after this long.
    limit_secs: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        plans: 1000,
        changes: 10,
        threads: 8,
        interval: 30,
        settle_secs: 120,
        idle_secs: 60,
        loss_per_mille: 0,
        limit_secs: 900,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--plans" => o.plans = number as usize,
            "--changes" => o.changes = number as usize,
            "--threads" => o.threads = (number as usize).max(1),
            "--interval" => o.interval = number.max(1),
            "--idle-secs" => o.idle_secs = number,
            "--settle-secs" => o.settle_secs = number,
            "--loss-per-mille" => o.loss_per_mille = number.min(1000),
            "--limit-secs" => o.limit_secs = number,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(o)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("fed-bench: {e}");
        std::process::exit(1);
    }
}

/// Seconds since `from`, as text.
fn secs(from: Instant, to: Instant) -> String {
    format!("{:.2} s", to.duration_since(from).as_secs_f64())
}

fn run() -> Result<(), String> {
    let o = options()?;
    if std::env::var_os("WRAPSYNC_BIN").is_none() {
        // The release `wrapsync` beside this binary.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let beside = exe.with_file_name("wrapsync");
        if !beside.is_file() {
            return Err(format!(
                "no wrapsync binary at {}: run `cargo build --release -p wrapsync-server --bin wrapsync` first (or set WRAPSYNC_BIN)",
                beside.display()
            ));
        }
        std::env::set_var("WRAPSYNC_BIN", beside);
    }
    let spawn = |id: &str| {
        let mut extra = toml::Table::new();
        extra.insert("node_id".into(), id.into());
        extra.insert(
            "federation_interval_secs".into(),
            (o.interval as i64).into(),
        );
        TestNode::try_spawn_with(Backend::Sqlite, extra).map_err(|e| e.to_string())
    };
    let a = spawn("county-a")?;
    let b = spawn("county-b")?;
    let seed = rand::random::<u64>();
    let a_to_b = Proxy::start("county-a→county-b", b.url(), seed).map_err(|e| e.to_string())?;
    let b_to_a = Proxy::start("county-b→county-a", a.url(), seed ^ 1).map_err(|e| e.to_string())?;
    a.trust(&b, a_to_b.url());
    b.trust(&a, b_to_a.url());
    eprintln!(
        "nodes: A {} (pid {:?}), B {} (pid {:?}); {} plans, {} changes per plan per side, interval {} s",
        a.url(),
        a.pid(),
        b.url(),
        b.pid(),
        o.plans,
        o.changes,
        o.interval
    );

    // 1. A homes the plans, each shared with B; team members on both.
    let t = Instant::now();
    let fran = a.login(FACILITATOR);
    let carla = a.login(CAREGIVER);
    let made = Mutex::new(Vec::with_capacity(o.plans));
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..o.threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= o.plans {
                    break;
                }
                let plan = a.create_plan(&fran, &format!("Family {i}")).id;
                a.apply_ops(&fran, &plan, json!([
                    {"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","user":CAREGIVER}},
                    {"op":"add","path":"/team","value":{"name":"Cody (county B)","role":"caregiver","user":format!("{CAREGIVER_2}@county-b")}},
                    {"op":"add","path":"/team","value":{"name":"Ada (county B)","role":"family_advocate","user":format!("{FAMILY_ADVOCATE}@county-b")}},
                    {"op":"replace","path":"/vision","value":format!("Vision of family {i}")}
                ]));
                a.post(&format!("/v1/plans/{plan}/shares"), &fran, &json!({"node":"county-b"}))
                    .assert_status(201);
                if let Ok(mut made) = made.lock() {
                    made.push(plan);
                }
            });
        }
    });
    let plans = made.into_inner().map_err(|e| e.to_string())?;
    let shared_at = Instant::now();
    eprintln!(
        "made and shared {} plans in {}",
        plans.len(),
        secs(t, shared_at)
    );

    // 2. Wait for B to hold them all, at A's heads.
    let cody = b.login(CAREGIVER_2);
    let ada = b.login(FAMILY_ADVOCATE);
    let mut at_a = Heads::new(&a, &fran);
    let mut at_b = Heads::new(&b, &cody);
    let initial = at_a.wait_equal(&mut at_b, &plans, Duration::from_secs(600))?;
    let replicated = Instant::now();
    let initial_stats = a_to_b.stats();
    eprintln!(
        "B holds all {} plans {} after the last share ({} polls)",
        plans.len(),
        secs(shared_at, replicated),
        initial
    );

    // 3. Cut; each side changes every plan `changes` times.
    a_to_b.cut();
    b_to_a.cut();
    let t = Instant::now();
    // Change by change across the plans, so the threads work on different
    // plans (one plan's writes are serialized) and each plan's come in order.
    let work: Vec<(usize, usize)> = (0..o.changes)
        .flat_map(|c| (0..plans.len()).map(move |p| (p, c)))
        .collect();
    let side = |node: &TestNode, tokens: [&str; 2], label: &str| {
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..o.threads {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((p, c)) = work.get(i) else { break };
                    let token = tokens[c % 2];
                    let ops = if c % 2 == 0 {
                        json!([{"op":"add","path":"/strengths","value":{"statement":format!("{label} strength {c}"),"about":"family"}}])
                    } else {
                        json!([{"op":"replace","path":"/vision","value":format!("{label} vision {c}")}])
                    };
                    node.post_ops(token, &plans[*p], None, ops).assert_status(200);
                });
            }
        });
    };
    std::thread::scope(|scope| {
        scope.spawn(|| side(&a, [&fran, &carla], "A"));
        scope.spawn(|| side(&b, [&cody, &ada], "B"));
    });
    let edited = Instant::now();
    eprintln!(
        "{} changes on each side in {} (link cut: {} requests refused)",
        work.len(),
        secs(t, edited),
        a_to_b.stats().cut + b_to_a.stats().cut
    );
    at_a.poll(&plans)?;
    at_b.poll(&plans)?;
    let differing = plans.iter().filter(|p| at_a.of(p) != at_b.of(p)).count();

    // 4. Heal; time until every plan has the same heads on both nodes.
    let (ab0, ba0) = (a_to_b.stats(), b_to_a.stats());
    let first_request = Mutex::new(None::<Instant>);
    let done = std::sync::atomic::AtomicBool::new(false);
    let healed = Instant::now();
    let after_heal = Faults::chaos(0.0, 0.0, o.loss_per_mille as f64 / 1000.0, Duration::ZERO);
    a_to_b.set_faults(after_heal);
    b_to_a.set_faults(after_heal);
    let polls = std::thread::scope(|scope| -> Result<usize, String> {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if a_to_b.stats().received > ab0.received || b_to_a.stats().received > ba0.received
                {
                    if let Ok(mut first) = first_request.lock() {
                        *first = Some(Instant::now());
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let polls = at_a.wait_equal(&mut at_b, &plans, Duration::from_secs(o.limit_secs));
        done.store(true, Ordering::Relaxed);
        if let Err(e) = &polls {
            eprintln!("link A→B: {}", a_to_b.stats().since(&ab0));
            eprintln!("link B→A: {}", b_to_a.stats().since(&ba0));
            eprintln!("not converged: {e}");
        }
        polls
    })?;
    a_to_b.heal();
    b_to_a.heal();
    let converged = Instant::now();
    let (ab, ba) = (a_to_b.stats().since(&ab0), b_to_a.stats().since(&ba0));
    let first = first_request
        .into_inner()
        .map_err(|e| e.to_string())?
        .unwrap_or(converged);
    eprintln!("converged ({polls} polls)");

    // 5. Nothing changes any more. What the nodes still send after they
    // converged, 10 s at a time, for `settle_secs`; then the idle spell.
    let both_links = || a_to_b.stats().plus(&b_to_a.stats());
    let settle_start = Instant::now();
    let after_converged = both_links();
    let mut timeline = Vec::new();
    let mut last = after_converged.forwarded;
    while settle_start.elapsed() < Duration::from_secs(o.settle_secs) {
        std::thread::sleep(Duration::from_secs(10));
        let now = both_links().forwarded;
        timeline.push(now - last);
        last = now;
    }
    let drained = both_links().since(&after_converged);
    let (ab_i, ba_i) = (a_to_b.stats(), b_to_a.stats());
    let cpu_before = (cpu_secs(a.pid()), cpu_secs(b.pid()));
    let idle_start = Instant::now();
    std::thread::sleep(Duration::from_secs(o.idle_secs));
    let idle = idle_start.elapsed().as_secs_f64();
    let (ab_idle, ba_idle) = (a_to_b.stats().since(&ab_i), b_to_a.stats().since(&ba_i));
    let cpu_after = (cpu_secs(a.pid()), cpu_secs(b.pid()));

    let per_min = |n: u64| n as f64 * 60.0 / idle;
    println!();
    println!(
        "## Federation: two nodes, {} plans, {} changes per plan on each side",
        plans.len(),
        o.changes
    );
    println!();
    println!("| | |");
    println!("| --- | --: |");
    println!(
        "| initial replication ({} plans, each made and shared just before) | {} after the last share |",
        plans.len(),
        secs(shared_at, replicated)
    );
    println!(
        "| initial replication, link A→B | {} requests, {} B out, {} B back |",
        initial_stats.forwarded, initial_stats.request_bytes, initial_stats.reply_bytes
    );
    println!(
        "| changes while cut | {} per side in {} ({} plans differ) |",
        work.len(),
        secs(t, edited),
        differing
    );
    if o.loss_per_mille > 0 {
        println!(
            "| replies lost after the heal | {} per mille ({} lost) |",
            o.loss_per_mille,
            ab.dropped_replies + ba.dropped_replies
        );
    }
    println!(
        "| **heal → converged** (all {} plans equal heads) | **{}** |",
        plans.len(),
        secs(healed, converged)
    );
    println!(
        "| of which waiting out back-off (heal → first request) | {} |",
        secs(healed, first)
    );
    println!("| first request → converged | {} |", secs(first, converged));
    for (name, s) in [("A→B", ab), ("B→A", ba)] {
        println!(
            "| link {name} after heal: requests, request bytes, reply bytes | {}, {}, {} |",
            s.forwarded, s.request_bytes, s.reply_bytes
        );
    }
    let both = ab.plus(&ba);
    println!(
        "| both ways: requests, bytes (bodies only) | {}, {} ({}) |",
        both.forwarded,
        both.request_bytes + both.reply_bytes,
        both.request_body_bytes + both.reply_body_bytes
    );
    println!(
        "| after converging, {} s: requests both ways (per 10 s: {}) | {} |",
        o.settle_secs,
        timeline
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        drained.forwarded
    );
    println!(
        "| then idle ({:.0} s, interval {} s): requests per minute A→B, B→A | {:.0}, {:.0} |",
        idle,
        o.interval,
        per_min(ab_idle.forwarded),
        per_min(ba_idle.forwarded)
    );
    println!(
        "| idle: bytes per minute A→B, B→A (both ways on each link) | {:.0}, {:.0} |",
        per_min(ab_idle.request_bytes + ab_idle.reply_bytes),
        per_min(ba_idle.request_bytes + ba_idle.reply_bytes)
    );
    if let ((Some(a0), Some(b0)), (Some(a1), Some(b1))) = (cpu_before, cpu_after) {
        println!(
            "| idle: node CPU seconds per minute, A, B | {:.2}, {:.2} |",
            (a1 - a0) * 60.0 / idle,
            (b1 - b0) * 60.0 / idle
        );
    }
    println!();
    eprintln!("link A→B after heal: {ab}");
    eprintln!("link B→A after heal: {ba}");
    eprintln!("idle A→B: {ab_idle}");
    eprintln!("idle B→A: {ba_idle}");
    Ok(())
}

/// User + system CPU seconds of a process so far (Linux `/proc`).
fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s (USER_HZ) on every common build.
    Some((utime + stime) / 100.0)
}

/// Each plan's heads on one node, kept current cheaply: `POST /v1/sync`
/// with `have` = the heads last seen answers only the changes since, 500
/// plans a request.
struct Heads<'a> {
    node: &'a TestNode,
    token: &'a str,
    heads: HashMap<String, Vec<String>>,
}

impl<'a> Heads<'a> {
    fn new(node: &'a TestNode, token: &'a str) -> Self {
        Heads {
            node,
            token,
            heads: HashMap::new(),
        }
    }

    fn of(&self, plan: &str) -> Option<&Vec<String>> {
        self.heads.get(plan)
    }

    fn poll(&mut self, plans: &[String]) -> Result<(), String> {
        for chunk in plans.chunks(500) {
            let items: Vec<Value> = chunk
                .iter()
                .map(|p| json!({"plan": p, "have": self.heads.get(p).cloned().unwrap_or_default()}))
                .collect();
            let reply = self.node.send(
                self.node
                    .request(Method::POST, "/v1/sync")
                    .bearer_auth(self.token)
                    .header("device-id", "fed-bench")
                    .json(&json!({ "plans": items })),
            );
            if reply.status != 200 {
                return Err(format!("POST /v1/sync: {} {}", reply.status, reply.text()));
            }
            for result in reply.json["plans"].as_array().into_iter().flatten() {
                let plan = result["plan"].as_str().unwrap_or_default().to_string();
                match result["heads"].as_array() {
                    Some(heads) => {
                        let mut heads: Vec<String> = heads
                            .iter()
                            .filter_map(|h| h.as_str().map(str::to_string))
                            .collect();
                        heads.sort();
                        self.heads.insert(plan, heads);
                    }
                    // Not there yet (a replica on its way): ask again later.
                    None => {
                        self.heads.remove(&plan);
                    }
                }
            }
        }
        Ok(())
    }

    /// Polls both nodes until every plan has the same heads on both;
    /// answers the number of polls.
    fn wait_equal(
        &mut self,
        other: &mut Heads<'_>,
        plans: &[String],
        limit: Duration,
    ) -> Result<usize, String> {
        let until = Instant::now() + limit;
        let mut polls = 0;
        loop {
            self.poll(plans)?;
            other.poll(plans)?;
            polls += 1;
            let equal = plans
                .iter()
                .all(|p| self.of(p).is_some() && self.of(p) == other.of(p));
            if equal {
                return Ok(polls);
            }
            if Instant::now() > until {
                let behind = plans.iter().filter(|p| self.of(p) != other.of(p)).count();
                return Err(format!(
                    "{behind} plans still differ after {} s",
                    limit.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
