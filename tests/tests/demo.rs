#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `wrapsync demo` as a person (or a tool reading `demo.json`) uses it: three
//! county nodes in one real process, their users, and the plans families
//! consented to share, readable by their holders at the holders' own nodes
//! as soon as the demo says it is ready; run again on the same directory, it
//! keeps its data and passwords.

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use wrapsync_tests::{deadline, free_ports, wait_until, Demo};

const NODES: [&str; 3] = ["county-a", "county-b", "county-c"];

struct Client {
    http: reqwest::blocking::Client,
}

impl Client {
    fn new() -> Self {
        Client {
            http: reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// Logs in; answers the access token, or the status of a refusal.
    fn login(&self, url: &str, username: &str, password: &str) -> Result<String, u16> {
        let reply = self
            .http
            .post(format!("{url}/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .unwrap();
        let status = reply.status().as_u16();
        if status != 200 {
            return Err(status);
        }
        let body: Value = reply.json().unwrap();
        Ok(body["access_token"].as_str().unwrap().to_string())
    }

    /// `POST url path body` as `token`: the status.
    fn post(&self, url: &str, path: &str, token: &str, body: &Value) -> u16 {
        self.http
            .post(format!("{url}{path}"))
            .bearer_auth(token)
            .json(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// `GET url path` as `token`: the status and the JSON body (or null).
    fn get(&self, url: &str, path: &str, token: &str) -> (u16, Value) {
        let reply = self
            .http
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .unwrap();
        let status = reply.status().as_u16();
        (status, reply.json().unwrap_or(Value::Null))
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Every user of every node, as demo.json lists them: (node, username) →
/// password.
fn passwords(manifest: &Value) -> HashMap<(String, String), String> {
    let mut out = HashMap::new();
    for node in manifest["nodes"].as_array().unwrap() {
        for user in node["users"].as_array().unwrap() {
            out.insert(
                (
                    text(&node["id"]).to_string(),
                    text(&user["username"]).to_string(),
                ),
                text(&user["password"]).to_string(),
            );
        }
    }
    out
}

fn url_of<'a>(manifest: &'a Value, node: &str) -> &'a str {
    let nodes = manifest["nodes"].as_array().unwrap();
    let found = nodes.iter().find(|n| n["id"] == node);
    text(&found.unwrap_or_else(|| panic!("no node {node} in {manifest}"))["url"])
}

/// Checks what a client of the demo relies on: the nodes where demo.json
/// says, and every shared plan readable by each of its holders there.
fn check_nodes_and_shared(
    client: &Client,
    manifest: &Value,
    dir: &Path,
    base_port: u16,
    log: &dyn Fn() -> String,
) {
    // The state hub: its data where demo.json says, every county's reports
    // of the last 24 months, published, and its dashboard.
    let hub = &manifest["hub"];
    assert_eq!(hub["id"], "state-hub");
    assert_eq!(
        text(&hub["url"]),
        format!("http://127.0.0.1:{}", base_port + 3)
    );
    assert_eq!(
        Path::new(text(&hub["data_dir"])),
        dir.canonicalize().unwrap().join("state-hub")
    );
    assert!(Path::new(text(&hub["data_dir"])).join("hub.db").exists());
    let hub_url = text(&hub["url"]);
    let (status, periods) = client.get(hub_url, "/hub/v1/periods", "");
    assert_eq!(status, 200, "{}", log());
    let periods = periods["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 24, "{periods:?}");
    let latest = text(periods.last().unwrap());
    let (status, published) =
        client.get(hub_url, &format!("/hub/v1/indicators?period={latest}"), "");
    assert_eq!(status, 200);
    assert_eq!(published["nodes"], serde_json::json!(NODES));
    let served = &published["indicators"][0]["statewide"]["total"];
    assert!(
        served["value"].as_u64().is_some_and(|n| n > 100),
        "{served}"
    );
    let page = client.http.get(format!("{hub_url}/")).send().unwrap();
    assert!(page
        .headers()
        .get("content-type")
        .is_some_and(|t| t.to_str().unwrap().starts_with("text/html")));

    let nodes = manifest["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| text(&n["id"])).collect();
    assert_eq!(ids, NODES);
    let dir = dir.canonicalize().unwrap();
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            text(&node["url"]),
            format!("http://127.0.0.1:{}", base_port + i as u16)
        );
        let data_dir = Path::new(text(&node["data_dir"]));
        assert_eq!(data_dir, dir.join(NODES[i]));
        assert!(
            data_dir.join("node.db").is_file(),
            "{} has no database",
            data_dir.display()
        );
        let roles: BTreeSet<&str> = node["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| text(&u["role"]))
            .collect();
        let expected: BTreeSet<&str> = [
            "supervisor",
            "facilitator",
            "family_advocate",
            "caregiver",
            "youth",
            "provider",
            "natural_support",
        ]
        .into();
        assert_eq!(roles, expected, "{}: users of every role", NODES[i]);
    }
    let passwords = passwords(manifest);
    let mut tokens = HashMap::new();
    let mut token = |node: &str, username: &str| -> String {
        let key = (node.to_string(), username.to_string());
        tokens
            .entry(key.clone())
            .or_insert_with(|| {
                let password = passwords
                    .get(&key)
                    .unwrap_or_else(|| panic!("{username} is not a user of {node}"));
                client
                    .login(url_of(manifest, node), username, password)
                    .unwrap_or_else(|s| panic!("{username} cannot log in at {node}: {s}"))
            })
            .clone()
    };

    let shared = manifest["shared"].as_array().unwrap();
    assert!(shared.len() >= 3, "some plans are shared: {shared:?}");
    assert!(
        shared.iter().any(|s| s["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| text(&h["node"]))
            .collect::<BTreeSet<_>>()
            .len()
            >= 2),
        "one plan is shared with two nodes"
    );
    let shared_ids: BTreeSet<&str> = shared.iter().map(|s| text(&s["plan"])).collect();
    // Each node's own plans: what its supervisor sees, less the replicas of
    // plans shared with it.
    let mut homes: HashMap<&str, &str> = HashMap::new();
    let mut own: HashMap<&str, Vec<String>> = HashMap::new();
    for node in NODES {
        let sam = token(node, "supervisor");
        let mut plans = Vec::new();
        let mut path = "/v1/plans?limit=200".to_string();
        loop {
            let (status, list) = client.get(url_of(manifest, node), &path, &sam);
            assert_eq!(status, 200);
            plans.extend(list["plans"].as_array().unwrap().iter().cloned());
            match list["next"].as_str() {
                Some(cursor) => path = format!("/v1/plans?limit=200&cursor={cursor}"),
                None => break,
            }
        }
        for plan in &plans {
            let id = text(&plan["id"]).to_string();
            let holders = shared
                .iter()
                .find(|s| s["plan"] == id.as_str())
                .map(|s| s["holders"].as_array().unwrap().clone());
            match holders {
                Some(holders) if holders.iter().any(|h| h["node"] == node) => {}
                Some(_) => {
                    homes.insert(
                        shared_ids.get(id.as_str()).copied().unwrap_or_default(),
                        node,
                    );
                }
                None => own.entry(node).or_default().push(id),
            }
        }
    }
    for node in NODES {
        let unshared = own.get(node).map_or(0, Vec::len);
        let shared_from_here = homes.values().filter(|home| **home == node).count();
        assert!(unshared > 0, "{node} keeps some plans to itself");
        // Six hand-written families and a caseload of 250 generated ones.
        assert_eq!(unshared + shared_from_here, 256, "{node}'s own families");
    }

    for share in shared {
        let plan = text(&share["plan"]);
        let home = *homes
            .get(plan)
            .unwrap_or_else(|| panic!("shared plan {plan} is homed at no node"));
        let (status, at_home) = client.get(
            url_of(manifest, home),
            &format!("/v1/plans/{plan}"),
            &token(home, "supervisor"),
        );
        assert_eq!(status, 200);
        let holders = share["holders"].as_array().unwrap();
        assert!(!holders.is_empty());
        for holder in holders {
            let (node, username) = (text(&holder["node"]), text(&holder["username"]));
            assert_ne!(node, home, "a plan is not shared with its own home");
            let holder_token = token(node, username);
            let (status, there) = client.get(
                url_of(manifest, node),
                &format!("/v1/plans/{plan}"),
                &holder_token,
            );
            assert_eq!(
                status,
                200,
                "{username} at {node} cannot read shared plan {plan}\n{}",
                log()
            );
            assert_eq!(there["plan"]["title"], at_home["plan"]["title"]);
            // The holder is on the family's team as a user of their node.
            let member = format!("{username}@{node}");
            assert!(
                there["plan"]["team"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["user"] == member.as_str()),
                "{member} is not on the team of {plan}"
            );
            // Whole: the replica converges to the home's copy.
            assert!(
                wait_until(deadline(30), || {
                    client
                        .get(
                            url_of(manifest, node),
                            &format!("/v1/plans/{plan}"),
                            &holder_token,
                        )
                        .1["version"]
                        == client
                            .get(
                                url_of(manifest, home),
                                &format!("/v1/plans/{plan}"),
                                &token(home, "supervisor"),
                            )
                            .1["version"]
                }),
                "plan {plan} at {node} differs from its home {home}\n{}",
                log()
            );
        }
    }

    // A plan that is not shared stays at home: 404 elsewhere, even to the
    // other nodes' supervisors.
    for home in NODES {
        let plan = &own[home][0];
        for other in NODES.iter().filter(|n| **n != home) {
            for username in ["supervisor", "facilitator1"] {
                let (status, _) = client.get(
                    url_of(manifest, other),
                    &format!("/v1/plans/{plan}"),
                    &token(other, username),
                );
                assert_eq!(
                    status, 404,
                    "{home}'s unshared plan {plan} at {other} ({username})"
                );
            }
        }
    }
}

#[test]
fn the_demo_runs_three_county_nodes_sharing_consented_plans_and_keeps_them() {
    let temp = tempfile::Builder::new()
        .prefix("wrapsync-demo-test-")
        .tempdir()
        .unwrap();
    let dir = temp.path().join("demo");
    let log_path = temp.path().join("demo.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let client = Client::new();

    let port = free_ports(4).unwrap();
    let demo = Demo::start(&dir, port, &log_path);
    let first = demo.manifest.clone();
    assert_eq!(
        std::fs::read_to_string(dir.join("demo.json"))
            .map(|t| serde_json::from_str::<Value>(&t).unwrap())
            .unwrap(),
        first
    );
    check_nodes_and_shared(&client, &first, &dir, port, &log);

    // Every user logs in at their node, with their node's password: the
    // same username at another node has another password.
    let passwords = passwords(&first);
    assert_eq!(passwords.len(), 3 * 24);
    for ((node, username), password) in &passwords {
        client
            .login(url_of(&first, node), username, password)
            .unwrap_or_else(|s| panic!("{username} cannot log in at {node}: {s}"));
    }
    let a_password = &passwords[&("county-a".to_string(), "facilitator1".to_string())];
    assert_eq!(
        client.login(url_of(&first, "county-b"), "facilitator1", a_password),
        Err(401)
    );

    // A holder edits the replica at their own node; the edit reaches the
    // plan's home.
    let share = &first["shared"][0];
    let (plan, holder) = (text(&share["plan"]), &share["holders"][0]);
    let (node, username) = (text(&holder["node"]), text(&holder["username"]));
    let token = client
        .login(
            url_of(&first, node),
            username,
            &passwords[&(node.to_string(), username.to_string())],
        )
        .unwrap();
    let mission = format!("Settle in at {node}");
    assert_eq!(
        client.post(
            url_of(&first, node),
            &format!("/v1/plans/{plan}/ops"),
            &token,
            &json!({"ops": [{"op": "replace", "path": "/mission", "value": mission}]}),
        ),
        200,
        "{username} at {node} cannot edit shared plan {plan}"
    );
    // Its home: the node that is not a holder whose supervisor sees it.
    let sam_at = |node: &str| {
        let password = &passwords[&(node.to_string(), "supervisor".to_string())];
        client
            .login(url_of(&first, node), "supervisor", password)
            .unwrap()
    };
    let holder_nodes: BTreeSet<&str> = share["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| text(&h["node"]))
        .collect();
    let (home, home_sam) = NODES
        .iter()
        .filter(|n| !holder_nodes.contains(*n))
        .map(|n| (*n, sam_at(n)))
        .find(|(n, sam)| {
            client
                .get(url_of(&first, n), &format!("/v1/plans/{plan}"), sam)
                .0
                == 200
        })
        .expect("the shared plan's home");
    assert!(
        wait_until(deadline(30), || {
            client
                .get(
                    url_of(&first, home),
                    &format!("/v1/plans/{plan}"),
                    &home_sam,
                )
                .1["plan"]["mission"]
                == mission.as_str()
        }),
        "the holder's edit never reached {home}\n{}",
        log()
    );

    // Killed outright, then run again on the same directory (at other
    // ports): the same data, keys and passwords.
    demo.kill().unwrap();
    let port = free_ports(4).unwrap();
    let demo = Demo::start(&dir, port, &log_path);
    let again = demo.manifest.clone();
    assert_eq!(again["shared"], first["shared"]);
    for (before, after) in first["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .zip(again["nodes"].as_array().unwrap())
    {
        assert_eq!(before["users"], after["users"]);
    }
    check_nodes_and_shared(&client, &again, &dir, port, &log);

    // Ctrl-C stops all three nodes cleanly.
    let status = demo
        .interrupt()
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert!(status.success(), "the demo exited with {status}\n{}", log());
}
