//! Recognising pushwise's own database before anything is written to it.
//!
//! Why before: opening a file read-write switches it to WAL and migrating adds tables, so a
//! mistyped `--db` pointing at another application's SQLite file would be changed by the very
//! command that then complains. The check reads the 100-byte SQLite header directly (a file that
//! is not SQLite at all is "not a database", never "not writable") and, for a file with no
//! application id, looks at its tables through a read-only connection.
//!
//! What counts as pushwise's: the application id [`APPLICATION_ID`] in the header (stamped by
//! every read-write open), or, for a file written before the id was stamped, a `_sqlx_migrations`
//! table whose first migration has exactly pushwise's first migration's checksum. An SQLite file
//! with no tables at all is a blank database and may become one.

use std::io::Read;
use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

use crate::error::Error;

/// The SQLite application id of a pushwise database: "PUSH" in ASCII (`PRAGMA application_id`).
pub const APPLICATION_ID: i32 = 0x5055_5348;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What a database path holds, as far as pushwise is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// No file, or an empty one: SQLite creates a database there.
    Missing,
    /// An SQLite database with no tables: it may become pushwise's.
    Blank,
    /// pushwise's own database.
    Pushwise,
}

/// Identifies the file at `path`, or says why pushwise must not touch it.
pub(crate) async fn identify(path: &Path) -> Result<Found, Error> {
    let Some(header) = read_header(path)? else {
        return Ok(Found::Missing);
    };
    if header.len() < 100 || &header[..16] != SQLITE_MAGIC {
        let start: String = header
            .iter()
            .take(16)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        return Err(Error::foreign(format!(
            "{} is not a database: it is not an SQLite file at all (it starts with {start:?}); \
             point --db at a pushwise database or at a path where one should be created",
            path.display()
        )));
    }
    let id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if id == APPLICATION_ID {
        return Ok(Found::Pushwise);
    }
    if id != 0 {
        return Err(Error::foreign(format!(
            "{} is the SQLite database of another application (application id {id:#010x}), not \
             pushwise's: pushwise never reads or writes it; pass another --db",
            path.display()
        )));
    }
    // No id in the main file: a blank file, one written before the id was stamped, or one whose
    // id is so far only in the write-ahead log. Its tables tell, read without writing anything.
    let mut conn = SqliteConnection::connect_with(&read_only_options(path)).await?;
    let result = identify_by_tables(&mut conn, path).await;
    let _ = conn.close().await;
    result
}

/// Options for reading `path` without writing anything to it or beside it: `mode=ro` while a
/// write-ahead log exists (another process may be writing: share its log), else `immutable`, so
/// a read needs no `-shm` file (none is left behind, and a database in a directory the user
/// cannot write is still readable).
pub(crate) fn read_only_options(path: &Path) -> SqliteConnectOptions {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let live = Path::new(&wal).exists();
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(!live)
        .busy_timeout(std::time::Duration::from_secs(2))
}

async fn identify_by_tables(conn: &mut SqliteConnection, path: &Path) -> Result<Found, Error> {
    let id: i32 = sqlx::query("PRAGMA application_id")
        .fetch_one(&mut *conn)
        .await?
        .get(0);
    if id == APPLICATION_ID {
        return Ok(Found::Pushwise);
    }
    let tables: Vec<String> =
        sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
    if tables.is_empty() {
        return Ok(Found::Blank);
    }
    if tables.iter().any(|t| t == "_sqlx_migrations") {
        let first: Option<Vec<u8>> =
            sqlx::query("SELECT checksum FROM _sqlx_migrations WHERE version = 1")
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| r.get(0));
        let ours = super::MIGRATOR.iter().next().map(|m| m.checksum.as_ref());
        if first.is_some() && first.as_deref() == ours {
            return Ok(Found::Pushwise);
        }
    }
    let mut shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    if tables.len() > shown.len() {
        shown.push("...");
    }
    Err(Error::foreign(format!(
        "{} is an SQLite database, but not pushwise's (its tables: {}): pushwise never writes \
         to another application's database; pass another --db",
        path.display(),
        shown.join(", ")
    )))
}

/// The first 100 bytes of the file, or `None` when there is no file or it is empty.
fn read_header(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::system(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let meta = f
        .metadata()
        .map_err(|e| Error::system(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(Error::invalid(format!(
            "{} is a directory: --db names the database file",
            path.display()
        )));
    }
    let mut header = Vec::with_capacity(100);
    (&mut f)
        .take(100)
        .read_to_end(&mut header)
        .map_err(|e| Error::system(format!("cannot read {}: {e}", path.display())))?;
    Ok((!header.is_empty()).then_some(header))
}

/// Whether the database's schema is the one this build's migrations make: `Ok(())`, or an error
/// saying whether it is older (a changing command upgrades it) or newer (another pushwise wrote it).
pub(crate) async fn check_schema(conn: &mut SqliteConnection, path: &Path) -> Result<(), Error> {
    let applied: Vec<i64> = match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(_) => Vec::new(),
    };
    let ours: Vec<i64> = super::MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(newer) = applied.iter().find(|v| !ours.contains(v)) {
        return Err(Error::invalid(format!(
            "{} was written by a newer pushwise (schema version {newer}; this one knows up to {}): \
             use that pushwise with it",
            path.display(),
            ours.last().copied().unwrap_or(0)
        )));
    }
    if let Some(missing) = ours.iter().find(|v| !applied.contains(v)) {
        return Err(Error::invalid(format!(
            "{} has an older schema (it lacks version {missing}): a command that changes the \
             database upgrades it (`pushwise --db {} analyze --once`, or `pushwise serve`); \
             inspecting commands never write",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}
