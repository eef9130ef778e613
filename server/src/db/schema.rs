//! Diesel's view of the tables, the same on SQLite and PostgreSQL (the
//! migrations under `migrations/<backend>` keep them in step; a test checks).

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        display_name -> Text,
        role -> Text,
        password_hash -> Text,
        created_at -> BigInt,
        disabled -> Bool,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        refresh_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked -> Bool,
        revoked_at -> Nullable<BigInt>,
        retired_hashes -> Text,
    }
}

diesel::table! {
    plans (id) {
        id -> Text,
        title -> Text,
        phase -> Text,
        heads -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        home_node -> Nullable<Text>,
    }
}

diesel::table! {
    plan_chunks (seq) {
        seq -> BigInt,
        plan_id -> Text,
        is_snapshot -> Bool,
        data -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    plan_members (plan_id, username) {
        plan_id -> Text,
        username -> Text,
        member_id -> Text,
        role -> Text,
    }
}

diesel::table! {
    actors (actor) {
        actor -> Text,
        user_id -> Text,
        first_seen -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        user_id -> Nullable<Text>,
        username -> Nullable<Text>,
        role -> Nullable<Text>,
        plan_id -> Nullable<Text>,
        action -> Text,
        outcome -> Text,
        detail -> Nullable<Text>,
        remote -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    plans,
    plan_chunks,
    plan_members,
    actors,
    audit_log,
    sync_states,
    plan_changes,
    consent_grants,
    peers,
    peer_key_rotations,
    peer_cursors,
    peer_plan_heads,
    plan_transfers,
    dp_releases
);

diesel::table! {
    sync_states (device_id, plan_id) {
        device_id -> Text,
        plan_id -> Text,
        state -> Binary,
        updated_at -> BigInt,
        owner -> Nullable<Text>,
    }
}

diesel::table! {
    plan_changes (seq) {
        seq -> BigInt,
        plan_id -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    consent_grants (plan_id, node_id) {
        plan_id -> Text,
        node_id -> Text,
        scope -> Text,
        granted_by -> Text,
        granted_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked_by -> Nullable<Text>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    peers (id) {
        id -> Text,
        url -> Text,
        public_key -> Text,
        added_at -> BigInt,
    }
}

diesel::table! {
    peer_key_rotations (peer_id) {
        peer_id -> Text,
        from_key -> Text,
        public_key -> Text,
        previous_key -> Text,
        previous_until -> BigInt,
        statement -> Text,
        accepted_at -> BigInt,
    }
}

diesel::table! {
    peer_cursors (peer_id) {
        peer_id -> Text,
        seq -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    peer_plan_heads (peer_id, plan_id) {
        peer_id -> Text,
        plan_id -> Text,
        heads -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    plan_transfers (plan_id, created_at) {
        plan_id -> Text,
        from_node -> Text,
        to_node -> Text,
        certificate -> Text,
        state -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    dp_releases (period) {
        period -> Text,
        year -> Integer,
        epsilon -> Double,
        report -> Text,
        created_at -> BigInt,
    }
}
