//! The blocking `/v1` client: one method per call of the node's HTTP
//! contract, bodies typed with `wrapsync_shared::api` so that client and
//! server agree by construction.

use crate::error::{interpret, ClientError};
use base64::Engine;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wrapsync_shared::api::{
    AuditPage, ChangeFeed, CreatePlanRequest, History, LoginRequest, OpsRequest, OpsResponse,
    PeerEntry, PeerList, PlanDocument, PlanList, RefreshRequest, Share, ShareList, ShareRequest,
    SyncBatch, SyncBatchItem, SyncBatchReply, TokenResponse, Transfer, TransferRequest,
};
use wrapsync_shared::ops::Op;

/// Most pages [`Client::list_all_plans`] follows, so a node that keeps
/// answering a `next` cursor cannot loop it forever.
pub const MAX_LIST_PAGES: usize = 1_000;
/// How long one call may take before it fails as a transport error, so a
/// hung node fails a test instead of hanging it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A session with one node. It keeps the tokens of the last login or
/// refresh and sends the access token with every call.
///
/// Built on `reqwest::blocking`: create, use and drop it outside any async
/// runtime (in async code, use `tokio::task::spawn_blocking`).
#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    base: Url,
    access_token: Option<String>,
    refresh_token: Option<String>,
}

/// Filters and paging of `GET /v1/plans`; `Default` lists the first page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Page size; the node applies its own default and cap.
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
    /// Only plans updated at or after this instant (ms since the Unix epoch),
    /// so a phone fetches only what changed since its last sync.
    pub updated_since: Option<i64>,
}

/// Filters and paging of `GET /v1/audit`; `Default` is the newest page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only entries about this plan id.
    pub plan: Option<String>,
    /// Only entries by this username.
    pub user: Option<String>,
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

/// The answer of a conditional `GET /v1/plans/{id}`.
#[derive(Debug, Clone)]
pub enum PlanFetch {
    /// The plan and the ETag to send next time to skip an unchanged download.
    Fresh(PlanDocument, String),
    /// 304: the plan still matches the ETag that was sent.
    NotModified,
}

/// The JSON form of a sync round, both ways: one base64 Automerge sync
/// message, or `null` when that side has nothing to say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SyncBody {
    message: Option<String>,
}

/// The body of `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

