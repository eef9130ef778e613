//! `wrapsync_client::Replica` against a real node: two devices of two team
//! members pull a plan, edit it offline while the node is edited through
//! `/ops`, reconnect in either order and converge to the node's plan and
//! version; a change the node refuses stays local and is reported.

use crate::add_member;
use serde_json::{json, Value};
use std::path::Path;
use wrapsync_client::{Client, Editor, Op, Replica, ReplicaError, Role, SyncReport};
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, NATURAL_SUPPORT};
use wrapsync_tests::{password_of, Backend, TestNode};

/// One device: its replica on disk and its user's session with the node.
struct Device {
    dir: tempfile::TempDir,
    id: &'static str,
    replica: Replica,
    client: Client,
}

impl Device {
    fn new(node: &TestNode, user: &str, id: &'static str) -> Device {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut replica = Replica::open(dir.path(), id).expect("a new replica");
        replica.set_user(user).expect("user recorded");
        let mut client = Client::new(node.url()).expect("a client");
        client
            .login(user, &password_of(user))
            .expect("the user logs in");
        Device {
            dir,
            id,
            replica,
            client,
        }
    }

    /// The app restarts: everything it knows comes back from disk.
    fn reopen(&mut self) {
        self.replica = Replica::open(self.dir.path(), self.id).expect("the replica reopens");
    }

    #[track_caller]
    fn sync(&mut self, plan: &str) -> SyncReport {
        match self.replica.sync(&self.client, plan) {
            Ok(report) => report,
            Err(e) => panic!("{} failed to sync {plan}: {e}", self.id),
        }
    }

