DROP TABLE dp_releases;
DROP FUNCTION dp_releases_append_only();
