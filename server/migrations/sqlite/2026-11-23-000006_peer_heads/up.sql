-- The heads of each plan a peer last confirmed holding (a push that ended
-- with nothing left to send). Anti-entropy then sends only the plans whose
-- heads have moved since, so an idle peer costs one query, not a request
-- per shared plan.
CREATE TABLE peer_plan_heads (
    peer_id TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES plans(id),
    heads TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (peer_id, plan_id)
);
