//! The compact event row: the strings dictionary and its cache, the packed flags, and the
//! multi-row INSERT the recorder's batches go through.
//!
//! Why compact: the recorder writes one row per request on a machine that is also serving. Integer
//! rows cost SQLite and sqlx about half of what rows with inline strings did (see
//! `migrations/0002_compact_events.sql`), and the analyzer reads them back faster too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Row, Sqlite, Transaction};

use crate::error::Error;
use crate::event::{Event, Referer};

/// Bound parameters per event row: 11 for live traffic, 13 with an import's source and line.
/// (Two fewer parameters per row are 10% of the insert's cost: live batches leave them out.)
const LIVE_COLUMNS: usize = 11;
const IMPORT_COLUMNS: usize = 13;

/// The largest multi-row INSERT: 13 × 512 parameters, far below SQLite's limit of 32,766.
const MAX_CHUNK: usize = 512;

/// Cached text -> id entries beyond which the cache starts over (with `--keep-query` the
/// dictionary can be large; the cache is an optimisation, never the source of truth).
const MAX_CACHED: usize = 200_000;

/// The seven small per-event facts packed into `event_log.flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flags(pub(super) i64);

impl Flags {
    pub(super) fn of(e: &Event) -> Flags {
        let bit = |b: bool, at: u32| i64::from(b) << at;
        Flags(
            bit(matches!(e.referer, Referer::External), 0)
                | bit(e.is_page, 1)
                | bit(e.browser, 2)
                | bit(e.cacheable, 3)
                | bit(e.holdout, 4)
                | ((e.push as i64 & 7) << 5)
                | bit(e.over_cap, 8),
        )
    }
    fn bit(self, at: u32) -> bool {
        (self.0 >> at) & 1 == 1
    }
    pub(super) fn referer_external(self) -> bool {
        self.bit(0)
    }
    pub(super) fn is_page(self) -> bool {
        self.bit(1)
    }
    pub(super) fn browser(self) -> bool {
        self.bit(2)
    }
    pub(super) fn cacheable(self) -> bool {
        self.bit(3)
    }
    pub(super) fn holdout(self) -> bool {
        self.bit(4)
    }
    pub(super) fn push(self) -> i64 {
        (self.0 >> 5) & 7
    }
    pub(super) fn over_cap(self) -> bool {
        self.bit(8)
    }
}

/// How many of `remaining` rows the next INSERT takes: a full chunk, else the largest power of
/// two that fits. Batches of any size thus use at most ten distinct statements, all of which
/// stay in sqlx's prepared-statement cache instead of being parsed again for every odd size.
pub(super) fn insert_chunk_len(remaining: usize) -> usize {
    if remaining >= MAX_CHUNK {
        MAX_CHUNK
    } else {
        1 << remaining.ilog2()
    }
}

/// The INSERT for `rows` events (`rows` a value of [`insert_chunk_len`]), with or without the
/// import columns; each built once.
pub(super) fn insert_sql(rows: usize, with_source: bool) -> Arc<str> {
    static SQL: OnceLock<[Vec<Arc<str>>; 2]> = OnceLock::new();
    let ladder = |columns: usize| -> Vec<Arc<str>> {
        (0..=MAX_CHUNK.ilog2())
            .map(|k| {
                let mut q = String::from(
                    "INSERT OR IGNORE INTO event_log (ts_ms, client, conn_id, stream_id, method, \
                     path, status, bytes, content_type, referer, flags",
                );
                q.push_str(if columns == IMPORT_COLUMNS {
                    ", source, source_line) VALUES "
                } else {
                    ") VALUES "
                });
                let row = format!("({})", vec!["?"; columns].join(","));
                q.push_str(&vec![row; 1 << k].join(","));
                Arc::from(q)
            })
            .collect()
    };
    let all = SQL.get_or_init(|| [ladder(LIVE_COLUMNS), ladder(IMPORT_COLUMNS)]);
    debug_assert!(rows.is_power_of_two() && rows <= MAX_CHUNK);
    Arc::clone(&all[usize::from(with_source)][rows.ilog2() as usize])
}

/// Whether a chunk needs the import columns (any event from a log file).
fn has_source(chunk: &[Event]) -> bool {
    chunk
        .iter()
        .any(|e| e.source.is_some() || e.source_line.is_some())
}

/// One multi-row INSERT of a batch: its events (from index `start` of the batch), whether they
/// need the import columns, and the statement that takes them.
pub(super) struct InsertChunk<'e> {
    pub(super) start: usize,
    pub(super) events: &'e [Event],
    pub(super) with_source: bool,
    pub(super) sql: Arc<str>,
}

