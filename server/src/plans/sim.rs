//! A seeded, deterministic simulation of sync between phones and the node,
//! in one process: the node's side is the real `receive_round` and
//! `check_incoming`; the network drops, duplicates and reorders requests
//! and replies, cuts phones off, and the node and phones restart from what
//! they had stored. After it heals, every copy must hold the same changes
//! and no edit may be lost. Hundreds of seeds run in CI
//! (`WRAPSYNC_SIM_SEEDS`, `WRAPSYNC_SIM_STEPS` for more); a failure names
//! its seed (`WRAPSYNC_SIM_SEED=n` replays one).
//!
//! A misbehaving member's phone takes part too (issue 22): a second phone
//! of phone 0's user that makes up a new `Device-Id` for each round (the
//! node keeps at most [`STATES_PER_USER`] states per user, least recently
//! used first out, so phone 0's own state is evicted now and then), and
//! sends messages past the limits (a Bloom filter far larger than the plan
//! calls for, a change of more operations than a member may send), which
//! the node must refuse with nothing changed. The honest phones must still
//! converge, losing nothing.

use super::decode::{check_state_bounds, decode_for};
use super::protocol::{receive_round, Received};
use super::size::{Bounds, RouteOps};
use crate::error::ApiError;
use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, HashMap};
use wrapsync_shared::incoming::check_incoming;
use wrapsync_shared::ops::{apply_ops, Editor, Op};
use wrapsync_shared::plan::init_plan;
use wrapsync_shared::roles::Role;

struct Phone {
    doc: Automerge,
    /// The sync state of the session in progress (lost on a restart or a
    /// failed request, as an app starts each sync from the stored one).
    state: sync::State,
    stored_state: Vec<u8>,
    editor: Editor,
    cut_off: bool,
}

struct Node {
    doc: Automerge,
    /// What survives a crash: the plan and the sync states last written
    /// (the node writes sync states without waiting, so a crash may lose
    /// the latest).
    stored_doc: Vec<u8>,
    /// By device: phones 0.. are the honest phones, [`ROTATED`] and on
    /// the made-up devices of phone 0's user.
    states: HashMap<usize, sync::State>,
    stored_states: HashMap<usize, Vec<u8>>,
    /// When each device's state was last used (the store's `updated_at`).
    last_used: HashMap<usize, u64>,
    clock: u64,
}

/// What the simulated node allows one user (`sync_states_per_user`).
const STATES_PER_USER: usize = 3;
/// Devices from here on are made up by phone 0's user's scripted phone.
const ROTATED: usize = 100;
/// What the simulated node lets a member send in one message.
const ROUTE: RouteOps = RouteOps {
    ops: 5_000,
    setting: "max_sync_ops_member",
};
const BOUNDS: Bounds = Bounds {
    bytes: 64 << 20,
    ops: 1_000_000,
};

/// Honest phones' states evicted by made-up devices, over all seeds run:
/// the simulation must reach the case it is for.
static HONEST_EVICTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whose a device is: phone 0's user also owns every made-up device.
fn owner(device: usize) -> usize {
    if device >= ROTATED {
        0
    } else {
        device
    }
}

enum Packet {
    /// A request: a phone's message (None: "anything for me?").
    ToNode(usize, Option<Vec<u8>>),
    /// The reply to one.
    ToPhone(usize, Vec<u8>),
}

struct World {
    rng: StdRng,
    node: Node,
    phones: Vec<Phone>,
    in_flight: Vec<Packet>,
    /// Every strength any copy added: all must survive.
    strengths: BTreeSet<String>,
    next_id: u64,
    /// Made-up devices so far.
    rotated: usize,
    /// The attacker's messages past the limits, made once.
    oversized: Option<(Vec<u8>, Vec<u8>)>,
}

