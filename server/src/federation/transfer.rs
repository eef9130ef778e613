//! Moving a plan's home to another node (the family moved), with its whole
//! history.
//!
//! 1. The old home names its own people on the roster `name@old` (a plain
//!    name means a user of the home, and the home is about to change),
//!    certifies the move (an EdDSA JWT naming plan and new home) and
//!    records it `pending`.
//! 2. It sends the new home a signed handover: the saved document, the
//!    family's live consents, the certificate. The new home merges the plan
//!    into any replica it held, homes it there, and keeps honoring the
//!    consents (and shares with the old home if that keeps a copy).
//! 3. Once acknowledged, the old home keeps its copy as a replica of the new
//!    home's or deletes it (`transfer_keeps_copy`); a move not acknowledged
//!    is resent on every outbound pass, and a resend is harmless.
//! 4. The new home shows the certificates (`Wrapsync-Transfers`) in its
//!    pushes, so a node holding a replica homed at the old home follows the
//!    move on the old home's signed word alone.

use super::signing::verify_transfer;
use super::Context;
use crate::audit::{Action, Audit, Outcome, Principal};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::limits::Buckets;
use crate::plans::{Actor, AlsoWrite, PlanEntry, RequestMeta};
use crate::store::consent::{self, Grant};
use crate::store::plans as stored;
use crate::store::transfers::{self, TransferRow, DONE, PENDING};
use std::collections::BTreeMap;
use std::sync::Arc;
use wrapsync_shared::api::grants_digest;
use wrapsync_shared::api::{Handover, HandoverGrant, Transfer};

/// The header a new home's pushes carry: the plan's certificates, oldest
/// first, comma-separated.
pub const CERTIFICATES_HEADER: &str = "wrapsync-transfers";
/// The most certificates a replica holder follows in one push.
const MAX_CHAIN: usize = 16;

fn report(row: &TransferRow, kept: bool) -> Transfer {
    Transfer {
        plan: row.plan_id.clone(),
        from: row.from_node.clone(),
        to: row.to_node.clone(),
        state: row.state.clone(),
        kept,
    }
}

/// Starts moving the plan of `entry` (homed here) to peer `to`, for
/// `actor`; answers once the new home holds it, or with `pending` if it
/// could not be reached (the outbound loop keeps trying).
pub async fn start(
    cx: &Context,
    entry: Arc<PlanEntry>,
    actor: &Actor,
    to: &str,
    meta: RequestMeta,
) -> Result<Transfer, ApiError> {
    if entry.view().home.is_some() {
        return Err(ApiError::Conflict(
            "this plan is homed at another node: it moves from its home".into(),
        ));
    }
    if to == cx.node_id || cx.peers().await?.get(to).is_none() {
        return Err(ApiError::InvalidRequest(format!(
            "`{to}` is not a peer of this node"
        )));
    }
    let grant = {
        let (plan, node) = (entry.id().to_string(), to.to_string());
        cx.blocking(move |conn| consent::find(conn, &plan, &node))
            .await?
    };
    if !grant.is_some_and(|g| g.is_live(now_ms())) {
        return Err(ApiError::Conflict(format!(
            "the family has not consented to share this plan with {to}: record that first (POST /v1/plans/{}/shares)",
            entry.id()
        )));
    }
    cx.plans.qualify_roster(&entry, actor, meta.clone()).await?;
    let now = now_ms() / 1000;
    let certificate = cx
        .federation
        .signer
        .certify_transfer(entry.id(), to, None, now)
        .map_err(ApiError::Internal)?;
    let row = TransferRow {
        plan_id: entry.id().to_string(),
        from_node: cx.node_id.clone(),
        to_node: to.to_string(),
        certificate,
        state: PENDING.into(),
        created_at: now * 1000,
    };
    let audit = Audit::new(actor, Action::PlanTransfer)
        .plan(entry.id())
        .detail(format!("to {to}, started"))
        .at(&meta);
    let recorded = row.clone();
    cx.writer
        .write(move |conn| {
            transfers::record(conn, &recorded)?;
            crate::store::audit::insert_audit(conn, &[audit])
        })
        .await?;
    deliver(cx, &cx.federation.http_client()?, &row).await
}