/// A batch cut into the INSERTs it is written with (sizes from [`insert_chunk_len`]), for either
/// driver to bind and run.
pub(super) fn insert_chunks(events: &[Event]) -> impl Iterator<Item = InsertChunk<'_>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= events.len() {
            return None;
        }
        let n = insert_chunk_len(events.len() - start);
        let chunk = &events[start..start + n];
        let with_source = has_source(chunk);
        let c = InsertChunk {
            start,
            events: chunk,
            with_source,
            sql: insert_sql(n, with_source),
        };
        start += n;
        Some(c)
    })
}

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The writer's cache of the `strings` dictionary. Shared by clones of a `Store`.
#[derive(Debug, Default, Clone)]
pub(super) struct StringIds {
    cache: Arc<Mutex<Map<String, i64>>>,
    /// The `strings_epoch` the cache is valid for: pruning bumps it, and a writer that sees a new
    /// value (inside its write transaction) forgets every cached id before using any.
    epoch: Arc<std::sync::atomic::AtomicI64>,
}

/// The setting that counts dictionary prunes.
pub(super) const EPOCH_KEY: &str = "strings_epoch";

/// Counts one more dictionary prune (bind [`EPOCH_KEY`]); the same statement on both backends.
pub(super) const BUMP_EPOCH: &str = "INSERT INTO settings (key, value) VALUES ($1, '1') \
    ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)";

/// A string id of one event: `NONE` for an absent optional string, `UNKNOWN` until resolved.
/// Dictionary ids are positive (SQLite assigns rowids from 1).
const NONE: i64 = 0;
const UNKNOWN: i64 = -1;

/// The string ids of a batch, in event order: method, path, content type, referer.
pub(super) struct BatchIds<'e> {
    ids: Vec<[i64; 4]>,
    /// Distinct strings the cache did not know, to add to the dictionary.
    pub(super) missing: Vec<&'e str>,
}

fn strings_of(e: &Event) -> [Option<&str>; 4] {
    [
        Some(e.method.as_ref()),
        Some(e.path.as_ref()),
        e.content_type.as_deref(),
        e.referer.path(),
    ]
}

impl StringIds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map<String, i64>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts).
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every cached id when the dictionary has been pruned since they were cached. Call
    /// inside the write transaction, with the epoch read in it.
    pub(super) fn sync_epoch(&self, stored: Option<&str>) {
        // No row yet: no prune has happened.
        let epoch: i64 = stored.and_then(|e| e.parse().ok()).unwrap_or(0);
        use std::sync::atomic::Ordering;
        if self.epoch.load(Ordering::Acquire) != epoch {
            let mut cache = self.lock();
            cache.clear();
            self.epoch.store(epoch, Ordering::Release);
        }
    }

    /// Looks every string of `events` up in the cache, once.
    pub(super) fn lookup<'e>(&self, events: &'e [Event]) -> BatchIds<'e> {
        let cache = self.lock();
        let mut missing = Vec::new();
        let mut seen: HashSet<&str, foldhash::fast::RandomState> = HashSet::default();
        let ids = events
            .iter()
            .map(|e| {
                strings_of(e).map(|s| match s {
                    None => NONE,
                    Some(s) => cache.get(s).copied().unwrap_or_else(|| {
                        if seen.insert(s) {
                            missing.push(s);
                        }
                        UNKNOWN
                    }),
                })
            })
            .collect();
        BatchIds { ids, missing }
    }

    /// Caches ids that are now committed.
    pub(super) fn remember(&self, fresh: HashMap<String, i64>) {
        if fresh.is_empty() {
            return;
        }
        let mut cache = self.lock();
        if cache.len() + fresh.len() > MAX_CACHED {
            cache.clear();
        }
        cache.extend(fresh);
    }
}

