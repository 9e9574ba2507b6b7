-- pushwise's schema. This directory is the only place the schema is defined.

-- Key/value settings: the per-install salt for client keys and global tuning knobs.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- One row per response served (live) or per access-log line (imported).
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    ts_ms            INTEGER NOT NULL,           -- request time, Unix milliseconds (UTC)
    client           INTEGER NOT NULL,           -- keyed hash of IP + User-Agent; never the raw IP
    conn_id          INTEGER NOT NULL DEFAULT 0, -- per-process connection number; 0 when unknown (imports)
    stream_id        INTEGER NOT NULL DEFAULT 0,
    method           TEXT    NOT NULL,
    path             TEXT    NOT NULL,           -- without query string unless --keep-query
    status           INTEGER NOT NULL,
    bytes            INTEGER NOT NULL DEFAULT 0,
    content_type     TEXT,
    referer          TEXT,                       -- same-site referer reduced to a path, else NULL
    referer_external INTEGER NOT NULL DEFAULT 0, -- 1 when the Referer named another site
    is_page          INTEGER NOT NULL DEFAULT 0, -- 1 when the response is a page (navigation target)
    browser          INTEGER NOT NULL DEFAULT 1, -- 1 when the User-Agent looks like a browser
    cacheable        INTEGER NOT NULL DEFAULT 1, -- 0 for Set-Cookie / private / no-store responses
    push             INTEGER NOT NULL DEFAULT 0, -- 0 requested, 1 pushed, 2 push cancelled by client, 3 skipped (digest), 4 hinted
    holdout          INTEGER NOT NULL DEFAULT 0, -- 1 on a page view served without push or hints on purpose
    source           INTEGER,                    -- import: file fingerprint; NULL for live traffic
    source_line      INTEGER                     -- import: line number in that file
);
CREATE INDEX events_ts ON events (ts_ms);
CREATE UNIQUE INDEX events_import_line ON events (source, source_line) WHERE source IS NOT NULL;

-- One row per analyzer pass that produced push sets. The newest generation is what servers push.
CREATE TABLE generations (
    id          INTEGER PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    views       INTEGER NOT NULL,
    pages       INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL
);

-- Views per page and context, per generation (context '*' is the page-wide estimate).
CREATE TABLE page_stats (
    generation INTEGER NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    page       TEXT    NOT NULL,
    context    TEXT    NOT NULL,
    views      INTEGER NOT NULL,
    weighted   REAL    NOT NULL,
    uses_own   INTEGER NOT NULL, -- 1 when this context has its own set, 0 when it falls back to '*'
    PRIMARY KEY (generation, page, context)
);

-- Every candidate asset per page and context, in or out of the set, with the reason.
CREATE TABLE set_assets (
    generation  INTEGER NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    page        TEXT    NOT NULL,
    context     TEXT    NOT NULL,
    asset       TEXT    NOT NULL,
    probability REAL    NOT NULL,
    support     INTEGER NOT NULL,
    delay_ms    INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    as_type     TEXT    NOT NULL,
    in_set      INTEGER NOT NULL,
    position    INTEGER NOT NULL, -- push order within the set; candidates out of the set keep their rank too
    reason      TEXT    NOT NULL, -- 'ok', 'pinned', 'below threshold', 'low support', 'over count', 'over bytes', 'not cacheable', 'not 200', 'banned'
    PRIMARY KEY (generation, page, context, asset)
);

-- Operator thresholds: page '' is the global default, any other value overrides one page.
CREATE TABLE thresholds (
    page        TEXT PRIMARY KEY NOT NULL,
    probability REAL,
    min_support INTEGER
);

-- Operator pins (always push) and bans (never push) per page.
CREATE TABLE pins (
    page   TEXT NOT NULL,
    asset  TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('pin', 'ban')),
    PRIMARY KEY (page, asset)
);
