-- A replica of a plan homed at a peer node names its home; NULL: homed here.
ALTER TABLE plans ADD COLUMN home_node TEXT;

-- How far each peer has been sent this node's changes (a seq of
-- plan_changes): the outbox cursor, so a restart forgets nothing.
CREATE TABLE peer_cursors (
    peer_id TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
