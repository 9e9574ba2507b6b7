-- How many quiet page views hold a client back from pushes and hints (store/src/quiet.rs): a
-- global setting beside the threshold (page ''); NULL keeps the built-in default, off.
ALTER TABLE thresholds ADD COLUMN quiet_after INTEGER;
