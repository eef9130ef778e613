DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE actors;
DROP TABLE plan_members;
DROP TABLE plan_chunks;
DROP TABLE plans;
DROP TABLE sessions;
DROP TABLE users;