/// Resends the moves away from this node that the new home has not
/// acknowledged (after a restart, or while it was unreachable).
pub async fn resume(cx: &Context, http: &reqwest::Client) {
    let me = cx.node_id.clone();
    let pending = match cx
        .blocking(move |conn| transfers::pending_from(conn, &me))
        .await
    {
        Ok(pending) => pending,
        Err(e) => return tracing::warn!(%e, "federation: cannot read pending transfers"),
    };
    for row in pending {
        if let Err(e) = deliver(cx, http, &row).await {
            tracing::warn!(plan = %row.plan_id, to = %row.to_node, %e, "federation: transfer refused");
        }
    }
}

/// Sends the handover; on acknowledgement, ends this node's part. A new
/// home that cannot be reached leaves the move pending; one that refuses
/// it ends it (the plan stays here).
async fn deliver(
    cx: &Context,
    http: &reqwest::Client,
    row: &TransferRow,
) -> Result<Transfer, ApiError> {
    let keeps_copy = cx.keeps_copy;
    let Some(entry) = cx.plans.get(&row.plan_id).await? else {
        return Err(ApiError::NotFound);
    };
    let Some(peer) = cx.federation.peers().get(&row.to_node).cloned() else {
        return refused(cx, row, format!("{} is no longer a peer", row.to_node)).await;
    };
    let document = cx.plans.saved(&entry).await?;
    let grants = {
        let (plan, me) = (row.plan_id.clone(), cx.node_id.clone());
        cx.blocking(move |conn| {
            let now = now_ms();
            let mut grants = Vec::new();
            for grant in consent::for_plan(conn, &plan)? {
                if !grant.is_live(now) {
                    continue;
                }
                let by = crate::store::users::user_by_id(conn, &grant.granted_by)?
                    .map(|u| u.username)
                    .unwrap_or_default();
                grants.push(HandoverGrant {
                    node: grant.node_id,
                    scope: grant.scope,
                    granted_by: if by.contains('@') {
                        by
                    } else {
                        format!("{by}@{me}")
                    },
                    expires_at: grant.expires_at,
                });
            }
            Ok(grants)
        })
        .await?
    };
    // Certified again as sent (the same move, at the same time), signing
    // the grants that go with it: the new home believes only those.
    let certificate = cx
        .federation
        .signer
        .certify_transfer(
            &row.plan_id,
            &row.to_node,
            Some(grants_digest(&grants)),
            row.created_at / 1000,
        )
        .map_err(ApiError::Internal)?;
    let handover = Handover {
        document: Some(document),
        grants,
        certificate,
        keeps_copy,
    };
    let mut body = Vec::new();
    ciborium::into_writer(&handover, &mut body).map_err(|e| ApiError::Internal(e.to_string()))?;
    let path = format!("/federation/v1/plans/{}/transfer", row.plan_id);
    let authors = cx.plans.local_authors(&entry).await;
    let authorization = cx
        .federation
        .signer
        .sign(&peer.id, "POST", &path, &body, authors, now_ms() / 1000)
        .map_err(ApiError::Internal)?;
    let sent = http
        .post(format!("{}{path}", peer.url.trim_end_matches('/')))
        .header("authorization", authorization)
        .header("content-type", "application/cbor")
        .body(body)
        .send()
        .await;
    let (status, text) = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (status, text)
        }
        Err(e) => (0, super::describe(&e)),
    };
    match status {
        200 => {}
        400..=499 => return refused(cx, row, format!("{status}: {text}")).await,
        _ => {
            tracing::warn!(plan = %row.plan_id, to = %row.to_node, %status, %text, "federation: transfer not acknowledged yet");
            return Ok(report(row, keeps_copy));
        }
    }
    let done = TransferRow {
        state: DONE.into(),
        ..row.clone()
    };
    let (plan, at) = (row.plan_id.clone(), row.created_at);
    let also: AlsoWrite = Box::new(move |conn| {
        transfers::set_state(conn, &plan, at, DONE)?;
        // The consents moved with the plan: the new home honors them now.
        consent::end_all(conn, &plan, now_ms())
    });
    let detail = if keeps_copy {
        "kept as a replica"
    } else {
        "copy deleted"
    };
    let audit = Audit::new(Principal::peer(&row.to_node), Action::PlanTransfer)
        .plan(&row.plan_id)
        .detail(format!("now homed at {}; {detail}", row.to_node))
        .at(&RequestMeta::default());
    if keeps_copy {
        cx.plans
            .rehome(&entry, Some(row.to_node.clone()), audit, also)
            .await?;
    } else {
        cx.plans.forget(&row.plan_id, audit, also).await?;
    }
    Ok(report(&done, keeps_copy))
}

