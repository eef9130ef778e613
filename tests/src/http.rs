//! Requests to a [`TestNode`] and what came back. Transport failures panic
//! with the node's log (the node died or hung: the test has failed anyway);
//! HTTP statuses never do — tests assert on them.

use crate::accounts::password_of;
use crate::TestNode;
use reqwest::blocking::RequestBuilder;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use wrapsync_shared::api::{
    AuditPage, History, LoginRequest, OpsResponse, PlanDocument, PlanList, TokenResponse,
};

/// One HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body as JSON, or `Null` when it is empty or not JSON.
    pub json: Value,
}

impl Reply {
    /// Sends `request` and reads the whole answer; a transport failure is
    /// the error.
    pub fn read(request: RequestBuilder) -> Result<Reply, String> {
        let response = request
            .send()
            .map_err(|e| format!("request failed: {}", chain(&e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .map_err(|e| format!("reading a response failed: {}", chain(&e)))?
            .to_vec();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            body,
            json,
        })
    }

    /// A header's value, if present and ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text, for failure messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Panics unless the status is `status`, showing the body.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "expected HTTP {status}, got {}: {}",
            self.status,
            self.text()
        );
        self
    }

    /// Asserts the status and decodes the body as `T`.
    #[track_caller]
    pub fn typed<T: DeserializeOwned>(&self, status: u16) -> T {
        self.assert_status(status);
        match serde_json::from_slice(&self.body) {
            Ok(value) => value,
            Err(e) => panic!(
                "HTTP {status} body is not a {}: {e}: {}",
                std::any::type_name::<T>(),
                self.text()
            ),
        }
    }

    /// The problem `type` of an error body (`/problems/<code>`).
    pub fn problem_type(&self) -> Option<&str> {
        self.json.get("type").and_then(Value::as_str)
    }

    /// Asserts an RFC 9457 problem: the status, `application/problem+json`,
    /// `type` = `/problems/<code>`, a title, and `status` echoed in the body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/problem+json"),
            "HTTP {status} `{code}` should be application/problem+json, was {content_type:?}: {}",
            self.text()
        );
        assert_eq!(
            self.problem_type(),
            Some(format!("/problems/{code}").as_str()),
            "problem type of HTTP {status}: {}",
            self.text()
        );
        assert!(
            self.json["title"].as_str().is_some_and(|t| !t.is_empty()),
            "problem without a title: {}",
            self.text()
        );
        assert_eq!(
            self.json["status"],
            json!(status),
            "problem body status: {}",
            self.text()
        );
        self
    }
}

