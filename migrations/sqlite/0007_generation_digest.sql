-- A digest of each generation's pages (page, in-set count, stats, candidates). A pass whose sets
-- equal the newest generation's writes no new one: an idle site's analyzer used to rewrite (and
-- every server reload) the whole generation every minute. Older rows have none.
ALTER TABLE generations ADD COLUMN digest TEXT;
