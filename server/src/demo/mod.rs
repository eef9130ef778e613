//! `wrapsync demo`: three county nodes on SQLite in one process, each a
//! peer of the other two, each seeded with its own synthetic families
//! (every name, date and phone number here is invented) and users of every
//! role, with some plans shared between them by the families' consent;
//! described in `DIR/demo.json` for people and test tools.

mod caseload;
use crate::app::App;
use crate::config::Config;
use crate::db::blocking;
use crate::error::ApiError;
use crate::federation::{identity, NodeKey, Peer};
use crate::hub::{Hub, HubConfig};
use crate::limits::RateLimit;
use crate::plans::{Actor, RequestMeta};
use crate::serve;
use crate::users::add_user;
use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use wrapsync_shared::ops::Op;
use wrapsync_shared::roles::Role;

type BoxError = Box<dyn std::error::Error>;

/// `demo.json`: the fixed shape outside clients rely on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoManifest {
    pub hub: Option<DemoHub>,
    pub nodes: Vec<DemoNode>,
    /// The plans shared between the nodes, and who may use each where.
    #[serde(default)]
    pub shared: Vec<DemoShare>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoHub {
    pub id: String,
    /// Its dashboard is at this URL's `/`.
    pub url: String,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoNode {
    pub id: String,
    pub url: String,
    pub data_dir: PathBuf,
    pub users: Vec<DemoUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoUser {
    pub username: String,
    pub password: String,
    pub role: Role,
}

/// A plan shared with other nodes (it is homed at the node that lists it
/// in its users' plans).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoShare {
    pub plan: String,
    pub holders: Vec<DemoHolder>,
}

/// A user of node `node` (`username` as they log in there) on the shared
/// plan's team, who reads and edits the plan's replica at that node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoHolder {
    pub node: String,
    pub username: String,
}

/// The demo's nodes, listening on `--base-port`, +1 and +2.
pub const NODE_IDS: [&str; 3] = ["county-a", "county-b", "county-c"];
/// The demo's state hub, on `--base-port` + 3, in `DIR/hub`.
pub const HUB_ID: &str = "state-hub";
/// Months of reports each node sends the hub when the demo is made, so the
/// dashboard has a history to draw.
const BACKFILL_MONTHS: u8 = 24;

/// How long the demo waits for every shared plan to reach its holders.
const ARRIVAL_SECS: u64 = 30;

