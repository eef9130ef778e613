DROP TABLE plan_changes;
DROP TABLE sync_states;
