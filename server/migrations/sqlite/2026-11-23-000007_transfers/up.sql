-- A plan's move from one node to another (the family moved). The node that
-- gives the plan up signs a certificate naming the new home; the new home
-- shows it to nodes still holding a replica homed at the old one, so they
-- follow the move on the old home's word alone. 'pending' until the new
-- home has acknowledged the plan (a restart resends it), then 'done'. No
-- reference to plans: an old home may drop its copy and keep only this.
CREATE TABLE plan_transfers (
    plan_id TEXT NOT NULL,
    from_node TEXT NOT NULL,
    to_node TEXT NOT NULL,
    certificate TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (plan_id, created_at)
);
