-- Incremental learning: decayed counts that each analyzer pass folds its page views into, so a
-- pass reads only the events that are new (plus the still-open sessions it must see again)
-- instead of every retained event.
--
-- Weights are stored relative to one reference time (learn_state.ref_ms): a view at time t
-- weighs 2^((t - ref_ms) / half_life_ms). Adding a view is then a plain addition, whatever the
-- order views are folded in, so the counts are exact however the events are cut into passes.
-- When weights grow large the analyzer moves ref_ms forward and scales every weight down once.

-- The analyzer's position in the event log and the parameters the counts were built with.
CREATE TABLE learn_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    watermark    INTEGER NOT NULL, -- highest event_log.id read so far
    ref_ms       INTEGER,          -- the time every stored weight is expressed at (NULL: none yet)
    half_life_ms INTEGER NOT NULL, -- the counts' half-life: another value needs `analyze --rebuild`
    window_ms    INTEGER NOT NULL  -- the attribution window: another value needs `analyze --rebuild`
);

-- Per source (0 = live traffic, else an import's file fingerprint), the latest request time seen.
CREATE TABLE source_clocks (
    source   INTEGER PRIMARY KEY,
    clock_ms INTEGER NOT NULL
);

-- Imports whose every line has been written: their sessions close at the next pass.
CREATE TABLE sources_done (
    source INTEGER PRIMARY KEY
);

-- Sessions not closed yet (a client still active on a source): their events are read again by the
-- next pass, from first_id on, and counted only once the session closes.
CREATE TABLE open_sessions (
    client   INTEGER NOT NULL,
    source   INTEGER NOT NULL,
    first_id INTEGER NOT NULL,
    PRIMARY KEY (client, source)
);

-- Page views per page and context ('*' is page-wide), decayed.
CREATE TABLE view_counts (
    page     TEXT    NOT NULL,
    context  TEXT    NOT NULL,
    views    INTEGER NOT NULL,
    weighted REAL    NOT NULL,
    PRIMARY KEY (page, context)
);

-- Per page, context and asset: views that needed the asset (hits) and views where its need was not
-- observable (pushed, hinted or skipped by digest), decayed; and the log-sum of its delays.
CREATE TABLE asset_counts (
    page         TEXT    NOT NULL,
    context      TEXT    NOT NULL,
    asset        TEXT    NOT NULL,
    hit_n        INTEGER NOT NULL,
    hit_w        REAL    NOT NULL,
    unknown_n    INTEGER NOT NULL,
    unknown_w    REAL    NOT NULL,
    delay_ln_sum REAL    NOT NULL, -- sum of ln(1 + delay_ms) over the hits
    PRIMARY KEY (page, context, asset)
);

-- What every response said about a path: size of full responses, cacheability, last status.
CREATE TABLE asset_info (
    path        TEXT    PRIMARY KEY,
    bytes_sum   INTEGER NOT NULL,
    bytes_n     INTEGER NOT NULL,
    cacheable   INTEGER NOT NULL,
    saw_ok      INTEGER NOT NULL,
    last_status INTEGER NOT NULL, -- of the response with the highest event id (last_id)
    last_id     INTEGER NOT NULL
);
