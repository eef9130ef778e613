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
}

pub fn insert_session(conn: &mut DbConnection, session: &Session) -> Result<(), StoreError> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)?;
    Ok(())
}

/// Swaps a session's refresh token hash if (and only if) `old_hash` is still
/// current and the session is live: two racing refreshes cannot both win.
/// Answers the session's user.
pub fn rotate_refresh(
    conn: &mut DbConnection,
    old_hash: &str,
    new_hash: &str,
    now: i64,
) -> Result<Option<(String, String)>, StoreError> {
    let found: Option<(String, String)> = sessions::table
        .filter(sessions::refresh_hash.eq(old_hash))
        .filter(sessions::revoked.eq(false))
        .filter(sessions::expires_at.gt(now))
        .select((sessions::id, sessions::user_id))
        .first(conn)
        .optional()?;
    let Some((session_id, user_id)) = found else {
        return Ok(None);
    };
    let updated = diesel::update(
        sessions::table
            .filter(sessions::id.eq(&session_id))
            .filter(sessions::refresh_hash.eq(old_hash)),
    )
    .set(sessions::refresh_hash.eq(new_hash))
    .execute(conn)?;
    Ok((updated == 1).then_some((session_id, user_id)))
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
