//! A peer's round on one plan, as this node decides it: which plans a
//! peer may sync (a plan homed here only with the family's live consent to
//! share it with that peer; a replica of the peer's own plan, or of one that
//! moved to it; a new plan only with its home's signed consent naming this
//! node and within the peer's budget of new plans), refused exactly as a
//! plan that does not exist. The handler (`api::federation`) parses the
//! request, audits the tally of refusals once and replies.

use super::{signing, transfer, Context};
use crate::audit::{Action, Audit, Principal};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::limits::Buckets;
use crate::plans::RequestMeta;
use crate::store::consent;
use crate::store::plans as stored_plans;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What one request's rounds refused that is audited once per request,
/// however many plans it named: a batch of 500 plans this node does not
/// hold (or does not share with the sender) is one row, not 500.
#[derive(Default)]
pub struct Refused {
    /// New plans past the sender's budget (`rate_limit_peer_new_plans`).
    over_budget: AtomicUsize,
    /// Plans answered `404`, with the first few ids.
    not_found: Mutex<(usize, Vec<String>)>,
}

/// Plan ids a tally names (the rest are counted).
const NAMED_IN_TALLY: usize = 3;

/// The refusals of one request, taken for its audit rows.
pub struct Tally {
    /// New plans refused over `rate_limit_peer_new_plans`.
    pub over_budget: usize,
    /// Plans answered `404`.
    pub not_found: usize,
    /// The first few of those plans' ids.
    pub named: Vec<String>,
}

impl Refused {
    fn not_found(&self, plan: &str) -> ApiError {
        let mut tally = self.not_found.lock();
        tally.0 += 1;
        if tally.1.len() < NAMED_IN_TALLY {
            tally.1.push(plan.to_string());
        }
        ApiError::NotFound
    }

    fn over_budget(&self) {
        self.over_budget.fetch_add(1, Ordering::Relaxed);
    }

    /// What was refused so far (the plans not found are taken, once).
    pub fn tally(&self) -> Tally {
        let (not_found, named) = std::mem::take(&mut *self.not_found.lock());
        Tally {
            over_budget: self.over_budget.load(Ordering::Relaxed),
            not_found,
            named,
        }
    }
}

/// One plan's round as a peer sent it.
pub struct Round<'a> {
    pub peer: &'a str,
    pub plan: &'a str,
    pub authors: &'a BTreeMap<String, String>,
    pub message: Option<&'a [u8]>,
    pub certificates: Option<&'a str>,
    /// Refusals audited once per request by the caller.
    pub refused: &'a Refused,
}

/// One Automerge sync round with a peer node: for a plan homed here that
/// the family consented to share with it (else `404`, exactly as for a plan
/// that does not exist), or for a plan homed at that peer, which this node
/// keeps a replica of (made on the first changes the home sends). Refusals
/// are audited.
pub async fn round(
    cx: &Context,
    new_plans: Option<&Buckets>,
    round: Round<'_>,
    meta: &RequestMeta,
) -> Result<Option<Vec<u8>>, ApiError> {
    let Round {
        peer,
        plan: id,
        authors,
        message,
        certificates,
        refused,
    } = round;
    let audited = |e: ApiError| {
        cx.plans.audit(
            Audit::new(Principal::peer(peer), Action::PeerSync)
                .plan(id)
                .refused(&e)
                .at(meta),
        );
        e
    };
    let home = {
        let plan = id.to_string();
        cx.blocking(move |conn| stored_plans::plan_home(conn, &plan))
            .await?
    };
    match home {
        // Homed here: the peer gets it only with the family's consent.
        Some(None) => {
            let grant = {
                let (plan, node) = (id.to_string(), peer.to_string());
                cx.blocking(move |conn| consent::find(conn, &plan, &node))
                    .await?
            };
            let entry = match grant.filter(|g| g.is_live(now_ms())) {
                Some(_) => cx.plans.get(id).await?,
                None => None,
            };
            let Some(entry) = entry else {
                return Err(refused.not_found(id));
            };
            cx.plans
                .sync_peer(&entry, peer, authors, message, meta.clone())
                .await
                .map_err(audited)
        }
        // A replica of the peer's own plan, or one it now shares with us;
        // or of a plan that moved to the peer, if its certificates say so.
        Some(Some(home)) => {
            let entry = cx.plans.get(id).await?.ok_or(ApiError::NotFound)?;
            let followed = match certificates {
                Some(certificates) if home != peer => {
                    transfer::follow(cx, &entry, &home, peer, certificates, meta).await?
                }
                _ => false,
            };
            if home != peer && !followed {
                return Err(refused.not_found(id));
            }
            cx.plans
                .sync_from_home(Some(&entry), id, peer, authors, message, meta.clone())
                .await
                .map_err(audited)
        }
        // A plan this node never held: a replica only of a plan the sender
        // homes (it is made homed at the sender) and shares with this node
        // (its signed consent statement names this node), within the
        // sender's budget of new plans, all before the message is decoded.
        // A plan this node gave away is not made again from a replica
        // holder's push.
        None if wrapsync_shared::plan::is_item_id(id) && !transfer::given_away(cx, id).await? => {
            let me = &cx.node_id;
            let now = now_ms() / 1000;
            let peers = cx.federation.peers();
            let consent = certificates.and_then(|statements| {
                signing::find_consent(statements, &peers, id, peer, me, now)
            });
            if consent.is_none() {
                return Err(refused.not_found(id));
            }
            if let Err(e) = transfer::new_plan_admitted(new_plans, peer) {
                refused.over_budget();
                return Err(e);
            }
            let answer = cx
                .plans
                .sync_from_home(None, id, peer, authors, message, meta.clone())
                .await
                .map_err(audited);
            // Only a round that made the plan spends the budget (a first
            // round carries no changes yet).
            let made = {
                let plan = id.to_string();
                cx.blocking(move |conn| stored_plans::plan_home(conn, &plan))
                    .await
                    .map(|home| home.is_some())
                    .unwrap_or(true)
            };
            if !made {
                transfer::new_plan_unused(new_plans, peer);
            }
            answer
        }
        None => Err(refused.not_found(id)),
    }
}
