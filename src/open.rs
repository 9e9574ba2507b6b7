//! Opening the store for a command, with errors that say which database and what to do.

use std::path::Path;

use anyhow::Context as _;
use pushwise_store::{Location, Store};

/// Every store a command opened, closed (and its WAL checkpointed) by [`close_all`] when the
/// command ends, whichever way it ends.
static OPENED: std::sync::Mutex<Vec<Store>> = std::sync::Mutex::new(Vec::new());

/// Notes `store` for [`close_all`] and hands it back.
fn tracked(store: Store) -> Store {
    OPENED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(store.clone());
    store
}

/// Where `--db` points: an SQLite file or a PostgreSQL URL.
pub fn location(db: &Path) -> anyhow::Result<Location> {
    Ok(Location::from_path(db)?)
}

/// Opens (creating if missing) the store for a command that writes it.
pub async fn open_store(db: &Path) -> anyhow::Result<Store> {
    let loc = location(db)?;
    let store = match Store::open_at(&loc).await {
        Ok(s) => s,
        Err(e) if e.is_unwritable() => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot open the database {loc} for writing: it, or its directory (where SQLite \
                 keeps the -wal file), is read-only; inspecting commands (sets list, plan, ...) \
                 still work"
            )));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot open the database {loc}")));
        }
    };
    Ok(tracked(store))
}

/// Checkpoints and closes every store the command opened: afterwards the main database file alone
/// holds every change (`cp pushwise.db backup.db` is a complete copy) and no `-wal` is left.
pub async fn close_all() {
    let stores: Vec<Store> = std::mem::take(
        &mut *OPENED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for s in stores {
        s.close().await;
    }
}

/// Opens a store that must already exist, for a command that changes it (a setting in a database
/// nothing records into would be lost: such commands never create one).
pub async fn open_existing(db: &Path) -> anyhow::Result<Store> {
    ensure_exists(db)?;
    open_store(db).await
}

/// Opens an existing store for a command that only reads it: read-only, never migrated, nothing
/// written to the file or beside it (so it works on a database the user may only read).
pub async fn open_inspect(db: &Path) -> anyhow::Result<Store> {
    ensure_exists(db)?;
    let loc = location(db)?;
    let store = Store::open_read_only(db)
        .await
        .with_context(|| format!("cannot read the database {loc}"))?;
    Ok(tracked(store))
}

/// An SQLite file must exist for commands that never create one; a PostgreSQL database is
/// checked by connecting to it.
fn ensure_exists(db: &Path) -> anyhow::Result<()> {
    if location(db)?.is_postgres() {
        return Ok(());
    }
    anyhow::ensure!(
        db.exists(),
        "no database at {} (create it with `{} serve` or `{} import`, or pass --db / PUSHWISE_DB)",
        db.display(),
        crate::output::pushwise_db(db),
        crate::output::pushwise_db(db)
    );
    Ok(())
}

/// The newest generation of push sets, or an error saying how to make one.
pub async fn latest(store: &Store) -> anyhow::Result<i64> {
    store
        .latest_generation()
        .await?
        .context("no push sets yet: run `pushwise analyze --once` (or let `pushwise serve` run its analyzer)")
}
