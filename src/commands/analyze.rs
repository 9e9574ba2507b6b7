//! `pushwise analyze`: one analyzer pass (`--once`) or one every `--every` seconds until SIGTERM.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use pushwise_analyzer::run_pass;
use pushwise_store::time::now_ms;

use crate::cli::AnalyzeArgs;
use crate::open::open_existing;
use crate::output::{out, print_json};
use crate::signal::shutdown_signal;

pub async fn run(db: &Path, a: AnalyzeArgs) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let lp = a.learn.params();
    loop {
        let r = run_pass(&store, &lp, now_ms())
            .await
            .context("analyzer pass failed")?;
        if a.json {
            print_json(&r)?;
        } else {
            writeln!(
                out(),
                "generation {}: {} events, {} page views ({} requests unattributed), {} pages, {} with a push set ({} assets) in {} ms",
                r.generation,
                r.events,
                r.views,
                r.unattributed,
                r.pages,
                r.pages_with_sets,
                r.assets_in_sets,
                r.duration_ms
            )?;
        }
        if a.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(a.every.max(1))) => {}
            _ = shutdown_signal() => return Ok(()),
        }
    }
}
