#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The security matrix: every route of a node × every kind of caller — on
//! their own plan, on another family's, on another county's; with no
//! token, an expired one, the wrong `aud` or `iss`, `alg: none`, another
//! algorithm, `exp` as a string, a flipped signature, another node's token
//! — answers the status docs/api.md documents, and every refusal leaves
//! exactly one audit row, found by the `X-Request-Id` the test sent.
//!
//! Two real nodes trust each other: `county-a`, the node under test, and
//! `county-b`, whose plans are "another county's". The test also plays a
//! third peer, `county-t`, signing its own node requests, so it can forge
//! every part of them.

use jsonwebtoken::{Algorithm, Header};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use wrapsync_shared::api::{AuditEntry, Handover, PeerSyncBatch, PeerSyncItem, SyncBatchReply};
use wrapsync_tests::users::{CAREGIVER, FACILITATOR, FACILITATOR_2, SUPERVISOR, YOUTH};
use wrapsync_tests::{
    deadline, decode_claims, encode_query, flip_signature, forge_alg_none, sign_hmac, unix_now,
    wait_for, wait_until, with_header, Backend, NodeSigner, TestNode,
};

const A: &str = "county-a";
const B: &str = "county-b";
/// The peer the test plays.
const T: &str = "county-t";
/// A peer added at setup for `POST /v1/admin/peers/{id}/remove` to remove.
const SPARE: &str = "county-x";

/// Who may call a route, which decides the variants it is called with.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone: no token is needed and a bad one changes nothing.
    Public,
    /// Credentials in the body (login, refresh); no bearer token.
    Credentials,
    /// A user's bearer token: `caller` may; `lesser` (a member of the
    /// plan, or a user of the node) is refused by role.
    User {
        caller: &'static str,
        lesser: Option<&'static str>,
        plan: PlanIn,
    },
    /// A peer node's signed request.
    Peer { plan: PlanIn },
}

/// Where a route names a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlanIn {
    Nowhere,
    Path,
    /// In the body of a batch: a refusal is the plan's entry, not the
    /// request's status.
    Batch,
}

/// What a call sends.
struct Call {
    path: String,
    body: Body,
}

enum Body {
    None,
    Json(Value),
    /// `application/cbor`.
    Cbor(Vec<u8>),
    /// `application/octet-stream`.
    Bytes(Vec<u8>),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::None => Vec::new(),
            Body::Json(value) => value.to_string().into_bytes(),
            Body::Cbor(bytes) | Body::Bytes(bytes) => bytes.clone(),
        }
    }
}

/// One route of the node.
struct Route {
    method: &'static str,
    template: &'static str,
    access: Access,
    /// The request naming `plan` (the plan of the variant being tried).
    call: fn(&str) -> Call,
    /// The answer when the caller may, on a plan of their own; `None` when
    /// it is shown elsewhere (see [`a_real_peer_hands_a_plan_over`]).
    ok: Option<u16>,
}

