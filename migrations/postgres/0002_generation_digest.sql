-- A digest of each generation's pages (see migrations/sqlite/0007_generation_digest.sql).
ALTER TABLE generations ADD COLUMN digest TEXT;