fn op(json: serde_json::Value) -> Vec<Op> {
    serde_json::from_value(json).unwrap_or_else(|e| panic!("ops: {e}"))
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut doc = Automerge::new().with_actor(ActorId::from(rng.random::<[u8; 16]>()));
        let mut tx = doc.transaction();
        init_plan(&mut tx, "Simulated family").unwrap_or_else(|e| panic!("{e}"));
        tx.commit();
        let stored_doc = doc.save();
        let roles = [Role::Caregiver, Role::Caregiver, Role::Facilitator];
        let phones = roles
            .iter()
            .map(|role| Phone {
                doc: Automerge::new().with_actor(ActorId::from(rng.random::<[u8; 16]>())),
                state: sync::State::new(),
                stored_state: sync::State::new().encode(),
                editor: Editor {
                    role: *role,
                    member_id: None,
                },
                cut_off: false,
            })
            .collect();
        World {
            rng,
            node: Node {
                doc,
                stored_doc,
                states: HashMap::new(),
                stored_states: HashMap::new(),
                last_used: HashMap::new(),
                clock: 0,
            },
            phones,
            in_flight: Vec::new(),
            strengths: BTreeSet::new(),
            next_id: 0,
            rotated: 0,
            oversized: None,
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        ulid::Ulid::from_parts(1_800_000_000_000 + self.next_id, self.rng.random()).to_string()
    }

    /// A valid edit on one copy (phone `Some(i)` or the node through /ops).
    fn edit(&mut self, who: Option<usize>) {
        if let Some(i) = who {
            // An app edits a plan it has opened, not an empty copy.
            let opened = self.phones[i].doc.get(automerge::ROOT, "strengths");
            if !matches!(opened, Ok(Some(_))) {
                return;
            }
        }
        let id = self.new_id();
        let ops = if self.rng.random_bool(0.5) {
            op(
                serde_json::json!([{"op":"replace","path":"/vision","value":format!("vision {id}")}]),
            )
        } else {
            op(
                serde_json::json!([{"op":"add","path":"/strengths","value":{"statement":format!("strength {id}"),"about":"family"}}]),
            )
        };
        let node_editor = Editor {
            role: Role::Facilitator,
            member_id: None,
        };
        let (doc, editor) = match who {
            Some(i) => {
                let phone = &mut self.phones[i];
                (&mut phone.doc, &phone.editor)
            }
            None => (&mut self.node.doc, &node_editor),
        };
        let mut tx = doc.transaction();
        let mut next = || id.clone();
        let results = apply_ops(&mut tx, &ops, editor, &mut next)
            .unwrap_or_else(|e| panic!("a valid edit: {e:?}"));
        tx.commit();
        if let Some(added) = results.first().and_then(|r| r.id.clone()) {
            self.strengths.insert(added);
        }
        if who.is_none() {
            self.node.stored_doc = self.node.doc.save();
        }
    }

    /// The node answers one request, as `Plans::sync` does: the message is
    /// held to the route's limit and the plan's size before anything else.
    fn serve(
        &mut self,
        device: usize,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let message = bytes
            .map(|b| decode_for(&b, BOUNDS, Some(ROUTE)))
            .transpose()?;
        check_state_bounds(&self.node.doc, message.as_ref(), 0)?;
        let node = &mut self.node;
        let mut state = node.states.get(&device).cloned().unwrap_or_default();
        let before = node.doc.get_heads();
        match receive_round(&mut node.doc, &mut state, message) {
            Ok(Received::Nothing) => {}
            Ok(Received::Changes(scratch)) => {
                let editor = &self.phones[owner(device)].editor;
                if let Err(e) = check_incoming(&scratch, &before, editor) {
                    panic!("a valid phone edit was refused: {e}");
                }
                node.doc = *scratch;
                node.stored_doc = node.doc.save();
            }
            Ok(Received::WaitingForDependencies(reply)) => {
                self.keep_state(device, state, false);
                return Ok(reply);
            }
            Err(e) => panic!("the node could not read a phone's message: {e}"),
        }
        let reply = self
            .node
            .doc
            .generate_sync_message(&mut state)
            .map(sync::Message::encode);
        // Written without waiting: a crash may lose it.
        let stored = self.rng.random_bool(0.7);
        self.keep_state(device, state, stored);
        Ok(reply)
    }

    /// Keeps `device`'s state (and in storage, if `stored`); a new one
    /// past the owner's [`STATES_PER_USER`] evicts the owner's least
    /// recently used, from memory and storage, as the store does.
    fn keep_state(&mut self, device: usize, state: sync::State, stored: bool) {
        let node = &mut self.node;
        node.clock += 1;
        if !node.states.contains_key(&device) {
            loop {
                let mine: Vec<usize> = node
                    .states
                    .keys()
                    .copied()
                    .filter(|d| owner(*d) == owner(device))
                    .collect();
                if mine.len() < STATES_PER_USER {
                    break;
                }
                let oldest = mine
                    .into_iter()
                    .min_by_key(|d| (node.last_used.get(d).copied().unwrap_or_default(), *d));
                if let Some(oldest) = oldest {
                    if oldest < ROTATED {
                        HONEST_EVICTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    node.states.remove(&oldest);
                    node.stored_states.remove(&oldest);
                    node.last_used.remove(&oldest);
                }
            }
        }
        if stored {
            node.stored_states.insert(device, state.encode());
        }
        node.states.insert(device, state);
        node.last_used.insert(device, node.clock);
    }

    /// The scripted phone of phone 0's user: one round under a device id
    /// never seen before, from an empty copy (its answer is thrown away).
    fn rotate_device(&mut self) {
        self.rotated += 1;
        let device = ROTATED + self.rotated;
        let message = Automerge::new()
            .generate_sync_message(&mut sync::State::new())
            .map(sync::Message::encode);
        if let Err(e) = self.serve(device, message) {
            panic!("a made-up device's first round was refused: {e}");
        }
        let mine = self.node.states.keys().filter(|d| owner(**d) == 0).count();
        assert!(mine <= STATES_PER_USER, "{mine} states of one user");
    }

    /// The scripted phone sends a message past the limits: refused with
    /// its problem, and neither the plan nor any sync state changes.
    fn send_oversized(&mut self, bloom: bool) {
        let (big_bloom, many_ops) = self.oversized.get_or_insert_with(|| {
            let hashes: Vec<ChangeHash> = (0..25_000u32)
                .map(|i| {
                    let mut h = [9u8; 32];
                    h[..4].copy_from_slice(&i.to_le_bytes());
                    ChangeHash(h)
                })
                .collect();
            let big_bloom = sync::Message {
                heads: Vec::new(),
                need: Vec::new(),
                have: vec![sync::Have {
                    last_sync: Vec::new(),
                    bloom: sync::BloomFilter::from_hashes(hashes.iter()),
                }],
                changes: sync::ChunkList::empty(),
                flags: None,
                version: sync::MessageVersion::V1,
            }
            .encode();
            let mut doc = Automerge::new();
            let mut tx = doc.transaction();
            let notes = automerge::transaction::Transactable::put_object(
                &mut tx,
                automerge::ROOT,
                "notes",
                automerge::ObjType::Text,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            automerge::transaction::Transactable::splice_text(
                &mut tx,
                &notes,
                0,
                0,
                &"x".repeat(6_000),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            tx.commit();
            let change = doc
                .get_last_local_change()
                .unwrap_or_else(|| panic!("a change"));
            let many_ops = sync::Message {
                heads: doc.get_heads(),
                need: Vec::new(),
                have: Vec::new(),
                changes: sync::ChunkList::from(vec![change.raw_bytes().to_vec()]),
                flags: None,
                version: sync::MessageVersion::V1,
            }
            .encode();
            (big_bloom, many_ops)
        });
        let (message, code) = if bloom {
            (big_bloom.clone(), "sync-state-too-large")
        } else {
            (many_ops.clone(), "message-too-large")
        };
        let heads = self.node.doc.get_heads();
        let devices: BTreeSet<usize> = self.node.states.keys().copied().collect();
        // Under phone 0's own device id, as a replay of its session would.
        match self.serve(0, Some(message)) {
            Err(e) => assert_eq!(e.code(), code, "{e}"),
            Ok(_) => panic!("a message past the limits was taken"),
        }
        assert_eq!(self.node.doc.get_heads(), heads);
        assert_eq!(
            self.node.states.keys().copied().collect::<BTreeSet<_>>(),
            devices
        );
    }

    fn step(&mut self) {
        let phones = self.phones.len();
        match self.rng.random_range(0..104) {
            100..=101 => self.rotate_device(),
            102 => self.send_oversized(true),
            103 => self.send_oversized(false),
            0..=14 => {
                let who = self.rng.random_range(0..=phones);
                self.edit((who < phones).then_some(who));
            }
            15..=44 => {
                let i = self.rng.random_range(0..phones);
                let phone = &mut self.phones[i];
                let message = phone.doc.generate_sync_message(&mut phone.state);
                // An app asks even with nothing to say.
                self.in_flight
                    .push(Packet::ToNode(i, message.map(sync::Message::encode)));
            }
            45..=89 if !self.in_flight.is_empty() => {
                // Any packet in flight, not the oldest: reordering.
                let at = self.rng.random_range(0..self.in_flight.len());
                let duplicate = self.rng.random_bool(0.1);
                let packet = if duplicate {
                    match &self.in_flight[at] {
                        Packet::ToNode(i, m) => Packet::ToNode(*i, m.clone()),
                        Packet::ToPhone(i, m) => Packet::ToPhone(*i, m.clone()),
                    }
                } else {
                    self.in_flight.swap_remove(at)
                };
                let phone = match &packet {
                    Packet::ToNode(i, _) | Packet::ToPhone(i, _) => *i,
                };
                if self.phones[phone].cut_off || self.rng.random_bool(0.1) {
                    // Lost: the app's request fails, and its next sync
                    // starts from the state it stored.
                    let p = &mut self.phones[phone];
                    p.state = decode(&p.stored_state);
                    return;
                }
                match packet {
                    Packet::ToNode(i, message) => {
                        let reply = self
                            .serve(i, message)
                            .unwrap_or_else(|e| panic!("an honest phone was refused: {e}"));
                        if let Some(reply) = reply {
                            self.in_flight.push(Packet::ToPhone(i, reply));
                        }
                    }
                    Packet::ToPhone(i, reply) => {
                        let p = &mut self.phones[i];
                        let message =
                            sync::Message::decode(&reply).unwrap_or_else(|e| panic!("{e}"));
                        p.doc
                            .receive_sync_message(&mut p.state, message)
                            .unwrap_or_else(|e| {
                                panic!("a phone could not apply the node's reply: {e}")
                            });
                        if self.rng.random_bool(0.5) {
                            p.stored_state = p.state.encode();
                        }
                    }
                }
            }
            90..=94 => {
                let i = self.rng.random_range(0..phones);
                self.phones[i].cut_off = !self.phones[i].cut_off;
            }
            95..=97 => {
                // The node restarts from storage.
                let node = &mut self.node;
                node.doc = Automerge::load(&node.stored_doc).unwrap_or_else(|e| panic!("{e}"));
                node.states = node
                    .stored_states
                    .iter()
                    .map(|(phone, bytes)| (*phone, decode(bytes)))
                    .collect();
            }
            _ => {
                // A phone's app restarts: its document is on disk, its
                // session's sync state is not.
                let i = self.rng.random_range(0..phones);
                let p = &mut self.phones[i];
                p.state = decode(&p.stored_state);
            }
        }
    }

    /// The network heals: what is in flight is lost, every phone syncs in
    /// turn until a whole pass exchanges nothing. Answers the passes taken.
    fn heal(&mut self) -> Result<usize, String> {
        self.in_flight.clear();
        for phone in &mut self.phones {
            phone.cut_off = false;
            phone.state = decode(&phone.state.encode());
        }
        for pass in 1..=60 {
            let mut exchanged = false;
            for i in 0..self.phones.len() {
                let p = &mut self.phones[i];
                let message = p
                    .doc
                    .generate_sync_message(&mut p.state)
                    .map(sync::Message::encode);
                exchanged |= message.is_some();
                let reply = self
                    .serve(i, message)
                    .map_err(|e| format!("an honest phone was refused: {e}"))?;
                if let Some(reply) = reply {
                    exchanged = true;
                    let p = &mut self.phones[i];
                    let message = sync::Message::decode(&reply).map_err(|e| e.to_string())?;
                    p.doc
                        .receive_sync_message(&mut p.state, message)
                        .map_err(|e| e.to_string())?;
                }
            }
            if !exchanged {
                return Ok(pass);
            }
        }
        Err("no quiet after 60 passes".into())
    }

    fn check(&self) -> Result<(), String> {
        let heads = sorted(self.node.doc.get_heads());
        for (i, phone) in self.phones.iter().enumerate() {
            if sorted(phone.doc.get_heads()) != heads {
                return Err(format!("phone {i} and the node differ after healing"));
            }
        }
        let stored = Automerge::load(&self.node.stored_doc).map_err(|e| e.to_string())?;
        if sorted(stored.get_heads()) != heads {
            return Err("the node's storage lacks changes it acknowledged".into());
        }
        let strengths = self
            .node
            .doc
            .get(automerge::ROOT, "strengths")
            .ok()
            .flatten()
            .map(|(_, obj)| self.node.doc.keys(&obj).collect::<BTreeSet<String>>())
            .unwrap_or_default();
        if let Some(lost) = self.strengths.difference(&strengths).next() {
            return Err(format!("strength {lost} was lost"));
        }
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> sync::State {
    sync::State::decode(bytes).unwrap_or_default()
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

fn run(seed: u64, steps: usize) -> Result<(), String> {
    let mut world = World::new(seed);
    for _ in 0..steps {
        world.step();
    }
    world.heal()?;
    world.check()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn phones_and_the_node_converge_through_drops_duplicates_reorders_partitions_and_restarts() {
    for_each_seed(run);
    if std::env::var("WRAPSYNC_SIM_SEED").is_err() {
        assert!(
            HONEST_EVICTED.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "no seed evicted an honest phone's state"
        );
    }
}

/// Runs `run(seed, steps)` for every seed asked for (`WRAPSYNC_SIM_SEED`,
/// else `WRAPSYNC_SIM_SEEDS`, 200), and names the seed that fails.
fn for_each_seed(run: fn(u64, usize) -> Result<(), String>) {
    let steps = env_number("WRAPSYNC_SIM_STEPS", 150) as usize;
    let seeds: Vec<u64> = match std::env::var("WRAPSYNC_SIM_SEED") {
        Ok(seed) => vec![seed
            .parse()
            .unwrap_or_else(|e| panic!("WRAPSYNC_SIM_SEED: {e}"))],
        Err(_) => (0..env_number("WRAPSYNC_SIM_SEEDS", 200)).collect(),
    };
    for seed in seeds {
        match std::panic::catch_unwind(|| run(seed, steps)) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => panic!("seed {seed} failed: {why} (replay: WRAPSYNC_SIM_SEED={seed})"),
            Err(_) => panic!("seed {seed} panicked (replay: WRAPSYNC_SIM_SEED={seed})"),
        }
    }
}

/// Three nodes holding one shared plan: the home and two replicas. Each
/// edits and pushes its own changes in sessions of signed requests
/// (`push_step`, `push_done`; the receiver runs `receive_round`); a
/// replica's edits reach the other replica only through the home. The
/// network drops, duplicates and reorders, links are cut and healed
/// (partitions), and nodes restart from storage.
mod nodes {
    use super::{decode, op, sorted};
    use crate::plans::protocol::{push_done, push_step, receive_round, PushInput, Received};
    use automerge::sync::{self, SyncDoc};
    use automerge::{ActorId, Automerge, ReadDoc};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::{BTreeMap, BTreeSet};
    use wrapsync_shared::incoming::check_incoming;
    use wrapsync_shared::ops::{apply_ops, Editor};
    use wrapsync_shared::plan::init_plan;
    use wrapsync_shared::roles::Role;

    /// Node 0 is the home; the others hold replicas and talk only to it.
    const NODES: usize = 3;

    /// One node's side of its link with one peer.
    struct Link {
        /// As receiver of the peer's pushes, and as pusher to it.
        incoming: sync::State,
        stored_incoming: Vec<u8>,
        outgoing: sync::State,
        /// The push session in progress: its round.
        session: Option<usize>,
    }

    impl Link {
        fn new() -> Link {
            Link {
                incoming: sync::State::new(),
                stored_incoming: sync::State::new().encode(),
                outgoing: sync::State::new(),
                session: None,
            }
        }
    }

    struct Node {
        doc: Automerge,
        stored: Vec<u8>,
        links: BTreeMap<usize, Link>,
    }

    enum Packet {
        /// A push from `from` to `to`.
        Push {
            from: usize,
            to: usize,
            bytes: Vec<u8>,
        },
        /// `to`'s reply to a push from `from`, on its way back.
        Reply {
            from: usize,
            to: usize,
            bytes: Vec<u8>,
        },
    }

    impl Packet {
        fn copy(&self) -> Packet {
            match self {
                Packet::Push { from, to, bytes } => Packet::Push {
                    from: *from,
                    to: *to,
                    bytes: bytes.clone(),
                },
                Packet::Reply { from, to, bytes } => Packet::Reply {
                    from: *from,
                    to: *to,
                    bytes: bytes.clone(),
                },
            }
        }

        /// The pusher and the peer it pushed to.
        fn session(&self) -> (usize, usize) {
            match self {
                Packet::Push { from, to, .. } | Packet::Reply { from, to, .. } => (*from, *to),
            }
        }
    }

    struct World {
        rng: StdRng,
        nodes: Vec<Node>,
        in_flight: Vec<Packet>,
        /// Replicas whose link with the home is cut.
        cut: BTreeSet<usize>,
        strengths: BTreeSet<String>,
        next: u64,
    }

    /// The home's people may do what a facilitator may; a replica's team
    /// member is a caregiver, checked at the home.
    fn editor(node: usize) -> Editor {
        let role = if node == 0 {
            Role::Facilitator
        } else {
            Role::Caregiver
        };
        Editor {
            role,
            member_id: None,
        }
    }

    fn peers(node: usize) -> Vec<usize> {
        if node == 0 {
            (1..NODES).collect()
        } else {
            vec![0]
        }
    }

    impl World {
        fn new(seed: u64) -> World {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut home = Automerge::new().with_actor(ActorId::from(rng.random::<[u8; 16]>()));
            let mut tx = home.transaction();
            init_plan(&mut tx, "Shared family").unwrap_or_else(|e| panic!("{e}"));
            tx.commit();
            // The replicas start from the home's plan (its first push).
            let nodes = (0..NODES)
                .map(|n| {
                    let doc = if n == 0 {
                        home.fork()
                    } else {
                        home.fork()
                            .with_actor(ActorId::from(rng.random::<[u8; 16]>()))
                    };
                    Node {
                        stored: doc.save(),
                        doc,
                        links: peers(n).into_iter().map(|p| (p, Link::new())).collect(),
                    }
                })
                .collect();
            World {
                rng,
                nodes,
                in_flight: Vec::new(),
                cut: BTreeSet::new(),
                strengths: BTreeSet::new(),
                next: 0,
            }
        }

        fn link(&mut self, node: usize, peer: usize) -> Result<&mut Link, String> {
            self.nodes[node]
                .links
                .get_mut(&peer)
                .ok_or_else(|| format!("no link {node}-{peer}"))
        }

        fn edit(&mut self, n: usize) {
            self.next += 1;
            let id = ulid::Ulid::from_parts(1_800_000_000_000 + self.next, self.rng.random())
                .to_string();
            let ops = if self.rng.random_bool(0.5) {
                op(
                    serde_json::json!([{"op":"replace","path":"/vision","value":format!("vision {id}")}]),
                )
            } else {
                op(
                    serde_json::json!([{"op":"add","path":"/strengths","value":{"statement":format!("s {id}"),"about":"family"}}]),
                )
            };
            let node = &mut self.nodes[n];
            let mut tx = node.doc.transaction();
            let mut next_id = || id.clone();
            let results = apply_ops(&mut tx, &ops, &editor(n), &mut next_id)
                .unwrap_or_else(|e| panic!("a valid edit: {e:?}"));
            tx.commit();
            node.stored = node.doc.save();
            if let Some(added) = results.first().and_then(|r| r.id.clone()) {
                self.strengths.insert(added);
            }
        }

        /// Node `from` takes a push step towards `to`; sends its message
        /// unless the session is over.
        fn step_session(
            &mut self,
            from: usize,
            to: usize,
            reply: Option<Vec<u8>>,
        ) -> Result<(), String> {
            let session = self.link(from, to)?.session;
            let (round, input) = match (reply, session) {
                (None, _) => (0, PushInput::Start),
                // A stale reply: the session ended.
                (Some(_), None) => return Ok(()),
                // The peer had nothing to say.
                (Some(reply), Some(round)) if reply.is_empty() => (round + 1, PushInput::Quiet),
                (Some(reply), Some(round)) => (
                    round + 1,
                    PushInput::Reply(sync::Message::decode(&reply).map_err(|e| e.to_string())?),
                ),
            };
            let node = &mut self.nodes[from];
            let link = node
                .links
                .get_mut(&to)
                .ok_or_else(|| format!("no link {from}-{to}"))?;
            let next =
                push_step(&mut node.doc, &mut link.outgoing, input).map_err(|e| e.to_string())?;
            if push_done(round, next.as_ref()) || round > 40 {
                link.session = None;
                return Ok(());
            }
            link.session = Some(round);
            let bytes = next.map(sync::Message::encode).unwrap_or_default();
            self.in_flight.push(Packet::Push { from, to, bytes });
            Ok(())
        }

        /// `to` answers a push from `from`, as `Plans::sync_peer` (at the
        /// home) and `sync_from_home` (at a replica) do.
        fn answer(&mut self, from: usize, to: usize, bytes: &[u8]) -> Result<Vec<u8>, String> {
            let message = if bytes.is_empty() {
                None
            } else {
                Some(sync::Message::decode(bytes).map_err(|e| e.to_string())?)
            };
            let keep_state = self.rng.random_bool(0.7);
            let receiver = &mut self.nodes[to];
            let link = receiver
                .links
                .get_mut(&from)
                .ok_or_else(|| format!("no link {to}-{from}"))?;
            let before = receiver.doc.get_heads();
            let mut state = link.incoming.clone();
            match receive_round(&mut receiver.doc, &mut state, message)
                .map_err(|e| e.to_string())?
            {
                Received::Nothing => {}
                Received::WaitingForDependencies(reply) => {
                    link.incoming = state;
                    return Ok(reply.unwrap_or_default());
                }
                Received::Changes(scratch) => {
                    let checker = if to == 0 {
                        editor(from)
                    } else {
                        Editor {
                            role: Role::Supervisor,
                            member_id: None,
                        }
                    };
                    check_incoming(&scratch, &before, &checker)
                        .map_err(|e| format!("a valid change was refused: {e}"))?;
                    receiver.doc = *scratch;
                    receiver.stored = receiver.doc.save();
                }
            }
            let reply = receiver
                .doc
                .generate_sync_message(&mut state)
                .map(sync::Message::encode);
            if keep_state {
                link.stored_incoming = state.encode();
            }
            link.incoming = state;
            Ok(reply.unwrap_or_default())
        }

        fn step(&mut self) -> Result<(), String> {
            match self.rng.random_range(0..100) {
                0..=19 => {
                    let n = self.rng.random_range(0..NODES);
                    self.edit(n);
                }
                20..=34 => {
                    let n = self.rng.random_range(0..NODES);
                    let options = peers(n);
                    let to = options[self.rng.random_range(0..options.len())];
                    if self.link(n, to)?.session.is_none() {
                        self.step_session(n, to, None)?;
                    }
                }
                35..=90 if !self.in_flight.is_empty() => {
                    let at = self.rng.random_range(0..self.in_flight.len());
                    let packet = if self.rng.random_bool(0.1) {
                        self.in_flight[at].copy()
                    } else {
                        self.in_flight.swap_remove(at)
                    };
                    let (pusher, peer) = packet.session();
                    let replica = pusher.max(peer);
                    if self.cut.contains(&replica) || self.rng.random_bool(0.1) {
                        // Lost: the pusher's request fails and its session ends.
                        self.link(pusher, peer)?.session = None;
                        return Ok(());
                    }
                    match packet {
                        Packet::Push { from, to, bytes } => {
                            let reply = self.answer(from, to, &bytes)?;
                            self.in_flight.push(Packet::Reply {
                                from,
                                to,
                                bytes: reply,
                            });
                        }
                        Packet::Reply { from, to, bytes } => {
                            self.step_session(from, to, Some(bytes))?
                        }
                    }
                }
                91..=94 => {
                    // A replica is cut off from the home, or comes back.
                    let replica = self.rng.random_range(1..NODES);
                    if !self.cut.remove(&replica) {
                        self.cut.insert(replica);
                    }
                }
                95..=98 => {
                    let n = self.rng.random_range(0..NODES);
                    let node = &mut self.nodes[n];
                    node.doc = Automerge::load(&node.stored).map_err(|e| e.to_string())?;
                    for link in node.links.values_mut() {
                        link.incoming = decode(&link.stored_incoming);
                        link.outgoing = sync::State::new();
                        link.session = None;
                    }
                }
                99 => self.rogue_handover()?,
                _ => {}
            }
            Ok(())
        }

        /// A rogue peer (issue 22): a replica hands the plan over as if it
        /// were its home, to the home or to the other replica, or hands
        /// over a plan nobody shared, with or without a consent it signed
        /// itself. Each receiver judges by the node's own rule
        /// (`federation::transfer::judge_handover`): only a new plan on a
        /// signed consent may be taken (the sender's budget bounds those);
        /// the shared plan is never taken from the rogue, so the honest
        /// nodes' documents are untouched (`heal` and `check` still hold).
        fn rogue_handover(&mut self) -> Result<(), String> {
            use crate::federation::transfer::{judge_handover, HandoverVerdict};
            let rogue = self.rng.random_range(1..NODES);
            let target = (rogue + self.rng.random_range(1..NODES)) % NODES;
            let (from, home) = (format!("node-{rogue}"), "node-0");
            let consent = self.rng.random_bool(0.5);
            // Every node holds the shared plan: the home as its own, the
            // replicas homed at node 0; none took a move from the rogue.
            let held = if target == 0 {
                Some(None)
            } else {
                Some(Some(home))
            };
            let verdict = judge_handover(held, &from, false, consent);
            if verdict != HandoverVerdict::Conflict {
                return Err(format!(
                    "node {target} would take node {rogue}'s handover of node 0's plan: {verdict:?}"
                ));
            }
            let made_up = judge_handover(None, &from, false, consent);
            let expected = if consent {
                HandoverVerdict::TakeNew
            } else {
                HandoverVerdict::NoConsent
            };
            if made_up != expected {
                return Err(format!(
                    "a plan never held, consent {consent}: {made_up:?}, not {expected:?}"
                ));
            }
            Ok(())
        }

        /// Reliable network, no partitions: full sessions every way until
        /// every node holds the same changes.
        fn heal(&mut self) -> Result<(), String> {
            self.in_flight.clear();
            self.cut.clear();
            for node in &mut self.nodes {
                for link in node.links.values_mut() {
                    link.session = None;
                }
            }
            for _ in 0..30 {
                for from in 0..NODES {
                    for to in peers(from) {
                        self.step_session(from, to, None)?;
                        while let Some(Packet::Push { from, to, bytes }) = self.in_flight.pop() {
                            let reply = self.answer(from, to, &bytes)?;
                            self.step_session(from, to, Some(reply))?;
                        }
                    }
                }
                let heads = sorted(self.nodes[0].doc.get_heads());
                if self
                    .nodes
                    .iter()
                    .all(|n| sorted(n.doc.get_heads()) == heads)
                {
                    return Ok(());
                }
            }
            Err("the nodes did not converge after 30 healed cycles".into())
        }

        fn check(&self) -> Result<(), String> {
            for node in &self.nodes {
                let stored = Automerge::load(&node.stored).map_err(|e| e.to_string())?;
                if sorted(stored.get_heads()) != sorted(node.doc.get_heads()) {
                    return Err("a node's storage lacks changes it took".into());
                }
            }
            for (n, node) in self.nodes.iter().enumerate() {
                let doc = &node.doc;
                let strengths: BTreeSet<String> = doc
                    .get(automerge::ROOT, "strengths")
                    .ok()
                    .flatten()
                    .map(|(_, obj)| doc.keys(&obj).collect())
                    .unwrap_or_default();
                if let Some(lost) = self.strengths.difference(&strengths).next() {
                    return Err(format!("strength {lost} is missing at node {n}"));
                }
            }
            Ok(())
        }
    }

    fn run(seed: u64, steps: usize) -> Result<(), String> {
        let mut world = World::new(seed);
        for _ in 0..steps {
            world.step()?;
        }
        world.heal()?;
        world.check()
    }

    #[test]
    fn a_home_and_two_replicas_converge_through_drops_duplicates_reorders_partitions_and_restarts()
    {
        super::for_each_seed(run);
    }
}

/// A rogue replica (issue 22): beside honest content edits, it marks the
/// home's facilitator "left", adds a member of its own, writes the
/// consent record, and makes changes under the home's actor. The home
/// checks each replica's changes as `Plans::sync_peer` does (role,
/// [`check_home_authority`], an actor bound to another node's person
/// refused) and refuses a round that carries any of them whole; replicas
/// refuse a change the home delivers under their own people's actors, as
/// `bind_home_authors` does. Honest nodes must converge with every honest
/// edit, and nothing the rogue forged may reach them; the rogue still
/// receives everything (only its own direction stalls, after its first
/// forgery, since its later changes depend on it).
///
/// [`check_home_authority`]: wrapsync_shared::incoming::check_home_authority
mod rogue {
    use super::{op, sorted};
    use crate::plans::protocol::{push_done, push_step, receive_round, PushInput, Received};
    use automerge::sync::{self, SyncDoc};
    use automerge::transaction::{Transactable, Transaction};
    use automerge::{ActorId, Automerge, ChangeHash, ObjId, ObjType, ReadDoc, ROOT};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::{BTreeMap, BTreeSet};
    use wrapsync_shared::incoming::{check_home_authority, check_incoming};
    use wrapsync_shared::ops::{apply_ops, Editor};
    use wrapsync_shared::plan::{init_plan, render};
    use wrapsync_shared::roles::Role;

    /// Node 0 is the home, 1 an honest replica, 2 the rogue.
    const ROGUE: usize = 2;

    struct World {
        rng: StdRng,
        docs: Vec<Automerge>,
        /// Whose person each actor is (the `actors` table, by node).
        owners: BTreeMap<ActorId, usize>,
        /// Strengths added by honest nodes: must reach every node.
        honest: BTreeSet<String>,
        /// Changes the rogue forged: must reach no honest node.
        forged: BTreeSet<ChangeHash>,
        /// The home's facilitator's member id.
        fran: String,
        next: u64,
    }

    fn facilitator() -> Editor {
        Editor {
            role: Role::Facilitator,
            member_id: None,
        }
    }

    fn field(tx: &Transaction<'_>, name: &str) -> Option<ObjId> {
        tx.get(ROOT, name).ok().flatten().map(|(_, obj)| obj)
    }

    /// Puts a new map item `id` with `fields` in `parent`.
    fn put_map(
        tx: &mut Transaction<'_>,
        parent: &ObjId,
        id: &str,
        fields: &[(&str, &str)],
    ) -> bool {
        let Ok(item) = tx.put_object(parent, id, ObjType::Map) else {
            return false;
        };
        fields
            .iter()
            .all(|(key, value)| tx.put(&item, *key, *value).is_ok())
    }

    impl World {
        fn new(seed: u64) -> World {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut home = Automerge::new().with_actor(ActorId::from(rng.random::<[u8; 16]>()));
            let mut tx = home.transaction();
            init_plan(&mut tx, "Shared family").unwrap_or_else(|e| panic!("{e}"));
            let fran = ulid::Ulid::from_parts(1_700_000_000_000, 1).to_string();
            let ops = op(serde_json::json!([{"op":"add","path":"/team","value":
                {"id": fran, "name":"Fran","role":"facilitator","user":"fran"}}]));
            apply_ops(&mut tx, &ops, &facilitator(), &mut || fran.clone())
                .unwrap_or_else(|e| panic!("{e:?}"));
            tx.commit();
            let mut owners = BTreeMap::new();
            owners.insert(home.get_actor().clone(), 0);
            let docs: Vec<Automerge> = (0..3)
                .map(|n| {
                    if n == 0 {
                        home.fork().with_actor(home.get_actor().clone())
                    } else {
                        let actor = ActorId::from(rng.random::<[u8; 16]>());
                        owners.insert(actor.clone(), n);
                        home.fork().with_actor(actor)
                    }
                })
                .collect();
            World {
                rng,
                docs,
                owners,
                honest: BTreeSet::new(),
                forged: BTreeSet::new(),
                fran,
                next: 0,
            }
        }

        fn new_id(&mut self) -> String {
            self.next += 1;
            ulid::Ulid::from_parts(1_800_000_000_000 + self.next, self.rng.random()).to_string()
        }

        fn add_strength(&mut self, n: usize) {
            let id = self.new_id();
            let ops = op(serde_json::json!([{"op":"add","path":"/strengths",
                "value":{"statement":format!("s {id}"),"about":"family"}}]));
            let mut tx = self.docs[n].transaction();
            apply_ops(&mut tx, &ops, &facilitator(), &mut || id.clone())
                .unwrap_or_else(|e| panic!("{e:?}"));
            tx.commit();
            if n != ROGUE {
                self.honest.insert(id);
            }
        }

        /// One of the rogue's forgeries, on its own copy.
        fn forge(&mut self) {
            let id = self.new_id();
            let kind = self.rng.random_range(0..4);
            let home = self.docs[0].get_actor().clone();
            let fran = self.fran.clone();
            let doc = &mut self.docs[ROGUE];
            let before = doc.get_heads();
            let own = doc.get_actor().clone();
            if kind == 3 {
                // Under the home's actor.
                doc.set_actor(home);
            }
            let mut tx = doc.transaction();
            let team = field(&tx, "team");
            let consents = field(&tx, "consents");
            let member = team
                .as_ref()
                .and_then(|team| tx.get(team, fran.as_str()).ok().flatten())
                .map(|(_, member)| member);
            let done = match (kind, team, consents, member) {
                (0, _, _, Some(member)) => tx.put(&member, "status", "left").is_ok(),
                (1, Some(team), _, _) => put_map(
                    &mut tx,
                    &team,
                    &id,
                    &[
                        ("name", "Mallory"),
                        ("role", "facilitator"),
                        ("user", "mallory@rogue"),
                    ],
                ),
                (2, _, Some(consents), _) => put_map(
                    &mut tx,
                    &consents,
                    &id,
                    &[("grantee", "rogue"), ("scope", "full_plan")],
                ),
                (3, ..) => tx.put(ROOT, "vision", format!("forged {id}")).is_ok(),
                _ => false,
            };
            assert!(done, "the rogue's edit applies to its copy");
            tx.commit();
            doc.set_actor(own);
            let forged: Vec<ChangeHash> =
                doc.get_changes(&before).iter().map(|c| c.hash()).collect();
            self.forged.extend(forged);
        }

        /// Whether `to` keeps changes `from` pushed: the checks of
        /// `Plans::sync_peer` at the home, of `bind_home_authors` at a
        /// replica; actors first seen are bound to the sender's people.
        fn accept(
            &mut self,
            from: usize,
            to: usize,
            scratch: &Automerge,
            before: &[ChangeHash],
        ) -> bool {
            let actors: BTreeSet<ActorId> = scratch
                .get_changes(before)
                .iter()
                .map(|c| c.actor_id().clone())
                .collect();
            let ok = if to == 0 {
                actors
                    .iter()
                    .all(|a| self.owners.get(a).is_none_or(|owner| *owner == from))
                    && check_incoming(scratch, before, &facilitator()).is_ok()
                    && check_home_authority(scratch, before).is_ok()
            } else {
                actors.iter().all(|a| self.owners.get(a) != Some(&to))
            };
            if ok {
                for actor in actors {
                    self.owners
                        .entry(actor)
                        .or_insert(if to == 0 { from } else { 0 });
                }
            }
            ok
        }

        /// A whole push session from `from` to `to` on a reliable link.
        fn session(&mut self, from: usize, to: usize) -> Result<(), String> {
            let mut outgoing = sync::State::new();
            let mut incoming = sync::State::new();
            let mut input = PushInput::Start;
            for round in 0..60 {
                let next = push_step(&mut self.docs[from], &mut outgoing, input)
                    .map_err(|e| e.to_string())?;
                if push_done(round, next.as_ref()) {
                    return Ok(());
                }
                let before = self.docs[to].get_heads();
                let mut receiver = self.docs[to].clone();
                let received = match receive_round(&mut receiver, &mut incoming, next) {
                    Ok(received) => received,
                    // Bytes the receiver cannot apply (400: the rogue reusing
                    // the home's actor and sequence numbers; or the rogue's
                    // own copy, holding those, taking the home's): refused.
                    Err(_) if from == ROGUE || to == ROGUE => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                };
                let reply = match received {
                    Received::Nothing => receiver.generate_sync_message(&mut incoming),
                    Received::WaitingForDependencies(reply) => reply
                        .map(|bytes| sync::Message::decode(&bytes))
                        .transpose()
                        .map_err(|e| e.to_string())?,
                    Received::Changes(scratch) => {
                        if !self.accept(from, to, &scratch, &before) {
                            if from != ROGUE {
                                return Err(format!(
                                    "node {to} refused node {from}'s honest changes"
                                ));
                            }
                            // Refused whole (422): the session ends.
                            return Ok(());
                        }
                        let scratch = *scratch;
                        let reply = scratch.generate_sync_message(&mut incoming);
                        receiver = scratch;
                        reply
                    }
                };
                self.docs[to] = receiver;
                input = match reply {
                    Some(message) => PushInput::Reply(message),
                    None => PushInput::Quiet,
                };
            }
            Err(format!("a session {from} → {to} did not end"))
        }

        fn step(&mut self) -> Result<(), String> {
            match self.rng.random_range(0..10) {
                0..=2 => {
                    let n = self.rng.random_range(0..3);
                    self.add_strength(n);
                }
                3 => self.forge(),
                _ => {
                    let replica = self.rng.random_range(1..3);
                    if self.rng.random_bool(0.5) {
                        self.session(0, replica)?;
                    } else {
                        self.session(replica, 0)?;
                    }
                }
            }
            Ok(())
        }

        fn check(&self) -> Result<(), String> {
            if sorted(self.docs[0].get_heads()) != sorted(self.docs[1].get_heads()) {
                return Err("the home and the honest replica differ".into());
            }
            for (n, doc) in self.docs.iter().enumerate().take(ROGUE) {
                let plan = render(doc);
                let strengths: BTreeSet<String> = plan["strengths"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .filter_map(|s| s["id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(lost) = self.honest.difference(&strengths).next() {
                    return Err(format!("honest strength {lost} is missing at node {n}"));
                }
                if let Some(hash) = self
                    .forged
                    .iter()
                    .find(|h| doc.get_change_by_hash(h).is_some())
                {
                    return Err(format!("forged change {hash} reached node {n}"));
                }
                let team = plan["team"].to_string();
                if team.contains("mallory") || team.contains("\"left\"") {
                    return Err(format!("the rogue changed the roster at node {n}: {team}"));
                }
                if plan["consents"].as_array().is_some_and(|c| !c.is_empty()) {
                    return Err(format!("the rogue wrote a consent at node {n}"));
                }
            }
            Ok(())
        }
    }

    fn run(seed: u64, steps: usize) -> Result<(), String> {
        let mut world = World::new(seed);
        for _ in 0..steps {
            world.step()?;
        }
        // Healed: sessions every way until nothing moves.
        for _ in 0..3 {
            for replica in 1..3 {
                world.session(replica, 0)?;
                world.session(0, replica)?;
            }
        }
        world.check()
    }

    #[test]
    fn honest_nodes_converge_and_refuse_a_rogue_replicas_roster_consent_and_actor_forgeries() {
        super::for_each_seed(run);
    }
}
