-- Peers added by an operator at run time (admin API or `wrapsync peer add`),
-- beside those in the config file.
CREATE TABLE peers (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    public_key TEXT NOT NULL,
    added_at BIGINT NOT NULL
);
