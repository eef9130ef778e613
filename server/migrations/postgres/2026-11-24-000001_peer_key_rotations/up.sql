-- Peer keys learnt from rotation statements (`federation::signing`): the
-- peer now signs with `public_key`; `previous_key` (the one that signed the
-- statement) is still accepted until `previous_until` (Unix seconds). The
-- row holds only while the peer's configured key is still `from_key`: an
-- operator who sets a peer's key by hand overrides what was learnt.
CREATE TABLE peer_key_rotations (
    peer_id TEXT PRIMARY KEY NOT NULL,
    from_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    previous_key TEXT NOT NULL,
    previous_until BIGINT NOT NULL,
    statement TEXT NOT NULL,
    accepted_at BIGINT NOT NULL
);
