//! Users of a node and their login sessions.

use crate::db::schema::{actors, sessions, users};
use crate::db::{DbConnection, StoreError};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: i64,
    pub disabled: bool,
}

pub fn insert_user(conn: &mut DbConnection, user: &User) -> Result<(), StoreError> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)?;
    Ok(())
}

pub fn user_by_name(conn: &mut DbConnection, username: &str) -> Result<Option<User>, StoreError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

pub fn user_by_id(conn: &mut DbConnection, id: &str) -> Result<Option<User>, StoreError> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub refresh_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
    /// When it was revoked (Unix ms), for `recently_revoked`.
    pub revoked_at: Option<i64>,
}

pub fn insert_session(conn: &mut DbConnection, session: &Session) -> Result<(), StoreError> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)?;
    Ok(())
}

/// What presenting a refresh token came to.
#[derive(Debug, PartialEq)]
pub enum Refreshed {
    /// It was the session's current token, now replaced by the new one:
    /// `(session id, user id)`.
    Rotated(String, String),
    /// It named a live session but was not its current token: a retired
    /// token used again, so someone holds a copy. The session is now
    /// revoked (RFC 9700 §4.14.2).
    Reused(String, String),
    /// Unknown, expired or already revoked.
    Refused,
}

/// Trades refresh token `old_hash` of session `session_id` (`None`: a
/// token issued before tokens named their session, found by its hash) for
/// the token whose hash `new_hash` makes for the session's id, if and only if it is still the session's current token and
/// the session is live: of two racing refreshes one wins and the other
/// counts as reuse, as a stolen copy would.
pub fn rotate_refresh(
    conn: &mut DbConnection,
    session_id: Option<&str>,
    old_hash: &str,
    new_hash: impl FnOnce(&str) -> String,
    now: i64,
) -> Result<Refreshed, StoreError> {
    let live = sessions::table
        .filter(sessions::revoked.eq(false))
        .filter(sessions::expires_at.gt(now))
        .select((
            sessions::id,
            sessions::user_id,
            sessions::refresh_hash,
            sessions::retired_hashes,
        ));
    let found: Option<(String, String, String, String)> = match session_id {
        Some(id) => live.filter(sessions::id.eq(id)).first(conn).optional()?,
        None => live
            .filter(sessions::refresh_hash.eq(old_hash))
            .first(conn)
            .optional()?,
    };
    let Some((session_id, user_id, current, retired)) = found else {
        return Ok(Refreshed::Refused);
    };
    if current == old_hash {
        let updated = diesel::update(
            sessions::table
                .filter(sessions::id.eq(&session_id))
                .filter(sessions::refresh_hash.eq(old_hash))
                .filter(sessions::revoked.eq(false)),
        )
        .set((
            sessions::refresh_hash.eq(new_hash(&session_id)),
            sessions::retired_hashes.eq(retire(&retired, old_hash)),
        ))
        .execute(conn)?;
        if updated == 1 {
            return Ok(Refreshed::Rotated(session_id, user_id));
        }
        // Another refresh with the same token won the race a moment ago:
        // the token is retired now, and this is its second use.
    } else if !retired.split(' ').any(|h| h == old_hash) {
        // Not a token this session ever gave out (a guess built from a
        // session id seen in an access token): refused, the session kept,
        // so knowing a session id is not enough to end it.
        return Ok(Refreshed::Refused);
    }
    revoke_session(conn, &session_id, now)?;
    Ok(Refreshed::Reused(session_id, user_id))
}

/// How many retired refresh-token hashes a session keeps: a copy used
/// again after this many newer refreshes is only refused, not detected as
/// reuse (the row stays about 1 KB however long the session lives).
pub const RETIRED_KEPT: usize = 16;

/// `retired` (space-separated hashes, newest last) with `hash` added, the
/// oldest dropped past [`RETIRED_KEPT`].
fn retire(retired: &str, hash: &str) -> String {
    let mut kept: Vec<&str> = retired.split(' ').filter(|h| !h.is_empty()).collect();
    kept.push(hash);
    let skip = kept.len().saturating_sub(RETIRED_KEPT);
    kept[skip..].join(" ")
}

/// Revokes session `id` (if live), stamping when.
fn revoke_session(conn: &mut DbConnection, id: &str, now: i64) -> Result<usize, StoreError> {
    Ok(diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::revoked.eq(false)),
    )
    .set((sessions::revoked.eq(true), sessions::revoked_at.eq(now)))
    .execute(conn)?)
}

/// Revokes every live session of a user, stamping when.
fn revoke_user_sessions(
    conn: &mut DbConnection,
    user_id: &str,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked.eq(false)),
    )
    .set((sessions::revoked.eq(true), sessions::revoked_at.eq(now)))
    .execute(conn)?)
}