async fn refused(cx: &Context, row: &TransferRow, why: String) -> Result<Transfer, ApiError> {
    let (plan, at) = (row.plan_id.clone(), row.created_at);
    let audit = Audit::new(Principal::peer(&row.to_node), Action::PlanTransfer)
        .plan(&row.plan_id)
        .outcome(Outcome::Refused)
        .detail(why.clone())
        .at(&RequestMeta::default());
    cx.writer
        .write(move |conn| {
            transfers::set_state(conn, &plan, at, "refused")?;
            crate::store::audit::insert_audit(conn, &[audit])
        })
        .await?;
    Err(ApiError::TransferRefused(why))
}

/// At the new home: takes the plan `from` hands over, if its certificate
/// moves this plan from the sender to this node and the sender is the
/// plan's home as far as this node knows: it holds the plan as `from`'s
/// replica, or does not hold it and the certificate signs the family's
/// consent to share it with this node (a grant to this node among the
/// grants whose digest it signs). Answers the plan's heads here.
///
/// Of the grants to third nodes, only those the certificate signs, given
/// by someone named `name@node` (never a plain name, which would be a user
/// of this node, nor one of this node's own users, whose grants this node
/// would have recorded itself), to a peer of this node, and still live are
/// kept; the rest are dropped and the audit row says how many.
pub async fn receive(
    cx: &Context,
    plan: &str,
    from: &str,
    authors: &BTreeMap<String, String>,
    handover: Handover,
    meta: &RequestMeta,
    new_plans: Option<&Buckets>,
) -> Result<Vec<String>, ApiError> {
    let me = cx.node_id.clone();
    let moved = verify_transfer(&handover.certificate, &cx.federation.peers(), plan)
        .map_err(|e| ApiError::InvalidRequest(format!("the transfer certificate: {e}")))?;
    if moved.from != from || moved.to != me {
        return Err(ApiError::InvalidRequest(
            "the certificate does not move this plan from the sender to this node".into(),
        ));
    }
    // The grants are the old home's word only if its certificate signs
    // them; grants that do not match what it signed are a forgery.
    let signed_grants = match &moved.grants {
        Some(digest) if *digest == grants_digest(&handover.grants) => true,
        Some(_) => {
            return Err(ApiError::InvalidRequest(
                "the grants differ from those the certificate signs".into(),
            ))
        }
        // A release before issue 22 signs no grants.
        None => false,
    };
    let now = now_ms();
    let live = |g: &HandoverGrant| g.expires_at.is_none_or(|at| at > now);
    let own_user = |by: &str| {
        by.rsplit_once('@')
            .is_none_or(|(name, node)| name.is_empty() || node == me)
    };
    let to_here = handover
        .grants
        .iter()
        .find(|g| g.node == me && live(g) && !own_user(&g.granted_by))
        .cloned();
    let at = moved.at * 1000;
    let (id, sender) = (plan.to_string(), from.to_string());
    let (home, known) = cx
        .blocking(move |conn| {
            let home = stored::plan_home(conn, &id)?;
            let known = transfers::for_plan(conn, &id)?
                .iter()
                .any(|t| t.created_at == at && t.from_node == sender);
            Ok((home, known))
        })
        .await?;
    let held = home.as_ref().map(|h| h.as_deref());
    match judge_handover(held, from, known, signed_grants && to_here.is_some()) {
        HandoverVerdict::Take => {}
        // Within the sender's budget of new plans here.
        HandoverVerdict::TakeNew => new_plan_admitted(new_plans, from)?,
        HandoverVerdict::NoConsent => {
            return Err(ApiError::Forbidden(
                "this node holds no replica of this plan, and the certificate signs no consent of the family to share it with this node".into(),
            ))
        }
        HandoverVerdict::Conflict => {
            return Err(ApiError::Conflict(
                "this node holds this plan under another home".into(),
            ))
        }
    }
    let document = handover
        .document
        .ok_or_else(|| ApiError::InvalidRequest("the handover has no document".into()))?;
    let peers = cx.federation.peers();
    let offered = handover.grants.len();
    let mut grants: Vec<HandoverGrant> = if signed_grants {
        handover
            .grants
            .into_iter()
            .filter(|g| {
                g.node != me
                    && g.node != from
                    && peers.get(&g.node).is_some()
                    && live(g)
                    && !own_user(&g.granted_by)
            })
            .collect()
    } else {
        Vec::new()
    };
    let dropped = offered.saturating_sub(grants.len() + usize::from(to_here.is_some()));
    // The consent that let the plan come here also lets the old home keep
    // its copy in sync, until the same expiry: it gives the old home
    // nothing it did not hold.
    if handover.keeps_copy {
        if let Some(consent) = to_here {
            grants.push(HandoverGrant {
                node: from.to_string(),
                ..consent
            });
        }
    }
    let believed: Vec<String> = grants
        .iter()
        .map(|g| format!("{} (by {})", g.node, g.granted_by))
        .collect();
    let row = TransferRow {
        plan_id: plan.to_string(),
        from_node: from.to_string(),
        to_node: me,
        certificate: handover.certificate,
        state: DONE.into(),
        created_at: at,
    };
    let also: AlsoWrite = Box::new(move |conn| {
        transfers::record(conn, &row)?;
        let now = now_ms();
        for g in grants {
            let granted_by = crate::store::users::remote_user(conn, &g.granted_by, now)?;
            consent::grant(
                conn,
                &Grant {
                    plan_id: row.plan_id.clone(),
                    node_id: g.node,
                    scope: g.scope,
                    granted_by,
                    granted_at: now,
                    expires_at: g.expires_at,
                    revoked_by: None,
                    revoked_at: None,
                },
            )?;
        }
        Ok(())
    });
    let mut detail = format!("homed here now, moved from {from}");
    if !believed.is_empty() {
        detail.push_str(&format!("; shared with {}", believed.join(", ")));
    }
    if dropped > 0 {
        detail.push_str(&format!(
            "; {dropped} grant(s) not kept (not signed by {from}, by a plain name or a user of this node, to no peer of this node, or ended)"
        ));
    }
    let audit = Audit::new(Principal::peer(from), Action::PeerTransfer)
        .plan(plan)
        .detail(detail)
        .at(meta);
    let view = cx
        .plans
        .take_over(plan, from, authors, &document, audit, also)
        .await?;
    Ok(view.version.clone())
}

