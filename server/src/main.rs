//! The `wrapsync` binary: one program for every server role.

use clap::{Parser, Subcommand};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wrapsync_server::app::{self, App};
use wrapsync_server::config::Config;
use wrapsync_server::db::{self, Backend};
use wrapsync_server::demo::{self, DemoManifest, DemoNode};
use wrapsync_server::federation::{Peer, Peers};
use wrapsync_server::users::add_user;
use wrapsync_shared::roles::Role;

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
    /// Create or upgrade the node's database, then exit.
    Migrate {
        #[arg(long)]
        config: PathBuf,
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
    /// Manage the node's users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Run a seeded demo node on SQLite under DIR and describe it in DIR/demo.json.
    Demo {
        #[arg(long, default_value = "wrapsync-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
    },
}

#[derive(Subcommand)]
enum PeerCommand {
    /// Add a peer, or replace one's URL or key.
    Add {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        url: String,
        /// Its public key, from its `GET /federation/v1/identity`.
        #[arg(long)]
        public_key: String,
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WRAPSYNC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
        Command::Node { config } => {
            let config = load_config(&config)?;
            serve(config, None)
        }
        Command::Migrate { config } => {
            let config = load_config(&config)?;
            std::fs::create_dir_all(&config.data_dir)?;
            let mut conn = Backend::from_url(&config.database_url()).connect()?;
            db::migrate(&mut conn)?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Keygen { config } => {
            let config = load_config(&config)?;
            std::fs::create_dir_all(&config.data_dir)?;
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
            std::fs::create_dir_all(&config.data_dir)?;
            let mut conn = Backend::from_url(&config.database_url()).connect()?;
            db::migrate(&mut conn)?;
            let display_name = display_name.unwrap_or_else(|| username.clone());
            let user = add_user(&mut conn, &username, &display_name, role, &password)?;
            eprintln!("added {} ({})", user.username, user.role);
            Ok(())
        }
        Command::Peer { command } => {
            let path = match &command {
                PeerCommand::Add { config, .. }
                | PeerCommand::List { config }
                | PeerCommand::Remove { config, .. } => config.clone(),
            };
            let config = load_config(&path)?;
            std::fs::create_dir_all(&config.data_dir)?;
            let mut conn = Backend::from_url(&config.database_url()).connect()?;
            db::migrate(&mut conn)?;
            let configured = |id: &str| config.peers.iter().any(|p| p.id == id);
            match command {
                PeerCommand::Add {
                    id,
                    url,
                    public_key,
                    ..
                } => {
                    if configured(&id) || id == config.node_id {
                        return Err(format!("{id} is this node or in its config file").into());
                    }
                    let peer = Peer {
                        id,
                        url,
                        public_key,
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
        Command::Demo { dir, base_port } => {
            std::fs::create_dir_all(&dir)?;
            let dir = dir.canonicalize()?;
            let existing = demo::existing_manifest(&dir);
            if existing.is_none() {
                // A half-made earlier demo is started afresh.
                let _ = std::fs::remove_dir_all(dir.join(demo::NODE_ID));
            }
            let config = demo::node_config(&dir, base_port)?;
            serve(config, Some((dir, existing)))
        }
    }
}

/// Runs a node; for the demo, seeds it first (unless an earlier run did) and
/// writes `demo.json`.
fn serve(config: Config, demo: Option<(PathBuf, Option<DemoManifest>)>) -> Result<(), BoxError> {
    let listener = TcpListener::bind(config.listen)?;
    let url = format!("http://{}", listener.local_addr()?);
    let node_id = config.node_id.clone();
    let data_dir = config.data_dir.clone();
    let (app, writer_thread) = App::open(config)?;
    let runtime = actix_web::rt::System::new();
    runtime.block_on(async {
        if let Some((dir, existing)) = demo {
            let users = match existing {
                Some(manifest) => manifest.nodes.into_iter().flat_map(|n| n.users).collect(),
                None => demo::seed(&app).await.map_err(|e| format!("seeding the demo failed: {e}"))?,
            };
            let manifest = DemoManifest {
                hub: None,
                nodes: vec![DemoNode {
                    id: node_id.clone(),
                    url: url.clone(),
                    data_dir: data_dir.clone(),
                    users,
                }],
            };
            app::write_private(&dir.join("demo.json"), &serde_json::to_vec_pretty(&manifest)?)?;
            eprintln!(
                "\nwrapsync demo is running.\n  node {node_id}: {url}\n  users and passwords: {}\n  try: curl -s {url}/healthz\n  stop with Ctrl-C\n",
                dir.join("demo.json").display()
            );
        }
        println!("{}", serde_json::json!({"event": "listening", "url": url, "node_id": node_id}));
        app::run(listener, app).await?;
        Ok::<(), BoxError>(())
    })?;
    // The writer drains what is queued once every handle to it is gone,
    // including those of tasks the runtime still holds: end it first.
    drop(runtime);
    let _ = writer_thread.join();
    Ok(())
}
