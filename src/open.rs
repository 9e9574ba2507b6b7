//! Opening the store for a command, with errors that say which database and what to do.

use std::path::Path;

use anyhow::Context as _;
use pushwise_store::Store;

/// Every store a command opened, closed (and its WAL checkpointed) by [`close_all`] when the
/// command ends, whichever way it ends.
static OPENED: std::sync::Mutex<Vec<Store>> = std::sync::Mutex::new(Vec::new());

/// Opens (creating if missing) the store for a command that writes it.
pub async fn open_store(db: &Path) -> anyhow::Result<Store> {
    let store = Store::open(db)
        .await
        .with_context(|| format!("cannot open the database {}", db.display()))?;
    OPENED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(store.clone());
    Ok(store)
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

/// Opens a store that must already exist (inspecting commands should not create empty ones).
pub async fn open_existing(db: &Path) -> anyhow::Result<Store> {
    anyhow::ensure!(
        db.exists(),
        "no database at {} (create it with `{} serve` or `{} import`, or pass --db / PUSHWISE_DB)",
        db.display(),
        crate::output::pushwise_db(db),
        crate::output::pushwise_db(db)
    );
    open_store(db).await
}

/// The newest generation of push sets, or an error saying how to make one.
pub async fn latest(store: &Store) -> anyhow::Result<i64> {
    store
        .latest_generation()
        .await?
        .context("no push sets yet: run `pushwise analyze --once` (or let `pushwise serve` run its analyzer)")
}