    #[track_caller]
    fn edit(&self, plan: &str, ops: Value) -> Vec<Option<String>> {
        let editor = self
            .replica
            .editor(plan)
            .expect("the role on the plan is known after a sync");
        self.edit_as(plan, editor, ops)
            .unwrap_or_else(|e| panic!("{} could not edit offline: {e}", self.id))
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    fn edit_as(
        &self,
        plan: &str,
        editor: Editor,
        ops: Value,
    ) -> Result<Vec<wrapsync_client::OpResult>, ReplicaError> {
        let ops: Vec<Op> = serde_json::from_value(ops).expect("ops");
        self.replica.edit(plan, editor, &ops)
    }
}

/// Every device holds exactly the node's plan at the node's version.
#[track_caller]
fn assert_converged(node: &TestNode, token: &str, plan: &str, devices: &[&Device]) {
    let served = node.read_plan(token, plan);
    for device in devices {
        assert_eq!(
            device.replica.plan_json(plan).expect("a local copy"),
            served.plan,
            "{}'s plan differs from the node's",
            device.id
        );
        assert_eq!(
            device.replica.heads(plan).expect("a local copy"),
            served.version,
            "{}'s heads differ from the node's version",
            device.id
        );
    }
}

fn reconnecting_a_b_a_converges(backend: Backend) {
    offline_edits_converge_whatever_the_order(backend, [0, 1, 0]);
}

fn reconnecting_b_a_b_converges(backend: Backend) {
    offline_edits_converge_whatever_the_order(backend, [1, 0, 1]);
}

/// Device 0 is the facilitator's laptop, device 1 the caregiver's phone.
fn offline_edits_converge_whatever_the_order(backend: Backend, order: [usize; 3]) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Replica family").id;
    let carla_member = add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));

    let mut devices = [
        Device::new(&node, FACILITATOR, "fran-laptop"),
        Device::new(&node, CAREGIVER, "carla-phone"),
    ];
    // Both pull every plan they are on.
    for device in &mut devices {
        let report = device
            .replica
            .sync_all(&device.client)
            .expect("sync_all works");
        assert_eq!(report.plans.keys().collect::<Vec<_>>(), vec![&plan]);
        let synced = report.plans[&plan].as_ref().expect("the plan syncs");
        assert_eq!(synced.sent_changes, 0);
        assert!(synced.received_changes >= 2, "{synced:?}");
    }
    assert_converged(&node, &fran, &plan, &[&devices[0], &devices[1]]);
    // The change feed tells the phone which plans to sync next time.
    let feed = devices[1]
        .client
        .changes(None, Some(50))
        .expect("the change feed");
    assert_eq!(
        feed.changes.iter().map(|c| &c.plan).collect::<Vec<_>>(),
        vec![&plan]
    );
    let cursor = feed.cursor;
    let quiet = devices[1]
        .client
        .changes(Some(&cursor), None)
        .expect("the change feed");
    assert!(quiet.changes.is_empty(), "{quiet:?}");
    let carla_editor = devices[1].replica.editor(&plan).expect("role known");
    assert_eq!(carla_editor.role, Role::Caregiver);
    assert_eq!(
        carla_editor.member_id.as_deref(),
        Some(carla_member.as_str())
    );
    assert_eq!(
        devices[0].replica.editor(&plan).map(|e| e.role),
        Some(Role::Facilitator)
    );

    // Offline: both devices edit, the facilitator and the caregiver even set
    // the vision concurrently; meanwhile the node is edited through /ops.
    let need = devices[0].edit(
        &plan,
        json!([
            {"op":"replace","path":"/mission","value":"Keep the family together"},
            {"op":"replace","path":"/vision","value":"Fran's words for the vision"},
            {"op":"add","path":"/needs","value":{"domain":"school","statement":"Get to school on time"}}
        ]),
    );
    let strength = devices[1].edit(
        &plan,
        json!([
            {"op":"replace","path":"/vision","value":"Home together, in school every day"},
            {"op":"add","path":"/strengths","value":{"statement":"We laugh a lot","about":"family"}}
        ]),
    );
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/enrollment/phase","value":"planning"}]),
    );
    // The apps restart before reconnecting: the queued edits are on disk.
    for device in &mut devices {
        device.reopen();
    }

    let [first, second, third] = order;
    let report = devices[first].sync(&plan);
    assert_eq!((report.sent_changes, report.received_changes), (1, 1));
    let report = devices[second].sync(&plan);
    assert_eq!((report.sent_changes, report.received_changes), (1, 2));
    let report = devices[third].sync(&plan);
    assert_eq!((report.sent_changes, report.received_changes), (0, 1));
    assert_converged(&node, &fran, &plan, &[&devices[0], &devices[1]]);
    let feed = devices[1]
        .client
        .changes(Some(&cursor), None)
        .expect("the change feed");
    assert_eq!(
        feed.changes.iter().map(|c| &c.plan).collect::<Vec<_>>(),
        vec![&plan],
        "each changed plan once"
    );

    let served = node.read_plan(&fran, &plan);
    assert_eq!(served.plan["mission"], "Keep the family together");
    assert_eq!(served.plan["enrollment"]["phase"], "planning");
    let need_id = need[2].as_deref().expect("add answers the need's id");
    let strength_id = strength[1]
        .as_deref()
        .expect("add answers the strength's id");
    assert!(served.plan["needs"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["id"] == need_id)));
    assert!(served.plan["strengths"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["id"] == strength_id)));
    // The concurrent visions are both kept, as a conflict the node shows.
    assert!(
        served.conflicts.iter().any(|c| c.path == "/vision"),
        "{:?}",
        served.conflicts
    );

    // An offline replace resolves the conflict once it reaches the node.
    devices[1].edit(
        &plan,
        json!([{"op":"replace","path":"/vision","value":"Together at home"}]),
    );
    devices[1].sync(&plan);
    devices[0].sync(&plan);
    let served = node.read_plan(&fran, &plan);
    assert_eq!(served.plan["vision"], "Together at home");
    assert!(
        !served.conflicts.iter().any(|c| c.path == "/vision"),
        "{:?}",
        served.conflicts
    );

    // A quiet sync exchanges no changes and moves nothing.
    for device in &mut devices {
        let report = device.sync(&plan);
        assert_eq!((report.sent_changes, report.received_changes), (0, 0));
    }
    assert_converged(&node, &fran, &plan, &[&devices[0], &devices[1]]);

    // A plan started later is pulled by the next sync_all.
    let second_plan = node.create_plan(&fran, "Second family").id;
    let report = devices[0]
        .replica
        .sync_all(&devices[0].client)
        .expect("sync_all works");
    assert!(report.plans.values().all(Result::is_ok), "{report:?}");
    assert_eq!(
        devices[0].replica.plans().expect("plans"),
        sorted(vec![plan.clone(), second_plan.clone()])
    );
    assert_converged(&node, &fran, &second_plan, &[&devices[0]]);
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn a_change_the_node_refuses_stays_local_and_is_reported(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Guarded replica").id;
    let carla_member = add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    let mut phone = Device::new(&node, CAREGIVER, "carla-phone");
    phone.sync(&plan);
    let before = node.read_plan(&fran, &plan);

    // The replica checks the role itself: a caregiver may not edit the team.
    let editor = phone.replica.editor(&plan).expect("role known");
    let team_edit = json!([
        {"op":"replace","path":"/vision","value":"allowed on its own"},
        {"op":"replace","path":format!("/team/{carla_member}/role"),"value":"facilitator"}
    ]);
    let local = phone.edit_as(&plan, editor, team_edit.clone());
    assert!(
        matches!(&local, Err(ReplicaError::Edit { failure, .. }) if failure.error.code() == "forbidden"),
        "{local:?}"
    );
    assert_eq!(phone.replica.heads(&plan).expect("heads"), before.version);

    // A device that lies about its role gets past its own check; the node
    // refuses the change set whole and stores nothing.
    let liar = Editor {
        role: Role::Facilitator,
        member_id: None,
    };
    phone
        .edit_as(&plan, liar, team_edit)
        .expect("the local check passes for a facilitator");
    let local_heads = phone.replica.heads(&plan).expect("heads");
    let refused = phone.replica.sync(&phone.client, &plan);
    match &refused {
        Err(ReplicaError::Refused { plan: p, problem }) => {
            assert_eq!(p, &plan);
            assert_eq!(problem.kind, "/problems/change-forbidden", "{problem:?}");
            assert_eq!(problem.status, 422);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let after = node.read_plan(&fran, &plan);
    assert_eq!(after.version, before.version);
    assert_eq!(after.plan, before.plan);

    // The local copy keeps the refused edit (nothing is silently lost) …
    let local = phone.replica.plan_json(&plan).expect("local copy");
    assert_eq!(local["vision"], "allowed on its own");
    assert_eq!(phone.replica.heads(&plan).expect("heads"), local_heads);
    // … and the refusal repeats until the device drops it.
    assert!(matches!(
        phone.replica.sync(&phone.client, &plan),
        Err(ReplicaError::Refused { .. })
    ));
    phone.replica.forget(&plan).expect("forget");
    phone.sync(&plan);
    assert_converged(&node, &fran, &plan, &[&phone]);
    phone.edit(
        &plan,
        json!([{"op":"replace","path":"/vision","value":"Home together"}]),
    );
    phone.sync(&plan);
    assert_converged(&node, &fran, &plan, &[&phone]);
    assert_eq!(node.read_plan(&fran, &plan).plan["vision"], "Home together");
}

/// A natural support sees part of the plan, which cannot be synced in
/// part: `sync_all` leaves it out instead of failing.
fn plans_seen_in_part_are_left_out_of_sync_all(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Grandma helps").id;
    add_member(
        &node,
        &fran,
        &plan,
        "Nell",
        "natural_support",
        Some(NATURAL_SUPPORT),
    );
    let mut phone = Device::new(&node, NATURAL_SUPPORT, "nell-phone");
    let report = phone
        .replica
        .sync_all(&phone.client)
        .expect("sync_all works");
    assert!(report.plans.is_empty(), "{report:?}");
    assert_eq!(report.partial, vec![plan.clone()]);
    assert!(phone.replica.plans().expect("plans").is_empty());
    // Asked for it by name, the node says no.
    let err = phone
        .replica
        .sync(&phone.client, &plan)
        .expect_err("refused");
    assert_eq!(
        err.client_error().and_then(|e| e.status()),
        Some(403),
        "{err}"
    );
}

fn a_stranger_cannot_pull_a_plan(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Private family").id;
    let mut phone = Device::new(&node, CAREGIVER, "carla-phone");
    let err = phone
        .replica
        .sync(&phone.client, &plan)
        .expect_err("not on the team");
    assert_eq!(
        err.client_error().and_then(|e| e.code()),
        Some("not-found"),
        "{err}"
    );
    assert!(phone.replica.plans().expect("plans").is_empty());
    assert!(!Path::new(&phone.dir.path().join(format!("{plan}.automerge"))).exists());
}

on_both_backends!(
    reconnecting_a_b_a_converges,
    reconnecting_b_a_b_converges,
    a_change_the_node_refuses_stays_local_and_is_reported,
    a_stranger_cannot_pull_a_plan,
    plans_seen_in_part_are_left_out_of_sync_all,
    a_device_that_lost_its_last_sync_still_converges,
    one_user_two_devices_and_a_node_restart_converge,
    a_large_offline_backlog_syncs,
    the_cli_edits_offline_syncs_and_refreshes_its_token,
);

fn one_user_two_devices_and_a_node_restart_converge(backend: Backend) {
    let mut node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Two phones").id;
    add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    let mut phone = Device::new(&node, CAREGIVER, "carla-phone");
    let mut tablet = Device::new(&node, CAREGIVER, "carla-tablet");
    phone.sync(&plan);
    tablet.sync(&plan);
    assert_ne!(phone.replica.actor(), tablet.replica.actor());
    phone.edit(
        &plan,
        json!([{"op":"add","path":"/strengths","value":{"statement":"From the phone"}}]),
    );
    tablet.edit(
        &plan,
        json!([{"op":"add","path":"/strengths","value":{"statement":"From the tablet"}}]),
    );
    phone.sync(&plan);

    // The node dies (power cut) and comes back, on another port.
    node.restart();
    for device in [&mut phone, &mut tablet] {
        device.client = Client::new(node.url()).expect("a client");
        device
            .client
            .login(CAREGIVER, &password_of(CAREGIVER))
            .expect("login");
    }
    let fran = node.login(FACILITATOR);
    tablet.sync(&plan);
    phone.sync(&plan);
    assert_converged(&node, &fran, &plan, &[&phone, &tablet]);
    let served = node.read_plan(&fran, &plan);
    assert_eq!(served.plan["strengths"].as_array().map(Vec::len), Some(2));
    // Both devices' changes are carla's in the history.
    let history = node.history(&fran, &plan);
    let carlas = history
        .changes
        .iter()
        .filter(|c| c.user.as_deref() == Some(CAREGIVER))
        .count();
    assert_eq!(carlas, 2, "{:?}", history.changes);
}

/// Thousands of offline edits by the device's own actor reach the node.
fn a_large_offline_backlog_syncs(backend: Backend) {
    use wrapsync_shared::automerge::transaction::Transactable;
    use wrapsync_shared::automerge::{ActorId, Automerge, ROOT};
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Busy family").id;
    add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    let mut phone = Device::new(&node, CAREGIVER, "carla-phone");
    phone.sync(&plan);
    let file = phone.dir.path().join(format!("{plan}.automerge"));
    let mut doc = Automerge::load(&std::fs::read(&file).expect("doc"))
        .expect("load")
        .with_actor(ActorId::try_from(phone.replica.actor()).expect("actor"));
    let mut seed: u64 = 7;
    // Well under the node's 1 MiB body limit once base64-encoded (8,000
    // such edits are not: 413 `payload-too-large`, and the device can then
    // never sync; reported).
    let count = 2000;
    for i in 0..count {
        let text: String = (0..300)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                char::from(b'a' + ((seed >> 33) % 26) as u8)
            })
            .collect();
        let mut tx = doc.transaction();
        tx.put(ROOT, "vision", format!("{i} {text}")).expect("put");
        tx.commit();
    }
    // The edits are written straight into the replica's document (through
    // `edit` they would take minutes: each one loads and saves it whole).
    std::fs::write(&file, doc.save()).expect("write");
    let report = phone.sync(&plan);
    assert!(report.sent_changes >= count, "{report:?}");
    assert_converged(&node, &fran, &plan, &[&phone]);
}

