-- When a session was revoked (Unix ms): a reused refresh token, a disabled
-- user. Every process reads the recent ones (`auth::sessions`) and refuses
-- the access tokens those sessions issued; older revocations need no
-- reading, their access tokens having expired.
ALTER TABLE sessions ADD COLUMN revoked_at BIGINT;
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);
CREATE INDEX sessions_user_id ON sessions (user_id);