/// Every route of a node, in `api::routes` order.
const MATRIX: &[Route] = &[
    Route {
        method: "GET",
        template: "/healthz",
        access: Access::Public,
        call: |_| no_body("/healthz"),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/readyz",
        access: Access::Public,
        call: |_| no_body("/readyz"),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/metrics",
        access: Access::Public,
        call: |_| no_body("/metrics"),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/openapi.json",
        access: Access::Public,
        call: |_| no_body("/openapi.json"),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/federation/v1/identity",
        access: Access::Public,
        call: |_| no_body("/federation/v1/identity"),
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/federation/v1/sync",
        access: Access::Peer {
            plan: PlanIn::Batch,
        },
        call: |plan| Call {
            path: "/federation/v1/sync".into(),
            body: Body::Cbor(cbor(&PeerSyncBatch {
                plans: vec![PeerSyncItem {
                    plan: plan.into(),
                    message: None,
                    authors: Default::default(),
                    transfers: None,
                }],
            })),
        },
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/federation/v1/plans/{id}/sync",
        access: Access::Peer { plan: PlanIn::Path },
        call: |plan| Call {
            path: format!("/federation/v1/plans/{plan}/sync"),
            body: Body::Bytes(Vec::new()),
        },
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/federation/v1/plans/{id}/transfer",
        access: Access::Peer { plan: PlanIn::Path },
        // A handover the peer made up: its certificate is not the home's
        // signed word. A real one is in `a_real_peer_hands_a_plan_over`.
        call: |plan| Call {
            path: format!("/federation/v1/plans/{plan}/transfer"),
            body: Body::Cbor(cbor(&Handover {
                document: Some(wrapsync_shared::automerge::Automerge::new().save()),
                grants: Vec::new(),
                certificate: "not.a.certificate".into(),
                keeps_copy: false,
            })),
        },
        ok: None,
    },
    Route {
        method: "POST",
        template: "/v1/auth/login",
        access: Access::Credentials,
        // The body is the variant's: see `credentials`.
        call: |_| json_body("/v1/auth/login", json!({})),
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/v1/auth/refresh",
        access: Access::Credentials,
        // The body is the variant's: see `credentials`.
        call: |_| json_body("/v1/auth/refresh", json!({})),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/v1/schema",
        access: Access::Public,
        call: |_| no_body("/v1/schema"),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/v1/plans",
        access: user(None, PlanIn::Nowhere),
        call: |_| no_body("/v1/plans"),
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/v1/plans",
        access: user(Some(CAREGIVER), PlanIn::Nowhere),
        call: |_| json_body("/v1/plans", json!({ "title": "Matrix family" })),
        ok: Some(201),
    },
    Route {
        method: "GET",
        template: "/v1/plans/{id}",
        access: user(None, PlanIn::Path),
        call: |plan| no_body(&format!("/v1/plans/{plan}")),
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/v1/plans/{id}/ops",
        access: user(None, PlanIn::Path),
        call: |plan| {
            json_body(
                &format!("/v1/plans/{plan}/ops"),
                json!({ "ops": [{ "op": "replace", "path": "/vision", "value": "Home by spring" }] }),
            )
        },
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/v1/plans/{id}/history",
        access: user(None, PlanIn::Path),
        call: |plan| no_body(&format!("/v1/plans/{plan}/history")),
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/v1/plans/{id}/sync",
        access: user(None, PlanIn::Path),
        call: |plan| {
            json_body(
                &format!("/v1/plans/{plan}/sync"),
                json!({ "message": null }),
            )
        },
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/v1/sync",
        access: user(None, PlanIn::Batch),
        call: |plan| {
            json_body(
                "/v1/sync",
                json!({ "plans": [{ "plan": plan, "have": [] }] }),
            )
        },
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/v1/admin/peers",
        access: supervisor(),
        call: |_| no_body("/v1/admin/peers"),
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/v1/admin/peers",
        access: supervisor(),
        call: |_| {
            let key = NodeSigner::new("county-y").expect("a key");
            json_body(
                "/v1/admin/peers",
                json!({ "id": key.id, "url": "http://127.0.0.1:9", "public_key": key.public_key }),
            )
        },
        ok: Some(201),
    },
    Route {
        method: "POST",
        template: "/v1/admin/peers/{id}/remove",
        access: supervisor(),
        // `{id}` is a peer here, not a plan.
        call: |_| no_body(&format!("/v1/admin/peers/{SPARE}/remove")),
        ok: Some(204),
    },
    Route {
        method: "GET",
        template: "/v1/plans/{id}/shares",
        access: user(None, PlanIn::Path),
        call: |plan| no_body(&format!("/v1/plans/{plan}/shares")),
        ok: Some(200),
    },
    Route {
        method: "POST",
        template: "/v1/plans/{id}/shares",
        access: user(Some(YOUTH), PlanIn::Path),
        call: |plan| json_body(&format!("/v1/plans/{plan}/shares"), json!({ "node": B })),
        ok: Some(201),
    },
    Route {
        method: "POST",
        template: "/v1/plans/{id}/shares/{node}/revoke",
        access: user(Some(YOUTH), PlanIn::Path),
        call: |plan| no_body(&format!("/v1/plans/{plan}/shares/{B}/revoke")),
        ok: Some(204),
    },
    Route {
        method: "POST",
        template: "/v1/plans/{id}/transfer",
        access: user(Some(CAREGIVER), PlanIn::Path),
        call: |plan| json_body(&format!("/v1/plans/{plan}/transfer"), json!({ "node": B })),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/v1/changes",
        access: user(None, PlanIn::Nowhere),
        call: |_| no_body("/v1/changes"),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/v1/changes/stream",
        access: user(None, PlanIn::Nowhere),
        call: |_| no_body("/v1/changes/stream"),
        ok: Some(200),
    },
    Route {
        method: "GET",
        template: "/v1/audit",
        access: supervisor(),
        call: |_| no_body("/v1/audit"),
        ok: Some(200),
    },
];

/// `(method, path template)` of every route the node serves: what its
/// OpenAPI document must list.
fn routes() -> Vec<(&'static str, &'static str)> {
    MATRIX.iter().map(|r| (r.method, r.template)).collect()
}

const fn user(lesser: Option<&'static str>, plan: PlanIn) -> Access {
    Access::User {
        caller: FACILITATOR,
        lesser,
        plan,
    }
}

