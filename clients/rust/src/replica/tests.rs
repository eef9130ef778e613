#![allow(clippy::unwrap_used)]
//! The replica on disk, without a node: edits persist across reopening,
//! refused edits change nothing, files are never left half written.

use super::*;
use serde_json::json;
use wrapsync_shared::api::Problem;
use wrapsync_shared::plan::init_plan;

const PLAN: &str = "01J0000000000000000000PLAN";

/// Puts a plan in the replica as a first sync would: a document made by
/// another actor (the node's).
fn seed(dir: &Path, plan: &str) {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    init_plan(&mut tx, "Seeded family").unwrap();
    tx.commit();
    write_atomically(&dir.join(format!("{plan}.{DOC_EXT}")), &doc.save()).unwrap();
}

fn ops(value: serde_json::Value) -> Vec<Op> {
    serde_json::from_value(value).unwrap()
}

fn caregiver() -> Editor {
    Editor {
        role: Role::Caregiver,
        member_id: None,
    }
}

#[test]
fn edits_survive_reopening_with_the_same_heads_and_actor() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path(), "phone-1").unwrap();
    let actor = replica.actor().to_string();
    seed(dir.path(), PLAN);
    let seeded = replica.heads(PLAN).unwrap();

    let results = replica
        .edit(
            PLAN,
            caregiver(),
            &ops(json!([
                {"op":"replace","path":"/vision","value":"Home together"},
                {"op":"add","path":"/strengths","value":{"statement":"We laugh a lot"}}
            ])),
        )
        .unwrap();
    assert!(results[0].id.is_none());
    let strength = results[1].id.clone().unwrap();
    let heads = replica.heads(PLAN).unwrap();
    assert_ne!(heads, seeded);
    let plan = replica.plan_json(PLAN).unwrap();
    drop(replica);

    let reopened = Replica::open(dir.path(), "phone-1").unwrap();
    assert_eq!(
        reopened.actor(),
        actor,
        "the actor is chosen once per device"
    );
    assert_eq!(reopened.heads(PLAN).unwrap(), heads);
    assert_eq!(reopened.plan_json(PLAN).unwrap(), plan);
    assert_eq!(plan["vision"], "Home together");
    assert_eq!(plan["strengths"][0]["id"], strength.as_str());
    assert_eq!(reopened.plans().unwrap(), vec![PLAN.to_string()]);

    // A second edit after reopening is made by the same actor too.
    reopened
        .edit(
            PLAN,
            caregiver(),
            &ops(json!([{"op":"replace","path":"/vision","value":"Home, together"}])),
        )
        .unwrap();
    let doc = reopened.require_doc(PLAN).unwrap();
    let ours: Vec<_> = doc
        .get_changes(&[])
        .into_iter()
        .filter(|c| c.actor_id().to_hex_string() == actor)
        .collect();
    assert!(
        ours.iter().all(|c| c.timestamp() > 0),
        "edits carry their time"
    );
    let ours: Vec<_> = ours
        .iter()
        .map(|c| c.message().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        ours,
        vec!["replace /vision; add /strengths", "replace /vision"]
    );

    // Nothing half written is left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Health records: owner-only.
    #[cfg(unix)]
    for entry in fs::read_dir(dir.path()).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", entry.file_name());
    }
}

#[test]
fn a_refused_local_edit_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path(), "phone-1").unwrap();
    seed(dir.path(), PLAN);
    let before = replica.heads(PLAN).unwrap();
    let plan = replica.plan_json(PLAN).unwrap();

    // The first op alone is allowed; the second is not a caregiver's to make.
    let err = replica
        .edit(
            PLAN,
            caregiver(),
            &ops(json!([
                {"op":"replace","path":"/vision","value":"allowed"},
                {"op":"add","path":"/team","value":{"name":"Zed","role":"provider"}}
            ])),
        )
        .unwrap_err();
    assert!(
        matches!(&err, ReplicaError::Edit { failure, .. } if failure.index == 1 && failure.error.code() == "forbidden"),
        "{err}"
    );
    assert_eq!(replica.heads(PLAN).unwrap(), before);
    assert_eq!(replica.plan_json(PLAN).unwrap(), plan);
    let reopened = Replica::open(dir.path(), "phone-1").unwrap();
    assert_eq!(reopened.heads(PLAN).unwrap(), before);
}

