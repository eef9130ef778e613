//! Request and response bodies of the `/v1` JSON API, shared by the server
//! and the clients so that both sides agree by construction.

use crate::ops::{Op, OpResult};
use crate::roles::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Answer to login and refresh. The refresh token is single-use: each
/// refresh answers a new one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// One line of the plan list: enough for a phone's "my plans" screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanSummary {
    pub id: String,
    pub title: String,
    pub phase: String,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// The caller's role on this plan (`supervisor` for node supervisors).
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanList {
    pub plans: Vec<PlanSummary>,
    /// Cursor for the next page, if there is one.
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePlanRequest {
    pub title: String,
    #[serde(default)]
    pub enrolled_on: Option<String>,
}

/// A plan at one version: `version` is the document's heads (hex change
/// hashes); send it back as `base_version` with the next edit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanDocument {
    pub id: String,
    pub version: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub plan: Json,
    /// Fields people set concurrently, with every value and who set it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictView>,
}

/// A conflicted field: `plan` shows the first value; a `replace` of `path`
/// resolves the conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictView {
    pub path: String,
    pub values: Vec<ConflictValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictValue {
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: Json,
    /// Who set it (username), when the actor is bound to a user here.
    pub user: Option<String>,
    pub actor: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpsRequest {
    /// The version the client last saw; absent means the current one.
    #[serde(default)]
    pub base_version: Option<Vec<String>>,
    pub ops: Vec<Op>,
}

/// The answer to ops. Whole (`plan` after the ops) unless the client sent
/// `Prefer: return=minimal` or the plan is larger than the node's
/// `ops_answer_plan_bytes`: then minimal, without `plan` and with
/// `changed`, so a write never makes the node ship a large plan back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpsResponse {
    pub id: String,
    pub version: Vec<String>,
    /// The plan after the ops (as the caller's role sees it); absent
    /// (`null` here) in a minimal answer: read it with `GET` if needed.
    #[serde(default, skip_serializing_if = "Json::is_null")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub plan: Json,
    /// One entry per op, in order; `add` answers the new item's id.
    pub results: Vec<OpResult>,
    /// Minimal answers only: the paths the ops wrote, in order (an added
    /// item's as `/collection/<new id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
}

/// A plan that changed: fetch or sync it. `cursor` orders the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanChange {
    pub plan: String,
    pub cursor: String,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// `GET /v1/changes`: pass `cursor` back as `since` to continue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeFeed {
    pub changes: Vec<PlanChange>,
    pub cursor: String,
}

/// One change in a plan's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    pub hash: String,
    /// Username of who made it, when the actor is bound to a user.
    pub user: Option<String>,
    pub actor: String,
    /// Seconds since the Unix epoch, as the author's device recorded it.
    pub time: i64,
    /// What changed, e.g. `replace /needs/*/status`.
    pub summary: Option<String>,
    /// The node that delivered the change to this one, when it is not the
    /// author's own node: a plan's home relaying a third node's change to a
    /// replica, or a change the home did not vouch for (then `user` is
    /// absent). Absent for changes made here or sent by their author's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct History {
    pub id: String,
    pub changes: Vec<HistoryEntry>,
}

/// One row of the audit trail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub user: Option<String>,
    pub role: Option<String>,
    pub plan: Option<String>,
    pub action: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub remote: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<String>,
}

/// RFC 9457 problem details, the body of every error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// `/problems/<code>`, stable for clients to match on: a
    /// [`ProblemType`](crate::problems::ProblemType) (docs/api.md, "Errors").
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a refused op: its index in the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_index: Option<usize>,
}

impl Problem {
    /// The type this build knows the problem as; `None` for one it does not
    /// (a newer server's), which is then told by its status alone.
    pub fn problem_type(&self) -> Option<crate::problems::ProblemType> {
        crate::problems::ProblemType::from_type(&self.kind)
    }
}

/// `POST /v1/plans/{id}/sync` in JSON, both ways: one Automerge sync
/// message, base64; `null` when the side has nothing to say.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncMessage {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    #[serde(default, with = "crate::wire_bytes")]
    pub message: Option<Vec<u8>>,
}

/// Most plans one `POST /v1/sync` may carry.
pub const MAX_SYNC_BATCH: usize = 500;

/// `POST /v1/sync`: one round of the sync protocol for many plans at once,
/// so a device catching up on hundreds of plans pays one request per round
/// instead of one per plan. CBOR (`application/cbor`, messages as byte
/// strings) or JSON (messages base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncBatch {
    pub plans: Vec<SyncBatchItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncBatchItem {
    pub plan: String,
    /// The device's sync message; `null` to only ask for the node's.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    #[serde(default, with = "crate::wire_bytes")]
    pub message: Option<Vec<u8>>,
    /// Instead of a message, for a device that made no change since it last
    /// synced: the heads it has (`[]`: nothing yet). The node answers with
    /// just the changes after them, with no sync state or round trip, and
    /// the device need not even load its document to take them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub have: Option<Vec<String>>,
}

