CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT 0
);

-- One row per login: the refresh token (hashed) rotates on every use.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    refresh_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT 0
);

-- The plan index: what lists and filters need, mirrored from each document.
CREATE TABLE plans (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    phase TEXT NOT NULL,
    heads TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX plans_updated ON plans (updated_at, id);

-- Automerge chunks: a snapshot and the incremental change sets after it.
CREATE TABLE plan_chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES plans(id),
    is_snapshot BOOLEAN NOT NULL,
    data BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX plan_chunks_plan ON plan_chunks (plan_id, seq);

-- Who is on which plan's team, derived from the roster on every write.
CREATE TABLE plan_members (
    plan_id TEXT NOT NULL REFERENCES plans(id),
    username TEXT NOT NULL,
    member_id TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (plan_id, username)
);
CREATE INDEX plan_members_user ON plan_members (username, plan_id);

-- Every Automerge actor is bound to the person who made its changes.
CREATE TABLE actors (
    actor TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    first_seen BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at BIGINT NOT NULL,
    user_id TEXT,
    username TEXT,
    role TEXT,
    plan_id TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    remote TEXT,
    request_id TEXT
);
CREATE INDEX audit_log_plan ON audit_log (plan_id, id);
CREATE INDEX audit_log_user ON audit_log (username, id);

-- HIPAA audit controls: the trail is append-only, enforced by the database.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
