//! An offline replica of the plans one device works on.
//!
//! Each plan is a fork of the node's Automerge document, kept on disk with
//! the device's sync state for it: edits are made locally (no network) with
//! the same JSON ops as `/ops` and stay queued simply by being in the local
//! document; [`Replica::sync`] runs sync rounds with the node until neither
//! side has anything to say. Every write is atomic (temp file, fsync,
//! rename) and the document and sync state are saved after every round, so a
//! crash between rounds loses nothing.
//!
//! Layout of the replica directory:
//! - `replica.json` — device id, the device's actor id (random, chosen once,
//!   used for every edit it makes: the node binds an actor to one user), the
//!   user, and per plan the user's role and team member id when known;
//! - `<plan>.automerge` — the plan document (`Automerge::save`);
//! - `<plan>.sync` — the sync state with the node (`sync::State::encode`).
//!
//! Plans are health records of children: the directory is created
//! owner-only (0700) and every file written owner-only (0600) on Unix.
//!
//! Errors are [`ReplicaError`]; a node's refusal of the local changes is
//! [`ReplicaError::Refused`], and the local document is kept as it is.
//! A replica directory is meant for one process at a time; a sync merges
//! the file before each save, so an `edit` made meanwhile by another
//! process is not lost, but two concurrent edits may race.

use crate::client::Client;
use crate::error::ClientError;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use wrapsync_shared::automerge::sync::{self, SyncDoc};
use wrapsync_shared::automerge::transaction::CommitOptions;
use wrapsync_shared::automerge::{ActorId, Automerge, ChangeHash};
use wrapsync_shared::ops::{apply_ops, summarize, Editor, Op, OpResult};
use wrapsync_shared::plan::render;
use wrapsync_shared::roles::Role;

pub use error::ReplicaError;
use files::{
    corrupt, create_private_dir, io_at, read_if_exists, sync_dir, write_atomically, write_json,
};

/// The most rounds one [`Replica::sync`] makes before giving up: a healthy
/// exchange takes two to four.
pub const MAX_ROUNDS: usize = 20;

const META_FILE: &str = "replica.json";
const DOC_EXT: &str = "automerge";
const STATE_EXT: &str = "sync";

/// What one [`Replica::sync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Requests made, the last one being the quiet round that ended it.
    pub rounds: usize,
    /// Changes sent to the node, each counted once. When more than a third
    /// of the document is new to the node, Automerge sends the whole
    /// document, and this counts every change in it.
    pub sent_changes: usize,
    /// Changes received from the node and applied.
    pub received_changes: usize,
}

/// What [`Replica::sync_all`] did, plan by plan: a plan the node refused
/// does not stop the others.
#[derive(Debug, Default)]
pub struct SyncAllReport {
    pub plans: BTreeMap<String, Result<SyncReport, ReplicaError>>,
    /// Local plans the node no longer lists (the user left the team): not
    /// synced, left on disk.
    pub unlisted: Vec<String>,
    /// Plans the user's role sees only in part (natural supports): the node
    /// refuses to sync them, as a document cannot be synced in part; read
    /// them with [`Client::get_plan`].
    pub partial: Vec<String>,
}

/// The device's identity and what it knows about the user, persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    device_id: String,
    /// Hex actor id of every change this device makes.
    actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default)]
    plans: BTreeMap<String, PlanMeta>,
}

/// The user's place on one plan's team, as far as the device knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PlanMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member_id: Option<String>,
}

/// The local copies of one device's plans; see the module documentation.
#[derive(Debug)]
pub struct Replica {
    dir: PathBuf,
    meta: Meta,
    actor: ActorId,
}

