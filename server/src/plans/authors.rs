//! Who made each change: the actors of this node's people, bound to them
//! as they write; the people a peer vouches for, bound to `name@node`;
//! and the names the views and history show.

use super::{Actor, PlanEntry, PlanView, Plans};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::store::users::actor_owners;
use automerge::{ActorId, Automerge};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use wrapsync_shared::ops::Editor;
use wrapsync_shared::plan::PlanError;

impl Plans {
    /// The Automerge actor for a person's edits made through this process.
    pub(super) fn actor_id(&self, actor: &Actor) -> ActorId {
        let mut bytes = ulid::Ulid::from_string(&actor.user_id)
            .map(|u| u.to_bytes().to_vec())
            .unwrap_or_else(|_| actor.user_id.as_bytes().to_vec());
        bytes.extend_from_slice(&self.instance);
        ActorId::from(bytes)
    }

    /// Every bound actor's username, loaded once and again after new
    /// actors are bound. Small: one row per person and device.
    pub(super) async fn actor_names(&self) -> Arc<HashMap<String, String>> {
        use std::sync::atomic::Ordering;
        if let Some(names) = self.actor_names.lock().clone() {
            return names;
        }
        let generation = self.actor_names_generation.load(Ordering::SeqCst);
        let loaded = self
            .blocking(crate::store::users::all_actor_users)
            .await
            .unwrap_or_default();
        let names = Arc::new(loaded.into_iter().collect::<HashMap<_, _>>());
        let mut cached = self.actor_names.lock();
        if self.actor_names_generation.load(Ordering::SeqCst) == generation {
            *cached = Some(names.clone());
        }
        names
    }

    /// Names are reloaded when next needed (actors were just bound).
    pub(super) fn forget_actor_names(&self) {
        let mut cached = self.actor_names.lock();
        self.actor_names_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *cached = None;
    }

    /// `view`, re-rendered if a conflicting value's actor was bound only by
    /// the write that produced it (its name was unknown at render time).
    pub(super) async fn with_names(&self, doc: &Automerge, view: PlanView) -> PlanView {
        let unnamed = view
            .conflicts
            .iter()
            .flat_map(|c| &c.values)
            .any(|v| v.user.is_none());
        if unnamed {
            PlanView::render(&view.id, doc, &*self.actor_names().await)
                .localized(view.home.clone(), &self.node_id)
        } else {
            view
        }
    }

    /// The people whose changes the plan holds, by actor: this node's own
    /// (plain names), and, where the plan is homed here, the other nodes'
    /// people it took changes from (`name@node`); vouched for in each
    /// signed push, so the receiver can attribute and check them.
    pub async fn local_authors(&self, entry: &PlanEntry) -> BTreeMap<String, String> {
        let actors: HashSet<String> = {
            let state = entry.state.lock().await;
            state
                .doc
                .get_changes(&[])
                .iter()
                .map(|c| c.actor_id().to_hex_string())
                .collect()
        };
        let names = self.actor_names().await;
        // The home also vouches for the people of other nodes whose changes
        // it took (`name@node`, each checked against the team when it came):
        // it relays them to its replicas. A replica vouches only for its own.
        let homed_here = entry.view().home.is_none();
        actors
            .into_iter()
            .filter_map(|a| {
                let name = names.get(&a)?;
                let ours = !name.contains('@');
                let relayed = homed_here && !name.starts_with('@');
                (ours || relayed).then(|| (a, name.clone()))
            })
            .collect()
    }

    /// The actors of the changes after `before`: each must be unbound (it is
    /// then bound to `actor`) or already bound to `actor`, so the history
    /// always says truthfully who made a change.
    pub(super) async fn check_actors(
        &self,
        actor: &Actor,
        doc: &Automerge,
        before: &[automerge::ChangeHash],
    ) -> Result<Vec<String>, ApiError> {
        let actors: Vec<String> = doc
            .get_changes(before)
            .iter()
            .map(|c| c.actor_id().to_hex_string())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let lookup = actors.clone();
        let owners = self
            .blocking(move |conn| actor_owners(conn, &lookup))
            .await?;
        if let Some((theirs, _)) = owners.iter().find(|(_, owner)| *owner != actor.user_id) {
            return Err(ApiError::RefusedChanges(PlanError::Forbidden(format!(
                "changes of actor {theirs}, which belongs to another person"
            ))));
        }
        Ok(actors)
    }

