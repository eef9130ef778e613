//! What every document shares: the security schemes, and the errors. A
//! handler lists the errors it answers itself (status and problem types);
//! this adds what the extractors answer for every route of a kind (and the
//! plan schema and the storage retry for every route storing plan changes),
//! and makes every error response an `application/problem+json` [`Problem`].
//!
//! [`Problem`]: wrapsync_shared::api::Problem

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Ref, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, ObjectBuilder, OpenApi, RefOr, Response};
use utoipa::Modify;

/// A person's access token (`POST /v1/auth/login`).
pub const BEARER: &str = "bearer";
/// A node's signed request (`federation::signing`).
pub const SIGNED_REQUEST: &str = "signed_request";

const SIGNED_REQUEST_DESCRIPTION: &str = "A request signed by an enrolled node: \
    `Authorization: Bearer <JWT>`, an EdDSA (Ed25519) JWT of at most 5 minutes whose `iss` \
    and `kid` name the sending node, `aud` the receiving node or hub, `htm` the method, \
    `htu` the path and query, `bdy` the base64url SHA-256 of the exact body, with a \
    one-time `jti`; `act` maps the Automerge actors of the changes carried to the \
    sender's usernames. Anything else, or a replay, is `401 unauthorized`.";

/// The node's document: people's routes are rate-limited per user, and
/// peers' per peer.
pub struct NodeProblems;

/// The hub's document: signed submissions are not rate-limited.
pub struct HubProblems;

impl Modify for NodeProblems {
    fn modify(&self, openapi: &mut OpenApi) {
        add(openapi, true);
    }
}

impl Modify for HubProblems {
    fn modify(&self, openapi: &mut OpenApi) {
        add(openapi, false);
    }
}

fn add(openapi: &mut OpenApi, peers_rate_limited: bool) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "The access token from `POST /v1/auth/login` or `/v1/auth/refresh`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        SIGNED_REQUEST,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("EdDSA JWT")
                .description(Some(SIGNED_REQUEST_DESCRIPTION))
                .build(),
        ),
    );
    for item in openapi.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            add_to_operation(operation, peers_rate_limited);
        }
    }
}

/// The extractors' errors for `operation`, then problem bodies for all.
fn add_to_operation(operation: &mut Operation, peers_rate_limited: bool) {
    let schemes: Vec<String> = operation
        .security
        .iter()
        .flatten()
        .filter_map(|requirement| serde_json::to_value(requirement).ok())
        .filter_map(|value| {
            value
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
        })
        .flatten()
        .collect();
    let person = schemes.iter().any(|s| s == BEARER);
    let peer = schemes.iter().any(|s| s == SIGNED_REQUEST);
    // Only bodies are `busy`, which says when to retry; `not-ready` does not.
    let body = operation.request_body.is_some();
    let mut common = Vec::new();
    if stores_plan_changes(operation) {
        common.push(("422", PLAN_TEXT_AND_PHONES));
        common.push(("503", CONTENDED));
    }
    if person {
        common.push(("401", "`unauthorized`: no bearer token, or one that is malformed, expired, forged or for another node, or whose session has ended (a reused refresh token, a disabled user)."));
        common.push((
            "429",
            "`rate-limited`: over the caller's rate limit; `Retry-After` says when to retry.",
        ));
    }
    if peer {
        common.push(("401", "`unauthorized`: unsigned, or not signed as described by the `signed_request` scheme by an enrolled node; answered from the headers, before the body is read."));
        if peers_rate_limited {
            common.push((
                "429",
                "`rate-limited`: over the peer's rate limit, or its body would pass the peer's byte budget (`rate_limit_peer_bytes`, checked on `Content-Length` before the body is read); `Retry-After` says when to retry.",
            ));
        }
    }
    if body {
        common.push((
            "408",
            "`request-timeout`: the body stopped arriving for the request timeout, or did not arrive whole within it plus its length at `body_min_bytes_per_sec`; the connection is closed.",
        ));
        common.push((
            "413",
            "`payload-too-large`: the body is over the size limit.",
        ));
        common.push((
            "415",
            "`unsupported-media-type`: a content type not listed here, or a compressed body.",
        ));
        common.push((
            "503",
            "`busy`: the bodies being read already hold `max_buffered_body_bytes`; `Retry-After` says when to retry.",
        ));
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in common {
        // A handler that answers the same status says so itself, with
        // its own reasons besides these.
        match responses.get_mut(status) {
            Some(RefOr::T(response)) if !response.description.contains(description) => {
                response.description = format!("{description} {}", response.description);
            }
            Some(_) => {}
            None => {
                responses.insert(status.into(), RefOr::T(Response::new(description)));
            }
        }
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with('4') && !status.starts_with('5') {
            continue;
        }
        if response.content.is_empty() {
            response.content.insert(
                "application/problem+json".into(),
                RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
            );
        }
        if status == "429" || (status == "503" && body) {
            response.headers.insert(
                "Retry-After".into(),
                RefOr::T(
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                        .description(Some("Seconds to wait before retrying."))
                        .build(),
                ),
            );
        }
    }
}

/// Whether `operation` stores changes to a plan: the routes whose `422`
/// names the plan schema (`schema-violation`) are those.
fn stores_plan_changes(operation: &Operation) -> bool {
    matches!(
        operation.responses.responses.get("422"),
        Some(RefOr::T(response)) if response.description.contains("`schema-violation`")
    )
}

/// What the plan schema refuses in any new value, however it arrives.
const PLAN_TEXT_AND_PHONES: &str = "`unsafe-text`: new text holding a bidirectional control \
    or an invisible character (the detail names the path and the code point, never the text); \
    `invalid-phone`: a phone number that is not one valid number (by sync or import: one not \
    stored as E.164).";
/// A plan write that other processes sharing the database kept racing.
const CONTENDED: &str = "`contended`: other processes sharing the database kept changing \
    the plan while this one stored the change; nothing was stored; `Retry-After` says when to \
    retry.";

/// Descriptions of errors many handlers answer alike.
pub const MALFORMED_BODY: &str =
    "`malformed-json`: the body is not JSON, or repeats a key in one object; `invalid-request`: JSON of the wrong shape.";
pub const PLAN_NOT_FOUND: &str =
    "`not-found`: no such plan, or the caller is not on its team (the same answer).";
pub const INTERNAL: &str = "`internal`: the server failed; the cause is in its log.";
/// A write that would grow a plan past the node's quota.
pub const PLAN_QUOTA: &str = "`plan-quota`: the ops would grow the plan past `plan_quota_bytes` \
    (4 MiB of JSON by default); edits that do not grow it still go.";
/// A person over their write budget (besides the request rate every
/// person's route answers).
pub const WRITE_BUDGET: &str = "Also when the caller is in debt to their write budget \
    (`write_bytes_per_user`: bytes of changes stored through ops and syncs).";
