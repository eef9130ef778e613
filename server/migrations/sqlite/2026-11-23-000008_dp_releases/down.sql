DROP TRIGGER dp_releases_no_delete;
DROP TRIGGER dp_releases_no_update;
DROP TABLE dp_releases;