/// Node administration and the audit trail: supervisors only.
const fn supervisor() -> Access {
    Access::User {
        caller: SUPERVISOR,
        lesser: Some(FACILITATOR),
        plan: PlanIn::Nowhere,
    }
}

fn no_body(path: &str) -> Call {
    Call {
        path: path.into(),
        body: Body::None,
    }
}

fn json_body(path: &str, body: Value) -> Call {
    Call {
        path: path.into(),
        body: Body::Json(body),
    }
}

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).expect("cbor");
    bytes
}

/// The ways a caller can come, each tried on every route it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// The caller, on a plan of their own (a fresh one: some calls move or
    /// unshare it).
    Own,
    /// A user the route's role rules refuse, on a plan they are on.
    Lesser,
    /// The caller, on another family's plan at this node.
    OtherFamily,
    /// The caller, on a plan of another county: for users, one homed at
    /// `county-b` and never shared here; for peers, `county-b`'s plan this
    /// node keeps a replica of (the test peer is not its home).
    OtherCounty,
    /// A token `county-b` issued to its own user of the same name.
    OtherCountyToken,
    /// A user's valid access token where a node's signature belongs.
    UserToken,
    NoToken,
    Expired,
    WrongAudience,
    WrongIssuer,
    AlgNone,
    /// Another algorithm, really signed: for users HS384 with the node's
    /// secret; for peers HS256 keyed with the peer's own public key (the
    /// classic key-confusion forgery).
    AlgHmac,
    /// As `AlgHmac`, with HS512.
    AlgHs512,
    /// A header naming RS256 over the real token's payload and signature.
    AlgRs256,
    ExpString,
    BadSignature,
    /// Wrong password, or a refresh token that is not one.
    WrongCredentials,
}

use Variant::*;

/// The variants a route gets.
fn variants(access: Access) -> Vec<Variant> {
    let tokens = [
        NoToken,
        Expired,
        WrongAudience,
        WrongIssuer,
        AlgNone,
        AlgHmac,
        AlgHs512,
        AlgRs256,
        ExpString,
        BadSignature,
    ];
    let mut all = match access {
        Access::Public => vec![OtherCountyToken],
        Access::Credentials => return vec![WrongCredentials, Own],
        Access::User { lesser, plan, .. } => {
            let mut all = vec![OtherCountyToken];
            if lesser.is_some() {
                all.push(Lesser);
            }
            if plan != PlanIn::Nowhere {
                all.extend([OtherFamily, OtherCounty]);
            }
            all
        }
        Access::Peer { .. } => vec![UserToken, OtherFamily, OtherCounty],
    };
    all.extend(tokens);
    // Last: some successes change what the others would see.
    all.push(Own);
    all
}

/// What docs/api.md ("Errors") documents for a route and a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Served.
    Ok(u16),
    /// Refused with this status and problem type, audited once.
    Refused(u16, &'static str),
    /// A batch answered `200` whose one entry is refused with this problem
    /// type, audited once.
    EntryRefused(&'static str),
}

fn expect(route: &Route, variant: Variant) -> Option<Expect> {
    use Expect::*;
    Some(match (route.access, variant) {
        (_, Own) => Ok(route.ok?),
        (Access::Public, _) => Ok(route.ok?),
        (Access::Credentials, _) if route.template == "/v1/auth/login" => {
            Refused(401, "invalid-credentials")
        }
        (Access::Credentials, _) => Refused(401, "invalid-refresh-token"),
        (Access::User { .. }, Lesser) => Refused(403, "forbidden"),
        (Access::User { plan, .. } | Access::Peer { plan }, OtherFamily | OtherCounty) => {
            match plan {
                PlanIn::Batch => EntryRefused("not-found"),
                // A handover of a plan the peer is not the home of,
                // certified by nobody: the certificate is refused.
                _ if route.template.ends_with("/transfer")
                    && route.template.starts_with("/fed") =>
                {
                    Refused(400, "invalid-request")
                }
                _ => Refused(404, "not-found"),
            }
        }
        _ => Refused(401, "unauthorized"),
    })
}

/// The audit outcome of a refusal with this status (`audit::Outcome::of`).
fn outcome(status: u16, problem: &str) -> &'static str {
    match (status, problem) {
        (401 | 403, _) => "denied",
        (_, "not-found") => "not_found",
        _ => "refused",
    }
}

/// The two nodes, the test peer, and the plans every variant names.
struct World {
    a: TestNode,
    b: TestNode,
    peer: NodeSigner,
    /// Fran's plan at A, with Carla (caregiver) and Yuri (youth) on it.
    own: String,
    /// Felix's plan at A; Fran is not on it.
    other_family: String,
    /// A plan of B's, never shared.
    b_unshared: String,
    /// A plan of B's shared with A, which A keeps a replica of.
    b_replica: String,
    /// Real access tokens at A, by username.
    tokens: HashMap<&'static str, String>,
    next_request: AtomicUsize,
}

