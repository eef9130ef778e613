//! `/v1/auth`: login and refresh-token rotation.

use super::extract::{request_meta, JsonBody};
use crate::app::App;
use crate::audit::{Action, Audit, Outcome, Principal};
use crate::auth::passwords::{dummy_hash, verify_password};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::openapi::problems::{INTERNAL, MALFORMED_BODY};
use crate::store::users::{
    insert_session, rotate_refresh, user_by_id, user_by_name, Refreshed, Session, User,
};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::time::Instant;
use wrapsync_shared::api::{LoginRequest, RefreshRequest, TokenResponse};
use wrapsync_shared::roles::Role;

/// Logs in: a short-lived access token and a single-use refresh token.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens.", body = TokenResponse),
        (status = 400, description = MALFORMED_BODY),
        (status = 401, description = "`invalid-credentials`: unknown username, wrong password or disabled user."),
        (status = 429, description = "`rate-limited`: too many logins from this address, or too many wrong passwords for this account from this network (or, under a spread attack, from any): no password is checked until `Retry-After` seconds have passed. Locks double from 1 s to 15 min."),
        (status = 500, description = INTERNAL),
        (status = 503, description = "`busy`: every password check (one per core) stayed taken for 5 s; `Retry-After` says when to retry."),
    )
)]
pub async fn login(
    app: web::Data<App>,
    req: HttpRequest,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let meta = request_meta(&req);
    // Before the password is even hashed: this is what slows guessing.
    let address = meta.remote.clone().unwrap_or_default();
    if let Err(e) = crate::limits::admit(app.limits.login_per_ip.as_ref(), &address) {
        let tried = Principal::Claimed(Some(body.username.clone()));
        app.plans
            .audit(Audit::new(tried, Action::AuthLogin).refused(&e).at(&meta));
        return Err(e);
    }
    // Then per account: a locked account's password is not even checked.
    // An attempt let through counts as a failure until it succeeds.
    if let Err(wait) = app
        .login_throttle
        .admit(&body.username, &address, Instant::now())
    {
        let e = ApiError::RateLimited(crate::limits::retry_after_secs(wait));
        let tried = Principal::Claimed(Some(body.username.clone()));
        app.plans.audit(
            Audit::new(tried, Action::AuthLogin)
                .outcome(Outcome::of(e.problem_type()))
                .detail("account locked after failed logins")
                .at(&meta),
        );
        return Err(e);
    }
    let username = body.username.clone();
    let found = check_password(&app, body).await?;
    let found = match found {
        Some(user) => {
            let session_id = ulid::Ulid::new().to_string();
            let refresh = refresh_token(&session_id, &refresh_secret());
            let now = now_ms();
            let session = Session {
                id: session_id,
                user_id: user.id.clone(),
                refresh_hash: hash_token(&refresh),
                created_at: now,
                expires_at: now + app.config.refresh_token_ttl_secs as i64 * 1000,
                revoked: false,
                revoked_at: None,
            };
            let session_id = session.id.clone();
            app.blocking(move |conn| insert_session(conn, &session))
                .await?;
            Some((user, session_id, refresh))
        }
        None => None,
    };
    // `admit` counted the attempt as a failure; a success takes it back.
    if found.is_some() {
        app.login_throttle.succeeded(&username, &address);
    }
    let user = found.as_ref().map(|(u, _, _)| u);
    app.plans
        .audit(login_audit(Action::AuthLogin, user, Some(username)).at(&meta));
    let (user, session_id, refresh) = found.ok_or(ApiError::InvalidCredentials)?;
    tokens(&app, &user, &session_id, refresh)
}

/// The user whose password `body` gives, if it is right (and the user not
/// disabled). A name no user can have is refused without any work; any
/// other costs one argon2 check (against a dummy hash for an unknown name,
/// so a wrong name takes as long as a wrong password), made with no
/// database connection held and at most `password_checks` at once: logins
/// from many addresses cannot take the connections plans are read with,
/// nor the memory (19 MiB a check) of more than a few checks. A login that
/// waits `PASSWORD_CHECK_WAIT` for its turn is `503 busy`.
async fn check_password(app: &App, body: LoginRequest) -> Result<Option<User>, ApiError> {
    if !crate::users::valid_username(&body.username) {
        return Ok(None);
    }
    let username = body.username;
    let user = app
        .blocking(move |conn| Ok(user_by_name(conn, &username)?.filter(|u| !u.disabled)))
        .await?;
    let permit = tokio::time::timeout(
        PASSWORD_CHECK_WAIT,
        app.password_checks.clone().acquire_owned(),
    )
    .await
    .map_err(|_| ApiError::Busy)?
    .map_err(|_| ApiError::Busy)?;
    let password = body.password;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let hash = user
            .as_ref()
            .map_or(dummy_hash(), |u| u.password_hash.as_str());
        let ok = verify_password(&password, hash);
        user.filter(|_| ok)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check failed: {e}")))
}

