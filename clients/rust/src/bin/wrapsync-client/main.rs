//! `wrapsync-client`: a command line for one device's offline replica of
//! its plans. Log in once; `edit` works with no network and queues the
//! edit in the local copy; `sync` sends it and brings the node's changes.
//!
//! ```text
//! WRAPSYNC_PASSWORD=… wrapsync-client login --url http://127.0.0.1:8080 --username carla
//! wrapsync-client sync
//! wrapsync-client list
//! wrapsync-client edit 01J… --op '{"op":"replace","path":"/vision","value":"Home together"}'
//! wrapsync-client show 01J…
//! wrapsync-client sync 01J…
//! ```
//!
//! The state directory (`--dir`, default `./.wrapsync-client`) holds
//! `session.json` (node, user, device id, tokens; owner-only) and the
//! replica in `replica/`. It belongs to one user on one node: the device's
//! Automerge actor is bound to that user by the node. An access token the
//! node refuses (401) is refreshed once with the refresh token and the call
//! repeated.

mod session;

use clap::{Parser, Subcommand};
use session::Session;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wrapsync_client::{Client, Op, Replica, ReplicaError, SyncReport};

type CliResult<T> = Result<T, Box<dyn Error>>;

/// Offline replica of a wrapsync user's plans.
#[derive(Debug, Parser)]
#[command(name = "wrapsync-client", version)]
struct Cli {
    /// State directory: the session and the replica.
    #[arg(long, global = true, default_value = "./.wrapsync-client")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log in and keep the session (and a device id) in the state directory.
    Login {
        /// The node, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: String,
        #[arg(long)]
        username: String,
        /// The password; prefer the environment variable.
        #[arg(long, env = "WRAPSYNC_PASSWORD", hide_env_values = true)]
        password: String,
        /// This device's id (kept from an earlier login, else generated).
        #[arg(long)]
        device_id: Option<String>,
    },
    /// The plans the node lists for you (needs the network).
    List,
    /// A plan as this device holds it (offline).
    Show {
        plan: String,
        /// Print `{"id","version","plan"}` like `GET /v1/plans/{id}`
        /// (version: this copy's heads, sorted) instead of the plan alone.
        #[arg(long)]
        document: bool,
    },
    /// Apply ops to the local copy of a plan (offline; `sync` sends them).
    Edit {
        plan: String,
        /// One op as JSON, like `/ops` takes it; repeat for several.
        #[arg(long = "op", required = true, value_parser = parse_op)]
        ops: Vec<Op>,
    },
    /// Sync one plan, or every plan you can list (pulling new ones).
    Sync { plan: Option<String> },
}