fn county(backend: Backend, id: &str) -> TestNode {
    let mut extra = toml::Table::new();
    extra.insert("node_id".into(), id.into());
    extra.insert("federation_interval_secs".into(), 1.into());
    // The matrix logs in more often than the default allows one address.
    let mut logins = toml::Table::new();
    logins.insert("per_second".into(), 1000.0.into());
    logins.insert("burst".into(), 1000.0.into());
    extra.insert("rate_limit_login_per_ip".into(), logins.into());
    // Each cell is its own refusal with its own row: the node counts
    // refusals of a kind from one address past the first of a minute in a
    // summary row instead (`tests/tests/abuse/storage.rs` checks that).
    extra.insert("refusal_rows_per_interval".into(), 100_000.into());
    TestNode::spawn_with(backend, extra)
}

/// Waits until `node` holds `plan`, shared with it by its home. (A plan
/// moved to a node while the home's first push of it is arriving there
/// can meet a `500`: the two both create it. The transfer is resent and
/// gets through, but answers `202` first, so the tests wait.)
fn wait_for_replica(node: &TestNode, supervisor: &str, plan: &str) {
    assert!(
        wait_until(deadline(60), || node
            .get(&format!("/v1/plans/{plan}"), supervisor)
            .status
            == 200),
        "the shared plan {plan} never reached {}",
        node.node_id()
    );
}

fn add_member(node: &TestNode, token: &str, plan: &str, user: &str, role: &str) {
    node.apply_ops(
        token,
        plan,
        json!([{ "op": "add", "path": "/team", "value": { "name": user, "role": role, "user": user } }]),
    );
}

fn share(node: &TestNode, token: &str, plan: &str, with: &str) {
    node.post(
        &format!("/v1/plans/{plan}/shares"),
        token,
        &json!({ "node": with }),
    )
    .assert_status(201);
}

impl World {
    fn new(backend: Backend) -> World {
        let (a, b) = (county(backend, A), county(backend, B));
        a.trust(&b, b.url());
        b.trust(&a, a.url());
        let peer = NodeSigner::new(T).expect("a key");
        let spare = NodeSigner::new(SPARE).expect("a key");
        let sam = a.login(SUPERVISOR);
        for key in [&peer, &spare] {
            a.post(
                "/v1/admin/peers",
                &sam,
                &json!({ "id": key.id, "url": "http://127.0.0.1:9", "public_key": key.public_key }),
            )
            .assert_status(201);
        }
        let tokens: HashMap<_, _> = [SUPERVISOR, FACILITATOR, FACILITATOR_2, CAREGIVER, YOUTH]
            .into_iter()
            .map(|u| (u, a.login(u)))
            .collect();
        let fran = &tokens[FACILITATOR];
        let own = a.create_plan(fran, "Own family").id;
        add_member(&a, fran, &own, CAREGIVER, "caregiver");
        add_member(&a, fran, &own, YOUTH, "youth");
        let other_family = a.create_plan(&tokens[FACILITATOR_2], "Other family").id;

        let fran_b = b.login(FACILITATOR);
        let b_unshared = b.create_plan(&fran_b, "Other county's family").id;
        let b_replica = b.create_plan(&fran_b, "Other county's shared family").id;
        share(&b, &fran_b, &b_replica, A);
        wait_for_replica(&a, &sam, &b_replica);
        World {
            a,
            b,
            peer,
            own,
            other_family,
            b_unshared,
            b_replica,
            tokens,
            next_request: AtomicUsize::new(0),
        }
    }

    /// A new plan of Fran's at A with Carla and Yuri on it, shared with B
    /// and with the test peer.
    fn fresh_plan(&self) -> String {
        let fran = &self.tokens[FACILITATOR];
        let plan = self.a.create_plan(fran, "Fresh family").id;
        add_member(&self.a, fran, &plan, CAREGIVER, "caregiver");
        add_member(&self.a, fran, &plan, YOUTH, "youth");
        share(&self.a, fran, &plan, B);
        share(&self.a, fran, &plan, T);
        plan
    }

    /// The plan a variant names.
    fn plan_for(&self, access: Access, variant: Variant) -> String {
        match (access, variant) {
            (Access::User { plan, .. } | Access::Peer { plan }, Own) if plan != PlanIn::Nowhere => {
                self.fresh_plan()
            }
            (_, OtherFamily) => self.other_family.clone(),
            (Access::Peer { .. }, OtherCounty) => self.b_replica.clone(),
            (_, OtherCounty) => self.b_unshared.clone(),
            _ => self.own.clone(),
        }
    }