/// The invented people of one county, so its families are told apart.
struct County {
    surnames: [&'static str; 6],
    youth: [&'static str; 6],
    caregivers: [&'static str; 6],
    advocate: &'static str,
    doctor: &'static str,
    coach: &'static str,
    /// Last digit of the county's invented phone numbers.
    digit: usize,
}

const COUNTIES: [County; 3] = [
    County {
        surnames: [
            "Alder",
            "Birchwood",
            "Cedarly",
            "Dogwood",
            "Elmsworth",
            "Firhaven",
        ],
        youth: ["Avery", "Blake", "Casey", "Devon", "Emery", "Finley"],
        caregivers: ["Morgan", "Jordan", "Riley", "Quinn", "Parker", "Rowan"],
        advocate: "Pat Advocate",
        doctor: "Dr. Sam",
        coach: "Coach Lee",
        digit: 0,
    },
    County {
        surnames: [
            "Garnet",
            "Hawthorne",
            "Ironvale",
            "Juniper",
            "Kestrel",
            "Larkspur",
        ],
        youth: ["Gray", "Harper", "Indigo", "Jules", "Kai", "Logan"],
        caregivers: ["Sasha", "Taylor", "Reese", "Skyler", "Dakota", "Emerson"],
        advocate: "Robin Advocate",
        doctor: "Dr. Lou",
        coach: "Coach Max",
        digit: 1,
    },
    County {
        surnames: [
            "Maplecroft",
            "Nettlefield",
            "Oakhurst",
            "Pinecrest",
            "Quillon",
            "Redfern",
        ],
        youth: ["Marlow", "Noel", "Oakley", "Peyton", "Remy", "Sage"],
        caregivers: ["Hayden", "Jamie", "Kendall", "Lennon", "Micah", "Ellis"],
        advocate: "Terry Advocate",
        doctor: "Dr. Ari",
        coach: "Coach Val",
        digit: 2,
    },
];

/// A family that consented to share its plan: family `family` (1-based)
/// of node `home`, with nodes `holders` (indexes into [`NODE_IDS`]); the
/// consent is recorded by its caregiver or else by its facilitator.
struct Sharing {
    home: usize,
    family: usize,
    holders: &'static [usize],
    by_caregiver: bool,
}

const SHARINGS: &[Sharing] = &[
    Sharing {
        home: 0,
        family: 1,
        holders: &[1],
        by_caregiver: false,
    },
    Sharing {
        home: 0,
        family: 2,
        holders: &[1],
        by_caregiver: true,
    },
    Sharing {
        home: 0,
        family: 3,
        holders: &[1, 2],
        by_caregiver: false,
    },
    Sharing {
        home: 1,
        family: 4,
        holders: &[0],
        by_caregiver: true,
    },
    Sharing {
        home: 2,
        family: 5,
        holders: &[0],
        by_caregiver: false,
    },
];

/// Runs the demo under `dir` until SIGINT/SIGTERM: seeds it first unless an
/// earlier run did (then its data, keys and passwords are reused), waits
/// until every shared plan has reached its holders, then writes
/// `demo.json`.
pub fn run(dir: &Path, base_port: u16) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let existing = existing_manifest(&dir);
    if existing.is_none() {
        // A half-made earlier demo (or one of another shape) starts afresh.
        std::fs::remove_file(dir.join("demo.json")).or_else(not_found_ok)?;
        for id in NODE_IDS.iter().chain([&HUB_ID]) {
            std::fs::remove_dir_all(dir.join(id)).or_else(not_found_ok)?;
        }
    }
    let mut listeners = Vec::new();
    for i in 0..=NODE_IDS.len() {
        let port = u16::try_from(i)
            .ok()
            .and_then(|i| base_port.checked_add(i))
            .ok_or("--base-port is too high for three nodes and a hub")?;
        let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            format!("cannot listen on 127.0.0.1:{port}: {e} (try another --base-port)")
        })?;
        listeners.push(listener);
    }
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let (hub_listener, hub_url) = match (listeners.pop(), urls.pop()) {
        (Some(listener), Some(url)) => (listener, url),
        _ => return Err("no listener for the hub".into()),
    };
    // Every node's key first: each node's config names the other two's.
    let mut keys = Vec::new();
    for id in NODE_IDS {
        let data_dir = dir.join(id);
        crate::files::private_dir(&data_dir)?;
        let key = NodeKey::load_or_create(&data_dir.join(identity::KEY_FILE))?;
        keys.push(key.public_key().to_string());
    }
    let mut apps = Vec::new();
    let mut writers = Vec::new();
    for (i, id) in NODE_IDS.iter().enumerate() {
        let peers = NODE_IDS
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, peer)| Peer {
                id: peer.to_string(),
                url: urls[j].clone(),
                public_key: keys[j].clone(),
            })
            .collect();
        let config = node_config(&dir, id, addrs[i], peers, &hub_url)?;
        let (app, writer) = App::open(config)?;
        apps.push(web::Data::new(app));
        writers.push(writer);
    }
    let hub = web::Data::new(Hub::open(hub_config(&dir, addrs[NODE_IDS.len()], &keys)?)?);
    let hub = DemoHub {
        id: HUB_ID.to_string(),
        url: hub_url,
        data_dir: dir.join(HUB_ID),
    }
    .serving(hub, hub_listener);
    let runtime = actix_web::rt::System::new();
    let result = runtime.block_on(run_nodes(&dir, listeners, apps, urls, hub, existing));
    // The writers drain what is queued once every handle to them is gone,
    // including those of tasks the runtime still holds: end it first.
    drop(runtime);
    for writer in writers {
        let _ = writer.join();
    }
    result
}

fn not_found_ok(e: std::io::Error) -> std::io::Result<()> {
    match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    }
}

/// Writes the config of demo node `id` under `dir` (`DIR/<id>.toml`, data
/// in `DIR/<id>`) and loads it. Settings from `WRAPSYNC_*` apply to every
/// node, except those that must differ between them.
fn node_config(
    dir: &Path,
    id: &str,
    listen: SocketAddr,
    peers: Vec<Peer>,
    hub_url: &str,
) -> Result<Config, BoxError> {
    #[derive(Serialize)]
    struct DemoConfig {
        node_id: String,
        listen: String,
        data_dir: String,
        peers: Vec<Peer>,
        hub_url: String,
        hub_id: String,
        rate_limit_per_user: RateLimit,
    }
    let data_dir = dir.join(id);
    let text = toml::to_string(&DemoConfig {
        node_id: id.to_string(),
        listen: listen.to_string(),
        data_dir: data_dir.to_string_lossy().into_owned(),
        peers,
        hub_url: hub_url.to_string(),
        hub_id: HUB_ID.to_string(),
        // The load tool and the benchmarks drive the demo as one user at
        // thousands of requests a second, far past a person's default.
        rate_limit_per_user: RateLimit {
            per_second: 25_000.0,
            burst: 50_000.0,
        },
    })?;
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, text)?;
    const PER_NODE: &[&str] = &[
        "WRAPSYNC_NODE_ID",
        "WRAPSYNC_LISTEN",
        "WRAPSYNC_DATA_DIR",
        "WRAPSYNC_DATABASE_URL",
        "WRAPSYNC_JWT_SECRET",
    ];
    // The hub's settings are for the hub; the rest reach every node, which
    // refuses what is no setting at all.
    let env = std::env::vars().filter(|(name, _)| {
        !PER_NODE.contains(&name.as_str())
            && (crate::config::ENV.takes::<Config>(name)
                || !crate::hub::config::ENV.takes::<HubConfig>(name))
    });
    Ok(Config::load(Some(&path), env)?)
}

