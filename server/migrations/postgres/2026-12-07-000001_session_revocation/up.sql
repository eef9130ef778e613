-- When a session was revoked (Unix ms): a reused refresh token, a disabled
-- user. Every process reads the recent ones (`auth::sessions`) and refuses
-- the access tokens those sessions issued; older revocations need no
-- reading, their access tokens having expired.
ALTER TABLE sessions ADD COLUMN revoked_at BIGINT;
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);
CREATE INDEX sessions_user_id ON sessions (user_id);
-- The hashes of the session's last refresh tokens, retired by rotation
-- (space-separated, newest last, at most `store::users::RETIRED_KEPT`):
-- presenting one of them again is reuse and ends the session; a token that
-- is none of them (a guess, made up from a session id) is only refused.
ALTER TABLE sessions ADD COLUMN retired_hashes TEXT NOT NULL DEFAULT '';
