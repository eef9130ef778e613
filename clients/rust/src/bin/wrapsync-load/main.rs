//! `wrapsync-load`: an open-loop load generator for a wrapsync node on this
//! machine. Requests fall due on a fixed schedule (`start + i / rate`) and
//! their latency is measured from when they were due, not from when they
//! could be sent, so a stalling node shows up in the percentiles instead of
//! quietly lowering the rate (coordinated omission).
//!
//! ```text
//! wrapsync-load --demo /tmp/loaddemo/demo.json --scenario mixed --rate 200 --duration 10
//! wrapsync-load --url http://127.0.0.1:18401 --username fay --password … --scenario ops --plans 4
//! wrapsync-load --url http://127.0.0.1:18401,http://127.0.0.1:18402 … --scenario phone \
//!     --duration 900 --sample-pid 4242 --sample-pid 4243 --warmup 120
//! ```
//!
//! A person reads the summary on stderr; the last line on stdout is the same
//! summary as one JSON object.
//!
//! By default it drives one user far past a person's rate: the node must
//! allow it (`rate_limit_per_user = { per_second = 25000, burst = 50000 }`,
//! as `tests/load/node.sh` and `wrapsync demo` write), else its requests
//! are counted as `429` errors. `--users N` spreads the requests over N
//! users instead (`{username}1` … `{username}N`, one password), so a node
//! at its default per-user limit serves them as it would serve people.

mod phone;
mod report;
mod run;
mod schedule;
mod soak;
mod target;

use clap::{Parser, ValueEnum};
use report::Kind;
use reqwest::Url;
use run::{Base, PlanUrls, Session, Target};
use schedule::Schedule;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wrapsync_client::{Client, ClientError, ListQuery, ProblemType};

/// What the load is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `GET /v1/plans/{id}` only.
    Read,
    /// `POST /v1/plans/{id}/ops` (`replace /vision`) only.
    Ops,
    /// 80 % reads, 20 % ops, drawn at random per request.
    Mixed,
    /// A team's phones: 80 % reads (55 % a plan, 25 % the plan list), 20 %
    /// writes and syncs (12 % ops, 7 % sync rounds carrying offline edits,
    /// 0.98 % token refreshes, 0.02 % password logins: an access token
    /// lasts 15 minutes, a session 30 days).
    Phone,
    /// The phone workload without what makes plans grow: 68 % reads of a
    /// plan, 31 % plan lists, 0.98 % refreshes, 0.02 % logins. For a soak
    /// that tells a leak from documents keeping their history.
    PhoneReads,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::Ops => "ops",
            Scenario::Mixed => "mixed",
            Scenario::Phone => "phone",
            Scenario::PhoneReads => "phone-reads",
        }
    }

    /// Each kind's share of the requests.
    fn mix(self) -> &'static [(Kind, f64)] {
        match self {
            Scenario::Read => &[(Kind::Read, 1.0)],
            Scenario::Ops => &[(Kind::Ops, 1.0)],
            Scenario::Mixed => &[(Kind::Read, 0.8), (Kind::Ops, 0.2)],
            Scenario::Phone => &[
                (Kind::Read, 0.55),
                (Kind::List, 0.25),
                (Kind::Ops, 0.12),
                (Kind::Sync, 0.07),
                (Kind::Refresh, 0.0098),
                (Kind::Login, 0.0002),
            ],
            Scenario::PhoneReads => &[
                (Kind::Read, 0.68),
                (Kind::List, 0.31),
                (Kind::Refresh, 0.0098),
                (Kind::Login, 0.0002),
            ],
        }
    }
}

