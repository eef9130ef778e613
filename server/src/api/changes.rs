//! `/v1/changes`: which of the caller's plans changed since a cursor, as a
//! page or as a Server-Sent Events stream, so an app learns what to sync
//! without polling every plan.

use super::extract::AuthUser;
use crate::app::App;
use crate::audit::{Action, Audit};
use crate::error::ApiError;
use crate::openapi::problems::INTERNAL;
use crate::plans::Actor;
use crate::streams::{Registration, Wake};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::time::Duration;
use wrapsync_shared::api::{ChangeFeed, PlanChange};
use wrapsync_shared::roles::Role;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// A `cursor` this node gave out (`0` or none: from the start).
    since: Option<String>,
    /// Plans per page, 1–500 (default 100); the stream ignores it.
    limit: Option<i64>,
}

const MAX_PAGE: i64 = 500;
/// A comment line every so often keeps proxies and phones from dropping an
/// idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn parse_since(since: Option<&str>) -> Result<i64, ApiError> {
    match since {
        None | Some("") => Ok(0),
        Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::InvalidRequest("`since` must be a cursor this node gave out".into())
        }),
    }
}

/// The caller's plans that changed after a cursor, each once.
#[utoipa::path(
    get,
    path = "/v1/changes",
    operation_id = "list_changes",
    tag = "changes",
    security(("bearer" = [])),
    params(FeedParams),
    responses(
        (status = 200, description = "Changed plans and the cursor to continue from.", body = ChangeFeed),
        (status = 400, description = "`invalid-request`: a `since` this node did not give out, `limit` outside 1–500, or an unknown parameter."),
        (status = 500, description = INTERNAL),
    )
)]
pub async fn page(
    app: web::Data<App>,
    user: AuthUser,
    params: web::Query<FeedParams>,
) -> Result<HttpResponse, ApiError> {
    let since = parse_since(params.since.as_deref())?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let changes = app.plans.changes(&user.actor, since, limit).await?;
    let cursor = changes
        .last()
        .map_or_else(|| since.to_string(), |c| c.cursor.clone());
    app.plans.audit(
        Audit::new(&user.actor, Action::ChangesRead)
            .detail(format!("{} plans", changes.len()))
            .at(&user.meta),
    );
    Ok(HttpResponse::Ok().json(ChangeFeed { changes, cursor }))
}

/// The same feed as `text/event-stream`: one `change` event per changed
/// plan (`id:` is its cursor, so `Last-Event-ID` resumes after a drop). The
/// stream ends when the node stops.
#[utoipa::path(
    get,
    path = "/v1/changes/stream",
    operation_id = "stream_changes",
    tag = "changes",
    security(("bearer" = [])),
    params(
        FeedParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The last event's `id` after a drop: resumes after it (instead of `since`)."),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `event: change`, `id:` the cursor, `data:` a `PlanChange`; a keep-alive comment every 15 s.",
            content_type = "text/event-stream"),
        (status = 400, description = "`invalid-request`: a `since` or `Last-Event-ID` this node did not give out, or an unknown parameter."),
        (status = 429, description = "`rate-limited`: this process has `max_streams` streams open; `Retry-After` says when to come back. (A user past `max_streams_per_user` is not refused: their oldest stream ends, with `retry: 30000`.)"),
    )
)]
pub async fn stream(
    app: web::Data<App>,
    user: AuthUser,
    req: HttpRequest,
    params: web::Query<FeedParams>,
) -> Result<HttpResponse, ApiError> {
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    let since = parse_since(resume.or(params.since.as_deref()))?;
    // Registered before its backlog is read: whatever is committed from
    // here on is handed to it by the fan-out (`crate::streams`).
    let streams = app.streams.clone();
    let registration = streams
        .open(
            &app.plans,
            &user.actor.username,
            user.actor.role == Role::Supervisor,
        )
        .await?;
    app.plans
        .audit(Audit::new(&user.actor, Action::ChangesStream).at(&user.meta));
    let feed = Feed {
        registration,
        stopping: app.plans.stopping(),
        app: app.into_inner(),
        actor: user.actor,
        session_id: user.session_id,
        since,
        first: true,
        more: false,
        ending: false,
    };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next().await?;
        Some((Ok::<_, actix_web::Error>(chunk), feed))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

/// One open change-feed stream.
struct Feed {
    app: std::sync::Arc<App>,
    actor: Actor,
    /// The login session the stream was opened in: once it is revoked (a
    /// reused refresh token, a disabled user) the stream ends, at the
    /// latest with the next keep-alive.
    session_id: String,
    since: i64,
    /// Where the fan-out hands this stream its user's changes.
    registration: Registration,
    stopping: tokio::sync::watch::Receiver<bool>,
    first: bool,
    /// The last read of the backlog was a full page: read on at once.
    more: bool,
    /// Replaced by a newer stream of the user: ends after its goodbye.
    ending: bool,
}

impl Feed {
    /// The next piece of the stream, or `None` when it ends.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.ending
                || *self.stopping.borrow()
                || self.app.revoked_sessions.is_revoked(&self.session_id)
            {
                return None;
            }
            let first = std::mem::take(&mut self.first);
            let read = std::mem::take(&mut self.more) || first;
            if !read {
                // This user's changes, a keep-alive, or the end.
                let slot = self.registration.slot.clone();
                let woke = tokio::select! {
                    _ = self.stopping.changed() => return None,
                    woke = tokio::time::timeout(KEEP_ALIVE, slot.woken()) => woke,
                };
                match woke {
                    Err(_) => return Some(Bytes::from_static(b": keep-alive\n\n")),
                    Ok(Wake::Replaced) => {
                        self.ending = true;
                        return Some(Bytes::from_static(crate::streams::REPLACED.as_bytes()));
                    }
                    Ok(Wake::Changes(changes)) => {
                        let chunk = self.events(changes);
                        if !chunk.is_empty() {
                            return Some(Bytes::from(chunk));
                        }
                        continue;
                    }
                    Ok(Wake::Lagged) => {}
                }
            }
            // The backlog (opening, or after falling behind): one query for
            // this stream alone.
            self.app.streams.metrics.stream_query();
            let changes = self
                .app
                .plans
                .changes(&self.actor, self.since, MAX_PAGE)
                .await
                .ok()?;
            self.more = changes.len() as i64 >= MAX_PAGE;
            let chunk = self.events(changes);
            if !chunk.is_empty() {
                return Some(Bytes::from(chunk));
            }
            if first {
                return Some(Bytes::from_static(b": connected\n\n"));
            }
        }
    }

    /// The SSE text for those of `changes` after the stream's cursor,
    /// which moves past them.
    fn events(&mut self, changes: Vec<PlanChange>) -> String {
        let mut out = String::new();
        for change in changes {
            let Ok(cursor) = change.cursor.parse::<i64>() else {
                continue;
            };
            if cursor <= self.since {
                continue;
            }
            self.since = cursor;
            let data = serde_json::to_string(&change).unwrap_or_default();
            out.push_str(&format!(
                "id: {}\nevent: change\ndata: {data}\n\n",
                change.cursor
            ));
        }
        out
    }
}
