-- The count and byte caps of a push set become operator settings beside the threshold and the
-- minimum support (globally, page '', or per page); NULL keeps the built-in default.
ALTER TABLE thresholds ADD COLUMN max_count INTEGER;
ALTER TABLE thresholds ADD COLUMN max_bytes INTEGER;