/// Open-loop load generator for a wrapsync node on loopback.
#[derive(Debug, Parser)]
#[command(name = "wrapsync-load", version)]
struct Args {
    /// The node's base URL (loopback only); taken from --demo when absent.
    /// Several (repeated or comma-separated): processes sharing one
    /// database, sent requests round-robin as a load balancer would.
    #[arg(long, value_delimiter = ',')]
    url: Vec<String>,
    /// The user to log in as; with --demo, picks that user from the file.
    #[arg(long)]
    username: Option<String>,
    /// The user's password; with --demo, taken from the file when absent.
    #[arg(long, env = "WRAPSYNC_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A `demo.json` written by `wrapsync demo`: the node URL and a user
    /// (a facilitator unless --username says otherwise).
    #[arg(long)]
    demo: Option<PathBuf>,
    /// Requests per second the schedule asks for.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds during which requests fall due; the run then ends by itself.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Spread the requests over this many users, `{username}1` …
    /// `{username}N` (one password; they must exist and see the plans, as
    /// supervisors do): each user's phones get `rate / N` requests a second.
    #[arg(long, default_value_t = 1)]
    users: usize,
    /// Concurrent keep-alive connections sharing the schedule.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, value_enum, default_value_t = Scenario::Read)]
    scenario: Scenario,
    /// How many plans to spread the load over (ops and mixed create them).
    #[arg(long, default_value_t = 1)]
    plans: usize,
    /// Per-request timeout in milliseconds (a timeout counts as an error).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Runtime worker threads; 1 leaves the other core to the node.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed of the plan/kind/value choices, for a repeatable request mix.
    #[arg(long)]
    seed: Option<u64>,
    /// Soak: a node process whose resident memory and open descriptors are
    /// sampled during the run (repeat for several).
    #[arg(long)]
    sample_pid: Vec<u32>,
    /// Soak: a file whose size is sampled (the SQLite database, its -wal).
    #[arg(long)]
    sample_file: Vec<PathBuf>,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    sample_every: f64,
    /// Seconds of warm-up: requests due in it are left out of the latency
    /// percentiles, and samples taken in it out of the memory slope.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
}

fn main() -> ExitCode {
    match load(Args::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("wrapsync-load: {message}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: Args) -> Result<ExitCode, String> {
    let duration = Duration::try_from_secs_f64(args.duration)
        .map_err(|_| "--duration must be a positive number of seconds".to_string())?;
    let schedule = Schedule::new(args.rate, duration, args.connections)?;
    if !(1..=100).contains(&args.plans) {
        return Err("--plans must be in 1..=100".into());
    }
    if !(1..=60_000).contains(&args.timeout_ms) {
        return Err("--timeout-ms must be in 1..=60000".into());
    }
    if !(1..=64).contains(&args.threads) {
        return Err("--threads must be in 1..=64".into());
    }
    if !(1..=10_000).contains(&args.users) {
        return Err("--users must be in 1..=10000".into());
    }
    let timeout = Duration::from_millis(args.timeout_ms);
    let (urls, username, password) = credentials(&args)?;
    let urls = urls
        .iter()
        .map(|url| {
            let parsed = Url::parse(url).map_err(|e| format!("--url {url}: {e}"))?;
            target::check_loopback(&parsed)?;
            Ok(parsed)
        })
        .collect::<Result<Vec<Url>, String>>()?;
    let url = urls.first().ok_or("give --url")?.clone();
    let every = Duration::try_from_secs_f64(args.sample_every)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or("--sample-every must be a positive number of seconds")?;
    let watch = soak::Watch {
        pids: args.sample_pid.clone(),
        files: args.sample_file.clone(),
        every,
        warmup: Duration::try_from_secs_f64(args.warmup)
            .map_err(|_| "--warmup must be a number of seconds, 0 or more")?,
    };

    let usernames = usernames(&username, args.users);
    let (sessions, plan_ids) = prepare(&url, &usernames, &password, &args, duration + timeout)?;
    let bases = urls
        .iter()
        .map(|url| base(url, &plan_ids))
        .collect::<Result<Vec<_>, _>>()?;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    });

    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("starting the runtime: {e}"))?;
    let (stats, elapsed, samples) = runtime.block_on(async {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .pool_max_idle_per_host(args.connections)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let target = Target {
            http,
            bases,
            mix: args.scenario.mix(),
            sessions,
            warmup: watch.warmup,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sampler = (!watch.is_empty())
            .then(|| tokio::spawn(watch.clone().run(std::time::Instant::now(), stopped)));
        let run = run::run(target, schedule, seed).await;
        let _ = stop.send(true);
        let samples = match sampler {
            Some(task) => Some(task.await.map_err(|e| format!("the sampler failed: {e}"))?),
            None => None,
        };
        let (stats, elapsed) = run?;
        Ok::<_, String>((stats, elapsed, samples))
    })?;

    let info = report::RunInfo {
        scenario: args.scenario.name(),
        url: urls.iter().map(Url::as_str).collect::<Vec<_>>().join(","),
        rate: args.rate,
        duration,
        connections: args.connections,
        plans: plan_ids.len(),
        scheduled: schedule.total(),
        elapsed,
    };
    eprint!("{}", report::summary_text(&info, &stats)?);
    let mut summary = report::summary_json(&info, &stats)?;
    if let Some((watch, samples)) = samples {
        let soak = soak::report(&watch, &samples);
        for p in soak["processes"].as_array().into_iter().flatten() {
            eprintln!(
                "  pid {}: resident {} MB after warm-up, {} MB at the end (max {}), slope {} MB/h; fds max {}",
                p["pid"], p["rss_mb_after_warmup"], p["rss_mb_at_end"], p["rss_mb_max"],
                p["rss_slope_mb_per_hour"], p["fds_max"]
            );
        }
        for f in soak["files"].as_array().into_iter().flatten() {
            eprintln!(
                "  {}: max {} MB, {} MB at the end",
                f["file"], f["mb_max"], f["mb_at_end"]
            );
        }
        summary["soak"] = soak;
    }
    println!("{summary}");
    Ok(if stats.ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The URLs, username and password, from the flags and the demo file.
fn credentials(args: &Args) -> Result<(Vec<String>, String, String), String> {
    let demo = match &args.demo {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            Some(target::login_from_demo(&json, args.username.as_deref())?)
        }
        None => None,
    };
    let urls = if args.url.is_empty() {
        vec![demo
            .as_ref()
            .and_then(|d| d.url.clone())
            .ok_or("give --url (or --demo with a node URL in it)")?]
    } else {
        args.url.clone()
    };
    let username = args
        .username
        .clone()
        .or_else(|| demo.as_ref().map(|d| d.username.clone()))
        .ok_or("give --username and --password, or --demo")?;
    let password = args
        .password
        .clone()
        .or_else(|| demo.as_ref().map(|d| d.password.clone()))
        .ok_or("give --password (or WRAPSYNC_PASSWORD), or --demo")?;
    Ok((urls, username, password))
}

/// The users the load is spread over: `username` itself, or
/// `{username}1` … `{username}N`.
fn usernames(username: &str, users: usize) -> Vec<String> {
    if users == 1 {
        vec![username.to_string()]
    } else {
        (1..=users).map(|i| format!("{username}{i}")).collect()
    }
}

/// Logs every user in and picks the plans to load (as the first user), with
/// the blocking client before the runtime starts. Answers each user's
/// session and the plan ids.
fn prepare(
    url: &Url,
    usernames: &[String],
    password: &str,
    args: &Args,
    longest_run: Duration,
) -> Result<(Vec<Session>, Vec<String>), String> {
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let mut client = Client::with_http(url.as_str(), http).map_err(|e| e.to_string())?;
    let mut sessions = Vec::with_capacity(usernames.len());
    let mut plans = Vec::new();
    for (i, username) in usernames.iter().enumerate() {
        let token = log_in(&mut client, username, password)?;
        if i == 0 {
            if Duration::from_secs(token.expires_in) < longest_run {
                eprintln!(
                    "wrapsync-load: warning: the access token expires in {} s, before the run ends: expect 401s",
                    token.expires_in
                );
            }
            plans = pick_plans(&client, username, args.scenario, args.plans)?;
        }
        sessions.push(Session::new(
            username,
            password,
            &token.access_token,
            token.refresh_token,
        )?);
    }
    let shown: Vec<&str> = plans.iter().take(3).map(String::as_str).collect();
    eprintln!(
        "wrapsync-load: logged in as {}{}; {} plan(s): {}{}",
        usernames.first().map_or("", String::as_str),
        match usernames.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        },
        plans.len(),
        shown.join(", "),
        if plans.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    );
    Ok((sessions, plans))
}

