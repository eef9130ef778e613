//! Peers added at run time (the config file's are not stored).

use crate::db::schema::{peer_key_rotations, peers};
use crate::db::{DbConnection, StoreError};
use crate::peers::{KeyRotation, Peer};
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

/// Every peer key learnt from a rotation statement.
pub fn rotations(conn: &mut DbConnection) -> Result<Vec<KeyRotation>, StoreError> {
    type Row = (String, String, String, String, i64, String, i64);
    let rows: Vec<Row> = peer_key_rotations::table
        .select((
            peer_key_rotations::peer_id,
            peer_key_rotations::from_key,
            peer_key_rotations::public_key,
            peer_key_rotations::previous_key,
            peer_key_rotations::previous_until,
            peer_key_rotations::statement,
            peer_key_rotations::accepted_at,
        ))
        .order(peer_key_rotations::peer_id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(
                peer_id,
                from_key,
                public_key,
                previous_key,
                previous_until,
                statement,
                accepted_at,
            )| {
                KeyRotation {
                    peer_id,
                    from_key,
                    public_key,
                    previous_key,
                    previous_until,
                    statement,
                    accepted_at,
                }
            },
        )
        .collect())
}

/// Keeps a peer's latest rotation (replacing the one before; the writer
/// runs it in one transaction).
pub fn put_rotation(conn: &mut DbConnection, rotation: &KeyRotation) -> Result<(), StoreError> {
    diesel::delete(peer_key_rotations::table.find(&rotation.peer_id)).execute(conn)?;
    diesel::insert_into(peer_key_rotations::table)
        .values((
            peer_key_rotations::peer_id.eq(&rotation.peer_id),
            peer_key_rotations::from_key.eq(&rotation.from_key),
            peer_key_rotations::public_key.eq(&rotation.public_key),
            peer_key_rotations::previous_key.eq(&rotation.previous_key),
            peer_key_rotations::previous_until.eq(rotation.previous_until),
            peer_key_rotations::statement.eq(&rotation.statement),
            peer_key_rotations::accepted_at.eq(rotation.accepted_at),
        ))
        .execute(conn)?;
    Ok(())
}
