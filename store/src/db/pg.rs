//! The PostgreSQL side of the store (fleet mode): connecting and migrating, the recorder's batch
//! insert, the dictionary prune, the fleet-wide analyzer lock and the new-generation notices.
//!
//! Everything else runs the same SQL as SQLite through `on_pool!`. What is here differs because
//! PostgreSQL works differently, not because the data does:
//! - **Event ids commit in order.** A sequence hands out ids when rows are inserted, not when they
//!   commit, so two servers' batches could commit out of id order and an analyzer pass that read
//!   up to id N would never see a smaller id committed after it. Every batch therefore takes one
//!   transaction-level advisory lock ([`EVENTS_LOCK`]) before it takes ids; batches serialise
//!   (each is one statement of a few milliseconds) and the ids a reader sees are always a prefix.
//! - **One batch, one statement.** Live events go in with `COPY … FROM STDIN`; a batch with
//!   imported lines as 13 arrays through `INSERT … SELECT FROM UNNEST … ON CONFLICT DO NOTHING`
//!   (so a line imported twice is skipped); strings as one array. No multi-row placeholder ladder.
//! - **The analyzer lock** is a session advisory lock on a connection taken out of the pool, so a
//!   crashed leader's lock goes with its connection.

use std::collections::HashMap;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::PG_MIGRATOR;
use super::compact::{BUMP_EPOCH, BatchIds, EPOCH_KEY, StringIds};
use crate::error::Error;
use crate::event::Event;
use crate::location::PgLocation;

/// Advisory-lock key every event batch (and every dictionary prune) takes for its transaction.
const EVENTS_LOCK: i64 = 0x5055_5348_0001;
/// Advisory-lock key of the analyzer pass, fleet-wide.
const ANALYZER_LOCK: i64 = 0x5055_5348_0002;
/// The channel a new generation is announced on (payload: its id).
pub(super) const GENERATION_CHANNEL: &str = "pushwise_generation";

/// A PostgreSQL store's connections and the runtime they belong to (for the recorder's
/// blocking writer thread).
#[derive(Clone, Debug)]
pub(super) struct PgStore {
    pub(super) pool: PgPool,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) options: PgConnectOptions,
}

