-- A generation's push sets as one row per page instead of one row per candidate.
--
-- Why: every analyzer pass writes a complete generation (servers load one generation whole, and
-- `sets show` explains every candidate of it). One row per candidate made that write, and the
-- delete of the generation it replaces, cost SQLite about 0.6 s per pass for 60,000 candidates
-- on a 3,000-page site: more than the rest of an incremental pass after 100,000 new events. One
-- row per page is 3,000 rows; the candidates ride along as a JSON array that the store (the only
-- code that reads them) encodes and decodes.
--
-- stats:      [[context, views, weighted, uses_own], ...]            (uses_own: 0 or 1)
-- candidates: [[context, asset, probability, support, delay_ms, bytes, as_type, in_set, position,
--               reason], ...]                                          (in_set: 0 or 1)
CREATE TABLE generation_pages (
    generation INTEGER NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    page       TEXT    NOT NULL,
    in_set     INTEGER NOT NULL, -- candidates in a set: 0 when the page pushes nothing
    stats      TEXT    NOT NULL,
    candidates TEXT    NOT NULL,
    PRIMARY KEY (generation, page)
);

-- The generations already written keep their sets.
INSERT INTO generation_pages (generation, page, in_set, stats, candidates)
SELECT s.generation,
       s.page,
       (SELECT COUNT(*) FROM set_assets a
         WHERE a.generation = s.generation AND a.page = s.page AND a.in_set = 1),
       json_group_array(json_array(s.context, s.views, s.weighted, s.uses_own)),
       (SELECT json_group_array(json_array(a.context, a.asset, a.probability, a.support,
                                           a.delay_ms, a.bytes, a.as_type, a.in_set,
                                           a.position, a.reason))
          FROM set_assets a WHERE a.generation = s.generation AND a.page = s.page)
FROM page_stats s
GROUP BY s.generation, s.page;

DROP TABLE set_assets;
DROP TABLE page_stats;

-- The decayed counts keep request contexts only: the page-wide count ('*') is their exact sum, so
-- the analyzer adds it up when it reads the counts instead of writing every view twice. And they
-- are clustered on their keys (WITHOUT ROWID): a pass upserts them in key order, which then walks
-- one b-tree in order instead of an index plus a table at random (0.25 s -> 0.15 s for 25,000
-- upserts, measured with SQLite 3.40 on the analyzer-scale store).
CREATE TABLE view_counts_new (
    page     TEXT    NOT NULL,
    context  TEXT    NOT NULL,
    views    INTEGER NOT NULL,
    weighted REAL    NOT NULL,
    PRIMARY KEY (page, context)
) WITHOUT ROWID;
INSERT INTO view_counts_new SELECT page, context, views, weighted FROM view_counts
WHERE context <> '*';
DROP TABLE view_counts;
ALTER TABLE view_counts_new RENAME TO view_counts;

CREATE TABLE asset_counts_new (
    page         TEXT    NOT NULL,
    context      TEXT    NOT NULL,
    asset        TEXT    NOT NULL,
    hit_n        INTEGER NOT NULL,
    hit_w        REAL    NOT NULL,
    unknown_n    INTEGER NOT NULL,
    unknown_w    REAL    NOT NULL,
    delay_ln_sum REAL    NOT NULL, -- sum of ln(1 + delay_ms) over the hits
    PRIMARY KEY (page, context, asset)
) WITHOUT ROWID;
INSERT INTO asset_counts_new
SELECT page, context, asset, hit_n, hit_w, unknown_n, unknown_w, delay_ln_sum FROM asset_counts
WHERE context <> '*';
DROP TABLE asset_counts;
ALTER TABLE asset_counts_new RENAME TO asset_counts;

CREATE TABLE asset_info_new (
    path        TEXT    PRIMARY KEY,
    bytes_sum   INTEGER NOT NULL,
    bytes_n     INTEGER NOT NULL,
    cacheable   INTEGER NOT NULL,
    saw_ok      INTEGER NOT NULL,
    last_status INTEGER NOT NULL, -- of the response with the highest event id (last_id)
    last_id     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO asset_info_new
SELECT path, bytes_sum, bytes_n, cacheable, saw_ok, last_status, last_id FROM asset_info;
DROP TABLE asset_info;
ALTER TABLE asset_info_new RENAME TO asset_info;
