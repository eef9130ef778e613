-- What each device (login session or Device-Id) and this node last agreed
-- they share of each plan: Automerge sync state, so rounds resend nothing.
CREATE TABLE sync_states (
    device_id TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES plans(id),
    state BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, plan_id)
);

-- One row per stored change set: the change feed's cursor.
CREATE TABLE plan_changes (
    seq BIGSERIAL PRIMARY KEY,
    plan_id TEXT NOT NULL REFERENCES plans(id),
    at BIGINT NOT NULL
);
CREATE INDEX plan_changes_plan ON plan_changes (plan_id, seq);