    fn request_id(&self) -> String {
        format!(
            "matrix-{}",
            self.next_request.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The `Authorization` value of a user `variant` for `user`.
    fn user_authorization(&self, user: &str, variant: Variant) -> Option<String> {
        let real = &self.tokens[user];
        let secret = self.a.jwt_secret();
        let claims = decode_claims(real).expect("claims");
        let with = |changes: &[(&str, Value)]| {
            let mut claims = claims.clone();
            for (key, value) in changes {
                claims.insert((*key).to_string(), value.clone());
            }
            claims
        };
        let now = unix_now();
        let token = match variant {
            NoToken => return None,
            OtherCountyToken => self.b.login(user),
            Expired => hs(
                Header::new(Algorithm::HS256),
                &with(&[("exp", json!(now - 3600)), ("iat", json!(now - 7200))]),
                secret,
            ),
            WrongAudience => hs(
                Header::new(Algorithm::HS256),
                &with(&[("aud", json!("someone-else"))]),
                secret,
            ),
            WrongIssuer => hs(
                Header::new(Algorithm::HS256),
                &with(&[("iss", json!(format!("wrapsync:{B}")))]),
                secret,
            ),
            AlgNone => forge_alg_none(&claims),
            AlgHmac => hs(Header::new(Algorithm::HS384), &claims, secret),
            AlgHs512 => hs(Header::new(Algorithm::HS512), &claims, secret),
            AlgRs256 => with_header(real, &json!({ "alg": "RS256", "typ": "JWT" })),
            ExpString => hs(
                Header::new(Algorithm::HS256),
                &with(&[("exp", json!("9999999999"))]),
                secret,
            ),
            BadSignature => flip_signature(real).expect("a signature"),
            _ => real.clone(),
        };
        Some(format!("Bearer {token}"))
    }

    /// The `Authorization` value of a peer `variant` for `method path body`.
    fn peer_authorization(&self, variant: Variant, method: &str, call: &Call) -> Option<String> {
        let now = unix_now();
        let body = call.body.bytes();
        let claims = self.peer.claims(A, method, &call.path, &body, now);
        let with = |changes: &[(&str, Value)]| {
            let mut claims: Map<String, Value> = claims.clone();
            for (key, value) in changes {
                claims.insert((*key).to_string(), value.clone());
            }
            claims
        };
        let signed = |claims: &Map<String, Value>| self.peer.sign_claims(T, claims);
        let token = match variant {
            NoToken => return None,
            UserToken | OtherCountyToken => self.tokens[FACILITATOR].clone(),
            Expired => signed(&with(&[
                ("iat", json!(now - 3600)),
                ("exp", json!(now - 3540)),
            ])),
            WrongAudience => signed(&with(&[("aud", json!(B))])),
            // Signed by the test peer's key, claiming to be another peer.
            WrongIssuer => self
                .peer
                .sign_claims("county-z", &with(&[("iss", json!("county-z"))])),
            AlgNone => forge_alg_none(&claims),
            // The classic confusion: an HMAC keyed with the public key.
            AlgHmac => hs(keyed(Algorithm::HS256), &claims, &self.peer.public_key),
            AlgHs512 => hs(keyed(Algorithm::HS512), &claims, &self.peer.public_key),
            AlgRs256 => with_header(
                &signed(&claims),
                &json!({ "alg": "RS256", "typ": "JWT", "kid": T }),
            ),
            ExpString => signed(&with(&[("exp", json!((now + 60).to_string()))])),
            BadSignature => flip_signature(&signed(&claims)).expect("a signature"),
            _ => signed(&claims),
        };
        Some(format!("Bearer {token}"))
    }

    /// Sends `call` to A; answers the status, the problem type (or the
    /// batch entry's), and the request id it sent.
    fn send(&self, method: &str, call: &Call, authorization: Option<&str>) -> Sent {
        let request_id = self.request_id();
        let mut request = self
            .a
            .request(
                Method::from_bytes(method.as_bytes()).expect("a method"),
                &call.path,
            )
            .header("x-request-id", &request_id);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request = match &call.body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Cbor(bytes) => request
                .header("content-type", "application/cbor")
                .body(bytes.clone()),
            Body::Bytes(bytes) => request
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        };
        let response = request.send().expect("the node answers");
        let status = response.status().as_u16();
        let echoed = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            echoed.as_deref(),
            Some(request_id.as_str()),
            "X-Request-Id echoed"
        );
        let streaming = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        // A stream never ends: its status is the answer.
        let cbor = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/cbor"));
        let body = if streaming {
            Value::Null
        } else {
            let bytes = response.bytes().expect("a body");
            if cbor {
                let reply: SyncBatchReply =
                    ciborium::from_reader(&bytes[..]).expect("a batch reply");
                let plans: Vec<Value> = reply
                    .plans
                    .iter()
                    .map(|p| json!({ "plan": p.plan, "problem": p.problem }))
                    .collect();
                json!({ "plans": plans })
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            }
        };
        Sent {
            status,
            problem: problem_code(&body["type"]),
            entry_problem: problem_code(&body["plans"][0]["problem"]["type"]),
            request_id,
            body,
        }
    }
}

