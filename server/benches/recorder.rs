//! The recorder alone: events per second from `Recorder::record` through the bounded channel and
//! the batched writer into a real SQLite file (WAL, synchronous=NORMAL). Run: `cargo bench -p pushwise-server`.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pushwise_bench::recorder_load::event;
use pushwise_server::metrics::Metrics;
use pushwise_server::recorder::{Recorder, RecorderConfig};
use pushwise_store::{Event, Store};

const N: u64 = 100_000;

fn recorder(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = c.benchmark_group("recorder");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("100k_events_into_sqlite", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let store = Store::open(&dir.path().join("bench.db")).await.unwrap();
                    let metrics = Arc::new(Metrics::new());
                    let cfg = RecorderConfig {
                        queue: NonZeroUsize::new(200_000).unwrap(),
                        ..Default::default()
                    };
                    let events: Vec<Event> = (0..N).map(event).collect();
                    let started = Instant::now();
                    let (rec, task) =
                        Recorder::start(store.clone(), cfg, Arc::clone(&metrics)).unwrap();
                    for e in events {
                        rec.record(e);
                    }
                    drop(rec);
                    task.drain().await;
                    total += started.elapsed();
                    assert_eq!(metrics.recorder_written.get(), N, "events were dropped");
                    store.close().await;
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, recorder);
criterion_main!(benches);