/// What a node does with a handover of a plan from `from` (its
/// certificate checked), given what it holds of the plan (`held`: `None`
/// never held, `Some(None)` homed here, `Some(Some(h))` a replica homed at
/// `h`), whether it already took this very move (`resend`), and whether the
/// certificate signs the family's consent to this node (`consent_here`).
/// One rule for the node and the seeded simulation's rogue peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverVerdict {
    /// The sender is the plan's home here: merged and homed here.
    Take,
    /// Never held here, on the home's signed consent: a new plan here
    /// (charged to the sender's budget).
    TakeNew,
    /// Never held here, and no signed consent to this node: `403`.
    NoConsent,
    /// Homed here or at another node: `409`.
    Conflict,
}

pub fn judge_handover(
    held: Option<Option<&str>>,
    from: &str,
    resend: bool,
    consent_here: bool,
) -> HandoverVerdict {
    match held {
        None if consent_here => HandoverVerdict::TakeNew,
        None => HandoverVerdict::NoConsent,
        Some(Some(home)) if home == from => HandoverVerdict::Take,
        // A resend of a move already taken: merged again, answered again.
        Some(None) if resend => HandoverVerdict::Take,
        Some(_) => HandoverVerdict::Conflict,
    }
}

/// Takes one of `peer`'s new plans here from its budget
/// (`rate_limit_peer_new_plans`): `429` when it is spent.
pub fn new_plan_admitted(budget: Option<&Buckets>, peer: &str) -> Result<(), ApiError> {
    crate::limits::admit(budget, peer)
}

