-- Whose each sync state is (issue 22): the user of the device or login
-- session (the part of `device_id` before its `/`); NULL for a peer node's.
-- A user keeps at most `sync_states_per_user` of them (the least recently
-- used go first), and states unused for `sync_state_idle_secs` expire.
ALTER TABLE sync_states ADD COLUMN owner TEXT;
UPDATE sync_states SET owner = split_part(device_id, '/', 1)
    WHERE strpos(device_id, '/') > 0;
CREATE INDEX sync_states_owner ON sync_states (owner, updated_at);
CREATE INDEX sync_states_updated_at ON sync_states (updated_at);
