DROP TABLE plan_transfers;
