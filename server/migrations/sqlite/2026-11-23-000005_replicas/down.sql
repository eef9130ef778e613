DROP TABLE peer_cursors;
ALTER TABLE plans DROP COLUMN home_node;