fn hs(header: Header, claims: &Map<String, Value>, secret: &str) -> String {
    sign_hmac(&header, claims, secret).expect("signing")
}

/// A header naming the test peer's key under `algorithm`.
fn keyed(algorithm: Algorithm) -> Header {
    let mut header = Header::new(algorithm);
    header.kid = Some(T.into());
    header
}

fn problem_code(kind: &Value) -> Option<String> {
    kind.as_str()
        .and_then(|t| t.strip_prefix("/problems/"))
        .map(str::to_string)
}

/// What one request got.
struct Sent {
    status: u16,
    problem: Option<String>,
    entry_problem: Option<String>,
    request_id: String,
    body: Value,
}

/// A request the matrix sent, and the audit outcome its refusal must leave
/// (`None`: served, so no refusal row).
struct Tried {
    what: String,
    request_id: String,
    refusal: Option<&'static str>,
}

fn every_route_answers_every_caller_as_documented(backend: Backend) {
    let world = World::new(backend);
    // The matrix covers exactly what the node documents (and the OpenAPI
    // unit test proves it documents exactly what it serves).
    let document = world.a.get_anon("/openapi.json").json;
    let mut documented: Vec<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .filter(|key| ["get", "post", "put", "patch", "delete"].contains(&key.as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut listed: Vec<(String, String)> = routes()
        .into_iter()
        .map(|(m, t)| (m.to_string(), t.to_string()))
        .collect();
    listed.sort();
    assert_eq!(listed, documented, "the matrix and /openapi.json disagree");
    let mut tried = Vec::new();
    let mut wrong = Vec::new();
    for route in MATRIX {
        for variant in variants(route.access) {
            let Some(expected) = expect(route, variant) else {
                continue;
            };
            let what = format!("{} {} as {variant:?}", route.method, route.template);
            let plan = world.plan_for(route.access, variant);
            if route.template == "/v1/plans/{id}/transfer" && variant == Own {
                let sam = world.b.login(SUPERVISOR);
                wait_for_replica(&world.b, &sam, &plan);
            }
            let (call, authorization) = match route.access {
                Access::Credentials => (credentials(&world, route, variant), None),
                Access::Peer { .. } => {
                    let call = (route.call)(&plan);
                    let authorization = world.peer_authorization(variant, route.method, &call);
                    (call, authorization)
                }
                Access::Public => (
                    (route.call)(&plan),
                    world.user_authorization(FACILITATOR, variant),
                ),
                Access::User { caller, lesser, .. } => {
                    let user = match variant {
                        Lesser => lesser.expect("a lesser user"),
                        _ => caller,
                    };
                    ((route.call)(&plan), world.user_authorization(user, variant))
                }
            };
            let sent = world.send(route.method, &call, authorization.as_deref());
            let (got, refusal) = match expected {
                Expect::Ok(_) => (Expect::Ok(sent.status), None),
                Expect::Refused(status, code) => (
                    match sent.problem.as_deref() {
                        Some(problem) if problem == code => Expect::Refused(sent.status, code),
                        _ => Expect::Ok(sent.status),
                    },
                    Some(outcome(status, code)),
                ),
                Expect::EntryRefused(code) => (
                    match sent.entry_problem.as_deref() {
                        Some(problem) if problem == code && sent.status == 200 => {
                            Expect::EntryRefused(code)
                        }
                        _ => Expect::Ok(sent.status),
                    },
                    Some(outcome(404, code)),
                ),
            };
            if got != expected {
                wrong.push(format!(
                    "{what}: expected {expected:?}, got {} {}",
                    sent.status, sent.body
                ));
            }
            tried.push(Tried {
                what,
                request_id: sent.request_id,
                refusal,
            });
        }
    }
    tried.extend(refusals_off_the_matrix(&world));
    assert!(
        wrong.is_empty(),
        "answers differ from docs/api.md:\n{}",
        wrong.join("\n")
    );
    assert_each_refusal_audited_once(&world, &tried);
}

/// The body of a login or refresh: good, or not.
fn credentials(world: &World, route: &Route, variant: Variant) -> Call {
    let good = variant == Own;
    if route.template == "/v1/auth/login" {
        let password = if good {
            wrapsync_tests::password_of(CAREGIVER)
        } else {
            "not-the-password".into()
        };
        return json_body(
            route.template,
            json!({ "username": CAREGIVER, "password": password }),
        );
    }
    let refresh = if good {
        world.a.login_tokens(CAREGIVER).refresh_token
    } else {
        // An access token is not a refresh token.
        world.tokens[CAREGIVER].clone()
    };
    json_body(route.template, json!({ "refresh_token": refresh }))
}

/// Refusals no route's variants make — an unknown route, bodies and
/// queries the node cannot read, an id kilobytes long — each audited once
/// like the rest (the middleware's share: no handler audits these).
fn refusals_off_the_matrix(world: &World) -> Vec<Tried> {
    /// Who sends one of these.
    enum From {
        Nobody,
        User(&'static str),
        /// The test peer, signing it properly.
        Peer,
    }
    let long_id = "A".repeat(2000);
    let cases = [
        (
            "an unknown route",
            "GET",
            no_body("/v1/no-such-route"),
            From::Nobody,
            (404, "not-found"),
        ),
        (
            "a login sent as bytes",
            "POST",
            Call {
                path: "/v1/auth/login".into(),
                body: Body::Bytes(b"{".to_vec()),
            },
            From::Nobody,
            (415, "unsupported-media-type"),
        ),
        (
            "a bad query",
            "GET",
            no_body("/v1/plans?limit=0"),
            From::User(FACILITATOR),
            (400, "invalid-request"),
        ),
        (
            "an id 2000 characters long",
            "GET",
            no_body(&format!("/v1/plans/{long_id}")),
            From::User(FACILITATOR),
            (404, "not-found"),
        ),
        (
            "a peer that is a JSON array",
            "POST",
            json_body("/v1/admin/peers", json!(["not", "a", "peer"])),
            From::User(SUPERVISOR),
            (400, "invalid-request"),
        ),
        (
            "a signed batch that is not CBOR",
            "POST",
            Call {
                path: "/federation/v1/sync".into(),
                body: Body::Bytes(b"garbage".to_vec()),
            },
            From::Peer,
            (400, "invalid-request"),
        ),
    ];
    let mut tried = Vec::new();
    for (what, method, call, from, (status, code)) in cases {
        let authorization = match from {
            From::Nobody => None,
            From::User(user) => Some(format!("Bearer {}", world.tokens[user])),
            From::Peer => world.peer_authorization(Own, method, &call),
        };
        let sent = world.send(method, &call, authorization.as_deref());
        assert_eq!(
            (sent.status, sent.problem.as_deref()),
            (status, Some(code)),
            "{what}: {}",
            sent.body
        );
        tried.push(Tried {
            what: what.into(),
            request_id: sent.request_id,
            refusal: Some(outcome(status, code)),
        });
    }
    tried
}

/// Every refused request has exactly one refusal row with its request id
/// and the outcome its status means; a served one has none; no row holds
/// a token.
fn assert_each_refusal_audited_once(world: &World, tried: &[Tried]) {
    let sam = &world.tokens[SUPERVISOR];
    let mut rows: Vec<AuditEntry> = Vec::new();
    let refusals = |rows: &[AuditEntry], id: &str| -> Vec<AuditEntry> {
        rows.iter()
            .filter(|r| r.request_id.as_deref() == Some(id) && r.outcome != "ok")
            .cloned()
            .collect()
    };
    // Refusal rows are queued, not waited for: poll until all are in.
    wait_until(deadline(30), || {
        rows = all_audit(&world.a, sam);
        tried
            .iter()
            .filter(|t| t.refusal.is_some())
            .all(|t| !refusals(&rows, &t.request_id).is_empty())
    });
    let mut wrong = Vec::new();
    for t in tried {
        let found = refusals(&rows, &t.request_id);
        let outcomes: Vec<&str> = found.iter().map(|r| r.outcome.as_str()).collect();
        match t.refusal {
            Some(outcome) if outcomes != [outcome] => wrong.push(format!(
                "{} ({}): expected one `{outcome}` row, found {found:?}",
                t.what, t.request_id
            )),
            None if !found.is_empty() => wrong.push(format!(
                "{} ({}): served, yet refusal rows {found:?}",
                t.what, t.request_id
            )),
            _ => {}
        }
        for row in &found {
            let cut = row.plan.as_ref().is_none_or(|p| p.chars().count() <= 64);
            if !cut {
                wrong.push(format!(
                    "{}: a plan id of {} characters kept",
                    t.what,
                    row.plan.as_ref().map_or(0, String::len)
                ));
            }
            let remote = row
                .remote
                .as_deref()
                .is_some_and(|r| r.contains("127.0.0.1"));
            if !remote {
                wrong.push(format!("{}: no client address in {row:?}", t.what));
            }
        }
    }
    let leaked: Vec<&AuditEntry> = rows
        .iter()
        .filter(|r| format!("{r:?}").contains("eyJ"))
        .collect();
    assert!(leaked.is_empty(), "audit rows holding a token: {leaked:#?}");
    assert!(
        wrong.is_empty(),
        "the audit trail is wrong:\n{}",
        wrong.join("\n")
    );
}

/// Every row of A's audit trail, newest first.
fn all_audit(node: &TestNode, token: &str) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    let mut query = "limit=1000".to_string();
    loop {
        let page = node.audit(token, &query);
        entries.extend(page.entries);
        match page.next {
            Some(next) => query = format!("limit=1000&cursor={}", encode_query(&next)),
            None => return entries,
        }
    }
}

/// The node route the matrix cannot call as a real peer would — a signed
/// handover with the old home's certificate — called by a real peer: B
/// moves a plan to A, and A homes it.
fn a_real_peer_hands_a_plan_over(backend: Backend) {
    let (a, b) = (county(backend, A), county(backend, B));
    a.trust(&b, b.url());
    b.trust(&a, a.url());
    let fran_b = b.login(FACILITATOR);
    let plan = b.create_plan(&fran_b, "Moving family").id;
    share(&b, &fran_b, &plan, A);
    let sam = a.login(SUPERVISOR);
    wait_for_replica(&a, &sam, &plan);
    let moved = b.post(
        &format!("/v1/plans/{plan}/transfer"),
        &fran_b,
        &json!({ "node": A }),
    );
    assert_eq!(
        moved.status,
        200,
        "{}\n--- A ---\n{}\n--- B ---\n{}",
        moved.text(),
        a.log(),
        b.log()
    );
    a.read_plan(&sam, &plan);
    let rows = wait_for(deadline(30), || {
        let rows = all_audit(&a, &sam);
        rows.iter()
            .any(|r| {
                r.action == "peer.transfer"
                    && r.outcome == "ok"
                    && r.plan.as_deref() == Some(plan.as_str())
            })
            .then_some(rows)
    });
    let rows = rows.expect("A audits the handover");
    let refused: Vec<&AuditEntry> = rows
        .iter()
        .filter(|r| r.user.as_deref() == Some("peer:county-b") && r.outcome != "ok")
        .collect();
    assert!(
        refused.is_empty(),
        "a real handover is no refusal: {refused:#?}\n--- A ---\n{}\n--- B ---\n{}",
        a.log(),
        b.log()
    );
}

/// On a node of default config, one user's burst of 400 requests meets
/// `rate_limit_per_user` (10/s, burst 200): `429 rate-limited` with
/// `Retry-After`, while another user is served as ever.
#[test]
fn a_user_bursting_meets_the_default_rate_limit() {
    let node = TestNode::spawn_with_node_defaults(Backend::Sqlite, toml::Table::new());
    let fran = node.login(FACILITATOR);
    let carla = node.login(CAREGIVER);
    let mut limited = None;
    let mut served = 0;
    for _ in 0..400 {
        let reply = node.get("/v1/plans", &fran);
        match reply.status {
            200 => served += 1,
            429 => limited = limited.or(Some(reply)),
            other => panic!("HTTP {other}: {}", reply.text()),
        }
    }
    let limited = limited.unwrap_or_else(|| panic!("400 requests with one token, none refused"));
    limited.assert_problem(429, "rate-limited");
    assert!(limited.header("retry-after").is_some());
    assert!(
        served >= 200,
        "only {served} of 400 served before the burst ran out"
    );
    node.get("/v1/plans", &carla).assert_status(200);
}

#[test]
fn the_matrix_lists_every_route_once() {
    let mut seen = std::collections::HashSet::new();
    for route in routes() {
        assert!(seen.insert(route), "{route:?} twice");
    }
    assert_eq!(seen.len(), MATRIX.len());
}

mod sqlite {
    use wrapsync_tests::Backend;

    #[test]
    fn every_route_answers_every_caller_as_documented() {
        super::every_route_answers_every_caller_as_documented(Backend::Sqlite);
    }

    #[test]
    fn a_real_peer_hands_a_plan_over() {
        super::a_real_peer_hands_a_plan_over(Backend::Sqlite);
    }
}

mod postgres {
    use wrapsync_tests::Backend;

    #[test]
    fn every_route_answers_every_caller_as_documented() {
        super::every_route_answers_every_caller_as_documented(Backend::Postgres);
    }

    #[test]
    fn a_real_peer_hands_a_plan_over() {
        super::a_real_peer_hands_a_plan_over(Backend::Postgres);
    }
}
