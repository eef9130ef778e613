-- Differential privacy (`dp_epsilon_per_year`): each month's noisy report,
-- released once after the month ends and kept, so every later send of that
-- month is the same report (fresh noise per send could be averaged away),
-- and the ledger of the privacy budget: `epsilon` is what the release
-- spent out of the budget of `year` (the period's). Append-only, enforced
-- by the database: a deleted row would hand its budget back.
CREATE TABLE dp_releases (
    period TEXT PRIMARY KEY NOT NULL,
    year INTEGER NOT NULL,
    epsilon DOUBLE NOT NULL,
    report TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX dp_releases_year ON dp_releases (year);
CREATE TRIGGER dp_releases_no_update BEFORE UPDATE ON dp_releases
BEGIN SELECT RAISE(ABORT, 'dp_releases is append-only'); END;
CREATE TRIGGER dp_releases_no_delete BEFORE DELETE ON dp_releases
BEGIN SELECT RAISE(ABORT, 'dp_releases is append-only'); END;
