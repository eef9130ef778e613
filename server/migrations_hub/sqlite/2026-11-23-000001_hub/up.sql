-- The state hub's tables. They hold node ids, URLs, public keys, periods,
-- vocabulary versions, report versions and cells (numbers and vocabulary
-- values): nothing that could name a family.

-- Where each enrolled node said it can be reached (POST /hub/v1/nodes).
CREATE TABLE hub_nodes (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    public_key TEXT NOT NULL
);

-- The report kept per node, period and vocabulary: the greatest by
-- (version, canonical encoding).
CREATE TABLE hub_reports (
    node_id TEXT NOT NULL,
    period TEXT NOT NULL,
    vocabulary INTEGER NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (node_id, period, vocabulary)
);

-- Its finest cells: indicator x age band x category ('' for none).
CREATE TABLE hub_cells (
    node_id TEXT NOT NULL,
    period TEXT NOT NULL,
    vocabulary INTEGER NOT NULL,
    indicator TEXT NOT NULL,
    age_band TEXT NOT NULL,
    category TEXT NOT NULL,
    value BIGINT NOT NULL,
    base BIGINT,
    PRIMARY KEY (node_id, period, vocabulary, indicator, age_band, category),
    FOREIGN KEY (node_id, period, vocabulary)
        REFERENCES hub_reports (node_id, period, vocabulary) ON DELETE CASCADE
);

-- Every number each release of a period published or withheld, so a later
-- release cannot be subtracted from it to reveal a small group.
CREATE TABLE hub_ledger (
    period TEXT NOT NULL,
    vocabulary INTEGER NOT NULL,
    figure TEXT NOT NULL,
    value BIGINT NOT NULL,
    withheld BOOLEAN NOT NULL,
    PRIMARY KEY (period, vocabulary, figure, value, withheld)
);