/// Logs `username` in, waiting out the node's per-address login limit (a
/// run of many users signs them all in from this one address).
fn log_in(
    client: &mut Client,
    username: &str,
    password: &str,
) -> Result<wrapsync_client::api::TokenResponse, String> {
    let give_up = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        match client.login(username, password) {
            Ok(tokens) => return Ok(tokens),
            Err(e)
                if e.problem_type() == Some(ProblemType::RateLimited)
                    && std::time::Instant::now() < give_up =>
            {
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(format!("logging in as {username}: {e}")),
        }
    }
}

/// How the plans the load writes to are titled.
const LOAD_TITLE: &str = "wrapsync-load plan ";

/// Reads go to plans the user already sees (creating some only if there
/// are too few); writes go to plans created for the run, so the load never
/// scribbles over a family's plan — unless the user may not create plans.
fn pick_plans(
    client: &Client,
    username: &str,
    scenario: Scenario,
    wanted: usize,
) -> Result<Vec<String>, String> {
    let visible = || -> Result<Vec<String>, String> {
        let query = ListQuery {
            limit: u32::try_from(wanted).ok(),
            ..ListQuery::default()
        };
        let list = client
            .list_plans(&query)
            .map_err(|e| format!("listing plans: {e}"))?;
        Ok(list.plans.into_iter().map(|p| p.id).take(wanted).collect())
    };
    let mut ids = match scenario {
        Scenario::Read => visible()?,
        // The plans an earlier run made, so runs after runs do not grow
        // the user's caseload (and with it every list).
        Scenario::Ops | Scenario::Mixed | Scenario::Phone | Scenario::PhoneReads => client
            .list_all_plans()
            .map_err(|e| format!("listing plans: {e}"))?
            .into_iter()
            .filter(|p| p.title.starts_with(LOAD_TITLE))
            .map(|p| p.id)
            .take(wanted)
            .collect(),
    };
    while ids.len() < wanted {
        let title = format!("{LOAD_TITLE}{}", ids.len() + 1);
        match client.create_plan(&title, None) {
            Ok(plan) => ids.push(plan.id),
            Err(e)
                if ids.is_empty()
                    && e.problem_type() == Some(ProblemType::Forbidden)
                    && scenario != Scenario::Read =>
            {
                eprintln!("wrapsync-load: warning: {username} may not create plans; writing to plans they see");
                ids = visible()?;
                break;
            }
            Err(e) if !ids.is_empty() => {
                eprintln!(
                    "wrapsync-load: warning: could not create more plans ({e}); using {}",
                    ids.len()
                );
                break;
            }
            Err(e) => return Err(no_plan(username, &e)),
        }
    }
    if ids.is_empty() {
        return Err(format!("{username} sees no plan and cannot create one"));
    }
    Ok(ids)
}