/// Disables (or enables) a user: a disabled user cannot log in or refresh,
/// and every session of theirs is revoked, so the access tokens they hold
/// stop working on every process within `auth::sessions::POLL_EVERY`.
/// Answers the user, `None` if there is no such user.
pub fn set_disabled(
    conn: &mut DbConnection,
    username: &str,
    disabled: bool,
    now: i64,
) -> Result<Option<(User, usize)>, StoreError> {
    conn.transaction(|conn| {
        let Some(user) = user_by_name(conn, username)? else {
            return Ok(None);
        };
        diesel::update(users::table.find(&user.id))
            .set(users::disabled.eq(disabled))
            .execute(conn)?;
        let revoked = if disabled {
            revoke_user_sessions(conn, &user.id, now)?
        } else {
            0
        };
        Ok(Some((User { disabled, ..user }, revoked)))
    })
}

/// Sessions revoked at `since` (Unix ms) or later: those whose access
/// tokens may still be unexpired.
pub fn recently_revoked(
    conn: &mut DbConnection,
    since: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let rows: Vec<(String, Option<i64>)> = sessions::table
        .filter(sessions::revoked_at.ge(since))
        .select((sessions::id, sessions::revoked_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, at)| (id, at.unwrap_or(since)))
        .collect())
}

/// Binds an Automerge actor to a user the first time it is seen.
pub fn bind_actor(
    conn: &mut DbConnection,
    actor: &str,
    user_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let existing: Option<String> = actors::table
        .find(actor)
        .select(actors::user_id)
        .first(conn)
        .optional()?;
    if existing.is_none() {
        // Another process may bind it meanwhile (a device syncing through
        // both): the first binding stands.
        let insert = diesel::insert_into(actors::table)
            .values((
                actors::actor.eq(actor),
                actors::user_id.eq(user_id),
                actors::first_seen.eq(now),
            ))
            .on_conflict_do_nothing();
        crate::on_backend!(conn, |c| insert.execute(c))?;
    }
    Ok(())
}

/// Usernames of the users the given actors are bound to.
/// Gives an actor bound to a node's placeholder account (`@node`) the
/// person that node has since named for it.
pub fn rebind_actor(conn: &mut DbConnection, actor: &str, user_id: &str) -> Result<(), StoreError> {
    diesel::update(actors::table.find(actor))
        .set(actors::user_id.eq(user_id))
        .execute(conn)?;
    Ok(())
}

pub fn actor_users(
    conn: &mut DbConnection,
    actor_ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(actors::table
        .inner_join(users::table.on(users::id.eq(actors::user_id)))
        .filter(actors::actor.eq_any(actor_ids))
        .select((actors::actor, users::username))
        .load(conn)?)
}

/// The users the given actors are bound to, as `(actor, user id)`.
pub fn actor_owners(
    conn: &mut DbConnection,
    actor_ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(actors::table
        .filter(actors::actor.eq_any(actor_ids))
        .select((actors::actor, actors::user_id))
        .load(conn)?)
}

/// Every bound actor with the username it belongs to.
pub fn all_actor_users(conn: &mut DbConnection) -> Result<Vec<(String, String)>, StoreError> {
    Ok(actors::table
        .inner_join(users::table.on(users::id.eq(actors::user_id)))
        .select((actors::actor, users::username))
        .load(conn)?)
}

/// The account standing for a person of another node (`name@node`), made on
/// first use: it cannot log in (disabled, no password), and exists so that
/// changes made there are attributed to that person here.
pub fn remote_user(
    conn: &mut DbConnection,
    username: &str,
    now: i64,
) -> Result<String, StoreError> {
    if let Some(user) = user_by_name(conn, username)? {
        return Ok(user.id);
    }
    let user = User {
        id: ulid::Ulid::new().to_string(),
        username: username.to_string(),
        display_name: username.to_string(),
        role: wrapsync_shared::roles::Role::NaturalSupport.to_string(),
        password_hash: "!".into(),
        created_at: now,
        disabled: true,
    };
    insert_user(conn, &user)?;
    Ok(user.id)
}

#[cfg(test)]
mod retire_tests {
    use super::{retire, RETIRED_KEPT};

    #[test]
    fn retired_hashes_keep_the_newest_few() {
        assert_eq!(retire("", "a"), "a");
        assert_eq!(retire("a", "b"), "a b");
        let mut kept = String::new();
        for i in 0..RETIRED_KEPT + 3 {
            kept = retire(&kept, &format!("h{i}"));
        }
        let hashes: Vec<&str> = kept.split(' ').collect();
        assert_eq!(hashes.len(), RETIRED_KEPT);
        assert_eq!(hashes.first(), Some(&"h3"));
        let newest = format!("h{}", RETIRED_KEPT + 2);
        assert_eq!(hashes.last(), Some(&newest.as_str()));
    }
}
