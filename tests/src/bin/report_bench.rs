//! Node report benchmark (see docs/measurements.md, "State reporting"): a release
//! node on SQLite homes `--plans` plans with a typical caseload's content
//! (enrollment, status snapshots, CANS, meetings, a payment), made through
//! the API; then `wrapsync report --period` (a separate process reading
//! every plan from storage: load, render, count) is timed for one month,
//! `--runs` times; and the running node's cache is left as it was.
//! Then memory per cached plan: the node is restarted (nothing cached),
//! every plan is read once through the API, and the growth of its resident
//! memory is divided by the plans its metrics say it now holds.
//!
//! ```sh
//! cargo build --release -p wrapsync-server --bin wrapsync
//! cargo run --release -p wrapsync-tests --bin report-bench -- [--plans 5000] [--threads 8] [--runs 3]
//! ```

use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use wrapsync_tests::users::FACILITATOR;
use wrapsync_tests::{Backend, TestNode};

fn arg(name: &str, default: usize) -> Result<usize, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{name} needs a number")),
        None => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let plans = arg("--plans", 5000)?;
    let threads = arg("--threads", 8)?;
    let runs = arg("--runs", 3)?;
    if std::env::var_os("WRAPSYNC_BIN").is_none() {
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
    let mut node =
        TestNode::try_spawn_with(Backend::Sqlite, toml::Table::new()).map_err(|e| e.to_string())?;
    let fran = node.login(FACILITATOR);
    let now = time::OffsetDateTime::now_utc().date();
    let day = |back: i64| (now - time::Duration::days(back)).to_string();
    let period = format!("{:04}-{:02}", now.year(), u8::from(now.month()));
    let t = Instant::now();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plans {
                    break;
                }
                let enrolled = 20 + (i % 500) as i64;
                let plan = node.create_plan(&fran, &format!("Family {i}")).id;
                node.apply_ops(&fran, &plan, json!([
                    {"op":"replace","path":"/youth/birth_date","value": day(365 * (4 + (i % 17) as i64))},
                    {"op":"replace","path":"/enrollment/enrolled_on","value": day(enrolled)},
                    {"op":"replace","path":"/enrollment/plan_adopted_on","value": day(enrolled - 15)},
                    {"op":"add","path":"/team","value":{"name":"Neighbour","role":"natural_support","support":"informal"}},
                    {"op":"add","path":"/status","value":{"as_of": day(enrolled), "living": if i.is_multiple_of(5) { "foster" } else { "home" }, "school_days_missed_30d": (i % 9) as i64, "arrests_30d": i64::from(i.is_multiple_of(7)), "psych_admissions_180d": i64::from(i.is_multiple_of(4))}},
                    {"op":"add","path":"/status","value":{"as_of": day(10), "living":"home", "school_days_missed_30d": (i % 3) as i64, "arrests_30d": 0, "psych_admissions_180d": 0}},
                    {"op":"add","path":"/cans","value":{"assessed_on": day(enrolled), "ratings": {"bh.anxiety": 3, "ls.school_attendance": 2, "cg.supervision": 1}}},
                    {"op":"add","path":"/cans","value":{"assessed_on": day(5), "ratings": {"bh.anxiety": 1, "ls.school_attendance": 2, "cg.supervision": 0}}},
                    {"op":"add","path":"/meetings","value":{"held_on": day(12), "status":"held"}},
                    {"op":"replace","path":"/crisis_plan/reviewed_on","value": day(30)},
                ]));
            });
        }
    });
    eprintln!("made {plans} plans in {:.1} s", t.elapsed().as_secs_f64());
    println!("## Node report: {plans} plans, SQLite, release build\n");
    println!("| run | `wrapsync report --period {period}` (a process: open, read every plan, count) | cells |");
    println!("| --: | --: | --: |");
    for run in 1..=runs {
        let t = Instant::now();
        let out = node
            .cli(&["report", "--period", &period])
            .map_err(|e| e.to_string())?;
        let took = t.elapsed().as_secs_f64();
        let start = out.find('{').ok_or("no JSON in the output")?;
        let report: serde_json::Value =
            serde_json::from_str(&out[start..]).map_err(|e| e.to_string())?;
        let cells = report["cells"].as_array().map_or(0, Vec::len);
        let served: u64 = report["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["indicator"] == "youth_served")
            .filter_map(|c| c["value"].as_u64())
            .sum();
        if served as usize != plans {
            return Err(format!(
                "the report counts {served} youth served, not {plans}"
            ));
        }
        println!("| {run} | {took:.2} s | {cells} |");
    }
    memory_per_cached_plan(&mut node, plans)
}

/// Resident memory of process `pid`, in bytes (`VmRSS`).
fn resident(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading the node's status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or("no VmRSS in the node's status".into())
}

/// The node's `wrapsync_plans_cached` gauge.
fn plans_cached(node: &TestNode) -> Result<u64, String> {
    node.get_anon("/metrics")
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("wrapsync_plans_cached "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no wrapsync_plans_cached in the metrics".into())
}

/// Restarts the node, reads every plan once, and prints how much resident
/// memory each plan it then holds costs.
fn memory_per_cached_plan(node: &mut TestNode, plans: usize) -> Result<(), String> {
    node.stop();
    node.start();
    let fran = node.login(FACILITATOR);
    let ids: Vec<String> = node
        .list_all_plans(&fran)
        .into_iter()
        .map(|p| p.id)
        .collect();
    let pid = node.pid().ok_or("the node is not running")?;
    let before = (resident(pid)?, plans_cached(node)?);
    for id in &ids {
        node.read_plan(&fran, id);
    }
    // A second pass touches every plan again: what stays is the cache.
    for id in &ids {
        node.read_plan(&fran, id);
    }
    let after = (resident(pid)?, plans_cached(node)?);
    let held = after.1.saturating_sub(before.1).max(1);
    let per_plan = after.0.saturating_sub(before.0) as f64 / held as f64;
    println!(
        "\n## Memory per cached plan: {plans} plans made, {} listed\n",
        ids.len()
    );
    println!("| resident before | after reading all | plans cached | per cached plan |");
    println!("| --: | --: | --: | --: |");
    println!(
        "| {:.1} MB | {:.1} MB | {} → {} | {:.1} kB |",
        before.0 as f64 / 1e6,
        after.0 as f64 / 1e6,
        before.1,
        after.1,
        per_plan / 1e3
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("report-bench: {e}");
        std::process::exit(1);
    }
}