/// Gives back a token [`new_plan_admitted`] took for a round that made no
/// plan after all.
pub fn new_plan_unused(budget: Option<&Buckets>, peer: &str) {
    if let Some(budget) = budget {
        budget.give_back(peer, std::time::Instant::now());
    }
}

/// At a node holding a replica homed at `known`: whether `sender`'s
/// certificates (the header's value) lead from `known` to `sender`, each
/// signed by the home it moves the plan from; if so the replica is homed at
/// `sender` from now on.
pub async fn follow(
    cx: &Context,
    entry: &PlanEntry,
    known: &str,
    sender: &str,
    certificates: &str,
    meta: &RequestMeta,
) -> Result<bool, ApiError> {
    let peers = cx.federation.peers();
    let mut home = known.to_string();
    let mut chain = Vec::new();
    for certificate in certificates
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .take(MAX_CHAIN)
    {
        let Ok(moved) = verify_transfer(certificate, &peers, entry.id()) else {
            continue;
        };
        if moved.from == home {
            home = moved.to.clone();
            chain.push(TransferRow {
                plan_id: entry.id().to_string(),
                from_node: moved.from,
                to_node: moved.to,
                certificate: certificate.to_string(),
                state: DONE.into(),
                created_at: moved.at * 1000,
            });
        }
    }
    if home != sender {
        return Ok(false);
    }
    let audit = Audit::new(Principal::peer(sender), Action::PeerRehome)
        .plan(entry.id())
        .detail(format!("moved from {known} to {sender}"))
        .at(meta);
    let also: AlsoWrite = Box::new(move |conn| {
        for row in &chain {
            transfers::record(conn, row)?;
        }
        Ok(())
    });
    cx.plans
        .rehome(entry, Some(sender.to_string()), audit, also)
        .await?;
    Ok(true)
}

/// The certificates of the moves of a plan, for the header of a push.
pub async fn certificates(cx: &Context, plan: &str) -> Result<Option<String>, ApiError> {
    let plan = plan.to_string();
    let rows = cx
        .blocking(move |conn| transfers::for_plan(conn, &plan))
        .await?;
    let done: Vec<&str> = rows
        .iter()
        .filter(|r| r.state == DONE)
        .map(|r| r.certificate.as_str())
        .collect();
    Ok((!done.is_empty()).then(|| done.join(",")))
}

/// This node's signed word that the family consented to share `plan`
/// (homed here) with `peer`, for the pushes that may make the peer's
/// replica; `None` without a live grant.
pub async fn consent_statement(
    cx: &Context,
    plan: &str,
    peer: &str,
) -> Result<Option<String>, ApiError> {
    let (plan_id, node, me) = (plan.to_string(), peer.to_string(), cx.node_id.clone());
    let found = cx
        .blocking(move |conn| {
            let Some(grant) = consent::find(conn, &plan_id, &node)? else {
                return Ok(None);
            };
            if !grant.is_live(now_ms()) {
                return Ok(None);
            }
            let by = crate::store::users::user_by_id(conn, &grant.granted_by)?
                .map(|u| u.username)
                .unwrap_or_default();
            let by = if by.contains('@') {
                by
            } else {
                format!("{by}@{me}")
            };
            Ok(Some((by, grant.expires_at)))
        })
        .await?;
    let Some((by, expires_at)) = found else {
        return Ok(None);
    };
    cx.federation
        .signer
        .certify_consent(
            plan,
            peer,
            &by,
            expires_at.map(|ms| ms / 1000),
            now_ms() / 1000,
        )
        .map(Some)
        .map_err(ApiError::Internal)
}

/// Whether this node gave the plan away and kept no copy (so a push about
/// it must not make a new replica).
pub async fn given_away(cx: &Context, plan: &str) -> Result<bool, ApiError> {
    let (plan, me) = (plan.to_string(), cx.node_id.clone());
    Ok(cx
        .blocking(move |conn| transfers::for_plan(conn, &plan))
        .await?
        .iter()
        .any(|t| t.from_node == me && t.state == DONE))
}