impl BatchIds<'_> {
    /// Fills in the ids of the strings just added to the dictionary.
    pub(super) fn resolve(
        &mut self,
        events: &[Event],
        fresh: &HashMap<String, i64>,
    ) -> Result<(), Error> {
        for (ids, e) in self.ids.iter_mut().zip(events) {
            for (id, s) in ids.iter_mut().zip(strings_of(e)) {
                if *id == UNKNOWN {
                    let s = s.unwrap_or_default();
                    *id = *fresh
                        .get(s)
                        .ok_or_else(|| Error::corrupt(format!("no dictionary id for {s:?}")))?;
                }
            }
        }
        Ok(())
    }

    /// The values of one event row, in the INSERT's column order: the first [`LIVE_COLUMNS`] for
    /// live traffic, all [`IMPORT_COLUMNS`] with an import's source and line.
    pub(super) fn row(&self, e: &Event, at: usize) -> [Option<i64>; IMPORT_COLUMNS] {
        let opt = |id: i64| (id != NONE).then_some(id);
        let [method, path, content_type, referer] = self.ids[at];
        [
            Some(e.ts_ms),
            Some(e.client),
            Some(e.conn_id),
            Some(e.stream_id),
            Some(method),
            Some(path),
            Some(i64::from(e.status)),
            Some(i64::try_from(e.bytes).unwrap_or(i64::MAX)),
            opt(content_type),
            opt(referer),
            Some(Flags::of(e).0),
            e.source,
            e.source_line,
        ]
    }

    /// The bound parameters of one INSERT of the batch.
    pub(super) fn event_args(&self, chunk: &InsertChunk<'_>) -> Result<SqliteArguments, Error> {
        let mut args = SqliteArguments::default();
        args.reserve(chunk.events.len() * IMPORT_COLUMNS, 0);
        for (i, e) in chunk.events.iter().enumerate() {
            for v in &self.row(e, chunk.start + i)[..columns(chunk.with_source)] {
                args.add(*v).map_err(sqlx::Error::Encode)?;
            }
        }
        Ok(args)
    }
}

/// Bound parameters per row of an INSERT with or without the import columns.
pub(super) fn columns(with_source: bool) -> usize {
    if with_source {
        IMPORT_COLUMNS
    } else {
        LIVE_COLUMNS
    }
}

/// Adds `texts` to the dictionary (those another writer has not added already) and returns the
/// id of each.
pub(super) async fn add_strings(
    tx: &mut Transaction<'static, Sqlite>,
    texts: &[&str],
) -> Result<HashMap<String, i64>, Error> {
    let mut ids = HashMap::with_capacity(texts.len());
    for chunk in texts.chunks(MAX_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new("INSERT INTO strings (text) ");
        insert.push_values(chunk, |mut b, t| {
            b.push_bind(t.to_string());
        });
        insert.push(" ON CONFLICT (text) DO NOTHING");
        insert.build().execute(&mut **tx).await?;
        let mut select =
            sqlx::QueryBuilder::<Sqlite>::new("SELECT id, text FROM strings WHERE text IN (");
        let mut sep = select.separated(", ");
        for t in chunk {
            sep.push_bind(t.to_string());
        }
        select.push(")");
        for row in select.build().fetch_all(&mut **tx).await? {
            ids.insert(row.get::<String, _>(1), row.get::<i64, _>(0));
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PushMark;

    #[test]
    fn chunks_cover_any_batch_with_few_distinct_sizes() {
        for total in [1usize, 2, 3, 7, 511, 512, 513, 2000, 4999] {
            let (mut left, mut sizes) = (total, HashSet::new());
            while left > 0 {
                let n = insert_chunk_len(left);
                assert!(n >= 1 && n <= left && n <= MAX_CHUNK);
                sizes.insert(n);
                left -= n;
            }
            assert!(sizes.len() <= 10, "{total}: {sizes:?}");
        }
    }

    #[test]
    fn insert_sql_has_one_parameter_per_column_per_row() {
        for rows in [1usize, 2, 64, 512] {
            let live = insert_sql(rows, false);
            assert_eq!(live.matches('?').count(), rows * LIVE_COLUMNS);
            assert!(!live.contains("source"));
            let import = insert_sql(rows, true);
            assert_eq!(import.matches('?').count(), rows * IMPORT_COLUMNS);
            assert!(import.contains("source, source_line"));
        }
    }

    #[test]
    fn flags_round_trip_every_mark() {
        for push in [
            PushMark::Requested,
            PushMark::Pushed,
            PushMark::Cancelled,
            PushMark::SkippedDigest,
            PushMark::Hinted,
        ] {
            for bits in 0..64u8 {
                let e = Event {
                    referer: if bits & 1 == 1 {
                        Referer::External
                    } else {
                        Referer::None
                    },
                    is_page: bits & 2 != 0,
                    browser: bits & 4 != 0,
                    cacheable: bits & 8 != 0,
                    holdout: bits & 16 != 0,
                    over_cap: bits & 32 != 0,
                    push,
                    ..crate::db::tests::ev(0, None)
                };
                let f = Flags::of(&e);
                assert_eq!(f.referer_external(), bits & 1 == 1);
                assert_eq!(f.is_page(), e.is_page);
                assert_eq!(f.browser(), e.browser);
                assert_eq!(f.cacheable(), e.cacheable);
                assert_eq!(f.holdout(), e.holdout);
                assert_eq!(f.over_cap(), e.over_cap);
                assert_eq!(PushMark::from_i64(f.push()), push);
            }
        }
    }
}