/// Tokens are credentials: debug output names the node and whether a
/// session is held, never the tokens themselves.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("logged_in", &self.access_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the node at `base_url` (e.g. `http://127.0.0.1:8080`; a
    /// path prefix is kept). Nothing is sent yet.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let base = parse_base(base_url)?;
        let http = reqwest::blocking::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            // The API never redirects; following one would leak the token.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Client {
            http,
            base,
            access_token: None,
            refresh_token: None,
        })
    }

    /// A client that sends through `http`, built by the caller: for other
    /// timeouts, proxy or TLS settings. It should not follow redirects, or
    /// the bearer token may be sent elsewhere.
    pub fn with_http(
        base_url: &str,
        http: reqwest::blocking::Client,
    ) -> Result<Client, ClientError> {
        Ok(Client {
            http,
            base: parse_base(base_url)?,
            access_token: None,
            refresh_token: None,
        })
    }

    /// The node this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The access token sent with each call, once logged in.
    pub fn access_token(&self) -> Option<&str> {
        self.access_token.as_deref()
    }

    /// The refresh token `refresh` will spend next.
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref()
    }

    /// Replaces the access token (or drops it with `None`): to reuse a token
    /// obtained elsewhere, or to test how the node treats a bad one.
    pub fn set_access_token(&mut self, token: Option<String>) {
        self.access_token = token;
    }

    /// Replaces the refresh token `refresh` will spend next.
    pub fn set_refresh_token(&mut self, token: Option<String>) {
        self.refresh_token = token;
    }

    /// `GET /healthz`: whether the node is up, without logging in.
    pub fn healthz(&self) -> Result<Health, ClientError> {
        self.call(self.http.get(self.endpoint(&["healthz"])?))
    }

    /// `POST /v1/auth/login`; keeps both tokens for the calls that follow.
    pub fn login(&mut self, username: &str, password: &str) -> Result<TokenResponse, ClientError> {
        let body = LoginRequest {
            username: username.to_string(),
            password: password.to_string(),
        };
        let url = self.endpoint(&["v1", "auth", "login"])?;
        let tokens: TokenResponse = answer(self.http.post(url).json(&body).send()?)?;
        self.keep(&tokens);
        Ok(tokens)
    }

    /// `POST /v1/auth/refresh` with the kept refresh token, which the node
    /// then retires; keeps the new pair.
    pub fn refresh(&mut self) -> Result<TokenResponse, ClientError> {
        let refresh_token = self.refresh_token.clone().ok_or(ClientError::NotLoggedIn)?;
        let url = self.endpoint(&["v1", "auth", "refresh"])?;
        let body = RefreshRequest { refresh_token };
        let tokens: TokenResponse = answer(self.http.post(url).json(&body).send()?)?;
        self.keep(&tokens);
        Ok(tokens)
    }

    /// `GET /v1/plans`: one page of the plans the caller's teams hold.
    pub fn list_plans(&self, query: &ListQuery) -> Result<PlanList, ClientError> {
        let url = self.endpoint(&["v1", "plans"])?;
        self.call(self.http.get(url).query(&query.pairs()))
    }

    /// Every page of the plan list, following `next` (at most
    /// [`MAX_LIST_PAGES`] pages, and never the same cursor twice).
    pub fn list_all_plans(&self) -> Result<Vec<wrapsync_shared::api::PlanSummary>, ClientError> {
        let mut query = ListQuery::default();
        let mut plans = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let page = self.list_plans(&query)?;
            plans.extend(page.plans);
            match page.next {
                Some(next) if query.cursor.as_deref() != Some(next.as_str()) => {
                    query.cursor = Some(next);
                }
                _ => break,
            }
        }
        Ok(plans)
    }

    /// `POST /v1/plans`: starts a plan (facilitators and supervisors only).
    pub fn create_plan(
        &self,
        title: &str,
        enrolled_on: Option<&str>,
    ) -> Result<PlanDocument, ClientError> {
        let body = CreatePlanRequest {
            title: title.to_string(),
            enrolled_on: enrolled_on.map(str::to_string),
        };
        let url = self.endpoint(&["v1", "plans"])?;
        self.call(self.http.post(url).json(&body))
    }

    /// `GET /v1/plans/{id}`; with the ETag of an earlier fetch, an unchanged
    /// plan answers [`PlanFetch::NotModified`] instead of the whole document.
    pub fn get_plan(&self, id: &str, etag: Option<&str>) -> Result<PlanFetch, ClientError> {
        let mut request = self.http.get(self.endpoint(&["v1", "plans", id])?);
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = self.authorize(request).send()?;
        let status = response.status();
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes()?;
        interpret_fetch(status, etag, &body)
    }

    /// `POST /v1/plans/{id}/ops`: applies `ops` all or nothing. With a
    /// `base_version` (the `version` last seen) the edit is made at that
    /// version and merged with whatever happened since.
    pub fn apply_ops(
        &self,
        id: &str,
        base_version: Option<&[String]>,
        ops: &[Op],
    ) -> Result<OpsResponse, ClientError> {
        let body = OpsRequest {
            base_version: base_version.map(<[String]>::to_vec),
            ops: ops.to_vec(),
        };
        let url = self.endpoint(&["v1", "plans", id, "ops"])?;
        self.call(self.http.post(url).json(&body))
    }

    /// `GET /v1/plans/{id}/history`: who changed the plan, oldest first.
    pub fn history(&self, id: &str) -> Result<History, ClientError> {
        self.call(
            self.http
                .get(self.endpoint(&["v1", "plans", id, "history"])?),
        )
    }

    /// `GET /v1/audit`: the node's audit trail, newest first (supervisors).
    pub fn audit(&self, filter: &AuditFilter) -> Result<AuditPage, ClientError> {
        let url = self.endpoint(&["v1", "audit"])?;
        self.call(self.http.get(url).query(&filter.pairs()))
    }

    /// `POST /v1/plans/{id}/sync`: one round of the Automerge sync protocol
    /// as device `device_id` (the node keeps one sync state per user, device
    /// and plan). Sends `message` (`sync::Message::encode()` bytes, or `None`
    /// to let the node speak) and answers the node's message, `None` when it
    /// has nothing to say. Repeat until neither side has a message.
    pub fn sync_round(
        &self,
        plan_id: &str,
        device_id: &str,
        message: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let body = SyncBody {
            message: message.map(|m| BASE64.encode(m)),
        };
        let url = self.endpoint(&["v1", "plans", plan_id, "sync"])?;
        let request = self
            .http
            .post(url)
            .header("Device-Id", device_id)
            .json(&body);
        let response = self.authorize(request).send()?;
        let status = response.status().as_u16();
        let body = response.bytes()?;
        interpret_sync(status, &body)
    }

    /// `GET /v1/changes`: plans the caller may see that changed after the
    /// `since` cursor (from the start when `None`), each once, oldest first.
    pub fn changes(
        &self,
        since: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ChangeFeed, ClientError> {
        let mut pairs = Vec::new();
        if let Some(since) = since {
            pairs.push(("since", since.to_string()));
        }
        if let Some(limit) = limit {
            pairs.push(("limit", limit.to_string()));
        }
        let url = self.endpoint(&["v1", "changes"])?;
        self.call(self.http.get(url).query(&pairs))
    }

    /// `POST /v1/plans` with a whole saved Automerge document
    /// (`Automerge::save()` bytes) made by any Automerge client: held to the
    /// same checks as synced changes; the caller must be on its team.
    pub fn import_plan(&self, document: Vec<u8>) -> Result<PlanDocument, ClientError> {
        let url = self.endpoint(&["v1", "plans"])?;
        self.call(
            self.http
                .post(url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(document),
        )
    }

    /// `POST /v1/sync`: one round for many plans (at most
    /// [`wrapsync_shared::api::MAX_SYNC_BATCH`]), as device `device_id`. Each item carries the
    /// device's message, or `have` (the heads of a copy with no changes of
    /// its own) to get just the changes after them.
    pub fn sync_batch(
        &self,
        device_id: &str,
        plans: Vec<SyncBatchItem>,
    ) -> Result<SyncBatchReply, ClientError> {
        let url = self.endpoint(&["v1", "sync"])?;
        self.call(
            self.http
                .post(url)
                .header("Device-Id", device_id)
                .json(&SyncBatch { plans }),
        )
    }

    /// `GET /v1/plans/{id}/shares`: the plan's consent grants to peer nodes.
    pub fn shares(&self, id: &str) -> Result<ShareList, ClientError> {
        self.call(
            self.http
                .get(self.endpoint(&["v1", "plans", id, "shares"])?),
        )
    }

    /// `POST /v1/plans/{id}/shares`: records the family's consent to share
    /// the plan with peer `node` (facilitators, caregivers, supervisors).
    pub fn share(
        &self,
        id: &str,
        node: &str,
        expires_at: Option<i64>,
    ) -> Result<Share, ClientError> {
        let body = ShareRequest {
            node: node.to_string(),
            expires_at,
        };
        let url = self.endpoint(&["v1", "plans", id, "shares"])?;
        self.call(self.http.post(url).json(&body))
    }

    /// `POST /v1/plans/{id}/shares/{node}/revoke`: withdraws that consent.
    pub fn revoke_share(&self, id: &str, node: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&["v1", "plans", id, "shares", node, "revoke"])?;
        answer_empty(self.authorize(self.http.post(url)).send()?)
    }

    /// `POST /v1/plans/{id}/transfer`: moves the plan's home to peer `node`
    /// (facilitators, supervisors; the family must have consented to share
    /// with it). `state` is `pending` while that node cannot be reached.
    pub fn transfer(&self, id: &str, node: &str) -> Result<Transfer, ClientError> {
        let body = TransferRequest {
            node: node.to_string(),
        };
        let url = self.endpoint(&["v1", "plans", id, "transfer"])?;
        self.call(self.http.post(url).json(&body))
    }

    /// `GET /v1/admin/peers` (supervisors): the nodes this node trusts.
    pub fn peers(&self) -> Result<PeerList, ClientError> {
        self.call(self.http.get(self.endpoint(&["v1", "admin", "peers"])?))
    }

    /// `POST /v1/admin/peers` (supervisors): trusts a node from now on.
    pub fn add_peer(
        &self,
        id: &str,
        url: &str,
        public_key: &str,
    ) -> Result<PeerEntry, ClientError> {
        let body = serde_json::json!({ "id": id, "url": url, "public_key": public_key });
        let endpoint = self.endpoint(&["v1", "admin", "peers"])?;
        self.call(self.http.post(endpoint).json(&body))
    }

    /// `POST /v1/admin/peers/{id}/remove` (supervisors).
    pub fn remove_peer(&self, id: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&["v1", "admin", "peers", id, "remove"])?;
        answer_empty(self.authorize(self.http.post(url)).send()?)
    }

    fn keep(&mut self, tokens: &TokenResponse) {
        self.access_token = Some(tokens.access_token.clone());
        self.refresh_token = Some(tokens.refresh_token.clone());
    }

    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.access_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        answer(self.authorize(request).send()?)
    }

    /// The base URL with `segments` appended, each percent-encoded, so an id
    /// can never turn into another path.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, ClientError> {
        join(&self.base, segments)
    }
}

