//! `wrapsync demo`: a county node on SQLite, seeded with synthetic families
//! (every name, date and phone number here is invented) and users of every
//! role, described in `DIR/demo.json` for people and test tools.

use crate::app::App;
use crate::config::Config;
use crate::db::blocking;
use crate::error::ApiError;
use crate::plans::{Actor, RequestMeta};
use crate::users::add_user;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use wrapsync_shared::ops::Op;
use wrapsync_shared::roles::Role;

/// `demo.json`: the fixed shape outside clients rely on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoManifest {
    pub hub: Option<DemoHub>,
    pub nodes: Vec<DemoNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoHub {
    pub url: String,
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

pub const NODE_ID: &str = "county-a";

/// The config of the demo node under `dir`.
pub fn node_config(dir: &Path, port: u16) -> Result<Config, crate::config::ConfigError> {
    let data_dir = dir.join(NODE_ID);
    let text = format!(
        "node_id = {NODE_ID:?}\nlisten = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n",
        data_dir.to_string_lossy()
    );
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| crate::config::ConfigError::Read(data_dir.clone(), e))?;
    let path = dir.join(format!("{NODE_ID}.toml"));
    std::fs::write(&path, text).map_err(|e| crate::config::ConfigError::Read(path.clone(), e))?;
    Config::load(Some(&path), std::env::vars())
}

/// Reads an earlier run's manifest, if its node data is still there.
pub fn existing_manifest(dir: &Path) -> Option<DemoManifest> {
    let text = std::fs::read_to_string(dir.join("demo.json")).ok()?;
    let manifest: DemoManifest = serde_json::from_str(&text).ok()?;
    manifest
        .nodes
        .iter()
        .all(|n| n.data_dir.join("node.db").exists())
        .then_some(manifest)
}

const SURNAMES: [&str; 6] = [
    "Alder",
    "Birchwood",
    "Cedarly",
    "Dogwood",
    "Elmsworth",
    "Firhaven",
];
const YOUTH_NAMES: [&str; 6] = ["Avery", "Blake", "Casey", "Devon", "Emery", "Finley"];
const CAREGIVER_NAMES: [&str; 6] = ["Morgan", "Jordan", "Riley", "Quinn", "Parker", "Rowan"];

fn password() -> String {
    let bytes: [u8; 9] = rand::random();
    format!("demo-{}", hex::encode(bytes))
}

/// Creates the demo users and families on a fresh node and answers the
/// users for `demo.json`.
pub async fn seed(app: &App) -> Result<Vec<DemoUser>, ApiError> {
    let mut people: Vec<(String, Role)> = vec![
        ("supervisor".into(), Role::Supervisor),
        ("facilitator1".into(), Role::Facilitator),
        ("facilitator2".into(), Role::Facilitator),
        ("advocate1".into(), Role::FamilyAdvocate),
        ("provider1".into(), Role::Provider),
        ("provider2".into(), Role::Provider),
    ];
    for i in 1..=SURNAMES.len() {
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
    let actor = |name: &str| actors.iter().find(|a| a.username == name).cloned();
    for (i, surname) in SURNAMES.iter().enumerate() {
        let n = i + 1;
        let facilitator = actor(if n <= 3 {
            "facilitator1"
        } else {
            "facilitator2"
        })
        .ok_or_else(|| ApiError::Internal("demo facilitator missing".into()))?;
        seed_family(app, &facilitator, n, surname).await?;
    }
    Ok(users)
}

fn op(op: &str, path: &str, value: Value) -> Op {
    Op {
        op: op.into(),
        path: path.into(),
        value: Some(value),
        from: None,
    }
}

async fn seed_family(
    app: &App,
    facilitator: &Actor,
    n: usize,
    surname: &str,
) -> Result<(), ApiError> {
    let youth = YOUTH_NAMES[n - 1];
    let caregiver = CAREGIVER_NAMES[n - 1];
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
    let provider = if n % 2 == 1 { "provider1" } else { "provider2" };
    let team = vec![
        op("replace", "/youth/name", json!(format!("{youth} {surname}"))),
        op("replace", "/youth/birth_date", json!(format!("{}-0{}-1{}", 2008 + n, n, n))),
        op("replace", "/enrollment/phase", json!(["planning", "implementation", "implementation", "transition", "implementation", "planning"][n - 1])),
        op("replace", "/vision", json!(format!("{youth} lives at home, goes to school every day, and our family has fun together again."))),
        op("replace", "/mission", json!(format!("Help the {surname} family keep {youth} safe, at home and in school."))),
        op("add", "/team", json!({"name": format!("{caregiver} {surname}"), "role": "caregiver", "support": "natural", "user": format!("caregiver{n}"), "phone": format!("555-01{n}0")})),
        op("add", "/team", json!({"name": format!("{youth} {surname}"), "role": "youth", "support": "natural", "user": format!("youth{n}")})),
        op("add", "/team", json!({"name": "Pat Advocate", "role": "family_advocate", "support": "formal", "user": "advocate1"})),
        op("add", "/team", json!({"name": format!("Dr. Sam {provider}"), "role": "provider", "support": "formal", "user": provider})),
        op("add", "/team", json!({"name": format!("Coach Lee {n}"), "role": "natural_support", "support": "natural", "user": format!("natural{n}")})),
        op("add", "/team", json!({"name": format!("Grandma {surname}"), "role": "natural_support", "support": "informal", "phone": format!("555-02{n}0")})),
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
            json!({"name": "County mobile crisis team", "relationship": "crisis line", "phone": "555-0100"}),
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
    Ok(())
}