/// Copies every file of `from` into `to` (flat: a replica directory).
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().expect("a name"))).expect("copy");
        }
    }
}

fn a_device_that_lost_its_last_sync_still_converges(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "Crashing family").id;
    add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    let mut phone = Device::new(&node, CAREGIVER, "carla-phone");
    phone.sync(&plan);

    // The phone syncs, then its storage is rolled back to before that sync
    // (a restored backup): the node's sync state for the device says it has
    // changes it no longer has. The next sync must bring them again.
    let backup = tempfile::tempdir().expect("a temp dir");
    copy_files(phone.dir.path(), backup.path());
    node.apply_ops(
        &fran,
        &plan,
        json!([{"op":"replace","path":"/mission","value":"Stay together"}]),
    );
    phone.edit(
        &plan,
        json!([{"op":"replace","path":"/vision","value":"First words"}]),
    );
    phone.sync(&plan);
    assert_converged(&node, &fran, &plan, &[&phone]);
    copy_files(backup.path(), phone.dir.path());
    phone.reopen();
    assert_ne!(
        phone.replica.heads(&plan).expect("heads"),
        node.read_plan(&fran, &plan).version
    );
    let report = phone.sync(&plan);
    assert_eq!(report.received_changes, 2, "{report:?}");
    assert_converged(&node, &fran, &plan, &[&phone]);

    // A crash after the document was saved but before the sync state was:
    // the phone has no sync state at all, and edits made since still go.
    phone.edit(
        &plan,
        json!([{"op":"replace","path":"/vision","value":"Second words"}]),
    );
    std::fs::remove_file(phone.dir.path().join(format!("{plan}.sync"))).expect("rm state");
    phone.reopen();
    let report = phone.sync(&plan);
    assert_eq!(report.sent_changes, 1, "{report:?}");
    assert_converged(&node, &fran, &plan, &[&phone]);
    assert_eq!(node.read_plan(&fran, &plan).plan["vision"], "Second words");
}

