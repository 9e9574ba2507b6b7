//! The recorder: request handlers hand events to a bounded channel without waiting; one writer task
//! drains it into SQLite in batches, each written on the recorder's own low-priority thread.
//!
//! Why this shape: the request path must never await SQLite. A full channel drops the event and
//! counts the drop; a failing database keeps the batch, retries with backoff and logs once per
//! interval, while the server keeps answering.

use std::sync::Arc;
use std::time::Duration;

use pushwise_analyzer::{Event, Store};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::batch_thread::{BatchThread, Written};
use crate::metrics::Metrics;

/// Recorder tuning.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub queue: usize,
    pub batch: usize,
    pub interval: Duration,
    /// Events kept in memory while the database refuses writes, beyond which the oldest are lost.
    pub max_pending: usize,
    /// How many nice steps below the serving threads the SQLite writes run (0 = same priority).
    pub nice: u8,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            queue: 65_536,
            batch: 2_000,
            interval: Duration::from_millis(200),
            max_pending: 200_000,
            nice: 10,
        }
    }
}

/// The handlers' side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    /// Wakes a writer that is letting a batch fill once the queue is half full, so a burst faster
    /// than `queue / interval` events per second is written early instead of dropped.
    half_full: Arc<Notify>,
    wake_below: usize,
}

impl Recorder {
    /// Starts the writer task and its thread. Call [`RecorderTask::drain`] at shutdown to write
    /// what is queued. Fails only when the OS refuses a new thread.
    pub fn start(
        store: Store,
        cfg: RecorderConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(Recorder, RecorderTask), crate::Error> {
        let thread = BatchThread::start(store, cfg.nice)?;
        let queue = cfg.queue.max(1);
        let (tx, rx) = mpsc::channel(queue);
        let stop = CancellationToken::new();
        let half_full = Arc::new(Notify::new());
        let join = tokio::spawn(writer(
            thread,
            rx,
            cfg,
            Arc::clone(&metrics),
            Arc::clone(&half_full),
            stop.clone(),
        ));
        let rec = Recorder {
            tx,
            metrics,
            half_full,
            wake_below: queue / 2,
        };
        Ok((rec, RecorderTask { join, stop }))
    }

    /// Queues an event; drops and counts it when the queue is full. Never waits.
    pub fn record(&self, e: Event) {
        // The queue-depth gauge is sampled by the writer: no shared counter on the request path.
        if self.tx.try_send(e).is_err() {
            self.metrics.recorder_dropped.inc();
        } else if self.tx.capacity() <= self.wake_below {
            self.half_full.notify_one();
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
    thread: BatchThread,
    rx: mpsc::Receiver<Event>,
    cfg: RecorderConfig,
    metrics: Arc<Metrics>,
    half_full: Arc<Notify>,
    stop: CancellationToken,
) {
    write_batches(&thread, rx, cfg, metrics, half_full, stop).await;
    thread.close().await;
}

async fn write_batches(
    thread: &BatchThread,
    mut rx: mpsc::Receiver<Event>,
    cfg: RecorderConfig,
    metrics: Arc<Metrics>,
    half_full: Arc<Notify>,
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
            // ...then let the batch fill for one interval, unless it is full already (`recv_many`
            // took all that was queued) or we are stopping. While the writer sleeps no waker is
            // registered, so handlers' sends stay cheap.
            if !closed && !rx.is_closed() && pending.len() < cfg.batch {
                tokio::select! {
                    _ = tokio::time::sleep(cfg.interval) => {}
                    _ = half_full.notified() => {}
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
        // The insert blocks (SQLite): it runs on the recorder's own thread, never on a thread
        // that serves requests, and the batch's strings are freed there too.
        let result = match thread.write(std::mem::take(&mut pending)).await {
            Written::Done(batch, result) => {
                pending = batch;
                result
            }
            Written::Panicked(mut batch, panic) => {
                // A bug in binding the batch: retrying it would panic again.
                tracing::error!(panic, lost = n, "recorder: the batch writer panicked");
                metrics.recorder_dropped.inc_by(n as u64);
                batch.clear();
                pending = batch;
                continue;
            }
            Written::Gone => {
                tracing::error!(
                    lost = n,
                    "recorder: the writer thread is gone; recording stops"
                );
                metrics.recorder_dropped.inc_by(n as u64);
                // Count what is queued and what arrives until shutdown as dropped too.
                loop {
                    tokio::select! {
                        got = rx.recv() => match got {
                            Some(_) => {
                                metrics.recorder_dropped.inc();
                            }
                            None => return,
                        },
                        _ = stop.cancelled(), if !rx.is_closed() => rx.close(),
                    }
                }
            }
        };
        match result {
            Ok(_) => {
                metrics.recorder_written.inc_by(n as u64);
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

#[cfg(test)]
mod tests {
    use super::*;
    use pushwise_analyzer::{PushMark, Referer};

    fn event(i: i64) -> Event {
        Event {
            ts_ms: 1_000 + i,
            client: 1,
            conn_id: 1,
            stream_id: 2 * i + 1,
            method: "GET".into(),
            path: format!("/a/{}.png", i % 10).into(),
            status: 200,
            bytes: 10,
            content_type: Some("image/png".into()),
            referer: Referer::SameSite("/".into()),
            is_page: false,
            browser: true,
            cacheable: true,
            push: PushMark::Requested,
            holdout: false,
            source: None,
            source_line: None,
        }
    }

    async fn start(
        cfg: RecorderConfig,
    ) -> (
        tempfile::TempDir,
        Store,
        Arc<Metrics>,
        Recorder,
        RecorderTask,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.db")).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let (rec, task) = Recorder::start(store.clone(), cfg, Arc::clone(&metrics)).unwrap();
        (dir, store, metrics, rec, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_faster_than_queue_per_interval_wakes_the_writer_instead_of_dropping() {
        // A 10 s interval: without the half-full wake-up the writer would still be letting its
        // first batch fill when the fourth burst overflows the 1,000-event queue.
        let cfg = RecorderConfig {
            queue: 1_000,
            batch: 100,
            interval: Duration::from_secs(10),
            ..Default::default()
        };
        let (_dir, store, metrics, rec, task) = start(cfg).await;
        let started = std::time::Instant::now();
        for burst in 0..12 {
            for i in 0..300 {
                rec.record(event(burst * 300 + i));
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        assert_eq!(metrics.recorder_dropped.get(), 0);
        drop(rec);
        task.drain().await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(store.count_events().await.unwrap(), 3_600);
    }

    #[tokio::test]
    async fn a_quiet_queue_is_written_within_one_interval() {
        let cfg = RecorderConfig {
            interval: Duration::from_millis(50),
            ..Default::default()
        };
        let (_dir, store, metrics, rec, task) = start(cfg).await;
        for i in 0..3 {
            rec.record(event(i));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while metrics.recorder_written.get() < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Written without shutting down: the interval, not the drain, flushed them.
        assert_eq!(store.count_events().await.unwrap(), 3);
        drop(rec);
        task.drain().await;
    }
}
