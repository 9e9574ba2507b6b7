//! `pushwise analyze`: one analyzer pass (`--once`) or one every `--every` seconds until SIGTERM.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use pushwise_analyzer::{PassReport, rebuild, run_pass};
use pushwise_store::time::now_ms;

use crate::cli::AnalyzeArgs;
use crate::open::open_existing;
use crate::output::{bar, out, print_json};
use crate::signal::shutdown_signal;

pub async fn run(db: &Path, a: AnalyzeArgs) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let lp = a.learn.params();
    if a.rebuild {
        let pb = bar(0, "counting every event", a.json);
        let mut progress = |at: i64, last: i64| {
            pb.set_length(last.max(0) as u64);
            pb.set_position(at.max(0) as u64);
        };
        let r = rebuild(&store, &lp, now_ms(), &mut progress)
            .await
            .context("rebuild failed")?;
        pb.finish_and_clear();
        return report(&r, a.json);
    }
    loop {
        match run_pass(&store, &lp, now_ms()).await {
            Ok(r) => report(&r, a.json)?,
            // Another server of the fleet runs passes: nothing wrong, nothing to do this time.
            Err(e) if e.is_busy() => skipped(&e, a.json)?,
            Err(e) => return Err(anyhow::Error::new(e).context("analyzer pass failed")),
        }
        if a.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(a.every) => {}
            _ = shutdown_signal() => return Ok(()),
        }
    }
}

fn skipped(busy: &pushwise_analyzer::Error, json: bool) -> anyhow::Result<()> {
    let reason = busy.to_string();
    if json {
        return print_json(&serde_json::json!({ "skipped": true, "reason": reason }));
    }
    writeln!(
        out(),
        "skipped: {reason}; its generation is the one servers load"
    )?;
    Ok(())
}

fn report(r: &PassReport, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    writeln!(
        out(),
        "generation {}: {} new events (and {} of open sessions again), {} page views counted \
         (+{} in open sessions, {} requests unattributed), {} pages, {} with a push set ({} assets), \
         read up to event {} in {} ms",
        r.generation,
        r.events,
        r.events_again,
        r.views,
        r.views_open,
        r.unattributed,
        r.pages,
        r.pages_with_sets,
        r.assets_in_sets,
        r.watermark,
        r.duration_ms
    )?;
    Ok(())
}