/// The `wrapsync-client` binary beside the node's (build it with
/// `cargo build -p wrapsync-client`), or `$WRAPSYNC_CLIENT_BIN`.
fn client_binary() -> std::path::PathBuf {
    let path = std::env::var_os("WRAPSYNC_CLIENT_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/wrapsync-client")
        });
    assert!(
        path.exists(),
        "the wrapsync-client binary is not at {}: build it with `cargo build -p wrapsync-client`",
        path.display()
    );
    path
}

/// Runs the CLI on state directory `dir`; answers success, stdout, stderr.
fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(client_binary())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("WRAPSYNC_PASSWORD", password_of(CAREGIVER))
        .output()
        .expect("the CLI runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[track_caller]
fn cli_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out, err) = cli(dir, args);
    assert!(ok, "wrapsync-client {args:?} failed:\n{out}\n{err}");
    out
}

fn the_cli_edits_offline_syncs_and_refreshes_its_token(backend: Backend) {
    let node = TestNode::spawn(backend);
    let fran = node.login(FACILITATOR);
    let plan = node.create_plan(&fran, "CLI family").id;
    add_member(&node, &fran, &plan, "Carla", "caregiver", Some(CAREGIVER));
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();

    let out = cli_ok(
        dir,
        &["login", "--url", node.url(), "--username", CAREGIVER],
    );
    assert!(out.contains("logged in as carla"), "{out}");
    let out = cli_ok(dir, &["sync"]);
    assert!(out.contains(&plan), "{out}");

    // Offline edit: the node does not see it until the next sync.
    let vision = r#"{"op":"replace","path":"/vision","value":"From the CLI"}"#;
    let out = cli_ok(dir, &["edit", &plan, "--op", vision]);
    assert_eq!(out.trim(), "[{}]");
    let shown: Value = serde_json::from_str(&cli_ok(dir, &["show", &plan])).expect("JSON");
    assert_eq!(shown["vision"], "From the CLI");
    assert!(node.read_plan(&fran, &plan).plan.get("vision").is_none());

    // A refused local edit fails and says why.
    let team = r#"{"op":"add","path":"/team","value":{"name":"Zed","role":"provider"}}"#;
    let (ok, _, err) = cli(dir, &["edit", &plan, "--op", team]);
    assert!(!ok);
    assert!(err.contains("forbidden"), "{err}");

    // An access token the node refuses is refreshed once, and the new
    // tokens are kept.
    let session_path = dir.join("session.json");
    let read_session = || -> Value {
        serde_json::from_slice(&std::fs::read(&session_path).expect("session")).expect("JSON")
    };
    let mut session = read_session();
    let old_refresh = session["refresh_token"].clone();
    session["access_token"] = json!("not-a-token");
    std::fs::write(&session_path, session.to_string()).expect("write session");
    let out = cli_ok(dir, &["sync", &plan]);
    assert!(out.contains("sent 1 changes"), "{out}");
    let session = read_session();
    assert_ne!(session["access_token"], "not-a-token");
    assert_ne!(session["refresh_token"], old_refresh);
    let served = node.read_plan(&fran, &plan);
    assert_eq!(served.plan["vision"], "From the CLI");
    assert_eq!(served.plan, shown);

    let out = cli_ok(dir, &["list"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with(&plan) && l.contains("caregiver") && l.contains("local")),
        "{out}"
    );
    // Another user may not take over this directory's replica.
    let (ok, _, err) = cli(
        dir,
        &["login", "--url", node.url(), "--username", FACILITATOR],
    );
    assert!(!ok && err.contains("another --dir"), "{err}");
}
