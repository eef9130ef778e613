-- A family's consent to share a plan with another node: while a grant is
-- live (not revoked, not expired) the plan syncs with that node; without
-- one the plan never leaves this node. One row per (plan, node); each grant
-- and revocation is also in the audit trail.
CREATE TABLE consent_grants (
    plan_id TEXT NOT NULL REFERENCES plans(id),
    node_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    granted_by TEXT NOT NULL REFERENCES users(id),
    granted_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_by TEXT REFERENCES users(id),
    revoked_at BIGINT,
    PRIMARY KEY (plan_id, node_id)
);
CREATE INDEX consent_grants_node ON consent_grants (node_id);