/// The hub's config: the three nodes enrolled with their keys.
fn hub_config(dir: &Path, listen: SocketAddr, keys: &[String]) -> Result<HubConfig, BoxError> {
    let nodes: Vec<toml::Value> = NODE_IDS
        .iter()
        .zip(keys)
        .map(|(id, key)| {
            let mut node = toml::Table::new();
            node.insert("id".into(), id.to_string().into());
            node.insert("public_key".into(), key.clone().into());
            toml::Value::Table(node)
        })
        .collect();
    let mut table = toml::Table::new();
    table.insert("hub_id".into(), HUB_ID.into());
    table.insert("listen".into(), listen.to_string().into());
    let data_dir = dir.join(HUB_ID).to_string_lossy().into_owned();
    table.insert("data_dir".into(), data_dir.into());
    table.insert("nodes".into(), toml::Value::Array(nodes));
    let path = dir.join(format!("{HUB_ID}.toml"));
    std::fs::write(&path, toml::to_string(&table)?)?;
    const PER_HUB: &[&str] = &[
        "WRAPSYNC_HUB_ID",
        "WRAPSYNC_LISTEN",
        "WRAPSYNC_DATA_DIR",
        "WRAPSYNC_DATABASE_URL",
        "WRAPSYNC_KEY_FILE",
    ];
    // Only the hub's settings: the nodes take (or refuse) the rest.
    let env = std::env::vars().filter(|(name, _)| {
        !PER_HUB.contains(&name.as_str()) && crate::hub::config::ENV.takes::<HubConfig>(name)
    });
    Ok(HubConfig::load(Some(&path), env)?)
}

/// The demo's hub, with what serving it takes.
struct ServedHub {
    about: DemoHub,
    hub: web::Data<Hub>,
    listener: TcpListener,
}

impl DemoHub {
    fn serving(self, hub: web::Data<Hub>, listener: TcpListener) -> ServedHub {
        ServedHub {
            about: self,
            hub,
            listener,
        }
    }
}

/// Each node's reports of the last [`BACKFILL_MONTHS`] months, sent to the
/// hub now (the nodes' own schedule sends this month's and last month's).
async fn backfill_reports(apps: &[web::Data<App>]) -> Result<(), String> {
    let this = crate::report::period_at(crate::db::now_ms()).ok_or("the clock is off")?;
    let mut periods = vec![this];
    while periods.len() < usize::from(BACKFILL_MONTHS) {
        let earlier = periods.last().map_or(this, |p| p.previous());
        periods.push(earlier);
    }
    for app in apps {
        let http = app.federation.http_client().map_err(|e| e.to_string())?;
        let reports = crate::report::generate(app, &periods, "demo")
            .await
            .map_err(|e| format!("{}: reports: {e}", app.config.node_id))?;
        for report in &reports {
            crate::report::send::submit(app, &http, report)
                .await
                .map_err(|e| format!("{}: sending {}: {e}", app.config.node_id, report.period))?;
        }
    }
    Ok(())
}

/// Reads an earlier run's manifest, if it describes this demo's nodes and
/// their data is still there.
pub fn existing_manifest(dir: &Path) -> Option<DemoManifest> {
    let text = std::fs::read_to_string(dir.join("demo.json")).ok()?;
    let manifest: DemoManifest = serde_json::from_str(&text).ok()?;
    let complete = manifest.nodes.len() == NODE_IDS.len()
        && manifest
            .nodes
            .iter()
            .zip(NODE_IDS)
            .all(|(n, id)| n.id == id && dir.join(id).join("node.db").exists())
        && !manifest.shared.is_empty()
        && manifest.hub.as_ref().is_some_and(|hub| hub.id == HUB_ID)
        && dir.join(HUB_ID).join("hub.db").exists();
    complete.then_some(manifest)
}