impl Replica {
    /// Opens the replica in `dir` (created if missing) for `device_id`; a
    /// new replica draws its actor id once, here.
    pub fn open(dir: &Path, device_id: &str) -> Result<Replica, ReplicaError> {
        check_id("device id", device_id)?;
        create_private_dir(dir)?;
        let meta_path = dir.join(META_FILE);
        let meta = match fs::read(&meta_path) {
            Ok(bytes) => {
                let meta: Meta = serde_json::from_slice(&bytes)
                    .map_err(|e| corrupt(&meta_path, e.to_string()))?;
                if meta.device_id != device_id {
                    return Err(ReplicaError::OtherDevice {
                        dir: dir.to_path_buf(),
                        found: meta.device_id,
                        wanted: device_id.to_string(),
                    });
                }
                meta
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let meta = Meta {
                    device_id: device_id.to_string(),
                    actor: ActorId::random().to_hex_string(),
                    user: None,
                    plans: BTreeMap::new(),
                };
                write_json(&meta_path, &meta)?;
                meta
            }
            Err(e) => return Err(io_at(&meta_path)(e)),
        };
        let actor = ActorId::try_from(meta.actor.as_str())
            .map_err(|e| corrupt(&meta_path, format!("actor id: {e}")))?;
        Ok(Replica {
            dir: dir.to_path_buf(),
            meta,
            actor,
        })
    }

    /// The device id sent with every sync round.
    pub fn device_id(&self) -> &str {
        &self.meta.device_id
    }

    /// The hex actor id of every change this device makes.
    pub fn actor(&self) -> &str {
        &self.meta.actor
    }

    /// The username this device syncs as, once set.
    pub fn user(&self) -> Option<&str> {
        self.meta.user.as_deref()
    }

    /// Records whose device this is, so syncs can find the user's team
    /// member id on each plan (for [`Replica::editor`]).
    pub fn set_user(&mut self, username: &str) -> Result<(), ReplicaError> {
        if self.meta.user.as_deref() != Some(username) {
            self.meta.user = Some(username.to_string());
            self.save_meta()?;
        }
        Ok(())
    }

    /// Records the user's role on a plan (the node tells it in the plan
    /// list; [`Replica::sync_all`] records it by itself).
    pub fn set_role(&mut self, plan_id: &str, role: Role) -> Result<(), ReplicaError> {
        check_id("plan id", plan_id)?;
        let entry = self.meta.plans.entry(plan_id.to_string()).or_default();
        if entry.role != Some(role) {
            entry.role = Some(role);
            self.save_meta()?;
        }
        Ok(())
    }

    /// Who the user is on `plan_id` for a local edit, when their role is
    /// known (from the plan list or their roster entry).
    pub fn editor(&self, plan_id: &str) -> Option<Editor> {
        let plan = self.meta.plans.get(plan_id)?;
        Some(Editor {
            role: plan.role?,
            member_id: plan.member_id.clone(),
        })
    }

