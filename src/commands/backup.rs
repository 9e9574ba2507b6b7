//! `pushwise backup DEST`: a consistent copy of the database, taken online (SQLite `VACUUM INTO`).

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, ensure};

use crate::cli::BackupArgs;
use crate::open::open_inspect;
use crate::output::out;

pub async fn run(db: &Path, a: BackupArgs) -> anyhow::Result<()> {
    ensure!(
        !a.dest.exists(),
        "{} exists: a backup never overwrites a file (remove it or choose another name)",
        a.dest.display()
    );
    let store = open_inspect(db).await?;
    let loc = crate::open::location(db)?;
    store
        .backup(&a.dest)
        .await
        .with_context(|| format!("backing up {loc} to {}", a.dest.display()))?;
    let bytes = std::fs::metadata(&a.dest).map_or(0, |m| m.len());
    writeln!(
        out(),
        "backed up {} to {} ({bytes} bytes, a complete database: no -wal file needed)",
        db.display(),
        a.dest.display()
    )?;
    Ok(())
}