impl ListQuery {
    /// The query string pairs of the fields that are set.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(limit) = self.limit {
            out.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            out.push(("cursor", cursor.clone()));
        }
        if let Some(since) = self.updated_since {
            out.push(("updated_since", since.to_string()));
        }
        out
    }
}

impl AuditFilter {
    /// The query string pairs of the fields that are set.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(plan) = &self.plan {
            out.push(("plan", plan.clone()));
        }
        if let Some(user) = &self.user {
            out.push(("user", user.clone()));
        }
        if let Some(limit) = self.limit {
            out.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            out.push(("cursor", cursor.clone()));
        }
        out
    }
}

fn answer<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let status = response.status().as_u16();
    let body = response.bytes()?;
    interpret(status, &body)
}

/// A `204`-style answer: nothing but the status, or a problem document.
fn answer_empty(response: Response) -> Result<(), ClientError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = response.bytes()?;
    interpret::<serde::de::IgnoredAny>(status, &body).map(drop)
}

/// The meaning of a plan fetch's status, ETag and body.
fn interpret_fetch(
    status: StatusCode,
    etag: Option<String>,
    body: &[u8],
) -> Result<PlanFetch, ClientError> {
    if status == StatusCode::NOT_MODIFIED {
        return Ok(PlanFetch::NotModified);
    }
    let plan: PlanDocument = interpret(status.as_u16(), body)?;
    let etag = etag.ok_or_else(|| ClientError::UnexpectedResponse {
        status: status.as_u16(),
        detail: "a plan was served without an ETag header".into(),
    })?;
    Ok(PlanFetch::Fresh(plan, etag))
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The meaning of a sync round's status and body: the node's sync message
/// bytes, or `None` (`null`, or 204 with no body).
fn interpret_sync(status: u16, body: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
    if status == 204 {
        return Ok(None);
    }
    let answer: SyncBody = interpret(status, body)?;
    answer
        .message
        .map(|m| {
            BASE64
                .decode(m)
                .map_err(|e| ClientError::UnexpectedResponse {
                    status,
                    detail: format!("the sync message is not base64: {e}"),
                })
        })
        .transpose()
}

fn parse_base(base_url: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: base_url.to_string(),
        reason: reason.to_string(),
    };
    let base = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid("only http and https are supported"));
    }
    if base.cannot_be_a_base() || base.host().is_none() {
        return Err(invalid("no host"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid("a base URL has no query or fragment"));
    }
    Ok(base)
}

