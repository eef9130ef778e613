//! Peers added at run time (the config file's are not stored).

use crate::db::schema::peers;
use crate::db::{DbConnection, StoreError};
use crate::federation::Peer;
use diesel::prelude::*;

pub fn list(conn: &mut DbConnection) -> Result<Vec<Peer>, StoreError> {
    let rows: Vec<(String, String, String)> = peers::table
        .select((peers::id, peers::url, peers::public_key))
        .order(peers::id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, url, public_key)| Peer {
            id,
            url,
            public_key,
        })
        .collect())
}

/// Adds or replaces (a new URL, a rotated key) a peer.
pub fn put(conn: &mut DbConnection, peer: &Peer, now: i64) -> Result<(), StoreError> {
    diesel::delete(peers::table.find(&peer.id)).execute(conn)?;
    diesel::insert_into(peers::table)
        .values((
            peers::id.eq(&peer.id),
            peers::url.eq(&peer.url),
            peers::public_key.eq(&peer.public_key),
            peers::added_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Answers whether there was such a peer.
pub fn remove(conn: &mut DbConnection, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(peers::table.find(id)).execute(conn)? > 0)
}