/// How long a login waits for a password check to be free before `503`.
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Trades a refresh token for new tokens; the old one is used up. Using a
/// used one again ends the session: its refresh token and every access
/// token it issued stop working (RFC 9700 §4.14.2), since either the client
/// or a thief holds a copy and the node cannot tell which.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Tokens, with a new refresh token.", body = TokenResponse),
        (status = 400, description = MALFORMED_BODY),
        (status = 401, description = "`invalid-refresh-token`: unknown, used, expired or revoked, or its user is disabled. A used one also revokes its session: the newer refresh token and the session's access tokens are refused from then on."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn refresh(
    app: web::Data<App>,
    req: HttpRequest,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let meta = request_meta(&req);
    let old_hash = hash_token(&body.refresh_token);
    // Tokens name their session (`refresh_token`); older ones do not.
    let session_id = body
        .refresh_token
        .split_once('.')
        .map(|(sid, _)| sid.to_string())
        .filter(|sid| sid.len() <= 64);
    let secret = refresh_secret();
    let new_secret = secret.clone();
    let outcome = app
        .blocking(move |conn| {
            let new_hash = |sid: &str| hash_token(&refresh_token(sid, &new_secret));
            let refreshed =
                rotate_refresh(conn, session_id.as_deref(), &old_hash, new_hash, now_ms())?;
            let user = match &refreshed {
                Refreshed::Rotated(_, user_id) => {
                    user_by_id(conn, user_id)?.filter(|u| !u.disabled)
                }
                _ => None,
            };
            Ok((refreshed, user))
        })
        .await?;
    // Whose session a reused token ended, for the audit row.
    let (found, reused_by) = match outcome {
        (Refreshed::Rotated(session_id, _), Some(user)) => (Some((user, session_id)), None),
        (Refreshed::Reused(session_id, user_id), _) => {
            app.revoked_sessions.insert(&session_id, now_ms());
            tracing::warn!(session = %session_id, "refresh token reused: session revoked");
            (None, Some(user_id))
        }
        _ => (None, None),
    };
    let audit = match reused_by {
        Some(user_id) => Audit::new(Principal::Owner(user_id), Action::AuthRefresh)
            .outcome(Outcome::Denied)
            .detail("refresh token reused: session revoked"),
        None => login_audit(Action::AuthRefresh, found.as_ref().map(|(u, _)| u), None),
    };
    app.plans.audit(audit.at(&meta));
    let (user, session_id) = found.ok_or(ApiError::InvalidRefreshToken)?;
    let refresh = refresh_token(&session_id, &secret);
    tokens(&app, &user, &session_id, refresh)
}

/// The audit row of a login or refresh: `ok` for `user`, else `denied`,
/// naming the username that was tried (if any).
fn login_audit(action: Action, user: Option<&User>, tried: Option<String>) -> Audit {
    match user {
        Some(u) => Audit::new(
            Principal::User {
                id: u.id.clone(),
                username: u.username.clone(),
                role: u.role.clone(),
            },
            action,
        ),
        None => Audit::new(Principal::Claimed(tried), action).outcome(Outcome::Denied),
    }
}

fn tokens(
    app: &App,
    user: &User,
    session_id: &str,
    refresh_token: String,
) -> Result<HttpResponse, ApiError> {
    let role: Role = user.role.parse().map_err(ApiError::Internal)?;
    let access_token = app
        .tokens
        .issue(&user.id, &user.username, role, session_id)
        .map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenResponse {
            access_token,
            refresh_token,
            token_type: "Bearer".into(),
            expires_in: app.tokens.ttl_secs(),
        }))
}

/// 256 random bits, URL-safe: a refresh token's secret part.
fn refresh_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A refresh token: the session's id, a dot, the secret. Naming the
/// session is what lets a retired token be caught: it finds its session,
/// whose current token it is not, and the session is revoked.
fn refresh_token(session_id: &str, secret: &str) -> String {
    format!("{session_id}.{secret}")
}

/// Refresh tokens are stored hashed: a copy of the database cannot log in.
fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