/// The node's answer, one entry per plan asked, in the order asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncBatchReply {
    pub plans: Vec<SyncBatchResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncBatchResult {
    pub plan: String,
    /// The node's next message; `null` when it has nothing to say.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    #[serde(default, with = "crate::wire_bytes")]
    pub message: Option<Vec<u8>>,
    /// Answering `have`: the changes after those heads (Automerge bytes that
    /// `load`/`loadIncremental` take, and that may be appended to a saved
    /// document), `null` when there are none, …
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    #[serde(
        default,
        with = "crate::wire_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub changes: Option<Vec<u8>>,
    /// … and the plan's heads with them (its `version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<Vec<String>>,
    /// Why this plan's round was refused (a `404` for a plan that is not the
    /// caller's, a `422` for refused changes, …); the other plans' rounds
    /// are unaffected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// `POST /federation/v1/sync`: one round of the sync protocol for many
/// shared plans, node to node (CBOR, signed like every peer request: the
/// signature covers the whole body, so each plan's authors ride in it). The
/// answer is a [`SyncBatchReply`], one entry per plan, in the order asked;
/// each plan's round is checked, run and audited as if it came alone. A
/// batch round is a push: the replies carry no changes (each node sends its
/// own in its own pushes, signed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PeerSyncBatch {
    pub plans: Vec<PeerSyncItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PeerSyncItem {
    pub plan: String,
    /// The sender's sync message; `null` when it has nothing to say.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    #[serde(default, with = "crate::wire_bytes")]
    pub message: Option<Vec<u8>>,
    /// Who made the changes the message carries: Automerge actor (hex) →
    /// the sender's username for that person.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authors: BTreeMap<String, String>,
    /// For a plan that moved to the sender: the chain of transfer
    /// certificates, as in the `Wrapsync-Transfers` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfers: Option<String>,
}

/// `POST /v1/plans/{id}/shares`: record a family's consent to share the
/// plan with a peer node, until `expires_at` (ms since the epoch) or
/// revoked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A consent grant as `GET /v1/plans/{id}/shares` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub node: String,
    pub scope: String,
    pub granted_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Not revoked and not expired: the plan syncs with `node`.
    pub live: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareList {
    pub shares: Vec<Share>,
}

/// A node this node trusts (`/v1/admin/peers`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    pub id: String,
    pub url: String,
    pub public_key: String,
    /// `config` (the config file's) or `admin` (added at run time).
    pub source: String,
    /// How sending to it goes (absent until the first attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PeerStatus>,
}

/// How sending shared plans to a peer goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PeerStatus {
    /// Whether the last attempt reached it.
    pub reachable: Option<bool>,
    /// When a pass last completed (ms since the epoch).
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    /// Shared plans not yet sent in the current or failed pass.
    pub plans_behind: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PeerList {
    pub peers: Vec<PeerEntry>,
}

/// `POST /v1/plans/{id}/transfer`: move the plan's home to another node
/// (the family moved). The family must have consented to share it with
/// that node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    pub node: String,
}

/// A transfer as the old home reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub plan: String,
    pub from: String,
    pub to: String,
    /// `done` (the new home holds the plan) or `pending` (not reached
    /// yet; the node keeps trying).
    pub state: String,
    /// Whether the old home keeps a copy (a replica of the new home's).
    pub kept: bool,
}

/// What the old home sends the new one (`POST
/// /federation/v1/plans/{id}/transfer`, CBOR): the whole plan with its
/// history, the family's other consents, and the certificate of the move.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// The saved Automerge document.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    #[serde(with = "crate::wire_bytes")]
    pub document: Option<Vec<u8>>,
    /// Live grants to other nodes, which the new home keeps honoring.
    pub grants: Vec<HandoverGrant>,
    /// The old home's signed word that the plan moved (an EdDSA JWT), shown
    /// to nodes that still hold a replica homed at the old home.
    pub certificate: String,
    /// The old home keeps a copy and syncs it with the new home.
    pub keeps_copy: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HandoverGrant {
    pub node: String,
    pub scope: String,
    /// Who recorded the consent, as the old home knows them (`name@node`).
    pub granted_by: String,
    pub expires_at: Option<i64>,
}

/// The digest a transfer certificate signs of a handover's grants: the
/// SHA-256 of their canonical JSON (sorted), base64url. The old home signs
/// it, so the new home believes only the grants the old one sent.
pub fn grants_digest(grants: &[HandoverGrant]) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let mut rows: Vec<(&str, &str, &str, Option<i64>)> = grants
        .iter()
        .map(|g| {
            (
                g.node.as_str(),
                g.scope.as_str(),
                g.granted_by.as_str(),
                g.expires_at,
            )
        })
        .collect();
    rows.sort();
    let canonical = serde_json::to_vec(&rows).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(canonical))
}

/// `GET /federation/v1/identity`: what an operator configuring this node
/// as a peer needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeIdentity {
    pub node_id: String,
    /// The node's Ed25519 public key, base64url.
    pub public_key: String,
    /// Within a key rotation's grace period, the old key's signed
    /// statement vouching for the new one (README, "Key rotation").
    #[serde(default)]
    pub rotation: Option<String>,
    /// `EdDSA`.
    pub algorithm: String,
    /// `Ed25519`.
    pub curve: String,
    /// The plan schema versions the node knows (`GET /v1/schema`); empty
    /// from a node older than schema versions.
    #[serde(default)]
    pub plan_schema_versions: Vec<i64>,
}

/// The new home's answer to a [`Handover`]: the plan's heads there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoverReceipt {
    pub plan: String,
    pub version: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grants_digest_is_of_the_grants_in_any_order() {
        let grant = |node: &str| HandoverGrant {
            node: node.into(),
            scope: "full".into(),
            granted_by: "carla@county-a".into(),
            expires_at: None,
        };
        let (c, d) = (grant("county-c"), grant("county-d"));
        assert_eq!(
            grants_digest(&[c.clone(), d.clone()]),
            grants_digest(&[d.clone(), c.clone()])
        );
        assert_ne!(
            grants_digest(std::slice::from_ref(&c)),
            grants_digest(&[c, d])
        );
    }
}