impl TestNode {
    /// A request to `path` (e.g. `/v1/plans`) on this node, for tests that
    /// need headers or bodies the typed helpers do not send.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url()))
    }

    /// Sends a request built with [`TestNode::request`].
    #[track_caller]
    pub fn send(&self, request: RequestBuilder) -> Reply {
        match Reply::read(request) {
            Ok(reply) => reply,
            Err(e) => panic!("{e}\n--- node log ---\n{}", self.log()),
        }
    }

    /// `GET path` with a bearer token.
    #[track_caller]
    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.send(self.request(Method::GET, path).bearer_auth(token))
    }

    /// `GET path` without credentials.
    #[track_caller]
    pub fn get_anon(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path))
    }

    /// `POST path` with a JSON body and a bearer token.
    #[track_caller]
    pub fn post(&self, path: &str, token: &str, body: &impl Serialize) -> Reply {
        self.send(
            self.request(Method::POST, path)
                .bearer_auth(token)
                .json(body),
        )
    }

    /// `POST path` with a JSON body and no credentials.
    #[track_caller]
    pub fn post_anon(&self, path: &str, body: &impl Serialize) -> Reply {
        self.send(self.request(Method::POST, path).json(body))
    }

    /// `POST /v1/auth/login` with a test user's password.
    #[track_caller]
    pub fn try_login(&self, username: &str, password: &str) -> Reply {
        let body = LoginRequest {
            username: username.to_string(),
            password: password.to_string(),
        };
        self.post_anon("/v1/auth/login", &body)
    }

    /// Logs a test user in and answers both tokens.
    #[track_caller]
    pub fn login_tokens(&self, username: &str) -> TokenResponse {
        self.try_login(username, &password_of(username)).typed(200)
    }

    /// Logs a test user in and answers their access token.
    #[track_caller]
    pub fn login(&self, username: &str) -> String {
        self.login_tokens(username).access_token
    }

    /// Makes this node trust `peer`, reaching it at `url` (its own URL,
    /// or a proxy or TLS front before it), as its supervisor would through
    /// the admin API; asserts 201.
    #[track_caller]
    pub fn trust(&self, peer: &TestNode, url: &str) {
        let identity = peer.get_anon("/federation/v1/identity");
        let sam = self.login(crate::users::SUPERVISOR);
        self.post(
            "/v1/admin/peers",
            &sam,
            &serde_json::json!({"id": peer.node_id(), "url": url, "public_key": identity.json["public_key"]}),
        )
        .assert_status(201);
    }

    /// `POST /v1/plans` as `token`; asserts 201.
    #[track_caller]
    pub fn create_plan(&self, token: &str, title: &str) -> PlanDocument {
        self.post("/v1/plans", token, &json!({ "title": title }))
            .typed(201)
    }

    /// `GET /v1/plans/{id}`; asserts 200.
    #[track_caller]
    pub fn read_plan(&self, token: &str, id: &str) -> PlanDocument {
        self.get(&format!("/v1/plans/{id}"), token).typed(200)
    }

    /// `POST /v1/plans/{id}/ops` with `ops` (a JSON array) at `base`, or at
    /// the current version when `base` is `None`.
    #[track_caller]
    pub fn post_ops(&self, token: &str, id: &str, base: Option<&[String]>, ops: Value) -> Reply {
        let mut body = json!({ "ops": ops });
        if let Some(base) = base {
            body["base_version"] = json!(base);
        }
        self.post(&format!("/v1/plans/{id}/ops"), token, &body)
    }

    /// [`TestNode::post_ops`] at the current version; asserts 200.
    #[track_caller]
    pub fn apply_ops(&self, token: &str, id: &str, ops: Value) -> OpsResponse {
        self.post_ops(token, id, None, ops).typed(200)
    }

    /// Puts Carla, the test caregiver ([`crate::users::CAREGIVER`]), on
    /// `plan`'s team as `token`; answers her roster member id.
    #[track_caller]
    pub fn add_caregiver(&self, token: &str, plan: &str) -> String {
        let added = self.apply_ops(
            token,
            plan,
            json!([{"op":"add","path":"/team","value":{"name":"Carla","role":"caregiver","user":crate::users::CAREGIVER}}]),
        );
        added.results[0]
            .id
            .clone()
            .unwrap_or_else(|| panic!("no member id for Carla: {:?}", added.results))
    }

    /// `GET /v1/plans?query` (query without the `?`); asserts 200.
    #[track_caller]
    pub fn list_plans(&self, token: &str, query: &str) -> PlanList {
        self.get(&format!("/v1/plans?{query}"), token).typed(200)
    }

    /// Every plan `token` may see, following `next` until the end.
    #[track_caller]
    pub fn list_all_plans(&self, token: &str) -> Vec<wrapsync_shared::api::PlanSummary> {
        let mut plans = Vec::new();
        let mut query = String::new();
        loop {
            let page = self.list_plans(token, &query);
            plans.extend(page.plans);
            match page.next {
                Some(next) => query = format!("cursor={}", encode_query(&next)),
                None => return plans,
            }
        }
    }

    /// `GET /v1/plans/{id}/history`; asserts 200.
    #[track_caller]
    pub fn history(&self, token: &str, id: &str) -> History {
        self.get(&format!("/v1/plans/{id}/history"), token)
            .typed(200)
    }

    /// `GET /v1/audit?query`; asserts 200.
    #[track_caller]
    pub fn audit(&self, token: &str, query: &str) -> AuditPage {
        self.get(&format!("/v1/audit?{query}"), token).typed(200)
    }
}

/// Percent-encodes a query parameter value (cursors are opaque).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An error and its causes, outermost first: reqwest's own message ("error
/// sending request") says nothing of whether the connection was refused,
/// reset or closed early.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