    /// Binds the actors of the home's new changes to the people it vouches
    /// for, so the history here says who made them; refuses the round
    /// (`422 change-forbidden`, nothing kept) for a change the home may not
    /// deliver. What the home may vouch for, and what is refused:
    ///
    /// - its own people (`name` → `name@home`) and the people of a third
    ///   node whose changes it took and relays (`name@node`): bound so;
    /// - a person of this node (`name@<this node>`), or a change under an
    ///   actor bound here to one of this node's people, vouched for or
    ///   not: refused. This node's people's changes are made here; none
    ///   comes back new from a peer, so such a change is a forgery;
    /// - an actor already bound to someone else: refused;
    /// - an actor it does not vouch for: kept, bound to the home itself
    ///   (`@home`: the history names no author and says it came via the
    ///   home), unless already bound to a person of another node.
    pub(super) async fn bind_home_authors(
        &self,
        home: &str,
        authors: &BTreeMap<String, String>,
        scratch: &Automerge,
        before: &[automerge::ChangeHash],
    ) -> Result<(), ApiError> {
        let refuse = |why: String| ApiError::RefusedChanges(PlanError::Forbidden(why));
        let actors: Vec<String> = scratch
            .get_changes(before)
            .iter()
            .map(|c| c.actor_id().to_hex_string())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if actors.is_empty() {
            return Ok(());
        }
        let lookup = actors.clone();
        let owners: HashMap<String, String> = self
            .blocking(move |conn| crate::store::users::actor_users(conn, &lookup))
            .await?
            .into_iter()
            .collect();
        let mut binding = Vec::new();
        for hex in actors {
            let owner = owners.get(&hex);
            if let Some(owner) = owner.filter(|o| !o.contains('@')) {
                return Err(refuse(format!(
                    "changes of actor {hex}, which belongs to {owner} of this node: \
                     node {home} may not deliver them"
                )));
            }
            let placeholder = format!("@{home}");
            let here = match authors.get(&hex) {
                // Bound before to `@node` when not vouched for then: only
                // the node that delivered it unnamed may name it later.
                Some(_) if owner == Some(&placeholder) => {
                    let name = authors.get(&hex).map(String::as_str).unwrap_or_default();
                    vouched_by_home(name, home, &self.node_id).ok_or_else(|| {
                        refuse(format!(
                            "node {home} vouches for actor {hex} as `{name}`, whom it may not speak for"
                        ))
                    })?
                }
                _ if owner.is_some_and(|o| o.starts_with('@')) => continue,
                None if owner.is_some() => continue,
                None => format!("@{home}"),
                Some(name) => vouched_by_home(name, home, &self.node_id).ok_or_else(|| {
                    refuse(format!(
                        "node {home} vouches for actor {hex} as `{name}`, whom it may not speak for"
                    ))
                })?,
            };
            binding.push((hex, here));
        }
        self.bind_remote_actors(home, binding).await
    }

