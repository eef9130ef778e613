//! The `wrapsync` binary: one program for every server role.

use clap::{Parser, Subcommand};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wrapsync_server::app::{self, App};
use wrapsync_server::config::Config;
use wrapsync_server::db;
#[cfg(feature = "demo")]
use wrapsync_server::demo;
use wrapsync_server::federation::{Peer, Peers};
use wrapsync_server::observe::{init_logging, LogFormat};
use wrapsync_server::users::add_user;
use wrapsync_shared::indicators::Period;
use wrapsync_shared::roles::Role;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wrapsync",
    version,
    about = "Federated sync server for wraparound family team plans"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a county node.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the state hub: enrolled nodes' de-identified reports in,
    /// statewide figures with small cells withheld out.
    Hub {
        #[arg(long)]
        config: PathBuf,
    },
    /// Create or upgrade the node's database, then exit.
    Migrate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Snapshot a SQLite node, running or not, into `--out` (never
    /// overwritten), with its key and token secret beside it
    /// (`OUT.node_key.pem`, `OUT.jwt_secret`). On PostgreSQL, prints the
    /// `pg_dump` command to use and fails.
    Backup {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Install a backup as the database (and key, secret) of a stopped
    /// SQLite node. Refuses to replace existing files without `--force`.
    Restore {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Make the node's Ed25519 key (data_dir/node_key.pem) and print its id
    /// and public key, for the operators of its peers. Never replaces a key.
    Keygen {
        #[arg(long)]
        config: PathBuf,
    },
    /// Manage the peers added at run time (the config file's `[[peers]]`
    /// are edited there). A running node sees changes made here when it
    /// restarts; `/v1/admin/peers` changes them at once.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Rotate the node's keys; a running node takes them up on SIGHUP.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the node's users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Make this node's indicator report for one month from the plans homed
    /// here and print it (JSON); with --send, also submit it to the hub
    /// (`hub_url`) and print the hub's answer. With `dp_epsilon_per_year`
    /// set: the month's differentially private release, made (spending
    /// budget) the first time and the same stored report after; only a
    /// month that is over.
    Report {
        #[arg(long)]
        config: PathBuf,
        /// The month, YYYY-MM.
        #[arg(long)]
        period: Period,
        #[arg(long)]
        send: bool,
    },
    /// Run three seeded demo nodes (county-a, -b, -c) on SQLite under DIR, on
    /// ports BASE_PORT, +1 and +2, peers sharing some plans; describe them in
    /// DIR/demo.json.
    #[cfg(feature = "demo")]
    Demo {
        #[arg(long, default_value = "wrapsync-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
    },
}

#[derive(Subcommand)]
enum PeerCommand {
    /// Add a peer, or replace one's URL or key: given here, or (with
    /// --from-hub) as the hub's node directory lists it.
    Add {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long, required_unless_present = "from_hub")]
        url: Option<String>,
        /// Its public key, from its `GET /federation/v1/identity` (base64url,
        /// so it may start with `-`).
        #[arg(long, required_unless_present = "from_hub", allow_hyphen_values = true)]
        public_key: Option<String>,
        /// Take its URL and key from the directory of the hub this node
        /// reports to (`hub_url`): trust the hub, over HTTPS, to vouch.
        #[arg(long, conflicts_with_all = ["url", "public_key"])]
        from_hub: bool,
    },
    /// List every peer (config file and added).
    List {
        #[arg(long)]
        config: PathBuf,
    },
    Remove {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Retire the generated access-token secret (`data_dir/jwt_secret`;
    /// its tokens stay valid until they expire) and make a new one; prints
    /// the new `kid`.
    RotateJwt {
        #[arg(long)]
        config: PathBuf,
    },
    /// Replace the node's Ed25519 key; the old key signs a statement for the
    /// new one, which the node shows its peers and the hub for the grace
    /// period (they switch to the new key on it and accept the old one until
    /// it ends). Prints the node id, the old and the new public key.
    RotateNode {
        #[arg(long)]
        config: PathBuf,
        /// How long peers still accept the old key (at most 30 days).
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        grace_secs: i64,
    },
    /// Write a new random key for encrypting the SQLite database to the
    /// config's `database_key_file` (owner-only; never overwrites). A new
    /// node then starts encrypted; an existing node's data is encrypted by
    /// restoring a backup taken before the key was set.
    DatabaseKey {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password comes from --password or WRAPSYNC_PASSWORD.
    Add {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        username: String,
        /// facilitator, family_advocate, caregiver, youth, provider, natural_support or supervisor
        #[arg(long)]
        role: Role,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, env = "WRAPSYNC_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Disable a user: they can no longer log in or refresh, and every
    /// session of theirs ends; a running node refuses their access tokens
    /// within a second or two.
    Disable {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        username: String,
    },
    /// Let a disabled user log in again (their old sessions stay ended).
    Enable {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        username: String,
    },
}

/// Peer `id` as the hub's directory lists it (`GET {hub_url}/hub/v1/nodes`).
fn from_directory(config: &wrapsync_server::config::Config, id: &str) -> Result<Peer, BoxError> {
    let hub_url = config
        .hub_url
        .as_deref()
        .ok_or("--from-hub needs hub_url in the config")?;
    let http = wrapsync_server::federation::Federation::blocking_client(config)?;
    let url = format!(
        "{}{}",
        hub_url.trim_end_matches('/'),
        wrapsync_shared::hub::NODES_PATH
    );
    let directory: wrapsync_shared::hub::Directory =
        http.get(&url).send()?.error_for_status()?.json()?;
    let entry = directory
        .nodes
        .into_iter()
        .find(|n| n.id == id)
        .ok_or_else(|| format!("the hub's directory has no node {id}"))?;
    let url = entry
        .url
        .ok_or_else(|| format!("{id} has not registered its URL with the hub yet"))?;
    Ok(Peer {
        id: entry.id,
        url,
        public_key: entry.public_key,
    })
}

/// Makes `dir` (0700) for a command, warning if it was wider (the node
/// narrows it too at start, but the command got there first).
fn private_data_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(had) = wrapsync_server::files::private_dir(dir)? {
        tracing::warn!(path = %dir.display(), mode = format!("{had:o}"),
            "others could read the data directory: made owner-only; find out who read it");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wrapsync: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

fn load_config(path: &Path) -> Result<Config, BoxError> {
    Ok(Config::load(Some(path), std::env::vars())?)
}

fn run(command: Command) -> Result<(), BoxError> {
    match command {
        Command::Node { config: path } => {
            let config = load_config(&path)?;
            init_logging(config.log_format, config.log_file.as_deref())?;
            serve(config, path)
        }
        Command::Hub { config } => {
            let config = wrapsync_server::hub::HubConfig::load(Some(&config), std::env::vars())?;
            init_logging(config.log_format, config.log_file.as_deref())?;
            serve_hub(config)
        }
        other => {
            init_logging(LogFormat::Text, None)?;
            run_tool(other)
        }
    }
}

/// The commands that do one thing and exit.
fn run_tool(command: Command) -> Result<(), BoxError> {
    match command {
        Command::Node { .. } | Command::Hub { .. } => Err("not a tool command".into()),
        Command::Migrate { config } => {
            let config = load_config(&config)?;
            private_data_dir(&config.data_dir)?;
            let mut conn = config.backend()?.connect()?;
            db::migrate(&mut conn)?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Backup { config, out } => {
            let config = load_config(&config)?;
            for file in wrapsync_server::backup::backup(&config, &out)? {
                eprintln!("wrote {}", file.display());
            }
            Ok(())
        }
        Command::Restore {
            config,
            from,
            force,
        } => {
            let config = load_config(&config)?;
            for file in wrapsync_server::backup::restore(&config, &from, force)? {
                eprintln!("installed {}", file.display());
            }
            Ok(())
        }
        Command::Keygen { config } => {
            let config = load_config(&config)?;
            private_data_dir(&config.data_dir)?;
            let path = config
                .data_dir
                .join(wrapsync_server::federation::identity::KEY_FILE);
            let key = wrapsync_server::federation::NodeKey::create(&path)?;
            eprintln!("wrote {}", path.display());
            println!(
                "{}",
                serde_json::json!({ "node_id": config.node_id, "public_key": key.public_key() })
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::RotateJwt { config },
        } => {
            let config = load_config(&config)?;
            private_data_dir(&config.data_dir)?;
            let kid = wrapsync_server::auth::secrets::rotate(&config)?;
            eprintln!("new token secret written; send SIGHUP to the node to sign with it");
            println!("{}", serde_json::json!({ "kid": kid }));
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::RotateNode { config, grace_secs },
        } => {
            let config = load_config(&config)?;
            let (old, new) = wrapsync_server::federation::identity::rotate(
                &config.data_dir,
                &config.node_id,
                grace_secs,
                db::now_ms() / 1000,
            )?;
            eprintln!("new node key written; send SIGHUP to the node to sign with it");
            println!(
                "{}",
                serde_json::json!({
                    "node_id": config.node_id,
                    "old_public_key": old,
                    "public_key": new,
                    "grace_secs": grace_secs,
                })
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::DatabaseKey { config },
        } => {
            use std::io::Write;
            let config = load_config(&config)?;
            let out = config
                .database_key_file
                .ok_or("set database_key_file in the config to where the key goes")?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&out)
                .map_err(|e| format!("{}: {e}", out.display()))?;
            writeln!(file, "{}", db::DatabaseKey::generate())?;
            file.sync_all()?;
            eprintln!(
                "wrote {}; keep a copy apart from the backups",
                out.display()
            );
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    config,
                    username,
                    role,
                    display_name,
                    password,
                },
        } => {
            let config = load_config(&config)?;
            private_data_dir(&config.data_dir)?;
            let mut conn = config.backend()?.connect()?;
            db::migrate(&mut conn)?;
            let display_name = display_name.unwrap_or_else(|| username.clone());
            let user = add_user(&mut conn, &username, &display_name, role, &password)?;
            eprintln!("added {} ({})", user.username, user.role);
            Ok(())
        }
        Command::User { command } => {
            let (config, username, disabled) = match command {
                UserCommand::Disable { config, username } => (config, username, true),
                UserCommand::Enable { config, username } => (config, username, false),
                // Matched above.
                UserCommand::Add { .. } => return Ok(()),
            };
            let config = load_config(&config)?;
            let mut conn = config.backend()?.connect()?;
            db::migrate(&mut conn)?;
            let (user, ended) = wrapsync_server::store::users::set_disabled(
                &mut conn,
                &username,
                disabled,
                db::now_ms(),
            )?
            .ok_or_else(|| format!("no user `{username}`"))?;
            if disabled {
                eprintln!("disabled {}; ended {ended} session(s)", user.username);
            } else {
                eprintln!("enabled {}", user.username);
            }
            Ok(())
        }
        Command::Peer { command } => {
            let path = match &command {
                PeerCommand::Add { config, .. }
                | PeerCommand::List { config }
                | PeerCommand::Remove { config, .. } => config.clone(),
            };
            let config = load_config(&path)?;
            private_data_dir(&config.data_dir)?;
            let mut conn = config.backend()?.connect()?;
            db::migrate(&mut conn)?;
            let configured = |id: &str| config.peers.iter().any(|p| p.id == id);
            match command {
                PeerCommand::Add {
                    id,
                    url,
                    public_key,
                    from_hub,
                    ..
                } => {
                    if configured(&id) || id == config.node_id {
                        return Err(format!("{id} is this node or in its config file").into());
                    }
                    let peer = match (from_hub, url, public_key) {
                        (true, _, _) => from_directory(&config, &id)?,
                        (false, Some(url), Some(public_key)) => Peer {
                            id,
                            url,
                            public_key,
                        },
                        _ => return Err("give --url and --public-key, or --from-hub".into()),
                    };
                    Peers::new(std::slice::from_ref(&peer))?;
                    wrapsync_server::store::peers::put(&mut conn, &peer, db::now_ms())?;
                    eprintln!("added peer {} at {}", peer.id, peer.url);
                }
                PeerCommand::List { .. } => {
                    let stored = wrapsync_server::store::peers::list(&mut conn)?;
                    for (peer, source) in config
                        .peers
                        .iter()
                        .map(|p| (p, "config"))
                        .chain(stored.iter().map(|p| (p, "added")))
                    {
                        println!("{}\t{}\t{}\t{source}", peer.id, peer.url, peer.public_key);
                    }
                }
                PeerCommand::Remove { id, .. } => {
                    if !wrapsync_server::store::peers::remove(&mut conn, &id)? {
                        return Err(format!("no added peer {id}").into());
                    }
                    eprintln!("removed peer {id}");
                }
            }
            Ok(())
        }
        #[cfg(feature = "demo")]
        Command::Demo { dir, base_port } => demo::run(&dir, base_port),
        Command::Report {
            config,
            period,
            send,
        } => report(load_config(&config)?, period, send),
    }
}

/// Makes (and with `send` submits) one month's report (its release, with
/// privacy on), then lets the writer store the audit row before exiting.
fn report(config: Config, period: Period, send: bool) -> Result<(), BoxError> {
    if send && config.hub_url.is_none() {
        return Err("--send needs hub_url and hub_id in the config".into());
    }
    let (app, writer_thread) = App::open(config)?;
    let runtime = actix_web::rt::System::new();
    let result = runtime.block_on(async {
        let report = wrapsync_server::report::release::report_for(&app, period, "cli")
            .await
            .map_err(|e| wrapsync_server::report::describe(&e))?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        if send {
            let http = app.federation.http_client()?;
            let answer = wrapsync_server::report::send::submit(&app, &http, &report).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        Ok::<(), BoxError>(())
    });
    drop(app);
    drop(runtime);
    let _ = writer_thread.join();
    result
}

/// Runs a node until SIGINT/SIGTERM (SIGHUP reloads its keys).
fn serve(config: Config, path: PathBuf) -> Result<(), BoxError> {
    let listener = TcpListener::bind(config.listen)?;
    let url = format!("http://{}", listener.local_addr()?);
    let node_id = config.node_id.clone();
    let (mut app, writer_thread) = App::open(config)?;
    app.config_path = Some(path);
    let runtime = actix_web::rt::System::new();
    runtime.block_on(async {
        println!(
            "{}",
            serde_json::json!({"event": "listening", "url": url, "node_id": node_id})
        );
        app::run(listener, app).await?;
        Ok::<(), BoxError>(())
    })?;
    // The writer drains what is queued once every handle to it is gone,
    // including those of tasks the runtime still holds: end it first.
    drop(runtime);
    let _ = writer_thread.join();
    Ok(())
}

/// Runs the hub until SIGINT/SIGTERM.
fn serve_hub(config: wrapsync_server::hub::HubConfig) -> Result<(), BoxError> {
    let listener = TcpListener::bind(config.listen)?;
    let url = format!("http://{}", listener.local_addr()?);
    let hub_id = config.hub_id.clone();
    let hub = wrapsync_server::hub::Hub::open(config)?;
    let public_key = hub.key.public_key().to_string();
    let runtime = actix_web::rt::System::new();
    runtime.block_on(async {
        println!(
            "{}",
            serde_json::json!({
                "event": "listening",
                "url": url,
                "node_id": hub_id,
                "hub_id": hub_id,
                "public_key": public_key,
            })
        );
        wrapsync_server::hub::serve(listener, actix_web::web::Data::new(hub), app::stop_signal())
            .await?;
        Ok::<(), BoxError>(())
    })
}
