//! `/federation/v1`: what other nodes call. The identity is public; every
//! other route is signed by a peer (see `federation::signing`).

use super::extract::{
    check_headers, check_length, declared_length, read_stream, request_meta, BodyRules,
};
use crate::app::App;
use crate::audit::{Action, Audit, Outcome, Principal};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::federation::inbound::{self, Refused, Round, Tally};
use crate::federation::signing::Rotation;
use crate::federation::{transfer, SignedBy, SignedRequestError};
use crate::limits::retry_after_secs;
use crate::openapi::problems::INTERNAL;
use crate::plans::RequestMeta;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;
use wrapsync_shared::api::{
    Handover, HandoverReceipt, NodeIdentity, PeerSyncBatch, SyncBatchReply, SyncBatchResult,
    MAX_SYNC_BATCH,
};

/// This node's id and public key, for operators configuring it as a peer;
/// after a rotation, within its grace period, the old key's statement
/// vouching for the new one (`rotation`, else null); the plan schema
/// versions it knows (`plan_schema_versions`).
#[utoipa::path(
    get,
    path = "/federation/v1/identity",
    operation_id = "node_identity",
    tag = "federation",
    responses((status = 200, description = "This node's id and key.", body = NodeIdentity))
)]
pub async fn identity(app: web::Data<App>) -> HttpResponse {
    let identity = app.federation.signer.identity();
    HttpResponse::Ok().json(NodeIdentity {
        node_id: app.config.node_id.clone(),
        public_key: identity.key.public_key().to_string(),
        rotation: identity.statement(now_ms() / 1000).map(str::to_string),
        algorithm: "EdDSA".into(),
        curve: "Ed25519".into(),
        plan_schema_versions: super::schema::plan_schema_versions(),
    })
}

