//! `wrapsync-load`: an open-loop load generator for a wrapsync node on this
//! machine. Requests fall due on a fixed schedule (`start + i / rate`) and
//! their latency is measured from when they were due, not from when they
//! could be sent, so a stalling node shows up in the percentiles instead of
//! quietly lowering the rate (coordinated omission).
//!
//! ```text
//! wrapsync-load --demo /tmp/loaddemo/demo.json --scenario mixed --rate 200 --duration 10
//! wrapsync-load --url http://127.0.0.1:18401 --username fay --password … --scenario ops --plans 4
//! ```
//!
//! A person reads the summary on stderr; the last line on stdout is the same
//! summary as one JSON object.

mod report;
mod run;
mod schedule;
mod target;

use clap::{Parser, ValueEnum};
use reqwest::header::HeaderValue;
use reqwest::Url;
use run::{PlanUrls, Target};
use schedule::Schedule;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wrapsync_client::{Client, ClientError, ListQuery};

/// What the load is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `GET /v1/plans/{id}` only.
    Read,
    /// `POST /v1/plans/{id}/ops` (`replace /vision`) only.
    Ops,
    /// 80 % reads, 20 % ops, drawn at random per request.
    Mixed,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::Ops => "ops",
            Scenario::Mixed => "mixed",
        }
    }

    fn ops_share(self) -> f64 {
        match self {
            Scenario::Read => 0.0,
            Scenario::Ops => 1.0,
            Scenario::Mixed => 0.2,
        }
    }
}

/// Open-loop load generator for a wrapsync node on loopback.
#[derive(Debug, Parser)]
#[command(name = "wrapsync-load", version)]
struct Args {
    /// The node's base URL (loopback only); taken from --demo when absent.
    #[arg(long)]
    url: Option<String>,
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
    let timeout = Duration::from_millis(args.timeout_ms);
    let (url, username, password) = credentials(&args)?;
    let url = Url::parse(&url).map_err(|e| format!("--url {url}: {e}"))?;
    target::check_loopback(&url)?;

    let (token, plan_ids) = prepare(&url, &username, &password, &args, duration + timeout)?;
    let plans = plan_ids
        .iter()
        .map(|id| plan_urls(&url, id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the node answered an access token that is not a header value")?;
    auth.set_sensitive(true);
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
    let (stats, elapsed) = runtime.block_on(async {
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
            auth,
            plans,
            ops_share: args.scenario.ops_share(),
        };
        run::run(target, schedule, seed).await
    })?;

    let info = report::RunInfo {
        scenario: args.scenario.name(),
        url: url.to_string(),
        rate: args.rate,
        duration,
        connections: args.connections,
        plans: plan_ids.len(),
        scheduled: schedule.total(),
        elapsed,
    };
    eprint!("{}", report::summary_text(&info, &stats)?);
    println!("{}", report::summary_json(&info, &stats)?);
    Ok(if stats.ok > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The URL, username and password, from the flags and the demo file.
fn credentials(args: &Args) -> Result<(String, String, String), String> {
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
    let url = args
        .url
        .clone()
        .or_else(|| demo.as_ref().and_then(|d| d.url.clone()))
        .ok_or("give --url (or --demo with a node URL in it)")?;
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
    Ok((url, username, password))
}

/// Logs in and picks the plans to load, with the blocking client before the
/// runtime starts. Answers the access token and the plan ids.
fn prepare(
    url: &Url,
    username: &str,
    password: &str,
    args: &Args,
    longest_run: Duration,
) -> Result<(String, Vec<String>), String> {
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let mut client = Client::with_http(url.as_str(), http).map_err(|e| e.to_string())?;
    let tokens = client
        .login(username, password)
        .map_err(|e| format!("logging in as {username}: {e}"))?;
    if Duration::from_secs(tokens.expires_in) < longest_run {
        eprintln!(
            "wrapsync-load: warning: the access token expires in {} s, before the run ends: expect 401s",
            tokens.expires_in
        );
    }
    let plans = pick_plans(&client, username, args.scenario, args.plans)?;
    eprintln!(
        "wrapsync-load: logged in as {username}; {} plan(s): {}",
        plans.len(),
        plans.join(", ")
    );
    Ok((tokens.access_token, plans))
}

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
        Scenario::Ops | Scenario::Mixed => Vec::new(),
    };
    while ids.len() < wanted {
        let title = format!("wrapsync-load plan {}", ids.len() + 1);
        match client.create_plan(&title, None) {
            Ok(plan) => ids.push(plan.id),
            Err(e)
                if ids.is_empty()
                    && e.code() == Some("forbidden")
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

fn plan_urls(base: &Url, id: &str) -> Result<PlanUrls, String> {
    let join = |segments: &[&str]| -> Result<Url, String> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| format!("{base} cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    };
    Ok(PlanUrls {
        read: join(&["v1", "plans", id])?,
        ops: join(&["v1", "plans", id, "ops"])?,
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
        assert_eq!(Scenario::Mixed.ops_share(), 0.2);
        assert_eq!(Scenario::Read.ops_share(), 0.0);
        let Ok(args) = args else { panic!("parse") };
        assert!(
            matches!(credentials(&args), Ok((u, n, p)) if u == "http://127.0.0.1:1" && n == "fay" && p == "pw")
        );
    }

    #[test]
    fn plan_urls_are_built_under_the_base() {
        let Ok(base) = Url::parse("http://127.0.0.1:18401/") else {
            panic!("url")
        };
        let urls = plan_urls(&base, "01JABC");
        assert!(matches!(urls, Ok(ref u)
            if u.read.as_str() == "http://127.0.0.1:18401/v1/plans/01JABC"
            && u.ops.as_str() == "http://127.0.0.1:18401/v1/plans/01JABC/ops"));
    }
}