    /// The plans with a local copy, sorted.
    pub fn plans(&self) -> Result<Vec<String>, ReplicaError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_at(&self.dir))? {
            let path = entry.map_err(io_at(&self.dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some(DOC_EXT) {
                continue;
            }
            if let Some(id) = path.file_stem().and_then(|s| s.to_str()) {
                if check_id("plan id", id).is_ok() {
                    out.push(id.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Applies `ops` to the local copy of a plan, all or nothing, and saves
    /// it. No network: the edit reaches the node with the next sync. `add`
    /// ops answer the new item ids.
    pub fn edit(
        &self,
        plan_id: &str,
        editor: Editor,
        ops: &[Op],
    ) -> Result<Vec<OpResult>, ReplicaError> {
        let mut doc = self.require_doc(plan_id)?;
        let mut tx = doc.transaction();
        let mut new_id = || ulid::Ulid::new().to_string();
        match apply_ops(&mut tx, ops, &editor, &mut new_id) {
            Ok(results) => {
                tx.commit_with(
                    CommitOptions::default()
                        .with_message(summarize(ops))
                        .with_time(unix_secs()),
                );
                self.save_doc(plan_id, &doc)?;
                Ok(results)
            }
            Err(failure) => {
                tx.rollback();
                Err(ReplicaError::Edit {
                    plan: plan_id.to_string(),
                    failure,
                })
            }
        }
    }

    /// The local copy of a plan as JSON, rendered like the node renders it.
    pub fn plan_json(&self, plan_id: &str) -> Result<Json, ReplicaError> {
        Ok(render(&self.require_doc(plan_id)?))
    }

    /// The heads of the local copy, as sorted hex hashes: equal to the
    /// node's `version` once both have the same changes.
    pub fn heads(&self, plan_id: &str) -> Result<Vec<String>, ReplicaError> {
        Ok(sorted_hex(&self.require_doc(plan_id)?.get_heads()))
    }

    /// Drops the local copy of a plan and its sync state, local edits
    /// included (after a refusal, say); the next sync pulls it anew.
    pub fn forget(&mut self, plan_id: &str) -> Result<(), ReplicaError> {
        check_id("plan id", plan_id)?;
        for ext in [DOC_EXT, STATE_EXT] {
            let path = self.file(plan_id, ext);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        sync_dir(&self.dir);
        if self.meta.plans.remove(plan_id).is_some() {
            self.save_meta()?;
        }
        Ok(())
    }

    /// Syncs one plan with the node until neither side has anything to
    /// say: sends the local edits, applies the node's changes. A plan with
    /// no local copy is pulled. The document and sync state are saved after
    /// every round; a refused round saves nothing.
    pub fn sync(&mut self, client: &Client, plan_id: &str) -> Result<SyncReport, ReplicaError> {
        let mut doc = match self.load_doc(plan_id)? {
            Some(doc) => doc,
            None => Automerge::new().with_actor(self.actor.clone()),
        };
        let mut state = self.load_state(plan_id)?;
        let mut report = SyncReport::default();
        let mut sent = HashSet::<ChangeHash>::new();
        while report.rounds < MAX_ROUNDS {
            let already_sent = state.sent_hashes.clone();
            let message = doc.generate_sync_message(&mut state);
            sent.extend(state.sent_hashes.difference(&already_sent).copied());
            let spoke = message.is_some();
            report.rounds += 1;
            let answer = client
                .sync_round(
                    plan_id,
                    &self.meta.device_id,
                    message.map(sync::Message::encode),
                )
                .map_err(|e| refusal(plan_id, e))?;
            let heard = answer.is_some();
            if let Some(bytes) = answer {
                let protocol = |detail: String| ReplicaError::Protocol {
                    plan: plan_id.to_string(),
                    detail,
                };
                let message = sync::Message::decode(&bytes).map_err(|e| protocol(e.to_string()))?;
                let before = doc.get_heads();
                doc.receive_sync_message(&mut state, message)
                    .map_err(|e| protocol(e.to_string()))?;
                let received = doc.get_changes(&before).len();
                report.received_changes += received;
                // A pull saves nothing until the plan's first change is in:
                // an empty document must never be edited (it would create
                // its own copies of the plan's sections).
                if received > 0 {
                    self.merge_and_save(plan_id, &mut doc)?;
                }
            }
            self.save_state(plan_id, &state)?;
            if !spoke && !heard {
                report.sent_changes = sent.len();
                self.learn_membership(plan_id, &doc)?;
                return Ok(report);
            }
        }
        Err(ReplicaError::NotQuiescent {
            plan: plan_id.to_string(),
            rounds: report.rounds,
        })
    }

    /// Syncs every plan the node lists for the user, pulling the ones with
    /// no local copy yet, and records the user's role on each; plans the
    /// role sees only in part are left out. A plan's own
    /// failure (a refusal, say) is reported and the others go on; a failed
    /// session (transport, 401) or disk stops everything.
    pub fn sync_all(&mut self, client: &Client) -> Result<SyncAllReport, ReplicaError> {
        let listed = client.list_all_plans()?;
        let mut changed = false;
        for summary in &listed {
            check_id("plan id", &summary.id)?;
            let entry = self.meta.plans.entry(summary.id.clone()).or_default();
            if entry.role != Some(summary.role) {
                entry.role = Some(summary.role);
                changed = true;
            }
        }
        if changed {
            self.save_meta()?;
        }
        let mut report = SyncAllReport::default();
        let listed_ids: BTreeSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        report.unlisted = self
            .plans()?
            .into_iter()
            .filter(|id| !listed_ids.contains(id.as_str()))
            .collect();
        for summary in &listed {
            if !summary.role.hidden_sections().is_empty() {
                report.partial.push(summary.id.clone());
                continue;
            }
            match self.sync(client, &summary.id) {
                Err(e) if e.stops_everything() => return Err(e),
                result => {
                    report.plans.insert(summary.id.clone(), result);
                }
            }
        }
        Ok(report)
    }

    /// After a sync: the user's member id and role from the roster entry
    /// linked to their username.
    fn learn_membership(&mut self, plan_id: &str, doc: &Automerge) -> Result<(), ReplicaError> {
        let Some(user) = self.meta.user.clone() else {
            return Ok(());
        };
        let plan = render(doc);
        let Some(member) = plan["team"].as_array().and_then(|team| {
            team.iter()
                .filter(|m| m["user"] == user.as_str())
                .min_by_key(|m| m["status"] != "active")
        }) else {
            return Ok(());
        };
        let entry = self.meta.plans.entry(plan_id.to_string()).or_default();
        let before = entry.clone();
        entry.member_id = member["id"].as_str().map(str::to_string);
        // The roster says the role on this team, as the node checks it;
        // only a node supervisor's role does not come from the roster.
        if entry.role != Some(Role::Supervisor) {
            if let Some(role) = member["role"].as_str().and_then(|r| r.parse().ok()) {
                entry.role = Some(role);
            }
        }
        if *entry != before {
            self.save_meta()?;
        }
        Ok(())
    }

    fn file(&self, plan_id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{plan_id}.{ext}"))
    }

    /// The local copy of a plan, which holds at least the plan's creation.
    fn require_doc(&self, plan_id: &str) -> Result<Automerge, ReplicaError> {
        self.load_doc(plan_id)?
            .filter(|doc| !doc.get_heads().is_empty())
            .ok_or_else(|| ReplicaError::UnknownPlan(plan_id.to_string()))
    }

    fn load_doc(&self, plan_id: &str) -> Result<Option<Automerge>, ReplicaError> {
        check_id("plan id", plan_id)?;
        let path = self.file(plan_id, DOC_EXT);
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        let doc = Automerge::load(&bytes).map_err(|e| corrupt(&path, e.to_string()))?;
        Ok(Some(doc.with_actor(self.actor.clone())))
    }

    /// Saves `doc` after taking in whatever the file gained since it was
    /// loaded (an `edit` by another process meanwhile), so that a sync never
    /// overwrites a local edit; the next round sends it.
    fn merge_and_save(&self, plan_id: &str, doc: &mut Automerge) -> Result<(), ReplicaError> {
        if let Some(mut on_disk) = self.load_doc(plan_id)? {
            doc.merge(&mut on_disk)
                .map_err(|e| corrupt(&self.file(plan_id, DOC_EXT), format!("cannot merge: {e}")))?;
        }
        self.save_doc(plan_id, doc)
    }

    fn save_doc(&self, plan_id: &str, doc: &Automerge) -> Result<(), ReplicaError> {
        write_atomically(&self.file(plan_id, DOC_EXT), &doc.save())
    }

    fn load_state(&self, plan_id: &str) -> Result<sync::State, ReplicaError> {
        let path = self.file(plan_id, STATE_EXT);
        match read_if_exists(&path)? {
            Some(bytes) => {
                sync::State::decode(&bytes).map_err(|e| corrupt(&path, format!("{e:?}")))
            }
            None => Ok(sync::State::new()),
        }
    }

    fn save_state(&self, plan_id: &str, state: &sync::State) -> Result<(), ReplicaError> {
        write_atomically(&self.file(plan_id, STATE_EXT), &state.encode())
    }

    fn save_meta(&self) -> Result<(), ReplicaError> {
        write_json(&self.dir.join(META_FILE), &self.meta)
    }
}

/// A 422 from the sync endpoint is the node refusing our changes.
fn refusal(plan_id: &str, error: ClientError) -> ReplicaError {
    match error {
        ClientError::Api {
            status: 422,
            problem,
        } => ReplicaError::Refused {
            plan: plan_id.to_string(),
            problem,
        },
        other => ReplicaError::Client(other),
    }
}

fn sorted_hex(heads: &[ChangeHash]) -> Vec<String> {
    let mut out: Vec<String> = heads.iter().map(ToString::to_string).collect();
    out.sort();
    out
}

/// Plan and device ids name files: keep them to a safe alphabet.
fn check_id(what: &'static str, id: &str) -> Result<(), ReplicaError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReplicaError::InvalidId {
            what,
            id: id.to_string(),
        })
    }
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[path = "replica/error.rs"]
mod error;
#[path = "replica/files.rs"]
mod files;
#[cfg(test)]
#[path = "replica/tests.rs"]
mod tests;
