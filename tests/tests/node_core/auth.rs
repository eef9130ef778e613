//! Login, refresh-token rotation and the refusal of every bad access token.

use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use wrapsync_shared::api::TokenResponse;
use wrapsync_tests::users::{CAREGIVER, FACILITATOR};
use wrapsync_tests::{
    decode_claims, forge_alg_none, password_of, sign_hs256, Backend, Reply, TestNode,
};

on_both_backends!(
    login_answers_tokens_and_refuses_wrong_passwords,
    refresh_rotates_and_a_used_refresh_token_is_refused,
);

fn login_answers_tokens_and_refuses_wrong_passwords(backend: Backend) {
    let node = TestNode::spawn(backend);
    let health = node.get_anon("/healthz");
    health.assert_status(200);
    assert_eq!(health.json, json!({ "status": "ok" }));

    let tokens = node.login_tokens(FACILITATOR);
    assert_eq!(tokens.token_type, "Bearer");
    assert!(tokens.expires_in > 0, "expires_in: {}", tokens.expires_in);
    assert!(!tokens.access_token.is_empty());
    assert!(!tokens.refresh_token.is_empty());
    node.get("/v1/plans", &tokens.access_token)
        .assert_status(200);

    let wrong = node.try_login(FACILITATOR, "not-the-password");
    wrong.assert_problem(401, "invalid-credentials");
    // An unknown user is refused exactly like a wrong password: the answer
    // must not tell which usernames exist.
    let unknown = node.try_login("nobody", &password_of("nobody"));
    unknown.assert_problem(401, "invalid-credentials");
    assert_eq!(wrong.json, unknown.json);
    // Another user's password is wrong too.
    node.try_login(FACILITATOR, &password_of(CAREGIVER))
        .assert_problem(401, "invalid-credentials");
}

fn refresh_rotates_and_a_used_refresh_token_is_refused(backend: Backend) {
    let node = TestNode::spawn(backend);
    let refresh =
        |token: &str| node.post_anon("/v1/auth/refresh", &json!({ "refresh_token": token }));

    let first = node.login_tokens(CAREGIVER);
    let second: TokenResponse = refresh(&first.refresh_token).typed(200);
    assert_eq!(second.token_type, "Bearer");
    assert_ne!(second.refresh_token, first.refresh_token);
    node.get("/v1/plans", &second.access_token)
        .assert_status(200);
    let third: TokenResponse = refresh(&second.refresh_token).typed(200);
    assert_ne!(third.refresh_token, second.refresh_token);
    node.get("/v1/plans", &third.access_token)
        .assert_status(200);

    // Each refresh token works once.
    refresh(&second.refresh_token).assert_problem(401, "invalid-refresh-token");
    refresh(&first.refresh_token).assert_problem(401, "invalid-refresh-token");
    refresh("not-a-refresh-token").assert_problem(401, "invalid-refresh-token");
    // An access token is not a refresh token.
    refresh(&third.access_token).assert_problem(401, "invalid-refresh-token");
}

fn now_secs() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(now.as_secs()).expect("seconds fit in i64")
}

fn with(claims: &Map<String, Value>, changes: &[(&str, Value)]) -> Map<String, Value> {
    let mut claims = claims.clone();
    for (key, value) in changes {
        claims.insert((*key).to_string(), value.clone());
    }
    claims
}

#[track_caller]
fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    reply.assert_problem(401, "unauthorized");
}

#[test]
fn missing_garbage_forged_and_expired_tokens_are_401() {
    let node = TestNode::spawn(Backend::Sqlite);
    let token = node.login(FACILITATOR);
    let claims = decode_claims(&token).expect("a JWT payload");
    assert_eq!(
        claims.get("iss"),
        Some(&json!(format!("wrapsync:{}", node.node_id()))),
        "iss of {claims:?}"
    );
    assert_eq!(
        claims.get("aud"),
        Some(&json!("wrapsync-api")),
        "aud of {claims:?}"
    );
    assert!(
        claims.get("sub").is_some_and(Value::is_string),
        "sub of {claims:?}"
    );
    let lifetime =
        claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or_default();
    let expires_in = node.login_tokens(FACILITATOR).expires_in;
    assert_eq!(
        u64::try_from(lifetime).ok(),
        Some(expires_in),
        "exp - iat is expires_in"
    );

    // Control: the same claims re-signed with the configured secret are
    // accepted, so each refusal below is about the one thing we changed.
    let resigned = sign_hs256(&claims, node.jwt_secret()).expect("signing");
    node.get("/v1/plans", &resigned).assert_status(200);

    let now = now_secs();
    let expired = with(
        &claims,
        &[
            ("exp", json!(now - 3600)),
            ("iat", json!(now - 7200)),
            ("nbf", json!(now - 7200)),
        ],
    );
    let expired = sign_hs256(&expired, node.jwt_secret()).expect("signing");
    assert_unauthorized(&node.get("/v1/plans", &expired), "expired token");

    let other_secret = sign_hs256(&claims, "not-the-node-secret").expect("signing");
    assert_unauthorized(&node.get("/v1/plans", &other_secret), "wrong secret");

    let wrong_audience = with(&claims, &[("aud", json!("someone-else"))]);
    let wrong_audience = sign_hs256(&wrong_audience, node.jwt_secret()).expect("signing");
    assert_unauthorized(&node.get("/v1/plans", &wrong_audience), "wrong aud");

    let wrong_issuer = with(&claims, &[("iss", json!("wrapsync:another-county"))]);
    let wrong_issuer = sign_hs256(&wrong_issuer, node.jwt_secret()).expect("signing");
    assert_unauthorized(&node.get("/v1/plans", &wrong_issuer), "wrong iss");

    let unsigned = forge_alg_none(&claims);
    assert_unauthorized(&node.get("/v1/plans", &unsigned), "alg: none");

    // A valid signature over other claims: swap in a tampered payload.
    let mut parts: Vec<&str> = token.split('.').collect();
    let tampered_claims = with(&claims, &[("sub", json!("someone-else"))]);
    let tampered_token = forge_alg_none(&tampered_claims);
    parts[1] = tampered_token.split('.').nth(1).expect("a payload");
    let tampered = parts.join(".");
    assert_unauthorized(&node.get("/v1/plans", &tampered), "tampered payload");

    assert_unauthorized(&node.get_anon("/v1/plans"), "no token");
    assert_unauthorized(&node.get("/v1/plans", "garbage"), "garbage token");
    assert_unauthorized(&node.get("/v1/plans", ""), "empty token");
    let basic = node.send(
        node.request(reqwest::Method::GET, "/v1/plans")
            .basic_auth(FACILITATOR, Some(password_of(FACILITATOR))),
    );
    assert_unauthorized(&basic, "basic auth");
    let no_scheme = node.send(
        node.request(reqwest::Method::GET, "/v1/plans")
            .header("Authorization", token.as_str()),
    );
    assert_unauthorized(&no_scheme, "token without the Bearer scheme");

    // Writes are guarded the same way.
    assert_unauthorized(
        &node.post("/v1/plans", &expired, &json!({ "title": "Sneaky" })),
        "expired token on a write",
    );
    assert_unauthorized(
        &node.post_anon("/v1/plans", &json!({ "title": "Sneaky" })),
        "no token on a write",
    );
    // And the real token still works.
    assert!(node.list_all_plans(&token).is_empty());
}
