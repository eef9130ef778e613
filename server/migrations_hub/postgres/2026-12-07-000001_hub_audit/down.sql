DROP TABLE hub_audit;
