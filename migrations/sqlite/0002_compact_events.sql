-- Compact event rows: strings (methods, paths, referers, content types) are stored once in a
-- dictionary and events refer to them by id; the six small flags share one integer.
--
-- Why: the recorder writes every request. With the strings and flags inline, SQLite alone spent
-- ~2.4 us per row and sqlx another ~2 us copying each string into its arguments; integer-only
-- rows without the time index cost about a third of that. The `events` name survives as a view with the old columns, so operators'
-- queries (and the tools that read events) see the same table as before.

-- Every distinct string an event mentions. Ids never change and rows are never deleted, so a
-- writer may cache text -> id for as long as it runs.
CREATE TABLE strings (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
);

-- One row per response served (live) or per access-log line (imported).
CREATE TABLE event_log (
    id           INTEGER PRIMARY KEY,
    ts_ms        INTEGER NOT NULL,           -- request time, Unix milliseconds (UTC)
    client       INTEGER NOT NULL,           -- keyed hash of IP + User-Agent; never the raw IP
    conn_id      INTEGER NOT NULL DEFAULT 0, -- per-process connection number; 0 when unknown (imports)
    stream_id    INTEGER NOT NULL DEFAULT 0,
    method       INTEGER NOT NULL,           -- strings.id
    path         INTEGER NOT NULL,           -- strings.id; without query string unless --keep-query
    status       INTEGER NOT NULL,
    bytes        INTEGER NOT NULL DEFAULT 0,
    content_type INTEGER,                    -- strings.id
    referer      INTEGER,                    -- strings.id of the same-site referer path, else NULL
    -- bit 0 referer_external, 1 is_page, 2 browser, 3 cacheable, 4 holdout,
    -- bits 5-7 push (0 requested, 1 pushed, 2 push cancelled, 3 skipped by digest, 4 hinted)
    flags        INTEGER NOT NULL,
    source       INTEGER,                    -- import: file fingerprint; NULL for live traffic
    source_line  INTEGER                     -- import: line number in that file
);

INSERT INTO strings (text)
    SELECT method FROM events UNION
    SELECT path FROM events UNION
    SELECT content_type FROM events WHERE content_type IS NOT NULL UNION
    SELECT referer FROM events WHERE referer IS NOT NULL;

INSERT INTO event_log (id, ts_ms, client, conn_id, stream_id, method, path, status, bytes,
                       content_type, referer, flags, source, source_line)
SELECT e.id, e.ts_ms, e.client, e.conn_id, e.stream_id,
       (SELECT id FROM strings WHERE text = e.method),
       (SELECT id FROM strings WHERE text = e.path),
       e.status, e.bytes,
       (SELECT id FROM strings WHERE text = e.content_type),
       (SELECT id FROM strings WHERE text = e.referer),
       (e.referer_external != 0) | ((e.is_page != 0) << 1) | ((e.browser != 0) << 2)
           | ((e.cacheable != 0) << 3) | ((e.holdout != 0) << 4) | ((e.push & 7) << 5),
       e.source, e.source_line
FROM events e;

DROP TABLE events;

-- No index on ts_ms: it cost a third of SQLite's work per inserted row, and only the hourly
-- retention prune would use it; that prune walks the table in rowid ranges instead.
CREATE UNIQUE INDEX event_log_import_line ON event_log (source, source_line) WHERE source IS NOT NULL;

-- The readable form, with the columns of the original events table.
CREATE VIEW events AS
SELECT l.id, l.ts_ms, l.client, l.conn_id, l.stream_id,
       m.text AS method, p.text AS path, l.status, l.bytes,
       c.text AS content_type, r.text AS referer,
       l.flags & 1 AS referer_external,
       (l.flags >> 1) & 1 AS is_page,
       (l.flags >> 2) & 1 AS browser,
       (l.flags >> 3) & 1 AS cacheable,
       (l.flags >> 5) & 7 AS push,
       (l.flags >> 4) & 1 AS holdout,
       l.source, l.source_line
FROM event_log l
JOIN strings m ON m.id = l.method
JOIN strings p ON p.id = l.path
LEFT JOIN strings c ON c.id = l.content_type
LEFT JOIN strings r ON r.id = l.referer;
