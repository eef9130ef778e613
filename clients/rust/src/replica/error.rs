//! The replica's one error type: what failed, on disk or with the node.

use crate::error::ClientError;
use std::io;
use std::path::PathBuf;
use wrapsync_shared::api::Problem;
use wrapsync_shared::ops::OpFailure;

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// Reading or writing the replica directory failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A file of the replica cannot be read back (not ours, or damaged).
    #[error("{}: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// A plan or device id that cannot name a file or a device.
    #[error("invalid {what} `{id}`: expected 1 to 64 of A-Z a-z 0-9 _ -")]
    InvalidId { what: &'static str, id: String },
    /// The directory holds the replica of another device.
    #[error("{} belongs to device `{found}`, not `{wanted}`", dir.display())]
    OtherDevice {
        dir: PathBuf,
        found: String,
        wanted: String,
    },
    /// There is no local copy of the plan: sync it first.
    #[error("no local copy of plan `{0}`: sync it first")]
    UnknownPlan(String),
    /// A local edit was refused before it touched the document.
    #[error("op {} on plan `{plan}` refused ({}): {}", failure.index, failure.error.code(), failure.error)]
    Edit { plan: String, failure: OpFailure },
    /// The node refused the local changes (422: a role may not make them,
    /// or they break the schema). Nothing was stored on the node; the local
    /// document keeps them, and every sync will be refused until they are
    /// dropped with [`Replica::forget`](super::Replica::forget).
    #[error("node refused the local changes to plan `{plan}` ({}): {}", problem.kind, problem.detail.as_deref().unwrap_or(&problem.title))]
    Refused { plan: String, problem: Problem },
    /// The node's sync message could not be decoded or applied.
    #[error("bad sync message for plan `{plan}`: {detail}")]
    Protocol { plan: String, detail: String },
    /// Sync rounds kept exchanging messages past [`MAX_ROUNDS`](super::MAX_ROUNDS).
    #[error("plan `{plan}` was still syncing after {rounds} rounds")]
    NotQuiescent { plan: String, rounds: usize },
    /// Any other failed call to the node (transport, 401, 404 …).
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl ReplicaError {
    /// The failed call to the node behind this error, if it is one.
    pub fn client_error(&self) -> Option<&ClientError> {
        match self {
            ReplicaError::Client(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the session's access token was refused (401), so that a
    /// refresh and a retry may succeed.
    pub fn is_unauthorized(&self) -> bool {
        self.client_error().and_then(ClientError::status) == Some(401)
    }

    /// Errors that concern the whole replica or session rather than one
    /// plan: [`Replica::sync_all`](super::Replica::sync_all) stops at them.
    pub(crate) fn stops_everything(&self) -> bool {
        match self {
            ReplicaError::Io { .. } | ReplicaError::OtherDevice { .. } => true,
            ReplicaError::Client(e) => matches!(e.status(), None | Some(401)),
            _ => false,
        }
    }
}
