//! The [`Store`]: every SQL statement pushwise runs lives in this module, behind a narrow typed API.
//!
//! Why one module: the server must never grow ad-hoc queries on its request path, and the two
//! backends (an SQLite file, or PostgreSQL for fleets) are taught in one place. Callers see only
//! `Store`'s methods and the row types of [`crate::rows`], never a pool, a driver type or SQL.
//! Most statements are written once for both (`on_pool!`); what PostgreSQL needs done differently
//! is in `pg`, what only SQLite has (file identity, read-only opens, `VACUUM INTO`, the rusqlite
//! writer) in `identity` and `writer`.

mod compact;
mod gen_doc;
mod identity;
mod learn;
mod pg;
#[cfg(test)]
mod pg_tests;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, QueryBuilder, SqlitePool};

use crate::location::Location;

use crate::context::Context;
use crate::error::Error;
use crate::event::Event;
use crate::rows::{
    EventRow, Generation, MaxBytes, MaxCount, MinSupport, NewGeneration, PageStat, PinAction,
    PinRow, Probability, SetRow, ThresholdRow, ThresholdUpdate,
};
use compact::{BUMP_EPOCH, EPOCH_KEY, StringIds, add_strings, insert_chunks};
pub use gen_doc::EncodedGeneration;
pub use identity::APPLICATION_ID;
pub use learn::{AssetCount, Counts, Dictionary, Fold, LearnState, ViewCount};
pub use pg::{AnalyzerLock, GenerationNotices};
pub use writer::EventWriter;

/// The SQLite migrations in `migrations/sqlite/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
/// The PostgreSQL migrations in `migrations/postgres/`, embedded at build time.
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Runs `$body` with `$p` bound to the pool of whichever backend the store has. The body is
/// compiled once per backend, so it may only use SQL both accept (`$N` placeholders, `ON CONFLICT`,
/// `RETURNING`, standard functions) and values both drivers encode (i64, f64, text, options).
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($p) => $body,
            Pool::Pg(pg) => {
                let $p = &pg.pool;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// The store's connections: an SQLite file's or a PostgreSQL server's.
#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Pg(std::sync::Arc<pg::PgStore>),
}

/// Rows per multi-row INSERT: 5 columns × 500 stays far below SQLite's variable limit.
const INSERT_CHUNK: usize = 500;

/// A handle to pushwise's database. Cheap to clone.
///
/// The backend is an SQLite file beside the server or a PostgreSQL database shared by a fleet
/// ([`Location`]); every method behaves the same on both (the store tests run on both).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// The SQLite file (empty for PostgreSQL).
    path: PathBuf,
    read_only: bool,
    strings: StringIds,
}

const SALT_KEY: &str = "client_salt";
const SALT_SINCE_KEY: &str = "client_salt_since_ms";

/// The client-key salt in use and when it was put in use (milliseconds since the epoch).
#[derive(Clone, PartialEq, Eq)]
pub struct SaltState {
    pub salt: [u8; 32],
    pub since_ms: i64,
}

impl std::fmt::Debug for SaltState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The salt is the secret that keeps keys from being reversed: never print it.
        f.debug_struct("SaltState")
            .field("since_ms", &self.since_ms)
            .finish_non_exhaustive()
    }
}

impl SaltState {
    /// A fresh salt for this process only, in use from now (for a database that cannot keep one).
    pub fn temporary() -> Result<SaltState, Error> {
        Ok(SaltState {
            salt: fresh_salt()?,
            since_ms: crate::time::now_ms(),
        })
    }
}

fn fresh_salt() -> Result<[u8; 32], Error> {
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt)
        .map_err(|e| Error::system(format!("no OS randomness for the client salt: {e}")))?;
    Ok(salt)
}

fn decode_salt(hex_salt: &str) -> Result<[u8; 32], Error> {
    hex::decode(hex_salt)
        .map_err(|_| Error::corrupt("stored client salt is corrupt"))?
        .try_into()
        .map_err(|_| Error::corrupt("stored client salt has the wrong length"))
}