fn parse_op(s: &str) -> Result<Op, String> {
    serde_json::from_str(s).map_err(|e| format!("not an op ({e})"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> CliResult<ExitCode> {
    let dir = cli.dir.as_path();
    match cli.command {
        Command::Login {
            url,
            username,
            password,
            device_id,
        } => login(dir, &url, &username, &password, device_id),
        Command::List => list(dir),
        Command::Show { plan, document } => {
            let (_, replica) = open(dir)?;
            let json = replica.plan_json(&plan)?;
            let shown = if document {
                let version = replica.heads(&plan)?;
                serde_json::json!({ "id": plan, "version": version, "plan": json })
            } else {
                json
            };
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Edit { plan, ops } => {
            let (_, replica) = open(dir)?;
            let editor = replica.editor(&plan).ok_or_else(|| {
                format!("your role on plan `{plan}` is not known yet: run `sync` first")
            })?;
            let results = replica.edit(&plan, editor, &ops)?;
            println!("{}", serde_json::to_string(&results)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { plan } => sync(dir, plan.as_deref()),
    }
}

fn login(
    dir: &Path,
    url: &str,
    username: &str,
    password: &str,
    device_id: Option<String>,
) -> CliResult<ExitCode> {
    let previous = Session::load(dir)?;
    if let Some(previous) = &previous {
        if previous.url != url || previous.username != username {
            return Err(format!(
                "{} holds the replica of {} on {}; use another --dir",
                dir.display(),
                previous.username,
                previous.url
            )
            .into());
        }
    }
    let device_id = device_id
        .or_else(|| previous.map(|p| p.device_id))
        .unwrap_or_else(|| format!("cli-{}", ulid::Ulid::new().to_string().to_lowercase()));
    let mut client = Client::new(url)?;
    let tokens = client.login(username, password)?;
    let mut replica = Replica::open(&dir.join("replica"), &device_id)?;
    replica.set_user(username)?;
    let session = Session {
        url: url.to_string(),
        username: username.to_string(),
        device_id,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    };
    session.save(dir)?;
    println!(
        "logged in as {username} on {url} (device {})",
        session.device_id
    );
    Ok(ExitCode::SUCCESS)
}

fn list(dir: &Path) -> CliResult<ExitCode> {
    let (mut session, mut replica) = open(dir)?;
    let plans = authorized(dir, &mut session, |client| Ok(client.list_all_plans()?))?;
    let local = replica.plans()?;
    for plan in &plans {
        replica.set_role(&plan.id, plan.role)?;
        let here = if local.contains(&plan.id) {
            "local"
        } else {
            "-"
        };
        println!(
            "{}\t{}\t{}\t{here}\t{}",
            plan.id,
            plan.role.as_str(),
            plan.phase,
            plan.title
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn sync(dir: &Path, plan: Option<&str>) -> CliResult<ExitCode> {
    let (mut session, mut replica) = open(dir)?;
    match plan {
        Some(plan) => {
            let report = authorized(dir, &mut session, |client| replica.sync(client, plan))?;
            println!("{plan}: {}", describe(&report));
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let report = authorized(dir, &mut session, |client| replica.sync_all(client))?;
            let mut failed = false;
            for (plan, result) in &report.plans {
                match result {
                    Ok(report) => println!("{plan}: {}", describe(report)),
                    Err(e) => {
                        failed = true;
                        println!("{plan}: FAILED: {e}");
                    }
                }
            }
            for plan in &report.partial {
                println!("{plan}: your role sees part of it: not synced (read it online)");
            }
            for plan in &report.unlisted {
                println!("{plan}: no longer listed for you; local copy kept");
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn describe(report: &SyncReport) -> String {
    format!(
        "synced in {} rounds, sent {} changes, received {}",
        report.rounds, report.sent_changes, report.received_changes
    )
}

/// The session and replica of the state directory.
fn open(dir: &Path) -> CliResult<(Session, Replica)> {
    let session = Session::load(dir)?
        .ok_or_else(|| format!("no session in {}: log in first", dir.display()))?;
    let replica = Replica::open(&dir.join("replica"), &session.device_id)?;
    Ok((session, replica))
}

/// Runs `call` with the session's client; when the node refuses the access
/// token (401), refreshes it once, saves the new tokens, and repeats.
fn authorized<T>(
    dir: &Path,
    session: &mut Session,
    mut call: impl FnMut(&Client) -> Result<T, ReplicaError>,
) -> CliResult<T> {
    let mut client = session.client()?;
    match call(&client) {
        Err(e) if e.is_unauthorized() => {
            client
                .refresh()
                .map_err(|e| format!("the session has expired ({e}): log in again"))?;
            session.keep_tokens(&client);
            session.save(dir)?;
            Ok(call(&client)?)
        }
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("wrapsync-client").chain(args.iter().copied()))
    }

    #[test]
    fn edit_takes_repeated_json_ops() {
        let cli = parse(&[
            "edit",
            "P1",
            "--op",
            r#"{"op":"replace","path":"/vision","value":"Home"}"#,
            "--op",
            r#"{"op":"add","path":"/strengths","value":{"statement":"Kind"}}"#,
            "--dir",
            "/tmp/x",
        ]);
        let Ok(Cli {
            dir,
            command: Command::Edit { plan, ops },
        }) = cli
        else {
            panic!("{cli:?}")
        };
        assert_eq!(dir, PathBuf::from("/tmp/x"));
        assert_eq!(plan, "P1");
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].path, "/vision");
        assert!(parse(&["edit", "P1", "--op", "{nope"]).is_err());
        assert!(parse(&["edit", "P1"]).is_err(), "at least one op");
    }

    #[test]
    fn sync_takes_an_optional_plan_and_the_dir_has_a_default() {
        assert!(matches!(
            parse(&["sync"]),
            Ok(Cli { command: Command::Sync { plan: None }, ref dir }) if dir == Path::new("./.wrapsync-client")
        ));
        assert!(matches!(
            parse(&["sync", "P1"]),
            Ok(Cli { command: Command::Sync { plan: Some(ref p) }, .. }) if p == "P1"
        ));
    }

    #[test]
    fn login_takes_the_password_as_a_flag() {
        let cli = parse(&[
            "login",
            "--url",
            "http://127.0.0.1:9",
            "--username",
            "carla",
            "--password",
            "pw",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli { command: Command::Login { ref username, ref password, device_id: None, .. }, .. })
                if username == "carla" && password == "pw"
        ));
    }

    #[test]
    fn commands_need_a_session_first() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let err = open(dir.path()).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("log in first")));
    }
}
