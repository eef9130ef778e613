//! Which messages of a batch may run: their declared operations counted
//! before any round, against the route's limits.

use super::size::RouteOps;
use super::{decode::message_ops, Actor, Plans};
use crate::error::ApiError;

impl Plans {
    /// Which messages of one batch may run: each one's operations are
    /// counted from its headers and columns (milliseconds), and once they
    /// add up past `total`, the rest get `429` (their sender sends them
    /// again later); one past `route` alone is left to its round, which
    /// refuses it as cheaply. Nothing is decoded for good here.
    /// A large batch is counted off the HTTP worker (`crate::blocking`).
    async fn batch_admission<'a>(
        &self,
        messages: impl IntoIterator<Item = Option<&'a [u8]>>,
        route: RouteOps,
        total: u64,
    ) -> Vec<Result<(), ApiError>> {
        let messages: Vec<Option<&[u8]>> = messages.into_iter().collect();
        let bounds = self.bounds;
        let count = move |message: Option<&[u8]>| match message {
            None => Some(0),
            Some(bytes) => message_ops(bytes, bounds, Some(route)).ok(),
        };
        let len: usize = messages.iter().flatten().map(|m| m.len()).sum();
        let counted: Vec<Option<u64>> = if len < crate::blocking::OFF_WORKER_FROM {
            messages.into_iter().map(count).collect()
        } else {
            let owned: Vec<Option<Vec<u8>>> =
                messages.iter().map(|m| m.map(<[u8]>::to_vec)).collect();
            let many = owned.len();
            // A count that panicked counts nothing: each message goes to
            // its round, which refuses what it cannot read.
            crate::blocking::read_large(len, move || {
                owned.iter().map(|m| count(m.as_deref())).collect()
            })
            .await
            .unwrap_or_else(|| vec![None; many])
        };
        super::size::admit_batch(&counted, total)
            .into_iter()
            .map(|admitted| {
                if admitted {
                    Ok(())
                } else {
                    Err(ApiError::RateLimited(1))
                }
            })
            .collect()
    }

    /// [`Plans::batch_admission`] for a peer's batch
    /// (`max_peer_sync_ops` each, `max_peer_batch_ops` in all).
    pub async fn peer_batch_admission<'a>(
        &self,
        messages: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Vec<Result<(), ApiError>> {
        let ops = self.message_ops;
        self.batch_admission(messages, ops.for_peer(), ops.peer_batch)
            .await
    }

    /// [`Plans::batch_admission`] for a device's batch (`/v1/sync`): the
    /// role's limit on one message each, twice that in all.
    pub async fn device_batch_admission<'a>(
        &self,
        actor: &Actor,
        messages: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Vec<Result<(), ApiError>> {
        let route = self.message_ops.for_role(actor.role);
        self.batch_admission(messages, route, route.ops.saturating_mul(2))
            .await
    }
}