    /// Binds each actor to the account of a person of another node
    /// (`name@node`, made on first use); an actor that belongs to someone
    /// else already refuses the round, and nothing is bound. An actor bound
    /// to `from`'s placeholder (`@from`: it delivered the actor's changes
    /// before it named their author, as when its own binding had not yet
    /// reached its cache) takes the name `from` now gives it.
    async fn bind_remote_actors(
        &self,
        from: &str,
        binding: Vec<(String, String)>,
    ) -> Result<(), ApiError> {
        if binding.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let placeholder = format!("@{from}");
        self.writer
            .write(move |conn| {
                let unnamed = crate::store::users::user_by_name(conn, &placeholder)?.map(|u| u.id);
                for (hex, here) in &binding {
                    let user = crate::store::users::remote_user(conn, here, now)?;
                    let owners = actor_owners(conn, std::slice::from_ref(hex))?;
                    let renamed = owners
                        .iter()
                        .any(|(_, owner)| Some(owner) == unnamed.as_ref() && *owner != user);
                    if renamed {
                        crate::store::users::rebind_actor(conn, hex, &user)?;
                        continue;
                    }
                    if owners.iter().any(|(_, owner)| *owner != user) {
                        return Err(crate::db::StoreError::Conflict(format!(
                            "actor {hex} belongs to another person"
                        )));
                    }
                    crate::store::users::bind_actor(conn, hex, &user, now)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| match e {
                crate::db::StoreError::Conflict(why) => {
                    ApiError::RefusedChanges(PlanError::Forbidden(why))
                }
                other => other.into(),
            })?;
        self.forget_actor_names();
        Ok(())
    }

    /// The editor each actor of the new changes acts as: its author, as
    /// vouched for by `peer`, must be on the team as `name@peer`; the actor
    /// is bound to that person (a shadow account that cannot log in) unless
    /// it belongs to someone else already.
    pub(super) async fn peer_authors(
        &self,
        peer: &str,
        authors: &BTreeMap<String, String>,
        team: &serde_json::Value,
        scratch: &Automerge,
        before: &[automerge::ChangeHash],
    ) -> Result<HashMap<automerge::ActorId, Editor>, ApiError> {
        let refuse = |why: String| ApiError::RefusedChanges(PlanError::Forbidden(why));
        let actors: HashSet<automerge::ActorId> = scratch
            .get_changes(before)
            .iter()
            .map(|c| c.actor_id().clone())
            .collect();
        let mut editors = HashMap::new();
        let mut binding = Vec::new();
        for actor in actors {
            let hex = actor.to_hex_string();
            let name = authors
                .get(&hex)
                .filter(|name| !name.is_empty() && !name.contains('@'))
                .ok_or_else(|| {
                    refuse(format!(
                        "changes of actor {hex}, which node {peer} does not vouch for"
                    ))
                })?;
            let here = format!("{name}@{peer}");
            let member = team.as_array().and_then(|team| {
                team.iter()
                    .find(|m| m["user"] == here.as_str() && m["status"] != "left")
            });
            let Some(member) = member else {
                return Err(refuse(format!("{here} is not on this plan's team")));
            };
            let role = member["role"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| refuse(format!("{here} has no role on this plan")))?;
            editors.insert(
                actor,
                Editor {
                    role,
                    member_id: member["id"].as_str().map(str::to_string),
                },
            );
            binding.push((hex, here));
        }
        self.bind_remote_actors(peer, binding).await?;
        Ok(editors)
    }
}

/// The account a plan's `home` vouches an actor's changes to (`name`, as it
/// signed it): its own people as `name@home`, a third node's as they are;
/// `None` for what it may not speak for (this node's people, malformed
/// names).
pub(super) fn vouched_by_home(name: &str, home: &str, this_node: &str) -> Option<String> {
    match name.split_once('@') {
        None if !name.is_empty() => Some(format!("{name}@{home}")),
        Some((person, node))
            if !person.is_empty()
                && !node.is_empty()
                && !node.contains('@')
                && node != this_node =>
        {
            Some(name.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::vouched_by_home;

    #[test]
    fn a_home_vouches_for_its_own_people_and_relays_a_third_nodes_but_never_ours() {
        let v = |name| vouched_by_home(name, "county-b", "county-a");
        assert_eq!(v("bea").as_deref(), Some("bea@county-b"));
        assert_eq!(v("cody@county-c").as_deref(), Some("cody@county-c"));
        assert_eq!(v("fran@county-a"), None, "a person of this node");
        for bad in ["", "@county-c", "cody@", "a@b@c"] {
            assert_eq!(v(bad), None, "{bad}");
        }
    }
}
