-- What the hub refused from an enrolled node and why (issue 22): an
-- implausible report or a revision too soon. Node ids, periods, problem
-- codes and a detail of numbers and vocabulary values: nothing that could
-- name a family. At most `rate_limit_per_node` rows per node.
CREATE TABLE hub_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at BIGINT NOT NULL,
    node_id TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    period TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX hub_audit_at ON hub_audit (at);
