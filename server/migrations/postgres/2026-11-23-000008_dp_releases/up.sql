-- Differential privacy (`dp_epsilon_per_year`): each month's noisy report,
-- released once after the month ends and kept, so every later send of that
-- month is the same report (fresh noise per send could be averaged away),
-- and the ledger of the privacy budget: `epsilon` is what the release
-- spent out of the budget of `year` (the period's). Append-only, enforced
-- by the database: a deleted row would hand its budget back.
CREATE TABLE dp_releases (
    period TEXT PRIMARY KEY NOT NULL,
    year INTEGER NOT NULL,
    epsilon DOUBLE PRECISION NOT NULL,
    report TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX dp_releases_year ON dp_releases (year);
CREATE FUNCTION dp_releases_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dp_releases is append-only';
END
$$;
CREATE TRIGGER dp_releases_no_update_delete BEFORE UPDATE OR DELETE ON dp_releases
    FOR EACH ROW EXECUTE FUNCTION dp_releases_append_only();
CREATE TRIGGER dp_releases_no_truncate BEFORE TRUNCATE ON dp_releases
    FOR EACH STATEMENT EXECUTE FUNCTION dp_releases_append_only();
