//! Opening the store for a command, with errors that say which database and what to do.

use std::path::Path;

use anyhow::Context as _;
use pushwise_store::Store;

/// Opens (creating if missing) the store for a command that writes it.
pub async fn open_store(db: &Path) -> anyhow::Result<Store> {
    Store::open(db)
        .await
        .with_context(|| format!("cannot open the database {}", db.display()))
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