fn join(base: &Url, segments: &[&str]) -> Result<Url, ClientError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ClientError::InvalidUrl {
            url: base.to_string(),
            reason: "cannot be a base".into(),
        })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(base: &str, segments: &[&str]) -> String {
        match parse_base(base).and_then(|b| join(&b, segments)) {
            Ok(u) => u.to_string(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn endpoints_keep_a_path_prefix_and_encode_ids() {
        assert_eq!(
            url("http://127.0.0.1:8080", &["v1", "plans"]),
            "http://127.0.0.1:8080/v1/plans"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/", &["healthz"]),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(
            url("http://localhost/county-a/", &["v1", "plans", "X", "ops"]),
            "http://localhost/county-a/v1/plans/X/ops"
        );
        assert_eq!(
            url("http://[::1]:1", &["v1", "plans", "../audit?x"]),
            "http://[::1]:1/v1/plans/..%2Faudit%3Fx"
        );
    }

    #[test]
    fn base_urls_that_cannot_address_a_node_are_refused() {
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://127.0.0.1/",
            "mailto:a@b",
            "http://127.0.0.1/?x=1",
        ] {
            assert!(
                matches!(Client::new(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad}"
            );
        }
        let client = Client::new("http://127.0.0.1:9");
        assert!(client.is_ok_and(|c| c.access_token().is_none()));
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let Ok(mut client) = Client::new("http://127.0.0.1:9") else {
            panic!("client")
        };
        client.set_access_token(Some("secret-access".into()));
        client.set_refresh_token(Some("secret-refresh".into()));
        let shown = format!("{client:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("logged_in: true"), "{shown}");
    }

    #[test]
    fn refresh_before_login_fails_without_sending() {
        let Ok(mut client) = Client::new("http://127.0.0.1:9") else {
            panic!("client")
        };
        assert!(matches!(client.refresh(), Err(ClientError::NotLoggedIn)));
    }

    #[test]
    fn sync_answers_decode_to_message_bytes_or_none() {
        let body = json!({"message": BASE64.encode([0x42, 1, 2])}).to_string();
        assert!(matches!(interpret_sync(200, body.as_bytes()), Ok(Some(b)) if b == [0x42, 1, 2]));
        assert!(matches!(
            interpret_sync(200, br#"{"message":null}"#),
            Ok(None)
        ));
        assert!(matches!(interpret_sync(204, b""), Ok(None)));
        assert!(matches!(
            interpret_sync(200, br#"{"message":"%%%"}"#),
            Err(ClientError::UnexpectedResponse { status: 200, .. })
        ));
        let refused =
            json!({"type":"/problems/change-forbidden","title":"Forbidden change","status":422});
        let err = interpret_sync(422, refused.to_string().as_bytes()).err();
        assert_eq!(
            err.as_ref().and_then(ClientError::code),
            Some("change-forbidden")
        );
        let sent = serde_json::to_value(SyncBody::default()).unwrap_or_default();
        assert_eq!(sent, json!({"message": null}));
    }

    #[test]
    fn only_set_query_fields_are_sent() {
        assert!(ListQuery::default().pairs().is_empty());
        let q = ListQuery {
            limit: Some(5),
            cursor: Some("abc".into()),
            updated_since: Some(1_700_000_000_000),
        };
        assert_eq!(
            q.pairs(),
            vec![
                ("limit", "5".to_string()),
                ("cursor", "abc".to_string()),
                ("updated_since", "1700000000000".to_string())
            ]
        );
        let f = AuditFilter {
            user: Some("ana".into()),
            ..AuditFilter::default()
        };
        assert_eq!(f.pairs(), vec![("user", "ana".to_string())]);
    }

    #[test]
    fn plan_fetches_answer_the_plan_and_its_etag_or_not_modified() {
        let body = json!({"id":"P","version":["ab"],"plan":{"title":"T"}}).to_string();
        let fresh = interpret_fetch(StatusCode::OK, Some("\"v1\"".into()), body.as_bytes());
        assert!(matches!(
            fresh,
            Ok(PlanFetch::Fresh(ref doc, ref etag)) if doc.id == "P" && etag == "\"v1\""
        ));
        let not_modified = interpret_fetch(StatusCode::NOT_MODIFIED, None, b"");
        assert!(matches!(not_modified, Ok(PlanFetch::NotModified)));
        let missing = interpret_fetch(StatusCode::OK, None, body.as_bytes());
        assert!(matches!(
            missing,
            Err(ClientError::UnexpectedResponse { status: 200, .. })
        ));
        let not_found = json!({"type":"/problems/not-found","title":"Not found","status":404});
        let err = interpret_fetch(
            StatusCode::NOT_FOUND,
            None,
            not_found.to_string().as_bytes(),
        );
        assert_eq!(
            err.err().and_then(|e| e.code().map(str::to_string)),
            Some("not-found".into())
        );
    }

    #[test]
    fn ops_bodies_have_the_contract_shape() {
        let ops = vec![Op {
            op: "replace".into(),
            path: "/vision".into(),
            value: Some(json!("We stay together")),
            from: None,
        }];
        let body = OpsRequest {
            base_version: None,
            ops,
        };
        let v = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(
            v["ops"],
            json!([{"op":"replace","path":"/vision","value":"We stay together"}])
        );
    }
}
