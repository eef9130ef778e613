//! A plan's history: who made each change, from where, as much as the
//! reader's role may know.

use super::{PlanEntry, Plans};
use crate::error::ApiError;
use crate::store::users::actor_users;
use std::collections::HashSet;
use wrapsync_shared::api::HistoryEntry;
use wrapsync_shared::ops::is_summary;
use wrapsync_shared::roles::Role;

impl Plans {
    /// Every change of the plan `role` may know of, oldest first, with who
    /// made it. A role that does not see some sections gets only the
    /// changes whose summary shows it touched a section it sees, and only
    /// those parts of the summary: a change without a summary (a device's
    /// free text) could have touched anything, so it is left out for them.
    pub async fn history(
        &self,
        entry: &PlanEntry,
        role: Role,
    ) -> Result<Vec<HistoryEntry>, ApiError> {
        let restricted = !role.hidden_sections().is_empty();
        let mut changes: Vec<HistoryEntry> = {
            let state = entry.state.lock().await;
            state
                .doc
                .get_changes_meta(&[])
                .into_iter()
                .filter_map(|c| {
                    // A device's own change message is free text: shown only
                    // when it is an identifier-free summary.
                    let summary = c.message.filter(|m| is_summary(m)).map(|m| m.to_string());
                    let summary = match summary {
                        Some(s) if restricted => Some(visible_summary(role, &s)?),
                        None if restricted => return None,
                        summary => summary,
                    };
                    Some(HistoryEntry {
                        hash: c.hash.to_string(),
                        user: None,
                        actor: c.actor.to_hex_string(),
                        time: c.timestamp,
                        summary,
                        via: None,
                    })
                })
                .collect()
        };
        let actors: Vec<String> = changes
            .iter()
            .map(|c| c.actor.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let names = self
            .blocking(move |conn| actor_users(conn, &actors))
            .await?;
        let home = entry.view().home.clone();
        for change in &mut changes {
            let name = names
                .iter()
                .find(|(a, _)| *a == change.actor)
                .map(|(_, u)| u.as_str());
            (change.user, change.via) = attribution(name, home.as_deref());
        }
        Ok(changes)
    }
}

/// The parts of a change summary (`replace /cans/*/ratings/x; add
/// /strengths`) naming sections `role` sees; `None` when none do.
pub(super) fn visible_summary(role: Role, summary: &str) -> Option<String> {
    if summary == "create plan" {
        return Some(summary.to_string());
    }
    let shown: Vec<&str> = summary
        .split("; ")
        .filter(|part| {
            part.split_once(' ')
                .is_some_and(|(_, path)| role.sees(path))
        })
        .collect();
    if shown.is_empty() {
        return None;
    }
    let cut = summary.ends_with("; …");
    Some(shown.join("; ") + if cut { "; …" } else { "" })
}

/// Who made a change and which node delivered it, from the name its
/// actor is bound to (`@node`: a node delivered it without vouching for
/// an author) and the plan's home (`None`: homed here). A plan's home
/// takes changes only from their author's node; a replica takes them only
/// from the home, so a change whose author is not of the home came via it.
pub(super) fn attribution(
    name: Option<&str>,
    home: Option<&str>,
) -> (Option<String>, Option<String>) {
    match name {
        Some(name) if name.starts_with('@') => (None, Some(name[1..].to_string())),
        Some(name) => {
            let via = match (name.split_once('@'), home) {
                (Some((_, node)), Some(home)) if node != home => Some(home.to_string()),
                _ => None,
            };
            (Some(name.to_string()), via)
        }
        None => (None, home.map(str::to_string)),
    }
}
