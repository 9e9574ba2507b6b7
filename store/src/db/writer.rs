//! The recorder's write path into SQLite: one dedicated blocking connection that binds each
//! batch's integers straight into the prepared multi-row INSERTs of [`compact`](super::compact).
//!
//! Why a second way in beside sqlx: the recorder writes one row per request on a machine that is
//! also serving, and under h2load sqlx's per-value machinery (an argument enum encoded per value,
//! then a channel hop to its worker thread) cost the server about twice what SQLite's own insert
//! did. This writer does the same SQL on the same
//! file with the same string dictionary, binding values in place. Everything else (reads,
//! imports, push sets, migrations) stays on sqlx, but for the analyzer's read of its counts (see
//! `Store::learn_counts`); the schema still comes only from `migrations/`,
//! applied by [`Store::open`](super::Store::open) before any writer exists. The sqlx path,
//! [`Store::insert_events`](super::Store::insert_events), writes the same rows for imports and is
//! the one a PostgreSQL store would use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::compact::{EPOCH_KEY, StringIds, columns, insert_chunks};
use super::pg::PgStore;
use crate::error::Error;
use crate::event::Event;

/// Writes batches of events. Blocking: run it on a thread that may block (the server runs it on
/// the recorder's own thread).
///
/// The connection is opened on first use and dropped after any failed batch, so a database that
/// was read-only, locked or missing is retried from scratch and picked up once it is writable.
///
/// Before each batch the file at `path` must still be the one first opened (same device and
/// inode). A database deleted while serving would otherwise take every later batch into the
/// unlinked file, lost at exit with nothing counted; a file put in its place must not be written
/// either, because this process's other connections still hold the old database's `-wal` and
/// `-shm`, which SQLite would then apply to the new file (SQLite's "how to corrupt" list). So from
/// then on every batch fails: the recorder keeps events up to its limits, then drops and counts
/// them, and says to restart.
#[derive(Debug)]
pub struct EventWriter {
    target: Target,
    strings: StringIds,
}

/// Where an [`EventWriter`] writes.
#[derive(Debug)]
enum Target {
    /// The SQLite file, on a rusqlite connection of its own.
    File(FileWriter),
    /// A PostgreSQL store: batches go through its pool, driven from this (blocking) thread on the
    /// runtime the pool belongs to.
    Postgres(std::sync::Arc<PgStore>),
}

/// The SQLite file's writer state.
#[derive(Debug)]
struct FileWriter {
    path: PathBuf,
    conn: Option<Connection>,
    /// The file the first connection opened.
    opened: Option<FileId>,
}

/// A file's identity: device and inode.
type FileId = (u64, u64);

fn file_id(path: &std::path::Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

impl EventWriter {
    pub(super) fn new(path: PathBuf, strings: StringIds) -> EventWriter {
        EventWriter {
            target: Target::File(FileWriter {
                path,
                conn: None,
                opened: None,
            }),
            strings,
        }
    }

    pub(super) fn postgres(pg: std::sync::Arc<PgStore>, strings: StringIds) -> EventWriter {
        EventWriter {
            target: Target::Postgres(pg),
            strings,
        }
    }

    /// Inserts a batch in one transaction, as [`Store::insert_events`](super::Store::insert_events)
    /// does: strings through the dictionary (cached only once committed), imported lines already
    /// present ignored. Returns the number of rows inserted; on error nothing of the batch is kept.
    pub fn insert(&mut self, events: &[Event]) -> Result<u64, Error> {
        if events.is_empty() {
            return Ok(0);
        }
        match &mut self.target {
            // Blocking, like the SQLite path: from the recorder's own thread (or spawn_blocking),
            // never from an async task.
            Target::Postgres(pg) => pg.rt.block_on(pg.insert_events(&self.strings, events)),
            Target::File(file) => {
                let result = file.try_insert(&self.strings, events);
                if result.is_err() {
                    file.conn = None;
                }
                result
            }
        }
    }
}

impl FileWriter {
    fn connection(&mut self) -> Result<&mut Connection, Error> {
        let now = file_id(&self.path).ok();
        if let Some(opened) = self.opened
            && now != Some(opened)
        {
            self.conn = None;
            return Err(Error::system(format!(
                "the database {} was deleted or replaced while in use; nothing more is recorded \
                 (events are kept, then dropped and counted): restart pushwise",
                self.path.display()
            )));
        }
        if self.conn.is_none() {
            // No CREATE: the store created the file and applied the migrations; a file that has
            // gone missing since is an error to report, not an empty database to fill.
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(2))?;
            // Per connection, like the pool's: WAL (set once in the file) with NORMAL sync.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Ten live and ten import INSERT sizes plus the dictionary's two statements.
            conn.set_prepared_statement_cache_capacity(32);
            self.opened = self.opened.or(now);
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connection opened above"))
    }

    fn try_insert(&mut self, strings: &StringIds, events: &[Event]) -> Result<u64, Error> {
        let conn = self.connection()?;
        // IMMEDIATE: take the write lock up front, so a concurrent writer makes this wait in the
        // busy handler instead of failing a read-to-write upgrade.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let epoch: Option<String> = tx
            .prepare_cached("SELECT value FROM settings WHERE key = ?")?
            .query_row([EPOCH_KEY], |r| r.get(0))
            .optional()?;
        strings.sync_epoch(epoch.as_deref());
        let mut ids = strings.lookup(events);
        let fresh = if ids.missing.is_empty() {
            HashMap::new()
        } else {
            let fresh = add_strings(&tx, &ids.missing)?;
            ids.resolve(events, &fresh)?;
            fresh
        };
        let mut inserted = 0u64;
        for chunk in insert_chunks(events) {
            let width = columns(chunk.with_source);
            let mut stmt = tx.prepare_cached(&chunk.sql)?;
            for (i, e) in chunk.events.iter().enumerate() {
                let row = ids.row(e, chunk.start + i);
                for (c, v) in row[..width].iter().enumerate() {
                    stmt.raw_bind_parameter(i * width + c + 1, v)?;
                }
            }
            inserted += stmt.raw_execute()? as u64;
        }
        tx.commit()?;
        strings.remember(fresh);
        Ok(inserted)
    }
}

/// Adds `texts` to the dictionary (those another writer has not added already) and returns the
/// id of each.
fn add_strings(conn: &Connection, texts: &[&str]) -> Result<HashMap<String, i64>, Error> {
    let mut insert =
        conn.prepare_cached("INSERT INTO strings (text) VALUES (?) ON CONFLICT (text) DO NOTHING")?;
    let mut select = conn.prepare_cached("SELECT id FROM strings WHERE text = ?")?;
    let mut ids = HashMap::with_capacity(texts.len());
    for t in texts {
        insert.execute([t])?;
        let id: i64 = select.query_row([t], |r| r.get(0))?;
        ids.insert((*t).to_string(), id);
    }
    Ok(ids)
}