fn no_plan(username: &str, e: &ClientError) -> String {
    format!("{username} sees no plan and could not create one: {e}")
}

/// `segments` under `base`.
fn join(base: &Url, segments: &[&str]) -> Result<Url, String> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| format!("{base} cannot be a base URL"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn plan_urls(base: &Url, id: &str) -> Result<PlanUrls, String> {
    Ok(PlanUrls {
        read: join(base, &["v1", "plans", id])?,
        ops: join(base, &["v1", "plans", id, "ops"])?,
        sync: join(base, &["v1", "plans", id, "sync"])?,
    })
}

/// The endpoints of the node process at `url`.
fn base(url: &Url, plan_ids: &[String]) -> Result<Base, String> {
    Ok(Base {
        plans: plan_ids
            .iter()
            .map(|id| plan_urls(url, id))
            .collect::<Result<_, _>>()?,
        list: join(url, &["v1", "plans"])?,
        login: join(url, &["v1", "auth", "login"])?,
        refresh: join(url, &["v1", "auth", "refresh"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_parse_and_scenarios_mix_as_documented() {
        let args = Args::try_parse_from([
            "wrapsync-load",
            "--url",
            "http://127.0.0.1:1",
            "--username",
            "fay",
            "--password",
            "pw",
            "--scenario",
            "mixed",
            "--rate",
            "250",
        ]);
        assert!(matches!(args, Ok(ref a) if a.scenario == Scenario::Mixed && a.rate == 250.0));
        for scenario in [
            Scenario::Read,
            Scenario::Ops,
            Scenario::Mixed,
            Scenario::Phone,
            Scenario::PhoneReads,
        ] {
            let total: f64 = scenario.mix().iter().map(|m| m.1).sum();
            assert!((total - 1.0).abs() < 1e-9, "{scenario:?}");
        }
        // The phone mix: 80 % reads, 20 % writes, syncs and logins.
        let reads: f64 = Scenario::Phone
            .mix()
            .iter()
            .filter(|m| matches!(m.0, Kind::Read | Kind::List))
            .map(|m| m.1)
            .sum();
        assert!((reads - 0.8).abs() < 1e-9);
        let Ok(args) = args else { panic!("parse") };
        assert!(
            matches!(credentials(&args), Ok((u, n, p)) if u == ["http://127.0.0.1:1"] && n == "fay" && p == "pw")
        );
        let two = Args::try_parse_from([
            "wrapsync-load",
            "--url",
            "http://127.0.0.1:1,http://127.0.0.1:2",
            "--url",
            "http://127.0.0.1:3",
            "--sample-pid",
            "7",
        ]);
        assert!(matches!(two, Ok(ref a) if a.url.len() == 3 && a.sample_pid == [7]));
    }

    #[test]
    fn plan_urls_are_built_under_the_base() {
        let Ok(base) = Url::parse("http://127.0.0.1:18401/") else {
            panic!("url")
        };
        let urls = plan_urls(&base, "01JABC");
        assert!(matches!(urls, Ok(ref u)
            if u.read.as_str() == "http://127.0.0.1:18401/v1/plans/01JABC"
            && u.ops.as_str() == "http://127.0.0.1:18401/v1/plans/01JABC/ops"
            && u.sync.as_str() == "http://127.0.0.1:18401/v1/plans/01JABC/sync"));
    }
}
