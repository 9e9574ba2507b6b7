//! Recorder write throughput into a store: `N` recorder-shaped events written in batches through
//! `Store::event_writer` (the recorder's own path) from a plain thread, into an SQLite file or a
//! PostgreSQL database. Prints one JSON line: events, batches, seconds, events per second.
//!
//! `storewrite --db /tmp/x.db --events 1000000 --batch 2000`
//! `storewrite --db postgres://postgres@127.0.0.1:5432/bench --events 1000000`

use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use pushwise_bench::recorder_load::event;
use pushwise_store::{Event, Location, Store};

#[derive(Parser)]
struct Args {
    /// An SQLite path or a postgres:// URL (a fresh, empty database).
    #[arg(long)]
    db: String,
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per batch (the recorder's default --batch-size is 2000).
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Write import-shaped events (a source file and line each), which PostgreSQL takes through
    /// the deduplicating INSERT instead of COPY.
    #[arg(long)]
    import: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let loc = Location::parse(&a.db)?;
    let store = Store::open_at(&loc).await.context("opening the store")?;
    let events: Vec<Event> = (0..a.events)
        .map(|i| Event {
            source: a.import.then_some(77),
            source_line: a.import.then_some(i as i64 + 1),
            ..event(i)
        })
        .collect();
    let writer_store = store.clone();
    let batch = a.batch.max(1);
    // The recorder's writer runs on a thread of its own: so does this one.
    let (secs, batches) = tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, u64)> {
        let mut w = writer_store.event_writer();
        let started = Instant::now();
        let mut batches = 0;
        for chunk in events.chunks(batch) {
            let n = w.insert(chunk)?;
            anyhow::ensure!(n == chunk.len() as u64, "wrote {n} of {}", chunk.len());
            batches += 1;
        }
        Ok((started.elapsed().as_secs_f64(), batches))
    })
    .await??;
    // At least these: another writer may share the database (a fleet measurement).
    anyhow::ensure!(
        store.count_events().await? >= a.events as i64,
        "events missing"
    );
    store.close().await;
    println!(
        "{}",
        serde_json::json!({
            "backend": if loc.is_postgres() { "postgres" } else { "sqlite" },
            "import": a.import,
            "events": a.events,
            "batch": batch,
            "batches": batches,
            "seconds": secs,
            "events_per_sec": (a.events as f64 / secs).round(),
        })
    );
    Ok(())
}