/// Creates a missing database file readable and writable by its owner only (0600, whatever the
/// umask): it holds the client-key salt and who fetched what. SQLite gives the `-wal` and `-shm`
/// files it creates beside it the same mode. A file that cannot be created here is left to
/// SQLite, whose error then says why.
fn create_private(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

impl Store {
    /// Opens (creating if missing) the SQLite database at `path` for reading and writing, applies
    /// the migrations and stamps pushwise's application id.
    ///
    /// Refuses, before writing anything, a file that is not SQLite or is another application's
    /// database (see `identity`), and a database it cannot write (the stamp is a real write, so
    /// a read-only file fails here with the database's own reason, not later in the recorder).
    ///
    /// WAL + `synchronous=NORMAL`: a crash loses at most the last transaction, never corrupts.
    pub async fn open(path: &Path) -> Result<Store, Error> {
        Self::open_at(&Location::from_path(path)?).await
    }

    /// Opens the store at `loc` for reading and writing: an SQLite file as [`Store::open`] says,
    /// or a PostgreSQL database, whose migrations are applied (see `pg::connect`).
    pub async fn open_at(loc: &Location) -> Result<Store, Error> {
        match loc {
            Location::Sqlite(path) => Self::open_sqlite(path).await,
            Location::Postgres(pg) => Ok(Store {
                pool: Pool::Pg(std::sync::Arc::new(pg::PgStore::connect(pg, false).await?)),
                path: PathBuf::new(),
                read_only: false,
                strings: StringIds::default(),
            }),
        }
    }

    async fn open_sqlite(path: &Path) -> Result<Store, Error> {
        identity::identify(path).await?;
        create_private(path);
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(2))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(opts)
            .await?;
        let ready = async {
            MIGRATOR.run(&pool).await?;
            sqlx::query(AssertSqlSafe(format!(
                "PRAGMA application_id = {}",
                identity::APPLICATION_ID
            )))
            .execute(&pool)
            .await?;
            Ok::<(), Error>(())
        };
        if let Err(e) = ready.await {
            pool.close().await;
            return Err(e);
        }
        Ok(Store {
            pool: Pool::Sqlite(pool),
            path: path.to_path_buf(),
            read_only: false,
            strings: StringIds::default(),
        })
    }

    /// Opens an existing pushwise database without writing to it or beside it: no migration, no
    /// WAL switch, no `-shm` file left behind (see `identity::read_only_options`). Refuses a
    /// missing file, one that is not pushwise's, and a schema other than this build's.
    ///
    /// For the inspecting commands: a short look. A process that starts writing the database
    /// meanwhile may not be seen; [`Store::open_following`] is for a reader that stays.
    pub async fn open_read_only(path: &Path) -> Result<Store, Error> {
        Self::open_reading(path, false).await
    }

    /// Opens an existing pushwise database to read for as long as a server runs, seeing what
    /// another process writes to it (new generations of push sets): a plain read-only
    /// connection sharing the writer's `-wal` and `-shm` (created beside the file if missing).
    /// Where they cannot be created (a read-only directory or mount, where nothing can write
    /// either), it reads the file as it is. Same refusals as [`Store::open_read_only`].
    ///
    /// For `serve --read-only-db`.
    pub async fn open_following(path: &Path) -> Result<Store, Error> {
        Self::open_reading(path, true).await
    }

    async fn open_reading(path: &Path, follow: bool) -> Result<Store, Error> {
        let path = match Location::from_path(path)? {
            Location::Sqlite(p) => p,
            Location::Postgres(pg) => {
                // PostgreSQL serves readers beside writers by itself: the same pool, refusing
                // writes, and a schema check instead of migrations.
                return Ok(Store {
                    pool: Pool::Pg(std::sync::Arc::new(pg::PgStore::connect(&pg, true).await?)),
                    path: PathBuf::new(),
                    read_only: true,
                    strings: StringIds::default(),
                });
            }
        };
        let path = path.as_path();
        match identity::identify(path).await? {
            identity::Found::Pushwise => {}
            identity::Found::Missing => {
                return Err(Error::invalid(format!("no database at {}", path.display())));
            }
            identity::Found::Blank => {
                return Err(Error::invalid(format!(
                    "{} is an empty database: nothing recorded or learned yet",
                    path.display()
                )));
            }
        }
        let snapshot = identity::read_only_options(path);
        let opts = if follow {
            let shared = SqliteConnectOptions::new()
                .filename(path)
                .read_only(true)
                .busy_timeout(Duration::from_secs(2));
            // The first read is what needs the `-shm`: try one.
            let works =
                match <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&shared).await {
                    Ok(mut c) => {
                        let read = sqlx::query("SELECT count(*) FROM sqlite_master")
                            .fetch_one(&mut c)
                            .await
                            .is_ok();
                        let _ = sqlx::Connection::close(c).await;
                        read
                    }
                    Err(_) => false,
                };
            if works { shared } else { snapshot }
        } else {
            snapshot
        };
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts).await?;
        let checked = identity::check_schema(&mut conn, path).await;
        let _ = sqlx::Connection::close(conn).await;
        checked?;
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await?;
        Ok(Store {
            pool: Pool::Sqlite(pool),
            path: path.to_path_buf(),
            read_only: true,
            strings: StringIds::default(),
        })
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Checkpoints the write-ahead log into the main file and closes the pool, so that the main
    /// file alone holds everything written (a `cp` of it is a complete copy) and no `-wal` or
    /// `-shm` file is left beside it. A checkpoint that cannot run (another process is writing)
    /// is skipped: the data is safe in the WAL and the other process checkpoints later.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => {
                if !self.read_only {
                    // Busy (another process holds the WAL) is not an error here: see above.
                    let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                        .execute(pool)
                        .await;
                }
                pool.close().await;
            }
            Pool::Pg(pg) => pg.pool.close().await,
        }
    }

    /// Whether this store is a PostgreSQL database (shared by a fleet) rather than an SQLite file.
    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Pool::Pg(_))
    }

    /// Notices of new generations from any process of the fleet (PostgreSQL only; an SQLite
    /// store's never arrive, and the server's poll finds every generation either way).
    pub async fn generation_notices(&self) -> GenerationNotices {
        match &self.pool {
            Pool::Sqlite(_) => GenerationNotices::none(),
            Pool::Pg(pg) => GenerationNotices::of(pg).await,
        }
    }

    /// Takes the fleet-wide analyzer lock for one pass, or `None` when another process holds it.
    /// On PostgreSQL it is a session advisory lock, released by [`AnalyzerLock::release`] or
    /// when its connection goes (a crashed leader's lock goes with it). An SQLite file has one
    /// writer process: the lock is always granted.
    pub async fn try_analyzer_lock(&self) -> Result<Option<AnalyzerLock>, Error> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(Some(AnalyzerLock::none())),
            Pool::Pg(pg) => pg.try_analyzer_lock().await,
        }
    }

    /// Writes a consistent copy of the whole database to `dest` (SQLite's `VACUUM INTO`), safe
    /// while a server records into it. Refuses a `dest` that exists.
    pub async fn backup(&self, dest: &Path) -> Result<(), Error> {
        if dest.exists() {
            return Err(Error::invalid(format!(
                "{} exists: a backup never overwrites a file",
                dest.display()
            )));
        }
        let dest = dest
            .to_str()
            .ok_or_else(|| Error::invalid("the backup path is not valid UTF-8"))?;
        let Pool::Sqlite(pool) = &self.pool else {
            return Err(Error::invalid(
                "pushwise backup copies an SQLite file; back a PostgreSQL store up with pg_dump",
            ));
        };
        sqlx::query("VACUUM INTO ?")
            .bind(dest)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// The per-install secret salt for client keys, generated on first use and kept in the database.
    pub async fn salt(&self) -> Result<[u8; 32], Error> {
        Ok(self.salt_state().await?.salt)
    }

    /// The current client-key salt and since when it is in use, creating either if missing (a
    /// database from before rotation gets "since now", so its first rotation is a full period
    /// after the upgrade).
    pub async fn salt_state(&self) -> Result<SaltState, Error> {
        if self.setting(SALT_KEY).await?.is_none() {
            // The salt is what keeps client keys from being reversed to addresses by brute force
            // over the IPv4 space: it comes from the operating system's CSPRNG, never a seeded PRNG.
            let salt = hex::encode(fresh_salt()?);
            on_pool!(self, p => sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
            )
            .bind(SALT_KEY)
            .bind(salt)
            .execute(p)
            .await.map(|_| ()))?;
        }
        if self.setting(SALT_SINCE_KEY).await?.is_none() {
            on_pool!(self, p => sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
            )
            .bind(SALT_SINCE_KEY)
            .bind(crate::time::now_ms().to_string())
            .execute(p)
            .await.map(|_| ()))?;
        }
        // Another process may have won either race: read back what is stored.
        let salt = decode_salt(&self.setting(SALT_KEY).await?.unwrap_or_default())?;
        let since_ms = self
            .setting(SALT_SINCE_KEY)
            .await?
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::corrupt("stored client salt time is corrupt"))?;
        Ok(SaltState { salt, since_ms })
    }

    /// Replaces the client-key salt `old` with a fresh one in use from `now_ms`, and returns the
    /// salt now stored. Compare-and-set: if another process rotated first, its salt is kept and
    /// returned, so two servers on one database never rotate twice.
    pub async fn rotate_salt(&self, old: &[u8; 32], now_ms: i64) -> Result<SaltState, Error> {
        let fresh = hex::encode(fresh_salt()?);
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let swapped =
                sqlx::query("UPDATE settings SET value = $1 WHERE key = $2 AND value = $3")
                    .bind(&fresh)
                    .bind(SALT_KEY)
                    .bind(hex::encode(old))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if swapped == 1 {
                sqlx::query("UPDATE settings SET value = $1 WHERE key = $2")
                    .bind(now_ms.to_string())
                    .bind(SALT_SINCE_KEY)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        self.salt_state().await
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(
            on_pool!(self, p => sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(p)
            .await)?,
        )
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), Error> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(p)
        .await.map(|_| ()))?;
        Ok(())
    }

    /// Inserts a batch in one transaction with multi-row INSERTs. Imported lines already
    /// present (same file fingerprint and line) are ignored, so re-imports do not duplicate.
    /// Returns the number of rows actually inserted.
    ///
    /// Strings go through the dictionary: ids come from the in-memory cache, and strings it has
    /// not seen are added to `strings` in the same transaction (and cached only once it commits,
    /// so a failed batch never leaves an id in the cache that the database does not have).
    pub async fn insert_events(&self, events: &[Event]) -> Result<u64, Error> {
        if events.is_empty() {
            return Ok(0);
        }
        let pool = match &self.pool {
            Pool::Sqlite(p) => p,
            Pool::Pg(pg) => return pg.insert_events(&self.strings, events).await,
        };
        // IMMEDIATE: the write lock first, so the dictionary epoch read below cannot change before
        // this batch commits (a prune waits for it, or it sees the prune's new epoch).
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let epoch: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(EPOCH_KEY)
            .fetch_optional(&mut *tx)
            .await?;
        self.strings.sync_epoch(epoch.as_deref());
        let mut ids = self.strings.lookup(events);
        let fresh = if ids.missing.is_empty() {
            HashMap::new()
        } else {
            let fresh = add_strings(&mut tx, &ids.missing).await?;
            ids.resolve(events, &fresh)?;
            fresh
        };
        let mut inserted = 0;
        for chunk in insert_chunks(events) {
            let args = ids.event_args(&chunk)?;
            inserted += sqlx::query_with(AssertSqlSafe(chunk.sql), args)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        self.strings.remember(fresh);
        Ok(inserted)
    }

    /// A blocking writer of event batches on its own connection, for the recorder: the same rows
    /// as [`Store::insert_events`] at a fraction of the CPU per row (see `store/writer.rs`).
    /// It shares this store's string-id cache.
    pub fn event_writer(&self) -> EventWriter {
        match &self.pool {
            Pool::Sqlite(_) => EventWriter::new(self.path.clone(), self.strings.clone()),
            Pool::Pg(pg) => EventWriter::postgres(pg.clone(), self.strings.clone()),
        }
    }

    /// Deletes events older than `ts_ms` (retention). Returns rows deleted.
    ///
    /// There is no index on time (it would cost every recorded request), so this walks the table
    /// in rowid ranges, one short transaction each: the recorder's batches slip in between
    /// instead of waiting for one long delete.
    pub async fn prune_events_before(&self, ts_ms: i64) -> Result<u64, Error> {
        self.prune_in_spans(ts_ms, 50_000).await
    }

    async fn prune_in_spans(&self, ts_ms: i64, span: i64) -> Result<u64, Error> {
        let (lo, hi): (Option<i64>, Option<i64>) = on_pool!(self, p =>
            sqlx::query_as("SELECT MIN(id), MAX(id) FROM event_log")
                .fetch_one(p)
                .await)?;
        let (Some(mut start), Some(hi)) = (lo, hi) else {
            return Ok(0);
        };
        let mut deleted = 0;
        while start <= hi {
            deleted += on_pool!(self, p => sqlx::query(
                "DELETE FROM event_log WHERE id >= $1 AND id < $2 AND ts_ms < $3"
            )
            .bind(start)
            .bind(start.saturating_add(span))
            .bind(ts_ms)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
            start = start.saturating_add(span);
            tokio::task::yield_now().await;
        }
        Ok(deleted)
    }

    /// Deletes the `strings` rows no event refers to any more (after retention), and returns how
    /// many. Counts, sets, pins and thresholds keep their text, so only events matter.
    ///
    /// Safe beside writers with warm caches, in this process or another: the referenced set is
    /// computed from a snapshot without blocking anyone, then each chunk is deleted in a short
    /// write transaction that re-checks the events written since the snapshot and bumps
    /// `strings_epoch`, which makes every writer forget its cached ids at its next batch.
    pub async fn prune_strings(&self) -> Result<u64, Error> {
        let pool = match &self.pool {
            Pool::Sqlite(p) => p,
            Pool::Pg(pg) => return pg.prune_strings().await,
        };
        let snap: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM event_log")
            .fetch_one(pool)
            .await?;
        let unused: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM strings WHERE id NOT IN (\
               SELECT method FROM event_log WHERE id <= ?1 \
               UNION SELECT path FROM event_log WHERE id <= ?1 \
               UNION SELECT content_type FROM event_log WHERE id <= ?1 AND content_type IS NOT NULL \
               UNION SELECT referer FROM event_log WHERE id <= ?1 AND referer IS NOT NULL)",
        )
        .bind(snap)
        .fetch_all(pool)
        .await?;
        let mut deleted = 0;
        for chunk in unused.chunks(INSERT_CHUNK) {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let mut q = QueryBuilder::<sqlx::Sqlite>::new("DELETE FROM strings WHERE id IN (");
            let mut ids = q.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            q.push(") AND NOT EXISTS (SELECT 1 FROM event_log e WHERE e.id > ");
            q.push_bind(snap);
            q.push(
                " AND (e.method = strings.id OR e.path = strings.id \
                 OR e.content_type = strings.id OR e.referer = strings.id))",
            );
            deleted += q.build().execute(&mut *tx).await?.rows_affected();
            sqlx::query(BUMP_EPOCH)
                .bind(EPOCH_KEY)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(deleted)
    }

    pub async fn count_events(&self) -> Result<i64, Error> {
        Ok(
            on_pool!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM event_log")
            .fetch_one(p)
            .await)?,
        )
    }

    /// Rows in the string dictionary (paths, referers, methods, content types).
    pub async fn count_strings(&self) -> Result<i64, Error> {
        Ok(
            on_pool!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM strings")
            .fetch_one(p)
            .await)?,
        )
    }

    /// All events at or after `since_ms`, in insertion order, with the columns the learner needs.
    /// Memory grows with the log: for tests and small stores; the learner reads pages instead
    /// ([`Store::read_events`]).
    pub async fn load_events(&self, since_ms: i64) -> Result<Vec<EventRow>, Error> {
        self.load_events_after_where(0, |e| e.ts_ms >= since_ms)
            .await
    }

    /// Every event with an id above `after_id`, in id order, read in pages. Memory grows with what
    /// it returns.
    pub async fn load_events_after(&self, after_id: i64) -> Result<Vec<EventRow>, Error> {
        self.load_events_after_where(after_id, |_| true).await
    }

    /// [`Store::load_events_after`], keeping only the events `keep` says yes to (it sees every
    /// event, in id order): memory grows with what is kept, not with what is read.
    pub async fn load_events_after_where(
        &self,
        after_id: i64,
        mut keep: impl FnMut(&EventRow) -> bool,
    ) -> Result<Vec<EventRow>, Error> {
        let (mut out, mut after, mut dict) = (Vec::new(), after_id, Dictionary::default());
        loop {
            let page = self.read_events(after, 50_000, &mut dict).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            out.extend(page.into_iter().filter(|e| keep(e)));
        }
        Ok(out)
    }

    /// The newest generation's id, if the analyzer has run. Cheap: the server polls it.
    pub async fn latest_generation(&self) -> Result<Option<i64>, Error> {
        Ok(
            on_pool!(self, p => sqlx::query_scalar("SELECT MAX(id) FROM generations")
            .fetch_one(p)
            .await)?,
        )
    }

    pub async fn generation(&self, id: i64) -> Result<Option<Generation>, Error> {
        let row: Option<(i64, i64, i64, i64, i64, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, created_ms, events, views, pages, duration_ms FROM generations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(p)
        .await)?;
        Ok(row.map(|r| Generation {
            id: r.0,
            created_ms: r.1,
            events: r.2,
            views: r.3,
            pages: r.4,
            duration_ms: r.5,
        }))
    }

    /// Writes a complete generation in one transaction and keeps only the newest few.
    ///
    /// One row per page, its stats and candidates encoded by [`gen_doc`] (see migration 0004 for
    /// why not one row per candidate).
    pub async fn write_generation(&self, g: &NewGeneration) -> Result<i64, Error> {
        self.write_encoded_generation(&g.encode()?).await
    }

    /// [`Store::write_generation`] of a generation encoded beforehand.
    pub async fn write_encoded_generation(&self, g: &EncodedGeneration) -> Result<i64, Error> {
        Ok(self.write_generation_unless_same(g, false).await?.0)
    }

    /// Writes `g` unless its pages are those of the newest generation, and returns the id of the
    /// generation that holds them and whether it is new. An analyzer pass on an idle site selects
    /// the same sets as the last one: writing them again would cost a whole generation's write,
    /// and a reload by every server, every pass.
    pub async fn write_generation_if_changed(
        &self,
        g: &EncodedGeneration,
    ) -> Result<(i64, bool), Error> {
        self.write_generation_unless_same(g, true).await
    }

    async fn write_generation_unless_same(
        &self,
        g: &EncodedGeneration,
        skip_same: bool,
    ) -> Result<(i64, bool), Error> {
        let pages = &g.pages;
        if skip_same {
            // Read before the write transaction, not in it: on SQLite a transaction that reads
            // first and then writes fails at once (SQLITE_BUSY_SNAPSHOT) if the recorder commits
            // in between, where one that writes first waits its turn. Nothing else writes a
            // generation meanwhile: the caller holds the analyzer lock.
            let newest: Option<(i64, Option<String>)> = on_pool!(self, p => sqlx::query_as(
                "SELECT id, digest FROM generations ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(p)
            .await)?;
            if let Some((id, Some(d))) = newest
                && d == g.digest
            {
                return Ok((id, false));
            }
        }
        on_pool!(self, p => {
        let mut tx = p.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO generations (created_ms, events, views, pages, duration_ms, digest) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(g.created_ms)
        .bind(g.events)
        .bind(g.views)
        .bind(pages.len() as i64)
        .bind(g.duration_ms)
        .bind(&g.digest)
        .fetch_one(&mut *tx)
        .await?;
        for chunk in pages.chunks(INSERT_CHUNK) {
            let mut qb = QueryBuilder::new(
                "INSERT INTO generation_pages (generation, page, in_set, stats, candidates) ",
            );
            qb.push_values(chunk, |mut b, p| {
                b.push_bind(id)
                    .push_bind(&p.page)
                    .push_bind(p.in_set)
                    .push_bind(&p.stats)
                    .push_bind(&p.candidates);
            });
            qb.build().execute(&mut *tx).await?;
        }
        // Keep a few generations for inspection; older ones go (children first).
        for sql in [
            "DELETE FROM generation_pages WHERE generation <= $1 - 5",
            "DELETE FROM generations WHERE id <= $1 - 5",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        if self.is_postgres() {
            // Every server of the fleet LISTENs: the notice goes out when this commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(pg::GENERATION_CHANNEL)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((id, true))
        })
    }

    /// Candidate rows of a generation, optionally only those in a set and only for one page, in
    /// page, context and push order.
    pub async fn set_rows(
        &self,
        generation: i64,
        only_in_set: bool,
        page: Option<&str>,
    ) -> Result<Vec<SetRow>, Error> {
        let rows: Vec<(String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT page, candidates FROM generation_pages \
             WHERE generation = $1 AND ($2 = 0 OR in_set > 0) \
             AND (CAST($3 AS TEXT) IS NULL OR page = $3) \
             ORDER BY page",
        )
        .bind(generation)
        .bind(i64::from(only_in_set))
        .bind(page)
        .fetch_all(p)
        .await)?;
        let mut out = Vec::new();
        for (page, candidates) in rows {
            let mut rows = gen_doc::candidates(page, &candidates)?;
            if only_in_set {
                rows.retain(|r| r.in_set);
            }
            rows.sort_by(|a, b| {
                (a.context.as_str(), a.position).cmp(&(b.context.as_str(), b.position))
            });
            out.append(&mut rows);
        }
        Ok(out)
    }

    /// Views per page and context of a generation, optionally for one page, in page and context
    /// order.
    pub async fn page_stats(
        &self,
        generation: i64,
        page: Option<&str>,
    ) -> Result<Vec<PageStat>, Error> {
        let rows: Vec<(String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT page, stats FROM generation_pages \
             WHERE generation = $1 AND (CAST($2 AS TEXT) IS NULL OR page = $2) ORDER BY page",
        )
        .bind(generation)
        .bind(page)
        .fetch_all(p)
        .await)?;
        let mut out = Vec::new();
        for (page, stats) in rows {
            let mut stats = gen_doc::stats(page, &stats)?;
            stats.sort_by(|a, b| a.context.as_str().cmp(b.context.as_str()));
            out.append(&mut stats);
        }
        Ok(out)
    }

    pub async fn thresholds(&self) -> Result<Vec<ThresholdRow>, Error> {
        type Tuple = (
            String,
            Option<f64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Tuple> = on_pool!(self, p => sqlx::query_as(
            "SELECT page, probability, min_support, max_count, max_bytes, quiet_after \
             FROM thresholds \
             ORDER BY page",
        )
        .fetch_all(p)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|r| ThresholdRow {
                page: r.0,
                probability: r.1,
                min_support: r.2,
                max_count: r.3,
                max_bytes: r.4,
                quiet_after: r.5,
            })
            .collect())
    }

    /// The global quiet-client setting ([`crate::quiet`]); off when never set.
    pub async fn quiet_after(&self) -> Result<crate::quiet::QuietAfter, Error> {
        let v: Option<Option<i64>> = on_pool!(self, p => sqlx::query_scalar(
            "SELECT quiet_after FROM thresholds WHERE page = ''",
        )
        .fetch_optional(p)
        .await)?;
        match v.flatten() {
            None => Ok(crate::quiet::QuietAfter::OFF),
            Some(n) => crate::quiet::QuietAfter::new(n)
                .map_err(|e| Error::corrupt(format!("the stored quiet-client setting: {e}"))),
        }
    }

    /// Changes the settings `u` names, globally (`page` None) or for one page; the others stay.
    pub async fn set_threshold(&self, page: Option<&str>, u: ThresholdUpdate) -> Result<(), Error> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO thresholds \
               (page, probability, min_support, max_count, max_bytes, quiet_after) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (page) DO UPDATE SET \
               probability = COALESCE(excluded.probability, thresholds.probability), \
               min_support = COALESCE(excluded.min_support, thresholds.min_support), \
               max_count = COALESCE(excluded.max_count, thresholds.max_count), \
               max_bytes = COALESCE(excluded.max_bytes, thresholds.max_bytes), \
               quiet_after = COALESCE(excluded.quiet_after, thresholds.quiet_after)",
        )
        .bind(page.unwrap_or(""))
        .bind(u.probability.map(Probability::get))
        .bind(u.min_support.map(MinSupport::get))
        .bind(u.max_count.map(MaxCount::get))
        .bind(u.max_bytes.map(MaxBytes::get))
        .bind(u.quiet_after.map(|q| i64::from(q.get())))
        .execute(p)
        .await.map(|_| ()))?;
        Ok(())
    }

    /// Removes a page override (or the global setting, falling back to built-in defaults).
    pub async fn clear_threshold(&self, page: Option<&str>) -> Result<bool, Error> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM thresholds WHERE page = $1")
            .bind(page.unwrap_or(""))
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    pub async fn pins(&self) -> Result<Vec<PinRow>, Error> {
        let rows: Vec<(String, String, String)> = on_pool!(self, p =>
            sqlx::query_as("SELECT page, asset, action FROM pins ORDER BY page, asset")
                .fetch_all(p)
                .await)?;
        rows.into_iter()
            .map(|(page, asset, action)| {
                Ok(PinRow {
                    page,
                    asset,
                    action: PinAction::parse(&action)
                        .ok_or_else(|| Error::corrupt(format!("unknown pin action {action:?}")))?,
                })
            })
            .collect()
    }

    /// Whether `path` was ever recorded (as a request's path or a Referer's). Exact when false:
    /// no event names a path the dictionary lacks.
    pub async fn path_known(&self, path: &str) -> Result<bool, Error> {
        let found: Option<i64> = on_pool!(self, p =>
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM strings WHERE text = $1")
                .bind(path)
                .fetch_optional(p)
                .await)?;
        Ok(found.is_some())
    }

    /// Pins, bans or clears (`None`) an asset for a page. Returns false when there was nothing
    /// to clear.
    pub async fn set_pin(
        &self,
        page: &str,
        asset: &str,
        action: Option<PinAction>,
    ) -> Result<bool, Error> {
        let n = match action {
            Some(a) => on_pool!(self, p => sqlx::query(
                "INSERT INTO pins (page, asset, action) VALUES ($1, $2, $3) \
                 ON CONFLICT (page, asset) DO UPDATE SET action = excluded.action",
            )
            .bind(page)
            .bind(asset)
            .bind(a.as_str())
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?,
            None => {
                on_pool!(self, p => sqlx::query("DELETE FROM pins WHERE page = $1 AND asset = $2")
                .bind(page)
                .bind(asset)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?
            }
        };
        Ok(n > 0)
    }
}

/// A stored context name, back as a [`Context`].
fn context(name: String) -> Result<Context, Error> {
    Context::parse(&name).ok_or_else(|| Error::corrupt(format!("unknown context {name:?}")))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::event::{PushMark, Referer};
    use sqlx::Row;

    /// The SQLite pool of a store the test opened on a file.
    pub(crate) fn sqlite(s: &Store) -> &SqlitePool {
        match &s.pool {
            Pool::Sqlite(p) => p,
            Pool::Pg(_) => panic!("an SQLite store was expected"),
        }
    }

    pub(crate) fn ev(ts: i64, line: Option<i64>) -> Event {
        Event {
            ts_ms: ts,
            client: 1,
            conn_id: 0,
            stream_id: 0,
            method: "GET".into(),
            path: "/a".into(),
            status: 200,
            bytes: 1,
            content_type: None,
            referer: Referer::External,
            is_page: true,
            browser: true,
            cacheable: true,
            push: PushMark::Requested,
            holdout: false,
            over_cap: false,
            source: line.map(|_| 42),
            source_line: line,
        }
    }

    /// A generation of one page whose page-wide set is `/a.css` at probability `p`.
    fn one_page_generation(p: f64) -> NewGeneration {
        use crate::rows::{AsType, Reason};
        NewGeneration {
            created_ms: 1,
            pages: vec![PageStat {
                page: "/".into(),
                context: Context::PageWide,
                views: 10,
                weighted: 10.0,
                uses_own: true,
            }],
            assets: vec![SetRow {
                page: "/".into(),
                context: Context::PageWide,
                asset: "/a.css".into(),
                probability: p,
                support: 10,
                delay_ms: 5,
                bytes: 100,
                as_type: AsType::of("/a.css"),
                in_set: true,
                position: 0,
                reason: Reason::Ok,
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_generation_equal_to_the_newest_is_not_written_again_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("g.db")).await.unwrap();
        let g = one_page_generation(0.9).encode().unwrap();
        assert_eq!(s.write_generation_if_changed(&g).await.unwrap(), (1, true));
        // Other counters (events read, duration) do not make it different: only its pages do.
        let mut same = one_page_generation(0.9);
        same.events = 7;
        same.duration_ms = 3;
        let same = same.encode().unwrap();
        assert_eq!(
            s.write_generation_if_changed(&same).await.unwrap(),
            (1, false)
        );
        assert_eq!(s.latest_generation().await.unwrap(), Some(1));
        let other = one_page_generation(0.8).encode().unwrap();
        assert_eq!(
            s.write_generation_if_changed(&other).await.unwrap(),
            (2, true)
        );
        // The unconditional write (the demo's, the tests') always writes.
        assert_eq!(s.write_encoded_generation(&other).await.unwrap(), 3);
        s.close().await;
    }

    #[tokio::test]
    async fn a_salt_rotates_once_even_when_two_processes_try_and_is_stable_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = Store::open(&path).await.unwrap();
        let b = Store::open(&path).await.unwrap();
        let first = a.salt_state().await.unwrap();
        assert_eq!(
            b.salt_state().await.unwrap(),
            first,
            "one salt per database"
        );
        assert_eq!(a.salt().await.unwrap(), first.salt);
        let later = first.since_ms + 1_000;
        let rotated = a.rotate_salt(&first.salt, later).await.unwrap();
        assert_ne!(rotated.salt, first.salt);
        assert_eq!(rotated.since_ms, later);
        // The second process still holds the old salt: its rotation must not replace the new one.
        let again = b.rotate_salt(&first.salt, later + 5).await.unwrap();
        assert_eq!(again, rotated);
        assert!(
            !format!("{rotated:?}").contains("salt:"),
            "the salt is never printed"
        );
    }

    #[tokio::test]
    async fn imported_lines_are_inserted_once_and_retention_prunes_old_events() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).await.unwrap();
        let batch: Vec<Event> = (0..1200).map(|i| ev(i, Some(i))).collect();
        assert_eq!(s.insert_events(&batch).await.unwrap(), 1200);
        assert_eq!(s.insert_events(&batch).await.unwrap(), 0);
        // Live events have no source and are never deduplicated.
        assert_eq!(
            s.insert_events(&[ev(5000, None), ev(5000, None)])
                .await
                .unwrap(),
            2
        );
        assert_eq!(s.count_events().await.unwrap(), 1202);
        assert_eq!(s.prune_events_before(1000).await.unwrap(), 1000);
        assert_eq!(s.count_events().await.unwrap(), 202);
        let e = s.load_events(0).await.unwrap();
        assert!(e.iter().all(|e| e.ts_ms >= 1000 && e.referer_external));
    }

    #[tokio::test]
    async fn the_salt_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = Store::open(&path).await.unwrap().salt().await.unwrap();
        let b = Store::open(&path).await.unwrap().salt().await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    pub(crate) fn varied(i: i64) -> Event {
        Event {
            ts_ms: 1_000 + i,
            client: i % 3,
            conn_id: i / 4,
            stream_id: 2 * i + 1,
            method: if i % 5 == 0 { "HEAD" } else { "GET" }.into(),
            path: format!("/p/{}.css", i % 7).into(),
            status: 200 + (i % 2) as u16 * 104,
            bytes: i as u64 * 10,
            content_type: (i % 4 != 0).then(|| format!("text/t{}", i % 3).into()),
            referer: match i % 3 {
                0 => Referer::None,
                1 => Referer::External,
                _ => Referer::SameSite(format!("/page-{}.html", i % 2)),
            },
            is_page: i % 2 == 0,
            browser: i % 3 == 0,
            cacheable: i % 4 != 1,
            push: PushMark::from_i64(i % 5),
            holdout: i % 6 == 0,
            over_cap: i % 7 == 3,
            source: None,
            source_line: None,
        }
    }

    /// The `events` view, read back as events (what operators' own queries see), on either backend.
    pub(crate) async fn events_view(s: &Store) -> Vec<Event> {
        on_pool!(s, p => {
            let rows = sqlx::query(
                "SELECT ts_ms, client, conn_id, stream_id, method, path, status, bytes, \
                 content_type, referer, referer_external, is_page, browser, cacheable, push, \
                 holdout, source, source_line, over_cap FROM events ORDER BY id",
            )
            .fetch_all(p)
            .await
            .unwrap();
            rows.into_iter()
                .map(|r| Event {
                    ts_ms: r.get(0),
                    client: r.get(1),
                    conn_id: r.get(2),
                    stream_id: r.get(3),
                    method: r.get::<String, _>(4).into(),
                    path: r.get::<String, _>(5).into(),
                    status: r.get::<i64, _>(6) as u16,
                    bytes: r.get::<i64, _>(7) as u64,
                    content_type: r.get::<Option<String>, _>(8).map(Into::into),
                    referer: match (r.get::<Option<String>, _>(9), r.get::<i64, _>(10) != 0) {
                        (Some(p), _) => Referer::SameSite(p),
                        (None, true) => Referer::External,
                        (None, false) => Referer::None,
                    },
                    is_page: r.get::<i64, _>(11) != 0,
                    browser: r.get::<i64, _>(12) != 0,
                    cacheable: r.get::<i64, _>(13) != 0,
                    push: PushMark::from_i64(r.get(14)),
                    holdout: r.get::<i64, _>(15) != 0,
                    over_cap: r.get::<i64, _>(18) != 0,
                    source: r.get(16),
                    source_line: r.get(17),
                })
                .collect::<Vec<Event>>()
        })
    }

    /// 777 [`varied`] events with a few imported lines among the live ones, so batches mix chunks
    /// with and without the import columns.
    pub(crate) fn varied_with_imports() -> Vec<Event> {
        let mut events: Vec<Event> = (0..777).map(varied).collect();
        for (i, e) in events.iter_mut().enumerate().skip(500).step_by(37) {
            (e.source, e.source_line) = (Some(77), Some(i as i64));
        }
        events
    }

    #[tokio::test]
    async fn compact_rows_read_back_as_the_events_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).await.unwrap();
        let events = varied_with_imports();
        // Odd batch sizes exercise every chunk size; the second batch hits the warm cache.
        assert_eq!(s.insert_events(&events[..333]).await.unwrap(), 333);
        assert_eq!(s.insert_events(&events[333..]).await.unwrap(), 444);
        assert_eq!(events_view(&s).await, events);
        let rows = s.load_events(0).await.unwrap();
        assert_eq!(rows.len(), events.len());
        for (r, e) in rows.iter().zip(&events) {
            assert_eq!(r.path, e.path);
            assert_eq!(r.referer.as_deref(), e.referer.path());
            assert_eq!(r.referer_external, e.referer == Referer::External);
            assert_eq!((r.status, r.bytes as u64), (e.status, e.bytes));
            assert_eq!(
                (r.is_page, r.browser, r.cacheable, r.holdout),
                (e.is_page, e.browser, e.cacheable, e.holdout)
            );
            assert_eq!(r.push, e.push as i64);
        }
    }

    #[tokio::test]
    async fn two_writers_share_one_dictionary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let a = Store::open(&path).await.unwrap();
        let b = Store::open(&path).await.unwrap();
        let events: Vec<Event> = (0..200).map(varied).collect();
        // Each writer caches what it added; the other must find the same strings, not duplicates.
        // One on sqlx, one on the recorder's own connection: both go through the same table.
        a.insert_events(&events[..100]).await.unwrap();
        b.event_writer().insert(&events[..150]).unwrap();
        a.insert_events(&events[100..]).await.unwrap();
        let mut want = events[..100].to_vec();
        want.extend_from_slice(&events[..150]);
        want.extend_from_slice(&events[100..]);
        assert_eq!(events_view(&a).await, want);
        let distinct: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM strings")
            .fetch_one(sqlite(&a))
            .await
            .unwrap();
        let mut texts = std::collections::HashSet::new();
        for e in &events {
            texts.extend(compact_strings(e));
        }
        assert_eq!(distinct as usize, texts.len());
    }

    #[tokio::test]
    async fn the_event_writer_stores_what_insert_events_stores() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).await.unwrap();
        let events = varied_with_imports();
        let mut w = s.event_writer();
        assert_eq!(w.insert(&events[..333]).unwrap(), 333);
        assert_eq!(w.insert(&events[333..]).unwrap(), 444);
        assert_eq!(events_view(&s).await, events);
        // Imported lines already present are ignored, as on the sqlx path.
        let imported: Vec<Event> = events
            .iter()
            .filter(|e| e.source.is_some())
            .cloned()
            .collect();
        assert_eq!(w.insert(&imported).unwrap(), 0);
        assert_eq!(s.count_events().await.unwrap(), 777);
    }

    #[tokio::test]
    async fn a_batch_refused_while_the_database_is_locked_is_kept_whole_and_written_later() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).await.unwrap();
        let mut w = s.event_writer();
        w.insert(&[varied(0)]).unwrap();
        // Another writer holds the lock past the busy timeout: the batch (with strings the
        // dictionary has not seen) must fail as a whole, leaving no rows and no cached ids.
        let mut lock = sqlite(&s).acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *lock)
            .await
            .unwrap();
        let batch: Vec<Event> = (1..50).map(varied).collect();
        let blocked = std::thread::scope(|t| t.spawn(|| w.insert(&batch)).join().unwrap());
        assert!(blocked.unwrap_err().is_database());
        sqlx::query("ROLLBACK").execute(&mut *lock).await.unwrap();
        drop(lock);
        assert_eq!(s.count_events().await.unwrap(), 1);
        assert_eq!(w.insert(&batch).unwrap(), 49);
        let mut want = vec![varied(0)];
        want.extend(batch);
        assert_eq!(events_view(&s).await, want);
    }

    pub(crate) fn compact_strings(e: &Event) -> Vec<String> {
        [
            Some(e.method.to_string()),
            Some(e.path.to_string()),
            e.content_type.as_deref().map(String::from),
            e.referer.path().map(String::from),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    #[tokio::test]
    async fn a_database_from_before_the_compact_rows_keeps_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        MIGRATOR.run_to(1, &old).await.unwrap();
        let events: Vec<Event> = (0..50)
            .map(|i| Event {
                source: (i % 2 == 0).then_some(9),
                source_line: (i % 2 == 0).then_some(i),
                // The first schema had no such fact.
                over_cap: false,
                ..varied(i)
            })
            .collect();
        for e in &events {
            sqlx::query(
                "INSERT INTO events (ts_ms, client, conn_id, stream_id, method, path, status, bytes, \
                 content_type, referer, referer_external, is_page, browser, cacheable, push, holdout, \
                 source, source_line) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            )
            .bind(e.ts_ms).bind(e.client).bind(e.conn_id).bind(e.stream_id).bind(&e.method)
            .bind(&e.path).bind(i64::from(e.status)).bind(e.bytes as i64).bind(&e.content_type)
            .bind(e.referer.path()).bind(e.referer == Referer::External).bind(e.is_page)
            .bind(e.browser).bind(e.cacheable).bind(e.push as i64).bind(e.holdout)
            .bind(e.source).bind(e.source_line)
            .execute(&old)
            .await
            .unwrap();
        }
        old.close().await;
        let s = Store::open(&path).await.unwrap();
        assert_eq!(events_view(&s).await, events);
        // Imported lines stay deduplicated across the migration.
        let again: Vec<Event> = events
            .iter()
            .filter(|e| e.source.is_some())
            .cloned()
            .collect();
        assert_eq!(s.insert_events(&again).await.unwrap(), 0);
        assert_eq!(s.count_events().await.unwrap(), 50);
    }

    #[tokio::test]
    async fn pruning_unreferenced_strings_keeps_writers_with_warm_caches_correct() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = Store::open(&path).await.unwrap();
        let other = Store::open(&path).await.unwrap(); // another process's cache
        let at = |ts: i64, p: &str| Event {
            path: p.to_string().into(),
            ..ev(ts, None)
        };
        s.insert_events(&[at(10, "/old.css"), at(5_000, "/keep.css")])
            .await
            .unwrap();
        let mut w = s.event_writer();
        w.insert(&[at(20, "/old.css")]).unwrap();
        other.insert_events(&[at(30, "/old.css")]).await.unwrap();
        // Every writer has /old.css cached; retention removes its last events.
        assert_eq!(s.prune_events_before(1_000).await.unwrap(), 3);
        assert!(s.prune_strings().await.unwrap() >= 1);
        let texts: Vec<String> = sqlx::query_scalar("SELECT text FROM strings")
            .fetch_all(sqlite(&s))
            .await
            .unwrap();
        assert!(!texts.contains(&"/old.css".to_string()), "{texts:?}");
        assert!(texts.contains(&"/keep.css".to_string()), "{texts:?}");
        // Writing it again through each warm cache must not leave a dangling id.
        w.insert(&[at(6_000, "/old.css")]).unwrap();
        other.insert_events(&[at(7_000, "/old.css")]).await.unwrap();
        s.insert_events(&[at(8_000, "/old.css")]).await.unwrap();
        let paths: Vec<String> = s
            .load_events(0)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, ["/keep.css", "/old.css", "/old.css", "/old.css"]);
        assert_eq!(
            s.prune_strings().await.unwrap(),
            0,
            "nothing unused is left"
        );
    }

    #[tokio::test]
    async fn retention_finds_old_events_anywhere_in_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).await.unwrap();
        // Imported lines can be older than live events recorded before them: old and new rows
        // interleave by id, across many spans.
        let events: Vec<Event> = (0..1000)
            .map(|i| ev(if i % 3 == 0 { 10 } else { 5_000 }, None))
            .collect();
        s.insert_events(&events).await.unwrap();
        assert_eq!(s.prune_in_spans(1_000, 64).await.unwrap(), 334);
        assert_eq!(s.count_events().await.unwrap(), 666);
        assert!(
            s.load_events(i64::MIN)
                .await
                .unwrap()
                .iter()
                .all(|e| e.ts_ms == 5_000)
        );
        assert_eq!(s.prune_in_spans(1_000, 64).await.unwrap(), 0);
        let empty = Store::open(&dir.path().join("empty.db")).await.unwrap();
        assert_eq!(empty.prune_events_before(1_000).await.unwrap(), 0);
    }
}