/// Seeds the nodes (or takes an earlier run's manifest), serves them, and
/// once every shared plan has arrived where it is shared, writes
/// `demo.json` and says so; until a signal, or until any node stops.
async fn run_nodes(
    dir: &Path,
    listeners: Vec<TcpListener>,
    apps: Vec<web::Data<App>>,
    urls: Vec<String>,
    hub: ServedHub,
    existing: Option<DemoManifest>,
) -> Result<(), BoxError> {
    let fresh = existing.is_none();
    let mut manifest = match existing {
        Some(manifest) => manifest,
        None => seed_all(&apps)
            .await
            .map_err(|e| format!("seeding the demo failed: {e}"))?,
    };
    for (node, url) in manifest.nodes.iter_mut().zip(&urls) {
        node.url = url.clone();
        node.data_dir = dir.join(&node.id);
    }
    let ServedHub {
        about,
        hub,
        listener: hub_listener,
    } = hub;
    manifest.hub = Some(about);
    let (stop, _) = watch::channel(false);
    let stop = Arc::new(stop);
    let stopped = |stop: &watch::Sender<bool>| {
        let mut rx = stop.subscribe();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };
    // Ctrl-C (or SIGTERM) stops every node.
    let on_signal = stop.clone();
    actix_web::rt::spawn(async move {
        serve::stop_signal().await;
        on_signal.send_replace(true);
    });
    let servers = listeners
        .into_iter()
        .zip(apps.iter().cloned())
        .map(|(listener, app)| {
            let (until, stop) = (stopped(&stop), stop.clone());
            async move {
                let served = serve::serve(listener, app, until).await;
                // One node ending ends the demo.
                stop.send_replace(true);
                served
            }
        });
    let servers = futures_util::future::join_all(servers);
    let hub_server = {
        let (until, stop) = (stopped(&stop), stop.clone());
        async move {
            let served = crate::hub::serve(hub_listener, hub, until).await;
            stop.send_replace(true);
            served
        }
    };
    let ready = async {
        // The last handles to the apps outside their servers: dropped here.
        let apps = apps;
        let made = async {
            wait_for_shared(&apps, &manifest.shared).await?;
            if fresh {
                backfill_reports(&apps).await?;
            }
            Ok::<(), String>(())
        };
        let announced = tokio::select! {
            made = made => match made {
                Ok(()) => announce(dir, &manifest),
                Err(e) => Err(e.into()),
            },
            _ = stopped(&stop) => Ok(()),
        };
        if announced.is_err() {
            stop.send_replace(true);
        }
        announced
    };
    let (served, hub_served, ready) = tokio::join!(servers, hub_server, ready);
    ready?;
    for served in served {
        served?;
    }
    hub_served?;
    Ok(())
}

/// Writes `demo.json` and tells the person (stderr) and tools (stdout,
/// JSON lines) where the nodes are.
fn announce(dir: &Path, manifest: &DemoManifest) -> Result<(), BoxError> {
    let path = dir.join("demo.json");
    crate::files::write_private(&path, &serde_json::to_vec_pretty(manifest)?)?;
    let nodes: String = manifest
        .nodes
        .iter()
        .map(|n| format!("  node {}: {}\n", n.id, n.url))
        .collect();
    let first = manifest.nodes.first().map_or("", |n| n.url.as_str());
    let hub = manifest.hub.as_ref().map_or(String::new(), |hub| {
        format!("  state hub {}: {} (its dashboard)\n", hub.id, hub.url)
    });
    eprintln!(
        "\nwrapsync demo is running.\n{nodes}{hub}  users, passwords and shared plans: {}\n  try: curl -s {first}/healthz\n  stop with Ctrl-C\n",
        path.display()
    );
    for node in &manifest.nodes {
        println!(
            "{}",
            json!({"event": "listening", "url": node.url, "node_id": node.id})
        );
    }
    if let Some(hub) = &manifest.hub {
        println!(
            "{}",
            json!({"event": "listening", "url": hub.url, "hub_id": hub.id, "dashboard": format!("{}/", hub.url)})
        );
    }
    println!(
        "{}",
        json!({"event": "demo_ready", "manifest": path.to_string_lossy()})
    );
    Ok(())
}

