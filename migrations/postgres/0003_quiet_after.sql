-- How many quiet page views hold a client back (see migrations/sqlite/0008_quiet_after.sql).
ALTER TABLE thresholds ADD COLUMN quiet_after BIGINT;
