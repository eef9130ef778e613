ALTER TABLE sessions DROP COLUMN retired_hashes;
DROP INDEX sessions_user_id;
DROP INDEX sessions_revoked_at;
ALTER TABLE sessions DROP COLUMN revoked_at;