/// One Automerge sync round with a peer node (see [`peer_round`]).
#[utoipa::path(
    post,
    path = "/federation/v1/plans/{id}/sync",
    operation_id = "peer_sync_plan",
    tag = "federation",
    security(("signed_request" = [])),
    params(
        ("id" = String, Path, description = "The plan's id."),
        ("Wrapsync-Transfers" = Option<String>, Header, description = "For a plan that moved to the sender: the chain of transfer certificates."),
    ),
    request_body(
        description = "The sender's Automerge sync message (an empty body: no message). The signature's `act` names the authors of its changes.",
        content(("application/octet-stream"))
    ),
    responses(
        (status = 200, description = "This node's next message.", content(("application/octet-stream"))),
        (status = 204, description = "This node has nothing to say."),
        (status = 400, description = "`malformed-sync-message`: not an Automerge sync message; `invalid-request`: unreadable transfer certificates."),
        (status = 404, description = "`not-found`: no such plan, or one the family has not (or no longer) consented to share with the sender, or homed at a third node (the same answer)."),
        (status = 413, description = "`document-too-large`: the message's changes decode to more than `max_document_bytes`; `message-too-large`: they declare more than `max_peer_sync_ops` operations; `sync-state-too-large`: its Bloom filter, heads or needs describe more changes than the plan's size calls for; `plan-quota`: they would grow the plan past `plan_quota_bytes` (refused whole; the sender parks the plan instead of retrying)."),
        (status = 422, description = "`change-forbidden`, `schema-violation`, `unsupported-op`: changes refused whole (an author's role, the schema, an actor bound to someone else or to a person of this node, or an author the home may not vouch for); `home-authority`: a peer's members changing the roster or the consent record of a plan homed here."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn plan_sync(
    app: web::Data<App>,
    req: HttpRequest,
    id: web::Path<String>,
    request: PeerRequest,
) -> Result<HttpResponse, ApiError> {
    let PeerRequest { signed, body, meta } = request;
    let SignedBy { peer, authors, .. } = signed;
    let message = (!body.is_empty()).then_some(body.as_slice());
    let certificates = req
        .headers()
        .get(transfer::CERTIFICATES_HEADER)
        .and_then(|v| v.to_str().ok());
    let refused = Refused::default();
    let round = Round {
        peer: &peer,
        plan: &id,
        authors: &authors,
        message,
        certificates,
        refused: &refused,
    };
    let answer = inbound::round(
        &app.federated(),
        app.limits.peer_new_plans.as_ref(),
        round,
        &meta,
    )
    .await;
    audit_refused(&app, &refused, &peer, &meta);
    Ok(match answer? {
        Some(reply) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(reply),
        None => HttpResponse::NoContent().finish(),
    })
}

/// One round for many shared plans (`PeerSyncBatch`, CBOR): a partition
/// heals with a thousand plans to exchange in a few requests, not two
/// thousand. Each plan's round is run and audited as if it came alone; one
/// plan's refusal is reported in its entry.
#[utoipa::path(
    post,
    path = "/federation/v1/sync",
    operation_id = "peer_sync_plans",
    tag = "federation",
    security(("signed_request" = [])),
    request_body(
        description = "At most 500 plans, each a round as `POST /federation/v1/plans/{id}/sync` takes it.",
        content((PeerSyncBatch = "application/cbor"))
    ),
    responses(
        (status = 200, description = "One entry per plan, in the order asked, without changes (a batch round is a push); a plan's refusal is the `problem` of its entry.",
            content((SyncBatchReply = "application/cbor"))),
        (status = 400, description = "`invalid-request`: not a CBOR peer sync batch, more than 500 plans, or a plan listed twice."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn sync_batch(
    app: web::Data<App>,
    request: PeerRequest,
) -> Result<HttpResponse, ApiError> {
    let PeerRequest { signed, body, meta } = request;
    let SignedBy { peer, .. } = signed;
    let len = body.len();
    let parse = move || {
        ciborium::from_reader::<PeerSyncBatch, _>(&body[..]).map_err(|e| {
            tracing::debug!(error = %e, "unreadable peer sync batch");
            ApiError::InvalidRequest("not a CBOR peer sync batch".into())
        })
    };
    let batch = crate::blocking::read_large(len, parse)
        .await
        .unwrap_or_else(|| {
            Err(ApiError::InvalidRequest(
                "not a CBOR peer sync batch".into(),
            ))
        })?;
    if batch.plans.len() > MAX_SYNC_BATCH {
        return Err(ApiError::InvalidRequest(format!(
            "at most {MAX_SYNC_BATCH} plans per request"
        )));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = batch.plans.iter().find(|item| !seen.insert(&item.plan)) {
        return Err(ApiError::InvalidRequest(format!(
            "plan {} appears twice",
            twice.plan
        )));
    }
    let refused = Refused::default();
    // What the messages declare, added up from their headers before any
    // round runs: past `max_peer_batch_ops`, the rest wait for the next.
    let admission = app
        .plans
        .peer_batch_admission(batch.plans.iter().map(|item| item.message.as_deref()))
        .await;
    let cx = app.federated();
    let new_plans = app.limits.peer_new_plans.as_ref();
    let (app, cx, peer, meta, tally) = (&app, &cx, &peer, &meta, &refused);
    // Many at once: each round that stores changes commits durably, and
    // the writer commits concurrent rounds together.
    let plans: Vec<SyncBatchResult> = futures_util::stream::iter(batch.plans.iter().zip(admission))
        .map(|(item, admitted)| async move {
            let round = Round {
                peer,
                plan: &item.plan,
                authors: &item.authors,
                message: item.message.as_deref(),
                certificates: item.transfers.as_deref(),
                refused: tally,
            };
            let outcome = match admitted {
                Ok(()) => inbound::round(cx, new_plans, round, meta).await,
                Err(e) => {
                    app.plans.audit(
                        Audit::new(Principal::peer(peer), Action::PeerSync)
                            .plan(&item.plan)
                            .outcome(Outcome::of(e.problem_type()))
                            .detail("past max_peer_batch_ops in this batch")
                            .at(meta),
                    );
                    Err(e)
                }
            };
            let (message, problem) = match outcome {
                Ok(message) => (without_changes(message), None),
                Err(e) => (None, Some(e.problem())),
            };
            SyncBatchResult {
                plan: item.plan.clone(),
                message,
                changes: None,
                heads: None,
                problem,
            }
        })
        .buffered(BATCH_CONCURRENCY)
        .collect()
        .await;
    audit_refused(app, tally, peer, meta);
    let mut reply = Vec::new();
    ciborium::into_writer(&SyncBatchReply { plans }, &mut reply)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/cbor")
        .body(reply))
}

/// A batch round is a push: the sender takes changes only from requests
/// their sender signed, so the reply's changes would be ignored; they are
/// left out (half the bytes, and the sender's decoding of them).
fn without_changes(reply: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let bytes = reply?;
    match automerge::sync::Message::decode(&bytes) {
        Ok(mut message) if !message.changes.is_empty() => {
            message.changes = automerge::sync::ChunkList::empty();
            Some(message.encode())
        }
        _ => Some(bytes),
    }
}

/// The audit rows of what one request's rounds refused (`inbound::Refused`):
/// one per kind, however many plans it named.
fn audit_refused(app: &App, refused: &Refused, peer: &str, meta: &RequestMeta) {
    let Tally {
        over_budget,
        not_found: count,
        named,
    } = refused.tally();
    if over_budget > 0 {
        app.plans.audit(
            Audit::new(Principal::peer(peer), Action::PeerReplicate)
                .outcome(Outcome::RateLimited)
                .detail(format!(
                    "{over_budget} new plan(s) refused: over rate_limit_peer_new_plans"
                ))
                .at(meta),
        );
    }
    let error = ApiError::NotFound;
    match named.as_slice() {
        [] => {}
        // One plan: its row, as any refusal's.
        [plan] if count == 1 => app.plans.audit(
            Audit::new(Principal::peer(peer), Action::PeerSync)
                .plan(plan)
                .refused(&error)
                .at(meta),
        ),
        _ => app.plans.audit(
            Audit::new(Principal::peer(peer), Action::PeerSync)
                .outcome(Outcome::of(error.problem_type()))
                .detail(format!(
                    "{count} plans not held here or not shared with {peer} (first: {})",
                    named.join(", ")
                ))
                .at(meta),
        ),
    }
}

/// Plans of one batch whose rounds run at once.
const BATCH_CONCURRENCY: usize = 32;

/// A plan moving its home here: the old home's signed handover (CBOR, see
/// `federation::transfer`). Answers the plan's heads here.
#[utoipa::path(
    post,
    path = "/federation/v1/plans/{id}/transfer",
    operation_id = "receive_plan",
    tag = "federation",
    security(("signed_request" = [])),
    params(("id" = String, Path, description = "The plan's id.")),
    request_body(description = "The old home's handover.", content((Handover = "application/cbor"))),
    responses(
        (status = 200, description = "The plan's heads at its new home.", body = HandoverReceipt),
        (status = 400, description = "`invalid-request`: not a CBOR handover, a certificate that does not move this plan from the sender to this node, or no document; `malformed-document`: not a saved Automerge document."),
        (status = 409, description = "`conflict`: this node holds the plan under another home."),
        (status = 413, description = "`document-too-large`: the document decodes to more than `max_document_bytes`; `plan-quota`: the plan is larger than `plan_quota_bytes`."),
        (status = 422, description = "`change-forbidden`, `schema-violation`, `unsupported-op`: a document the plan's rules refuse."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn plan_transfer(
    app: web::Data<App>,
    id: web::Path<String>,
    request: PeerRequest,
) -> Result<HttpResponse, ApiError> {
    let PeerRequest { signed, body, meta } = request;
    let SignedBy { peer, authors, .. } = signed;
    let audited = |e: ApiError| {
        app.plans.audit(
            Audit::new(Principal::peer(&peer), Action::PeerTransfer)
                .plan(&id)
                .refused(&e)
                .at(&meta),
        );
        e
    };
    let handover: Handover = ciborium::from_reader(&body[..]).map_err(|e| {
        tracing::debug!(error = %e, "unreadable handover");
        audited(ApiError::InvalidRequest("not a CBOR handover".into()))
    })?;
    let new_plans = app.limits.peer_new_plans.as_ref();
    let heads = transfer::receive(
        &app.federated(),
        &id,
        &peer,
        &authors,
        handover,
        &meta,
        new_plans,
    )
    .await
    .map_err(audited)?;
    Ok(HttpResponse::Ok().json(HandoverReceipt {
        plan: id.into_inner(),
        version: heads,
    }))
}

/// Keeps the key `peer` rotated to (its old key's statement verified):
/// in force at once, stored, audited once however many requests carry it.
fn accept_rotation(app: &App, peer: &str, rotation: &Rotation, meta: &RequestMeta) {
    let audit = |outcome: Outcome, detail: String| {
        app.plans.audit(
            Audit::new(Principal::peer(peer), Action::PeerKeyRotation)
                .outcome(outcome)
                .detail(detail)
                .at(meta),
        );
    };
    match app
        .federation
        .accept_rotation(peer, rotation, now_ms() / 1000)
    {
        Ok(None) => {}
        Ok(Some(row)) => {
            tracing::info!(%peer, new_key = %row.public_key, old_key_until = row.previous_until,
                "peer key rotated");
            audit(
                Outcome::Accepted,
                format!(
                    "key {} replaces {}, accepted until {}",
                    row.public_key, row.previous_key, row.previous_until
                ),
            );
            app.writer
                .write_detached(move |conn| crate::store::peers::put_rotation(conn, &row));
        }
        Err(e) => audit(Outcome::Error, e),
    }
}

/// A peer's signed request, authenticated before its body is read: the
/// signature covers the body, but everything else it binds is in the
/// headers, so an unsigned, unknown, forged, stale or replayed request is
/// refused (`401`) without waiting for a byte of its body, and a peer over
/// its request rate or byte budget (`rate_limit_peer_bytes`, on the
/// declared length) is refused (`429`) before its body is read. Then the
/// body is read under the node's [`BodyRules`] and must be what was signed.
pub struct PeerRequest {
    pub signed: SignedBy,
    pub body: Vec<u8>,
    pub meta: RequestMeta,
}

impl FromRequest for PeerRequest {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move { peer_request(&req, payload).await })
    }
}

async fn peer_request(req: &HttpRequest, payload: Payload) -> Result<PeerRequest, ApiError> {
    let app = req
        .app_data::<web::Data<App>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("no app state".into()))?;
    let meta = request_meta(req);
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_string(), |p| p.as_str().to_string());
    let peers = app.peers().await?;
    let verifier = &app.federation.verifier;
    let headers = verifier
        .verify_headers(
            authorization,
            &peers,
            req.method().as_str(),
            &path,
            now_ms() / 1000,
        )
        .map_err(|e| unverified(&app, e, &meta))?;
    let peer = headers.peer().to_string();
    // From here a refusal names the peer (`refusals::audit`).
    req.extensions_mut().insert(Principal::peer(&peer));
    if let Err(e) = crate::limits::admit(app.limits.per_peer.as_ref(), &peer) {
        app.plans.audit(
            Audit::new(Principal::peer(&peer), Action::PeerRequest)
                .refused(&e)
                .at(&meta),
        );
        return Err(e);
    }
    check_headers(req, &["application/octet-stream", "application/cbor"])?;
    let rules = BodyRules::node(&app, app.config.max_sync_bytes);
    let declared = declared_length(req);
    check_length(declared, rules.limit)?;
    let take = |bytes: usize| match app.limits.peer_bytes.as_ref() {
        None => Ok(()),
        Some(budget) => budget
            .take_n(&peer, bytes as f64, Instant::now())
            .map_err(|wait| ApiError::RateLimited(retry_after_secs(wait))),
    };
    if let Some(bytes) = declared {
        take(bytes)?;
    }
    let body = read_stream(payload, declared, &rules, take).await?;
    let signed = headers
        .verify_body(verifier, &body, now_ms() / 1000)
        .map_err(|e| unverified(&app, e, &meta))?;
    if let Some(rotation) = &signed.rotation {
        accept_rotation(&app, &signed.peer, rotation, &meta);
    }
    if app.federation.outbound.heard_from(&signed.peer) {
        app.plans.notify_changed();
    }
    Ok(PeerRequest {
        signed,
        body: body.to_vec(),
        meta,
    })
}

/// `401` for a request whose signature did not check out (audited).
fn unverified(app: &App, e: SignedRequestError, meta: &RequestMeta) -> ApiError {
    let action = match e {
        SignedRequestError::RotationRefused(_) => Action::PeerKeyRotation,
        _ => Action::PeerRequest,
    };
    app.plans.audit(
        Audit::new(Principal::peer("unverified"), action)
            .outcome(Outcome::Denied)
            .detail(e.to_string())
            .at(meta),
    );
    match e {
        // A peer with as many requests in force as this node remembers ids
        // for: it is who it says, and may retry once some expire.
        SignedRequestError::TooManyPending => {
            ApiError::RateLimited(crate::federation::signing::CLOCK_SKEW_SECS as u64)
        }
        e => ApiError::Unauthorized(e.to_string()),
    }
}
