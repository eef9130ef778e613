//! Which plans a person may see, and the change log that says which changed.

use super::{Actor, Plans};
use crate::error::ApiError;
use crate::store::plans as stored;
use wrapsync_shared::api::{PlanChange, PlanSummary};
use wrapsync_shared::roles::Role;

impl Plans {
    /// A page of the plans `actor` may see.
    pub async fn list(
        &self,
        actor: &Actor,
        updated_since: Option<i64>,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<PlanSummary>, ApiError> {
        let username = (actor.role != Role::Supervisor).then(|| actor.username.clone());
        let rows = self
            .blocking(move |conn| {
                stored::list_plans(
                    conn,
                    &stored::ListQuery {
                        username: username.as_deref(),
                        updated_since,
                        after,
                        limit,
                    },
                )
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| PlanSummary {
                id: row.id,
                title: row.title,
                phase: row.phase,
                updated_at: row.updated_at,
                role: row.role.and_then(|r| r.parse().ok()).unwrap_or(actor.role),
            })
            .collect())
    }

    /// Plans `actor` may see that changed after cursor `since`, each once
    /// with its newest cursor, oldest first.
    pub async fn changes(
        &self,
        actor: &Actor,
        since: i64,
        limit: i64,
    ) -> Result<Vec<PlanChange>, ApiError> {
        let username = (actor.role != Role::Supervisor).then(|| actor.username.clone());
        let rows = self
            .blocking(move |conn| stored::changes_since(conn, username.as_deref(), since, limit))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(plan, cursor, updated_at)| PlanChange {
                plan,
                cursor: cursor.to_string(),
                updated_at,
            })
            .collect())
    }

    /// Every plan changed after cursor `since` (at most `limit`, oldest
    /// first) with the usernames on its roster: one batch for all open
    /// change-feed streams (`crate::streams`).
    pub async fn changes_with_members(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<stored::ChangedPlan>, ApiError> {
        self.blocking(move |conn| stored::changes_with_members(conn, since, limit))
            .await
    }

    /// The change log's newest cursor (0 when empty).
    pub async fn last_change_seq(&self) -> Result<i64, ApiError> {
        self.blocking(stored::last_change_seq).await
    }
}
