//! Plans at rest: each plan is a run of Automerge chunks (a snapshot, then
//! one incremental chunk per change set) plus a row in the plan index and its
//! team membership, all written in the same transaction.

use crate::db::schema::{plan_changes, plan_chunks, plan_members, plans, sync_states};
use crate::db::{DbConnection, StoreError};
use diesel::prelude::*;
use std::collections::HashMap;
use wrapsync_shared::roles::Role;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = plans)]
pub struct PlanRow {
    pub id: String,
    pub title: String,
    pub phase: String,
    pub heads: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The peer node this plan is homed at; `None`: this node.
    pub home_node: Option<String>,
}

/// A team member who is a user of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub username: String,
    pub member_id: String,
    pub role: Role,
}

/// What a plan's index row says of its document: its heads (as
/// `PlanView::version` spells them, comma-joined) and its home. Every write
/// of a document sets them in the same transaction as its chunk, so two
/// processes sharing the database tell from this row alone whether a cached
/// copy is current.
#[derive(Debug, Clone, Default, PartialEq, Eq, Queryable)]
pub struct Revision {
    pub heads: String,
    pub home: Option<String>,
}

/// The plan's revision; `None` when there is no such plan.
pub fn revision(conn: &mut DbConnection, id: &str) -> Result<Option<Revision>, StoreError> {
    Ok(plans::table
        .find(id)
        .select((plans::heads, plans::home_node))
        .first(conn)
        .optional()?)
}

/// The revisions of those of `ids` that exist.
pub fn revisions(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<Vec<(String, Revision)>, StoreError> {
    let rows: Vec<(String, String, Option<String>)> = plans::table
        .filter(plans::id.eq_any(ids))
        .select((plans::id, plans::heads, plans::home_node))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, heads, home)| (id, Revision { heads, home }))
        .collect())
}

/// Holds the plan's row for the rest of the write's transaction and checks
/// it is still at `expected`: the revision the write's document was read
/// at. [`StoreError::Stale`] when another process changed the plan since,
/// or holds the row now (PostgreSQL, `NOWAIT`: a write never waits for a
/// row, so two processes' batches can never deadlock), or the plan is gone.
pub fn claim(conn: &mut DbConnection, id: &str, expected: &Revision) -> Result<(), StoreError> {
    let query = plans::table
        .find(id)
        .select((plans::heads, plans::home_node));
    let found: Option<Revision> = match conn {
        DbConnection::Postgresql(c) => query
            .for_update()
            .no_wait()
            .first(c)
            .optional()
            // Held by another process's open transaction.
            .map_err(|_| StoreError::Stale)?,
        // One process: its writer is the only one.
        DbConnection::Sqlite(c) => query.first(c).optional()?,
    };
    match found {
        Some(now) if now == *expected => Ok(()),
        _ => Err(StoreError::Stale),
    }
}

