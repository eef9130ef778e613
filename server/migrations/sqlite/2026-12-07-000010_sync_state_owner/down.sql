DROP INDEX sync_states_updated_at;
DROP INDEX sync_states_owner;
ALTER TABLE sync_states DROP COLUMN owner;
