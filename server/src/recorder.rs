//! The recorder: request handlers hand events to a bounded channel without waiting; one writer task
//! drains it into SQLite in batches.
//!
//! Why this shape: the request path must never await SQLite. A full channel drops the event and
//! counts the drop; a failing database keeps the batch, retries with backoff and logs once per
//! interval, while the server keeps answering.

use std::sync::Arc;
use std::time::Duration;

use pushwise_analyzer::{Event, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Recorder tuning.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub queue: usize,
    pub batch: usize,
    pub interval: Duration,
    /// Events kept in memory while the database refuses writes, beyond which the oldest are lost.
    pub max_pending: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            queue: 65_536,
            batch: 2_000,
            interval: Duration::from_millis(200),
            max_pending: 200_000,
        }
    }
}

/// The handlers' side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
}

impl Recorder {
    /// Starts the writer task. Call [`RecorderTask::drain`] at shutdown to write what is queued.
    pub fn start(
        store: Store,
        cfg: RecorderConfig,
        metrics: Arc<Metrics>,
    ) -> (Recorder, RecorderTask) {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let stop = CancellationToken::new();
        let join = tokio::spawn(writer(store, rx, cfg, Arc::clone(&metrics), stop.clone()));
        (Recorder { tx, metrics }, RecorderTask { join, stop })
    }

    /// Queues an event; drops and counts it when the queue is full. Never waits.
    pub fn record(&self, e: Event) {
        // The queue-depth gauge is sampled by the writer: no shared counter on the request path.
        if self.tx.try_send(e).is_err() {
            self.metrics.recorder_dropped.inc();
        }
    }
}

/// The writer task's handle.
#[derive(Debug)]
pub struct RecorderTask {
    join: JoinHandle<()>,
    stop: CancellationToken,
}

impl RecorderTask {
    /// Stops accepting events, writes everything already queued, and waits for the writer.
    pub async fn drain(self) {
        self.stop.cancel();
        let _ = self.join.await;
    }
}

/// Moves queued events into `pending` without waiting, up to `batch`. `Err` once the channel is
/// closed and empty.
fn take_queued(
    rx: &mut mpsc::Receiver<Event>,
    pending: &mut Vec<Event>,
    batch: usize,
) -> Result<(), ()> {
    while pending.len() < batch {
        match rx.try_recv() {
            Ok(e) => pending.push(e),
            Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
            Err(mpsc::error::TryRecvError::Disconnected) => return Err(()),
        }
    }
    Ok(())
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Event>,
    cfg: RecorderConfig,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut pending: Vec<Event> = Vec::with_capacity(cfg.batch);
    let mut backoff = cfg.interval;
    let mut last_error_log: Option<tokio::time::Instant> = None;
    let mut failures_since_log = 0u64;
    let mut closed = false;
    let mut shutdown_failures = 0u32;
    loop {
        if !closed && pending.is_empty() {
            // Wait for the first event of a batch (one wake-up per batch, not one per event)...
            tokio::select! {
                biased;
                got = rx.recv_many(&mut pending, cfg.batch) => closed = got == 0,
                _ = stop.cancelled(), if !rx.is_closed() => rx.close(),
            }
            // ...then let the batch fill for one interval, unless it is full already. While the
            // writer sleeps no waker is registered, so handlers' sends stay cheap.
            if !closed
                && pending.len() < cfg.batch
                && take_queued(&mut rx, &mut pending, cfg.batch).is_ok()
                && pending.len() < cfg.batch
            {
                tokio::select! {
                    _ = tokio::time::sleep(cfg.interval) => {}
                    _ = stop.cancelled(), if !rx.is_closed() => rx.close(),
                }
            }
        }
        if !closed {
            closed = take_queued(&mut rx, &mut pending, cfg.batch).is_err();
        }
        metrics.recorder_queue_depth.set(rx.len() as i64);
        if pending.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        let n = pending.len();
        match store.insert_events(&pending[..n]).await {
            Ok(_) => {
                metrics.recorder_written.inc_by(n as u64);
                pending.drain(..n);
                backoff = cfg.interval;
                if failures_since_log > 0 {
                    tracing::info!(
                        failed_batches = failures_since_log,
                        "recorder: database writable again"
                    );
                    failures_since_log = 0;
                    last_error_log = None;
                }
            }
            Err(e) => {
                metrics.recorder_failed_batches.inc();
                failures_since_log += 1;
                let now = tokio::time::Instant::now();
                if last_error_log.is_none_or(|t| now - t >= Duration::from_secs(10)) {
                    tracing::error!(error = %e, pending = pending.len(), failed_batches = failures_since_log,
                        "recorder: cannot write to the database; keeping events and retrying");
                    last_error_log = Some(now);
                }
                if pending.len() > cfg.max_pending {
                    let lose = pending.len() - cfg.max_pending;
                    pending.drain(..lose);
                    metrics.recorder_dropped.inc_by(lose as u64);
                }
                // Keep draining the channel while we wait, so handlers see room as long as memory allows.
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        got = rx.recv(), if !closed => match got {
                            Some(e) => pending.push(e),
                            None => closed = true,
                        },
                        _ = &mut sleep => break,
                        _ = stop.cancelled(), if !rx.is_closed() => rx.close(),
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if closed {
                    // Shutting down: a few quick retries (a lock may clear), then give up loudly
                    // rather than hold the process hostage to a database that refuses writes.
                    backoff = backoff.min(Duration::from_millis(500));
                    shutdown_failures += 1;
                }
                if shutdown_failures > 3 {
                    tracing::error!(
                        lost = pending.len(),
                        "recorder: giving up on the database at shutdown"
                    );
                    metrics.recorder_dropped.inc_by(pending.len() as u64);
                    return;
                }
            }
        }
    }
}
