DROP TABLE hub_ledger;
DROP TABLE hub_cells;
DROP TABLE hub_reports;
DROP TABLE hub_nodes;
