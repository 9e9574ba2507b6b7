-- Bit 8 of event_log.flags: a page view over its network prefix's learning cap (served and
-- recorded, never learned from; see SECURITY.md). The readable view shows it as `over_cap`.
DROP VIEW events;

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
       l.source, l.source_line,
       (l.flags >> 8) & 1 AS over_cap
FROM event_log l
JOIN strings m ON m.id = l.method
JOIN strings p ON p.id = l.path
LEFT JOIN strings c ON c.id = l.content_type
LEFT JOIN strings r ON r.id = l.referer;
