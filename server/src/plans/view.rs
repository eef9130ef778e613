//! A plan rendered once per version: the response bodies, the ETag, and the
//! facts that authorization and listing need, so a read costs no parsing.

use super::Actor;
use crate::store::plans::Membership;
use actix_web::web::Bytes;
use automerge::{Automerge, ChangeHash};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;
use wrapsync_shared::api::{ConflictValue, ConflictView, PlanDocument};
use wrapsync_shared::plan::render_with_conflicts;
use wrapsync_shared::roles::Role;

pub struct PlanView {
    pub id: String,
    pub heads: Vec<ChangeHash>,
    pub version: Vec<String>,
    /// Strong validator for `If-None-Match` of the whole plan: the heads,
    /// hashed. Roles that see less get their own (`etag_for`).
    etag: String,
    pub title: String,
    pub phase: String,
    /// Active roster members linked to a user of this node (see
    /// `localized`).
    pub members: Vec<Membership>,
    /// The node this plan is homed at, when it is not this one (a replica
    /// of a plan shared with this node).
    pub home: Option<String>,
    pub plan: serde_json::Value,
    pub conflicts: Vec<ConflictView>,
    body: Bytes,
    /// Rendered on first use for roles that see less of the plan.
    restricted: OnceLock<(&'static [&'static str], Bytes)>,
}

/// Who is reading: decides which rendering they get.
pub type Viewer = Role;

impl PlanView {
    /// Renders `doc`; `names` maps actors to usernames for the conflicts.
    pub fn render(id: &str, doc: &Automerge, names: &HashMap<String, String>) -> PlanView {
        let mut heads = doc.get_heads();
        heads.sort();
        let version: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
        let mut hasher = Sha256::new();
        for h in &version {
            hasher.update(h.as_bytes());
        }
        let etag = format!("\"{}\"", &hex::encode(hasher.finalize())[..32]);
        let (plan, conflicts) = render_with_conflicts(doc);
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let members = plan["team"]
            .as_array()
            .map(|team| {
                team.iter()
                    .filter(|m| m["status"] != "left")
                    .filter_map(|m| {
                        let username = m["user"].as_str()?.to_string();
                        let role: Role = m["role"].as_str()?.parse().ok()?;
                        Some(membership(username, text(&m["id"]), role))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let conflicts: Vec<ConflictView> = conflicts
            .into_iter()
            .map(|c| ConflictView {
                path: c.path,
                values: c
                    .values
                    .into_iter()
                    .map(|(value, actor)| ConflictValue {
                        value,
                        user: names.get(&actor).cloned(),
                        actor,
                    })
                    .collect(),
            })
            .collect();
        let body = serde_json::to_vec(&PlanDocument {
            id: id.to_string(),
            version: version.clone(),
            plan: plan.clone(),
            conflicts: conflicts.clone(),
        })
        .map(Bytes::from)
        .unwrap_or_default();
        PlanView {
            id: id.to_string(),
            heads,
            version,
            etag,
            title: text(&plan["title"]),
            phase: text(&plan["enrollment"]["phase"]),
            members,
            home: None,
            plan,
            conflicts,
            body,
            restricted: OnceLock::new(),
        }
    }

    /// Keeps the members who are users of this node (`node`): on a plan
    /// homed here, plain usernames and `name@node`; on a replica of a plan
    /// homed elsewhere, only `name@node`, since a plain name there is a user
    /// of the plan's home, not whoever has that name here.
    pub fn localized(mut self, home: Option<String>, node: &str) -> PlanView {
        self.members = std::mem::take(&mut self.members)
            .into_iter()
            .filter_map(|mut m| match (m.username.split_once('@'), &home) {
                (None, None) => Some(m),
                (Some((name, at)), _) if at == node && !name.is_empty() => {
                    m.username = name.to_string();
                    Some(m)
                }
                _ => None,
            })
            .collect();
        self.home = home;
        self
    }

    /// The role `actor` edits with: on a replica of a plan homed elsewhere
    /// only team members edit (a supervisor here is not on that family's
    /// team, and the home would refuse the change anyway).
    pub fn editing_role_of(&self, actor: &Actor) -> Option<Role> {
        match &self.home {
            Some(_) => self.member(&actor.username).map(|m| m.role),
            None => self.role_of(actor),
        }
    }

    /// The caller's membership, if they are on the roster.
    pub fn member(&self, username: &str) -> Option<&Membership> {
        self.members.iter().find(|m| m.username == username)
    }

    /// The role `actor` acts in on this plan: supervisors oversee every plan
    /// of their node; anyone else must be on the team. `None` means the plan
    /// must look absent to them.
    pub fn role_of(&self, actor: &Actor) -> Option<Role> {
        if actor.role == Role::Supervisor {
            return Some(Role::Supervisor);
        }
        self.member(&actor.username).map(|m| m.role)
    }

    /// Bytes of the whole plan's JSON body: what the quota counts.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// The `ETag` of the representation `role` receives: the same heads
    /// render differently for a role that sees less, so a validator from
    /// one role's read must never answer `304` to another's.
    pub fn etag_for(&self, role: Role) -> String {
        let hidden = role.hidden_sections();
        if hidden.is_empty() {
            return self.etag.clone();
        }
        let mut hasher = Sha256::new();
        hasher.update(self.etag.as_bytes());
        for section in hidden {
            hasher.update(b"\0-");
            hasher.update(section.as_bytes());
        }
        format!("\"{}\"", &hex::encode(hasher.finalize())[..32])
    }

    /// The plan (without conflicts) as `role` may see it.
    pub fn plan_for(&self, role: Role) -> serde_json::Value {
        let mut plan = self.plan.clone();
        role.hide_sections(&mut plan);
        plan
    }

    /// The JSON body `{"id","version","plan"}` as `role` may see it.
    pub fn body_for(&self, role: Role) -> Bytes {
        if role.hidden_sections().is_empty() {
            return self.body.clone();
        }
        let render = || {
            let conflicts = self
                .conflicts
                .iter()
                .filter(|c| role.sees(&c.path))
                .cloned()
                .collect();
            serde_json::to_vec(&PlanDocument {
                id: self.id.clone(),
                version: self.version.clone(),
                plan: self.plan_for(role),
                conflicts,
            })
            .map(Bytes::from)
            .unwrap_or_default()
        };
        // Cached for the first restricted role asked (today the only one);
        // any other is rendered each time rather than served the wrong view.
        let (hidden, body) = self
            .restricted
            .get_or_init(|| (role.hidden_sections(), render()));
        if *hidden == role.hidden_sections() {
            body.clone()
        } else {
            render()
        }
    }
}

/// A member as the plan index stores it.
fn membership(username: String, member_id: String, role: Role) -> Membership {
    Membership {
        username,
        member_id,
        role,
    }
}