impl PgStore {
    /// Connects, checks that the database is pushwise's (or empty), and applies the migrations;
    /// `read_only` connections only check that the schema is this build's and refuse writes.
    pub(super) async fn connect(loc: &PgLocation, read_only: bool) -> Result<PgStore, Error> {
        let mut options: PgConnectOptions = loc
            .url
            .parse()
            .map_err(|e| Error::invalid(format!("{loc}: {e}")))?;
        let timeout_ms = loc.statement_timeout.as_millis().to_string();
        options = options
            .application_name("pushwise")
            .options([("statement_timeout", timeout_ms.as_str())])
            .log_statements(tracing::log::LevelFilter::Trace);
        if read_only {
            options = options.options([("default_transaction_read_only", "on")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(loc.pool_max)
            .min_connections(0)
            // A PostgreSQL that is down must fail a batch quickly, not hold the recorder.
            .acquire_timeout(std::time::Duration::from_secs(2))
            .connect_with(options.clone())
            .await
            .map_err(|e| Error::unreachable(format!("cannot connect to {loc}: {e}")))?;
        let ready = async {
            check_identity(&pool, loc).await?;
            if read_only {
                check_schema(&pool, loc).await
            } else {
                // Two servers starting at once: the migrator takes its own advisory lock.
                PG_MIGRATOR.run(&pool).await.map_err(Error::from)
            }
        };
        if let Err(e) = ready.await {
            pool.close().await;
            return Err(e);
        }
        Ok(PgStore {
            pool,
            rt: tokio::runtime::Handle::current(),
            options,
        })
    }

    /// Inserts a batch in one transaction (see the module docs for the lock and the arrays).
    /// Imported lines already present are skipped; returns the rows inserted.
    pub(super) async fn insert_events(
        &self,
        strings: &StringIds,
        events: &[Event],
    ) -> Result<u64, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(EVENTS_LOCK)
            .execute(&mut *tx)
            .await?;
        let epoch: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(EPOCH_KEY)
            .fetch_optional(&mut *tx)
            .await?;
        strings.sync_epoch(epoch.as_deref());
        let mut ids = strings.lookup(events);
        let fresh = if ids.missing.is_empty() {
            HashMap::new()
        } else {
            let mut texts: Vec<String> = ids.missing.iter().map(|s| s.to_string()).collect();
            texts.sort_unstable();
            sqlx::query(
                "INSERT INTO strings (text) SELECT t FROM UNNEST($1::text[]) AS u(t) \
                 ON CONFLICT (text) DO NOTHING",
            )
            .bind(&texts)
            .execute(&mut *tx)
            .await?;
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, text FROM strings WHERE text = ANY($1::text[])")
                    .bind(&texts)
                    .fetch_all(&mut *tx)
                    .await?;
            let fresh: HashMap<String, i64> = rows.into_iter().map(|(id, t)| (t, id)).collect();
            ids.resolve(events, &fresh)?;
            fresh
        };
        let live = events
            .iter()
            .all(|e| e.source.is_none() && e.source_line.is_none());
        let inserted = if live {
            copy_live(&mut tx, &ids, events).await?
        } else {
            unnest(&mut tx, &ids, events).await?
        };
        tx.commit().await?;
        strings.remember(fresh);
        Ok(inserted)
    }

    /// Deletes the `strings` rows no event refers to (after retention). Under the events lock, so
    /// no batch is between reading the epoch and inserting while a chunk goes; the epoch bump
    /// makes every writer's cache start over.
    pub(super) async fn prune_strings(&self) -> Result<u64, Error> {
        // As on SQLite: the referenced set from one scan of the events up to a snapshot id (a
        // hashed set difference, not a search per string), then each chunk deleted under the
        // events lock after re-checking only the events written since the snapshot.
        let snap: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM event_log")
            .fetch_one(&self.pool)
            .await?;
        let unused: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM strings EXCEPT (\
               SELECT method FROM event_log WHERE id <= $1 \
               UNION SELECT path FROM event_log WHERE id <= $1 \
               UNION SELECT content_type FROM event_log WHERE id <= $1 AND content_type IS NOT NULL \
               UNION SELECT referer FROM event_log WHERE id <= $1 AND referer IS NOT NULL)",
        )
        .bind(snap)
        .fetch_all(&self.pool)
        .await?;
        let mut deleted = 0;
        for chunk in unused.chunks(10_000) {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENTS_LOCK)
                .execute(&mut *tx)
                .await?;
            deleted += sqlx::query(
                "DELETE FROM strings s WHERE s.id = ANY($1::int8[]) AND NOT EXISTS \
                 (SELECT 1 FROM event_log e WHERE e.id > $2 AND (e.method = s.id \
                  OR e.path = s.id OR e.content_type = s.id OR e.referer = s.id))",
            )
            .bind(chunk)
            .bind(snap)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(BUMP_EPOCH)
                .bind(EPOCH_KEY)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(deleted)
    }

    /// Takes the analyzer lock on a connection of its own, or `None` when another session has it.
    pub(super) async fn try_analyzer_lock(&self) -> Result<Option<AnalyzerLock>, Error> {
        let mut conn = self.options.connect().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(ANALYZER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !got {
            let _ = conn.close().await;
            return Ok(None);
        }
        Ok(Some(AnalyzerLock { conn: Some(conn) }))
    }

    /// A listener for new generations, or `None` if LISTEN fails (the poll still finds them).
    pub(super) async fn listen(&self) -> Option<sqlx::postgres::PgListener> {
        let mut l = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .ok()?;
        l.listen(GENERATION_CHANNEL).await.ok()?;
        Some(l)
    }
}

/// A batch with imported lines: one `INSERT … SELECT FROM UNNEST` of 13 arrays, which skips lines
/// already imported (`ON CONFLICT DO NOTHING` on the import-line index).
async fn unnest(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    ids: &BatchIds<'_>,
    events: &[Event],
) -> Result<u64, Error> {
    let mut cols: [Vec<Option<i64>>; 13] = Default::default();
    for c in &mut cols {
        c.reserve(events.len());
    }
    for (i, e) in events.iter().enumerate() {
        for (col, v) in cols.iter_mut().zip(ids.row(e, i)) {
            col.push(v);
        }
    }
    let [
        ts,
        client,
        conn,
        stream,
        method,
        path,
        status,
        bytes,
        ctype,
        referer,
        flags,
        source,
        line,
    ] = cols;
    Ok(sqlx::query(
        "INSERT INTO event_log (ts_ms, client, conn_id, stream_id, method, path, status, bytes, \
             content_type, referer, flags, source, source_line) \
             SELECT ts, cl, co, st, me, pa, sc, by, ct, re, fl, so, li FROM UNNEST($1::int8[], \
             $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], \
             $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[]) WITH ORDINALITY \
             AS u(ts, cl, co, st, me, pa, sc, by, ct, re, fl, so, li, n) ORDER BY n \
             ON CONFLICT DO NOTHING",
    )
    .bind(ts)
    .bind(client)
    .bind(conn)
    .bind(stream)
    .bind(method)
    .bind(path)
    .bind(status)
    .bind(bytes)
    .bind(ctype)
    .bind(referer)
    .bind(flags)
    .bind(source)
    .bind(line)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// A live batch (nothing to deduplicate): `COPY … FROM STDIN` in text format, the fastest way in
/// measured here (about 205,000 events/s against 125,000 for the `UNNEST` insert and, oddly,
/// also 125,000 for binary COPY: BENCHMARKS.md, "Fleet store").
async fn copy_live(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    ids: &BatchIds<'_>,
    events: &[Event],
) -> Result<u64, Error> {
    use std::fmt::Write as _;
    const COLUMNS: usize = 11;
    let mut text = String::with_capacity(events.len() * 96);
    for (i, e) in events.iter().enumerate() {
        for (c, v) in ids.row(e, i)[..COLUMNS].iter().enumerate() {
            if c > 0 {
                text.push('\t');
            }
            match v {
                Some(v) => {
                    let _ = write!(text, "{v}");
                }
                None => text.push_str("\\N"),
            }
        }
        text.push('\n');
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY event_log (ts_ms, client, conn_id, stream_id, method, path, status, bytes, \
             content_type, referer, flags) FROM STDIN",
        )
        .await?;
    copy.send(text.into_bytes()).await?;
    Ok(copy.finish().await?)
}

/// Announcements of new generations written by any process of the fleet (PostgreSQL
/// `LISTEN`). They only make a server's reload sooner: its poll of the generation number finds
/// every generation anyway, so a lost connection or an SQLite store (no notices) loses nothing.
#[derive(Debug)]
pub struct GenerationNotices {
    listener: Option<sqlx::postgres::PgListener>,
}

impl GenerationNotices {
    pub(super) fn none() -> GenerationNotices {
        GenerationNotices { listener: None }
    }

    pub(super) async fn of(pg: &PgStore) -> GenerationNotices {
        GenerationNotices {
            listener: pg.listen().await,
        }
    }

    /// Waits for the next notice (forever without a listener). After a failure it waits a second
    /// and returns, so a caller's loop polls instead of spinning; the listener reconnects itself.
    pub async fn next(&mut self) {
        match &mut self.listener {
            None => std::future::pending().await,
            Some(l) => {
                if l.recv().await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The fleet-wide analyzer lock, held for one pass.
#[derive(Debug)]
pub struct AnalyzerLock {
    /// The session holding the PostgreSQL advisory lock (none for SQLite).
    conn: Option<PgConnection>,
}

impl AnalyzerLock {
    pub(super) fn none() -> AnalyzerLock {
        AnalyzerLock { conn: None }
    }

    /// Releases the lock. Dropping it instead releases it too, when its connection closes.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(ANALYZER_LOCK)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

/// Refuses a database that holds tables but is not pushwise's (no migrations table, or a first
/// migration that is not ours): `--db` pointing at another application's database must not have
/// pushwise's tables added to it.
async fn check_identity(pool: &PgPool, loc: &PgLocation) -> Result<(), Error> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    if tables.is_empty() {
        return Ok(());
    }
    if tables.iter().any(|t| t == "_sqlx_migrations") {
        let first: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 1")
                .fetch_optional(pool)
                .await?;
        let ours = PG_MIGRATOR.iter().next().map(|m| m.checksum.to_vec());
        if first.is_some() && first == ours {
            return Ok(());
        }
    }
    let shown: Vec<&str> = tables.iter().take(8).map(String::as_str).collect();
    Err(Error::foreign(format!(
        "{loc} is not pushwise's database (its tables: {}{}); point --db at an empty database or \
         at one pushwise created",
        shown.join(", "),
        if tables.len() > 8 { ", ..." } else { "" }
    )))
}

/// For read-only opens: the applied migrations must be exactly this build's.
async fn check_schema(pool: &PgPool, loc: &PgLocation) -> Result<(), Error> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(|_| {
                Error::invalid(format!(
                    "{loc} holds no pushwise data yet: nothing recorded or learned"
                ))
            })?;
    let ours: Vec<i64> = PG_MIGRATOR.iter().map(|m| m.version).collect();
    if applied != ours {
        return Err(Error::invalid(format!(
            "{loc} has schema versions {applied:?}, this pushwise needs {ours:?}: run a changing \
             command (pushwise analyze --once) to upgrade it"
        )));
    }
    Ok(())
}