/// Waits until each holder of each shared plan finds it on their team at
/// their own node (the home pushes it there promptly), for at most
/// [`ARRIVAL_SECS`].
async fn wait_for_shared(apps: &[web::Data<App>], shared: &[DemoShare]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(ARRIVAL_SECS);
    loop {
        let mut missing = Vec::new();
        for share in shared {
            for holder in &share.holders {
                let app = NODE_IDS
                    .iter()
                    .position(|id| *id == holder.node)
                    .and_then(|i| apps.get(i))
                    .ok_or_else(|| format!("demo.json names an unknown node {}", holder.node))?;
                let arrived = match app.plans.get(&share.plan).await {
                    Ok(Some(entry)) => entry.view().member(&holder.username).is_some(),
                    Ok(None) => false,
                    Err(e) => return Err(format!("reading plan {}: {e}", share.plan)),
                };
                if !arrived {
                    missing.push(format!("plan {} at {}", share.plan, holder.node));
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            missing.dedup();
            return Err(format!(
                "the shared plans did not reach the nodes they are shared with within \
                 {ARRIVAL_SECS} s (see the log above): {}",
                missing.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What seeding one node made.
struct Seeded {
    users: Vec<DemoUser>,
    actors: Vec<Actor>,
    families: Vec<SeededFamily>,
}

struct SeededFamily {
    plan: String,
}

impl Seeded {
    fn actor(&self, username: &str) -> Result<Actor, ApiError> {
        self.actors
            .iter()
            .find(|a| a.username == username)
            .cloned()
            .ok_or_else(|| ApiError::Internal(format!("demo user {username} missing")))
    }
}

/// The facilitator who starts family `n`'s plan.
fn facilitator_of(n: usize) -> &'static str {
    if n <= 3 {
        "facilitator1"
    } else {
        "facilitator2"
    }
}

/// Seeds every node, then shares the [`SHARINGS`] plans: the holders'
/// people join the family's team (as `name@node`) and the family's consent
/// is recorded at the home, as the shares API records it.
async fn seed_all(apps: &[web::Data<App>]) -> Result<DemoManifest, ApiError> {
    let mut seeded = Vec::new();
    for (app, county) in apps.iter().zip(&COUNTIES) {
        seeded.push(seed(app, county).await?);
    }
    let meta = RequestMeta::default();
    let mut shared = Vec::new();
    for sharing in SHARINGS {
        let n = sharing.family;
        let (app, home) = apps
            .get(sharing.home)
            .zip(seeded.get(sharing.home))
            .ok_or_else(|| ApiError::Internal("demo sharing of an unknown node".into()))?;
        let family = home
            .families
            .get(n - 1)
            .ok_or_else(|| ApiError::Internal("demo sharing of an unknown family".into()))?;
        let entry = app
            .plans
            .get(&family.plan)
            .await?
            .ok_or_else(|| ApiError::Internal("demo plan vanished".into()))?;
        let facilitator = home.actor(facilitator_of(n))?;
        let mut ops = Vec::new();
        let mut holders = Vec::new();
        for &h in sharing.holders {
            let node = NODE_IDS[h];
            let people = [
                (
                    format!("facilitator{}", 1 + n % 2),
                    "facilitator",
                    "Facilitator",
                ),
                (
                    format!("provider{}", 1 + (n + 1) % 2),
                    "provider",
                    "Therapist",
                ),
            ];
            for (username, role, title) in people {
                ops.push(op(
                    "add",
                    "/team",
                    json!({"name": format!("{title} at {node}"), "role": role, "support": "formal", "user": format!("{username}@{node}")}),
                ));
                holders.push(DemoHolder {
                    node: node.to_string(),
                    username,
                });
            }
        }
        app.plans
            .apply(&entry, &facilitator, None, ops, meta.clone())
            .await?;
        let granting = if sharing.by_caregiver {
            home.actor(&format!("caregiver{n}"))?
        } else {
            facilitator
        };
        let peers = app.federation.peers();
        // Each share also writes the plan's consent record of it.
        for &h in sharing.holders {
            app.plans
                .share(&entry, &granting, &peers, NODE_IDS[h], None, &meta)
                .await?;
        }
        shared.push(DemoShare {
            plan: family.plan.clone(),
            holders,
        });
    }
    let nodes = NODE_IDS
        .iter()
        .zip(seeded)
        .map(|(id, seeded)| DemoNode {
            id: id.to_string(),
            // Filled in by the caller, which knows where the node runs.
            url: String::new(),
            data_dir: PathBuf::new(),
            users: seeded.users,
        })
        .collect();
    Ok(DemoManifest {
        hub: None,
        nodes,
        shared,
    })
}

fn password() -> String {
    let bytes: [u8; 9] = rand::random();
    format!("demo-{}", hex::encode(bytes))
}

/// Creates the demo users and families of `county` on a fresh node.
async fn seed(app: &App, county: &County) -> Result<Seeded, ApiError> {
    let mut people: Vec<(String, Role)> = vec![
        ("supervisor".into(), Role::Supervisor),
        ("facilitator1".into(), Role::Facilitator),
        ("facilitator2".into(), Role::Facilitator),
        ("advocate1".into(), Role::FamilyAdvocate),
        ("provider1".into(), Role::Provider),
        ("provider2".into(), Role::Provider),
    ];
    for i in 1..=county.surnames.len() {
        people.push((format!("caregiver{i}"), Role::Caregiver));
        people.push((format!("youth{i}"), Role::Youth));
        people.push((format!("natural{i}"), Role::NaturalSupport));
    }
    let mut users = Vec::new();
    let mut actors = Vec::new();
    for (username, role) in people {
        let password = password();
        let (name, pw) = (username.clone(), password.clone());
        let user = blocking(&app.pool, move |conn| {
            add_user(conn, &name, &name, role, &pw)
                .map_err(|e| crate::db::StoreError::Connection(e.to_string()))
        })
        .await?;
        actors.push(Actor {
            user_id: user.id,
            username: username.clone(),
            role,
        });
        users.push(DemoUser {
            username,
            password,
            role,
        });
    }
    let mut seeded = Seeded {
        users,
        actors,
        families: Vec::new(),
    };
    for n in 1..=county.surnames.len() {
        let facilitator = seeded.actor(facilitator_of(n))?;
        let family = seed_family(app, &facilitator, county, n).await?;
        seeded.families.push(family);
    }
    caseload::seed(
        app,
        &seeded.actor("facilitator1")?,
        &seeded.actor("supervisor")?,
        county.digit as u64,
    )
    .await?;
    Ok(seeded)
}

fn op(op: &str, path: &str, value: Value) -> Op {
    Op {
        op: op.into(),
        path: path.into(),
        value: Some(value),
        from: None,
    }
}

/// Family `n` (1-based) of `county`, started by `facilitator`.
async fn seed_family(
    app: &App,
    facilitator: &Actor,
    county: &County,
    n: usize,
) -> Result<SeededFamily, ApiError> {
    let surname = county.surnames[n - 1];
    let youth = county.youth[n - 1];
    let caregiver = county.caregivers[n - 1];
    let c = county.digit;
    let month = n; // enrolled a month apart
    let meta = RequestMeta::default();
    let view = app
        .plans
        .create(
            facilitator,
            facilitator.username.clone(),
            &format!("{surname} family plan"),
            Some(format!("2026-{month:02}-0{n}")),
            meta.clone(),
        )
        .await?;
    let entry = app
        .plans
        .get(&view.id)
        .await?
        .ok_or_else(|| ApiError::Internal("demo plan vanished".into()))?;
    let plan_id = view.id.clone();
    let provider = if n % 2 == 1 { "provider1" } else { "provider2" };
    let team = vec![
        op("replace", "/youth/name", json!(format!("{youth} {surname}"))),
        op("replace", "/youth/birth_date", json!(format!("{}-0{}-1{}", 2008 + n, n, n))),
        op("replace", "/enrollment/phase", json!(["planning", "implementation", "implementation", "transition", "implementation", "planning"][n - 1])),
        op("replace", "/vision", json!(format!("{youth} lives at home, goes to school every day, and our family has fun together again."))),
        op("replace", "/mission", json!(format!("Help the {surname} family keep {youth} safe, at home and in school."))),
        op("add", "/team", json!({"name": format!("{caregiver} {surname}"), "role": "caregiver", "support": "natural", "user": format!("caregiver{n}"), "phone": format!("719-555-01{n}{c}")})),
        op("add", "/team", json!({"name": format!("{youth} {surname}"), "role": "youth", "support": "natural", "user": format!("youth{n}")})),
        op("add", "/team", json!({"name": county.advocate, "role": "family_advocate", "support": "formal", "user": "advocate1"})),
        op("add", "/team", json!({"name": format!("{} {provider}", county.doctor), "role": "provider", "support": "formal", "user": provider})),
        op("add", "/team", json!({"name": format!("{} {n}", county.coach), "role": "natural_support", "support": "natural", "user": format!("natural{n}")})),
        op("add", "/team", json!({"name": format!("Grandma {surname}"), "role": "natural_support", "support": "informal", "phone": format!("719-555-02{n}{c}")})),
    ];
    let (view, results) = app
        .plans
        .apply(&entry, facilitator, None, team, meta.clone())
        .await?;
    let member = |i: usize| results[i].id.clone().unwrap_or_default();
    let (caregiver_id, youth_id, provider_id) = (member(5), member(6), member(8));
    let content = vec![
        op(
            "add",
            "/strengths",
            json!({"statement": format!("{youth} loves drawing and music"), "about": "youth"}),
        ),
        op(
            "add",
            "/strengths",
            json!({"statement": "The family sticks together in hard times", "about": "family"}),
        ),
        op(
            "add",
            "/strengths",
            json!({"statement": "A church youth group welcomes them", "about": "community"}),
        ),
        op(
            "add",
            "/needs",
            json!({"domain": "school", "statement": format!("{youth} needs to get to school every day"), "priority": 1}),
        ),
        op(
            "add",
            "/needs",
            json!({"domain": "home", "statement": "Evenings at home need to be calmer", "priority": 2}),
        ),
        op(
            "add",
            "/needs",
            json!({"domain": "social", "statement": format!("{youth} needs friends outside school"), "priority": 3}),
        ),
        op(
            "replace",
            "/crisis_plan/prevention",
            json!("Keep a regular bedtime; take a walk together when voices rise."),
        ),
        op(
            "add",
            "/crisis_plan/triggers",
            json!({"description": "Arguments about phone use at night"}),
        ),
        op(
            "add",
            "/crisis_plan/response_steps",
            json!({"description": "Give space for ten minutes, then check in calmly"}),
        ),
        op(
            "add",
            "/crisis_plan/response_steps",
            json!({"description": "Call the mobile crisis line if anyone is unsafe"}),
        ),
        op(
            "add",
            "/crisis_plan/contacts",
            json!({"name": "County mobile crisis team", "relationship": "crisis line", "phone": format!("719-555-010{c}")}),
        ),
        op(
            "replace",
            "/crisis_plan/reviewed_on",
            json!(format!("2026-{:02}-15", month + 1)),
        ),
        op(
            "add",
            "/cans",
            json!({"assessed_on": format!("2026-{month:02}-0{n}"), "ratings": {"ls.school_attendance": 3, "bh.anxiety": 2, "ls.family_functioning": 2, "cg.supervision": 1}}),
        ),
        op(
            "add",
            "/cans",
            json!({"assessed_on": format!("2026-{:02}-0{n}", month + 3), "ratings": {"ls.school_attendance": 1, "bh.anxiety": 2, "ls.family_functioning": 1, "cg.supervision": 0}}),
        ),
        op(
            "add",
            "/status",
            json!({"as_of": format!("2026-{month:02}-0{n}"), "living": "home", "school_days_missed_30d": 9, "arrests_30d": n.is_multiple_of(3) as i64, "psych_admissions_180d": (n % 2) as i64, "er_visits_180d": 1}),
        ),
        op(
            "add",
            "/status",
            json!({"as_of": format!("2026-{:02}-0{n}", month + 3), "living": if n == 4 { "kin" } else { "home" }, "school_days_missed_30d": 2, "arrests_30d": 0, "psych_admissions_180d": 0, "er_visits_180d": 0}),
        ),
        op(
            "replace",
            "/enrollment/plan_adopted_on",
            json!(format!("2026-{month:02}-2{n}")),
        ),
        op(
            "add",
            "/meetings",
            json!({"held_on": format!("2026-{month:02}-2{n}"), "place": "Family home", "attendees": [caregiver_id, youth_id], "decisions": "Adopted the first plan", "next_on": format!("2026-{:02}-2{n}", month + 1), "status": "held"}),
        ),
        op(
            "add",
            "/consents",
            json!({"grantee": "state-care-management", "scope": "summary", "granted_by": caregiver_id, "granted_on": format!("2026-{month:02}-0{n}")}),
        ),
    ];
    let (view2, results) = app
        .plans
        .apply(
            &entry,
            facilitator,
            Some(view.version.clone()),
            content,
            meta.clone(),
        )
        .await?;
    let need = |i: usize| results[i].id.clone().unwrap_or_default();
    let outcomes = vec![
        op(
            "add",
            "/outcomes",
            json!({"needs": [need(3)], "statement": format!("{youth} attends school at least 4 days a week"), "indicator": "days attended per week", "baseline": 2, "target": 4, "due_on": format!("2026-{:02}-28", month + 4), "progress": [{"on": format!("2026-{:02}-07", month + 1), "value": 3}, {"on": format!("2026-{:02}-07", month + 2), "value": 4}]}),
        ),
        op(
            "add",
            "/outcomes",
            json!({"needs": [need(4)], "statement": "No more than one shouting match a week", "indicator": "arguments per week", "baseline": 5, "target": 1, "due_on": format!("2026-{:02}-28", month + 4)}),
        ),
    ];
    let (_, results) = app
        .plans
        .apply(
            &entry,
            facilitator,
            Some(view2.version.clone()),
            outcomes,
            meta.clone(),
        )
        .await?;
    let outcome = results[0].id.clone().unwrap_or_default();
    let strategies = vec![
        op(
            "add",
            "/strategies",
            json!({"outcomes": [outcome.clone()], "description": "Morning routine with a visual checklist", "kind": "natural", "owner": caregiver_id, "status": "active",
            "steps": [{"description": "Print the checklist and put it on the fridge", "responsible": caregiver_id, "due_on": format!("2026-{:02}-10", month + 1)},
                      {"description": "Tick off the checklist every school morning", "responsible": youth_id, "due_on": format!("2026-{:02}-20", month + 1)}]}),
        ),
        op(
            "add",
            "/strategies",
            json!({"outcomes": [outcome], "description": "Monthly bus pass", "kind": "flex", "owner": provider_id, "status": "active",
            "flex": {"category": "transportation", "amount_cents": 4500 + 500 * n as i64, "status": "requested"},
            "steps": [{"description": "Send the bus pass request", "responsible": provider_id, "due_on": format!("2026-{:02}-05", month + 1)}]}),
        ),
    ];
    app.plans
        .apply(&entry, facilitator, None, strategies, meta)
        .await?;
    Ok(SeededFamily { plan: plan_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(ids: &[&str], shared: bool) -> DemoManifest {
        DemoManifest {
            hub: Some(DemoHub {
                id: HUB_ID.into(),
                url: "http://127.0.0.1:4".into(),
                data_dir: PathBuf::from(HUB_ID),
            }),
            nodes: ids
                .iter()
                .map(|id| DemoNode {
                    id: id.to_string(),
                    url: "http://127.0.0.1:1".into(),
                    data_dir: PathBuf::from(id),
                    users: vec![],
                })
                .collect(),
            shared: if shared {
                vec![DemoShare {
                    plan: "01JB0000000000000000000000".into(),
                    holders: vec![DemoHolder {
                        node: "county-b".into(),
                        username: "provider1".into(),
                    }],
                }]
            } else {
                vec![]
            },
        }
    }

    fn write(dir: &Path, manifest: &DemoManifest) {
        let text = serde_json::to_vec(manifest).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("demo.json"), text).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn only_a_whole_three_node_demo_is_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = dir.path();
        assert!(existing_manifest(dir).is_none(), "no demo.json");
        for id in NODE_IDS {
            std::fs::create_dir_all(dir.join(id)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.join(id).join("node.db"), b"").unwrap_or_else(|e| panic!("{e}"));
        }
        write(dir, &manifest(&NODE_IDS, true));
        assert!(existing_manifest(dir).is_none(), "no hub database");
        std::fs::create_dir_all(dir.join(HUB_ID)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(HUB_ID).join("hub.db"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(existing_manifest(dir).is_some());
        let mut hubless = manifest(&NODE_IDS, true);
        hubless.hub = None;
        write(dir, &hubless);
        assert!(
            existing_manifest(dir).is_none(),
            "the three-node demo of before"
        );
        write(dir, &manifest(&NODE_IDS, true));
        assert!(existing_manifest(dir).is_some());
        // The one-node demo of before, a manifest without shared plans, and
        // a node whose database is gone all start afresh.
        write(dir, &manifest(&["county-a"], false));
        assert!(existing_manifest(dir).is_none());
        write(dir, &manifest(&NODE_IDS, false));
        assert!(existing_manifest(dir).is_none());
        write(dir, &manifest(&NODE_IDS, true));
        std::fs::remove_file(dir.join("county-c").join("node.db"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(existing_manifest(dir).is_none());
    }

    #[test]
    fn demo_json_has_the_contracted_shape() {
        let value =
            serde_json::to_value(manifest(&["county-a"], true)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            value,
            json!({
                "hub": {"id": "state-hub", "url": "http://127.0.0.1:4", "data_dir": "state-hub"},
                "nodes": [{"id": "county-a", "url": "http://127.0.0.1:1", "data_dir": "county-a", "users": []}],
                "shared": [{"plan": "01JB0000000000000000000000", "holders": [{"node": "county-b", "username": "provider1"}]}],
            })
        );
    }
}
