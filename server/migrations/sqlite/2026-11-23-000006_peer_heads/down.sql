DROP TABLE peer_plan_heads;