pub fn insert_plan(conn: &mut DbConnection, row: &PlanRow) -> Result<(), StoreError> {
    diesel::insert_into(plans::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn update_plan(conn: &mut DbConnection, row: &PlanRow) -> Result<(), StoreError> {
    diesel::update(plans::table.find(&row.id))
        .set((
            plans::title.eq(&row.title),
            plans::phase.eq(&row.phase),
            plans::heads.eq(&row.heads),
            plans::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// `Some(home)` for a stored plan (`home` is `None` when it is homed here),
/// `None` when there is no such plan.
pub fn plan_home(conn: &mut DbConnection, id: &str) -> Result<Option<Option<String>>, StoreError> {
    Ok(plans::table
        .find(id)
        .select(plans::home_node)
        .first::<Option<String>>(conn)
        .optional()?)
}

/// Moves a plan's home (`None`: this node) and records its members as
/// seen from here.
pub fn set_home(
    conn: &mut DbConnection,
    id: &str,
    home: Option<&str>,
    members: &[Membership],
) -> Result<(), StoreError> {
    diesel::update(plans::table.find(id))
        .set(plans::home_node.eq(home))
        .execute(conn)?;
    set_members(conn, id, members)
}

/// Deletes everything this node holds of a plan but its audit trail and
/// its moves: an old home that gave the plan away and keeps no copy.
pub fn forget_plan(conn: &mut DbConnection, id: &str) -> Result<(), StoreError> {
    use crate::db::schema::{consent_grants, peer_plan_heads};
    diesel::delete(sync_states::table.filter(sync_states::plan_id.eq(id))).execute(conn)?;
    diesel::delete(peer_plan_heads::table.filter(peer_plan_heads::plan_id.eq(id))).execute(conn)?;
    diesel::delete(consent_grants::table.filter(consent_grants::plan_id.eq(id))).execute(conn)?;
    diesel::delete(plan_changes::table.filter(plan_changes::plan_id.eq(id))).execute(conn)?;
    diesel::delete(plan_members::table.filter(plan_members::plan_id.eq(id))).execute(conn)?;
    diesel::delete(plan_chunks::table.filter(plan_chunks::plan_id.eq(id))).execute(conn)?;
    diesel::delete(plans::table.find(id)).execute(conn)?;
    Ok(())
}

pub fn plan_exists(conn: &mut DbConnection, id: &str) -> Result<bool, StoreError> {
    Ok(plans::table
        .find(id)
        .select(plans::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// Appends a chunk and answers its sequence number.
pub fn append_chunk(
    conn: &mut DbConnection,
    plan_id: &str,
    data: &[u8],
    is_snapshot: bool,
    now: i64,
) -> Result<i64, StoreError> {
    let insert = diesel::insert_into(plan_chunks::table)
        .values((
            plan_chunks::plan_id.eq(plan_id),
            plan_chunks::is_snapshot.eq(is_snapshot),
            plan_chunks::data.eq(data),
            plan_chunks::created_at.eq(now),
        ))
        .returning(plan_chunks::seq);
    Ok(crate::on_backend!(conn, |c| insert.get_result(c))?)
}

/// Chunks of a plan after `after` (all of them for 0), in order.
pub fn chunks_after(
    conn: &mut DbConnection,
    plan_id: &str,
    after: i64,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    Ok(plan_chunks::table
        .filter(plan_chunks::plan_id.eq(plan_id))
        .filter(plan_chunks::seq.gt(after))
        .order(plan_chunks::seq.asc())
        .select((plan_chunks::seq, plan_chunks::data))
        .load(conn)?)
}

/// Replaces a plan's chunks by `snapshot`: writes it first, then deletes only
/// the chunks it was made from (never one it does not include).
pub fn compact(
    conn: &mut DbConnection,
    plan_id: &str,
    snapshot: &[u8],
    included: &[i64],
    now: i64,
) -> Result<i64, StoreError> {
    let seq = append_chunk(conn, plan_id, snapshot, true, now)?;
    for batch in included.chunks(500) {
        diesel::delete(
            plan_chunks::table
                .filter(plan_chunks::plan_id.eq(plan_id))
                .filter(plan_chunks::seq.eq_any(batch)),
        )
        .execute(conn)?;
    }
    Ok(seq)
}

/// Makes the stored membership of a plan equal `members`.
pub fn set_members(
    conn: &mut DbConnection,
    plan_id: &str,
    members: &[Membership],
) -> Result<(), StoreError> {
    diesel::delete(plan_members::table.filter(plan_members::plan_id.eq(plan_id))).execute(conn)?;
    let rows: Vec<_> = members
        .iter()
        .map(|m| {
            (
                plan_members::plan_id.eq(plan_id),
                plan_members::username.eq(&m.username),
                plan_members::member_id.eq(&m.member_id),
                plan_members::role.eq(m.role.as_str()),
            )
        })
        .collect();
    if !rows.is_empty() {
        let insert = diesel::insert_into(plan_members::table).values(rows);
        crate::on_backend!(conn, |c| insert.execute(c))?;
    }
    Ok(())
}

/// One page of the plans a user may see, ordered by (updated_at, id).
pub struct ListQuery<'a> {
    /// `None` for a supervisor: every plan of the node.
    pub username: Option<&'a str>,
    pub updated_since: Option<i64>,
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// A plan as a list shows it, with the user's role on its team (`None`
/// for a supervisor's view of a plan they are not on).
#[derive(Debug, Queryable)]
pub struct ListedPlan {
    pub id: String,
    pub title: String,
    pub phase: String,
    pub updated_at: i64,
    pub role: Option<String>,
}

pub fn list_plans(
    conn: &mut DbConnection,
    q: &ListQuery<'_>,
) -> Result<Vec<ListedPlan>, StoreError> {
    let mut query = plans::table
        .left_join(
            plan_members::table.on(plan_members::plan_id
                .eq(plans::id)
                .and(plan_members::username.nullable().eq(q.username))),
        )
        .select((
            plans::id,
            plans::title,
            plans::phase,
            plans::updated_at,
            plan_members::role.nullable(),
        ))
        .order((plans::updated_at.asc(), plans::id.asc()))
        .limit(q.limit)
        .into_boxed();
    if q.username.is_some() {
        query = query.filter(plan_members::username.is_not_null());
    }
    if let Some(since) = q.updated_since {
        query = query.filter(plans::updated_at.ge(since));
    }
    if let Some((at, id)) = &q.after {
        query = query.filter(
            plans::updated_at
                .gt(*at)
                .or(plans::updated_at.eq(*at).and(plans::id.gt(id.clone()))),
        );
    }
    Ok(query.load(conn)?)
}

/// The plans homed at this node (`me`), oldest first: not replicas of
/// other nodes' plans, nor plans being given away (a move certified but
/// not yet acknowledged, which the new home may count already). What the
/// aggregator reads.
pub fn home_plan_ids(conn: &mut DbConnection, me: &str) -> Result<Vec<String>, StoreError> {
    use crate::db::schema::plan_transfers;
    let leaving = plan_transfers::table
        .filter(plan_transfers::from_node.eq(me))
        .filter(plan_transfers::state.eq(crate::store::transfers::PENDING))
        .select(plan_transfers::plan_id);
    Ok(plans::table
        .filter(plans::home_node.is_null())
        .filter(plans::id.ne_all(leaving))
        .order(plans::id)
        .select(plans::id)
        .load(conn)?)
}

/// Every chunk of each of `plan_ids`, as `(plan, seq, data)` ordered by
/// plan then sequence: many plans loaded in one query.
pub fn chunks_of(
    conn: &mut DbConnection,
    plan_ids: &[String],
) -> Result<Vec<(String, i64, Vec<u8>)>, StoreError> {
    Ok(plan_chunks::table
        .filter(plan_chunks::plan_id.eq_any(plan_ids))
        .order((plan_chunks::plan_id.asc(), plan_chunks::seq.asc()))
        .select((plan_chunks::plan_id, plan_chunks::seq, plan_chunks::data))
        .load(conn)?)
}

/// Sequence numbers of a plan's stored chunks.
pub fn chunk_seqs(conn: &mut DbConnection, plan_id: &str) -> Result<Vec<i64>, StoreError> {
    Ok(plan_chunks::table
        .filter(plan_chunks::plan_id.eq(plan_id))
        .order(plan_chunks::seq.asc())
        .select(plan_chunks::seq)
        .load(conn)?)
}

/// The named chunks of a plan, in order.
pub fn chunks_by_seq(
    conn: &mut DbConnection,
    plan_id: &str,
    seqs: &[i64],
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    Ok(plan_chunks::table
        .filter(plan_chunks::plan_id.eq(plan_id))
        .filter(plan_chunks::seq.eq_any(seqs))
        .order(plan_chunks::seq.asc())
        .select((plan_chunks::seq, plan_chunks::data))
        .load(conn)?)
}

/// Records that a plan changed, for the change feed.
/// On PostgreSQL it also notifies [`CHANGES_CHANNEL`] (delivered at commit,
/// once per transaction), waking the change feeds of every process.
pub fn record_change(conn: &mut DbConnection, plan_id: &str, now: i64) -> Result<(), StoreError> {
    diesel::insert_into(plan_changes::table)
        .values((plan_changes::plan_id.eq(plan_id), plan_changes::at.eq(now)))
        .execute(conn)?;
    if let DbConnection::Postgresql(c) = conn {
        diesel::sql_query(format!("NOTIFY {CHANGES_CHANNEL}")).execute(c)?;
    }
    Ok(())
}

/// The PostgreSQL channel a commit that changed a plan notifies.
pub const CHANGES_CHANNEL: &str = "wrapsync_changes";

/// The change log's last sequence number (0 when empty): how far the
/// federation outbox goes.
pub fn last_change_seq(conn: &mut DbConnection) -> Result<i64, StoreError> {
    use diesel::dsl::max;
    Ok(plan_changes::table
        .select(max(plan_changes::seq))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0))
}

/// The plans `peer` is to hold: those homed here with a live consent grant
/// for it, and the replicas of its own plans (edits made here go back).
/// With `stale_only`, just those whose heads moved since the peer last
/// confirmed holding them: what an anti-entropy pass sends, found in one
/// query without loading a plan.
pub fn shared_with(
    conn: &mut DbConnection,
    peer: &str,
    now: i64,
    stale_only: bool,
) -> Result<Vec<String>, StoreError> {
    use crate::db::schema::{consent_grants, peer_plan_heads};
    let granted = consent_grants::table
        .filter(consent_grants::node_id.eq(peer))
        .filter(consent_grants::revoked_at.is_null())
        .filter(
            consent_grants::expires_at
                .is_null()
                .or(consent_grants::expires_at.gt(now)),
        )
        .select(consent_grants::plan_id);
    let mut query = plans::table
        .left_join(
            peer_plan_heads::table.on(peer_plan_heads::plan_id
                .eq(plans::id)
                .and(peer_plan_heads::peer_id.eq(peer))),
        )
        .filter(
            plans::home_node
                .eq(peer)
                .or(plans::home_node.is_null().and(plans::id.eq_any(granted))),
        )
        .select(plans::id)
        .order(plans::id)
        .into_boxed();
    if stale_only {
        query = query.filter(
            peer_plan_heads::heads.is_null().or(peer_plan_heads::heads
                .nullable()
                .ne(plans::heads.nullable())),
        );
    }
    Ok(query.load(conn)?)
}

/// Records that `peer` holds `plan` at `heads` (as `plans.heads` spells
/// them).
pub fn set_peer_heads(
    conn: &mut DbConnection,
    peer: &str,
    plan: &str,
    heads: &str,
    now: i64,
) -> Result<(), StoreError> {
    use crate::db::schema::peer_plan_heads;
    let updated = diesel::update(peer_plan_heads::table.find((peer, plan)))
        .set((
            peer_plan_heads::heads.eq(heads),
            peer_plan_heads::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(peer_plan_heads::table)
            .values((
                peer_plan_heads::peer_id.eq(peer),
                peer_plan_heads::plan_id.eq(plan),
                peer_plan_heads::heads.eq(heads),
                peer_plan_heads::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// How far `peer` has been sent the change log.
pub fn peer_cursor(conn: &mut DbConnection, peer: &str) -> Result<i64, StoreError> {
    use crate::db::schema::peer_cursors;
    Ok(peer_cursors::table
        .find(peer)
        .select(peer_cursors::seq)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

pub fn set_peer_cursor(
    conn: &mut DbConnection,
    peer: &str,
    seq: i64,
    now: i64,
) -> Result<(), StoreError> {
    use crate::db::schema::peer_cursors;
    let updated = diesel::update(peer_cursors::table.find(peer))
        .set((peer_cursors::seq.eq(seq), peer_cursors::updated_at.eq(now)))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(peer_cursors::table)
            .values((
                peer_cursors::peer_id.eq(peer),
                peer_cursors::seq.eq(seq),
                peer_cursors::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The plans that changed after cursor `since`, each once with its latest
/// cursor, oldest first; only plans `username` is on the team of (`None`:
/// a supervisor, every plan).
pub fn changes_since(
    conn: &mut DbConnection,
    username: Option<&str>,
    since: i64,
    limit: i64,
) -> Result<Vec<(String, i64, i64)>, StoreError> {
    use diesel::dsl::max;
    let mut query = plan_changes::table
        .left_join(
            plan_members::table.on(plan_members::plan_id
                .eq(plan_changes::plan_id)
                .and(plan_members::username.nullable().eq(username))),
        )
        .filter(plan_changes::seq.gt(since))
        .group_by(plan_changes::plan_id)
        .select((
            plan_changes::plan_id,
            max(plan_changes::seq),
            max(plan_changes::at),
        ))
        .order(max(plan_changes::seq).asc())
        .limit(limit)
        .into_boxed();
    if username.is_some() {
        query = query.filter(plan_members::username.is_not_null());
    }
    let rows: Vec<(String, Option<i64>, Option<i64>)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(plan, seq, at)| (plan, seq.unwrap_or_default(), at.unwrap_or_default()))
        .collect())
}

/// A changed plan for the change-feed fan-out: its id, newest change-log
/// cursor, when it changed (ms), and the usernames on its roster.
pub type ChangedPlan = (String, i64, i64, Vec<String>);

/// What the change-feed streams are sent, for all of them at once: the
/// plans changed after `since` (each once, with its newest seq and time,
/// oldest first, at most `limit`) and the usernames on each plan's roster.
/// Two queries however many streams are open.
pub fn changes_with_members(
    conn: &mut DbConnection,
    since: i64,
    limit: i64,
) -> Result<Vec<ChangedPlan>, StoreError> {
    let rows = changes_since(conn, None, since, limit)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = rows.iter().map(|(plan, _, _)| plan.as_str()).collect();
    let members: Vec<(String, String)> = plan_members::table
        .filter(plan_members::plan_id.eq_any(&ids))
        .select((plan_members::plan_id, plan_members::username))
        .load(conn)?;
    let mut by_plan: HashMap<String, Vec<String>> = HashMap::new();
    for (plan, username) in members {
        by_plan.entry(plan).or_default().push(username);
    }
    Ok(rows
        .into_iter()
        .map(|(plan, seq, at)| {
            let members = by_plan.remove(&plan).unwrap_or_default();
            (plan, seq, at, members)
        })
        .collect())
}

/// How many sync states a user may keep and how long an unused one lasts
/// (`sync_states_per_user`, `sync_state_idle_secs`).
#[derive(Debug, Clone, Copy)]
pub struct SyncStateLimits {
    pub per_user: u64,
    pub idle_ms: i64,
}

/// Whose sync state a row is, with a plan id its primary key: a person's
/// device or login session, or a peer node's rounds either way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyncStateKey {
    /// A user's device, named by its `Device-Id` (`user/device:…`).
    Device { user: String, device: String },
    /// A user's login session, for an app that sends no `Device-Id`
    /// (`user/session:…`).
    Session { user: String, session: String },
    /// A peer's rounds with this node, here (`peer:…`).
    PeerHere(String),
    /// This node's rounds with a peer, pushed from here (`out:…`).
    PeerThere(String),
}

impl SyncStateKey {
    /// The key as stored in `sync_states.device_id`.
    pub fn stored(&self) -> String {
        match self {
            SyncStateKey::Device { user, device } => format!("{user}/device:{device}"),
            SyncStateKey::Session { user, session } => format!("{user}/session:{session}"),
            SyncStateKey::PeerHere(peer) => format!("peer:{peer}"),
            SyncStateKey::PeerThere(peer) => format!("out:{peer}"),
        }
    }

    /// The user whose count (`sync_states_per_user`) the state is in; a
    /// peer node's is no user's and is not counted.
    pub fn owner(&self) -> Option<&str> {
        match self {
            SyncStateKey::Device { user, .. } | SyncStateKey::Session { user, .. } => {
                Some(user).filter(|u| !u.is_empty()).map(String::as_str)
            }
            SyncStateKey::PeerHere(_) | SyncStateKey::PeerThere(_) => None,
        }
    }
}

/// A sync state unused for longer than the limits allow reads as none.
pub fn load_sync_state(
    conn: &mut DbConnection,
    key: &SyncStateKey,
    plan_id: &str,
    limits: SyncStateLimits,
    now: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sync_states::table
        .find((key.stored(), plan_id))
        .filter(sync_states::updated_at.ge(now.saturating_sub(limits.idle_ms)))
        .select(sync_states::state)
        .first(conn)
        .optional()?)
}

/// Saves a sync state. A new one first makes room: states unused for the
/// idle time go (every user's: a new state is the moment to look), and
/// the owner's least recently used beyond `per_user` - 1, so no user ever
/// holds more than `per_user` (an evicted state only costs its device a
/// fuller next round).
pub fn save_sync_state(
    conn: &mut DbConnection,
    key: &SyncStateKey,
    plan_id: &str,
    state: &[u8],
    now: i64,
    limits: SyncStateLimits,
) -> Result<(), StoreError> {
    let device_id = key.stored();
    let updated = diesel::update(sync_states::table.find((&device_id, plan_id)))
        .set((
            sync_states::state.eq(state),
            sync_states::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated > 0 {
        return Ok(());
    }
    diesel::delete(
        sync_states::table.filter(sync_states::updated_at.lt(now.saturating_sub(limits.idle_ms))),
    )
    .execute(conn)?;
    let owner = key.owner();
    if let Some(owner) = owner {
        let held: i64 = sync_states::table
            .filter(sync_states::owner.eq(owner))
            .count()
            .get_result(conn)?;
        let keep = i64::try_from(limits.per_user.max(1) - 1).unwrap_or(i64::MAX);
        if held > keep {
            let oldest: Vec<(String, String)> = sync_states::table
                .filter(sync_states::owner.eq(owner))
                .order((sync_states::updated_at.asc(), sync_states::device_id.asc()))
                .limit(held - keep)
                .select((sync_states::device_id, sync_states::plan_id))
                .load(conn)?;
            for (device, plan) in oldest {
                diesel::delete(sync_states::table.find((device, plan))).execute(conn)?;
            }
        }
    }
    diesel::insert_into(sync_states::table)
        .values((
            sync_states::device_id.eq(&device_id),
            sync_states::plan_id.eq(plan_id),
            sync_states::state.eq(state),
            sync_states::updated_at.eq(now),
            sync_states::owner.eq(owner),
        ))
        .execute(conn)?;
    Ok(())
}
