//! Adding users (the `wrapsync user add` command and the demo).

use crate::auth::passwords::hash_password;
use crate::db::{now_ms, DbConnection, StoreError};
use crate::store::users::{insert_user, User};
use wrapsync_shared::roles::Role;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("usernames are 2-64 lowercase letters, digits, '.', '_' or '-'")]
    BadUsername,
    #[error("passwords need at least 10 characters")]
    WeakPassword,
    #[error("username `{0}` is taken")]
    Taken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot hash password: {0}")]
    Hash(String),
}

pub fn valid_username(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

pub fn add_user(
    conn: &mut DbConnection,
    username: &str,
    display_name: &str,
    role: Role,
    password: &str,
) -> Result<User, UserError> {
    if !valid_username(username) {
        return Err(UserError::BadUsername);
    }
    if password.chars().count() < 10 {
        return Err(UserError::WeakPassword);
    }
    let user = User {
        id: ulid::Ulid::new().to_string(),
        username: username.to_string(),
        display_name: display_name.to_string(),
        role: role.to_string(),
        password_hash: hash_password(password).map_err(UserError::Hash)?,
        created_at: now_ms(),
        disabled: false,
    };
    match insert_user(conn, &user) {
        Err(e) if e.is_unique_violation() => Err(UserError::Taken(username.to_string())),
        other => other.map(|()| user).map_err(UserError::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("caregiver1"));
        assert!(valid_username("ana.rivera"));
        assert!(!valid_username("Ana"));
        assert!(!valid_username("a"));
        assert!(!valid_username("robert'); drop"));
    }
}