#[test]
fn unknown_plans_bad_ids_and_other_devices_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path(), "phone-1").unwrap();
    let edit = replica.edit(PLAN, caregiver(), &[]);
    assert!(matches!(edit, Err(ReplicaError::UnknownPlan(ref p)) if p == PLAN));
    // An empty document (a pull cut short) is no copy of the plan either.
    replica.save_doc(PLAN, &Automerge::new()).unwrap();
    let edit = replica.edit(
        PLAN,
        caregiver(),
        &ops(json!([{"op":"replace","path":"/vision","value":"x"}])),
    );
    assert!(
        matches!(edit, Err(ReplicaError::UnknownPlan(_))),
        "{edit:?}"
    );
    assert!(matches!(
        replica.plan_json("../etc/passwd"),
        Err(ReplicaError::InvalidId { .. })
    ));
    assert!(matches!(
        Replica::open(dir.path(), "phone 2"),
        Err(ReplicaError::InvalidId { .. })
    ));
    assert!(matches!(
        Replica::open(dir.path(), "phone-2"),
        Err(ReplicaError::OtherDevice { ref found, .. }) if found == "phone-1"
    ));
    fs::write(dir.path().join(META_FILE), b"{not json").unwrap();
    assert!(matches!(
        Replica::open(dir.path(), "phone-1"),
        Err(ReplicaError::Corrupt { .. })
    ));
}

#[test]
fn what_the_device_knows_about_the_user_persists() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("state/replica");
    let mut replica = Replica::open(&nested, "phone-1").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
    assert!(replica.editor(PLAN).is_none());
    replica.set_user("carla").unwrap();
    replica.set_role(PLAN, Role::Caregiver).unwrap();
    let reopened = Replica::open(&nested, "phone-1").unwrap();
    assert_eq!(reopened.user(), Some("carla"));
    let editor = reopened.editor(PLAN).unwrap();
    assert_eq!(editor.role, Role::Caregiver);
    assert_eq!(editor.member_id, None);
}

#[test]
fn a_sync_without_a_network_fails_and_keeps_the_local_edits() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(dir.path(), "phone-1").unwrap();
    seed(dir.path(), PLAN);
    replica
        .edit(
            PLAN,
            caregiver(),
            &ops(json!([{"op":"replace","path":"/vision","value":"queued"}])),
        )
        .unwrap();
    let heads = replica.heads(PLAN).unwrap();
    let client = Client::new("http://127.0.0.1:9").unwrap();
    let err = replica.sync(&client, PLAN).unwrap_err();
    assert!(
        matches!(&err, ReplicaError::Client(ClientError::Transport(_))),
        "{err}"
    );
    assert!(err.stops_everything());
    assert_eq!(replica.heads(PLAN).unwrap(), heads);
    assert_eq!(replica.plan_json(PLAN).unwrap()["vision"], "queued");
}

#[test]
fn forgetting_a_plan_drops_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::open(dir.path(), "phone-1").unwrap();
    seed(dir.path(), PLAN);
    replica.set_role(PLAN, Role::Caregiver).unwrap();
    replica.forget(PLAN).unwrap();
    assert!(replica.plans().unwrap().is_empty());
    assert!(replica.editor(PLAN).is_none());
    assert!(matches!(
        replica.heads(PLAN),
        Err(ReplicaError::UnknownPlan(_))
    ));
}

#[test]
fn only_refusals_of_changes_become_refused() {
    let problem = |status: u16, code: &str| ClientError::Api {
        status,
        problem: Problem {
            kind: format!("/problems/{code}"),
            title: code.into(),
            status,
            detail: None,
            op_index: None,
        },
    };
    let refused = refusal(PLAN, problem(422, "change-forbidden"));
    assert!(
        matches!(refused, ReplicaError::Refused { ref problem, .. } if problem.kind == "/problems/change-forbidden")
    );
    assert!(refused.to_string().contains("change-forbidden"));
    assert!(!refused.stops_everything());
    let unauthorized = refusal(PLAN, problem(401, "unauthorized"));
    assert!(unauthorized.is_unauthorized() && unauthorized.stops_everything());
    let not_found = refusal(PLAN, problem(404, "not-found"));
    assert!(!not_found.is_unauthorized() && !not_found.stops_everything());
}

#[test]
fn a_sync_saving_its_copy_keeps_an_edit_made_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let syncing = Replica::open(dir.path(), "phone-1").unwrap();
    seed(dir.path(), PLAN);
    // A sync holds the document in memory …
    let mut in_memory = syncing.require_doc(PLAN).unwrap();
    // … while another process edits the file.
    let editing = Replica::open(dir.path(), "phone-1").unwrap();
    editing
        .edit(
            PLAN,
            caregiver(),
            &ops(json!([{"op":"replace","path":"/vision","value":"meanwhile"}])),
        )
        .unwrap();
    syncing.merge_and_save(PLAN, &mut in_memory).unwrap();
    assert_eq!(syncing.plan_json(PLAN).unwrap()["vision"], "meanwhile");
    assert_eq!(
        sorted_hex(&in_memory.get_heads()),
        syncing.heads(PLAN).unwrap()
    );
}
