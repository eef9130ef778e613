#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Three real node processes on loopback, every directed link between them
//! through a fault-injecting [`Proxy`] this test controls: a partition that
//! heals converges, and duplicated, reordered and lost messages change
//! nothing. Plans homed at A are shared with B and C, one homed at B with A
//! and C, and team members on all three nodes edit them at once.
//!
//! The proxies' decisions are seeded: a failure prints the seed, and
//! `WRAPSYNC_PROXY_SEED=n` replays each link's decisions in the order its
//! requests arrive.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, FAMILY_ADVOCATE, PROVIDER, SUPERVISOR};
use wrapsync_tests::{deadline, proxy_seed, wait_until, Backend, Faults, Proxy, Stats, TestNode};

const IDS: [&str; 3] = ["county-a", "county-b", "county-c"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// Three nodes, each peered with the other two through a proxy per
/// directed link.
struct Mesh {
    nodes: Vec<TestNode>,
    /// `(from, to)` → the proxy `from` calls to reach `to`.
    links: BTreeMap<(usize, usize), Proxy>,
    seed: u64,
    /// Each node's supervisor, logged in once.
    sams: Vec<String>,
}

impl Mesh {
    fn new(backends: [Backend; 3]) -> Mesh {
        let seed = proxy_seed();
        let nodes: Vec<TestNode> = IDS
            .iter()
            .zip(backends)
            .map(|(id, backend)| {
                let mut extra = toml::Table::new();
                extra.insert("node_id".into(), (*id).into());
                // Anti-entropy every second, so passes run during the test.
                extra.insert("federation_interval_secs".into(), 1.into());
                TestNode::spawn_with(backend, extra)
            })
            .collect();
        let mut links = BTreeMap::new();
        for from in 0..3 {
            for to in 0..3 {
                if from == to {
                    continue;
                }
                let name = format!("{}→{}", IDS[from], IDS[to]);
                let link_seed = seed ^ ((from * 3 + to) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let proxy = Proxy::start(&name, nodes[to].url(), link_seed).expect("a proxy");
                nodes[from].trust(&nodes[to], proxy.url());
                links.insert((from, to), proxy);
            }
        }
        let sams = nodes.iter().map(|n| n.login(SUPERVISOR)).collect();
        Mesh {
            nodes,
            links,
            seed,
            sams,
        }
    }

    /// Sets `faults` on every link that touches `node` (both directions).
    fn isolate(&self, node: usize, faults: Faults) {
        for ((from, to), proxy) in &self.links {
            if *from == node || *to == node {
                proxy.set_faults(faults);
            }
        }
    }

    fn all_links(&self, faults: Faults) {
        for proxy in self.links.values() {
            proxy.set_faults(faults);
        }
    }

    fn stats(&self) -> String {
        self.links
            .values()
            .map(|p| format!("  {}: {}", p.name(), p.stats()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn total(&self) -> Stats {
        self.links
            .values()
            .fold(Stats::default(), |sum, p| sum.plus(&p.stats()))
    }

    /// What a failure message needs: the seed, the links and the logs.
    fn report(&self) -> String {
        format!(
            "proxy seed {} (WRAPSYNC_PROXY_SEED={} replays it)\n{}\n{}",
            self.seed,
            self.seed,
            self.stats(),
            self.nodes
                .iter()
                .zip(IDS)
                .map(|(n, id)| format!("--- {id} log ---\n{}", n.log()))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// The plan as each node's supervisor reads it (a supervisor sees every
    /// plan of the node, replicas included): sorted heads and JSON, or
    /// `None` where it has not arrived.
    fn copies(&self, plan: &str) -> Vec<Option<(Vec<String>, Value)>> {
        self.nodes
            .iter()
            .zip(&self.sams)
            .map(|(node, sam)| {
                let reply = node.get(&format!("/v1/plans/{plan}"), sam);
                (reply.status == 200).then(|| {
                    let mut heads: Vec<String> =
                        serde_json::from_value(reply.json["version"].clone()).unwrap();
                    heads.sort();
                    (heads, reply.json["plan"].clone())
                })
            })
            .collect()
    }

    /// Whether the nodes in `which` hold `plan` at the same heads.
    fn agree(&self, plan: &str, which: &[usize]) -> bool {
        let copies = self.copies(plan);
        let first = &copies[which[0]];
        first.is_some() && which.iter().all(|n| copies[*n] == *first)
    }

    /// Waits until the nodes in `which` agree on every plan in `plans`.
    #[track_caller]
    fn wait_agree(&self, plans: &[String], which: &[usize], secs: u64, what: &str) {
        let agreed = wait_until(deadline(secs), || {
            plans.iter().all(|plan| self.agree(plan, which))
        });
        if !agreed {
            let detail: Vec<String> = plans
                .iter()
                .map(|plan| {
                    let heads: Vec<String> = self
                        .copies(plan)
                        .into_iter()
                        .map(|c| c.map_or("absent".into(), |(h, _)| h.join(",")))
                        .collect();
                    format!("plan {plan}: heads {heads:?}")
                })
                .collect();
            panic!(
                "{what}: no agreement within {secs}s\n{}\n{}",
                detail.join("\n"),
                self.report()
            );
        }
    }
}

/// The plans of the test: two homed at A (shared with B and C), one homed
/// at B (shared with A and C), each with team members on all three nodes.
struct Plans {
    at_a: Vec<String>,
    at_b: String,
}

impl Plans {
    fn all(&self) -> Vec<String> {
        let mut all = self.at_a.clone();
        all.push(self.at_b.clone());
        all
    }
}

fn share(node: &TestNode, token: &str, plan: &str, with: &[usize]) {
    for peer in with {
        node.post(
            &format!("/v1/plans/{plan}/shares"),
            token,
            &json!({"node": IDS[*peer]}),
        )
        .assert_status(201);
    }
}

fn set_up_plans(mesh: &Mesh) -> Plans {
    let a = &mesh.nodes[A];
    let fran = a.login(FACILITATOR);
    let at_a: Vec<String> = (0..2)
        .map(|i| {
            let plan = a.create_plan(&fran, &format!("Family {i} of county A")).id;
            a.apply_ops(&fran, &plan, json!([
                {"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","user":CAREGIVER}},
                {"op":"add","path":"/team","value":{"name":"Ada (county B)","role":"family_advocate","user":format!("{FAMILY_ADVOCATE}@county-b")}},
                {"op":"add","path":"/team","value":{"name":"Pia (county C)","role":"provider","user":format!("{PROVIDER}@county-c")}},
                {"op":"replace","path":"/vision","value":"A home near school"}
            ]));
            share(a, &fran, &plan, &[B, C]);
            plan
        })
        .collect();
    let b = &mesh.nodes[B];
    let fran_b = b.login(FACILITATOR);
    let at_b = b.create_plan(&fran_b, "Family of county B").id;
    b.apply_ops(&fran_b, &at_b, json!([
        {"op":"add","path":"/team","value":{"name":"Ada","role":"family_advocate","user":FAMILY_ADVOCATE}},
        {"op":"add","path":"/team","value":{"name":"Carla (county A)","role":"caregiver","user":format!("{CAREGIVER}@county-a")}},
        {"op":"add","path":"/team","value":{"name":"Pia (county C)","role":"provider","user":format!("{PROVIDER}@county-c")}}
    ]));
    share(b, &fran_b, &at_b, &[A, C]);
    let plans = Plans { at_a, at_b };
    mesh.wait_agree(&plans.all(), &[A, B, C], 60, "after sharing");
    plans
}

/// Who edits what where: (node, username, plan, may set the vision).
fn editors(plans: &Plans) -> Vec<(usize, &'static str, String, bool)> {
    let mut editors = Vec::new();
    for plan in &plans.at_a {
        editors.push((A, FACILITATOR, plan.clone(), true));
        editors.push((A, CAREGIVER, plan.clone(), true));
        editors.push((B, FAMILY_ADVOCATE, plan.clone(), true));
        editors.push((C, PROVIDER, plan.clone(), false));
    }
    editors.push((B, FACILITATOR, plans.at_b.clone(), true));
    editors.push((B, FAMILY_ADVOCATE, plans.at_b.clone(), true));
    editors.push((A, CAREGIVER, plans.at_b.clone(), true));
    editors.push((C, PROVIDER, plans.at_b.clone(), false));
    editors
}

/// An acknowledged edit: a strength added to `plan` with this statement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Added {
    plan: String,
    statement: String,
}

/// Every editor makes `rounds` edits at once (all editors in parallel, each
/// editor's own in order), pausing `pause` between them: a strength added
/// (half with an id of the editor's choosing, half with the node's) and,
/// where the role allows, the vision set. Answers the acknowledged adds.
fn edit_concurrently(
    mesh: &Mesh,
    plans: &Plans,
    label: &str,
    rounds: usize,
    pause: Duration,
) -> Vec<Added> {
    let editors = editors(plans);
    let added = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (node, user, plan, vision) in &editors {
            let node_ref = &mesh.nodes[*node];
            let added = &added;
            scope.spawn(move || {
                let token = node_ref.login(user);
                for round in 0..rounds {
                    let statement = format!("{label}: {user}@{} round {round}", IDS[*node]);
                    let mut strength = json!({"statement": statement, "about": "family"});
                    if round % 2 == 0 {
                        strength["id"] = json!(ulid::Ulid::new().to_string());
                    }
                    let mut ops = vec![json!({"op":"add","path":"/strengths","value":strength})];
                    if *vision && round % 2 == 1 {
                        ops.push(json!({"op":"replace","path":"/vision","value":statement}));
                    }
                    let reply = node_ref.post_ops(&token, plan, None, json!(ops));
                    assert_eq!(
                        reply.status,
                        200,
                        "{user} on {} could not edit {plan}: {}",
                        IDS[*node],
                        reply.text()
                    );
                    added.lock().unwrap().push(Added {
                        plan: plan.clone(),
                        statement,
                    });
                    std::thread::sleep(pause);
                }
            });
        }
    });
    added.into_inner().unwrap()
}

/// Every acknowledged strength is in the plan exactly once, on every node
/// (which by now agree), with nothing else added; answers the number seen.
#[track_caller]
fn assert_each_once(mesh: &Mesh, plans: &Plans, added: &[Added]) {
    for plan in plans.all() {
        let copies = mesh.copies(&plan);
        let (_, doc) = copies[A].clone().expect("the plan at A");
        let strengths = doc["strengths"].as_array().cloned().unwrap_or_default();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for s in &strengths {
            *seen
                .entry(s["statement"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
        let expected: Vec<&Added> = added.iter().filter(|a| a.plan == plan).collect();
        for a in &expected {
            assert_eq!(
                seen.get(&a.statement).copied(),
                Some(1),
                "plan {plan}: acknowledged edit {:?} should be there exactly once\n{}",
                a.statement,
                mesh.report()
            );
        }
        assert_eq!(
            strengths.len(),
            expected.len(),
            "plan {plan}: strengths nobody added acknowledged: {seen:?}"
        );
        let ids: std::collections::BTreeSet<&str> =
            strengths.iter().filter_map(|s| s["id"].as_str()).collect();
        assert_eq!(ids.len(), strengths.len(), "plan {plan}: an id twice");
        for copy in &copies {
            assert_eq!(copy.as_ref().map(|c| &c.1), Some(&doc), "plan {plan}");
        }
    }
}

/// C is cut off from A and B; everyone edits; A and B still agree between
/// themselves, C holds only its own edits; after healing, all three agree
/// and every acknowledged edit is there once.
#[test]
fn a_partition_heals_and_every_edit_arrives_once() {
    let mesh = Mesh::new([Backend::Sqlite; 3]);
    let plans = set_up_plans(&mesh);

    mesh.isolate(C, Faults::cut());
    let before = mesh.total();
    let added = edit_concurrently(&mesh, &plans, "partitioned", 6, Duration::from_millis(50));
    // The majority keeps working: A and B agree on every plan while C is
    // cut off...
    mesh.wait_agree(&plans.all(), &[A, B], 60, "A and B during the partition");
    // ...and C has none of their new edits, nor they C's.
    for plan in plans.all() {
        let copies = mesh.copies(&plan);
        let statements = |n: usize| -> Vec<String> {
            copies[n].as_ref().unwrap().1["strengths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["statement"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(
            statements(A).iter().all(|s| !s.contains("@county-c")),
            "C's edit crossed the cut\n{}",
            mesh.report()
        );
        assert!(
            statements(C)
                .iter()
                .all(|s| !s.contains("@county-a") && !s.contains("@county-b")),
            "an edit reached C across the cut\n{}",
            mesh.report()
        );
    }
    let during = mesh.total().since(&before);
    assert!(during.cut > 0, "the nodes never tried the cut links");

    // A second wave while still cut, then heal.
    let mut more = edit_concurrently(&mesh, &plans, "still cut", 2, Duration::ZERO);
    mesh.isolate(C, Faults::pass());
    // Back-off after the failures delays the first retry by up to ~30 s.
    mesh.wait_agree(&plans.all(), &[A, B, C], 120, "after healing");
    let mut all = added;
    all.append(&mut more);
    assert_each_once(&mesh, &plans, &all);
    eprintln!("links:\n{}", mesh.stats());
}

/// On every link, requests are duplicated (the sender sometimes getting the
/// copy's `401 replay` answer), held back and delivered after later ones
/// (the sender told they failed, so it retries), delayed, or delivered with
/// the reply withheld; meanwhile everyone edits. The nodes converge with
/// the faults still on, every edit arrives once, and the requests still held
/// when they converged, delivered late, change nothing.
#[test]
fn duplicated_reordered_and_lost_messages_change_nothing() {
    // B on PostgreSQL: the same protocol over both stores.
    let mesh = Mesh::new([Backend::Sqlite, Backend::Postgres, Backend::Sqlite]);
    let plans = set_up_plans(&mesh);

    mesh.all_links(Faults::chaos(0.15, 0.1, 0.05, Duration::from_millis(3000)));
    let before = mesh.total();
    // Everyone edits in waves until faults of every kind have happened
    // (a node sends only when there is something to send), or this would
    // prove nothing...
    let enough = |s: &Stats| {
        s.duplicated >= 3
            && s.answered_second >= 1
            && s.replies_401 >= 1
            && s.held >= 2
            && s.delivered_late >= 2
            && s.dropped_replies >= 2
    };
    let mut added = Vec::new();
    for wave in 0.. {
        if enough(&mesh.total().since(&before)) {
            break;
        }
        assert!(
            wave < 15,
            "too few faults injected after {wave} waves of edits\n{}",
            mesh.report()
        );
        let label = format!("chaos wave {wave}");
        added.extend(edit_concurrently(
            &mesh,
            &plans,
            &label,
            4,
            Duration::from_millis(250),
        ));
    }
    // ...and the nodes converge with the faults still on.
    // (Each failed pass doubles a node's back-off for that peer, so this
    // may take minutes.)
    mesh.wait_agree(
        &plans.all(),
        &[A, B, C],
        300,
        "under duplicates, reordering and lost replies",
    );
    let during = mesh.total().since(&before);
    eprintln!("faults until converged: {during}");
    assert_each_once(&mesh, &plans, &added);
    let converged: Vec<_> = plans.all().iter().map(|p| mesh.copies(p)).collect();

    // Let the held and late requests land (each is fully answered by its
    // receiver before it counts as landed), with no more faults: the copies
    // stay exactly as they were, then and two anti-entropy intervals later.
    mesh.all_links(Faults::pass());
    let all_landed = wait_until(deadline(30), || {
        mesh.links.values().all(|p| p.pending() == 0)
    });
    assert!(
        all_landed,
        "held requests never delivered\n{}",
        mesh.report()
    );
    let after: Vec<_> = plans.all().iter().map(|p| mesh.copies(p)).collect();
    assert_eq!(
        converged,
        after,
        "late deliveries changed a plan\n{}",
        mesh.report()
    );
    std::thread::sleep(Duration::from_secs(2));
    let later: Vec<_> = plans.all().iter().map(|p| mesh.copies(p)).collect();
    assert_eq!(converged, later, "a plan changed later\n{}", mesh.report());

    eprintln!("links:\n{}", mesh.stats());
}

/// The proxy itself, against one node's `/healthz`: each fault does what
/// it says, and the counts say so.
#[test]
fn the_proxy_injects_each_fault_it_is_told_to() {
    let node = TestNode::spawn(Backend::Sqlite);
    let proxy = Proxy::start("test→node", node.url(), proxy_seed()).expect("a proxy");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/healthz", proxy.url());
    // The status the sender sees; 0 for a refused or closed connection.
    let get = || http.get(&url).send().map_or(0, |r| r.status().as_u16());

    assert_eq!(get(), 200);
    assert_eq!((proxy.stats().received, proxy.stats().forwarded), (1, 1));
    assert!(proxy.stats().reply_bytes > 0 && proxy.stats().request_bytes > 0);

    proxy.cut();
    for _ in 0..4 {
        assert!(matches!(get(), 0 | 502));
    }
    assert_eq!(proxy.stats().forwarded, 1, "nothing passes a cut");
    assert!(proxy.stats().cut >= 4);

    let only = |f: Faults| Faults {
        max_delay: Duration::from_millis(200),
        ..f
    };
    proxy.set_faults(only(Faults::chaos(1.0, 0.0, 0.0, Duration::ZERO)));
    let before = proxy.stats();
    for _ in 0..8 {
        assert_eq!(get(), 200);
    }
    assert!(wait_until(deadline(10), || proxy.pending() == 0));
    let d = proxy.stats().since(&before);
    assert_eq!((d.received, d.duplicated, d.forwarded), (8, 8, 16), "{d}");

    proxy.set_faults(only(Faults::chaos(0.0, 0.0, 1.0, Duration::ZERO)));
    let before = proxy.stats();
    for _ in 0..4 {
        assert!(matches!(get(), 0 | 502));
    }
    let d = proxy.stats().since(&before);
    assert_eq!(
        (d.forwarded, d.dropped_replies, d.replies_2xx),
        (4, 4, 4),
        "{d}"
    );

    proxy.set_faults(only(Faults::chaos(0.0, 1.0, 0.0, Duration::ZERO)));
    let before = proxy.stats();
    let statuses: Vec<u16> = (0..8).map(|_| get()).collect();
    assert!(wait_until(deadline(10), || proxy.pending() == 0));
    let d = proxy.stats().since(&before);
    // Held ones failed at once and went later; delayed ones waited.
    assert_eq!(d.held + d.delayed, 8, "{d}");
    assert_eq!(d.delivered_late, d.held, "{d}");
    assert_eq!(d.forwarded, 8, "{d}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count() as u64,
        d.delayed,
        "{statuses:?} {d}"
    );

    proxy.heal();
    assert_eq!(get(), 200);
}
